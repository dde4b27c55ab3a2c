/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Device state records of the in-kernel devices: "pic", "ioapic", "pit" and "kvmclock". */
#define G_LOG_DOMAIN "frostvm-kvm"
#include "kvm-internal.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "migration/vmstate.h"
#include "util/error.h"

#define KVM_VM_STATE_VERSION 1

/* The handlers' opaque: which in-kernel device a record is about. */
typedef struct KvmDeviceRef {
    KvmState *kvm;
    uint32_t chip_id;          /* KVM_IRQCHIP_* for "pic" and "ioapic" */
} KvmDeviceRef;

static size_t irqchip_size(uint32_t chip_id)
{
    return chip_id == KVM_IRQCHIP_IOAPIC ? sizeof(struct kvm_ioapic_state)
                                         : sizeof(struct kvm_pic_state);
}

static const char *irqchip_name(uint32_t chip_id)
{
    switch (chip_id) {
    case KVM_IRQCHIP_PIC_MASTER: return "master PIC";
    case KVM_IRQCHIP_PIC_SLAVE: return "slave PIC";
    default: return "IOAPIC";
    }
}

static bool irqchip_save(void *opaque, GByteArray *buf, GError **errp)
{
    KvmDeviceRef *ref = opaque;
    struct kvm_irqchip chip = { .chip_id = ref->chip_id };

    if (ioctl(ref->kvm->vm_fd, KVM_GET_IRQCHIP, &chip) < 0) {
        error_setg_errno(errp, errno, "saving the in-kernel %s: KVM_GET_IRQCHIP",
                         irqchip_name(ref->chip_id));
        return false;
    }
    vmstate_put_bytes(buf, &chip.chip, irqchip_size(ref->chip_id));
    return true;
}

static bool irqchip_load(void *opaque, const uint8_t *data, size_t len,
                         uint32_t version, GError **errp)
{
    KvmDeviceRef *ref = opaque;
    struct kvm_irqchip chip = { .chip_id = ref->chip_id };

    if (len != irqchip_size(ref->chip_id)) {
        error_setg(errp, "loading the in-kernel %s: record is %zu bytes, expected %zu",
                   irqchip_name(ref->chip_id), len, irqchip_size(ref->chip_id));
        return false;
    }
    memcpy(&chip.chip, data, len);
    if (ioctl(ref->kvm->vm_fd, KVM_SET_IRQCHIP, &chip) < 0) {
        error_setg_errno(errp, errno, "loading the in-kernel %s: KVM_SET_IRQCHIP",
                         irqchip_name(ref->chip_id));
        return false;
    }
    return true;
}

static bool pit_save(void *opaque, GByteArray *buf, GError **errp)
{
    KvmDeviceRef *ref = opaque;
    struct kvm_pit_state2 pit;

    memset(&pit, 0, sizeof(pit));
    if (ioctl(ref->kvm->vm_fd, KVM_GET_PIT2, &pit) < 0) {
        error_setg_errno(errp, errno, "saving the in-kernel PIT: KVM_GET_PIT2");
        return false;
    }
    vmstate_put_bytes(buf, &pit, sizeof(pit));
    return true;
}

static bool pit_load(void *opaque, const uint8_t *data, size_t len, uint32_t version,
                     GError **errp)
{
    KvmDeviceRef *ref = opaque;
    struct kvm_pit_state2 pit;

    if (len != sizeof(pit)) {
        error_setg(errp, "loading the in-kernel PIT: record is %zu bytes, expected %zu",
                   len, sizeof(pit));
        return false;
    }
    memcpy(&pit, data, len);
    if (ioctl(ref->kvm->vm_fd, KVM_SET_PIT2, &pit) < 0) {
        error_setg_errno(errp, errno, "loading the in-kernel PIT: KVM_SET_PIT2");
        return false;
    }
    return true;
}

/*
 * kvmclock: the guest's clock stands still between save and load (the same
 * choice as for the TSC), so a restored guest sees no jump in time.
 */
static bool kvmclock_save(void *opaque, GByteArray *buf, GError **errp)
{
    KvmDeviceRef *ref = opaque;
    struct kvm_clock_data clock;

    memset(&clock, 0, sizeof(clock));
    if (ioctl(ref->kvm->vm_fd, KVM_GET_CLOCK, &clock) < 0) {
        error_setg_errno(errp, errno, "saving kvmclock: KVM_GET_CLOCK");
        return false;
    }
    vmstate_put_u64(buf, clock.clock);
    return true;
}

static bool kvmclock_load(void *opaque, const uint8_t *data, size_t len,
                          uint32_t version, GError **errp)
{
    KvmDeviceRef *ref = opaque;
    struct kvm_clock_data clock;
    VMStateReader r;

    memset(&clock, 0, sizeof(clock));
    vmstate_reader_init(&r, data, len);
    clock.clock = vmstate_get_u64(&r);
    if (!vmstate_reader_finish(&r, "kvmclock", errp)) {
        return false;
    }
    if (ioctl(ref->kvm->vm_fd, KVM_SET_CLOCK, &clock) < 0) {
        error_setg_errno(errp, errno, "loading kvmclock: KVM_SET_CLOCK");
        return false;
    }
    return true;
}

static void register_device(KvmState *s, const char *name, uint32_t instance,
                            uint32_t chip_id,
                            bool (*save)(void *, GByteArray *, GError **),
                            bool (*load)(void *, const uint8_t *, size_t, uint32_t,
                                         GError **))
{
    KvmDeviceRef *ref = g_new0(KvmDeviceRef, 1);
    VMStateHandler h = {
        .name = name, .instance = instance, .version = KVM_VM_STATE_VERSION,
        .save = save, .load = load, .opaque = ref,
    };

    ref->kvm = s;
    ref->chip_id = chip_id;
    /* The refs live as long as the handler table; KvmState frees them. */
    g_ptr_array_add(s->device_refs, ref);
    vmstate_register(s->m, &h);
}

void kvm_vm_state_register(KvmState *s)
{
    if (!s->device_refs) {
        s->device_refs = g_ptr_array_new_with_free_func(g_free);
    }
    if (s->has_irqchip) {
        register_device(s, "pic", 0, KVM_IRQCHIP_PIC_MASTER, irqchip_save,
                        irqchip_load);
        register_device(s, "pic", 1, KVM_IRQCHIP_PIC_SLAVE, irqchip_save,
                        irqchip_load);
        register_device(s, "ioapic", 0, KVM_IRQCHIP_IOAPIC, irqchip_save,
                        irqchip_load);
    }
    if (s->has_pit) {
        register_device(s, "pit", 0, 0, pit_save, pit_load);
    }
    if (s->has_adjust_clock) {
        register_device(s, "kvmclock", 0, 0, kvmclock_save, kvmclock_load);
    }
}
