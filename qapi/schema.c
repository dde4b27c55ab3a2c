/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Loads the command schema files into lookup tables and checks their type references. */
#include "qapi/schema.h"

#include <string.h>

#include "qapi/schema-builtin.h"
#include "util/error.h"

struct QapiSchema {
    GPtrArray *commands;        /* QapiCommand *, owned */
    GPtrArray *events;          /* QapiEvent *, owned */
    GPtrArray *types;           /* QapiType *, owned */
    GHashTable *command_index;  /* name -> QapiCommand * */
    GHashTable *event_index;
    GHashTable *type_index;
};

static const char *const builtin_type_names[] = {
    "str", "int", "uint64", "size", "uint8", "bool", "number", "any",
};

static void qapi_member_free(gpointer p)
{
    QapiMember *member = p;

    g_free(member->name);
    g_free(member->doc);
    if (member->type) {
        json_node_unref(member->type);
    }
    g_free(member);
}

static void qapi_command_free(gpointer p)
{
    QapiCommand *cmd = p;

    g_free(cmd->name);
    g_free(cmd->doc);
    g_free(cmd->area);
    g_ptr_array_unref(cmd->arguments);
    if (cmd->returns) {
        json_node_unref(cmd->returns);
    }
    g_free(cmd->hmp);
    g_strfreev(cmd->example);
    g_free(cmd);
}

static void qapi_event_free(gpointer p)
{
    QapiEvent *event = p;

    g_free(event->name);
    g_free(event->doc);
    g_free(event->area);
    g_ptr_array_unref(event->data);
    g_free(event);
}

static void qapi_type_free(gpointer p)
{
    QapiType *type = p;

    g_free(type->name);
    g_free(type->doc);
    if (type->members) {
        g_ptr_array_unref(type->members);
    }
    g_strfreev(type->values);
    g_free(type);
}

QapiSchema *qapi_schema_new(void)
{
    QapiSchema *s = g_new0(QapiSchema, 1);

    s->commands = g_ptr_array_new_with_free_func(qapi_command_free);
    s->events = g_ptr_array_new_with_free_func(qapi_event_free);
    s->types = g_ptr_array_new_with_free_func(qapi_type_free);
    s->command_index = g_hash_table_new(g_str_hash, g_str_equal);
    s->event_index = g_hash_table_new(g_str_hash, g_str_equal);
    s->type_index = g_hash_table_new(g_str_hash, g_str_equal);
    return s;
}

void qapi_schema_free(QapiSchema *s)
{
    if (!s) {
        return;
    }
    g_hash_table_unref(s->command_index);
    g_hash_table_unref(s->event_index);
    g_hash_table_unref(s->type_index);
    g_ptr_array_unref(s->commands);
    g_ptr_array_unref(s->events);
    g_ptr_array_unref(s->types);
    g_free(s);
}

/* Syntax only: a non-empty string, or an array holding exactly one TYPE. */
static bool type_expr_is_wellformed(JsonNode *type)
{
    if (JSON_NODE_HOLDS_VALUE(type) &&
        json_node_get_value_type(type) == G_TYPE_STRING) {
        return json_node_get_string(type)[0] != '\0';
    }
    if (JSON_NODE_HOLDS_ARRAY(type)) {
        JsonArray *array = json_node_get_array(type);
        return json_array_get_length(array) == 1 &&
               type_expr_is_wellformed(json_array_get_element(array, 0));
    }
    return false;
}

/* A string member of a definition, or NULL; error if present with another type. */
static bool get_optional_string(JsonObject *def, const char *key, const char *what,
                                char **out, GError **errp)
{
    JsonNode *node = json_object_get_member(def, key);

    *out = NULL;
    if (!node) {
        return true;
    }
    if (!JSON_NODE_HOLDS_VALUE(node) ||
        json_node_get_value_type(node) != G_TYPE_STRING) {
        error_setg(errp, "%s: '%s' must be a string", what, key);
        return false;
    }
    *out = g_strdup(json_node_get_string(node));
    return true;
}

/* Reject keys a definition does not know, so typos in the schema surface. */
static bool check_keys(JsonObject *def, const char *const *allowed, const char *what,
                       GError **errp)
{
    g_autoptr(GList) keys = json_object_get_members(def);

    for (GList *l = keys; l; l = l->next) {
        if (!g_strv_contains(allowed, l->data)) {
            error_setg(errp, "%s: unknown key '%s'", what, (const char *)l->data);
            return false;
        }
    }
    return true;
}

static GPtrArray *parse_members(JsonNode *node, const char *what, GError **errp)
{
    static const char *const member_keys[] = { "type", "doc", NULL };
    g_autoptr(GPtrArray) members = g_ptr_array_new_with_free_func(qapi_member_free);
    g_autoptr(GList) names = NULL;
    JsonObject *obj;

    if (!node) {
        return g_steal_pointer(&members);
    }
    if (!JSON_NODE_HOLDS_OBJECT(node)) {
        error_setg(errp, "%s: members must be a JSON object", what);
        return NULL;
    }
    obj = json_node_get_object(node);
    names = json_object_get_members(obj);
    for (GList *l = names; l; l = l->next) {
        const char *key = l->data;
        JsonNode *value = json_object_get_member(obj, key);
        QapiMember *member = g_new0(QapiMember, 1);

        g_ptr_array_add(members, member);
        member->optional = key[0] == '*';
        member->name = g_strdup(key + (member->optional ? 1 : 0));
        if (member->name[0] == '\0') {
            error_setg(errp, "%s: empty member name", what);
            return NULL;
        }
        if (JSON_NODE_HOLDS_OBJECT(value)) {
            g_autofree char *sub = g_strdup_printf("%s: member '%s'", what,
                                                   member->name);
            JsonObject *desc = json_node_get_object(value);

            if (!check_keys(desc, member_keys, sub, errp) ||
                !get_optional_string(desc, "doc", sub, &member->doc, errp)) {
                return NULL;
            }
            value = json_object_get_member(desc, "type");
            if (!value) {
                error_setg(errp, "%s lacks 'type'", sub);
                return NULL;
            }
        }
        if (!type_expr_is_wellformed(value)) {
            error_setg(errp, "%s: member '%s' has a malformed type", what,
                       member->name);
            return NULL;
        }
        member->type = json_node_copy(value);
    }
    return g_steal_pointer(&members);
}

static bool name_is_free(QapiSchema *s, const char *name, const char *what,
                         GError **errp)
{
    if (g_hash_table_contains(s->command_index, name) ||
        g_hash_table_contains(s->event_index, name) ||
        g_hash_table_contains(s->type_index, name)) {
        error_setg(errp, "%s: the name '%s' is defined twice", what, name);
        return false;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(builtin_type_names); i++) {
        if (!strcmp(name, builtin_type_names[i])) {
            error_setg(errp, "%s: '%s' is a built-in type name", what, name);
            return false;
        }
    }
    return true;
}

/* Every definition is an object with a string "name"; returns it or NULL. */
static JsonObject *definition_object(JsonNode *node, const char *area,
                                     const char *section, guint index,
                                     const char **name, GError **errp)
{
    JsonObject *def;
    JsonNode *name_node;

    if (!JSON_NODE_HOLDS_OBJECT(node)) {
        error_setg(errp, "%s.json: %s[%u] is not an object", area, section, index);
        return NULL;
    }
    def = json_node_get_object(node);
    name_node = json_object_get_member(def, "name");
    if (!name_node || !JSON_NODE_HOLDS_VALUE(name_node) ||
        json_node_get_value_type(name_node) != G_TYPE_STRING ||
        !json_node_get_string(name_node)[0]) {
        error_setg(errp, "%s.json: %s[%u] lacks a string 'name'", area, section,
                   index);
        return NULL;
    }
    *name = json_node_get_string(name_node);
    return def;
}

static GStrv parse_string_array(JsonNode *node, const char *what, GError **errp)
{
    g_autoptr(GPtrArray) strings = g_ptr_array_new_with_free_func(g_free);
    JsonArray *array;

    if (!JSON_NODE_HOLDS_ARRAY(node)) {
        error_setg(errp, "%s must be an array of strings", what);
        return NULL;
    }
    array = json_node_get_array(node);
    for (guint i = 0; i < json_array_get_length(array); i++) {
        JsonNode *element = json_array_get_element(array, i);

        if (!JSON_NODE_HOLDS_VALUE(element) ||
            json_node_get_value_type(element) != G_TYPE_STRING) {
            error_setg(errp, "%s must be an array of strings", what);
            return NULL;
        }
        g_ptr_array_add(strings, g_strdup(json_node_get_string(element)));
    }
    g_ptr_array_set_free_func(strings, NULL);
    g_ptr_array_add(strings, NULL);
    return (GStrv)g_ptr_array_free(g_steal_pointer(&strings), FALSE);
}

static bool add_type(QapiSchema *s, const char *area, JsonNode *node, guint index,
                     GError **errp)
{
    static const char *const keys[] = { "name", "doc", "members", "enum", NULL };
    g_autofree char *what = NULL;
    const char *name;
    JsonObject *def = definition_object(node, area, "types", index, &name, errp);
    QapiType *type;

    if (!def) {
        return false;
    }
    what = g_strdup_printf("%s.json: type '%s'", area, name);
    if (!check_keys(def, keys, what, errp) || !name_is_free(s, name, what, errp)) {
        return false;
    }
    if (json_object_has_member(def, "members") == json_object_has_member(def, "enum")) {
        error_setg(errp, "%s needs exactly one of 'members' and 'enum'", what);
        return false;
    }
    type = g_new0(QapiType, 1);
    g_ptr_array_add(s->types, type);
    type->name = g_strdup(name);
    if (!get_optional_string(def, "doc", what, &type->doc, errp)) {
        return false;
    }
    if (json_object_has_member(def, "enum")) {
        type->kind = QAPI_KIND_ENUM;
        type->values = parse_string_array(json_object_get_member(def, "enum"),
                                          what, errp);
        if (!type->values) {
            return false;
        }
    } else {
        type->kind = QAPI_KIND_STRUCT;
        type->members = parse_members(json_object_get_member(def, "members"),
                                      what, errp);
        if (!type->members) {
            return false;
        }
    }
    g_hash_table_insert(s->type_index, type->name, type);
    return true;
}

static bool add_command(QapiSchema *s, const char *area, JsonNode *node,
                        guint index, GError **errp)
{
    static const char *const keys[] = {
        "name", "doc", "arguments", "returns", "hmp", "example", NULL,
    };
    g_autofree char *what = NULL;
    const char *name;
    JsonObject *def = definition_object(node, area, "commands", index, &name, errp);
    JsonNode *returns, *example;
    QapiCommand *cmd;

    if (!def) {
        return false;
    }
    what = g_strdup_printf("%s.json: command '%s'", area, name);
    if (!check_keys(def, keys, what, errp) || !name_is_free(s, name, what, errp)) {
        return false;
    }
    cmd = g_new0(QapiCommand, 1);
    cmd->name = g_strdup(name);
    cmd->area = g_strdup(area);
    cmd->arguments = parse_members(json_object_get_member(def, "arguments"), what,
                                   errp);
    if (!cmd->arguments) {
        cmd->arguments = g_ptr_array_new();
        qapi_command_free(cmd);
        return false;
    }
    g_ptr_array_add(s->commands, cmd);
    if (!get_optional_string(def, "doc", what, &cmd->doc, errp) ||
        !get_optional_string(def, "hmp", what, &cmd->hmp, errp)) {
        return false;
    }
    returns = json_object_get_member(def, "returns");
    if (returns) {
        if (!type_expr_is_wellformed(returns)) {
            error_setg(errp, "%s: 'returns' is a malformed type", what);
            return false;
        }
        cmd->returns = json_node_copy(returns);
    }
    example = json_object_get_member(def, "example");
    if (example) {
        cmd->example = parse_string_array(example, what, errp);
        if (!cmd->example) {
            return false;
        }
    }
    g_hash_table_insert(s->command_index, cmd->name, cmd);
    return true;
}

static bool add_event(QapiSchema *s, const char *area, JsonNode *node, guint index,
                      GError **errp)
{
    static const char *const keys[] = { "name", "doc", "data", NULL };
    g_autofree char *what = NULL;
    const char *name;
    JsonObject *def = definition_object(node, area, "events", index, &name, errp);
    QapiEvent *event;

    if (!def) {
        return false;
    }
    what = g_strdup_printf("%s.json: event '%s'", area, name);
    if (!check_keys(def, keys, what, errp) || !name_is_free(s, name, what, errp)) {
        return false;
    }
    event = g_new0(QapiEvent, 1);
    event->name = g_strdup(name);
    event->area = g_strdup(area);
    event->data = parse_members(json_object_get_member(def, "data"), what, errp);
    if (!event->data) {
        event->data = g_ptr_array_new();
        qapi_event_free(event);
        return false;
    }
    g_ptr_array_add(s->events, event);
    if (!get_optional_string(def, "doc", what, &event->doc, errp)) {
        return false;
    }
    g_hash_table_insert(s->event_index, event->name, event);
    return true;
}

typedef bool (*AddDefinition)(QapiSchema *s, const char *area, JsonNode *node,
                              guint index, GError **errp);

static bool add_section(QapiSchema *s, const char *area, JsonObject *root,
                        const char *section, AddDefinition add, GError **errp)
{
    JsonNode *node = json_object_get_member(root, section);
    JsonArray *array;

    if (!node) {
        return true;
    }
    if (!JSON_NODE_HOLDS_ARRAY(node)) {
        error_setg(errp, "%s.json: '%s' must be an array", area, section);
        return false;
    }
    array = json_node_get_array(node);
    for (guint i = 0; i < json_array_get_length(array); i++) {
        if (!add(s, area, json_array_get_element(array, i), i, errp)) {
            return false;
        }
    }
    return true;
}

bool qapi_schema_add_json(QapiSchema *s, const char *area, const char *json,
                          gssize len, GError **errp)
{
    static const char *const keys[] = { "doc", "types", "commands", "events", NULL };
    g_autoptr(JsonParser) parser = json_parser_new_immutable();
    g_autoptr(GError) local_err = NULL;
    g_autofree char *what = g_strdup_printf("%s.json", area);
    JsonNode *root;

    if (!json_parser_load_from_data(parser, json, len, &local_err)) {
        error_setg(errp, "%s: %s", what, local_err->message);
        return false;
    }
    root = json_parser_get_root(parser);
    if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
        error_setg(errp, "%s: the file must hold one JSON object", what);
        return false;
    }
    if (!check_keys(json_node_get_object(root), keys, what, errp)) {
        return false;
    }
    /* Types first: commands and events of the same file may use them. */
    return add_section(s, area, json_node_get_object(root), "types", add_type, errp) &&
           add_section(s, area, json_node_get_object(root), "commands", add_command,
                       errp) &&
           add_section(s, area, json_node_get_object(root), "events", add_event, errp);
}

bool qapi_schema_resolve(QapiSchema *s, JsonNode *type, QapiKind *kind,
                         const QapiType **declared)
{
    static const struct {
        const char *name;
        QapiKind kind;
    } builtins[] = {
        { "str", QAPI_KIND_STR }, { "int", QAPI_KIND_INT },
        { "uint64", QAPI_KIND_UINT64 }, { "size", QAPI_KIND_UINT64 },
        { "uint8", QAPI_KIND_UINT8 },
        { "bool", QAPI_KIND_BOOL }, { "number", QAPI_KIND_NUMBER },
        { "any", QAPI_KIND_ANY },
    };
    const QapiType *found;
    const char *name;

    *declared = NULL;
    if (JSON_NODE_HOLDS_ARRAY(type)) {
        *kind = QAPI_KIND_ARRAY;
        return true;
    }
    if (!JSON_NODE_HOLDS_VALUE(type) ||
        json_node_get_value_type(type) != G_TYPE_STRING) {
        return false;
    }
    name = json_node_get_string(type);
    for (size_t i = 0; i < G_N_ELEMENTS(builtins); i++) {
        if (!strcmp(name, builtins[i].name)) {
            *kind = builtins[i].kind;
            return true;
        }
    }
    found = qapi_schema_find_type(s, name);
    if (!found) {
        return false;
    }
    *kind = found->kind;
    *declared = found;
    return true;
}

static bool check_type_expr(QapiSchema *s, JsonNode *type, const char *what,
                            GError **errp)
{
    const QapiType *declared;
    QapiKind kind;

    if (!qapi_schema_resolve(s, type, &kind, &declared)) {
        g_autofree char *text = qapi_type_to_string(type);
        error_setg(errp, "%s uses the unknown type '%s'", what, text);
        return false;
    }
    if (kind == QAPI_KIND_ARRAY) {
        return check_type_expr(s, json_array_get_element(json_node_get_array(type), 0),
                               what, errp);
    }
    return true;
}

static bool check_members(QapiSchema *s, GPtrArray *members, const char *what,
                          GError **errp)
{
    for (guint i = 0; i < members->len; i++) {
        QapiMember *member = g_ptr_array_index(members, i);
        g_autofree char *sub = g_strdup_printf("%s member '%s'", what, member->name);

        if (!check_type_expr(s, member->type, sub, errp)) {
            return false;
        }
    }
    return true;
}

bool qapi_schema_check(QapiSchema *s, GError **errp)
{
    for (guint i = 0; i < s->types->len; i++) {
        QapiType *type = g_ptr_array_index(s->types, i);
        g_autofree char *what = g_strdup_printf("type '%s'", type->name);

        if (type->members && !check_members(s, type->members, what, errp)) {
            return false;
        }
    }
    for (guint i = 0; i < s->commands->len; i++) {
        QapiCommand *cmd = g_ptr_array_index(s->commands, i);
        g_autofree char *what = g_strdup_printf("%s.json: command '%s'", cmd->area,
                                                cmd->name);

        if (!check_members(s, cmd->arguments, what, errp) ||
            (cmd->returns && !check_type_expr(s, cmd->returns, what, errp))) {
            return false;
        }
    }
    for (guint i = 0; i < s->events->len; i++) {
        QapiEvent *event = g_ptr_array_index(s->events, i);
        g_autofree char *what = g_strdup_printf("%s.json: event '%s'", event->area,
                                                event->name);

        if (!check_members(s, event->data, what, errp)) {
            return false;
        }
    }
    return true;
}

GStrv qapi_schema_builtin_files(void)
{
    GPtrArray *names = g_ptr_array_new();

    for (const QapiSchemaFile *f = qapi_schema_builtin; f->name; f++) {
        g_ptr_array_add(names, g_strdup(f->name));
    }
    g_ptr_array_add(names, NULL);
    return (GStrv)g_ptr_array_free(names, FALSE);
}

const char *qapi_schema_builtin_text(const char *file)
{
    for (const QapiSchemaFile *f = qapi_schema_builtin; f->name; f++) {
        if (!strcmp(f->name, file)) {
            return f->text;
        }
    }
    return NULL;
}

QapiSchema *qapi_schema_load_builtin(GError **errp)
{
    g_autoptr(QapiSchema) s = qapi_schema_new();
    g_auto(GStrv) files = qapi_schema_builtin_files();

    for (char **f = files; *f; f++) {
        g_autofree char *area = NULL;

        if (!g_str_has_suffix(*f, ".json")) {
            continue;
        }
        area = g_strndup(*f, strlen(*f) - strlen(".json"));
        if (!qapi_schema_add_json(s, area, qapi_schema_builtin_text(*f), -1, errp)) {
            return NULL;
        }
    }
    if (!qapi_schema_check(s, errp)) {
        return NULL;
    }
    return g_steal_pointer(&s);
}

const QapiCommand *qapi_schema_find_command(QapiSchema *s, const char *name)
{
    return g_hash_table_lookup(s->command_index, name);
}

const QapiEvent *qapi_schema_find_event(QapiSchema *s, const char *name)
{
    return g_hash_table_lookup(s->event_index, name);
}

const QapiType *qapi_schema_find_type(QapiSchema *s, const char *name)
{
    return g_hash_table_lookup(s->type_index, name);
}

GPtrArray *qapi_schema_commands(QapiSchema *s)
{
    return s->commands;
}

GPtrArray *qapi_schema_types(QapiSchema *s)
{
    return s->types;
}

GPtrArray *qapi_schema_events(QapiSchema *s)
{
    return s->events;
}

char *qapi_type_to_string(JsonNode *type)
{
    if (JSON_NODE_HOLDS_ARRAY(type)) {
        JsonArray *array = json_node_get_array(type);
        g_autofree char *element = NULL;

        if (json_array_get_length(array) != 1) {
            return g_strdup("?");
        }
        element = qapi_type_to_string(json_array_get_element(array, 0));
        return g_strdup_printf("[%s]", element);
    }
    if (JSON_NODE_HOLDS_VALUE(type) &&
        json_node_get_value_type(type) == G_TYPE_STRING) {
        return g_strdup(json_node_get_string(type));
    }
    return g_strdup("?");
}
