/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Checks across options of a parsed command line, run before anything is opened
 * (accelerator, RAM, devices, sockets), so that every option error reads the same
 * on a machine with /dev/kvm and on one without, as QEMU validates first too.
 */
#include "system/cmdline.h"

#include <string.h>

#include "accel/accel.h"
#include "migration/channel.h"
#include "monitor/monitor.h"
#include "system/memory-backend.h"
#include "util/error.h"

/* The RAM size the machine will have: -m, or the size of the named backend. */
static bool cmdline_check_ram(MachineConfig *c, GError **errp)
{
    MemoryBackendOptions *opts = NULL;

    if (!c->memory_backend_id) {
        return true;
    }
    for (unsigned i = 0; i < c->objects->len; i++) {
        MemoryBackendOptions *o = g_ptr_array_index(c->objects, i);

        if (!g_strcmp0(o->id, c->memory_backend_id)) {
            opts = o;
        }
    }
    if (!opts) {
        error_setg(errp, "-machine memory-backend=%s: no -object with id '%s'",
                   c->memory_backend_id, c->memory_backend_id);
        return false;
    }
    if (c->ram_size_given && opts->size != c->ram_size) {
        error_setg(errp, "-m: RAM size %" G_GUINT64_FORMAT " MiB does not match the "
                   "size of memory backend '%s' (%" G_GUINT64_FORMAT " MiB)",
                   c->ram_size >> 20, opts->id, opts->size >> 20);
        return false;
    }
    c->ram_size = opts->size;
    return true;
}

static bool cmdline_check_monitors(MachineConfig *c, GError **errp)
{
    for (unsigned i = 0; i < c->qmp->len; i++) {
        const char *spec = g_ptr_array_index(c->qmp, i);

        if (!monitor_spec_check(spec, errp)) {
            g_prefix_error(errp, "-qmp: ");
            return false;
        }
    }
    for (unsigned i = 0; i < c->monitors->len; i++) {
        const char *spec = g_ptr_array_index(c->monitors, i);

        if (!monitor_spec_check(spec, errp)) {
            g_prefix_error(errp, "-monitor: ");
            return false;
        }
    }
    return true;
}

bool cmdline_check(MachineConfig *c, GError **errp)
{
    bool test_accel = false;

    if (!c->nr_accels) {
        c->accels[c->nr_accels++] = ACCEL_KIND_KVM;
    }
    for (unsigned i = 0; i < c->nr_accels; i++) {
        test_accel |= c->accels[i] == ACCEL_KIND_TEST;
    }
    if (!cmdline_check_ram(c, errp) || !cmdline_check_monitors(c, errp)) {
        return false;
    }
    if (c->machine_none && (c->incoming || c->kernel)) {
        error_setg(errp, "-machine none has no guest: it takes neither %s",
                   c->incoming ? "-incoming" : "-kernel");
        return false;
    }
    if (c->incoming && strcmp(c->incoming, "defer") &&
        !channel_uri_check(c->incoming, false, errp)) {
        g_prefix_error(errp, "-incoming %s: ", c->incoming);
        return false;
    }
    /*
     * The test accelerator reads -append as the payload would; check it whenever
     * it may be used, so that a fallback from kvm fails the same way on every host.
     */
    if (test_accel && !test_accel_check_config(c, errp)) {
        return false;
    }
    return true;
}
