/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests of argument checking: every error message, worded as QEMU 7.2 words it. */
#include "qapi/validate.h"

#include "util/error.h"

typedef struct ValidateCase {
    const char *command;
    const char *args;        /* JSON object text, or NULL for no arguments */
    const char *error;       /* exact message, or NULL when the arguments are fine */
} ValidateCase;

/* Against the real schema; messages checked against qemu-system-x86_64 7.2. */
static const ValidateCase builtin_cases[] = {
    { "migrate", "{\"uri\": \"exec:cat > ./vm_state\"}", NULL },
    { "migrate", "{\"uri\": \"x\", \"detach\": true, \"blk\": false}", NULL },
    { "migrate", NULL, "Parameter 'uri' is missing" },
    { "migrate", "{}", "Parameter 'uri' is missing" },
    { "migrate", "{\"foo\": 1}", "Parameter 'uri' is missing" },
    { "migrate", "{\"uri\": \"x\", \"foo\": 5}", "Parameter 'foo' is unexpected" },
    { "migrate", "{\"uri\": 5}", "Invalid parameter type for 'uri', expected: string" },
    { "migrate", "{\"uri\": null}", "Invalid parameter type for 'uri', expected: string" },
    { "migrate", "{\"uri\": \"x\", \"detach\": 1}",
      "Invalid parameter type for 'detach', expected: boolean" },
    { "migrate", "{\"uri\": \"x\", \"detach\": \"true\"}",
      "Invalid parameter type for 'detach', expected: boolean" },
    { "migrate-incoming", NULL, "Parameter 'uri' is missing" },
    { "query-status", "{\"a\": 1}", "Parameter 'a' is unexpected" },
    { "query-status", "{}", NULL },
    { "migrate-set-capabilities",
      "{\"capabilities\": [{\"capability\": \"background-snapshot\", \"state\": true}]}",
      NULL },
    { "migrate-set-capabilities", "{\"capabilities\": []}", NULL },
    { "migrate-set-capabilities",
      "{\"capabilities\": [{\"capability\": \"background-snapshot\"}]}",
      "Parameter 'capabilities[0].state' is missing" },
    { "migrate-set-capabilities",
      "{\"capabilities\": [{\"capability\": \"xbzrle\", \"state\": true}, "
      "{\"capability\": \"xbzrle\", \"state\": 1}]}",
      "Invalid parameter type for 'capabilities[1].state', expected: boolean" },
    { "migrate-set-capabilities",
      "{\"capabilities\": [{\"capability\": \"zz\", \"state\": true}]}",
      "Parameter 'capability' does not accept value 'zz'" },
    { "migrate-set-capabilities",
      "{\"capabilities\": [{\"capability\": 5, \"state\": true}]}",
      "Invalid parameter type for 'capabilities[0].capability', expected: string" },
    { "migrate-set-capabilities",
      "{\"capabilities\": [{\"capability\": \"xbzrle\", \"state\": true, \"foo\": 1}]}",
      "Parameter 'capabilities[0].foo' is unexpected" },
    { "migrate-set-capabilities", "{\"capabilities\": {}}",
      "Invalid parameter type for 'capabilities', expected: array" },
    { "migrate-set-capabilities", "{\"capabilities\": [5]}",
      "Invalid parameter type for 'capabilities[0]', expected: object" },
    { "migrate-set-parameters", "{\"max-bandwidth\": 4294967296}", NULL },
    { "migrate-set-parameters", "{\"max-bandwidth\": 18446744073709551615}", NULL },
    { "migrate-set-parameters", "{\"max-bandwidth\": \"x\"}",
      "Parameter 'max-bandwidth' expects uint64" },
    { "migrate-set-parameters", "{\"max-bandwidth\": 1.5}",
      "Parameter 'max-bandwidth' expects uint64" },
    { "migrate-set-parameters", "{\"max-bandwidth\": null}",
      "Parameter 'max-bandwidth' expects uint64" },
    /* uint8 (QEMU's throttle percentages): read as uint64, then at most 255. */
    { "migrate-set-parameters", "{\"cpu-throttle-initial\": 255}", NULL },
    { "migrate-set-parameters", "{\"cpu-throttle-initial\": 256}",
      "Parameter 'cpu-throttle-initial' expects uint8_t" },
    { "migrate-set-parameters", "{\"max-cpu-throttle\": -1}",
      "Parameter 'max-cpu-throttle' expects uint8_t" },
    { "migrate-set-parameters", "{\"throttle-trigger-threshold\": 18446744073709551615}",
      "Parameter 'throttle-trigger-threshold' expects uint8_t" },
    { "migrate-set-parameters", "{\"cpu-throttle-increment\": \"5\"}",
      "Parameter 'cpu-throttle-increment' expects uint64" },
    { "migrate-set-parameters", "{\"cpu-throttle-increment\": 1.5}",
      "Parameter 'cpu-throttle-increment' expects uint64" },
    { "human-monitor-command", "{\"command-line\": \"info status\", \"cpu-index\": 0}",
      NULL },
    { "human-monitor-command", "{\"command-line\": \"x\", \"cpu-index\": \"x\"}",
      "Invalid parameter type for 'cpu-index', expected: integer" },
    { "human-monitor-command", "{\"command-line\": \"x\", \"cpu-index\": 1.5}",
      "Invalid parameter type for 'cpu-index', expected: integer" },
    { "qmp_capabilities", "{\"enable\": \"oob\"}",
      "Invalid parameter type for 'enable', expected: array" },
    { "no-such-command", NULL, "The command no-such-command has not been found" },
};

/* Built-ins the real schema does not use everywhere: number, any, nesting. */
static const char test_schema[] =
    "{ \"types\": ["
    "    { \"name\": \"Inner\", \"members\": { \"n\": \"number\", \"*any\": \"any\" } },"
    "    { \"name\": \"Outer\", \"members\": { \"inner\": [\"Inner\"] } } ],"
    "  \"commands\": ["
    "    { \"name\": \"t\", \"arguments\": { \"*o\": \"Outer\", \"*m\": [[\"int\"]] } } ],"
    "  \"events\": ["
    "    { \"name\": \"EV\", \"data\": { \"status\": \"str\" } } ] }";

static const ValidateCase test_cases[] = {
    { "t", "{\"o\": {\"inner\": [{\"n\": 1}, {\"n\": 2.5, \"any\": [null, {}]}]}}", NULL },
    { "t", "{\"o\": {\"inner\": [{\"n\": \"1\"}]}}",
      "Invalid parameter type for 'o.inner[0].n', expected: number" },
    { "t", "{\"o\": {\"inner\": [{}]}}", "Parameter 'o.inner[0].n' is missing" },
    { "t", "{\"o\": {\"inner\": [{\"n\": 1, \"x\": 0}]}}",
      "Parameter 'o.inner[0].x' is unexpected" },
    { "t", "{\"m\": [[1, 2], []]}", NULL },
    { "t", "{\"m\": [[1, true]]}", "Invalid parameter type for 'm[0][1]', expected: integer" },
    { "t", "{\"m\": [1]}", "Invalid parameter type for 'm[0]', expected: array" },
};

static JsonObject *parse_args(const char *text)
{
    g_autoptr(JsonParser) parser = json_parser_new();

    if (!text) {
        return NULL;
    }
    g_assert_true(json_parser_load_from_data(parser, text, -1, NULL));
    return json_object_ref(json_node_get_object(json_parser_get_root(parser)));
}

static void run_cases(QapiSchema *s, const ValidateCase *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        g_autoptr(JsonObject) args = parse_args(cases[i].args);
        g_autoptr(GError) err = NULL;
        bool ok = qapi_check_arguments(s, cases[i].command, args, &err);

        if (!cases[i].error) {
            if (!ok) {
                g_error("%s %s: unexpected error '%s'", cases[i].command,
                        cases[i].args, err->message);
            }
            continue;
        }
        if (ok) {
            g_error("%s %s: accepted, expected '%s'", cases[i].command, cases[i].args,
                    cases[i].error);
        }
        g_assert_cmpstr(err->message, ==, cases[i].error);
    }
}

static void test_builtin_schema(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(QapiSchema) s = qapi_schema_load_builtin(&err);

    g_assert_no_error(err);
    run_cases(s, builtin_cases, G_N_ELEMENTS(builtin_cases));
}

static QapiSchema *load_test_schema(void)
{
    QapiSchema *s = qapi_schema_new();
    g_autoptr(GError) err = NULL;

    g_assert_true(qapi_schema_add_json(s, "test", test_schema, -1, &err));
    g_assert_true(qapi_schema_check(s, &err));
    return s;
}

static void test_nested(void)
{
    g_autoptr(QapiSchema) s = load_test_schema();

    run_cases(s, test_cases, G_N_ELEMENTS(test_cases));
}

static void test_command_not_found_class(void)
{
    g_autoptr(QapiSchema) s = load_test_schema();
    g_autoptr(GError) err = NULL;

    g_assert_false(qapi_check_arguments(s, "nope", NULL, &err));
    g_assert_error(err, FROSTVM_ERROR, FROSTVM_ERROR_COMMAND_NOT_FOUND);
}

static void test_events(void)
{
    g_autoptr(QapiSchema) s = load_test_schema();
    g_autoptr(JsonObject) good = parse_args("{\"status\": \"active\"}");
    g_autoptr(JsonObject) bad = parse_args("{\"status\": 1}");
    g_autoptr(GError) err = NULL;

    g_assert_true(qapi_check_event(s, "EV", good, NULL));
    g_assert_false(qapi_check_event(s, "EV", NULL, &err));
    g_assert_cmpstr(err->message, ==, "Parameter 'status' is missing");
    g_clear_error(&err);
    g_assert_false(qapi_check_event(s, "EV", bad, &err));
    g_assert_cmpstr(err->message, ==,
                    "Invalid parameter type for 'status', expected: string");
    g_clear_error(&err);
    g_assert_false(qapi_check_event(s, "NOPE", NULL, &err));
    g_assert_cmpstr(err->message, ==, "The event NOPE is not in the schema");
}

/* uint64 values above INT64_MAX arrive wrapped; the bits are what was sent. */
static void test_uint64_roundtrip(void)
{
    g_autoptr(JsonObject) args = parse_args("{\"max-bandwidth\": 18446744073709551615}");

    g_assert_cmpuint((guint64)json_object_get_int_member(args, "max-bandwidth"), ==,
                     G_MAXUINT64);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qapi/validate/builtin-schema", test_builtin_schema);
    g_test_add_func("/qapi/validate/nested-paths", test_nested);
    g_test_add_func("/qapi/validate/command-not-found", test_command_not_found_class);
    g_test_add_func("/qapi/validate/events", test_events);
    g_test_add_func("/qapi/validate/uint64-roundtrip", test_uint64_roundtrip);
    return g_test_run();
}
