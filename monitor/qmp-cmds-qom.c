/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The QMP commands of qom.json. frostvm has no object model of its own; these
 * describe, in QOM's terms, what its command line accepts: the -device,
 * -object and -accel types with their parameters, and the few objects a
 * running machine has (the vCPUs, devices given an id=).
 */
#include "monitor/monitor-internal.h"

#include <string.h>

#include "system/machine.h"
#include "util/error.h"

typedef struct QomProperty {
    const char *name;
    const char *type;
    const char *description;
} QomProperty;

typedef struct QomType {
    const char *name;
    const char *parent;
    bool abstract;
    bool device;                 /* -device takes it (device-list-properties) */
    const QomProperty *props;    /* terminated by a NULL name */
} QomType;

static const QomProperty isa_serial_props[] = {
    { "chardev", "str", "the -chardev COM1 is connected to" },
    { "index", "uint32", "serial port number; frostvm has COM1 only (0)" },
    { "iobase", "uint32", "0x3f8 only" },
    { "irq", "uint32", "4 only" },
    { NULL, NULL, NULL },
};

static const QomProperty isa_debug_exit_props[] = {
    { "iobase", "uint32", "0xf4 only" },
    { "iosize", "uint32", "accepted: the port is 32 bits wide" },
    { NULL, NULL, NULL },
};

static const QomProperty memory_backend_props[] = {
    { "size", "size", "bytes of guest RAM" },
    { "share", "bool", "MAP_SHARED" },
    { "prealloc", "bool", "populate every page at creation" },
    { "thp", "bool", "transparent huge pages (frostvm's; default on)" },
    { "dump", "bool", "include the memory in core dumps (default on)" },
    { "merge", "bool", "accepted for QEMU command lines" },
    { NULL, NULL, NULL },
};

static const QomProperty memory_backend_memfd_props[] = {
    { "size", "size", "bytes of guest RAM" },
    { "share", "bool", "MAP_SHARED (default on)" },
    { "prealloc", "bool", "populate every page at creation" },
    { "hugetlb", "bool", "MFD_HUGETLB" },
    { "hugetlbsize", "size", "the huge page size" },
    { "dump", "bool", "include the memory in core dumps (default on)" },
    { "merge", "bool", "accepted for QEMU command lines" },
    { NULL, NULL, NULL },
};

static const QomProperty memory_backend_file_props[] = {
    { "size", "size", "bytes of guest RAM" },
    { "mem-path", "str", "a file, or a folder to create one in" },
    { "share", "bool", "MAP_SHARED" },
    { "prealloc", "bool", "populate every page at creation" },
    { "dump", "bool", "include the memory in core dumps (default on)" },
    { "merge", "bool", "accepted for QEMU command lines" },
    { NULL, NULL, NULL },
};

static const QomProperty secret_props[] = {
    { "format", "QCryptoSecretFormat", "raw or base64" },
    { "data", "str", "the secret" },
    { "file", "str", "a file holding the secret" },
    { NULL, NULL, NULL },
};

static const QomProperty machine_props[] = {
    { "accel", "str", "accelerators to try in order, a:b:c" },
    { "memory-backend", "link<memory-backend>", "the -object that backs RAM" },
    { "thp", "bool", "transparent huge pages for RAM (frostvm's; default on)" },
    { "dump-guest-core", "bool", "include RAM in core dumps (default on)" },
    { "usb", "bool", "off only: no USB controller" },
    { "acpi", "OnOffAuto", "off only: no ACPI" },
    { "vmport", "OnOffAuto", "off only: no VMware port" },
    { NULL, NULL, NULL },
};

static const QomProperty no_props[] = {
    { NULL, NULL, NULL },
};

static const QomType qom_types[] = {
    { "device", NULL, true, false, no_props },
    { "isa-serial", "device", false, true, isa_serial_props },
    { "isa-debug-exit", "device", false, true, isa_debug_exit_props },
    { "accel", NULL, true, false, no_props },
    { "kvm-accel", "accel", false, false, no_props },
    /* -accel tcg is accepted and falls through to the next -accel: frostvm has no TCG. */
    { "tcg-accel", "accel", false, false, no_props },
    { "test-accel", "accel", false, false, no_props },
    { "memory-backend", NULL, true, false, no_props },
    { "memory-backend-ram", "memory-backend", false, false, memory_backend_props },
    { "memory-backend-memfd", "memory-backend", false, false, memory_backend_memfd_props },
    { "memory-backend-file", "memory-backend", false, false, memory_backend_file_props },
    { "secret", NULL, false, false, secret_props },
    { "machine", NULL, true, false, no_props },
    { "pc-i440fx-7.2-machine", "machine", false, false, machine_props },
    { "none-machine", "machine", false, false, machine_props },
};

static const QomType *qom_type_find(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(qom_types); i++) {
        if (!strcmp(qom_types[i].name, name)) {
            return &qom_types[i];
        }
    }
    return NULL;
}

/* Whether @t is @ancestor or derives from it. */
static bool qom_type_implements(const QomType *t, const char *ancestor)
{
    while (t) {
        if (!strcmp(t->name, ancestor)) {
            return true;
        }
        t = t->parent ? qom_type_find(t->parent) : NULL;
    }
    return false;
}

static JsonNode *qmp_qom_list_types(Machine *m, JsonObject *args, GError **errp)
{
    const char *implements = json_object_get_string_member_with_default(args, "implements",
                                                                        NULL);
    bool abstract = json_object_get_boolean_member_with_default(args, "abstract", FALSE);
    JsonArray *list = json_array_new();

    for (size_t i = 0; i < G_N_ELEMENTS(qom_types); i++) {
        const QomType *t = &qom_types[i];
        JsonObject *info;

        if ((t->abstract && !abstract) || (implements && !qom_type_implements(t, implements))) {
            continue;
        }
        info = json_object_new();
        json_object_set_string_member(info, "name", t->name);
        if (t->abstract) {
            json_object_set_boolean_member(info, "abstract", true);
        }
        if (t->parent) {
            json_object_set_string_member(info, "parent", t->parent);
        }
        json_array_add_object_element(list, info);
    }
    return qmp_array_node(list);
}

static void add_property(JsonArray *list, const char *name, const char *type,
                         const char *description)
{
    JsonObject *p = json_object_new();

    json_object_set_string_member(p, "name", name);
    json_object_set_string_member(p, "type", type);
    if (description) {
        json_object_set_string_member(p, "description", description);
    }
    json_array_add_object_element(list, p);
}

static JsonNode *type_properties(const QomType *t)
{
    JsonArray *list = json_array_new();

    for (const QomProperty *p = t->props; p->name; p++) {
        add_property(list, p->name, p->type, p->description);
    }
    return qmp_array_node(list);
}

static JsonNode *qmp_device_list_properties(Machine *m, JsonObject *args, GError **errp)
{
    const char *name = json_object_get_string_member(args, "typename");
    const QomType *t = qom_type_find(name);

    if (!t || !t->device || t->abstract) {
        g_set_error(errp, FROSTVM_ERROR, FROSTVM_ERROR_DEVICE_NOT_FOUND,
                    "Device '%s' not found", name);
        return NULL;
    }
    return type_properties(t);
}

static JsonNode *qmp_qom_list_properties(Machine *m, JsonObject *args, GError **errp)
{
    const char *name = json_object_get_string_member(args, "typename");
    const QomType *t = qom_type_find(name);

    if (!t) {
        g_set_error(errp, FROSTVM_ERROR, FROSTVM_ERROR_DEVICE_NOT_FOUND,
                    "Class '%s' not found", name);
        return NULL;
    }
    return type_properties(t);
}

/* The vCPU number in "/machine/unattached/device[N]", or -1. */
static int vcpu_index_of(Machine *m, const char *path)
{
    for (unsigned i = 0; machine_has_guest(m) && i < m->smp; i++) {
        g_autofree char *p = monitor_vcpu_qom_path(i);

        if (!strcmp(p, path)) {
            return (int)i;
        }
    }
    return -1;
}

static JsonNode *qmp_qom_list(Machine *m, JsonObject *args, GError **errp)
{
    const char *path = json_object_get_string_member(args, "path");
    const char *serial_id = m->config ? m->config->serial_device_id : NULL;
    g_autofree char *serial_path = serial_id ? g_strdup_printf("/machine/peripheral/%s",
                                                               serial_id) : NULL;
    JsonArray *list = json_array_new();

    add_property(list, "type", "string", NULL);
    if (!strcmp(path, "/")) {
        add_property(list, "machine", m->config && m->config->machine_none ?
                     "child<none-machine>" : "child<pc-i440fx-7.2-machine>", NULL);
    } else if (!strcmp(path, "/machine")) {
        add_property(list, "peripheral", "child<container>", NULL);
        add_property(list, "unattached", "child<container>", NULL);
    } else if (!strcmp(path, "/machine/peripheral")) {
        if (serial_id) {
            add_property(list, serial_id, "child<isa-serial>", NULL);
        }
    } else if (!strcmp(path, "/machine/unattached")) {
        for (unsigned i = 0; machine_has_guest(m) && i < m->smp; i++) {
            g_autofree char *name = g_strdup_printf("device[%u]", i);

            add_property(list, name, "child<x86_64-cpu>", NULL);
        }
    } else if (serial_path && !strcmp(path, serial_path)) {
        add_property(list, "chardev", "str", NULL);
    } else if (vcpu_index_of(m, path) < 0) {
        json_array_unref(list);
        g_set_error(errp, FROSTVM_ERROR, FROSTVM_ERROR_DEVICE_NOT_FOUND,
                    "Device '%s' not found", path);
        return NULL;
    }
    return qmp_array_node(list);
}

const QmpCommand monitor_qmp_qom_commands[] = {
    { "qom-list-types", qmp_qom_list_types },
    { "device-list-properties", qmp_device_list_properties },
    { "qom-list-properties", qmp_qom_list_properties },
    { "qom-list", qmp_qom_list },
    { NULL, NULL },
};
