/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The KVM accelerator's AccelOps: putting the VM, vCPUs and state records together. */
#define G_LOG_DOMAIN "frostvm-kvm"
#include "kvm-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "accel/accel.h"
#include "util/error.h"

bool kvm_accel_available(char **why)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    int version;

    if (fd < 0) {
        if (why) {
            *why = g_strdup_printf("cannot open /dev/kvm: %s", g_strerror(errno));
        }
        return false;
    }
    version = ioctl(fd, KVM_GET_API_VERSION, 0);
    close(fd);
    if (version != KVM_API_VERSION) {
        if (why) {
            *why = g_strdup_printf("/dev/kvm speaks KVM API version %d, frostvm needs %d",
                                   version, KVM_API_VERSION);
        }
        return false;
    }
    return true;
}

static void kvm_accel_destroy(Machine *m)
{
    KvmState *s = kvm_state(m);

    if (!s) {
        return;
    }
    kvm_vcpus_join(s);
    for (unsigned i = 0; i < s->nr_vcpus; i++) {
        kvm_vcpu_destroy(&s->vcpus[i]);
    }
    kvm_vm_destroy(s);
    m->accel_state = NULL;
}

static bool kvm_accel_init(Machine *m, GError **errp)
{
    KvmState *s;
    unsigned smp = MAX(m->smp, 1u);
    int max_vcpus;

    if (smp > MACHINE_MAX_VCPUS) {
        error_setg(errp, "-smp %u: frostvm supports at most %d vCPUs", smp,
                   MACHINE_MAX_VCPUS);
        return false;
    }
    s = kvm_vm_create(m, errp);
    if (!s) {
        return false;
    }
    m->accel_state = s;
    for (unsigned i = 0; i < G_N_ELEMENTS(s->vcpus); i++) {
        s->vcpus[i].fd = -1;
    }

    max_vcpus = kvm_vm_check_extension(s, KVM_CAP_MAX_VCPUS);
    if (max_vcpus <= 0) {
        max_vcpus = kvm_vm_check_extension(s, KVM_CAP_NR_VCPUS);
    }
    if (max_vcpus > 0 && smp > (unsigned)max_vcpus) {
        error_setg(errp, "-smp %u: this KVM allows at most %d vCPUs", smp, max_vcpus);
        goto fail;
    }
    for (unsigned i = 0; i < smp; i++) {
        if (!kvm_vcpu_create(s, i, errp)) {
            goto fail;
        }
        s->nr_vcpus = i + 1;
        if (i > 0 && !kvm_vcpu_set_wait_for_sipi(&s->vcpus[i], errp)) {
            goto fail;
        }
    }
    if (!kvm_cpu_state_init(s, errp)) {
        goto fail;
    }
    /*
     * Records load in this order: vCPUs first, so the LAPICs exist in their
     * saved state before the PIC and IOAPIC re-deliver pending interrupts.
     */
    kvm_cpu_state_register(s);
    kvm_vm_state_register(s);
    g_debug("KVM VM: %u vCPUs, irqchip %d, pit %d, manual dirty protect %d, "
            "xsave %d bytes", s->nr_vcpus, s->has_irqchip, s->has_pit,
            s->has_manual_dirty_protect, s->xsave_size);
    return true;

fail:
    error_prefix(errp, "KVM: ");
    kvm_accel_destroy(m);
    return false;
}

static bool kvm_accel_set_boot_entry(Machine *m, uint32_t entry, uint32_t eax,
                                     uint32_t ebx, GError **errp)
{
    KvmState *s = kvm_state(m);

    if (!kvm_vcpu_set_boot_entry(&s->vcpus[0], entry, eax, ebx, errp)) {
        return false;
    }
    for (unsigned i = 1; i < s->nr_vcpus; i++) {
        if (!kvm_vcpu_set_wait_for_sipi(&s->vcpus[i], errp)) {
            return false;
        }
    }
    return true;
}

static bool kvm_accel_start_vcpus(Machine *m, GError **errp)
{
    return kvm_vcpus_start(kvm_state(m), errp);
}

static void kvm_accel_pause_vcpus(Machine *m)
{
    kvm_vcpus_pause(kvm_state(m));
}

static void kvm_accel_resume_vcpus(Machine *m)
{
    kvm_vcpus_resume(kvm_state(m));
}

static void kvm_accel_kick_vcpus(Machine *m)
{
    kvm_vcpus_kick(kvm_state(m));
}

static int kvm_accel_vcpu_thread_id(Machine *m, unsigned index)
{
    KvmState *s = m->accel_state;

    return index < m->smp ? __atomic_load_n(&s->vcpus[index].kernel_tid, __ATOMIC_ACQUIRE) : 0;
}

const AccelOps kvm_accel_ops = {
    .name = "kvm",
    .init = kvm_accel_init,
    .set_boot_entry = kvm_accel_set_boot_entry,
    .start_vcpus = kvm_accel_start_vcpus,
    .pause_vcpus = kvm_accel_pause_vcpus,
    .resume_vcpus = kvm_accel_resume_vcpus,
    .kick_vcpus = kvm_accel_kick_vcpus,
    .dirty_log_start = kvm_dirty_log_start,
    .dirty_log_sync = kvm_dirty_log_sync,
    .dirty_log_stop = kvm_dirty_log_stop,
    .vcpu_thread_id = kvm_accel_vcpu_thread_id,
    .destroy = kvm_accel_destroy,
};
