/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The empty machine (-machine none) that managers start to probe an emulator:
 * libvirt runs "-machine none,accel=kvm:tcg" and asks over QMP what the
 * emulator offers. It has no guest; its accelerator list is only checked.
 */
#include "system/machine.h"

#include "accel/accel.h"
#include "system/chardev.h"
#include "system/cmdline.h"
#include "util/error.h"

/* Whether accelerator @kind could run a guest here, without creating one. */
static bool machine_none_accel_usable(AccelKind kind, GString *why)
{
    g_autofree char *reason = NULL;

    switch (kind) {
    case ACCEL_KIND_KVM:
        if (kvm_accel_available(&reason)) {
            return true;
        }
        g_string_append_printf(why, "%skvm: %s", why->len ? "; " : "", reason);
        return false;
    case ACCEL_KIND_TEST:
        return true;
    case ACCEL_KIND_TCG:
        g_string_append_printf(why, "%stcg: frostvm has no TCG", why->len ? "; " : "");
        return false;
    }
    return false;
}

Machine *machine_new_none(MachineConfig *config, GError **errp)
{
    Machine *m = machine_alloc(config);
    g_autoptr(GString) why = g_string_new(NULL);

    /*
     * QEMU fails when no accelerator of the list works; frostvm's empty
     * machine still starts, so that a host without KVM (and frostvm, which
     * has no TCG) can be asked what it lacks: query-kvm then says so.
     */
    for (unsigned i = 0; i < config->nr_accels; i++) {
        if (machine_none_accel_usable(config->accels[i], why)) {
            m->none_accel = config->accels[i];
            m->none_accel_usable = true;
            break;
        }
    }
    if (!m->none_accel_usable && why->len) {
        m->accel_fallback_note = g_strdup_printf("-machine none: no accelerator of the "
                                                 "list is usable (%s)", why->str);
    }
    if (!chardevs_open(m, errp)) {
        machine_free(m);
        return NULL;
    }
    return m;
}
