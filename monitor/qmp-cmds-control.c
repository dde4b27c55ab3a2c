/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The QMP commands of the protocol itself (control.json), registered by monitor_new(). */
#include "monitor/monitor-internal.h"

#include "system/machine.h"
#include "util/error.h"

/*
 * Negotiation mode handles qmp_capabilities in the dispatcher; this handler
 * only runs once a session is past it, where QEMU answers the same way.
 */
static JsonNode *qmp_qmp_capabilities(Machine *m, JsonObject *args, GError **errp)
{
    g_set_error(errp, FROSTVM_ERROR, FROSTVM_ERROR_COMMAND_NOT_FOUND,
                "Capabilities negotiation is already complete, command ignored");
    return NULL;
}

static JsonNode *qmp_query_version(Machine *m, JsonObject *args, GError **errp)
{
    return qmp_version_info();
}

static JsonNode *qmp_query_commands(Machine *m, JsonObject *args, GError **errp)
{
    Monitor *mon = m->monitor;
    JsonArray *list = json_array_new();

    for (guint i = 0; i < mon->qmp_order->len; i++) {
        const QmpCommand *cmd = g_ptr_array_index(mon->qmp_order, i);
        JsonObject *info = json_object_new();

        json_object_set_string_member(info, "name", cmd->name);
        json_array_add_object_element(list, info);
    }
    return qmp_array_node(list);
}

static JsonNode *qmp_human_monitor_command(Machine *m, JsonObject *args, GError **errp)
{
    /* cpu-index is accepted and ignored: no HMP command here depends on a CPU. */
    g_autofree char *out = monitor_hmp_run(
        m->monitor, json_object_get_string_member(args, "command-line"), errp);

    if (!out) {
        return NULL;
    }
    return json_node_init_string(json_node_alloc(), out);
}

const QmpCommand monitor_qmp_builtin_commands[] = {
    { "qmp_capabilities", qmp_qmp_capabilities },
    { "query-version", qmp_query_version },
    { "query-commands", qmp_query_commands },
    { "human-monitor-command", qmp_human_monitor_command },
    { NULL, NULL },
};
