/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The QMP commands of devices.json: character devices, and the disks, jobs and I/O threads frostvm lacks. */
#include "monitor/monitor-internal.h"

#include "system/chardev.h"
#include "system/machine.h"

/* Whether a device or monitor uses chardev @id. */
static bool chardev_in_use(MachineConfig *c, const char *id)
{
    if (!g_strcmp0(c->serial_chardev, id)) {
        return true;
    }
    for (guint i = 0; i < c->mons->len; i++) {
        if (!g_strcmp0(((MonOptions *)g_ptr_array_index(c->mons, i))->chardev, id)) {
            return true;
        }
    }
    return false;
}

static JsonNode *qmp_query_chardev(Machine *m, JsonObject *args, GError **errp)
{
    JsonArray *list = json_array_new();

    for (guint i = 0; m->chardevs && i < m->chardevs->len; i++) {
        Chardev *chr = g_ptr_array_index(m->chardevs, i);
        JsonObject *info = json_object_new();

        json_object_set_string_member(info, "label", chr->opts->id);
        json_object_set_string_member(info, "filename", chr->filename);
        json_object_set_boolean_member(info, "frontend-open",
                                       chardev_in_use(m->config, chr->opts->id));
        json_array_add_object_element(list, info);
    }
    return qmp_array_node(list);
}

/* frostvm boots from -kernel or a snapshot: it has no disks to list. */
static JsonNode *qmp_query_block(Machine *m, JsonObject *args, GError **errp)
{
    return qmp_array_node(json_array_new());
}

/* Block nodes and block jobs: none, for the same reason. */
static JsonNode *qmp_query_named_block_nodes(Machine *m, JsonObject *args, GError **errp)
{
    return qmp_array_node(json_array_new());
}

static JsonNode *qmp_query_jobs(Machine *m, JsonObject *args, GError **errp)
{
    return qmp_array_node(json_array_new());
}

/* -object iothread is not accepted, so there are none. */
static JsonNode *qmp_query_iothreads(Machine *m, JsonObject *args, GError **errp)
{
    return qmp_array_node(json_array_new());
}

const QmpCommand monitor_qmp_device_commands[] = {
    { "query-chardev", qmp_query_chardev },
    { "query-block", qmp_query_block },
    { "query-named-block-nodes", qmp_query_named_block_nodes },
    { "query-jobs", qmp_query_jobs },
    { "query-iothreads", qmp_query_iothreads },
    { NULL, NULL },
};
