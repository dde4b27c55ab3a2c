/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests of the human monitor: line splitting and quoting, params checks, dispatch, help, sessions. */
#include "monitor/monitor-internal.h"

#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <glib-unix.h>

#include "accel/accel.h"
#include "system/machine.h"
#include "system/runstate.h"
#include "util/error.h"

/* ---- splitting ---- */

typedef struct SplitCase {
    const char *line;
    const char *words[5];    /* NULL-terminated; all NULL with error set = refused */
    const char *error;
} SplitCase;

static const SplitCase split_cases[] = {
    { "migrate exec:'cat > ./vm_state'", { "migrate", "exec:cat > ./vm_state" } },
    { "migrate -d \"exec:cat > x\"", { "migrate", "-d", "exec:cat > x" } },
    { "migrate \"exec:cat > ./vm_state\"", { "migrate", "exec:cat > ./vm_state" } },
    { "  info   status  ", { "info", "status" } },
    { "\tstop\r\n", { "stop" } },
    { "", { NULL } },
    { "   ", { NULL } },
    { "a \"\" b", { "a", "", "b" } },
    { "a''b \"c\"'d'", { "ab", "cd" } },
    { "\"a\\\"b\" 'a\\b'", { "a\"b", "a\\b" } },
    { "\"tab\\there\\\\\" \"\\x\"", { "tab\there\\", "\\x" } },
    { "say 'it''s'", { "say", "its" } },
    { "say \"it's\"", { "say", "it's" } },
    { "migrate 'exec:cat > x", { NULL }, "unterminated single quote" },
    { "migrate \"exec:cat > x", { NULL }, "unterminated double quote" },
    { "migrate \"x\\\"", { NULL }, "unterminated double quote" },
};

static void test_split(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(split_cases); i++) {
        const SplitCase *t = &split_cases[i];
        g_autoptr(GError) err = NULL;
        g_auto(GStrv) argv = NULL;
        bool ok = hmp_split_line(t->line, &argv, &err);
        guint n = 0;

        if (t->error) {
            g_assert_false(ok);
            g_assert_nonnull(strstr(err->message, t->error));
            continue;
        }
        g_assert_no_error(err);
        while (t->words[n]) {
            n++;
        }
        if (g_strv_length(argv) != n) {
            g_error("'%s': %u words, expected %u", t->line, g_strv_length(argv), n);
        }
        for (guint w = 0; w < n; w++) {
            g_assert_cmpstr(argv[w], ==, t->words[w]);
        }
    }
}

/* ---- params ---- */

typedef struct ParamsCase {
    const char *params;
    const char *line;
    const char *error;       /* exact, NULL when accepted */
} ParamsCase;

static const ParamsCase params_cases[] = {
    { "[-d] [-b] [-i] [-r] uri", "migrate exec:x", NULL },
    { "[-d] [-b] [-i] [-r] uri", "migrate -d exec:x", NULL },
    { "[-d] [-b] [-i] [-r] uri", "migrate -d -r exec:x", NULL },
    { "[-d] [-b] [-i] [-r] uri", "migrate", "migrate: missing argument 'uri'" },
    { "[-d] [-b] [-i] [-r] uri", "migrate -d", "migrate: missing argument 'uri'" },
    { "[-d] [-b] [-i] [-r] uri", "migrate -x exec:x", "migrate: unsupported option -x" },
    { "[-d] [-b] [-i] [-r] uri", "migrate a b",
      "migrate: extraneous characters at the end of line" },
    { "name value", "migrate_set_parameter downtime-limit -1", NULL },
    { "name value", "migrate_set_parameter -1 x", NULL },
    { "name value", "migrate_set_parameter max-bandwidth",
      "migrate_set_parameter: missing argument 'value'" },
    { "", "stop", NULL },
    { "", "stop now", "stop: extraneous characters at the end of line" },
    { NULL, "stop now", "stop: extraneous characters at the end of line" },
    { "[name [subcommand]]", "help", NULL },
    { "[command] [subcommand]", "help info status", NULL },
    { "[command] [subcommand]", "help info status x",
      "help: extraneous characters at the end of line" },
    { "words...", "say a b c", NULL },
};

static void test_params(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(params_cases); i++) {
        const ParamsCase *t = &params_cases[i];
        g_autoptr(GError) err = NULL;
        g_auto(GStrv) argv = NULL;
        bool ok;

        g_assert_true(hmp_split_line(t->line, &argv, NULL));
        ok = hmp_check_params(argv[0], t->params, g_strv_length(argv), argv, &err);
        if (!t->error) {
            if (!ok) {
                g_error("'%s' against '%s': %s", t->line, t->params, err->message);
            }
            continue;
        }
        g_assert_false(ok);
        g_assert_cmpstr(err->message, ==, t->error);
    }
}

static void test_arg_helpers(void)
{
    char *argv[] = { "migrate", "-d", "-r", "exec:x", "more", NULL };
    char *plain[] = { "migrate_set_parameter", "downtime-limit", "-1", NULL };
    g_autoptr(GError) err = NULL;
    bool on = false;

    g_assert_true(hmp_has_flag(5, argv, 'd'));
    g_assert_true(hmp_has_flag(5, argv, 'r'));
    g_assert_false(hmp_has_flag(5, argv, 'b'));
    g_assert_cmpstr(hmp_arg(5, argv, 0), ==, "exec:x");
    g_assert_cmpstr(hmp_arg(5, argv, 1), ==, "more");
    g_assert_null(hmp_arg(5, argv, 2));
    g_assert_cmpstr(hmp_arg(3, plain, 1), ==, "-1");

    g_assert_true(hmp_parse_on_off("on", &on, NULL) && on);
    g_assert_true(hmp_parse_on_off("off", &on, NULL) && !on);
    g_assert_false(hmp_parse_on_off("maybe", &on, &err));
    g_assert_cmpstr(err->message, ==, "Expected 'on' or 'off'");
}

static void test_parse_size(void)
{
    static const struct {
        const char *word;
        uint64_t unit;
        uint64_t value;
        bool ok;
    } cases[] = {
        { "0", 1, 0, true },
        { "4096", 1, 4096, true },
        { "100", 1 << 20, 100ULL << 20, true },
        { "1k", 1, 1024, true },
        { "2M", 1, 2ULL << 20, true },
        { "1.5G", 1, 3ULL << 29, true },
        { "4096B", 1 << 20, 4096, true },
        { "16E", 1, 0, false },
        { "15E", 1, 15ULL << 60, true },
        { "99999999999999999999", 1, 0, false },
        { "abc", 1, 0, false },
        { "-1", 1, 0, false },
        { "1Z", 1, 0, false },
        { "1MB", 1, 0, false },
        { "", 1, 0, false },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) err = NULL;
        uint64_t value = 0;
        bool ok = hmp_parse_size(cases[i].word, cases[i].unit, &value, &err);

        if (ok != cases[i].ok) {
            g_error("'%s': %s", cases[i].word, ok ? "accepted" : err->message);
        }
        if (ok) {
            g_assert_cmpuint(value, ==, cases[i].value);
        } else {
            g_autofree char *msg = g_strdup_printf("Invalid size %s", cases[i].word);

            g_assert_cmpstr(err->message, ==, msg);
        }
    }
}

static void test_crlf(void)
{
    g_autofree char *a = hmp_crlf("a\nb\r\nc");
    g_autofree char *b = hmp_crlf("\n\n");

    g_assert_cmpstr(a, ==, "a\r\nb\r\nc");
    g_assert_cmpstr(b, ==, "\r\n\r\n");
}

/* ---- dispatch, with a machine that has no guest ---- */

#include "tests/unit/fake-accel.h"

typedef struct Fixture {
    Machine *m;
    Monitor *mon;
    GPtrArray *calls;    /* what the test command saw: "argc|argv0|argv1..." */
} Fixture;

static Fixture *current;

static bool test_migrate(Machine *m, int argc, char **argv, GString *out, GError **errp)
{
    g_autofree char *joined = g_strjoinv("|", argv);

    g_ptr_array_add(current->calls, g_strdup_printf("%d|%s|d=%d|uri=%s", argc, joined,
                                                    hmp_has_flag(argc, argv, 'd'),
                                                    hmp_arg(argc, argv, 0)));
    if (!strcmp(hmp_arg(argc, argv, 0), "fail:")) {
        error_setg(errp, "cannot migrate to 'fail:'");
        return false;
    }
    return true;
}

static bool test_info_migrate(Machine *m, int argc, char **argv, GString *out,
                              GError **errp)
{
    g_string_append_printf(out, "argv0=%s\nStatus: none\n", argv[0]);
    return true;
}

static const HmpCommand test_commands[] = {
    /* help NULL: "help" shows the schema's doc of the QMP twin */
    { "migrate", "[-d] [-b] [-i] [-r] uri", NULL, test_migrate },
    { "info migrate", "", "show migration status", test_info_migrate },
    { NULL, NULL, NULL, NULL },
};

static void fixture_setup(Fixture *f, gconstpointer data)
{
    f->m = g_new0(Machine, 1);
    f->m->config = g_new0(MachineConfig, 1);
    f->m->main_context = g_main_context_new();
    f->m->accel = &fake_accel;
    f->m->vcpus_started = true;
    f->m->runstate = RUN_STATE_RUNNING;
    g_mutex_init(&f->m->runstate_lock);
    g_mutex_init(&f->m->transition_lock);
    f->mon = monitor_new(f->m);
    monitor_register_qmp(f->mon, monitor_qmp_commands);
    monitor_register_hmp(f->mon, monitor_hmp_commands);
    monitor_register_hmp(f->mon, test_commands);
    f->calls = g_ptr_array_new_with_free_func(g_free);
    current = f;
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    monitor_free(f->mon);
    g_main_context_unref(f->m->main_context);
    g_mutex_clear(&f->m->runstate_lock);
    g_mutex_clear(&f->m->transition_lock);
    g_free(f->m->shutdown_reason);
    g_free(f->m->config);
    g_free(f->m);
    g_ptr_array_unref(f->calls);
    current = NULL;
}

static void assert_hmp(Fixture *f, const char *line, const char *expected)
{
    g_autofree char *out = monitor_hmp_run(f->mon, line, NULL);

    g_assert_cmpstr(out, ==, expected);
}

static void test_dispatch(Fixture *f, gconstpointer data)
{
    assert_hmp(f, "info status", "VM status: running\r\n");
    assert_hmp(f, "stop", "");
    assert_hmp(f, "info status", "VM status: paused\r\n");
    assert_hmp(f, "cont", "");
    assert_hmp(f, "info status", "VM status: running\r\n");
    assert_hmp(f, "", "");
    assert_hmp(f, "foo", "unknown command: 'foo'\r\n");
    assert_hmp(f, "info foo", "unknown command: 'info foo'\r\n");
    assert_hmp(f, "stop now", "stop: extraneous characters at the end of line\r\n"
                              "Try \"help stop\" for more information\r\n");
    assert_hmp(f, "info status extra",
               "status: extraneous characters at the end of line\r\n"
               "Try \"help info status\" for more information\r\n");
    assert_hmp(f, "migrate", "migrate: missing argument 'uri'\r\n"
                             "Try \"help migrate\" for more information\r\n");
    assert_hmp(f, "migrate -x y", "migrate: unsupported option -x\r\n"
                                  "Try \"help migrate\" for more information\r\n");
    assert_hmp(f, "migrate 'oops", "unterminated single quote in 'migrate 'oops'\r\n");
    assert_hmp(f, "info migrate", "argv0=migrate\r\nStatus: none\r\n");
    assert_hmp(f, "info version", "7.2.0 (frostvm 0.1.0)\r\n");
    g_assert_cmpuint(f->calls->len, ==, 0);

    assert_hmp(f, "migrate -d \"exec:cat > x\"", "");
    assert_hmp(f, "migrate exec:'cat > ./vm_state'", "");
    assert_hmp(f, "migrate fail:", "Error: cannot migrate to 'fail:'\r\n");
    g_assert_cmpuint(f->calls->len, ==, 3);
    g_assert_cmpstr(g_ptr_array_index(f->calls, 0), ==,
                    "3|migrate|-d|exec:cat > x|d=1|uri=exec:cat > x");
    g_assert_cmpstr(g_ptr_array_index(f->calls, 1), ==,
                    "2|migrate|exec:cat > ./vm_state|d=0|uri=exec:cat > ./vm_state");

    runstate_set(f->m, RUN_STATE_POSTMIGRATE);
    assert_hmp(f, "info status", "VM status: paused (postmigrate)\r\n");
    runstate_set(f->m, RUN_STATE_SHUTDOWN);
    assert_hmp(f, "cont", "Error: Resetting the Virtual Machine is required "
                          "(state shutdown)\r\n");
}

static void test_help(Fixture *f, gconstpointer data)
{
    g_autofree char *all = monitor_hmp_run(f->mon, "help", NULL);
    g_autofree char *info = monitor_hmp_run(f->mon, "info", NULL);
    g_autofree char *help_info = monitor_hmp_run(f->mon, "help info", NULL);

    assert_hmp(f, "help stop", "stop  -- stop the guest's vCPUs\r\n");
    assert_hmp(f, "help info status",
               "info status  -- show the current VM status (running|paused)\r\n");
    assert_hmp(f, "help foo", "unknown command: 'foo'\r\n");
    /* No help text in the table: the schema's doc of the QMP twin. */
    assert_hmp(f, "help migrate",
               "migrate [-d] [-b] [-i] [-r] uri -- Start an outgoing migration (or a "
               "background snapshot, with that capability on) to a URI: exec:, file:, "
               "unix:, tcp:, fd:.\r\n");
    /* Sorted, with "info" in its place and no info subcommands. */
    g_assert_true(g_str_has_prefix(all, "cont  -- "));
    g_assert_nonnull(strstr(all, "\r\ninfo [subcommand] -- show various information "
                                 "about the system state\r\nmigrate "));
    g_assert_null(strstr(all, "info status"));
    g_assert_nonnull(strstr(all, "\r\nquit  -- quit frostvm\r\n"));
    /* "info" alone and "help info" list the subcommands. */
    g_assert_cmpstr(info, ==, help_info);
    g_assert_true(g_str_has_prefix(info, "info migrate  -- show migration status\r\n"
                                         "info status  -- "));
    g_assert_nonnull(strstr(info, "info version  -- show the version of frostvm\r\n"));
}

/* ---- sessions: a unix socket client, and stdio simulated with pipes ---- */

static char *read_until(int fd, GMainContext *ctx, const char *suffix, GString *acc)
{
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;

    while (!g_str_has_suffix(acc->str, suffix)) {
        char buf[4096];
        ssize_t n;

        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_main_context_iteration(ctx, FALSE);
        n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            g_string_append_len(acc, buf, n);
        } else {
            g_usleep(1000);
        }
    }
    return g_strdup(acc->str);
}

static void test_unix_session(Fixture *f, gconstpointer data)
{
    g_autofree char *dir = g_dir_make_tmp("frostvm-test-hmp-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "hmp.sock", NULL);
    g_autofree char *spec = g_strdup_printf("unix:%s,server=on,wait=off", path);
    g_autoptr(GString) acc = g_string_new(NULL);
    g_autofree char *big = g_strnfill(HMP_LINE_MAX + 100, 'a');
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    g_autofree char *got = NULL;
    int fd;

    g_assert_true(monitor_add_hmp(f->mon, spec, NULL));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    g_assert_cmpint(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), ==, 0);
    got = read_until(fd, f->m->main_context, "(frostvm) ", acc);
    g_assert_cmpstr(got, ==, "frostvm 0.1.0 monitor - type 'help' for more "
                             "information\r\n(frostvm) ");
    g_free(got);
    g_string_truncate(acc, 0);
    /* telnet sends CR LF; a line may come in pieces */
    g_assert_cmpint(write(fd, "info st", 7), ==, 7);
    g_assert_cmpint(write(fd, "atus\r\n", 6), ==, 6);
    got = read_until(fd, f->m->main_context, "(frostvm) ", acc);
    g_assert_cmpstr(got, ==, "VM status: running\r\n(frostvm) ");
    g_free(got);
    g_string_truncate(acc, 0);
    g_assert_cmpint(write(fd, "\n", 1), ==, 1);
    got = read_until(fd, f->m->main_context, "(frostvm) ", acc);
    g_assert_cmpstr(got, ==, "(frostvm) ");
    g_free(got);
    g_string_truncate(acc, 0);
    /* An over-long line is refused once, then the session goes on. */
    g_assert_cmpint(send(fd, big, strlen(big), MSG_NOSIGNAL), >, 0);
    got = read_until(fd, f->m->main_context, "(frostvm) ", acc);
    g_assert_cmpstr(got, ==, "Error: line longer than 64 KiB, dropped\r\n(frostvm) ");
    g_free(got);
    g_string_truncate(acc, 0);
    g_assert_cmpint(write(fd, "tail\ninfo status\n", 17), ==, 17);
    got = read_until(fd, f->m->main_context, "running\r\n(frostvm) ", acc);
    g_assert_cmpstr(got, ==, "VM status: running\r\n(frostvm) ");
    close(fd);
    monitor_free(f->mon);
    f->mon = monitor_new(f->m);    /* teardown frees a fresh one */
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    rmdir(dir);
}

/* Stdin at EOF: the monitor stops reading but stays; nothing quits. */
static void test_stdio_eof(Fixture *f, gconstpointer data)
{
    int in[2], out[2];
    g_autoptr(GString) acc = g_string_new(NULL);
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    MonitorSession *sess;

    g_assert_cmpint(pipe(in), ==, 0);
    g_assert_cmpint(pipe(out), ==, 0);
    monitor_session_start(f->mon, MONITOR_KIND_HMP, in[0], out[1], false);
    g_assert_cmpint(write(in[1], "info status\n", 12), ==, 12);
    close(in[1]);
    g_unix_set_fd_nonblocking(out[0], TRUE, NULL);
    while (!strstr(acc->str, "running\r\n(frostvm) ")) {
        char buf[4096];
        ssize_t n;

        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_main_context_iteration(f->m->main_context, FALSE);
        n = read(out[0], buf, sizeof(buf));
        if (n > 0) {
            g_string_append_len(acc, buf, n);
        }
    }
    g_assert_true(g_str_has_prefix(acc->str, "frostvm 0.1.0 monitor"));
    for (int i = 0; i < 20; i++) {
        g_main_context_iteration(f->m->main_context, FALSE);
    }
    g_assert_cmpuint(f->mon->sessions->len, ==, 1);
    sess = g_ptr_array_index(f->mon->sessions, 0);
    g_assert_true(sess->stdio);
    g_assert_false(f->m->shutdown_requested);
    monitor_session_free(sess);
    close(in[0]);
    close(out[0]);
    close(out[1]);
}

#define ADD(path, fn) \
    g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/hmp/split/quoting", test_split);
    g_test_add_func("/hmp/params/check", test_params);
    g_test_add_func("/hmp/params/helpers", test_arg_helpers);
    g_test_add_func("/hmp/params/size", test_parse_size);
    g_test_add_func("/hmp/output/crlf", test_crlf);
    ADD("/hmp/dispatch/commands", test_dispatch);
    ADD("/hmp/dispatch/help", test_help);
    ADD("/hmp/session/unix-socket", test_unix_session);
    ADD("/hmp/session/stdio-eof", test_stdio_eof);
    return g_test_run();
}
