/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests of QMP input framing (split, joined, pretty-printed, garbage, over-long) and JSON text. */
#include "monitor/monitor-internal.h"

#include <string.h>

typedef struct Collected {
    GPtrArray *items;    /* "T:<text>" or "E:<error>" */
} Collected;

static void collect(void *opaque, const char *text, gsize len, const char *error)
{
    Collected *c = opaque;

    if (error) {
        g_ptr_array_add(c->items, g_strconcat("E:", error, NULL));
    } else {
        g_autofree char *t = g_strndup(text, len);

        g_ptr_array_add(c->items, g_strconcat("T:", t, NULL));
    }
}

static GPtrArray *frame(const char *input, bool bytewise)
{
    QmpFramer *f = qmp_framer_new(QMP_INPUT_MAX);
    Collected c = { g_ptr_array_new_with_free_func(g_free) };
    gsize len = strlen(input);

    if (bytewise) {
        for (gsize i = 0; i < len; i++) {
            qmp_framer_feed(f, input + i, 1, collect, &c);
        }
    } else {
        qmp_framer_feed(f, input, len, collect, &c);
    }
    qmp_framer_free(f);
    return c.items;
}

typedef struct FrameCase {
    const char *name;
    const char *input;
    const char *expected[6];   /* NULL-terminated */
} FrameCase;

static const FrameCase frame_cases[] = {
    { "one-per-line", "{\"execute\": \"stop\"}\n{\"execute\": \"cont\"}\n",
      { "T:{\"execute\": \"stop\"}", "T:{\"execute\": \"cont\"}" } },
    { "several-on-one-line", "{\"a\":1}{\"b\":2} {\"c\":3}\n",
      { "T:{\"a\":1}", "T:{\"b\":2}", "T:{\"c\":3}" } },
    { "pretty-printed",
      "{\n  \"execute\": \"x\",\n  \"arguments\": {\n    \"a\": [1, {\"b\": 2}]\n  }\n}\n",
      { "T:{\n  \"execute\": \"x\",\n  \"arguments\": {\n    \"a\": [1, {\"b\": 2}]\n  }\n}" } },
    { "brackets-in-strings", "{\"a\": \"}{\\\"]\"}\n", { "T:{\"a\": \"}{\\\"]\"}" } },
    { "escaped-backslash-before-quote", "{\"a\": \"x\\\\\"}{\"b\": 1}",
      { "T:{\"a\": \"x\\\\\"}", "T:{\"b\": 1}" } },
    { "garbage-then-object", "garbage {\"a\":1}\n", { "T:garbage", "T:{\"a\":1}" } },
    { "garbage-glued-to-object", "xx{\"a\":1}", { "T:xx", "T:{\"a\":1}" } },
    { "scalars", "5 \"s}\" null\n", { "T:5", "T:\"s}\"", "T:null" } },
    { "stray-closer", "}\n{\"a\":1}\n",
      { "E:JSON parse error, expecting value", "T:{\"a\":1}" } },
    { "array", "[1, [2]]\n", { "T:[1, [2]]" } },
    { "incomplete-held-back", "{\"a\": [1, 2", { NULL } },
    { "blank-lines", "\n\r\n  \t\n", { NULL } },
};

static void test_frame_case(gconstpointer data)
{
    const FrameCase *t = data;

    for (int bytewise = 0; bytewise < 2; bytewise++) {
        g_autoptr(GPtrArray) got = frame(t->input, bytewise);
        guint n = 0;

        while (t->expected[n]) {
            n++;
        }
        g_assert_cmpuint(got->len, ==, n);
        for (guint i = 0; i < n; i++) {
            g_assert_cmpstr(g_ptr_array_index(got, i), ==, t->expected[i]);
        }
    }
}

/*
 * More than 1 MiB without a complete object: one error, the input is dropped
 * up to the next newline, and the next line is served again.
 */
static void test_overlong(void)
{
    QmpFramer *f = qmp_framer_new(QMP_INPUT_MAX);
    Collected c = { g_ptr_array_new_with_free_func(g_free) };
    g_autofree char *chunk = g_strnfill(64 * 1024, 'x');
    const char *start = "{\"execute\": \"";

    qmp_framer_feed(f, start, strlen(start), collect, &c);
    for (int i = 0; i < 20; i++) {
        qmp_framer_feed(f, chunk, strlen(chunk), collect, &c);
    }
    g_assert_cmpuint(c.items->len, ==, 1);
    g_assert_true(g_str_has_prefix(g_ptr_array_index(c.items, 0),
                                   "E:JSON parse error, more than 1048576 bytes"));
    g_assert_cmpuint(qmp_framer_buffered(f), ==, 0);
    qmp_framer_feed(f, "\"}\n{\"execute\": \"cont\"}\n", 23, collect, &c);
    g_assert_cmpuint(c.items->len, ==, 2);
    g_assert_cmpstr(g_ptr_array_index(c.items, 1), ==, "T:{\"execute\": \"cont\"}");
    g_ptr_array_unref(c.items);
    qmp_framer_free(f);
}

/* A text of just under 1 MiB on one line is still one command. */
static void test_large_but_allowed(void)
{
    QmpFramer *f = qmp_framer_new(QMP_INPUT_MAX);
    Collected c = { g_ptr_array_new_with_free_func(g_free) };
    GString *text = g_string_new("{\"a\": \"");

    while (text->len < QMP_INPUT_MAX - 2) {
        g_string_append_c(text, 'y');
    }
    g_string_append(text, "\"}");
    g_assert_cmpuint(text->len, ==, QMP_INPUT_MAX);
    g_string_append_c(text, '\n');
    qmp_framer_feed(f, text->str, text->len, collect, &c);
    g_assert_cmpuint(c.items->len, ==, 1);
    g_assert_cmpuint(strlen(g_ptr_array_index(c.items, 0)), ==, 2 + QMP_INPUT_MAX);
    g_string_free(text, TRUE);
    g_ptr_array_unref(c.items);
    qmp_framer_free(f);
}

static void test_nesting_limit(void)
{
    QmpFramer *f = qmp_framer_new(QMP_INPUT_MAX);
    Collected c = { g_ptr_array_new_with_free_func(g_free) };
    g_autofree char *deep = g_strnfill(QMP_NESTING_MAX + 10, '[');

    qmp_framer_feed(f, deep, strlen(deep), collect, &c);
    g_assert_cmpuint(c.items->len, ==, 1);
    g_assert_cmpstr(g_ptr_array_index(c.items, 0), ==, "E:JSON parse error, nesting too deep");
    qmp_framer_feed(f, "]]]\n[1]\n", 8, collect, &c);
    g_assert_cmpuint(c.items->len, ==, 2);
    g_assert_cmpstr(g_ptr_array_index(c.items, 1), ==, "T:[1]");
    g_ptr_array_unref(c.items);
    qmp_framer_free(f);
}

static void test_parse_errors(void)
{
    static const struct {
        const char *text;
        const char *prefix;
    } cases[] = {
        { "{\"a\": 1, \"a\": 2}", "JSON parse error, duplicate key" },
        { "{\"x\": {\"a\": 1, \"a\": 2}}", "JSON parse error, duplicate key" },
        { "{bad}", "JSON parse error, " },
        { "garbage", "JSON parse error, " },
        { "[1,]", "JSON parse error, " },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) err = NULL;
        JsonNode *node = qmp_json_parse(cases[i].text, -1, &err);

        g_assert_null(node);
        g_assert_nonnull(err);
        g_assert_true(g_str_has_prefix(err->message, cases[i].prefix));
        /* json-glib's "<data>:1:2: Parse error:" prefix is not shown to clients */
        g_assert_null(strstr(err->message, "<data>"));
    }
}

/* QEMU's spacing, ASCII-only output, types kept. */
static void test_serialize(void)
{
    const char *input =
        "{\"return\": {}, \"id\": [1, {\"a\": 2.5}, 2.0, -3], "
        "\"s\": \"a\\\"b\\\\c\\n\\u00e9\\ud83d\\ude00\\u0001\", \"t\": true, "
        "\"n\": null, \"e\": []}";
    const char *expected =
        "{\"return\": {}, \"id\": [1, {\"a\": 2.5}, 2.0, -3], "
        "\"s\": \"a\\\"b\\\\c\\n\\u00e9\\ud83d\\ude00\\u0001\", \"t\": true, "
        "\"n\": null, \"e\": []}";
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) node = qmp_json_parse(input, -1, &err);
    g_autofree char *text = NULL;

    g_assert_no_error(err);
    text = qmp_json_to_string(node);
    g_assert_cmpstr(text, ==, expected);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(frame_cases); i++) {
        g_autofree char *path = g_strdup_printf("/qmp/framing/%s", frame_cases[i].name);

        g_test_add_data_func(path, &frame_cases[i], test_frame_case);
    }
    g_test_add_func("/qmp/framing/overlong-input-dropped", test_overlong);
    g_test_add_func("/qmp/framing/one-mib-text-allowed", test_large_but_allowed);
    g_test_add_func("/qmp/framing/nesting-limit", test_nesting_limit);
    g_test_add_func("/qmp/json/parse-errors", test_parse_errors);
    g_test_add_func("/qmp/json/serialize", test_serialize);
    return g_test_run();
}
