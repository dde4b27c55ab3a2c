/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The "cpu" device state record: everything KVM holds about one vCPU, saved and loaded. */
#define G_LOG_DOMAIN "frostvm-kvm"
#include "kvm-internal.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "migration/vmstate.h"
#include "util/error.h"

#define KVM_CPU_STATE_VERSION 1

#define MSR_IA32_TSC          0x10
#define MSR_IA32_TSC_DEADLINE 0x6e0
#define MSR_KVM_WALL_CLOCK    0x11
#define MSR_KVM_WALL_CLOCK_NEW 0x4b564d00

/*
 * A "cpu" record is a sequence of chunks (u32 tag, u32 length, bytes) so a
 * later build can add chunks and a loader can say precisely what it lacks.
 * The KVM structures are stored as the kernel lays them out (x86-64 ABI).
 */
typedef enum {
    CPU_CHUNK_REGS = 1,
    CPU_CHUNK_SREGS,
    CPU_CHUNK_FPU,
    CPU_CHUNK_XSAVE,
    CPU_CHUNK_XCRS,
    CPU_CHUNK_MSRS,           /* u32 count, then (u32 index, u64 value) each */
    CPU_CHUNK_LAPIC,
    CPU_CHUNK_EVENTS,
    CPU_CHUNK_MP_STATE,
    CPU_CHUNK_DEBUGREGS,
    CPU_CHUNK__MAX,
} CpuChunk;

static const char *const cpu_chunk_names[CPU_CHUNK__MAX] = {
    [CPU_CHUNK_REGS] = "regs", [CPU_CHUNK_SREGS] = "sregs",
    [CPU_CHUNK_FPU] = "fpu", [CPU_CHUNK_XSAVE] = "xsave",
    [CPU_CHUNK_XCRS] = "xcrs", [CPU_CHUNK_MSRS] = "msrs",
    [CPU_CHUNK_LAPIC] = "lapic", [CPU_CHUNK_EVENTS] = "vcpu-events",
    [CPU_CHUNK_MP_STATE] = "mp-state", [CPU_CHUNK_DEBUGREGS] = "debugregs",
};

static bool msr_is_saved(uint32_t index)
{
    /*
     * Writing a wall-clock MSR makes KVM store the host's wall time into guest
     * memory at that moment; it is a request, not state.
     */
    return index != MSR_KVM_WALL_CLOCK && index != MSR_KVM_WALL_CLOCK_NEW;
}

static struct kvm_msrs *msrs_new(unsigned n)
{
    struct kvm_msrs *msrs = g_malloc0(sizeof(*msrs) + n * sizeof(msrs->entries[0]));
    msrs->nmsrs = n;
    return msrs;
}

/*
 * Decide once which MSRs a "cpu" record carries: those KVM lists for
 * save/restore that vCPU 0 can actually read under this CPUID. The TSC goes
 * first and the TSC deadline is kept last (see the load order below).
 */
bool kvm_cpu_state_init(KvmState *s, GError **errp)
{
    struct kvm_msr_list probe = { .nmsrs = 0 };
    g_autofree struct kvm_msr_list *list = NULL;
    g_autoptr(GArray) keep = g_array_new(FALSE, FALSE, sizeof(uint32_t));
    g_autofree struct kvm_msrs *one = msrs_new(1);
    bool has_tsc = false, has_deadline = false;

    if (ioctl(s->sys_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG) {
        error_setg_errno(errp, errno, "KVM_GET_MSR_INDEX_LIST");
        return false;
    }
    list = g_malloc0(sizeof(*list) + probe.nmsrs * sizeof(list->indices[0]));
    list->nmsrs = probe.nmsrs;
    if (ioctl(s->sys_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
        error_setg_errno(errp, errno, "KVM_GET_MSR_INDEX_LIST (%u MSRs)", probe.nmsrs);
        return false;
    }
    for (unsigned i = 0; i < list->nmsrs; i++) {
        uint32_t index = list->indices[i];
        if (!msr_is_saved(index)) {
            continue;
        }
        one->entries[0].index = index;
        if (ioctl(s->vcpus[0].fd, KVM_GET_MSRS, one) != 1) {
            continue;
        }
        if (index == MSR_IA32_TSC) {
            has_tsc = true;
        } else if (index == MSR_IA32_TSC_DEADLINE) {
            has_deadline = true;
        } else {
            g_array_append_val(keep, index);
        }
    }
    if (has_tsc) {
        uint32_t tsc = MSR_IA32_TSC;
        g_array_prepend_val(keep, tsc);
    }
    if (has_deadline) {
        uint32_t deadline = MSR_IA32_TSC_DEADLINE;
        g_array_append_val(keep, deadline);
    }
    s->nr_msr_indices = keep->len;
    s->msr_indices = (uint32_t *)g_array_free(g_steal_pointer(&keep), FALSE);
    g_debug("saving %u of the %u MSRs KVM lists", s->nr_msr_indices, list->nmsrs);
    return true;
}

static void put_chunk(GByteArray *buf, CpuChunk tag, const void *data, size_t len)
{
    vmstate_put_u32(buf, tag);
    vmstate_put_u32(buf, len);
    vmstate_put_bytes(buf, data, len);
}

/* Fetch a fixed-size structure with @request and append it as chunk @tag. */
static bool save_struct(KvmVcpu *v, GByteArray *buf, CpuChunk tag,
                        unsigned long request, void *scratch, size_t len, GError **errp)
{
    memset(scratch, 0, len);
    if (ioctl(v->fd, request, scratch) < 0) {
        error_setg_errno(errp, errno, "saving vCPU %u: reading %s", v->index,
                         cpu_chunk_names[tag]);
        return false;
    }
    put_chunk(buf, tag, scratch, len);
    return true;
}

static bool save_msrs(KvmVcpu *v, GByteArray *buf, GError **errp)
{
    KvmState *s = v->kvm;
    g_autofree struct kvm_msrs *msrs = msrs_new(s->nr_msr_indices);
    g_autoptr(GByteArray) chunk = g_byte_array_new();
    int n;

    for (unsigned i = 0; i < s->nr_msr_indices; i++) {
        msrs->entries[i].index = s->msr_indices[i];
    }
    n = ioctl(v->fd, KVM_GET_MSRS, msrs);
    if (n != (int)s->nr_msr_indices) {
        error_setg(errp, "saving vCPU %u: KVM_GET_MSRS read %d of %u MSRs (stopped "
                   "at 0x%x)%s%s", v->index, n, s->nr_msr_indices,
                   n >= 0 ? s->msr_indices[n] : 0, n < 0 ? ": " : "",
                   n < 0 ? g_strerror(errno) : "");
        return false;
    }
    vmstate_put_u32(chunk, n);
    for (int i = 0; i < n; i++) {
        vmstate_put_u32(chunk, msrs->entries[i].index);
        vmstate_put_u64(chunk, msrs->entries[i].data);
    }
    put_chunk(buf, CPU_CHUNK_MSRS, chunk->data, chunk->len);
    return true;
}

static bool kvm_cpu_state_save(void *opaque, GByteArray *buf, GError **errp)
{
    KvmVcpu *v = opaque;
    KvmState *s = v->kvm;
    union {
        struct kvm_regs regs;
        struct kvm_sregs sregs;
        struct kvm_fpu fpu;
        struct kvm_xcrs xcrs;
        struct kvm_lapic_state lapic;
        struct kvm_vcpu_events events;
        struct kvm_mp_state mp;
        struct kvm_debugregs debugregs;
    } u;

    if (!save_struct(v, buf, CPU_CHUNK_SREGS, KVM_GET_SREGS, &u, sizeof(u.sregs), errp) ||
        !save_struct(v, buf, CPU_CHUNK_REGS, KVM_GET_REGS, &u, sizeof(u.regs), errp)) {
        return false;
    }
    if (s->xsave_size) {
        g_autofree void *xsave = g_malloc0(s->xsave_size);
        if (ioctl(v->fd, s->has_xsave2 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, xsave) < 0) {
            error_setg_errno(errp, errno, "saving vCPU %u: reading xsave (%d bytes)",
                             v->index, s->xsave_size);
            return false;
        }
        put_chunk(buf, CPU_CHUNK_XSAVE, xsave, s->xsave_size);
    } else if (!save_struct(v, buf, CPU_CHUNK_FPU, KVM_GET_FPU, &u, sizeof(u.fpu),
                            errp)) {
        return false;
    }
    if (s->has_xcrs &&
        !save_struct(v, buf, CPU_CHUNK_XCRS, KVM_GET_XCRS, &u, sizeof(u.xcrs), errp)) {
        return false;
    }
    if (!save_msrs(v, buf, errp)) {
        return false;
    }
    if (s->has_irqchip &&
        (!save_struct(v, buf, CPU_CHUNK_LAPIC, KVM_GET_LAPIC, &u, sizeof(u.lapic),
                      errp) ||
         !save_struct(v, buf, CPU_CHUNK_MP_STATE, KVM_GET_MP_STATE, &u, sizeof(u.mp),
                      errp))) {
        return false;
    }
    if (s->has_vcpu_events &&
        !save_struct(v, buf, CPU_CHUNK_EVENTS, KVM_GET_VCPU_EVENTS, &u,
                     sizeof(u.events), errp)) {
        return false;
    }
    if (s->has_debugregs &&
        !save_struct(v, buf, CPU_CHUNK_DEBUGREGS, KVM_GET_DEBUGREGS, &u,
                     sizeof(u.debugregs), errp)) {
        return false;
    }
    return true;
}

typedef struct CpuChunkView {
    const uint8_t *data;
    uint32_t len;
} CpuChunkView;

static bool parse_chunks(KvmVcpu *v, const uint8_t *data, size_t len,
                         CpuChunkView chunks[CPU_CHUNK__MAX], GError **errp)
{
    VMStateReader r;

    vmstate_reader_init(&r, data, len);
    while (r.pos < r.len && !r.overrun) {
        uint32_t tag = vmstate_get_u32(&r);
        uint32_t chunk_len = vmstate_get_u32(&r);
        if (r.overrun || chunk_len > r.len - r.pos) {
            break;
        }
        if (tag == 0 || tag >= CPU_CHUNK__MAX) {
            error_setg(errp, "loading vCPU %u: unknown chunk %u in the 'cpu' record "
                       "(written by a newer frostvm?)", v->index, tag);
            return false;
        }
        chunks[tag] = (CpuChunkView) { .data = r.data + r.pos, .len = chunk_len };
        r.pos += chunk_len;
    }
    if (r.pos != r.len || r.overrun) {
        error_setg(errp, "loading vCPU %u: the 'cpu' record is truncated (%zu bytes)",
                   v->index, len);
        return false;
    }
    return true;
}

/* Load chunk @tag with @request if present; @len is the size the kernel wants. */
static bool load_struct(KvmVcpu *v, const CpuChunkView *chunks, CpuChunk tag,
                        unsigned long request, size_t len, bool required, GError **errp)
{
    g_autofree void *copy = NULL;

    if (!chunks[tag].data) {
        if (required) {
            error_setg(errp, "loading vCPU %u: the 'cpu' record has no %s", v->index,
                       cpu_chunk_names[tag]);
            return false;
        }
        return true;
    }
    if (chunks[tag].len > len) {
        error_setg(errp, "loading vCPU %u: %s is %u bytes, this kernel takes %zu",
                   v->index, cpu_chunk_names[tag], chunks[tag].len, len);
        return false;
    }
    copy = g_malloc0(len);
    memcpy(copy, chunks[tag].data, chunks[tag].len);
    if (tag == CPU_CHUNK_EVENTS) {
        /* GET leaves these two out of flags; SET would then ignore the fields. */
        ((struct kvm_vcpu_events *)copy)->flags |=
            KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
    }
    if (ioctl(v->fd, request, copy) < 0) {
        error_setg_errno(errp, errno, "loading vCPU %u: writing %s", v->index,
                         cpu_chunk_names[tag]);
        return false;
    }
    return true;
}

/*
 * Write MSRs [@first, @last) of the record. KVM_SET_MSRS stops at the first
 * MSR it refuses; skip that one (a kernel may list MSRs it will not take back
 * from userspace, e.g. for features this CPUID lacks) and go on.
 */
static bool load_msrs(KvmVcpu *v, const CpuChunkView *chunk, bool deadline_only,
                      GError **errp)
{
    VMStateReader r;
    uint32_t count;
    g_autofree struct kvm_msrs *msrs = NULL;
    unsigned n = 0, done = 0, refused = 0;

    vmstate_reader_init(&r, chunk->data, chunk->len);
    count = vmstate_get_u32(&r);
    if (r.overrun || count > chunk->len / 12) {
        error_setg(errp, "loading vCPU %u: bad MSR count %u", v->index, count);
        return false;
    }
    msrs = msrs_new(count);
    for (uint32_t i = 0; i < count; i++) {
        uint32_t index = vmstate_get_u32(&r);
        uint64_t value = vmstate_get_u64(&r);
        if ((index == MSR_IA32_TSC_DEADLINE) != deadline_only) {
            continue;
        }
        msrs->entries[n].index = index;
        msrs->entries[n].data = value;
        n++;
    }
    if (!vmstate_reader_finish(&r, "cpu msrs", errp)) {
        return false;
    }
    while (done < n) {
        struct kvm_msrs *rest = msrs_new(n - done);
        int ret;

        memcpy(rest->entries, &msrs->entries[done], (n - done) * sizeof(rest->entries[0]));
        ret = ioctl(v->fd, KVM_SET_MSRS, rest);
        g_free(rest);
        if (ret < 0) {
            error_setg_errno(errp, errno, "loading vCPU %u: KVM_SET_MSRS", v->index);
            return false;
        }
        done += ret;
        if (done < n) {
            g_debug("vCPU %u: KVM refused MSR 0x%x = 0x%llx; skipped", v->index,
                    msrs->entries[done].index,
                    (unsigned long long)msrs->entries[done].data);
            refused++;
            done++;
        }
    }
    if (refused) {
        g_info("vCPU %u: %u of %u MSRs could not be restored", v->index, refused, n);
    }
    return true;
}

/*
 * Load order matters to KVM:
 *  - sregs first: they set the mode, EFER and the APIC base that the MSRs
 *    and the LAPIC are interpreted against;
 *  - MSRs after sregs, TSC first among them; the guest's TSC continues from
 *    the saved value (time between save and load does not exist for it, as
 *    with the kvmclock record);
 *  - the LAPIC before the TSC deadline MSR (KVM ignores that MSR unless the
 *    LAPIC timer is in deadline mode) and before vCPU events (pending
 *    interrupts and NMIs refer to LAPIC state);
 *  - MP state after the LAPIC (INIT/SIPI latches), events after MP state.
 */
static bool kvm_cpu_state_load(void *opaque, const uint8_t *data, size_t len,
                               uint32_t version, GError **errp)
{
    KvmVcpu *v = opaque;
    KvmState *s = v->kvm;
    CpuChunkView chunks[CPU_CHUNK__MAX] = { { 0 } };

    if (!parse_chunks(v, data, len, chunks, errp)) {
        return false;
    }
    if (!load_struct(v, chunks, CPU_CHUNK_SREGS, KVM_SET_SREGS,
                     sizeof(struct kvm_sregs), true, errp) ||
        !load_struct(v, chunks, CPU_CHUNK_REGS, KVM_SET_REGS,
                     sizeof(struct kvm_regs), true, errp)) {
        return false;
    }
    if (chunks[CPU_CHUNK_XSAVE].data && !s->xsave_size) {
        error_setg(errp, "loading vCPU %u: the record has XSAVE state but this "
                   "kernel offers no KVM_SET_XSAVE", v->index);
        return false;
    }
    if (!load_struct(v, chunks, CPU_CHUNK_XSAVE, KVM_SET_XSAVE, s->xsave_size, false,
                     errp) ||
        !load_struct(v, chunks, CPU_CHUNK_FPU, KVM_SET_FPU, sizeof(struct kvm_fpu),
                     false, errp) ||
        !load_struct(v, chunks, CPU_CHUNK_XCRS, KVM_SET_XCRS, sizeof(struct kvm_xcrs),
                     false, errp)) {
        return false;
    }
    if (!chunks[CPU_CHUNK_MSRS].data) {
        error_setg(errp, "loading vCPU %u: the 'cpu' record has no msrs", v->index);
        return false;
    }
    if (!load_msrs(v, &chunks[CPU_CHUNK_MSRS], false, errp)) {
        return false;
    }
    if (!load_struct(v, chunks, CPU_CHUNK_LAPIC, KVM_SET_LAPIC,
                     sizeof(struct kvm_lapic_state), s->has_irqchip, errp) ||
        !load_msrs(v, &chunks[CPU_CHUNK_MSRS], true, errp) ||
        !load_struct(v, chunks, CPU_CHUNK_MP_STATE, KVM_SET_MP_STATE,
                     sizeof(struct kvm_mp_state), false, errp) ||
        !load_struct(v, chunks, CPU_CHUNK_EVENTS, KVM_SET_VCPU_EVENTS,
                     sizeof(struct kvm_vcpu_events), false, errp) ||
        !load_struct(v, chunks, CPU_CHUNK_DEBUGREGS, KVM_SET_DEBUGREGS,
                     sizeof(struct kvm_debugregs), false, errp)) {
        return false;
    }
    return true;
}

void kvm_cpu_state_register(KvmState *s)
{
    for (unsigned i = 0; i < s->nr_vcpus; i++) {
        VMStateHandler h = {
            .name = "cpu",
            .instance = i,
            .version = KVM_CPU_STATE_VERSION,
            .save = kvm_cpu_state_save,
            .load = kvm_cpu_state_load,
            .opaque = &s->vcpus[i],
        };
        vmstate_register(s->m, &h);
    }
}
