/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The QMP commands of introspect.json: the command schema in QEMU's
 * introspection format, generated from the schema this server checks
 * arguments against, and the command line's options and their keys.
 */
#include "monitor/monitor-internal.h"

#include <string.h>

#include "system/cmdline.h"
#include "system/machine.h"
#include "util/error.h"

/* The object type of commands and events without arguments or a return value. */
#define SCHEMA_EMPTY_OBJECT "q_empty"

typedef struct SchemaBuilder {
    JsonArray *entries;
    GHashTable *arrays;      /* "[T]" names already added */
} SchemaBuilder;

static JsonObject *schema_entry(SchemaBuilder *b, const char *name, const char *meta_type)
{
    JsonObject *e = json_object_new();

    json_object_set_string_member(e, "name", name);
    json_object_set_string_member(e, "meta-type", meta_type);
    json_array_add_object_element(b->entries, e);
    return e;
}

/* The introspection name of a TYPE expression; arrays get an entry of their own. */
static char *schema_type_name(SchemaBuilder *b, JsonNode *type)
{
    g_autofree char *element = NULL;
    char *name;

    if (!JSON_NODE_HOLDS_ARRAY(type)) {
        return g_strdup(json_node_get_string(type));
    }
    element = schema_type_name(b, json_array_get_element(json_node_get_array(type), 0));
    name = g_strdup_printf("[%s]", element);
    if (!g_hash_table_contains(b->arrays, name)) {
        JsonObject *e = schema_entry(b, name, "array");

        json_object_set_string_member(e, "element-type", element);
        g_hash_table_add(b->arrays, g_strdup(name));
    }
    return name;
}

/* An object type named @name with @members (QapiMember *); optional ones get "default": null. */
static void schema_add_object(SchemaBuilder *b, const char *name, GPtrArray *members)
{
    JsonArray *list = json_array_new();
    JsonObject *e;

    for (guint i = 0; members && i < members->len; i++) {
        QapiMember *member = g_ptr_array_index(members, i);
        JsonObject *m = json_object_new();
        g_autofree char *type = schema_type_name(b, member->type);

        json_object_set_string_member(m, "name", member->name);
        json_object_set_string_member(m, "type", type);
        if (member->optional) {
            json_object_set_null_member(m, "default");
        }
        json_array_add_object_element(list, m);
    }
    e = schema_entry(b, name, "object");
    json_object_set_array_member(e, "members", list);
}

/* Arguments as an implicit object type "q_obj_NAME-arg", as QEMU names them. */
static char *schema_add_arguments(SchemaBuilder *b, const char *owner, GPtrArray *args)
{
    char *name;

    if (!args || !args->len) {
        return g_strdup(SCHEMA_EMPTY_OBJECT);
    }
    name = g_strdup_printf("q_obj_%s-arg", owner);
    schema_add_object(b, name, args);
    return name;
}

static void schema_add_builtins(SchemaBuilder *b)
{
    static const struct {
        const char *name;
        const char *json_type;
    } builtins[] = {
        { "str", "string" }, { "int", "int" }, { "uint64", "int" }, { "size", "int" },
        { "uint8", "int" },
        { "bool", "boolean" }, { "number", "number" }, { "any", "value" },
        { "null", "null" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(builtins); i++) {
        JsonObject *e = schema_entry(b, builtins[i].name, "builtin");

        json_object_set_string_member(e, "json-type", builtins[i].json_type);
    }
    schema_add_object(b, SCHEMA_EMPTY_OBJECT, NULL);
}

static void schema_add_types(SchemaBuilder *b, QapiSchema *schema)
{
    GPtrArray *types = qapi_schema_types(schema);

    for (guint i = 0; i < types->len; i++) {
        QapiType *t = g_ptr_array_index(types, i);

        if (t->kind == QAPI_KIND_ENUM) {
            JsonObject *e = schema_entry(b, t->name, "enum");
            JsonArray *values = json_array_new();
            JsonArray *members = json_array_new();

            for (char **v = t->values; *v; v++) {
                JsonObject *m = json_object_new();

                json_array_add_string_element(values, *v);
                json_object_set_string_member(m, "name", *v);
                json_array_add_object_element(members, m);
            }
            json_object_set_array_member(e, "values", values);
            json_object_set_array_member(e, "members", members);
        } else {
            schema_add_object(b, t->name, t->members);
        }
    }
}

/*
 * Only registered commands are listed: the schema may describe a command this
 * binary does not serve, and a manager must not be told it exists.
 */
static void schema_add_commands(SchemaBuilder *b, Monitor *mon)
{
    GPtrArray *commands = qapi_schema_commands(mon->schema);

    for (guint i = 0; i < commands->len; i++) {
        QapiCommand *cmd = g_ptr_array_index(commands, i);
        g_autofree char *arg_type = NULL;
        g_autofree char *ret_type = NULL;
        JsonObject *e;

        if (!g_hash_table_contains(mon->qmp_commands, cmd->name)) {
            continue;
        }
        arg_type = schema_add_arguments(b, cmd->name, cmd->arguments);
        ret_type = cmd->returns ? schema_type_name(b, cmd->returns)
                                : g_strdup(SCHEMA_EMPTY_OBJECT);
        e = schema_entry(b, cmd->name, "command");
        json_object_set_string_member(e, "arg-type", arg_type);
        json_object_set_string_member(e, "ret-type", ret_type);
        json_object_set_boolean_member(e, "allow-oob", false);
    }
}

static void schema_add_events(SchemaBuilder *b, QapiSchema *schema)
{
    GPtrArray *events = qapi_schema_events(schema);

    for (guint i = 0; i < events->len; i++) {
        QapiEvent *ev = g_ptr_array_index(events, i);
        g_autofree char *arg_type = schema_add_arguments(b, ev->name, ev->data);
        JsonObject *e = schema_entry(b, ev->name, "event");

        json_object_set_string_member(e, "arg-type", arg_type);
    }
}

static JsonNode *qmp_query_qmp_schema(Machine *m, JsonObject *args, GError **errp)
{
    SchemaBuilder b = {
        .entries = json_array_new(),
        .arrays = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
    };

    schema_add_builtins(&b);
    schema_add_types(&b, m->monitor->schema);
    schema_add_commands(&b, m->monitor);
    schema_add_events(&b, m->monitor->schema);
    g_hash_table_unref(b.arrays);
    return qmp_array_node(b.entries);
}

static JsonNode *qmp_query_command_line_options(Machine *m, JsonObject *args,
                                                GError **errp)
{
    const char *only = json_object_get_string_member_with_default(args, "option", NULL);
    JsonArray *list = json_array_new();
    size_t n;
    const CmdlineOptionInfo *infos = cmdline_option_infos(&n);

    for (size_t i = 0; i < n; i++) {
        g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
        JsonArray *params;
        JsonObject *opt;

        if (only && strcmp(only, infos[i].name)) {
            continue;
        }
        params = json_array_new();
        for (size_t k = 0; k < G_N_ELEMENTS(infos[i].keys) && infos[i].keys[k]; k++) {
            for (const char *const *key = infos[i].keys[k]; *key; key++) {
                JsonObject *p;

                if (!g_hash_table_add(seen, (gpointer)*key)) {
                    continue;
                }
                p = json_object_new();
                json_object_set_string_member(p, "name", *key);
                json_object_set_string_member(p, "type", "string");
                json_array_add_object_element(params, p);
            }
        }
        opt = json_object_new();
        json_object_set_string_member(opt, "option", infos[i].name);
        json_object_set_array_member(opt, "parameters", params);
        json_array_add_object_element(list, opt);
    }
    if (only && json_array_get_length(list) == 0) {
        json_array_unref(list);
        error_setg(errp, "invalid option name: %s", only);
        return NULL;
    }
    return qmp_array_node(list);
}

const QmpCommand monitor_qmp_introspect_commands[] = {
    { "query-qmp-schema", qmp_query_qmp_schema },
    { "query-command-line-options", qmp_query_command_line_options },
    { NULL, NULL },
};
