/* SPDX-License-Identifier: GPL-2.0-or-later */
/* QMP and HMP commands of machine.json: the machine types, the accelerator, the vCPUs. */
#include "monitor/monitor-internal.h"

#include "accel/accel.h"
#include "system/machine.h"

/* The one name frostvm's PC answers to in query-machines, with its alias "pc". */
#define MACHINE_PC_VERSIONED_NAME "pc-i440fx-7.2"

JsonNode *qmp_query_kvm(Machine *m, JsonObject *args, GError **errp)
{
    JsonObject *info = json_object_new();
    /* The empty machine (-machine none) has no VM: KVM counts if it would be used. */
    bool enabled = m->accel == &kvm_accel_ops ||
                   (!m->accel && m->none_accel_usable && m->none_accel == ACCEL_KIND_KVM);

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

static JsonNode *qmp_query_target(Machine *m, JsonObject *args, GError **errp)
{
    JsonObject *info = json_object_new();

    json_object_set_string_member(info, "arch", "x86_64");
    return qmp_object_node(info);
}

static JsonObject *machine_info(const char *name, const char *alias, bool is_default,
                                int cpu_max)
{
    JsonObject *info = json_object_new();

    json_object_set_string_member(info, "name", name);
    if (alias) {
        json_object_set_string_member(info, "alias", alias);
    }
    if (is_default) {
        json_object_set_boolean_member(info, "is-default", true);
    }
    json_object_set_int_member(info, "cpu-max", cpu_max);
    json_object_set_boolean_member(info, "hotpluggable-cpus", false);
    json_object_set_boolean_member(info, "numa-mem-supported", false);
    json_object_set_boolean_member(info, "deprecated", false);
    return info;
}

/*
 * No default-ram-id: RAM is "pc.ram" inside frostvm, but -machine
 * memory-backend= names a -object, which libvirt would then add; without the
 * field it passes -m alone, which is what frostvm's machine is built from.
 */
static JsonNode *qmp_query_machines(Machine *m, JsonObject *args, GError **errp)
{
    JsonArray *list = json_array_new();

    json_array_add_object_element(list, machine_info(MACHINE_PC_VERSIONED_NAME, "pc", true,
                                                     MACHINE_MAX_VCPUS));
    json_array_add_object_element(list, machine_info("none", NULL, false, 1));
    return qmp_array_node(list);
}

char *monitor_vcpu_qom_path(unsigned index)
{
    /* QEMU's path for vCPUs created by the board rather than -device. */
    return g_strdup_printf("/machine/unattached/device[%u]", index);
}

static JsonNode *qmp_query_cpus_fast(Machine *m, JsonObject *args, GError **errp)
{
    JsonArray *list = json_array_new();
    MachineConfig *c = m->config;

    for (unsigned i = 0; machine_has_guest(m) && i < m->smp; i++) {
        JsonObject *cpu = json_object_new();
        JsonObject *props = json_object_new();
        g_autofree char *path = monitor_vcpu_qom_path(i);
        int tid = m->accel->vcpu_thread_id ? m->accel->vcpu_thread_id(m, i) : 0;

        json_object_set_int_member(cpu, "cpu-index", i);
        json_object_set_string_member(cpu, "qom-path", path);
        /* The threads exist from the start (parked under -S), as in QEMU. */
        if (tid > 0) {
            json_object_set_int_member(cpu, "thread-id", tid);
        }
        json_object_set_int_member(props, "socket-id", i / (c->cores * c->threads));
        json_object_set_int_member(props, "core-id", (i / c->threads) % c->cores);
        json_object_set_int_member(props, "thread-id", i % c->threads);
        json_object_set_object_member(cpu, "props", props);
        json_object_set_string_member(cpu, "target", "x86_64");
        json_array_add_object_element(list, cpu);
    }
    return qmp_array_node(list);
}

const QmpCommand monitor_qmp_machine_commands[] = {
    { "query-kvm", qmp_query_kvm },
    { "query-target", qmp_query_target },
    { "query-machines", qmp_query_machines },
    { "query-cpus-fast", qmp_query_cpus_fast },
    { NULL, NULL },
};

const HmpCommand monitor_hmp_machine_commands[] = {
    { "info kvm", "", "show KVM information", hmp_info_kvm },
    { NULL, NULL, NULL, NULL },
};
