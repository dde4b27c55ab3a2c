/* SPDX-License-Identifier: GPL-2.0-or-later */
/* KVM vCPUs: creation, CPUID, the Multiboot entry state, and what each exit means. */
#define G_LOG_DOMAIN "frostvm-kvm"
#include "kvm-internal.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hw/ioport.h"
#include "system/runstate.h"
#include "util/error.h"

#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define CR0_PE (1ull << 0)
#define CR0_ET (1ull << 4)

/* Flat 4 GiB segments as a Multiboot loader leaves them. */
#define BOOT_CODE_SELECTOR 0x10
#define BOOT_DATA_SELECTOR 0x18

static bool kvm_cpuid_fetch(KvmState *s, GError **errp)
{
    int nent = 128;

    while (!s->cpuid) {
        struct kvm_cpuid2 *c = g_malloc0(sizeof(*c) + nent * sizeof(c->entries[0]));
        c->nent = nent;
        if (ioctl(s->sys_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
            s->cpuid = c;
            break;
        }
        g_free(c);
        if (errno != E2BIG || nent >= 4096) {
            error_setg_errno(errp, errno, "KVM_GET_SUPPORTED_CPUID (%d entries)", nent);
            return false;
        }
        nent *= 2;
    }
    return true;
}

/*
 * The supported CPUID, made this vCPU's: its APIC ID in leaf 1 and in the
 * x2APIC topology leaves, and the hypervisor bit so guests know where they are.
 */
static bool kvm_vcpu_set_cpuid(KvmVcpu *v, GError **errp)
{
    KvmState *s = v->kvm;
    size_t bytes = sizeof(*s->cpuid) + s->cpuid->nent * sizeof(s->cpuid->entries[0]);
    g_autofree struct kvm_cpuid2 *c = g_memdup2(s->cpuid, bytes);

    for (unsigned i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        switch (e->function) {
        case 1:
            e->ebx = (e->ebx & 0x0000ffffu) | (MAX(s->m->smp, 1u) << 16) |
                     (v->index << 24);
            e->ecx |= CPUID_1_ECX_HYPERVISOR;
            break;
        case 0xb:
        case 0x1f:
            e->edx = v->index;
            break;
        }
    }
    if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0) {
        error_setg_errno(errp, errno, "KVM_SET_CPUID2 on vCPU %u", v->index);
        return false;
    }
    return true;
}

bool kvm_vcpu_create(KvmState *s, unsigned index, GError **errp)
{
    KvmVcpu *v = &s->vcpus[index];

    v->kvm = s;
    v->index = index;
    v->fd = ioctl(s->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
    if (v->fd < 0) {
        error_setg_errno(errp, errno, "KVM_CREATE_VCPU %u", index);
        return false;
    }
    v->run = mmap(NULL, s->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (v->run == MAP_FAILED) {
        v->run = NULL;
        error_setg_errno(errp, errno, "mmap of kvm_run for vCPU %u", index);
        goto fail;
    }
    if (!kvm_cpuid_fetch(s, errp) || !kvm_vcpu_set_cpuid(v, errp)) {
        goto fail;
    }
    return true;

fail:
    kvm_vcpu_destroy(v);
    return false;
}

void kvm_vcpu_destroy(KvmVcpu *v)
{
    if (v->run) {
        munmap(v->run, v->kvm->run_size);
        v->run = NULL;
    }
    if (v->fd >= 0) {
        close(v->fd);
    }
    v->fd = -1;
}

static struct kvm_segment boot_segment(uint16_t selector, uint8_t type)
{
    return (struct kvm_segment) {
        .base = 0, .limit = 0xffffffff, .selector = selector, .type = type,
        .present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1,
    };
}

bool kvm_vcpu_set_boot_entry(KvmVcpu *v, uint32_t entry, uint32_t eax, uint32_t ebx,
                             GError **errp)
{
    struct kvm_sregs sregs;
    struct kvm_regs regs = {
        .rflags = 0x2,          /* bit 1 is reserved and reads as one */
        .rip = entry,
        .rax = eax,
        .rbx = ebx,
    };

    if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0) {
        error_setg_errno(errp, errno, "KVM_GET_SREGS on vCPU %u", v->index);
        return false;
    }
    sregs.cs = boot_segment(BOOT_CODE_SELECTOR, 0xb);   /* code, read, accessed */
    sregs.ds = boot_segment(BOOT_DATA_SELECTOR, 0x3);   /* data, write, accessed */
    sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
    /* No paging, caches on: CD and NW from the reset value would only slow us. */
    sregs.cr0 = CR0_PE | CR0_ET;
    sregs.cr3 = 0;
    sregs.cr4 = 0;
    sregs.efer = 0;
    if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0) {
        error_setg_errno(errp, errno, "KVM_SET_SREGS (32-bit entry) on vCPU %u",
                         v->index);
        return false;
    }
    if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0) {
        error_setg_errno(errp, errno, "KVM_SET_REGS (entry 0x%x) on vCPU %u", entry,
                         v->index);
        return false;
    }
    return true;
}

bool kvm_vcpu_set_wait_for_sipi(KvmVcpu *v, GError **errp)
{
    struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_UNINITIALIZED };

    if (!v->kvm->has_irqchip) {
        return true;   /* without LAPICs there is no INIT/SIPI: the AP stays idle */
    }
    if (ioctl(v->fd, KVM_SET_MP_STATE, &mp) < 0) {
        error_setg_errno(errp, errno, "KVM_SET_MP_STATE (wait for SIPI) on vCPU %u",
                         v->index);
        return false;
    }
    return true;
}

static void kvm_vcpu_handle_io(KvmVcpu *v)
{
    struct kvm_run *run = v->run;
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    unsigned size = run->io.size;

    for (uint32_t i = 0; i < run->io.count; i++, data += size) {
        uint32_t value = 0;
        if (run->io.direction == KVM_EXIT_IO_OUT) {
            memcpy(&value, data, size);
            ioport_write(v->kvm->m, run->io.port, size, value);
        } else {
            value = ioport_read(v->kvm->m, run->io.port, size);
            memcpy(data, &value, size);
        }
    }
}

static void kvm_vcpu_handle_mmio(KvmVcpu *v)
{
    struct kvm_run *run = v->run;

    /* Nothing is mapped there: reads float high as on a bus with no device. */
    if (!run->mmio.is_write) {
        memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
    }
    if (!v->mmio_warned) {
        v->mmio_warned = true;
        g_warning("vCPU %u: %s of %u bytes at guest address 0x%llx, where there is "
                  "no RAM and no device (ignored; further ones are not logged)",
                  v->index, run->mmio.is_write ? "write" : "read", run->mmio.len,
                  (unsigned long long)run->mmio.phys_addr);
    }
}

/* The vCPU can never run again: stop it and ask the main loop to end the VM. */
static void kvm_vcpu_fail(KvmVcpu *v, const char *reason, int status)
{
    v->stopped = true;
    runstate_request_shutdown(v->kvm->m, reason, status);
}

void kvm_vcpu_handle_exit(KvmVcpu *v)
{
    struct kvm_run *run = v->run;

    v->nr_exits++;
    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        kvm_vcpu_handle_io(v);
        break;
    case KVM_EXIT_MMIO:
        kvm_vcpu_handle_mmio(v);
        break;
    case KVM_EXIT_HLT:
        /*
         * Only without an in-kernel irqchip: nothing could wake the vCPU, so
         * let it continue after the HLT, slowly enough not to burn a core.
         */
        if (!v->hlt_warned) {
            v->hlt_warned = true;
            g_info("vCPU %u halted without an in-kernel irqchip; polling", v->index);
        }
        g_usleep(10 * 1000);
        break;
    case KVM_EXIT_INTR:
        break;
    case KVM_EXIT_SHUTDOWN:
        /* A triple fault. There is no reset, so behave like QEMU -no-reboot. */
        g_warning("vCPU %u: triple fault (guest reset), shutting down", v->index);
        kvm_vcpu_fail(v, "guest-reset", 0);
        break;
    case KVM_EXIT_SYSTEM_EVENT:
        g_info("vCPU %u: system event %u, shutting down", v->index,
               run->system_event.type);
        kvm_vcpu_fail(v, run->system_event.type == KVM_SYSTEM_EVENT_RESET ?
                      "guest-reset" : "guest-shutdown", 0);
        break;
    case KVM_EXIT_INTERNAL_ERROR: {
        g_autoptr(GString) data = g_string_new(NULL);
        for (unsigned i = 0; i < MIN(run->internal.ndata, 16u); i++) {
            g_string_append_printf(data, " 0x%llx",
                                   (unsigned long long)run->internal.data[i]);
        }
        g_warning("vCPU %u: KVM internal error, suberror %u (%s), data:%s", v->index,
                  run->internal.suberror,
                  run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION ?
                  "instruction emulation failed" : "see linux/kvm.h", data->str);
        kvm_vcpu_fail(v, "host-error", 1);
        break;
    }
    case KVM_EXIT_FAIL_ENTRY:
        g_warning("vCPU %u: guest entry failed, hardware reason 0x%llx", v->index,
                  (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
        kvm_vcpu_fail(v, "host-error", 1);
        break;
    default:
        g_warning("vCPU %u: unexpected KVM exit reason %u", v->index,
                  run->exit_reason);
        kvm_vcpu_fail(v, "host-error", 1);
        break;
    }
}
