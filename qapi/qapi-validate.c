/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Checks JSON arguments and event data against schema types, reporting errors as QEMU words them. */
#include "qapi/validate.h"

#include <string.h>

#include "util/error.h"

static bool wrong_type(const char *path, const char *expected, GError **errp)
{
    error_setg(errp, "Invalid parameter type for '%s', expected: %s", path, expected);
    return false;
}

static bool value_has_type(JsonNode *value, GType type)
{
    return JSON_NODE_HOLDS_VALUE(value) && json_node_get_value_type(value) == type;
}

/* What a check needs besides the value: the schema and the parser's wide integers. */
typedef struct Check {
    QapiSchema *schema;
    GHashTable *wide_ints;   /* int64 nodes holding a uint64 above INT64_MAX, or NULL */
} Check;

static bool check_members(const Check *c, GPtrArray *members, JsonObject *obj,
                          const char *prefix, GError **errp);

static bool is_wide(const Check *c, JsonNode *value)
{
    return c->wide_ints && g_hash_table_contains(c->wide_ints, value);
}

static bool check_enum(const QapiType *type, JsonNode *value, const char *path,
                       GError **errp)
{
    const char *leaf;
    const char *text;

    if (!value_has_type(value, G_TYPE_STRING)) {
        return wrong_type(path, "string", errp);
    }
    text = json_node_get_string(value);
    if (g_strv_contains((const char *const *)type->values, text)) {
        return true;
    }
    /* QEMU names only the innermost member here, not the whole path. */
    leaf = strrchr(path, '.');
    leaf = leaf ? leaf + 1 : path;
    error_setg(errp, "Parameter '%s' does not accept value '%s'", leaf, text);
    return false;
}

static bool check_value(const Check *c, JsonNode *type, JsonNode *value,
                        const char *path, GError **errp)
{
    const QapiType *declared;
    QapiKind kind;

    if (!qapi_schema_resolve(c->schema, type, &kind, &declared)) {
        g_autofree char *text = qapi_type_to_string(type);
        error_setg(errp, "Parameter '%s' has the unknown schema type '%s'", path, text);
        return false;
    }
    switch (kind) {
    case QAPI_KIND_STR:
        return value_has_type(value, G_TYPE_STRING) || wrong_type(path, "string", errp);
    case QAPI_KIND_INT:
        /* QEMU's words for a fraction, a string or a number beyond int64 alike. */
        if (!value_has_type(value, G_TYPE_INT64) || is_wide(c, value)) {
            return wrong_type(path, "integer", errp);
        }
        return true;
    case QAPI_KIND_UINT64:
    case QAPI_KIND_UINT8: {
        /*
         * Any integer from -2^63 to 2^64-1: the parser stores those above
         * INT64_MAX as their uint64 bits, and QEMU takes negative numbers as
         * their two's complement "for backward compatibility". Beyond that
         * range the parser made a double, which QEMU refuses with these words.
         * A uint8 is read so too, then refused above 255 with the C type's
         * name and, as QEMU, only the member's own name.
         */
        const char *leaf = strrchr(path, '.');

        if (!value_has_type(value, G_TYPE_INT64)) {
            error_setg(errp, "Parameter '%s' expects uint64", path);
            return false;
        }
        if (kind == QAPI_KIND_UINT8 && (guint64)json_node_get_int(value) > G_MAXUINT8) {
            error_setg(errp, "Parameter '%s' expects uint8_t", leaf ? leaf + 1 : path);
            return false;
        }
        return true;
    }
    case QAPI_KIND_BOOL:
        return value_has_type(value, G_TYPE_BOOLEAN) || wrong_type(path, "boolean", errp);
    case QAPI_KIND_NUMBER:
        if (is_wide(c, value)) {
            /* Handlers read numbers as doubles: give them the positive value. */
            json_node_set_double(value, (double)(guint64)json_node_get_int(value));
            g_hash_table_remove(c->wide_ints, value);
        }
        return value_has_type(value, G_TYPE_INT64) ||
               value_has_type(value, G_TYPE_DOUBLE) || wrong_type(path, "number", errp);
    case QAPI_KIND_ANY:
        return true;
    case QAPI_KIND_ARRAY: {
        JsonNode *element_type = json_array_get_element(json_node_get_array(type), 0);
        JsonArray *array;

        if (!JSON_NODE_HOLDS_ARRAY(value)) {
            return wrong_type(path, "array", errp);
        }
        array = json_node_get_array(value);
        for (guint i = 0; i < json_array_get_length(array); i++) {
            g_autofree char *sub = g_strdup_printf("%s[%u]", path, i);

            if (!check_value(c, element_type, json_array_get_element(array, i),
                             sub, errp)) {
                return false;
            }
        }
        return true;
    }
    case QAPI_KIND_STRUCT: {
        g_autofree char *prefix = g_strconcat(path, ".", NULL);

        if (!JSON_NODE_HOLDS_OBJECT(value)) {
            return wrong_type(path, "object", errp);
        }
        return check_members(c, declared->members, json_node_get_object(value),
                             prefix, errp);
    }
    case QAPI_KIND_ENUM:
        return check_enum(declared, value, path, errp);
    }
    g_assert_not_reached();
}

bool qapi_check_value(QapiSchema *s, JsonNode *type, JsonNode *value,
                      const char *path, GError **errp)
{
    Check c = { .schema = s };

    return check_value(&c, type, value, path, errp);
}

static bool schema_has_member(GPtrArray *members, const char *name)
{
    for (guint i = 0; i < members->len; i++) {
        QapiMember *member = g_ptr_array_index(members, i);

        if (!strcmp(member->name, name)) {
            return true;
        }
    }
    return false;
}

/*
 * Members are visited in schema order, then leftovers are reported, so the
 * first error is the one QEMU would report for the same input.
 */
static bool check_members(const Check *c, GPtrArray *members, JsonObject *obj,
                          const char *prefix, GError **errp)
{
    g_autoptr(GList) names = NULL;

    for (guint i = 0; i < members->len; i++) {
        QapiMember *member = g_ptr_array_index(members, i);
        g_autofree char *path = g_strconcat(prefix, member->name, NULL);
        JsonNode *value = obj ? json_object_get_member(obj, member->name) : NULL;

        if (!value) {
            if (!member->optional) {
                error_setg(errp, "Parameter '%s' is missing", path);
                return false;
            }
            continue;
        }
        if (!check_value(c, member->type, value, path, errp)) {
            return false;
        }
    }
    if (!obj) {
        return true;
    }
    names = json_object_get_members(obj);
    for (GList *l = names; l; l = l->next) {
        if (!schema_has_member(members, l->data)) {
            error_setg(errp, "Parameter '%s%s' is unexpected", prefix,
                       (const char *)l->data);
            return false;
        }
    }
    return true;
}

bool qapi_check_arguments_wide(QapiSchema *s, const char *command, JsonObject *args,
                               GHashTable *wide_ints, GError **errp)
{
    const QapiCommand *cmd = qapi_schema_find_command(s, command);
    Check c = { .schema = s, .wide_ints = wide_ints };

    if (!cmd) {
        g_set_error(errp, FROSTVM_ERROR, FROSTVM_ERROR_COMMAND_NOT_FOUND,
                    "The command %s has not been found", command);
        return false;
    }
    return check_members(&c, cmd->arguments, args, "", errp);
}

bool qapi_check_arguments(QapiSchema *s, const char *command, JsonObject *args,
                          GError **errp)
{
    return qapi_check_arguments_wide(s, command, args, NULL, errp);
}

bool qapi_check_event(QapiSchema *s, const char *event, JsonObject *data,
                      GError **errp)
{
    const QapiEvent *def = qapi_schema_find_event(s, event);
    Check c = { .schema = s };

    if (!def) {
        error_setg(errp, "The event %s is not in the schema", event);
        return false;
    }
    return check_members(&c, def->data, data, "", errp);
}
