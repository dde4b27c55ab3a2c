/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests of QMP dispatch and the QMP server: negotiation, errors, core commands, sockets, events. */
#include "monitor/monitor-internal.h"

#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "accel/accel.h"
#include "system/machine.h"
#include "system/runstate.h"
#include "tests/functional/qmp-client.h"
#include "util/error.h"

/* ---- a machine with no guest: run state works, vCPUs are imaginary ---- */

#include "tests/unit/fake-accel.h"

typedef struct Fixture {
    Machine *m;
    Monitor *mon;
    char *dir;
    char *sock;
    bool negotiated;     /* for direct qmp_dispatch() calls */
} Fixture;

/* Test-only commands: arguments pass through, errors keep their class. */
static JsonNode *test_migrate(Machine *m, JsonObject *args, GError **errp)
{
    return json_node_init_string(json_node_alloc(),
                                 json_object_get_string_member(args, "uri"));
}

static JsonNode *test_migrate_cancel(Machine *m, JsonObject *args, GError **errp)
{
    g_set_error(errp, FROSTVM_ERROR, FROSTVM_ERROR_DEVICE_NOT_ACTIVE,
                "No migration is running");
    return NULL;
}

static const QmpCommand test_commands[] = {
    { "migrate", test_migrate },
    { "migrate_cancel", test_migrate_cancel },
    { NULL, NULL },
};

static void fixture_setup(Fixture *f, gconstpointer data)
{
    f->m = g_new0(Machine, 1);
    f->m->config = g_new0(MachineConfig, 1);
    f->m->main_context = g_main_context_new();
    f->m->main_loop = g_main_loop_new(f->m->main_context, FALSE);
    f->m->accel = &fake_accel;
    f->m->vcpus_started = true;
    f->m->runstate = RUN_STATE_RUNNING;
    g_mutex_init(&f->m->runstate_lock);
    g_mutex_init(&f->m->transition_lock);
    f->mon = monitor_new(f->m);
    g_assert_true(f->m->monitor == f->mon);
    monitor_register_qmp(f->mon, monitor_qmp_commands);
    monitor_register_hmp(f->mon, monitor_hmp_commands);
    monitor_register_qmp(f->mon, test_commands);
    f->dir = g_dir_make_tmp("frostvm-test-qmp-XXXXXX", NULL);
    g_assert_nonnull(f->dir);
    f->sock = g_build_filename(f->dir, "qmp.sock", NULL);
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    monitor_free(f->mon);
    g_assert_null(f->m->monitor);
    /* Unix socket files go away with their listeners. */
    g_assert_false(g_file_test(f->sock, G_FILE_TEST_EXISTS));
    rmdir(f->dir);
    g_free(f->dir);
    g_free(f->sock);
    g_main_loop_unref(f->m->main_loop);
    g_main_context_unref(f->m->main_context);
    g_mutex_clear(&f->m->runstate_lock);
    g_mutex_clear(&f->m->transition_lock);
    g_free(f->m->shutdown_reason);
    g_free(f->m->config);
    g_free(f->m);
}

/* Dispatch one text directly and return the reply as QEMU-spaced text. */
static char *dispatch(Fixture *f, const char *text)
{
    g_autoptr(JsonObject) reply = qmp_dispatch(f->mon, &f->negotiated, text,
                                               strlen(text));

    return qmp_json_object_to_string(reply);
}

static void assert_reply(Fixture *f, const char *text, const char *expected)
{
    g_autofree char *reply = dispatch(f, text);

    g_assert_cmpstr(reply, ==, expected);
}

/* ---- direct dispatch ---- */

static void test_negotiation(Fixture *f, gconstpointer data)
{
    assert_reply(f, "{\"execute\": \"query-status\"}",
                 "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Expecting "
                 "capabilities negotiation with 'qmp_capabilities'\"}}");
    assert_reply(f, "{\"execute\": \"foo\", \"id\": 7}",
                 "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Expecting "
                 "capabilities negotiation with 'qmp_capabilities'\"}, \"id\": 7}");
    /* Shape errors come first, as in QEMU. */
    assert_reply(f, "{\"foo\": 1}",
                 "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input "
                 "member 'foo' is unexpected\"}}");
    assert_reply(f, "{\"execute\": \"qmp_capabilities\", \"arguments\": "
                 "{\"enable\": [\"oob\"]}}",
                 "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Capability "
                 "'oob' is not offered by this server\"}}");
    g_assert_false(f->negotiated);
    assert_reply(f, "{\"execute\": \"qmp_capabilities\", \"id\": [1, {\"a\": 2}]}",
                 "{\"return\": {}, \"id\": [1, {\"a\": 2}]}");
    g_assert_true(f->negotiated);
    assert_reply(f, "{\"execute\": \"qmp_capabilities\"}",
                 "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Capabilities "
                 "negotiation is already complete, command ignored\"}}");
}

typedef struct ShapeCase {
    const char *input;
    const char *reply;
} ShapeCase;

#define GENERIC(desc) "{\"error\": {\"class\": \"GenericError\", \"desc\": \"" desc "\"}}"

static const ShapeCase shape_cases[] = {
    { "[1, 2]", GENERIC("QMP input must be a JSON object") },
    { "\"str\"", GENERIC("QMP input must be a JSON object") },
    { "null", GENERIC("QMP input must be a JSON object") },
    { "{}", GENERIC("QMP input lacks member 'execute'") },
    { "{\"execute\": 5}", GENERIC("QMP input member 'execute' must be a string") },
    { "{\"execute\": \"query-status\", \"arguments\": null}",
      GENERIC("QMP input member 'arguments' must be an object") },
    { "{\"execute\": \"query-status\", \"arguments\": 5}",
      GENERIC("QMP input member 'arguments' must be an object") },
    { "{\"execute\": \"query-status\", \"control\": {}}",
      GENERIC("QMP input member 'control' is unexpected") },
    { "{\"exec-oob\": \"query-status\"}",
      GENERIC("QMP input member 'exec-oob' is unexpected") },
    { "{\"execute\": \"qmp_capabilities\", \"id\": 1, \"id\": 2}",
      GENERIC("JSON parse error, duplicate key") },
    { "{\"execute\": \"foo\", \"id\": 5}",
      "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command foo has not "
      "been found\"}, \"id\": 5}" },
    { "{\"execute\": \"query-status\", \"arguments\": {\"a\": 1}}",
      GENERIC("Parameter 'a' is unexpected") },
    { "{\"execute\": \"migrate\"}", GENERIC("Parameter 'uri' is missing") },
    { "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"exec:cat > x\"}, "
      "\"id\": \"m1\"}", "{\"return\": \"exec:cat > x\", \"id\": \"m1\"}" },
    { "{\"execute\": \"migrate_cancel\"}",
      "{\"error\": {\"class\": \"DeviceNotActive\", \"desc\": \"No migration is "
      "running\"}}" },
    { "{\"execute\": \"query-status\", \"id\": {\"a\": [1, 2.5, null, true]}}",
      "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}, "
      "\"id\": {\"a\": [1, 2.5, null, true]}}" },
};

static void test_request_shape(Fixture *f, gconstpointer data)
{
    f->negotiated = true;
    for (size_t i = 0; i < G_N_ELEMENTS(shape_cases); i++) {
        assert_reply(f, shape_cases[i].input, shape_cases[i].reply);
    }
    {
        g_autofree char *reply = dispatch(f, "{bad json}");

        g_assert_true(g_str_has_prefix(reply, "{\"error\": {\"class\": \"GenericError\", "
                                       "\"desc\": \"JSON parse error, "));
    }
}

/* The text a session sends: the id exactly as written, none when the input did not parse. */
static void test_reply_text(Fixture *f, gconstpointer data)
{
    static const struct {
        const char *input;
        const char *reply;
    } cases[] = {
        { "{\"execute\": \"migrate_cancel\", \"id\": 18446744073709551616}",
          "{\"error\": {\"class\": \"DeviceNotActive\", \"desc\": \"No migration is "
          "running\"}, \"id\": 18446744073709551616}" },
        { "{\"id\": \"a\\u0000b\", \"execute\": \"migrate\", \"arguments\": "
          "{\"uri\": \"x\\u0000y\"}}",
          "{\"return\": \"x\\u0000y\", \"id\": \"a\\u0000b\"}" },
        { "{\"execute\": \"nope\", \"id\": 1e400}",
          "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command nope has "
          "not been found\"}, \"id\": 1e400}" },
        { "{\"execute\": \"query-status\", \"id\": 010}",
          "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, "
          "stray '01'\"}}" },
        { "[{\"id\": 5}]",
          "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input must be a JSON "
          "object\"}}" },
    };

    f->negotiated = true;
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *reply = qmp_dispatch_to_string(f->mon, &f->negotiated,
                                                        cases[i].input,
                                                        strlen(cases[i].input));

        g_assert_cmpstr(reply, ==, cases[i].reply);
    }
}

static void test_core_commands(Fixture *f, gconstpointer data)
{
    g_autofree char *commands = NULL;

    f->negotiated = true;
    assert_reply(f, "{\"execute\": \"query-version\"}",
                 "{\"return\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "
                 "\"package\": \"frostvm 0.1.0\"}}");
    assert_reply(f, "{\"execute\": \"stop\"}", "{\"return\": {}}");
    assert_reply(f, "{\"execute\": \"query-status\"}",
                 "{\"return\": {\"status\": \"paused\", \"singlestep\": false, "
                 "\"running\": false}}");
    assert_reply(f, "{\"execute\": \"human-monitor-command\", \"arguments\": "
                 "{\"command-line\": \"info status\"}}",
                 "{\"return\": \"VM status: paused\\r\\n\"}");
    assert_reply(f, "{\"execute\": \"cont\"}", "{\"return\": {}}");
    assert_reply(f, "{\"execute\": \"human-monitor-command\", \"arguments\": "
                 "{\"command-line\": \"info status\", \"cpu-index\": 0}}",
                 "{\"return\": \"VM status: running\\r\\n\"}");
    assert_reply(f, "{\"execute\": \"human-monitor-command\", \"arguments\": "
                 "{\"command-line\": \"foo\"}}",
                 "{\"return\": \"unknown command: 'foo'\\r\\n\"}");
    commands = dispatch(f, "{\"execute\": \"query-commands\"}");
    g_assert_cmpstr(commands, ==,
                    "{\"return\": [{\"name\": \"qmp_capabilities\"}, "
                    "{\"name\": \"query-version\"}, {\"name\": \"query-commands\"}, "
                    "{\"name\": \"human-monitor-command\"}, {\"name\": \"quit\"}, "
                    "{\"name\": \"query-status\"}, {\"name\": \"stop\"}, "
                    "{\"name\": \"cont\"}, {\"name\": \"system_powerdown\"}, "
                    "{\"name\": \"migrate\"}, "
                    "{\"name\": \"migrate_cancel\"}]}");
}

/* stop keeps other stopped states' names; cont refuses after shutdown. */
static void test_runstate_edges(Fixture *f, gconstpointer data)
{
    f->negotiated = true;
    runstate_set(f->m, RUN_STATE_POSTMIGRATE);
    assert_reply(f, "{\"execute\": \"stop\"}", "{\"return\": {}}");
    assert_reply(f, "{\"execute\": \"query-status\"}",
                 "{\"return\": {\"status\": \"postmigrate\", \"singlestep\": false, "
                 "\"running\": false}}");
    runstate_set(f->m, RUN_STATE_INMIGRATE);
    assert_reply(f, "{\"execute\": \"stop\"}", "{\"return\": {}}");
    g_assert_true(f->m->config->start_paused);
    runstate_set(f->m, RUN_STATE_SHUTDOWN);
    assert_reply(f, "{\"execute\": \"cont\"}",
                 GENERIC("Resetting the Virtual Machine is required (state shutdown)"));
}

/* ---- over sockets: the client runs in a thread, the test thread runs the loop ---- */

typedef struct ClientRun {
    Fixture *f;
    void (*fn)(Fixture *f);
    gint done;
} ClientRun;

static gpointer client_thread(gpointer opaque)
{
    ClientRun *run = opaque;

    run->fn(run->f);
    g_atomic_int_set(&run->done, 1);
    g_main_context_wakeup(run->f->m->main_context);
    return NULL;
}

static void run_client(Fixture *f, void (*fn)(Fixture *f))
{
    ClientRun run = { f, fn, 0 };
    GThread *thread = g_thread_new("qmp-client", client_thread, &run);

    while (!g_atomic_int_get(&run.done)) {
        g_main_context_iteration(f->m->main_context, TRUE);
    }
    g_thread_join(thread);
}

static QmpClient *open_client(Fixture *f)
{
    g_autoptr(GError) err = NULL;
    QmpClient *c = qmp_client_open(f->sock, 5000, &err);

    g_assert_no_error(err);
    return c;
}

static void session_client(Fixture *f)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(QmpClient) c = qmp_client_connect(f->sock, 5000, &err);
    g_autoptr(JsonNode) ret = NULL;
    g_autoptr(JsonObject) ev = NULL;
    g_autoptr(JsonObject) reply = NULL;
    g_autofree char *hmp = NULL;
    JsonObject *greeting, *ts;
    static const char pretty[] =
        "{\n  \"execute\": \"query-status\",\n  \"id\": \"p\"\n}\n";

    g_assert_no_error(err);
    greeting = qmp_client_greeting(c);
    g_assert_cmpstr(json_object_get_string_member(
                        json_object_get_object_member(greeting, "version"), "package"),
                    ==, "frostvm 0.1.0");
    g_assert_cmpuint(json_array_get_length(
                         json_object_get_array_member(greeting, "capabilities")), ==, 0);
    g_assert_null(qmp_client_execute(c, "query-status", NULL, &err));
    g_assert_cmpstr(qmp_client_last_error_class(c), ==, "CommandNotFound");
    g_clear_error(&err);
    g_assert_true(qmp_client_negotiate(c, &err));

    ret = qmp_client_execute(c, "stop", NULL, &err);
    g_assert_no_error(err);
    ev = qmp_client_wait_event(c, "STOP", 5000, &err);
    g_assert_no_error(err);
    ts = json_object_get_object_member(ev, "timestamp");
    g_assert_cmpint(json_object_get_int_member(ts, "seconds"), >, 1600000000);
    g_assert_cmpint(json_object_get_int_member(ts, "microseconds"), <, 1000000);
    g_assert_false(json_object_has_member(ev, "data"));
    g_clear_pointer(&ev, json_object_unref);

    hmp = qmp_client_hmp(c, "cont", &err);
    g_assert_no_error(err);
    g_assert_cmpstr(hmp, ==, "");
    ev = qmp_client_wait_event(c, "RESUME", 5000, &err);
    g_assert_no_error(err);

    /* A pretty-printed request spanning lines, then garbage: both answered. */
    g_assert_true(qmp_client_send_raw(c, pretty, strlen(pretty), &err));
    reply = qmp_client_read_reply(c, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(json_object_get_string_member(reply, "id"), ==, "p");
    g_clear_pointer(&reply, json_object_unref);
    g_assert_true(qmp_client_send_raw(c, "{bad}\n", 6, &err));
    reply = qmp_client_read_reply(c, &err);
    g_assert_true(g_str_has_prefix(
        json_object_get_string_member(json_object_get_object_member(reply, "error"),
                                      "desc"),
        "JSON parse error, "));
    g_clear_pointer(&reply, json_object_unref);
    g_clear_pointer(&ret, json_node_unref);
    ret = qmp_client_execute(c, "query-version", NULL, &err);
    g_assert_no_error(err);
}

static void test_unix_session(Fixture *f, gconstpointer data)
{
    g_autofree char *spec = g_strdup_printf("unix:%s,server=on,wait=off", f->sock);
    g_autoptr(GError) err = NULL;

    g_assert_true(monitor_add_qmp(f->mon, spec, &err));
    g_assert_no_error(err);
    run_client(f, session_client);
}

/* The old syntax "server,nowait" too; and a client that sends 1 MiB+ of junk. */
static void overlong_client(Fixture *f)
{
    g_autoptr(QmpClient) c = open_client(f);
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) reply = NULL;
    g_autoptr(JsonNode) ret = NULL;
    g_autofree char *junk = g_strnfill(QMP_INPUT_MAX + 4096, 'z');
    const char *desc;

    g_assert_true(qmp_client_send_raw(c, "{\"execute\": \"", 13, &err));
    g_assert_true(qmp_client_send_raw(c, junk, strlen(junk), &err));
    g_assert_true(qmp_client_send_raw(c, "\"}\n", 3, &err));
    reply = qmp_client_read_reply(c, &err);
    g_assert_no_error(err);
    desc = json_object_get_string_member(json_object_get_object_member(reply, "error"),
                                         "desc");
    g_assert_true(g_str_has_prefix(desc, "JSON parse error, more than 1048576 bytes"));
    /* The connection survives and serves the next line. */
    ret = qmp_client_execute(c, "query-status", NULL, &err);
    g_assert_no_error(err);
}

static void test_overlong_input(Fixture *f, gconstpointer data)
{
    g_autofree char *spec = g_strdup_printf("unix:%s,server,nowait", f->sock);

    g_assert_true(monitor_add_qmp(f->mon, spec, NULL));
    run_client(f, overlong_client);
}

/* Each client negotiates on its own; events go to negotiated clients only. */
static void two_clients(Fixture *f)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(QmpClient) a = open_client(f);
    g_autoptr(QmpClient) b = qmp_client_connect(f->sock, 5000, &err);
    g_autoptr(JsonNode) ret = NULL;
    g_autoptr(JsonObject) ev = NULL;

    g_assert_no_error(err);
    g_assert_null(qmp_client_execute(b, "stop", NULL, &err));
    g_assert_cmpstr(err->message, ==,
                    "Expecting capabilities negotiation with 'qmp_capabilities'");
    g_clear_error(&err);
    ret = qmp_client_execute(a, "stop", NULL, &err);
    g_assert_no_error(err);
    ev = qmp_client_wait_event(a, "STOP", 5000, &err);
    g_assert_no_error(err);
    g_clear_pointer(&ret, json_node_unref);
    /* b saw no event before negotiating: its next message is its own reply. */
    g_assert_true(qmp_client_negotiate(b, &err));
    g_assert_cmpuint(qmp_client_events(b)->len, ==, 0);
    ret = qmp_client_execute(b, "cont", NULL, &err);
    g_assert_no_error(err);
    g_clear_pointer(&ev, json_object_unref);
    ev = qmp_client_wait_event(a, "RESUME", 5000, &err);
    g_assert_no_error(err);
    g_clear_pointer(&ev, json_object_unref);
    ev = qmp_client_wait_event(b, "RESUME", 5000, &err);
    g_assert_no_error(err);
}

static void test_two_clients(Fixture *f, gconstpointer data)
{
    g_autofree char *spec = g_strdup_printf("unix:%s,server=on,wait=off", f->sock);

    g_assert_true(monitor_add_qmp(f->mon, spec, NULL));
    run_client(f, two_clients);
}

/* Events from another thread arrive in order, with their emit-time stamps. */
#define THREAD_EVENTS 200

static gpointer emitter_thread(gpointer opaque)
{
    Fixture *f = opaque;

    for (int i = 0; i < THREAD_EVENTS; i++) {
        JsonObject *data = json_object_new();

        json_object_set_string_member(data, "status", i % 2 ? "active" : "setup");
        monitor_emit_event(f->mon, "MIGRATION", data);
    }
    return NULL;
}

static void thread_events_client(Fixture *f)
{
    g_autoptr(QmpClient) c = open_client(f);
    g_autoptr(GError) err = NULL;
    gint64 last = 0;
    GThread *emitter = g_thread_new("emitter", emitter_thread, f);

    for (int i = 0; i < THREAD_EVENTS; i++) {
        g_autoptr(JsonObject) ev = qmp_client_wait_event(c, "MIGRATION", 5000, &err);
        JsonObject *ts;
        gint64 t;

        g_assert_no_error(err);
        g_assert_cmpstr(json_object_get_string_member(
                            json_object_get_object_member(ev, "data"), "status"),
                        ==, i % 2 ? "active" : "setup");
        ts = json_object_get_object_member(ev, "timestamp");
        t = json_object_get_int_member(ts, "seconds") * G_USEC_PER_SEC +
            json_object_get_int_member(ts, "microseconds");
        g_assert_cmpint(t, >=, last);
        last = t;
    }
    g_thread_join(emitter);
}

static void test_events_from_thread(Fixture *f, gconstpointer data)
{
    g_autofree char *spec = g_strdup_printf("unix:%s,server=on,wait=off", f->sock);

    g_assert_true(monitor_add_qmp(f->mon, spec, NULL));
    run_client(f, thread_events_client);
}

/*
 * Held events (a snapshot's pause) wait, in order and with the time they
 * were emitted, until released; a query in between is still answered.
 */
static gint64 event_time_us(JsonObject *ev)
{
    JsonObject *ts = json_object_get_object_member(ev, "timestamp");

    return json_object_get_int_member(ts, "seconds") * G_USEC_PER_SEC +
           json_object_get_int_member(ts, "microseconds");
}

static void held_events_client(Fixture *f)
{
    g_autoptr(QmpClient) c = open_client(f);
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) stop = NULL;
    g_autoptr(JsonObject) resume = NULL;
    g_autoptr(JsonNode) ret = NULL;
    gint64 released;

    monitor_events_hold(f->mon);
    monitor_events_hold(f->mon);    /* nested */
    monitor_emit_event(f->mon, "STOP", NULL);
    monitor_emit_event(f->mon, "RESUME", NULL);
    ret = qmp_client_execute(c, "query-status", NULL, &err);
    g_assert_no_error(err);
    g_assert_null(qmp_client_wait_event(c, "STOP", 200, NULL));
    monitor_events_release(f->mon);
    g_assert_null(qmp_client_wait_event(c, "STOP", 200, NULL));
    released = g_get_real_time();
    monitor_events_release(f->mon);
    stop = qmp_client_wait_event(c, "STOP", 5000, &err);
    g_assert_no_error(err);
    resume = qmp_client_wait_event(c, "RESUME", 5000, &err);
    g_assert_no_error(err);
    /* Stamped when emitted, over 400 ms before they could be sent. */
    g_assert_cmpint(event_time_us(stop), <=, event_time_us(resume));
    g_assert_cmpint(event_time_us(resume), <, released - 300 * 1000);
}

static void test_held_events(Fixture *f, gconstpointer data)
{
    g_autofree char *spec = g_strdup_printf("unix:%s,server=on,wait=off", f->sock);

    g_assert_true(monitor_add_qmp(f->mon, spec, NULL));
    run_client(f, held_events_client);
}

/*
 * A client that stops reading must not stall the main loop: events for it
 * pile up in its buffer while another client keeps being served.
 */
#define SLOW_EVENTS 100000
#define SLOW_EVENTS_MAX_US (60 * G_USEC_PER_SEC)

static void test_slow_client(Fixture *f, gconstpointer data)
{
    g_autofree char *spec = g_strdup_printf("unix:%s,server=on,wait=off", f->sock);
    g_autoptr(GError) err = NULL;
    g_autoptr(QmpClient) slow = NULL;
    MonitorSession *slow_sess;
    gint64 start;
    int received = 0;

    g_assert_true(monitor_add_qmp(f->mon, spec, NULL));
    /* Connect and negotiate by hand: the loop runs only when we iterate it. */
    {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        int one = 4096;

        g_strlcpy(addr.sun_path, f->sock, sizeof(addr.sun_path));
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &one, sizeof(one));
        g_assert_cmpint(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), ==, 0);
        while (f->mon->sessions->len < 1) {
            g_main_context_iteration(f->m->main_context, TRUE);
        }
        g_assert_cmpint(write(fd, "{\"execute\": \"qmp_capabilities\"}\n", 32), ==, 32);
        slow_sess = g_ptr_array_index(f->mon->sessions, 0);
        while (!slow_sess->negotiated) {
            g_main_context_iteration(f->m->main_context, TRUE);
        }
        slow = qmp_client_new_from_fd(fd, &err);   /* reads the greeting */
        g_assert_no_error(err);
    }
    /* Own the context as the main loop would, so events go out directly. */
    g_assert_true(g_main_context_acquire(f->m->main_context));
    start = g_get_monotonic_time();
    for (int i = 0; i < SLOW_EVENTS; i++) {
        JsonObject *d = json_object_new();

        json_object_set_string_member(d, "status", "active");
        monitor_emit_event(f->mon, "MIGRATION", d);
    }
    g_main_context_release(f->m->main_context);
    /*
     * A blocking write would hang here for good: the client reads nothing
     * yet. The bound (half the test's timeout) only has to tell that apart
     * from slow queuing: ~10 MB take under two seconds in a normal build but
     * five to six and a half under ASan with other tests on two CPUs.
     */
    g_assert_cmpint(g_get_monotonic_time() - start, <, SLOW_EVENTS_MAX_US);
    g_assert_cmpuint(monitor_conn_pending(slow_sess->conn), >, 1024 * 1024);
    /* The slow client's buffer kept everything; now drain it. */
    while (received < SLOW_EVENTS) {
        g_autoptr(JsonObject) ev = NULL;

        g_main_context_iteration(f->m->main_context, FALSE);
        ev = qmp_client_wait_event(slow, "MIGRATION", 0, NULL);
        if (ev) {
            received++;
        }
    }
    g_assert_cmpint(received, ==, SLOW_EVENTS);
}

/* echo '{...}' | socat - UNIX-CONNECT:... shuts down its side after sending. */
static void half_close_client(Fixture *f)
{
    g_autoptr(QmpClient) c = open_client(f);
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) reply = NULL;

    g_assert_true(qmp_client_send_raw(c, "{\"execute\": \"query-status\"}\n", 28, &err));
    shutdown(qmp_client_fd(c), SHUT_WR);
    reply = qmp_client_read_reply(c, &err);
    g_assert_no_error(err);
    g_assert_true(json_object_has_member(reply, "return"));
    g_assert_true(qmp_client_wait_closed(c, 5000, &err));
}

static void test_half_close(Fixture *f, gconstpointer data)
{
    g_autofree char *spec = g_strdup_printf("unix:%s,server=on,wait=off", f->sock);

    g_assert_true(monitor_add_qmp(f->mon, spec, NULL));
    run_client(f, half_close_client);
    /* The session was freed once its reply had gone out. */
    while (f->mon->sessions->len) {
        g_main_context_iteration(f->m->main_context, TRUE);
    }
}

/* quit: the reply comes before SHUTDOWN, then the main loop is told to stop. */
static void quit_client(Fixture *f)
{
    g_autoptr(QmpClient) c = open_client(f);
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) reply = NULL;
    g_autoptr(JsonObject) ev = NULL;
    JsonObject *data;

    g_assert_true(qmp_client_send_raw(c, "{\"execute\": \"quit\"}\n", 20, &err));
    reply = qmp_client_read_reply(c, &err);
    g_assert_no_error(err);
    g_assert_true(json_object_has_member(reply, "return"));
    g_assert_cmpuint(qmp_client_events(c)->len, ==, 0);
    ev = qmp_client_wait_event(c, "SHUTDOWN", 5000, &err);
    g_assert_no_error(err);
    data = json_object_get_object_member(ev, "data");
    g_assert_false(json_object_get_boolean_member(data, "guest"));
    g_assert_cmpstr(json_object_get_string_member(data, "reason"), ==, "host-qmp-quit");
}

static void test_quit(Fixture *f, gconstpointer data)
{
    g_autofree char *spec = g_strdup_printf("unix:%s,server=on,wait=off", f->sock);

    g_assert_true(monitor_add_qmp(f->mon, spec, NULL));
    run_client(f, quit_client);
    g_assert_true(f->m->shutdown_requested);
    g_assert_cmpstr(f->m->shutdown_reason, ==, "host-qmp-quit");
    g_assert_cmpint(runstate_get(f->m), ==, RUN_STATE_SHUTDOWN);
}

/* TCP on loopback; the port is whatever is free. */
static void test_tcp(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(QmpClient) c = NULL;
    int port = 0;
    int fd;
    struct sockaddr_in addr = { .sin_family = AF_INET };

    for (int p = 44440; p < 44540 && !port; p++) {
        g_autofree char *spec = g_strdup_printf("tcp:127.0.0.1:%d,server=on,wait=off,"
                                                "nodelay=on", p);

        if (monitor_add_qmp(f->mon, spec, NULL)) {
            port = p;
        }
    }
    if (!port) {
        g_test_skip("no free loopback TCP port in 44440-44539");
        return;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_assert_cmpint(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), ==, 0);
    while (f->mon->sessions->len < 1) {
        g_main_context_iteration(f->m->main_context, TRUE);
    }
    c = qmp_client_new_from_fd(fd, &err);
    g_assert_no_error(err);
    g_assert_nonnull(qmp_client_greeting(c));
}

/* wait=on: monitor_add_qmp() returns once the first client is connected. */
static gpointer late_connect_thread(gpointer opaque)
{
    Fixture *f = opaque;
    g_autoptr(GError) err = NULL;

    g_usleep(100 * 1000);
    return qmp_client_connect(f->sock, 5000, &err);
}

static void test_wait_on(Fixture *f, gconstpointer data)
{
    g_autofree char *spec = g_strdup_printf("unix:%s,server=on", f->sock);
    GThread *thread = g_thread_new("late", late_connect_thread, f);
    QmpClient *c;

    g_assert_true(monitor_add_qmp(f->mon, spec, NULL));
    g_assert_cmpuint(f->mon->sessions->len, ==, 1);
    /* The greeting is already queued; the client thread reads it. */
    c = g_thread_join(thread);
    g_assert_nonnull(c);
    qmp_client_free(c);
}

typedef struct SpecCase {
    const char *spec;
    const char *error;        /* substring, NULL when valid */
    MonitorSpecKind kind;
    const char *where;        /* path or host:port */
    bool wait;
} SpecCase;

static const SpecCase spec_cases[] = {
    { "stdio", NULL, MONITOR_SPEC_STDIO, NULL, false },
    { "unix:/x/q.sock,server=on,wait=off", NULL, MONITOR_SPEC_UNIX, "/x/q.sock", false },
    { "unix:/x/q.sock,server,nowait", NULL, MONITOR_SPEC_UNIX, "/x/q.sock", false },
    { "unix:/x/q.sock,server=on", NULL, MONITOR_SPEC_UNIX, "/x/q.sock", true },
    { "unix:/x/a,,b.sock,server=on,wait=off", NULL, MONITOR_SPEC_UNIX, "/x/a,b.sock",
      false },
    { "tcp:127.0.0.1:4444,server=on,wait=off", NULL, MONITOR_SPEC_TCP,
      "127.0.0.1:4444", false },
    { "tcp::4444,server,nowait", NULL, MONITOR_SPEC_TCP, ":4444", false },
    { "tcp:[::1]:4444,server=on,wait=off", NULL, MONITOR_SPEC_TCP, "::1:4444", false },
    { "unix:/x/q.sock", "frostvm monitors only listen", 0, NULL, false },
    { "unix:/x/q.sock,server=off", "frostvm monitors only listen", 0, NULL, false },
    { "unix:,server=on", "path is empty", 0, NULL, false },
    { "unix:/x,server=maybe", "expects 'on' or 'off', not 'maybe'", 0, NULL, false },
    { "unix:/x,server=on,bogus=1", "unknown option 'bogus'", 0, NULL, false },
    { "tcp:4444,server=on", "expected tcp:HOST:PORT", 0, NULL, false },
    { "vc", "unknown kind", 0, NULL, false },
};

static void test_spec_parse(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(spec_cases); i++) {
        const SpecCase *t = &spec_cases[i];
        g_autoptr(GError) err = NULL;
        MonitorSpec spec;
        bool ok = monitor_spec_parse(t->spec, &spec, &err);

        if (t->error) {
            g_assert_false(ok);
            if (!strstr(err->message, t->error)) {
                g_error("%s: got '%s', expected '%s'", t->spec, err->message, t->error);
            }
            continue;
        }
        g_assert_no_error(err);
        g_assert_cmpint(spec.kind, ==, t->kind);
        if (t->kind == MONITOR_SPEC_UNIX) {
            g_assert_cmpstr(spec.path, ==, t->where);
        } else if (t->kind == MONITOR_SPEC_TCP) {
            g_autofree char *where = g_strdup_printf("%s:%s", spec.host, spec.port);

            g_assert_cmpstr(where, ==, t->where);
        }
        if (t->kind != MONITOR_SPEC_STDIO) {
            g_assert_cmpint(spec.wait, ==, t->wait);
        }
        monitor_spec_clear(&spec);
    }
}

static void test_listen_error(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;

    g_assert_false(monitor_add_qmp(f->mon,
                                   "unix:/nonexistent-dir/q.sock,server=on,wait=off",
                                   &err));
    g_assert_nonnull(strstr(err->message, "cannot listen on unix socket "
                                          "'/nonexistent-dir/q.sock'"));
}

#define ADD(path, fn) \
    g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    ADD("/qmp/dispatch/negotiation", test_negotiation);
    ADD("/qmp/dispatch/request-shape", test_request_shape);
    ADD("/qmp/dispatch/reply-text", test_reply_text);
    ADD("/qmp/dispatch/core-commands", test_core_commands);
    ADD("/qmp/dispatch/runstate-edges", test_runstate_edges);
    ADD("/qmp/server/unix-session", test_unix_session);
    ADD("/qmp/server/overlong-input", test_overlong_input);
    ADD("/qmp/server/two-clients", test_two_clients);
    ADD("/qmp/server/events-from-thread", test_events_from_thread);
    ADD("/qmp/server/held-events", test_held_events);
    ADD("/qmp/server/slow-client", test_slow_client);
    ADD("/qmp/server/half-close", test_half_close);
    ADD("/qmp/server/quit", test_quit);
    ADD("/qmp/server/tcp", test_tcp);
    ADD("/qmp/server/wait-on", test_wait_on);
    ADD("/qmp/server/listen-error", test_listen_error);
    g_test_add_func("/qmp/server/spec-parse", test_spec_parse);
    return g_test_run();
}
