/* SPDX-License-Identifier: GPL-2.0-or-later */
/* End-to-end: the QMP server of a running frostvm (greeting, negotiation, queries, bad input, several clients, TCP). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vm-helper.h"

/* A guest that runs (KVM if usable, else the test accelerator) with its first progress seen. */
static TestVm *start_vm(TestVmFixture *f, const char *const *extra)
{
    g_autoptr(GError) err = NULL;
    PayloadProgress p;

    f->vm = test_vm_new(TEST_VM_DEFAULT);
    test_vm_add_guest(f->vm, test_vm_any_accel(), "mem=8M report_ms=50");
    for (int i = 0; extra && extra[i]; i++) {
        test_vm_add_args(f->vm, extra[i], NULL);
    }
    test_vm_launch_or_fail(f->vm);
    test_vm_wait_progress(f->vm, TEST_VM_TIMEOUT_MS, &p, &err);
    g_assert_no_error(err);
    return f->vm;
}

static JsonNode *execute_ok(QmpClient *c, const char *command, const char *args_json)
{
    g_autoptr(GError) err = NULL;
    JsonNode *ret = qmp_client_execute_json(c, command, args_json, &err);

    g_assert_no_error(err);
    g_assert_nonnull(ret);
    return ret;
}

/* Send @text as is and return the next reply (events are kept aside). */
static JsonObject *exchange_raw(QmpClient *c, const char *text)
{
    g_autoptr(GError) err = NULL;
    JsonObject *reply;

    qmp_client_send_raw(c, text, strlen(text), &err);
    g_assert_no_error(err);
    reply = qmp_client_read_reply(c, &err);
    g_assert_no_error(err);
    return reply;
}

static void assert_error(JsonObject *reply, const char *klass, const char *desc_part)
{
    JsonObject *error;
    const char *desc;

    g_assert_nonnull(reply);
    g_assert_false(json_object_has_member(reply, "return"));
    g_assert_true(json_object_has_member(reply, "error"));
    error = json_object_get_object_member(reply, "error");
    g_assert_cmpstr(json_object_get_string_member(error, "class"), ==, klass);
    desc = json_object_get_string_member(error, "desc");
    g_assert_nonnull(desc);
    if (!strstr(desc, desc_part)) {
        g_error("error desc '%s' lacks '%s'", desc, desc_part);
    }
}

static void assert_status_running(JsonNode *ret)
{
    JsonObject *o;

    g_assert_true(JSON_NODE_HOLDS_OBJECT(ret));
    o = json_node_get_object(ret);
    g_assert_cmpuint(json_object_get_size(o), ==, 3);
    g_assert_cmpstr(json_object_get_string_member(o, "status"), ==, "running");
    g_assert_true(JSON_NODE_TYPE(json_object_get_member(o, "running")) == JSON_NODE_VALUE);
    g_assert_true(json_node_get_value_type(json_object_get_member(o, "running")) ==
                  G_TYPE_BOOLEAN);
    g_assert_true(json_object_get_boolean_member(o, "running"));
    g_assert_true(json_node_get_value_type(json_object_get_member(o, "singlestep")) ==
                  G_TYPE_BOOLEAN);
    g_assert_false(json_object_get_boolean_member(o, "singlestep"));
}

/*
 * After bad input: the next command gets its own reply (and nothing else was
 * sent in between but @expected_before replies), and the guest still runs.
 */
static void assert_still_serving(TestVm *vm, QmpClient *c, guint expected_before)
{
    static const char probe[] = "{\"execute\": \"query-status\", \"id\": \"probe\"}\n";
    g_autoptr(GError) err = NULL;
    PayloadProgress p;
    guint before = 0;

    test_vm_log_skip(vm, TEST_VM_LOG_SERIAL);
    qmp_client_send_raw(c, probe, strlen(probe), &err);
    g_assert_no_error(err);
    for (;;) {
        g_autoptr(JsonObject) reply = qmp_client_read_reply(c, &err);

        g_assert_no_error(err);
        if (!g_strcmp0(json_object_get_string_member_with_default(reply, "id", NULL),
                       "probe")) {
            g_assert_true(json_object_has_member(reply, "return"));
            assert_status_running(json_object_get_member(reply, "return"));
            break;
        }
        before++;
    }
    g_assert_cmpuint(before, ==, expected_before);
    test_vm_wait_progress(vm, TEST_VM_TIMEOUT_MS, &p, &err);
    g_assert_no_error(err);
    g_assert_true(p.regs_ok);
    g_assert_cmpuint(p.errors, ==, 0);
}

static void test_greeting(TestVmFixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(QmpClient) c = NULL;
    g_autoptr(JsonNode) version = NULL;
    g_autofree char *package = NULL;
    JsonObject *greeting, *gv, *triple, *qv;
    TestVm *vm = start_vm(f, NULL);

    c = test_vm_qmp_connect(vm, false, &err);
    g_assert_no_error(err);
    greeting = qmp_client_greeting(c);
    g_assert_true(json_object_has_member(greeting, "version"));
    g_assert_true(JSON_NODE_HOLDS_ARRAY(json_object_get_member(greeting, "capabilities")));
    gv = json_object_get_object_member(greeting, "version");
    triple = json_object_get_object_member(gv, "qemu");
    g_assert_nonnull(triple);
    /* "qemu" is the QEMU interface frostvm follows (7.2); "package" frostvm's own version. */
    g_assert_cmpint(json_object_get_int_member(triple, "major"), ==, 7);
    g_assert_cmpint(json_object_get_int_member(triple, "minor"), ==, 2);
    package = g_strdup(json_object_get_string_member(gv, "package"));
    g_assert_true(g_str_has_prefix(package, "frostvm "));

    /* query-version tells the same. */
    g_assert_true(qmp_client_negotiate(c, &err));
    g_assert_no_error(err);
    version = execute_ok(c, "query-version", NULL);
    qv = json_node_get_object(version);
    g_assert_cmpstr(json_object_get_string_member(qv, "package"), ==, package);
    g_assert_true(json_node_equal(json_object_get_member(qv, "qemu"),
                                  json_object_get_member(gv, "qemu")));
}

static void test_negotiation(TestVmFixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(QmpClient) c = NULL;
    g_autoptr(JsonObject) r1 = NULL;
    g_autoptr(JsonObject) r2 = NULL;
    g_autoptr(JsonObject) r3 = NULL;
    g_autoptr(JsonObject) r4 = NULL;
    g_autoptr(JsonObject) r5 = NULL;
    TestVm *vm = start_vm(f, NULL);

    c = test_vm_qmp_connect(vm, false, &err);
    g_assert_no_error(err);
    r1 = exchange_raw(c, "{\"execute\": \"query-status\", \"id\": 1}\n");
    assert_error(r1, "CommandNotFound", "qmp_capabilities");
    g_assert_cmpint(json_object_get_int_member(r1, "id"), ==, 1);
    r2 = exchange_raw(c, "{\"execute\": }\n");
    assert_error(r2, "GenericError", "JSON parse error");
    /* frostvm offers no capability, so enabling one is refused. */
    r3 = exchange_raw(c, "{\"execute\": \"qmp_capabilities\", "
                         "\"arguments\": {\"enable\": [\"oob\"]}}\n");
    g_assert_true(json_object_has_member(r3, "error"));
    r4 = exchange_raw(c, "{\"execute\": \"qmp_capabilities\", \"id\": \"n\"}\n");
    g_assert_true(json_object_has_member(r4, "return"));
    g_assert_cmpstr(json_object_get_string_member(r4, "id"), ==, "n");
    r5 = exchange_raw(c, "{\"execute\": \"qmp_capabilities\"}\n");
    assert_error(r5, "CommandNotFound", "already");
    assert_still_serving(vm, c, 0);
}

static void test_query_status(TestVmFixture *f, gconstpointer data)
{
    TestVm *vm = start_vm(f, NULL);
    g_autoptr(JsonNode) ret = execute_ok(test_vm_qmp(vm), "query-status", NULL);

    assert_status_running(ret);
}

/* The id is any JSON value and comes back unchanged, on replies and errors. */
static void test_id_echo(TestVmFixture *f, gconstpointer data)
{
    static const char *const ids[] = {
        "\"text\"", "42", "-1.5", "true", "null", "[1, \"a\", {\"b\": []}]",
        "{\"nested\": {\"k\": [1, 2, 3]}}", "\"\\u00e9\\n\"",
    };
    TestVm *vm = start_vm(f, NULL);
    QmpClient *c = test_vm_qmp(vm);

    for (guint i = 0; i < G_N_ELEMENTS(ids); i++) {
        for (int bad = 0; bad < 2; bad++) {
            g_autofree char *req = g_strdup_printf("{\"execute\": \"%s\", \"id\": %s}\n",
                                                   bad ? "no-such-command" : "query-status",
                                                   ids[i]);
            g_autoptr(JsonObject) reply = exchange_raw(c, req);
            g_autoptr(JsonParser) parser = json_parser_new();

            g_assert_true(json_parser_load_from_data(parser, ids[i], -1, NULL));
            g_assert_true(json_object_has_member(reply, bad ? "error" : "return"));
            g_assert_true(json_object_has_member(reply, "id"));
            g_assert_true(json_node_equal(json_object_get_member(reply, "id"),
                                          json_parser_get_root(parser)));
        }
    }
}

static void test_query_version(TestVmFixture *f, gconstpointer data)
{
    TestVm *vm = start_vm(f, NULL);
    g_autoptr(JsonNode) ret = execute_ok(test_vm_qmp(vm), "query-version", NULL);
    JsonObject *o = json_node_get_object(ret);
    JsonObject *q = json_object_get_object_member(o, "qemu");

    g_assert_nonnull(q);
    g_assert_cmpint(json_object_get_int_member(q, "major"), >=, 0);
    g_assert_cmpint(json_object_get_int_member(q, "minor"), >=, 0);
    g_assert_cmpint(json_object_get_int_member(q, "micro"), >=, 0);
    g_assert_true(g_str_has_prefix(json_object_get_string_member(o, "package"),
                                   "frostvm "));
}

static void test_query_commands(TestVmFixture *f, gconstpointer data)
{
    static const char *const expected[] = {
        "qmp_capabilities", "query-status", "stop", "cont", "quit", "query-version",
        "query-commands", "human-monitor-command", "migrate-set-capabilities",
        "query-migrate-capabilities", "migrate-set-parameters",
        "query-migrate-parameters", "migrate", "migrate-incoming", "migrate_cancel",
        "query-migrate",
    };
    TestVm *vm = start_vm(f, NULL);
    QmpClient *c = test_vm_qmp(vm);
    g_autoptr(JsonNode) ret = execute_ok(c, "query-commands", NULL);
    g_autoptr(GHashTable) names = g_hash_table_new(g_str_hash, g_str_equal);
    JsonArray *list;

    g_assert_true(JSON_NODE_HOLDS_ARRAY(ret));
    list = json_node_get_array(ret);
    for (guint i = 0; i < json_array_get_length(list); i++) {
        JsonObject *o = json_array_get_object_element(list, i);
        const char *name;

        g_assert_nonnull(o);
        name = json_object_get_string_member(o, "name");
        g_assert_nonnull(name);
        g_assert_false(g_hash_table_contains(names, name));
        g_hash_table_add(names, (gpointer)name);
    }
    for (guint i = 0; i < G_N_ELEMENTS(expected); i++) {
        if (!g_hash_table_contains(names, expected[i])) {
            g_error("query-commands lacks %s", expected[i]);
        }
    }
    /*
     * Everything listed is known to the dispatcher and checked against the
     * schema: a bogus argument is refused, never run.
     */
    for (guint i = 0; i < json_array_get_length(list); i++) {
        const char *name = json_object_get_string_member(json_array_get_object_element(list, i),
                                                          "name");
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonNode) r = NULL;

        if (!strcmp(name, "qmp_capabilities")) {
            continue;       /* refused as "already negotiated" before its arguments */
        }
        r = qmp_client_execute_json(c, name, "{\"no-such-arg\": 1}", &err);

        g_assert_null(r);
        g_assert_error(err, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_REPLY);
        g_assert_cmpstr(qmp_client_last_error_class(c), ==, "GenericError");
        /* Required arguments are checked first, as QEMU does. */
        g_assert_true(strstr(err->message, "no-such-arg") ||
                      strstr(err->message, "is missing"));
    }
}

/* Bad input: what is sent, the error class and part of its text. */
typedef struct {
    const char *name;
    const char *text;           /* sent as is; NULL: a generated long line */
    const char *klass;
    const char *desc;
    guint replies;              /* error replies expected for it */
} BadInput;

static const BadInput bad_inputs[] = {
    { "invalid-json", "{\"execute\": }\n", "GenericError", "JSON parse error", 1 },
    { "garbage", "\x01\n", "GenericError", "JSON parse error", 1 },
    { "stray-brace", "}\n", "GenericError", "JSON parse error", 1 },
    { "array", "[1, 2]\n", "GenericError", "must be a JSON object", 1 },
    { "string", "\"query-status\"\n", "GenericError", "must be a JSON object", 1 },
    { "unknown-command", "{\"execute\": \"frobnicate\"}\n", "CommandNotFound",
      "The command frobnicate has not been found", 1 },
    { "wrong-type", "{\"execute\": \"human-monitor-command\", "
                    "\"arguments\": {\"command-line\": 5}}\n",
      "GenericError", "Invalid parameter type for 'command-line', expected: string", 1 },
    { "wrong-type-bool", "{\"execute\": \"migrate\", "
                         "\"arguments\": {\"uri\": \"exec:true\", \"detach\": \"yes\"}}\n",
      "GenericError", "'detach'", 1 },
    { "missing-argument", "{\"execute\": \"human-monitor-command\"}\n",
      "GenericError", "Parameter 'command-line' is missing", 1 },
    { "unexpected-argument", "{\"execute\": \"query-status\", \"arguments\": {\"foo\": 1}}\n",
      "GenericError", "Parameter 'foo' is unexpected", 1 },
    { "arguments-not-object", "{\"execute\": \"query-status\", \"arguments\": [1]}\n",
      "GenericError", "'arguments'", 1 },
    { "execute-not-string", "{\"execute\": 5}\n", "GenericError", "'execute'", 1 },
    { "no-execute", "{\"arguments\": {}}\n", "GenericError", "'execute'", 1 },
    { "unexpected-member", "{\"execute\": \"query-status\", \"foo\": 1}\n",
      "GenericError", "'foo'", 1 },
    { "duplicate-key", "{\"execute\": \"query-status\", \"execute\": \"stop\"}\n",
      "GenericError", "duplicate", 1 },
    { "line-1MiB", NULL, "GenericError", "JSON parse error", 1 },
};

/*
 * Send @text and return the next reply line exactly as the server wrote it
 * (no newline), read byte by byte from the socket so nothing is re-encoded.
 * Only for a running VM with no events pending.
 */
static char *exchange_line(QmpClient *c, const char *text)
{
    g_autoptr(GError) err = NULL;
    GString *line = g_string_new(NULL);
    int fd = qmp_client_fd(c);

    qmp_client_send_raw(c, text, strlen(text), &err);
    g_assert_no_error(err);
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        char ch;

        g_assert_cmpint(poll(&p, 1, TEST_VM_TIMEOUT_MS), ==, 1);
        g_assert_cmpint(read(fd, &ch, 1), ==, 1);
        if (ch == '\n') {
            /* Lines end in CR LF, as QEMU's do (libvirt splits on them). */
            g_assert_true(line->len && line->str[line->len - 1] == '\r');
            g_string_truncate(line, line->len - 1);
            return g_string_free(line, FALSE);
        }
        g_string_append_c(line, ch);
    }
}

/*
 * Issue 14: ids come back byte for byte, whatever JSON value they are (they
 * came back as -1, -9223372036854775808, null and "a"); non-JSON numbers are
 * refused (010 was 8, 0x10 was 16); integers out of a uint64's range are
 * refused with QEMU's words (2^64 was clamped to the largest value).
 */
static void test_strict_input(TestVmFixture *f, gconstpointer data)
{
    static const char *const ids[] = {
        "18446744073709551616", "9223372036854775808", "1e400", "\"a\\u0000b\"",
        "-0", "1.50", "\"\\u00e9\\/\"",
    };
    static const struct {
        const char *id;
        const char *desc;
    } not_json[] = {
        { "010", "JSON parse error, stray '01'" },
        { "0x10", "JSON parse error, stray '0x'" },
        { ".5", "JSON parse error, stray '.'" },
        { "1.", "JSON parse error, stray '1.}'" },
    };
    TestVm *vm = start_vm(f, NULL);
    QmpClient *c = test_vm_qmp(vm);
    g_autofree char *params = NULL;

    for (guint i = 0; i < G_N_ELEMENTS(ids); i++) {
        g_autofree char *ok_req = g_strdup_printf(
            "{\"execute\": \"query-status\", \"id\": %s}\n", ids[i]);
        g_autofree char *bad_req = g_strdup_printf(
            "{\"execute\": \"no-such-command\", \"id\": %s}\n", ids[i]);
        g_autofree char *ok_suffix = g_strdup_printf("}, \"id\": %s}", ids[i]);
        g_autofree char *bad_expected = g_strdup_printf(
            "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command "
            "no-such-command has not been found\"}, \"id\": %s}", ids[i]);
        g_autofree char *ok_line = exchange_line(c, ok_req);
        g_autofree char *bad_line = exchange_line(c, bad_req);

        g_assert_true(g_str_has_prefix(ok_line, "{\"return\": {"));
        if (!g_str_has_suffix(ok_line, ok_suffix)) {
            g_error("id %s came back as: %s", ids[i], ok_line);
        }
        g_assert_cmpstr(bad_line, ==, bad_expected);
    }
    for (guint i = 0; i < G_N_ELEMENTS(not_json); i++) {
        g_autofree char *req = g_strdup_printf(
            "{\"execute\": \"query-status\", \"id\": %s}\n", not_json[i].id);
        g_autofree char *expected = g_strdup_printf(
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"%s\"}}",
            not_json[i].desc);
        g_autofree char *line = exchange_line(c, req);

        g_assert_cmpstr(line, ==, expected);
    }
    for (int neg = 0; neg < 2; neg++) {
        g_autofree char *line = exchange_line(c, neg ?
            "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
            "{\"max-bandwidth\": -9223372036854775809}}\n" :
            "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
            "{\"max-bandwidth\": 18446744073709551616}}\n");

        g_assert_cmpstr(line, ==, "{\"error\": {\"class\": \"GenericError\", \"desc\": "
                        "\"Parameter 'max-bandwidth' expects uint64\"}}");
    }
    /* Nothing was applied: the default (no limit) stands. */
    params = exchange_line(c, "{\"execute\": \"query-migrate-parameters\"}\n");
    g_assert_nonnull(strstr(params, "\"max-bandwidth\": 0,"));
    assert_still_serving(vm, c, 0);
}

static void test_bad_input(TestVmFixture *f, gconstpointer data)
{
    const BadInput *bi = data;
    TestVm *vm = start_vm(f, NULL);
    QmpClient *c = test_vm_qmp(vm);
    g_autoptr(JsonObject) reply = NULL;
    g_autofree char *text = NULL;

    if (bi->text) {
        text = g_strdup(bi->text);
    } else {
        /* A command whose name alone is over 1 MiB, on one line. */
        GString *s = g_string_new("{\"execute\": \"");

        for (int i = 0; i < (1 << 20) + 4096; i++) {
            g_string_append_c(s, 'a' + i % 26);
        }
        g_string_append(s, "\"}\n");
        text = g_string_free(s, FALSE);
    }
    reply = exchange_raw(c, text);
    assert_error(reply, bi->klass, bi->desc);
    /* No id in the request: none in the reply. */
    g_assert_false(json_object_has_member(reply, "id"));
    assert_still_serving(vm, c, bi->replies - 1);
    /* A nested object 2000 deep is refused too; still serving after it. */
    if (!bi->text) {
        GString *deep = g_string_new(NULL);
        g_autoptr(JsonObject) r2 = NULL;

        for (int i = 0; i < 2000; i++) {
            g_string_append_c(deep, '[');
        }
        for (int i = 0; i < 2000; i++) {
            g_string_append_c(deep, ']');
        }
        g_string_append_c(deep, '\n');
        r2 = exchange_raw(c, deep->str);
        g_string_free(deep, TRUE);
        assert_error(r2, "GenericError", "JSON parse error");
        assert_still_serving(vm, c, 0);
    }
}

/* The stream framing: several objects per line, an object over several lines. */
static void test_framing(TestVmFixture *f, gconstpointer data)
{
    TestVm *vm = start_vm(f, NULL);
    QmpClient *c = test_vm_qmp(vm);
    g_autoptr(GError) err = NULL;
    static const char two[] = "{\"execute\": \"query-status\", \"id\": 1}"
                              "{\"execute\": \"query-version\", \"id\": 2}\n";
    static const char pretty[] = "{\n  \"execute\": \"query-status\",\n  \"id\": 3\n}\n";

    qmp_client_send_raw(c, two, strlen(two), &err);
    g_assert_no_error(err);
    for (int id = 1; id <= 2; id++) {
        g_autoptr(JsonObject) r = qmp_client_read_reply(c, &err);

        g_assert_no_error(err);
        g_assert_cmpint(json_object_get_int_member(r, "id"), ==, id);
        g_assert_true(json_object_has_member(r, "return"));
    }
    {
        g_autoptr(JsonObject) r = exchange_raw(c, pretty);

        g_assert_cmpint(json_object_get_int_member(r, "id"), ==, 3);
        assert_status_running(json_object_get_member(r, "return"));
    }
    assert_still_serving(vm, c, 0);
}

/* An event nobody should have received: nothing arrives on @c for @ms. */
static void assert_no_event(QmpClient *c, const char *name, int ms)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) ev = qmp_client_wait_event(c, name, ms, &err);

    g_assert_null(ev);
    g_assert_error(err, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_TIMEOUT);
}

static void wait_event(QmpClient *c, const char *name)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) ev = qmp_client_wait_event(c, name, TEST_VM_TIMEOUT_MS, &err);

    g_assert_no_error(err);
    test_vm_assert_event(ev, name);
}

static void test_two_clients(TestVmFixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(QmpClient) b = NULL;
    g_autoptr(QmpClient) unnegotiated = NULL;
    g_autoptr(JsonNode) s1 = NULL;
    g_autoptr(JsonNode) s2 = NULL;
    TestVm *vm = start_vm(f, NULL);
    QmpClient *a = test_vm_qmp(vm);
    int status = -1;

    b = test_vm_qmp_connect(vm, true, &err);
    g_assert_no_error(err);
    unnegotiated = test_vm_qmp_connect(vm, false, &err);
    g_assert_no_error(err);

    /* Both see what either does. */
    json_node_unref(execute_ok(a, "stop", NULL));
    wait_event(a, "STOP");
    wait_event(b, "STOP");
    s1 = execute_ok(b, "query-status", NULL);
    g_assert_cmpstr(json_object_get_string_member(json_node_get_object(s1), "status"), ==,
                    "paused");
    json_node_unref(execute_ok(b, "cont", NULL));
    wait_event(b, "RESUME");
    wait_event(a, "RESUME");
    s2 = execute_ok(a, "query-status", NULL);
    assert_status_running(s2);

    /* Events go only to clients that negotiated. */
    assert_no_event(unnegotiated, "STOP", 300);
    assert_no_event(unnegotiated, "RESUME", 0);

    /* Negotiating later does not deliver the events it missed. */
    g_assert_true(qmp_client_negotiate(unnegotiated, &err));
    g_assert_no_error(err);
    assert_no_event(unnegotiated, "STOP", 200);
    assert_no_event(unnegotiated, "RESUME", 0);

    /* One client leaving does not disturb the other. */
    g_clear_pointer(&b, qmp_client_free);
    assert_still_serving(vm, a, 0);

    /* A new client after that, then quit from it: both get SHUTDOWN. */
    b = test_vm_qmp_connect(vm, true, &err);
    g_assert_no_error(err);
    json_node_unref(execute_ok(b, "quit", NULL));
    wait_event(b, "SHUTDOWN");
    wait_event(a, "SHUTDOWN");
    g_assert_true(qmp_client_wait_closed(a, TEST_VM_TIMEOUT_MS, &err));
    g_assert_true(qmp_client_wait_closed(b, TEST_VM_TIMEOUT_MS, &err));
    g_assert_true(test_vm_wait_exit(vm, TEST_VM_TIMEOUT_MS, &status, &err));
    g_assert_no_error(err);
    g_assert_cmpint(status, ==, 0);
}

/* Eight clients at once, each negotiating and querying, interleaved. */
static void test_many_clients(TestVmFixture *f, gconstpointer data)
{
    TestVm *vm = start_vm(f, NULL);
    QmpClient *c[8];

    for (int i = 0; i < 8; i++) {
        g_autoptr(GError) err = NULL;

        c[i] = test_vm_qmp_connect(vm, false, &err);
        g_assert_no_error(err);
    }
    for (int i = 7; i >= 0; i--) {
        g_autoptr(GError) err = NULL;

        g_assert_true(qmp_client_negotiate(c[i], &err));
        g_assert_no_error(err);
    }
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 8; i++) {
            g_autoptr(JsonNode) r = execute_ok(c[i], "query-status", NULL);

            assert_status_running(r);
        }
    }
    for (int i = 0; i < 8; i++) {
        qmp_client_free(c[i]);
    }
    assert_still_serving(vm, test_vm_qmp(vm), 0);
}

/*
 * A client that sends many requests and never reads must not hold up the
 * others or the guest (frostvm buffers its output).
 */
static void test_slow_client(TestVmFixture *f, gconstpointer data)
{
    TestVm *vm = start_vm(f, NULL);
    g_autoptr(GError) err = NULL;
    g_autoptr(QmpClient) slow = test_vm_qmp_connect(vm, true, &err);
    g_autoptr(GString) burst = g_string_new(NULL);
    gint64 t0;

    g_assert_no_error(err);
    for (int i = 0; i < 2000; i++) {
        g_string_append(burst, "{\"execute\": \"query-commands\"}\n");
    }
    qmp_client_send_raw(slow, burst->str, burst->len, &err);
    g_assert_no_error(err);
    t0 = g_get_monotonic_time();
    assert_still_serving(vm, test_vm_qmp(vm), 0);
    g_assert_cmpint(g_get_monotonic_time() - t0, <, 5 * G_USEC_PER_SEC);
}

/* A request sent by a client that hangs up at once: the server carries on. */
static void test_client_hangup(TestVmFixture *f, gconstpointer data)
{
    TestVm *vm = start_vm(f, NULL);

    for (int i = 0; i < 5; i++) {
        g_autoptr(GError) err = NULL;
        g_autoptr(QmpClient) c = test_vm_qmp_connect(vm, i % 2, &err);
        static const char req[] = "{\"execute\": \"query-commands\"}\n{\"execute\": ";

        g_assert_no_error(err);
        qmp_client_send_raw(c, req, strlen(req), &err);
        g_assert_no_error(err);
    }
    assert_still_serving(vm, test_vm_qmp(vm), 0);
}

/* quit answers first, then SHUTDOWN follows and the connection closes. */
static void test_quit_order(TestVmFixture *f, gconstpointer data)
{
    TestVm *vm = start_vm(f, NULL);
    QmpClient *c = test_vm_qmp(vm);
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) reply = exchange_raw(c, "{\"execute\": \"quit\", \"id\": \"q\"}\n");
    GPtrArray *events = qmp_client_events(c);

    g_assert_true(json_object_has_member(reply, "return"));
    g_assert_cmpstr(json_object_get_string_member(reply, "id"), ==, "q");
    for (guint i = 0; i < events->len; i++) {
        g_assert_cmpstr(json_object_get_string_member(g_ptr_array_index(events, i), "event"),
                        !=, "SHUTDOWN");
    }
    wait_event(c, "SHUTDOWN");
    g_assert_true(qmp_client_wait_closed(c, TEST_VM_TIMEOUT_MS, &err));
}

/* -qmp tcp:127.0.0.1:PORT serves the same protocol. */
static void test_tcp(TestVmFixture *f, gconstpointer data)
{
    struct sockaddr_in addr = { .sin_family = AF_INET };
    socklen_t len = sizeof(addr);
    g_autoptr(GError) err = NULL;
    g_autoptr(QmpClient) c = NULL;
    g_autofree char *spec = NULL;
    g_autoptr(JsonNode) ret = NULL;
    gint64 deadline;
    int probe, fd;
    TestVm *vm;

    /* A free port: bind to 0, note it, release it for frostvm. */
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(probe, >=, 0);
    g_assert_cmpint(bind(probe, (struct sockaddr *)&addr, sizeof(addr)), ==, 0);
    g_assert_cmpint(getsockname(probe, (struct sockaddr *)&addr, &len), ==, 0);
    close(probe);
    spec = g_strdup_printf("tcp:127.0.0.1:%d,server=on,wait=off", ntohs(addr.sin_port));

    f->vm = vm = test_vm_new(TEST_VM_NO_QMP);
    test_vm_add_guest(vm, test_vm_any_accel(), "mem=8M");
    test_vm_add_args(vm, "-qmp", spec, NULL);
    test_vm_launch_or_fail(vm);

    deadline = g_get_monotonic_time() + TEST_VM_TIMEOUT_MS * (gint64)1000;
    for (;;) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        g_assert_cmpint(fd, >=, 0);
        if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
            break;
        }
        close(fd);
        g_assert_true(test_vm_is_running(vm));
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(10 * 1000);
    }
    c = qmp_client_new_from_fd(fd, &err);
    g_assert_no_error(err);
    g_assert_true(qmp_client_negotiate(c, &err));
    ret = execute_ok(c, "query-status", NULL);
    assert_status_running(ret);
    /* Issue 14: a TCP monitor is unauthenticated and runs exec:; frostvm says so. */
    g_assert_true(test_vm_wait_log(vm, TEST_VM_LOG_STDERR, "has no authentication",
                                   TEST_VM_TIMEOUT_MS, NULL, &err));
    g_assert_no_error(err);
}

static void write_all(int fd, const char *text)
{
    gsize len = strlen(text);

    while (len) {
        ssize_t n = write(fd, text, len);

        g_assert_cmpint(n, >, 0);
        text += n;
        len -= n;
    }
}

/*
 * -qmp stdio: the same protocol on stdin/stdout. The requests are in the pipe
 * before frostvm reads anything, so they race the machine's start; the RESUME
 * of the start happened before the client negotiated and must not reach it
 * (QEMU drops events for clients still negotiating).
 */
static void test_stdio(TestVmFixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *out = NULL;
    g_autofree char *line = NULL;
    TestVm *vm;

    f->vm = vm = test_vm_new(TEST_VM_NO_QMP | TEST_VM_STDIN_PIPE);
    test_vm_add_guest(vm, test_vm_any_accel(), "mem=8M report_ms=50");
    test_vm_add_args(vm, "-qmp", "stdio", NULL);
    test_vm_launch_or_fail(vm);
    write_all(test_vm_stdin_fd(vm), "{\"execute\": \"qmp_capabilities\", \"id\": 1}\n"
                                    "{\"execute\": \"query-status\", \"id\": 2}\n");
    test_vm_wait_log(vm, TEST_VM_LOG_STDOUT, "{\"QMP\": ", TEST_VM_TIMEOUT_MS, NULL, &err);
    g_assert_no_error(err);
    test_vm_wait_log(vm, TEST_VM_LOG_STDOUT, "\"id\": 1", TEST_VM_TIMEOUT_MS, NULL, &err);
    g_assert_no_error(err);
    test_vm_wait_log(vm, TEST_VM_LOG_STDOUT, "\"id\": 2", TEST_VM_TIMEOUT_MS, &line, &err);
    g_assert_no_error(err);
    g_assert_nonnull(strstr(line, "\"running\": true"));
    /* A command that causes an event: the event, then the reply. */
    write_all(test_vm_stdin_fd(vm), "{\"execute\": \"stop\", \"id\": 3}\n");
    test_vm_wait_log(vm, TEST_VM_LOG_STDOUT, "\"STOP\"", TEST_VM_TIMEOUT_MS, NULL, &err);
    g_assert_no_error(err);
    test_vm_wait_log(vm, TEST_VM_LOG_STDOUT, "\"id\": 3", TEST_VM_TIMEOUT_MS, NULL, &err);
    g_assert_no_error(err);
    out = test_vm_log_read(vm, TEST_VM_LOG_STDOUT);
    /* The start's RESUME came before this client negotiated: it must not see it. */
    g_assert_null(strstr(out, "RESUME"));
}

static void add(const char *path, gconstpointer data,
                void (*fn)(TestVmFixture *, gconstpointer))
{
    g_test_add(path, TestVmFixture, data, test_vm_fixture_setup, fn,
               test_vm_fixture_teardown);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    add("/qmp/greeting", NULL, test_greeting);
    add("/qmp/negotiation", NULL, test_negotiation);
    add("/qmp/query-status", NULL, test_query_status);
    add("/qmp/query-version", NULL, test_query_version);
    add("/qmp/query-commands", NULL, test_query_commands);
    add("/qmp/id-echo", NULL, test_id_echo);
    add("/qmp/strict-input", NULL, test_strict_input);
    add("/qmp/framing", NULL, test_framing);
    for (guint i = 0; i < G_N_ELEMENTS(bad_inputs); i++) {
        g_autofree char *path = g_strdup_printf("/qmp/bad-input/%s", bad_inputs[i].name);

        add(path, &bad_inputs[i], test_bad_input);
    }
    add("/qmp/clients/two", NULL, test_two_clients);
    add("/qmp/clients/many", NULL, test_many_clients);
    add("/qmp/clients/slow-reader", NULL, test_slow_client);
    add("/qmp/clients/hangup", NULL, test_client_hangup);
    add("/qmp/quit-order", NULL, test_quit_order);
    add("/qmp/tcp", NULL, test_tcp);
    add("/qmp/stdio", NULL, test_stdio);
    return g_test_run();
}
