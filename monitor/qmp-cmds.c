/* SPDX-License-Identifier: GPL-2.0-or-later */
/* QMP commands of run-state.json and quit: thin wrappers around system/runstate. */
#include "monitor/monitor-internal.h"

#include "system/machine.h"
#include "system/runstate.h"
#include "util/error.h"

static gboolean qmp_quit_deferred(gpointer opaque)
{
    runstate_request_shutdown(opaque, "host-qmp-quit", 0);
    return G_SOURCE_REMOVE;
}

JsonNode *qmp_quit(Machine *m, JsonObject *args, GError **errp)
{
    GSource *source = g_idle_source_new();

    /*
     * Asked from the main loop, the shutdown would run at once and send
     * SHUTDOWN before this command's reply; QEMU clients expect the reply first.
     */
    g_source_set_callback(source, qmp_quit_deferred, m, NULL);
    g_source_attach(source, m->monitor->context);
    g_source_unref(source);
    return NULL;
}

static gboolean qmp_powerdown_deferred(gpointer opaque)
{
    runstate_request_shutdown(opaque, "host-qmp-system-powerdown", 0);
    return G_SOURCE_REMOVE;
}

/*
 * The power button. frostvm's PC has no ACPI, so no guest can be told: the
 * button is the machine's power switch (docs/libvirt.md says why). As with
 * quit, the power-off follows the reply.
 */
JsonNode *qmp_system_powerdown(Machine *m, JsonObject *args, GError **errp)
{
    GSource *source;

    if (!machine_has_guest(m)) {
        error_setg(errp, "The 'none' machine has no guest to power down");
        return NULL;
    }
    monitor_emit_event(m->monitor, "POWERDOWN", NULL);
    source = g_idle_source_new();
    g_source_set_callback(source, qmp_powerdown_deferred, m, NULL);
    g_source_attach(source, m->monitor->context);
    g_source_unref(source);
    return NULL;
}

JsonNode *qmp_query_status(Machine *m, JsonObject *args, GError **errp)
{
    JsonObject *info = json_object_new();
    RunState state = runstate_get(m);

    json_object_set_string_member(info, "status", runstate_name(state));
    json_object_set_boolean_member(info, "singlestep", false);
    json_object_set_boolean_member(info, "running", state == RUN_STATE_RUNNING);
    return qmp_object_node(info);
}

JsonNode *qmp_stop(Machine *m, JsonObject *args, GError **errp)
{
    RunState state = runstate_get(m);

    if (state == RUN_STATE_INMIGRATE) {
        /* As QEMU: stay paused once the incoming migration has loaded. */
        if (m->config) {
            m->config->start_paused = true;
        }
    } else if (state == RUN_STATE_RUNNING) {
        /* Other stopped states (prelaunch, postmigrate...) keep their name. */
        runstate_vm_stop(m, RUN_STATE_PAUSED);
    }
    return NULL;
}

JsonNode *qmp_cont(Machine *m, JsonObject *args, GError **errp)
{
    if (!runstate_vm_start(m, errp)) {
        return NULL;
    }
    return qmp_object_node(json_object_new());
}

const QmpCommand monitor_qmp_commands[] = {
    { "quit", qmp_quit },
    { "query-status", qmp_query_status },
    { "stop", qmp_stop },
    { "cont", qmp_cont },
    { "system_powerdown", qmp_system_powerdown },
    { NULL, NULL },
};
