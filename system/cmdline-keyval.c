/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Option arguments: sizes, booleans, QEMU's comma lists and libvirt's JSON objects. */
#include "system/cmdline-internal.h"

#include <errno.h>
#include <string.h>
#include <json-glib/json-glib.h>

#include "util/error.h"

bool cmdline_parse_size(const char *s, uint64_t default_unit, uint64_t *out,
                        GError **errp)
{
    char *end;
    uint64_t v, unit = default_unit;

    if (!s || !g_ascii_isdigit(*s)) {
        error_setg(errp, "'%s' is not a size (expected a number with an optional "
                   "K, M, G or T suffix)", s ? s : "");
        return false;
    }
    errno = 0;
    v = g_ascii_strtoull(s, &end, 0);
    if (errno) {
        error_setg(errp, "size '%s' is out of range", s);
        return false;
    }
    switch (g_ascii_toupper(*end)) {
    case '\0': break;
    case 'B': unit = 1; end++; break;
    case 'K': unit = 1ULL << 10; end++; break;
    case 'M': unit = 1ULL << 20; end++; break;
    case 'G': unit = 1ULL << 30; end++; break;
    case 'T': unit = 1ULL << 40; end++; break;
    default:
        error_setg(errp, "size '%s' has an unknown suffix '%s'", s, end);
        return false;
    }
    if (*end && !(g_ascii_toupper(*end) == 'B' && !end[1]) &&
        !(g_ascii_toupper(*end) == 'I' && g_ascii_toupper(end[1]) == 'B' && !end[2])) {
        error_setg(errp, "size '%s' has trailing characters '%s'", s, end);
        return false;
    }
    if (v > UINT64_MAX / unit) {
        error_setg(errp, "size '%s' is out of range", s);
        return false;
    }
    *out = v * unit;
    return true;
}

bool cmdline_parse_bool(const char *key, const char *s, bool *out, GError **errp)
{
    if (!g_strcmp0(s, "on") || !g_strcmp0(s, "yes") || !g_strcmp0(s, "true")) {
        *out = true;
        return true;
    }
    if (!g_strcmp0(s, "off") || !g_strcmp0(s, "no") || !g_strcmp0(s, "false")) {
        *out = false;
        return true;
    }
    error_setg(errp, "Parameter '%s' expects 'on' or 'off', not '%s'", key, s ? s : "");
    return false;
}

GHashTable *cmdline_parse_keyval(const char *s, const char *implied_key, GError **errp)
{
    g_autoptr(GHashTable) h = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    const char *p = s;
    bool first = true;

    while (*p) {
        g_autoptr(GString) item = g_string_new(NULL);
        char *eq;

        /* ",," stands for a literal comma, as in QEMU. */
        while (*p) {
            if (*p == ',') {
                if (p[1] == ',') {
                    g_string_append_c(item, ',');
                    p += 2;
                    continue;
                }
                p++;
                break;
            }
            g_string_append_c(item, *p++);
        }
        if (item->len == 0) {
            error_setg(errp, "'%s': empty element in option list", s);
            return NULL;
        }
        eq = strchr(item->str, '=');
        if (!eq) {
            if (first && implied_key) {
                g_hash_table_replace(h, g_strdup(implied_key), g_strdup(item->str));
            } else {
                /* A bare flag ("server", "nowait") means on, as in old QEMU syntax. */
                g_hash_table_replace(h, g_strdup(item->str), g_strdup("on"));
            }
        } else {
            *eq = '\0';
            if (!*item->str) {
                error_setg(errp, "'%s': missing key before '='", s);
                return NULL;
            }
            g_hash_table_replace(h, g_strdup(item->str), g_strdup(eq + 1));
        }
        first = false;
    }
    return g_steal_pointer(&h);
}

/* A JSON object of scalars as the table a comma list would give. */
static GHashTable *cmdline_parse_json_opts(const char *opt, const char *arg, GError **errp)
{
    g_autoptr(GHashTable) h = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_autoptr(JsonParser) parser = json_parser_new_immutable();
    g_autoptr(GError) err = NULL;
    g_autoptr(GList) names = NULL;
    JsonNode *root;
    JsonObject *obj;

    if (!json_parser_load_from_data(parser, arg, -1, &err)) {
        error_setg(errp, "%s: '%s' is not valid JSON: %s", opt, arg, err->message);
        return NULL;
    }
    root = json_parser_get_root(parser);
    if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
        error_setg(errp, "%s: a JSON argument must be an object", opt);
        return NULL;
    }
    obj = json_node_get_object(root);
    names = json_object_get_members(obj);
    for (GList *l = names; l; l = l->next) {
        JsonNode *v = json_object_get_member(obj, l->data);
        char *text;

        if (!JSON_NODE_HOLDS_VALUE(v)) {
            error_setg(errp, "%s: member '%s' must be a string, number or boolean "
                       "(frostvm takes no nested properties)", opt, (char *)l->data);
            return NULL;
        }
        switch (json_node_get_value_type(v)) {
        case G_TYPE_BOOLEAN:
            text = g_strdup(json_node_get_boolean(v) ? "on" : "off");
            break;
        case G_TYPE_INT64:
            text = g_strdup_printf("%" G_GINT64_FORMAT, json_node_get_int(v));
            break;
        case G_TYPE_STRING:
            text = g_strdup(json_node_get_string(v));
            break;
        default:
            error_setg(errp, "%s: member '%s' must be a string, integer or boolean",
                       opt, (char *)l->data);
            return NULL;
        }
        g_hash_table_replace(h, g_strdup(l->data), text);
    }
    return g_steal_pointer(&h);
}

GHashTable *cmdline_parse_opts(const char *opt, const char *arg, const char *implied_key,
                               GError **errp)
{
    if (arg[0] == '{') {
        return cmdline_parse_json_opts(opt, arg, errp);
    }
    return cmdline_parse_keyval(arg, implied_key, errp);
}

bool cmdline_check_keys(const char *opt, GHashTable *h, const char *const *allowed,
                        GError **errp)
{
    GHashTableIter it;
    gpointer key;

    g_hash_table_iter_init(&it, h);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        if (!g_strv_contains(allowed, key)) {
            error_setg(errp, "%s: unknown parameter '%s'", opt, (char *)key);
            return false;
        }
    }
    return true;
}
