/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests of the strict QMP JSON parser: RFC 8259 exactly, wide integers, NUL, the id's text, range checks. */
#include "monitor/monitor-internal.h"

#include <string.h>

#include "qapi/validate.h"

typedef struct RejectCase {
    const char *text;
    const char *error;      /* exact message */
} RejectCase;

/* Not JSON: each refused, with QEMU's wording (lexical errors as "stray"). */
static const RejectCase reject_cases[] = {
    { "010", "JSON parse error, stray '01'" },
    { "[010]", "JSON parse error, stray '01'" },
    { "0x10", "JSON parse error, stray '0x'" },
    { "{\"id\": 0x10}", "JSON parse error, stray '0x'" },
    { ".5", "JSON parse error, stray '.'" },
    { "[.5]", "JSON parse error, stray '.'" },
    { "1.", "JSON parse error, stray '1.'" },
    { "[1.]", "JSON parse error, stray '1.]'" },
    { "-", "JSON parse error, stray '-'" },
    { "+1", "JSON parse error, stray '+'" },
    { "-01", "JSON parse error, stray '-01'" },
    { "1e", "JSON parse error, stray '1e'" },
    { "1e+", "JSON parse error, stray '1e+'" },
    { "01.5", "JSON parse error, stray '01'" },
    { "Infinity", "JSON parse error, stray 'I'" },
    { "NaN", "JSON parse error, stray 'N'" },
    { "nan", "JSON parse error, invalid keyword 'nan'" },
    { "True", "JSON parse error, stray 'T'" },
    { "nul", "JSON parse error, invalid keyword 'nul'" },
    { "null1", "JSON parse error, stray 'null1'" },
    { "'single'", "JSON parse error, stray '''" },
    { "{'a': 1}", "JSON parse error, key is not a string in object" },
    { "{a: 1}", "JSON parse error, key is not a string in object" },
    { "{\"a\" 1}", "JSON parse error, missing : in object pair" },
    { "{\"a\": 1 \"b\": 2}", "JSON parse error, expected separator in dict" },
    { "{\"a\": 1,}", "JSON parse error, key is not a string in object" },
    { "[1 2]", "JSON parse error, expected separator in list" },
    { "[1,]", "JSON parse error, expecting value" },
    { "[,1]", "JSON parse error, expecting value" },
    { "{\"a\": 1, \"a\": 2}", "JSON parse error, duplicate key" },
    { "{\"x\": {\"a\": 1, \"a\": 2}}", "JSON parse error, duplicate key" },
    { "{\"a\": 1", "JSON parse error, premature EOI" },
    { "[", "JSON parse error, premature EOI" },
    { "\"abc", "JSON parse error, premature EOI" },
    { "\"a\tb\"", "JSON parse error, stray '\"a\t'" },
    { "\"a\nb\"", "JSON parse error, stray '\"a\n'" },
    { "\"\\x41\"", "JSON parse error, invalid escape sequence in string" },
    { "\"\\'\"", "JSON parse error, invalid escape sequence in string" },
    { "\"\\u12\"", "JSON parse error, \\u12\" is not a valid Unicode character" },
    { "\"\\uD800\"", "JSON parse error, \\uD800 is not a valid Unicode character" },
    { "\"\\uDC00\"", "JSON parse error, \\uDC00 is not a valid Unicode character" },
    { "\"\xff\"", "JSON parse error, invalid UTF-8 sequence in string" },
    { "\"\xc3\"", "JSON parse error, invalid UTF-8 sequence in string" },
    /* Modified UTF-8's NUL is overlong UTF-8: not accepted raw, only as \u0000. */
    { "\"\xc0\x80\"", "JSON parse error, invalid UTF-8 sequence in string" },
    { "\"\xed\xa0\x80\"", "JSON parse error, invalid UTF-8 sequence in string" },
    { "\xef\xbb\xbf{}", "JSON parse error, stray '\xef'" },
    { "{} {}", "JSON parse error, expected end of input after the value" },
    { "", "JSON parse error, expecting value" },
    { " \n", "JSON parse error, expecting value" },
    { "}", "JSON parse error, expecting value" },
    { "garbage", "JSON parse error, invalid keyword 'garbage'" },
    { "@", "JSON parse error, stray '@'" },
    { "/* c */ {}", "JSON parse error, stray '/'" },
};

static void test_rejects(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(reject_cases); i++) {
        g_autoptr(GError) err = NULL;
        QmpJsonText t;

        if (qmp_json_parse_text(reject_cases[i].text, strlen(reject_cases[i].text), &t,
                                &err)) {
            g_error("accepted as JSON: %s", reject_cases[i].text);
        }
        g_assert_nonnull(err);
        g_assert_cmpstr(err->message, ==, reject_cases[i].error);
        g_assert_null(t.root);
    }
}

/* A token too long to show whole is shown by its end, where the bad byte is. */
static void test_long_stray(void)
{
    g_autoptr(GString) text = g_string_new("\"");
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) node = NULL;

    for (int i = 0; i < 1000; i++) {
        g_string_append_c(text, 'a');
    }
    g_string_append(text, "\x01\"");
    node = qmp_json_parse(text->str, (gssize)text->len, &err);
    g_assert_null(node);
    g_assert_true(g_str_has_prefix(err->message, "JSON parse error, stray '...aaa"));
    g_assert_true(g_str_has_suffix(err->message, "a\x01'"));
    g_assert_cmpuint(strlen(err->message), <, 100);
}

typedef struct AcceptCase {
    const char *text;
    const char *serialized;    /* as qmp_json_to_string writes it back */
} AcceptCase;

/* Valid JSON, including the corners json-glib and QEMU 7.2's lexer disagree on. */
static const AcceptCase accept_cases[] = {
    { "0", "0" },
    { "-0", "0" },
    { "0.5", "0.5" },
    { "-1.5e3", "-1500.0" },
    { "1E+2", "100.0" },
    { "0e5", "0.0" },
    { "9223372036854775807", "9223372036854775807" },
    { "-9223372036854775808", "-9223372036854775808" },
    { "\"\\/\\b\\f\\n\\r\\t\\\"\\\\\"", "\"/\\b\\f\\n\\r\\t\\\"\\\\\"" },
    { "\"\\ud83d\\ude00\"", "\"\\ud83d\\ude00\"" },
    { "\"\xf0\x9f\x98\x80\"", "\"\\ud83d\\ude00\"" },
    { "\"\\uffff\"", "\"\\uffff\"" },
    { " \t\r\n[ true , false , null ] \n", "[true, false, null]" },
    { "{\"a\": {}, \"b\": []}", "{\"a\": {}, \"b\": []}" },
    { "\"a\\u0000b\"", "\"a\\u0000b\"" },
    { "{\"k\\u0000\": 1}", "{\"k\\u0000\": 1}" },
};

static void test_accepts(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(accept_cases); i++) {
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonNode) node = qmp_json_parse(accept_cases[i].text, -1, &err);
        g_autofree char *out = NULL;

        g_assert_no_error(err);
        out = qmp_json_to_string(node);
        g_assert_cmpstr(out, ==, accept_cases[i].serialized);
    }
}

/* QEMU's order: int64 if it fits, else uint64, else double. */
static void test_integer_classes(void)
{
    static const struct {
        const char *text;
        GType type;
        bool wide;
        guint64 bits;
    } cases[] = {
        { "9223372036854775807", G_TYPE_INT64, false, 9223372036854775807ull },
        { "9223372036854775808", G_TYPE_INT64, true, 9223372036854775808ull },
        { "18446744073709551615", G_TYPE_INT64, true, 18446744073709551615ull },
        { "-1", G_TYPE_INT64, false, 18446744073709551615ull },
        { "18446744073709551616", G_TYPE_DOUBLE, false, 0 },
        { "-9223372036854775809", G_TYPE_DOUBLE, false, 0 },
        { "1e400", G_TYPE_DOUBLE, false, 0 },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) err = NULL;
        QmpJsonText t;

        g_assert_true(qmp_json_parse_text(cases[i].text, strlen(cases[i].text), &t, &err));
        g_assert_cmpint(json_node_get_value_type(t.root), ==, cases[i].type);
        g_assert_cmpint(t.wide_ints && g_hash_table_contains(t.wide_ints, t.root), ==,
                        cases[i].wide);
        if (cases[i].type == G_TYPE_INT64) {
            g_assert_cmpuint((guint64)json_node_get_int(t.root), ==, cases[i].bits);
        }
        qmp_json_text_clear(&t);
    }
}

/* \u0000 is kept (as C0 80) instead of ending the string, as QEMU keeps it. */
static void test_nul(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) node = qmp_json_parse("\"a\\u0000b\"", -1, &err);

    g_assert_no_error(err);
    g_assert_cmpstr(json_node_get_string(node), ==, "a\xc0\x80" "b");
}

/* The top-level id's text, whatever it is; nested "id" members do not count. */
static void test_id_text(void)
{
    static const char *const ids[] = {
        "18446744073709551616", "9223372036854775808", "1e400", "\"a\\u0000b\"",
        "-0", "1.50", "\"\\u00e9\"", "[1 ,2]", "{\"id\": 1}", "null",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(ids); i++) {
        g_autofree char *text = g_strdup_printf(
            "{\"arguments\": {\"id\": 5}, \"id\":  %s , \"execute\": \"x\"}", ids[i]);
        g_autoptr(GError) err = NULL;
        QmpJsonText t;

        g_assert_true(qmp_json_parse_text(text, strlen(text), &t, &err));
        g_assert_cmpmem(t.id, t.id_len, ids[i], strlen(ids[i]));
        qmp_json_text_clear(&t);
    }
}

static void test_reply_text(void)
{
    g_autoptr(JsonObject) reply = json_object_new();
    g_autofree char *a = NULL, *b = NULL, *c = NULL;
    const char *id = "{\"k\":\r\n [1,\n2]}";

    json_object_set_object_member(reply, "return", json_object_new());
    json_object_set_int_member(reply, "id", -1);
    a = qmp_json_reply_to_string(reply, "18446744073709551615", 20);
    g_assert_cmpstr(a, ==, "{\"return\": {}, \"id\": 18446744073709551615}");
    /* Line breaks between a composite id's tokens become spaces: one line. */
    b = qmp_json_reply_to_string(reply, id, strlen(id));
    g_assert_cmpstr(b, ==, "{\"return\": {}, \"id\": {\"k\":   [1, 2]}}");
    c = qmp_json_reply_to_string(reply, NULL, 0);
    g_assert_cmpstr(c, ==, "{\"return\": {}}");
}

/* Integers against declared types, through the parser, with QEMU's messages. */
static void test_range_checks(void)
{
    static const struct {
        const char *command;
        const char *args;
        const char *error;
    } cases[] = {
        { "migrate-set-parameters", "{\"max-bandwidth\": 18446744073709551615}", NULL },
        { "migrate-set-parameters", "{\"max-bandwidth\": 18446744073709551616}",
          "Parameter 'max-bandwidth' expects uint64" },
        { "migrate-set-parameters", "{\"max-bandwidth\": 1e400}",
          "Parameter 'max-bandwidth' expects uint64" },
        { "migrate-set-parameters", "{\"max-bandwidth\": 1e3}",
          "Parameter 'max-bandwidth' expects uint64" },
        /* QEMU takes negative numbers for uint64 as their two's complement. */
        { "migrate-set-parameters", "{\"max-bandwidth\": -1}", NULL },
        { "migrate-set-parameters", "{\"max-bandwidth\": -9223372036854775808}", NULL },
        { "migrate-set-parameters", "{\"max-bandwidth\": -9223372036854775809}",
          "Parameter 'max-bandwidth' expects uint64" },
        { "migrate-set-parameters", "{\"downtime-limit\": 99999999999999999999}",
          "Parameter 'downtime-limit' expects uint64" },
        { "migrate-set-parameters",
          "{\"background-snapshot-buffer-size\": 18446744073709551616}",
          "Parameter 'background-snapshot-buffer-size' expects uint64" },
        { "human-monitor-command", "{\"command-line\": \"x\", \"cpu-index\": "
          "9223372036854775807}", NULL },
        { "human-monitor-command", "{\"command-line\": \"x\", \"cpu-index\": "
          "9223372036854775808}", "Invalid parameter type for 'cpu-index', expected: integer" },
        { "human-monitor-command", "{\"command-line\": \"x\", \"cpu-index\": "
          "-9223372036854775809}", "Invalid parameter type for 'cpu-index', expected: integer" },
    };
    g_autoptr(GError) load_err = NULL;
    g_autoptr(QapiSchema) s = qapi_schema_load_builtin(&load_err);

    g_assert_no_error(load_err);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) err = NULL;
        QmpJsonText t;
        bool ok;

        g_assert_true(qmp_json_parse_text(cases[i].args, strlen(cases[i].args), &t, &err));
        ok = qapi_check_arguments_wide(s, cases[i].command, json_node_get_object(t.root),
                                       t.wide_ints, &err);
        if (cases[i].error) {
            g_assert_false(ok);
            g_assert_cmpstr(err->message, ==, cases[i].error);
        } else {
            g_assert_no_error(err);
            g_assert_true(ok);
        }
        qmp_json_text_clear(&t);
    }
}

/* A "number" argument reads an integer above INT64_MAX as positive. */
static void test_wide_number(void)
{
    static const char schema[] =
        "{ \"commands\": [ { \"name\": \"t\", \"arguments\": { \"n\": \"number\" } } ] }";
    const char *args = "{\"n\": 18446744073709551615}";
    g_autoptr(QapiSchema) s = qapi_schema_new();
    g_autoptr(GError) err = NULL;
    QmpJsonText t;
    JsonNode *n;

    g_assert_true(qapi_schema_add_json(s, "t", schema, -1, &err));
    g_assert_true(qapi_schema_check(s, &err));
    g_assert_true(qmp_json_parse_text(args, strlen(args), &t, &err));
    g_assert_true(qapi_check_arguments_wide(s, "t", json_node_get_object(t.root),
                                            t.wide_ints, &err));
    n = json_object_get_member(json_node_get_object(t.root), "n");
    g_assert_cmpfloat(json_node_get_double(n), ==, 18446744073709551615.0);
    qmp_json_text_clear(&t);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qmp/json-parse/rejects-non-json", test_rejects);
    g_test_add_func("/qmp/json-parse/long-stray-token", test_long_stray);
    g_test_add_func("/qmp/json-parse/accepts-rfc8259", test_accepts);
    g_test_add_func("/qmp/json-parse/integer-classes", test_integer_classes);
    g_test_add_func("/qmp/json-parse/nul-kept", test_nul);
    g_test_add_func("/qmp/json-parse/id-text", test_id_text);
    g_test_add_func("/qmp/json-parse/reply-text", test_reply_text);
    g_test_add_func("/qmp/json-parse/range-checks", test_range_checks);
    g_test_add_func("/qmp/json-parse/wide-number", test_wide_number);
    return g_test_run();
}
