/* SPDX-License-Identifier: GPL-2.0-or-later */
/* HMP commands for run state and quitting; each calls its QMP twin and prints the result. */
#include "monitor/monitor-internal.h"

#include <string.h>

#include "system/machine.h"

static bool hmp_info_status(Machine *m, int argc, char **argv, GString *out,
                            GError **errp)
{
    g_autoptr(JsonNode) info = qmp_query_status(m, NULL, errp);
    JsonObject *obj;
    const char *status;
    bool running;

    if (!info) {
        return false;
    }
    obj = json_node_get_object(info);
    status = json_object_get_string_member(obj, "status");
    running = json_object_get_boolean_member(obj, "running");
    /* QEMU's wording, including the state in brackets when it is not plain "paused". */
    g_string_append_printf(out, "VM status: %s", running ? "running" : "paused");
    if (!running && strcmp(status, "paused")) {
        g_string_append_printf(out, " (%s)", status);
    }
    g_string_append_c(out, '\n');
    return true;
}

/* Run a QMP twin whose result is {}: only success matters. */
static bool hmp_call_void(JsonNode *(*qmp)(Machine *, JsonObject *, GError **),
                          Machine *m, GError **errp)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) ret = qmp(m, NULL, &err);

    if (err) {
        g_propagate_error(errp, g_steal_pointer(&err));
        return false;
    }
    return true;
}

static bool hmp_stop(Machine *m, int argc, char **argv, GString *out, GError **errp)
{
    return hmp_call_void(qmp_stop, m, errp);
}

static bool hmp_cont(Machine *m, int argc, char **argv, GString *out, GError **errp)
{
    return hmp_call_void(qmp_cont, m, errp);
}

static bool hmp_system_powerdown(Machine *m, int argc, char **argv, GString *out,
                                 GError **errp)
{
    return hmp_call_void(qmp_system_powerdown, m, errp);
}

static bool hmp_quit(Machine *m, int argc, char **argv, GString *out, GError **errp)
{
    return hmp_call_void(qmp_quit, m, errp);
}

const HmpCommand monitor_hmp_commands[] = {
    { "info status", "", "show the current VM status (running|paused)", hmp_info_status },
    { "stop", "", "stop the guest's vCPUs", hmp_stop },
    { "cont", "", "start or resume the guest's vCPUs", hmp_cont },
    { "system_powerdown", "", "press the power button (frostvm's PC: powers off)",
      hmp_system_powerdown },
    { "quit", "", "quit frostvm", hmp_quit },
    { NULL, NULL, NULL, NULL },
};
