/* SPDX-License-Identifier: GPL-2.0-or-later */
/* JSON text for QMP: QEMU-style serialization of replies and events. */
#include "monitor/monitor-internal.h"

#include <math.h>
#include <string.h>


static void append_string(GString *out, const char *s)
{
    g_string_append_c(out, '"');
    while (*s) {
        gunichar c = g_utf8_get_char_validated(s, -1);
        const char *next;

        if ((guchar)s[0] == 0xC0 && (guchar)s[1] == 0x80) {
            /* U+0000 as the parser keeps it (modified UTF-8, as QEMU). */
            c = 0;
            next = s + 2;
        } else if (c == (gunichar)-1 || c == (gunichar)-2) {
            /* Not UTF-8: say so rather than pass invalid bytes to clients. */
            c = 0xFFFD;
            next = s + 1;
        } else {
            next = g_utf8_next_char(s);
        }
        switch (c) {
        case '"':
            g_string_append(out, "\\\"");
            break;
        case '\\':
            g_string_append(out, "\\\\");
            break;
        case '\b':
            g_string_append(out, "\\b");
            break;
        case '\f':
            g_string_append(out, "\\f");
            break;
        case '\n':
            g_string_append(out, "\\n");
            break;
        case '\r':
            g_string_append(out, "\\r");
            break;
        case '\t':
            g_string_append(out, "\\t");
            break;
        default:
            if (c >= 0x20 && c < 0x7f) {
                g_string_append_c(out, (char)c);
            } else if (c > 0xFFFF) {
                c -= 0x10000;
                g_string_append_printf(out, "\\u%04x\\u%04x", 0xD800 + (c >> 10),
                                       0xDC00 + (c & 0x3FF));
            } else {
                g_string_append_printf(out, "\\u%04x", c);
            }
        }
        s = next;
    }
    g_string_append_c(out, '"');
}

static void append_double(GString *out, double d)
{
    char buf[G_ASCII_DTOSTR_BUF_SIZE];

    if (!isfinite(d)) {
        g_string_append(out, "null");
        return;
    }
    g_ascii_dtostr(buf, sizeof(buf), d);
    g_string_append(out, buf);
    /* Keep it a floating-point number for clients that care about the type. */
    if (!strpbrk(buf, ".eE")) {
        g_string_append(out, ".0");
    }
}

static void append_value(GString *out, JsonNode *node)
{
    switch (json_node_get_value_type(node)) {
    case G_TYPE_BOOLEAN:
        g_string_append(out, json_node_get_boolean(node) ? "true" : "false");
        break;
    case G_TYPE_INT64:
        g_string_append_printf(out, "%" G_GINT64_FORMAT, json_node_get_int(node));
        break;
    case G_TYPE_DOUBLE:
        append_double(out, json_node_get_double(node));
        break;
    case G_TYPE_STRING:
        append_string(out, json_node_get_string(node));
        break;
    default:
        g_string_append(out, "null");
    }
}

void qmp_json_append(GString *out, JsonNode *node)
{
    if (!node) {
        g_string_append(out, "null");
        return;
    }
    switch (JSON_NODE_TYPE(node)) {
    case JSON_NODE_NULL:
        g_string_append(out, "null");
        break;
    case JSON_NODE_VALUE:
        append_value(out, node);
        break;
    case JSON_NODE_ARRAY: {
        JsonArray *array = json_node_get_array(node);

        g_string_append_c(out, '[');
        for (guint i = 0; i < json_array_get_length(array); i++) {
            if (i) {
                g_string_append(out, ", ");
            }
            qmp_json_append(out, json_array_get_element(array, i));
        }
        g_string_append_c(out, ']');
        break;
    }
    case JSON_NODE_OBJECT: {
        JsonObject *obj = json_node_get_object(node);
        g_autoptr(GList) names = json_object_get_members(obj);

        g_string_append_c(out, '{');
        for (GList *l = names; l; l = l->next) {
            if (l != names) {
                g_string_append(out, ", ");
            }
            append_string(out, l->data);
            g_string_append(out, ": ");
            qmp_json_append(out, json_object_get_member(obj, l->data));
        }
        g_string_append_c(out, '}');
        break;
    }
    }
}

char *qmp_json_to_string(JsonNode *node)
{
    GString *out = g_string_new(NULL);

    qmp_json_append(out, node);
    return g_string_free(out, FALSE);
}

char *qmp_json_object_to_string(JsonObject *obj)
{
    g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), obj);

    return qmp_json_to_string(node);
}

char *qmp_json_reply_to_string(JsonObject *reply, const char *id, gsize id_len)
{
    GString *out = g_string_new(NULL);
    g_autoptr(GList) names = json_object_get_members(reply);
    bool first = true;

    g_string_append_c(out, '{');
    for (GList *l = names; l; l = l->next) {
        if (!strcmp(l->data, "id")) {
            continue;
        }
        g_string_append(out, first ? "" : ", ");
        first = false;
        append_string(out, l->data);
        g_string_append(out, ": ");
        qmp_json_append(out, json_object_get_member(reply, l->data));
    }
    if (id) {
        gsize at;

        g_string_append(out, first ? "\"id\": " : ", \"id\": ");
        at = out->len;
        g_string_append_len(out, id, (gssize)id_len);
        /* Raw control characters cannot be inside its strings: these are whitespace. */
        for (gsize i = at; i < out->len; i++) {
            if (out->str[i] == '\n' || out->str[i] == '\r') {
                out->str[i] = ' ';
            }
        }
    }
    g_string_append_c(out, '}');
    return g_string_free(out, FALSE);
}
