/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The KVM VM: /dev/kvm, capabilities, in-kernel PIC/IOAPIC/PIT, memory slots, IRQ lines. */
#define G_LOG_DOMAIN "frostvm-kvm"
#include "kvm-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "accel/accel.h"
#include "util/error.h"

bool kvm_available(GError **errp)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    int version;

    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot open /dev/kvm");
        return false;
    }
    /* Something else there (a device bound over it, an old kernel) is no KVM either. */
    version = ioctl(fd, KVM_GET_API_VERSION, 0);
    close(fd);
    if (version != KVM_API_VERSION) {
        error_setg(errp, "/dev/kvm speaks API version %d, not %d", version, KVM_API_VERSION);
        return false;
    }
    return true;
}

int kvm_vm_check_extension(KvmState *s, unsigned cap)
{
    int ret = -1;

    if (s->vm_fd >= 0) {
        ret = ioctl(s->vm_fd, KVM_CHECK_EXTENSION, cap);
    }
    if (ret < 0) {
        ret = ioctl(s->sys_fd, KVM_CHECK_EXTENSION, cap);
    }
    return ret < 0 ? 0 : ret;
}

bool kvm_vm_set_slot(KvmState *s, unsigned slot, uint32_t flags, GError **errp)
{
    GuestRamRange *r = &s->m->ram_ranges[slot];
    struct kvm_userspace_memory_region region = {
        .slot = slot,
        .flags = flags,
        .guest_phys_addr = r->gpa,
        .memory_size = r->size,
        .userspace_addr = (uintptr_t)(r->block->host + r->offset),
    };

    if (ioctl(s->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
        error_setg_errno(errp, errno, "KVM_SET_USER_MEMORY_REGION: slot %u "
                         "(RAM block '%s' +0x%" G_GINT64_MODIFIER "x, 0x%"
                         G_GINT64_MODIFIER "x bytes at guest 0x%"
                         G_GINT64_MODIFIER "x)", slot, r->block->name, r->offset,
                         r->size, r->gpa);
        return false;
    }
    return true;
}

static bool kvm_vm_create_devices(KvmState *s, GError **errp)
{
    /* Real-mode emulation on VMX needs these two pages; harmless elsewhere. */
    if (ioctl(s->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0) {
        error_setg_errno(errp, errno, "KVM_SET_TSS_ADDR at 0x%llx", KVM_TSS_ADDR);
        return false;
    }
    if (kvm_vm_check_extension(s, KVM_CAP_SET_IDENTITY_MAP_ADDR)) {
        uint64_t addr = KVM_IDENTITY_MAP_ADDR;
        if (ioctl(s->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &addr) < 0) {
            error_setg_errno(errp, errno, "KVM_SET_IDENTITY_MAP_ADDR at 0x%llx",
                             KVM_IDENTITY_MAP_ADDR);
            return false;
        }
    }

    /*
     * The in-kernel PIC, IOAPIC and LAPICs let HLT, timer interrupts and
     * INIT/SIPI stay in the kernel. Without them guests still run, polled.
     */
    if (kvm_vm_check_extension(s, KVM_CAP_IRQCHIP)) {
        if (ioctl(s->vm_fd, KVM_CREATE_IRQCHIP) < 0) {
            error_setg_errno(errp, errno, "KVM_CREATE_IRQCHIP");
            return false;
        }
        s->has_irqchip = true;
    }
    if (s->has_irqchip && kvm_vm_check_extension(s, KVM_CAP_PIT2)) {
        /*
         * "Dummy speaker" makes KVM answer port 0x61 itself, gate and OUT2 of
         * PIT channel 2 included, which is what guests calibrate the TSC with.
         */
        struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
        if (ioctl(s->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
            error_setg_errno(errp, errno, "KVM_CREATE_PIT2");
            return false;
        }
        s->has_pit = true;
    }
    return true;
}

static void kvm_vm_probe(KvmState *s)
{
    int xsave2 = kvm_vm_check_extension(s, KVM_CAP_XSAVE2);

    if (xsave2 > 0) {
        s->xsave_size = MAX(xsave2, (int)sizeof(struct kvm_xsave));
        s->has_xsave2 = true;
    } else if (kvm_vm_check_extension(s, KVM_CAP_XSAVE)) {
        s->xsave_size = sizeof(struct kvm_xsave);
    }
    s->has_xcrs = kvm_vm_check_extension(s, KVM_CAP_XCRS);
    s->has_vcpu_events = kvm_vm_check_extension(s, KVM_CAP_VCPU_EVENTS);
    s->has_debugregs = kvm_vm_check_extension(s, KVM_CAP_DEBUGREGS);
    s->has_adjust_clock = kvm_vm_check_extension(s, KVM_CAP_ADJUST_CLOCK);
}

KvmState *kvm_vm_create(Machine *m, GError **errp)
{
    g_autofree KvmState *s = g_new0(KvmState, 1);
    int version;

    s->m = m;
    s->vm_fd = -1;
    s->sys_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (s->sys_fd < 0) {
        error_setg_errno(errp, errno, "cannot open /dev/kvm");
        return NULL;
    }
    version = ioctl(s->sys_fd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION) {
        error_setg(errp, "/dev/kvm speaks KVM API version %d, frostvm needs %d",
                   version, KVM_API_VERSION);
        goto fail;
    }
    s->run_size = ioctl(s->sys_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (s->run_size < (int)sizeof(struct kvm_run)) {
        error_setg_errno(errp, errno, "KVM_GET_VCPU_MMAP_SIZE");
        goto fail;
    }
    do {
        s->vm_fd = ioctl(s->sys_fd, KVM_CREATE_VM, 0);
    } while (s->vm_fd < 0 && errno == EINTR);
    if (s->vm_fd < 0) {
        error_setg_errno(errp, errno, "KVM_CREATE_VM");
        goto fail;
    }
    kvm_vm_probe(s);
    if (!kvm_vm_create_devices(s, errp)) {
        goto fail;
    }

    /*
     * With manual protection, KVM_GET_DIRTY_LOG no longer write-protects
     * everything it reports; we re-arm with KVM_CLEAR_DIRTY_LOG right after,
     * which keeps the time the mmu lock is held per sync short.
     */
    if (kvm_vm_check_extension(s, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2)) {
        struct kvm_enable_cap cap = {
            .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
            .args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE,
        };
        if (ioctl(s->vm_fd, KVM_ENABLE_CAP, &cap) == 0) {
            s->has_manual_dirty_protect = true;
        } else {
            g_debug("KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 offered but refused: %s",
                    g_strerror(errno));
        }
    }

    for (unsigned i = 0; i < m->nr_ram_ranges; i++) {
        if (!kvm_vm_set_slot(s, i, 0, errp)) {
            goto fail;
        }
    }
    g_mutex_init(&s->lock);
    g_cond_init(&s->vcpu_cond);
    g_cond_init(&s->parked_cond);
    return g_steal_pointer(&s);

fail:
    if (s->vm_fd >= 0) {
        close(s->vm_fd);
    }
    close(s->sys_fd);
    return NULL;
}

void kvm_vm_destroy(KvmState *s)
{
    for (unsigned i = 0; i < G_N_ELEMENTS(s->slot_bitmaps); i++) {
        g_free(s->slot_bitmaps[i]);
    }
    if (s->device_refs) {
        g_ptr_array_unref(s->device_refs);
    }
    g_free(s->cpuid);
    g_free(s->msr_indices);
    close(s->vm_fd);
    close(s->sys_fd);
    g_mutex_clear(&s->lock);
    g_cond_clear(&s->vcpu_cond);
    g_cond_clear(&s->parked_cond);
    g_free(s);
}

bool kvm_set_irq(Machine *m, uint32_t gsi, bool level)
{
    KvmState *s;
    struct kvm_irq_level irq = { .irq = gsi, .level = level };

    if (m->accel != &kvm_accel_ops || !m->accel_state) {
        return false;
    }
    s = kvm_state(m);
    if (!s->has_irqchip) {
        return false;
    }
    if (ioctl(s->vm_fd, KVM_IRQ_LINE, &irq) < 0) {
        g_warning("KVM_IRQ_LINE gsi %u level %d: %s", gsi, level, g_strerror(errno));
        return false;
    }
    return true;
}

void kvm_get_stats(Machine *m, KvmStats *stats)
{
    KvmState *s = kvm_state(m);

    *stats = (KvmStats) { 0 };
    for (unsigned i = 0; i < s->nr_vcpus; i++) {
        stats->exits += s->vcpus[i].nr_exits;
    }
}
