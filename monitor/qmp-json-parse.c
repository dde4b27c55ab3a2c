/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A strict RFC 8259 JSON parser for QMP input, keeping what json-glib loses: wide integers, NUL, the id's text. */
#include "monitor/monitor-internal.h"

#include <errno.h>
#include <string.h>

#include "util/error.h"

/* A stray token longer than this is shown by its end, where the bad byte is. */
#define STRAY_SHOWN_MAX 64

typedef struct Parser {
    const char *text;
    gsize len;
    gsize pos;
    unsigned depth;
    QmpJsonText *out;
    GError **errp;
    bool failed;
} Parser;

static bool parse_value(Parser *p, JsonNode **value);

/* The first error wins: later ones are consequences of it. */
static bool parse_fail(Parser *p, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static bool parse_fail(Parser *p, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    if (p->failed) {
        return false;
    }
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_setg(p->errp, "JSON parse error, %s", msg);
    p->failed = true;
    return false;
}

/*
 * A lexical error, worded as QEMU's lexer words it: the token from its first
 * byte up to and including the byte that cannot continue it.
 */
static bool parse_stray(Parser *p, gsize start)
{
    gsize end = MIN(p->pos + 1, p->len);
    gsize n = end - start;

    if (n > STRAY_SHOWN_MAX) {
        return parse_fail(p, "stray '...%.*s'", (int)(STRAY_SHOWN_MAX - 3),
                          p->text + end - (STRAY_SHOWN_MAX - 3));
    }
    return parse_fail(p, "stray '%.*s'", (int)n, p->text + start);
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* What may follow a number or keyword: whitespace, a structural character or the end. */
static bool at_delimiter(Parser *p)
{
    char c;

    if (p->pos >= p->len) {
        return true;
    }
    c = p->text[p->pos];
    return is_ws(c) || c == ',' || c == ':' || c == '[' || c == ']' || c == '{' ||
           c == '}' || c == '"';
}

static void skip_ws(Parser *p)
{
    while (p->pos < p->len && is_ws(p->text[p->pos])) {
        p->pos++;
    }
}

static int peek(Parser *p)
{
    return p->pos < p->len ? (unsigned char)p->text[p->pos] : -1;
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static gsize skip_digits(Parser *p)
{
    gsize start = p->pos;

    while (is_digit(peek(p))) {
        p->pos++;
    }
    return p->pos - start;
}

/*
 * number = [ minus ] int [ frac ] [ exp ] and nothing else: no leading zeros
 * (010), no hex (0x10), no bare fraction (.5, 1.), no sign +.
 * Integers become int64 nodes; those above INT64_MAX up to UINT64_MAX become
 * int64 nodes holding their uint64 bits, listed in out->wide_ints; beyond
 * both, and numbers with a fraction or exponent, become doubles (QEMU's
 * order: int64, uint64, double).
 */
static bool parse_number(Parser *p, JsonNode **value)
{
    gsize start = p->pos;
    bool integer = true;
    g_autofree char *token = NULL;
    char *end;

    if (peek(p) == '-') {
        p->pos++;
    }
    if (peek(p) == '0') {
        p->pos++;
    } else if (!skip_digits(p)) {
        return parse_stray(p, start);
    }
    if (peek(p) == '.') {
        integer = false;
        p->pos++;
        if (!skip_digits(p)) {
            return parse_stray(p, start);
        }
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        integer = false;
        p->pos++;
        if (peek(p) == '+' || peek(p) == '-') {
            p->pos++;
        }
        if (!skip_digits(p)) {
            return parse_stray(p, start);
        }
    }
    if (!at_delimiter(p)) {
        return parse_stray(p, start);
    }
    token = g_strndup(p->text + start, p->pos - start);
    *value = json_node_alloc();
    if (integer) {
        gint64 i;
        guint64 u;

        errno = 0;
        i = g_ascii_strtoll(token, &end, 10);
        if (errno == 0) {
            json_node_init_int(*value, i);
            return true;
        }
        if (token[0] != '-') {
            errno = 0;
            u = g_ascii_strtoull(token, &end, 10);
            if (errno == 0) {
                json_node_init_int(*value, (gint64)u);
                if (!p->out->wide_ints) {
                    p->out->wide_ints = g_hash_table_new(g_direct_hash, g_direct_equal);
                }
                g_hash_table_add(p->out->wide_ints, *value);
                return true;
            }
        }
    }
    /* Out of range is not an error here: 1e400 is infinity, as in QEMU. */
    json_node_init_double(*value, g_ascii_strtod(token, &end));
    return true;
}

static int hex4(const char *s)
{
    int v = 0;

    for (int i = 0; i < 4; i++) {
        int d = g_ascii_xdigit_value(s[i]);

        if (d < 0) {
            return -1;
        }
        v = v * 16 + d;
    }
    return v;
}

/* Append a code point as UTF-8, U+0000 as the two bytes C0 80 (modified UTF-8). */
static void append_code_point(GString *s, gunichar c)
{
    if (c == 0) {
        g_string_append_len(s, "\xC0\x80", 2);
    } else {
        g_string_append_unichar(s, c);
    }
}

/* \uXXXX, or a surrogate pair \uD83D\uDE00; p->pos is at the 'u'. */
static bool parse_unicode_escape(Parser *p, GString *s)
{
    gsize beg = p->pos - 1;
    int c = p->pos + 5 <= p->len ? hex4(p->text + p->pos + 1) : -1;

    p->pos += MIN(5, p->len - p->pos);
    if (c >= 0xD800 && c <= 0xDBFF && p->pos + 6 <= p->len &&
        p->text[p->pos] == '\\' && p->text[p->pos + 1] == 'u') {
        int low = hex4(p->text + p->pos + 2);

        if (low >= 0xDC00 && low <= 0xDFFF) {
            c = 0x10000 + ((c - 0xD800) << 10) + (low - 0xDC00);
            p->pos += 6;
        }
    }
    if (c < 0 || (c >= 0xD800 && c <= 0xDFFF)) {
        return parse_fail(p, "%.*s is not a valid Unicode character",
                          (int)(p->pos - beg), p->text + beg);
    }
    append_code_point(s, (gunichar)c);
    return true;
}

/*
 * string = quotation-mark *char quotation-mark. Raw control characters are
 * a lexical error (QEMU's lexer refuses them too); other bytes must be UTF-8
 * (RFC 3629: no overlong forms, so no raw C0 80, no surrogates). \u0000
 * becomes C0 80 as in QEMU, so C strings carry it and the serializer writes
 * it back as \u0000.
 */
static bool parse_string(Parser *p, char **result)
{
    gsize start = p->pos;
    g_autoptr(GString) s = g_string_new(NULL);

    p->pos++;   /* the opening quote */
    for (;;) {
        int c = peek(p);

        if (c < 0) {
            return parse_fail(p, "premature EOI");
        }
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20) {
            return parse_stray(p, start);
        }
        if (c == '\\') {
            static const char escapes[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
            const char *e;

            p->pos++;
            c = peek(p);
            if (c == 'u') {
                if (!parse_unicode_escape(p, s)) {
                    return false;
                }
                continue;
            }
            e = c > 0 ? strchr(escapes, c) : NULL;
            /* Only the even positions are escape letters; odd ones are values. */
            if (!e || ((e - escapes) & 1)) {
                return parse_fail(p, "invalid escape sequence in string");
            }
            g_string_append_c(s, e[1]);
            p->pos++;
            continue;
        }
        if (c < 0x80) {
            g_string_append_c(s, (char)c);
            p->pos++;
        } else {
            const char *at = p->text + p->pos;
            gunichar u = g_utf8_get_char_validated(at, (gssize)(p->len - p->pos));

            if (u == (gunichar)-1 || u == (gunichar)-2) {
                return parse_fail(p, "invalid UTF-8 sequence in string");
            }
            g_string_append_len(s, at, g_utf8_next_char(at) - at);
            p->pos = g_utf8_next_char(at) - p->text;
        }
    }
    *result = g_string_free(g_steal_pointer(&s), FALSE);
    return true;
}

/* QEMU's lexer takes [a-z]+ as a keyword and leaves judging it to the parser. */
static bool parse_keyword(Parser *p, JsonNode **value)
{
    gsize start = p->pos;
    gsize n;

    while (peek(p) >= 'a' && peek(p) <= 'z') {
        p->pos++;
    }
    if (!at_delimiter(p)) {
        return parse_stray(p, start);
    }
    n = p->pos - start;
    if (n == 4 && !memcmp(p->text + start, "true", 4)) {
        *value = json_node_init_boolean(json_node_alloc(), TRUE);
    } else if (n == 5 && !memcmp(p->text + start, "false", 5)) {
        *value = json_node_init_boolean(json_node_alloc(), FALSE);
    } else if (n == 4 && !memcmp(p->text + start, "null", 4)) {
        *value = json_node_init_null(json_node_alloc());
    } else {
        return parse_fail(p, "invalid keyword '%.*s'", (int)n, p->text + start);
    }
    return true;
}

static bool enter(Parser *p)
{
    if (++p->depth > QMP_NESTING_MAX) {
        return parse_fail(p, "nesting too deep");
    }
    p->pos++;   /* the bracket */
    skip_ws(p);
    return true;
}

static bool parse_array(Parser *p, JsonNode **value)
{
    g_autoptr(JsonArray) array = json_array_new();

    if (!enter(p)) {
        return false;
    }
    if (peek(p) == ']') {
        p->pos++;
    } else {
        for (;;) {
            JsonNode *element = NULL;

            if (!parse_value(p, &element)) {
                return false;
            }
            json_array_add_element(array, element);
            skip_ws(p);
            if (peek(p) == ']') {
                p->pos++;
                break;
            }
            if (peek(p) < 0) {
                return parse_fail(p, "premature EOI");
            }
            if (peek(p) != ',') {
                return parse_fail(p, "expected separator in list");
            }
            p->pos++;
        }
    }
    p->depth--;
    *value = json_node_init_array(json_node_alloc(), array);
    return true;
}

/* One "key": value pair; the top-level "id" member's text is remembered. */
static bool parse_member(Parser *p, JsonObject *object)
{
    g_autofree char *key = NULL;
    JsonNode *member = NULL;
    gsize value_start;

    if (peek(p) < 0) {
        return parse_fail(p, "premature EOI");
    }
    if (peek(p) != '"') {
        return parse_fail(p, "key is not a string in object");
    }
    if (!parse_string(p, &key)) {
        return false;
    }
    skip_ws(p);
    if (peek(p) != ':') {
        return parse_fail(p, peek(p) < 0 ? "premature EOI" : "missing : in object pair");
    }
    p->pos++;
    skip_ws(p);
    value_start = p->pos;
    if (!parse_value(p, &member)) {
        return false;
    }
    if (json_object_has_member(object, key)) {
        json_node_unref(member);
        return parse_fail(p, "duplicate key");
    }
    if (p->depth == 1 && !strcmp(key, "id")) {
        p->out->id = p->text + value_start;
        p->out->id_len = p->pos - value_start;
    }
    json_object_set_member(object, key, member);
    return true;
}

static bool parse_object(Parser *p, JsonNode **value)
{
    g_autoptr(JsonObject) object = json_object_new();

    if (!enter(p)) {
        return false;
    }
    if (peek(p) == '}') {
        p->pos++;
    } else {
        for (;;) {
            if (!parse_member(p, object)) {
                return false;
            }
            skip_ws(p);
            if (peek(p) == '}') {
                p->pos++;
                break;
            }
            if (peek(p) < 0) {
                return parse_fail(p, "premature EOI");
            }
            if (peek(p) != ',') {
                return parse_fail(p, "expected separator in dict");
            }
            p->pos++;
            skip_ws(p);
        }
    }
    p->depth--;
    *value = json_node_init_object(json_node_alloc(), object);
    return true;
}

static bool parse_value(Parser *p, JsonNode **value)
{
    int c;

    skip_ws(p);
    c = peek(p);
    if (c < 0) {
        return parse_fail(p, "premature EOI");
    }
    if (c == '{') {
        return parse_object(p, value);
    }
    if (c == '[') {
        return parse_array(p, value);
    }
    if (c == '"') {
        char *s = NULL;

        if (!parse_string(p, &s)) {
            return false;
        }
        *value = json_node_init_string(json_node_alloc(), s);
        g_free(s);
        return true;
    }
    if (c == '-' || is_digit(c)) {
        return parse_number(p, value);
    }
    if (c >= 'a' && c <= 'z') {
        return parse_keyword(p, value);
    }
    if (c == '}' || c == ']' || c == ',' || c == ':') {
        return parse_fail(p, "expecting value");
    }
    return parse_stray(p, p->pos);
}

bool qmp_json_parse_text(const char *text, gsize len, QmpJsonText *out, GError **errp)
{
    Parser p = { .text = text, .len = len, .out = out, .errp = errp };
    JsonNode *root = NULL;

    memset(out, 0, sizeof(*out));
    skip_ws(&p);
    if (p.pos == len) {
        error_setg(errp, "JSON parse error, expecting value");
        return false;
    }
    if (parse_value(&p, &root)) {
        skip_ws(&p);
        if (p.pos < len) {
            /* One text is one value: "{} {}" is two texts, never one. */
            parse_fail(&p, "expected end of input after the value");
        }
    }
    if (p.failed) {
        if (root) {
            json_node_unref(root);
        }
        qmp_json_text_clear(out);
        return false;
    }
    out->root = root;
    return true;
}

void qmp_json_text_clear(QmpJsonText *t)
{
    g_clear_pointer(&t->root, json_node_unref);
    g_clear_pointer(&t->wide_ints, g_hash_table_unref);
    t->id = NULL;
    t->id_len = 0;
}

JsonNode *qmp_json_parse(const char *text, gssize len, GError **errp)
{
    QmpJsonText t;

    if (!qmp_json_parse_text(text, len < 0 ? strlen(text) : (gsize)len, &t, errp)) {
        return NULL;
    }
    g_clear_pointer(&t.wide_ints, g_hash_table_unref);
    return t.root;
}
