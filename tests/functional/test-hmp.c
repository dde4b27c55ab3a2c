/* SPDX-License-Identifier: GPL-2.0-or-later */
/* End-to-end: HMP through QMP's human-monitor-command, on -monitor stdio and on a unix socket. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vm-helper.h"

static TestVm *start_vm(TestVmFixture *f, TestVmFlags flags, const char *const *extra)
{
    g_autoptr(GError) err = NULL;
    PayloadProgress p;

    f->vm = test_vm_new(flags);
    test_vm_add_guest(f->vm, test_vm_any_accel(), "mem=8M report_ms=50");
    for (int i = 0; extra && extra[i]; i++) {
        test_vm_add_args(f->vm, extra[i], NULL);
    }
    test_vm_launch_or_fail(f->vm);
    test_vm_wait_progress(f->vm, TEST_VM_TIMEOUT_MS, &p, &err);
    g_assert_no_error(err);
    return f->vm;
}

/* Run @line; HMP failures are text, never QMP errors. */
static char *hmp(QmpClient *c, const char *line)
{
    g_autoptr(GError) err = NULL;
    char *out = qmp_client_hmp(c, line, &err);

    g_assert_no_error(err);
    g_assert_nonnull(out);
    return out;
}

static void hmp_is(QmpClient *c, const char *line, const char *expected)
{
    g_autofree char *out = hmp(c, line);

    g_assert_cmpstr(out, ==, expected);
}

static void hmp_has(QmpClient *c, const char *line, const char *part)
{
    g_autofree char *out = hmp(c, line);

    if (!strstr(out, part)) {
        g_error("HMP '%s' printed '%s', which lacks '%s'", line, out, part);
    }
}

static void status_is(QmpClient *c, const char *status)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) ret = qmp_client_execute(c, "query-status", NULL, &err);

    g_assert_no_error(err);
    g_assert_cmpstr(json_object_get_string_member(json_node_get_object(ret), "status"), ==,
                    status);
}

static void wait_event(QmpClient *c, const char *name)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) ev = qmp_client_wait_event(c, name, TEST_VM_TIMEOUT_MS, &err);

    g_assert_no_error(err);
    test_vm_assert_event(ev, name);
}

static void assert_guest_progresses(TestVm *vm)
{
    g_autoptr(GError) err = NULL;
    PayloadProgress p;

    test_vm_log_skip(vm, TEST_VM_LOG_SERIAL);
    test_vm_wait_progress(vm, TEST_VM_TIMEOUT_MS, &p, &err);
    g_assert_no_error(err);
    g_assert_true(p.regs_ok);
    g_assert_cmpuint(p.errors, ==, 0);
}

/* info status, stop, cont: the same run state and events as QMP's commands. */
static void test_stop_cont(TestVmFixture *f, gconstpointer data)
{
    TestVm *vm = start_vm(f, TEST_VM_DEFAULT, NULL);
    QmpClient *c = test_vm_qmp(vm);
    gsize size;

    hmp_is(c, "info status", "VM status: running\r\n");
    hmp_is(c, "stop", "");
    wait_event(c, "STOP");
    status_is(c, "paused");
    hmp_is(c, "info status", "VM status: paused\r\n");
    size = test_vm_log_size(vm, TEST_VM_LOG_SERIAL);
    g_usleep(300 * 1000);
    g_assert_cmpuint(test_vm_log_size(vm, TEST_VM_LOG_SERIAL), ==, size);
    hmp_is(c, "cont", "");
    wait_event(c, "RESUME");
    status_is(c, "running");
    hmp_is(c, "info status", "VM status: running\r\n");
    assert_guest_progresses(vm);
    /* cpu-index is accepted (and has no effect here). */
    {
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonNode) ret = qmp_client_execute_json(
            c, "human-monitor-command",
            "{\"command-line\": \"info status\", \"cpu-index\": 0}", &err);

        g_assert_no_error(err);
        g_assert_cmpstr(json_node_get_string(ret), ==, "VM status: running\r\n");
    }
}

static void test_info_version(TestVmFixture *f, gconstpointer data)
{
    TestVm *vm = start_vm(f, TEST_VM_DEFAULT, NULL);
    QmpClient *c = test_vm_qmp(vm);
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) ret = qmp_client_execute(c, "query-version", NULL, &err);
    JsonObject *v = json_node_get_object(ret);
    JsonObject *q = json_object_get_object_member(v, "qemu");
    g_autofree char *expected = g_strdup_printf(
        "%" G_GINT64_FORMAT ".%" G_GINT64_FORMAT ".%" G_GINT64_FORMAT " (%s)\r\n",
        json_object_get_int_member(q, "major"), json_object_get_int_member(q, "minor"),
        json_object_get_int_member(q, "micro"), json_object_get_string_member(v, "package"));

    g_assert_no_error(err);
    hmp_is(c, "info version", expected);
}

static void test_help(TestVmFixture *f, gconstpointer data)
{
    static const char *const commands[] = {
        "cont", "help", "info", "migrate", "migrate_cancel", "migrate_incoming",
        "migrate_set_capability", "migrate_set_parameter", "quit", "stop",
    };
    static const char *const infos[] = {
        "status", "version", "migrate", "migrate_capabilities", "migrate_parameters",
    };
    TestVm *vm = start_vm(f, TEST_VM_DEFAULT, NULL);
    QmpClient *c = test_vm_qmp(vm);
    g_autofree char *all = hmp(c, "help");
    g_autofree char *info = hmp(c, "info");
    g_auto(GStrv) lines = NULL;

    g_assert_true(g_str_has_suffix(all, "\r\n"));
    lines = g_strsplit(all, "\r\n", -1);
    for (guint i = 0; i < G_N_ELEMENTS(commands); i++) {
        bool found = false;
        g_autofree char *one = NULL;
        g_autofree char *line = g_strdup_printf("help %s", commands[i]);

        for (char **l = lines; *l && !found; l++) {
            found = g_str_has_prefix(*l, commands[i]) &&
                    ((*l)[strlen(commands[i])] == ' ');
        }
        if (!found) {
            g_error("'help' lacks %s: %s", commands[i], all);
        }
        /* help NAME shows that command alone. */
        one = hmp(c, line);
        g_assert_true(g_str_has_prefix(one, commands[i]));
        g_assert_true(g_str_has_suffix(one, "\r\n"));
        /* One line, except "help info", which lists the info subcommands as "info" does. */
        if (strcmp(commands[i], "info")) {
            g_assert_true(strstr(one, "\r\n") == one + strlen(one) - 2);
        } else {
            g_assert_cmpstr(one, ==, info);
        }
    }
    for (guint i = 0; i < G_N_ELEMENTS(infos); i++) {
        g_autofree char *want = g_strdup_printf("info %s ", infos[i]);
        g_autofree char *line = g_strdup_printf("help info %s", infos[i]);
        g_autofree char *one = NULL;

        if (!strstr(info, want)) {
            g_error("'info' lacks %s: %s", infos[i], info);
        }
        one = hmp(c, line);
        g_assert_true(g_str_has_prefix(one, want));
    }
    hmp_is(c, "help bogus", "unknown command: 'bogus'\r\n");
}

/* Mistakes print messages (not QMP errors) and change nothing. */
static void test_errors(TestVmFixture *f, gconstpointer data)
{
    TestVm *vm = start_vm(f, TEST_VM_DEFAULT, NULL);
    QmpClient *c = test_vm_qmp(vm);

    hmp_is(c, "frobnicate", "unknown command: 'frobnicate'\r\n");
    hmp_is(c, "info bogus", "unknown command: 'info bogus'\r\n");
    hmp_is(c, "INFO STATUS", "unknown command: 'INFO'\r\n");
    hmp_is(c, "stop extra",
           "stop: extraneous characters at the end of line\r\n"
           "Try \"help stop\" for more information\r\n");
    hmp_has(c, "info status extra", "extraneous characters");
    hmp_has(c, "stop; cont", "unknown command");
    hmp_has(c, "migrate_set_parameter max-bandwidth lots", "Error: ");
    hmp_is(c, "", "");
    hmp_is(c, "   ", "");
    {
        g_autofree char *huge = g_strnfill(100 * 1024, 'x');
        g_autofree char *out = hmp(c, huge);

        g_assert_true(g_str_has_prefix(out, "unknown command") || strstr(out, "long"));
    }
    /* None of that stopped the guest. */
    status_is(c, "running");
    g_assert_cmpuint(qmp_client_events(c)->len, ==, 0);
    assert_guest_progresses(vm);
}

/*
 * Quoting as in QEMU (double quotes with escapes) and also single quotes
 * (literal), in the middle of a word too. migrate_set_capability echoes its
 * first argument in its error, which shows how the line was split.
 */
typedef struct {
    const char *line;
    const char *output;
} HmpCase;

static const HmpCase quoting[] = {
    { "help \"stop\"", "stop  -- stop the guest's vCPUs\r\n" },
    { "help 'stop'", "stop  -- stop the guest's vCPUs\r\n" },
    { "help s'to'p", "stop  -- stop the guest's vCPUs\r\n" },
    { "help \"info\" 'status'", "info status  -- show the current VM status (running|paused)\r\n" },
    { "migrate_set_capability \"no such\" on", "Error: invalid parameter value: no such\r\n" },
    { "migrate_set_capability 'no such' on", "Error: invalid parameter value: no such\r\n" },
    { "migrate_set_capability no' 'such on", "Error: invalid parameter value: no such\r\n" },
    { "migrate_set_capability \"a\\\"b\" on", "Error: invalid parameter value: a\"b\r\n" },
    { "migrate_set_capability \"a\\\\b\" on", "Error: invalid parameter value: a\\b\r\n" },
    { "migrate_set_capability 'a\\\"b' on", "Error: invalid parameter value: a\\\"b\r\n" },
    { "migrate_set_capability '\"' on", "Error: invalid parameter value: \"\r\n" },
    { "migrate_set_capability \"'\" on", "Error: invalid parameter value: '\r\n" },
    { "migrate_set_capability no such on",
      "migrate_set_capability: extraneous characters at the end of line\r\n"
      "Try \"help migrate_set_capability\" for more information\r\n" },
    { "\"unterminated", "unterminated double quote in '\"unterminated'\r\n" },
    { "'unterminated", "unterminated single quote in ''unterminated'\r\n" },
};

static void test_quoting(TestVmFixture *f, gconstpointer data)
{
    TestVm *vm = start_vm(f, TEST_VM_DEFAULT, NULL);
    QmpClient *c = test_vm_qmp(vm);

    for (guint i = 0; i < G_N_ELEMENTS(quoting); i++) {
        g_test_message("HMP line: %s", quoting[i].line);
        hmp_is(c, quoting[i].line, quoting[i].output);
    }
    status_is(c, "running");
}

/*
 * The line users copy: migrate exec:'cat > ./vm_state' passes one URI with
 * blanks and a redirection; the image lands in the VM's working directory.
 */
static void test_quoting_migrate(TestVmFixture *f, gconstpointer data)
{
    TestVm *vm = start_vm(f, TEST_VM_DEFAULT, NULL);
    QmpClient *c = test_vm_qmp(vm);
    g_autofree char *image = test_vm_path(vm, "vm_state");
    g_autoptr(GError) err = NULL;
    gint64 deadline = g_get_monotonic_time() + TEST_VM_TIMEOUT_MS * (gint64)1000;
    struct stat st;

    hmp_is(c, "migrate -d exec:'cat > ./vm_state'", "");
    for (;;) {
        g_autoptr(JsonObject) ev = qmp_client_wait_event(c, "MIGRATION", TEST_VM_TIMEOUT_MS,
                                                         &err);
        const char *st_name;

        g_assert_no_error(err);
        st_name = json_object_get_string_member(json_object_get_object_member(ev, "data"),
                                                "status");
        g_assert_cmpstr(st_name, !=, "failed");
        if (!strcmp(st_name, "completed")) {
            break;
        }
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
    }
    g_assert_cmpint(stat(image, &st), ==, 0);
    g_assert_cmpint(st.st_size, >, 0);
    hmp_has(c, "info migrate", "completed");
}

/* info status names the reason for a pause as QEMU does: "paused (prelaunch)". */
static void test_info_status_prelaunch(TestVmFixture *f, gconstpointer data)
{
    static const char *const extra[] = { "-S", NULL };
    QmpClient *c;

    f->vm = test_vm_new(TEST_VM_DEFAULT);
    test_vm_add_guest(f->vm, test_vm_any_accel(), "mem=8M report_ms=50");
    test_vm_add_args(f->vm, extra[0], NULL);
    test_vm_launch_or_fail(f->vm);
    c = test_vm_qmp(f->vm);
    hmp_is(c, "info status", "VM status: paused (prelaunch)\r\n");
    hmp_is(c, "cont", "");
    wait_event(c, "RESUME");
    hmp_is(c, "info status", "VM status: running\r\n");
    assert_guest_progresses(f->vm);
}

/* quit through HMP: an empty reply, SHUTDOWN host-qmp-quit, status 0. */
static void test_quit(TestVmFixture *f, gconstpointer data)
{
    TestVm *vm = start_vm(f, TEST_VM_DEFAULT, NULL);
    QmpClient *c = test_vm_qmp(vm);
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) ev = NULL;
    int status = -1;

    hmp_is(c, "quit", "");
    ev = qmp_client_wait_event(c, "SHUTDOWN", TEST_VM_TIMEOUT_MS, &err);
    g_assert_no_error(err);
    test_vm_assert_event(ev, "SHUTDOWN");
    g_assert_cmpstr(json_object_get_string_member(json_object_get_object_member(ev, "data"),
                                                  "reason"), ==, "host-qmp-quit");
    g_assert_true(test_vm_wait_exit(vm, TEST_VM_TIMEOUT_MS, &status, &err));
    g_assert_cmpint(status, ==, 0);
}

static void write_all(int fd, const char *text)
{
    gsize len = strlen(text);

    while (len) {
        ssize_t n = write(fd, text, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        g_assert_cmpint(n, >, 0);
        text += n;
        len -= n;
    }
}

static void wait_stdout(TestVm *vm, const char *needle)
{
    g_autoptr(GError) err = NULL;

    test_vm_wait_log(vm, TEST_VM_LOG_STDOUT, needle, TEST_VM_TIMEOUT_MS, NULL, &err);
    g_assert_no_error(err);
}

/* -monitor stdio with stdin a pipe: commands work; at EOF the VM keeps running. */
static void test_monitor_stdio(TestVmFixture *f, gconstpointer data)
{
    static const char *const extra[] = { "-monitor", "stdio", NULL };
    TestVm *vm = start_vm(f, TEST_VM_STDIN_PIPE, extra);
    QmpClient *c = test_vm_qmp(vm);
    int in = test_vm_stdin_fd(vm);

    wait_stdout(vm, "monitor - type 'help'");
    write_all(in, "info status\n");
    wait_stdout(vm, "VM status: running");
    write_all(in, "stop\n");
    wait_event(c, "STOP");
    write_all(in, "info status\n");
    wait_stdout(vm, "VM status: paused");
    write_all(in, "frobnicate\n");
    wait_stdout(vm, "unknown command: 'frobnicate'");
    write_all(in, "cont\n");
    wait_event(c, "RESUME");
    write_all(in, "help 'stop'\n");
    wait_stdout(vm, "stop  -- stop the guest's vCPUs");
    /* The end of input ends the monitor, not the machine. */
    test_vm_close_stdin(vm);
    g_usleep(200 * 1000);
    g_assert_true(test_vm_is_running(vm));
    status_is(c, "running");
    assert_guest_progresses(vm);
}

static void test_monitor_stdio_quit(TestVmFixture *f, gconstpointer data)
{
    static const char *const extra[] = { "-monitor", "stdio", NULL };
    TestVm *vm = start_vm(f, TEST_VM_STDIN_PIPE, extra);
    g_autoptr(GError) err = NULL;
    int status = -1;

    write_all(test_vm_stdin_fd(vm), "quit\n");
    wait_event(test_vm_qmp(vm), "SHUTDOWN");
    g_assert_true(test_vm_wait_exit(vm, TEST_VM_TIMEOUT_MS, &status, &err));
    g_assert_cmpint(status, ==, 0);
}

/* -monitor stdio with stdin at its end already (/dev/null): the machine runs on. */
static void test_monitor_stdio_eof(TestVmFixture *f, gconstpointer data)
{
    static const char *const extra[] = { "-monitor", "stdio", NULL };
    TestVm *vm = start_vm(f, TEST_VM_DEFAULT, extra);

    g_usleep(200 * 1000);
    g_assert_true(test_vm_is_running(vm));
    status_is(test_vm_qmp(vm), "running");
    assert_guest_progresses(vm);
}

/* Read from @fd until the text so far contains @needle. */
static void socket_wait_for(int fd, GString *acc, const char *needle)
{
    gint64 deadline = g_get_monotonic_time() + TEST_VM_TIMEOUT_MS * (gint64)1000;

    while (!strstr(acc->str, needle)) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        char buf[4096];
        ssize_t n;
        int left = (int)((deadline - g_get_monotonic_time()) / 1000);

        if (left <= 0) {
            g_error("HMP socket: no '%s' in '%s'", needle, acc->str);
        }
        if (poll(&pfd, 1, left) <= 0) {
            continue;
        }
        n = read(fd, buf, sizeof(buf));
        g_assert_cmpint(n, >, 0);
        g_string_append_len(acc, buf, n);
    }
}

static int hmp_socket_connect(TestVm *vm)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    g_autofree char *path = test_vm_path(vm, "hmp.sock");
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_assert_cmpint(fd, >=, 0);
    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    g_assert_cmpint(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), ==, 0);
    return fd;
}

/* -monitor unix:PATH: HMP on a socket, two sessions at once, with QMP alongside. */
static void test_monitor_unix(TestVmFixture *f, gconstpointer data)
{
    /* Relative to the VM's working directory, its private one. */
    static const char *const extra[] = { "-monitor", "unix:hmp.sock,server=on,wait=off", NULL };
    TestVm *vm = start_vm(f, TEST_VM_DEFAULT, extra);
    g_autoptr(GString) a_out = g_string_new(NULL);
    g_autoptr(GString) b_out = g_string_new(NULL);
    int a = hmp_socket_connect(vm);
    int b = hmp_socket_connect(vm);

    socket_wait_for(a, a_out, "(frostvm) ");
    socket_wait_for(b, b_out, "(frostvm) ");
    write_all(a, "stop\n");
    wait_event(test_vm_qmp(vm), "STOP");
    write_all(b, "info status\n");
    socket_wait_for(b, b_out, "VM status: paused\r\n");
    write_all(a, "cont\n");
    wait_event(test_vm_qmp(vm), "RESUME");
    write_all(a, "info status\n");
    socket_wait_for(a, a_out, "VM status: running\r\n");
    close(a);
    write_all(b, "info version\n");
    socket_wait_for(b, b_out, "(frostvm ");
    close(b);
    status_is(test_vm_qmp(vm), "running");
    assert_guest_progresses(vm);
}

static void add(const char *path, void (*fn)(TestVmFixture *, gconstpointer))
{
    g_test_add(path, TestVmFixture, NULL, test_vm_fixture_setup, fn,
               test_vm_fixture_teardown);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    add("/hmp/qmp/stop-cont", test_stop_cont);
    add("/hmp/qmp/info-version", test_info_version);
    add("/hmp/qmp/info-status-prelaunch", test_info_status_prelaunch);
    add("/hmp/qmp/help", test_help);
    add("/hmp/qmp/errors", test_errors);
    add("/hmp/qmp/quoting", test_quoting);
    add("/hmp/qmp/quoting-migrate", test_quoting_migrate);
    add("/hmp/qmp/quit", test_quit);
    add("/hmp/stdio/commands", test_monitor_stdio);
    add("/hmp/stdio/quit", test_monitor_stdio_quit);
    add("/hmp/stdio/eof-at-start", test_monitor_stdio_eof);
    add("/hmp/unix", test_monitor_unix);
    return g_test_run();
}
