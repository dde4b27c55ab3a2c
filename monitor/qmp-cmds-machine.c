/* SPDX-License-Identifier: GPL-2.0-or-later */
/* QMP and HMP commands of machine.json: what runs the guest. */
#include "monitor/monitor-internal.h"

#include "accel/accel.h"
#include "system/machine.h"

JsonNode *qmp_query_kvm(Machine *m, JsonObject *args, GError **errp)
{
    JsonObject *info = json_object_new();
    bool enabled = m->accel == &kvm_accel_ops;

    json_object_set_boolean_member(info, "enabled", enabled);
    /* A VM on KVM proves it usable; otherwise look at /dev/kvm now. */
    json_object_set_boolean_member(info, "present", enabled || kvm_accel_available(NULL));
    return qmp_object_node(info);
}

static bool hmp_info_kvm(Machine *m, int argc, char **argv, GString *out, GError **errp)
{
    g_autoptr(JsonNode) info = qmp_query_kvm(m, NULL, errp);
    JsonObject *obj;

    if (!info) {
        return false;
    }
    obj = json_node_get_object(info);
    /* QEMU's wording. */
    g_string_append_printf(out, "kvm support: %s\n",
                           json_object_get_boolean_member(obj, "enabled") ? "enabled" :
                           json_object_get_boolean_member(obj, "present") ? "disabled" :
                           "not available");
    return true;
}

const QmpCommand monitor_qmp_machine_commands[] = {
    { "query-kvm", qmp_query_kvm },
    { NULL, NULL },
};

const HmpCommand monitor_hmp_machine_commands[] = {
    { "info kvm", "", "show KVM information", hmp_info_kvm },
    { NULL, NULL, NULL, NULL },
};
