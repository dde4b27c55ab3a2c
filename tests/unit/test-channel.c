/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests of migration channels: file: rename and cleanup, exec: exit status and early exit, unix:/tcp: round trips, cancel. */
#include "migration/channel.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <netdb.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "util/error.h"

static char *make_tmpdir(void)
{
    return g_dir_make_tmp("test-channel-XXXXXX", NULL);
}

/* Files in @dir other than @except (NULL: all). */
static guint count_files(const char *dir, const char *except)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *name;
    guint n = 0;

    while ((name = g_dir_read_name(d))) {
        if (!except || strcmp(name, except)) {
            n++;
        }
    }
    g_dir_close(d);
    return n;
}

static void remove_dir(const char *dir)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *name;

    while ((name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(dir, name, NULL);
        g_unlink(p);
    }
    g_dir_close(d);
    g_rmdir(dir);
}

static void test_file_rename_on_success(void)
{
    g_autofree char *dir = make_tmpdir();
    g_autofree char *path = g_build_filename(dir, "vm_state", NULL);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autoptr(GError) err = NULL;
    mode_t old_umask = umask(0);
    MigrationChannel *ch = channel_open_outgoing(uri, &err);
    g_autofree char *contents = NULL;
    GStatBuf st;

    umask(old_umask);
    g_assert_no_error(err);
    g_assert_true(channel_write_all(ch, "hello", 5, &err));
    /*
     * Until closed, nothing has a name (O_TMPFILE), or only a temporary one
     * where the file system lacks O_TMPFILE.
     */
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    g_assert_cmpuint(count_files(dir, NULL), <=, 1);
    g_assert_true(channel_close(ch, true, &err));
    g_assert_no_error(err);
    g_assert_true(g_file_get_contents(path, &contents, NULL, NULL));
    g_assert_cmpstr(contents, ==, "hello");
    /* The guest's memory is for its owner only, whatever the umask (issue 14). */
    g_assert_cmpint(g_stat(path, &st), ==, 0);
    g_assert_cmpint(st.st_mode & 07777, ==, 0600);
    g_assert_cmpuint(count_files(dir, "vm_state"), ==, 0);
    remove_dir(dir);
}

static void test_file_removed_on_failure(void)
{
    g_autofree char *dir = make_tmpdir();
    g_autofree char *path = g_build_filename(dir, "vm_state", NULL);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autoptr(GError) err = NULL;
    MigrationChannel *ch;

    /* An old image stays untouched by a failed save. */
    g_assert_true(g_file_set_contents(path, "old", 3, NULL));
    ch = channel_open_outgoing(uri, &err);
    g_assert_no_error(err);
    g_assert_true(channel_write_all(ch, "partial", 7, &err));
    g_assert_true(channel_close(ch, false, NULL));
    g_assert_cmpuint(count_files(dir, "vm_state"), ==, 0);
    {
        g_autofree char *contents = NULL;
        g_assert_true(g_file_get_contents(path, &contents, NULL, NULL));
        g_assert_cmpstr(contents, ==, "old");
    }
    remove_dir(dir);
}

static void test_file_missing_folder(void)
{
    g_autoptr(GError) err = NULL;
    MigrationChannel *ch = channel_open_outgoing("file:/nonexistent-folder-xyz/img", &err);

    g_assert_null(ch);
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err->message, "/nonexistent-folder-xyz"));
    g_clear_error(&err);
    ch = channel_open_incoming("file:/nonexistent-folder-xyz/img", &err);
    g_assert_null(ch);
    g_assert_nonnull(strstr(err->message, "cannot open migration file"));
}

static void test_exec_exit_status(void)
{
    g_autoptr(GError) err = NULL;
    MigrationChannel *ch = channel_open_outgoing("exec:cat > /dev/null; exit 3", &err);

    g_assert_no_error(err);
    g_assert_true(channel_write_all(ch, "data", 4, &err));
    g_assert_false(channel_close(ch, true, &err));
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err->message, "exited with status 3"));
}

/*
 * What the command inherits: the pipe as stdin and nothing else of ours (a
 * descriptor left open without close-on-exec stays behind), no blocked
 * signals, and SIGPIPE at its default even when we ignore it.
 */
static void test_exec_inheritance(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *dir = make_tmpdir();
    g_autofree char *out = g_build_filename(dir, "out", NULL);
    g_autofree char *uri = g_strdup_printf("exec:cat > /dev/null; ls /proc/self/fd > %s; "
                                           "grep -E '^Sig(Blk|Ign)' /proc/self/status >> %s",
                                           out, out);
    g_autofree char *contents = NULL;
    g_autofree char *leak_name = NULL;
    int null_fd = open("/dev/null", O_RDONLY);
    /* High, so that it cannot be a descriptor ls opens itself. */
    int leak = fcntl(null_fd, F_DUPFD, 50);
    sigset_t block, old;
    void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN);
    MigrationChannel *ch;

    g_assert_cmpint(leak, >=, 50);
    close(null_fd);
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    ch = channel_open_outgoing(uri, &err);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    signal(SIGPIPE, old_pipe);
    g_assert_no_error(err);
    g_assert_true(channel_write_all(ch, "data", 4, &err));
    g_assert_true(channel_close(ch, true, &err));
    g_assert_no_error(err);
    g_assert_true(g_file_get_contents(out, &contents, NULL, NULL));

    /* ls: 0, 1 and 2, and the directory it reads; not our descriptor. */
    leak_name = g_strdup_printf("\n%d\n", leak);
    g_assert_null(strstr(contents, leak_name));
    g_assert_nonnull(strstr(contents, "SigBlk:\t0000000000000000"));
    /* SIGPIPE is signal 13: bit 12 of the ignored mask. */
    const char *ign = strstr(contents, "SigIgn:\t");
    g_assert_nonnull(ign);
    g_assert_false(g_ascii_strtoull(ign + strlen("SigIgn:\t"), NULL, 16) & (1ULL << (SIGPIPE - 1)));
    close(leak);
    g_unlink(out);
    remove_dir(dir);
}

static void test_exec_signal(void)
{
    g_autoptr(GError) err = NULL;
    MigrationChannel *ch = channel_open_outgoing("exec:cat > /dev/null; kill -9 $$", &err);

    g_assert_no_error(err);
    g_assert_false(channel_close(ch, true, &err));
    g_assert_nonnull(strstr(err->message, "killed by signal 9"));
}

static void test_exec_early_exit(void)
{
    g_autoptr(GError) err = NULL;
    MigrationChannel *ch = channel_open_outgoing("exec:exit 2", &err);
    g_autofree uint8_t *buf = g_malloc0(8 << 20);
    bool ok = true;

    g_assert_no_error(err);
    /* More than any pipe holds: the write must meet the closed end. */
    for (int i = 0; i < 4 && ok; i++) {
        ok = channel_write_all(ch, buf, 8 << 20, &err);
    }
    g_assert_false(ok);
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err->message, "exec:exit 2 exited early (status 2)"));
    channel_close(ch, false, NULL);
}

/* Field @field (1-based, counted after the command's parentheses as 3) of /proc/PID/stat. */
static long proc_stat_field(const char *pid, int field)
{
    g_autofree char *path = g_strdup_printf("/proc/%s/stat", pid);
    g_autofree char *text = NULL;
    const char *p;
    long v = -1;

    if (!g_file_get_contents(path, &text, NULL, NULL) || !(p = strrchr(text, ')'))) {
        return -1;
    }
    p++;
    for (int f = 3; f <= field && *p; f++) {
        while (*p == ' ') {
            p++;
        }
        v = f == 3 ? -1 : strtol(p, NULL, 10);
        while (*p && *p != ' ') {
            p++;
        }
    }
    return v;
}

/*
 * The policies of the processes of the exec: command's group, read from
 * outside (a starved SCHED_IDLE command could not report its own on a busy
 * machine): its shell is our child, and leads the group. Returns how many
 * processes the group has; *@all_policy is true when each has @policy.
 */
static unsigned group_policy(int policy, bool *all_policy)
{
    g_autoptr(GDir) proc = g_dir_open("/proc", 0, NULL);
    long leader = -1;
    unsigned n = 0;
    const char *e;

    while ((e = g_dir_read_name(proc))) {
        if (g_ascii_isdigit(e[0]) && proc_stat_field(e, 4) == (long)getpid()) {
            leader = strtol(e, NULL, 10);
        }
    }
    *all_policy = leader > 0;
    g_dir_rewind(proc);
    while (leader > 0 && (e = g_dir_read_name(proc))) {
        if (g_ascii_isdigit(e[0]) && proc_stat_field(e, 5) == leader) {
            n++;
            *all_policy &= sched_getscheduler((pid_t)strtol(e, NULL, 10)) == policy;
        }
    }
    return n;
}

/*
 * A background snapshot's sink runs at SCHED_IDLE, every process of its
 * pipeline (what the shell starts inherits it); lifted, every one moves to
 * SCHED_BATCH, and back.
 */
static void test_exec_child_idle(void)
{
    g_autoptr(GError) err = NULL;
    MigrationChannel *ch = channel_new("exec:sleep 30 | cat > /dev/null", true, &err);
    bool all;

    g_assert_no_error(err);
    channel_set_child_idle(ch, true);
    g_assert_true(channel_connect(ch, &err));
    /* The shell at least; its pipeline too once it ran (idle: maybe not yet). */
    g_assert_cmpuint(group_policy(SCHED_IDLE, &all), >=, 1);
    g_assert_true(all);
    for (int i = 0; i < 500 && group_policy(SCHED_IDLE, &all) < 3; i++) {
        g_usleep(10 * 1000);
    }
    channel_set_child_idle(ch, false);
    g_assert_cmpuint(group_policy(SCHED_BATCH, &all), >=, 1);
    g_assert_true(all);
    channel_set_child_idle(ch, true);
    g_assert_cmpuint(group_policy(SCHED_IDLE, &all), >=, 1);
    g_assert_true(all);
    /* A failed close kills the whole group. */
    channel_close(ch, false, NULL);
}

/*
 * CPUs asked for before the command starts are its CPUs from its first
 * instruction: the shell reads its own allowed list as it starts. The
 * caller's own CPUs are left as they were.
 */
static void test_exec_child_cpus(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *dir = make_tmpdir();
    g_autofree char *out = g_build_filename(dir, "out", NULL);
    g_autofree char *uri = g_strdup_printf("exec:grep Cpus_allowed_list /proc/$$/status > %s; "
                                           "cat > /dev/null", out);
    g_autofree char *contents = NULL;
    cpu_set_t own, one, after;

    g_assert_cmpint(sched_getaffinity(0, sizeof(own), &own), ==, 0);
    if (CPU_COUNT(&own) < 2) {
        g_test_skip("this process may use only one CPU: nothing to narrow");
        remove_dir(dir);
        return;
    }
    int last = -1;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (CPU_ISSET(c, &own)) {
            last = c;
        }
    }
    CPU_ZERO(&one);
    CPU_SET(last, &one);
    MigrationChannel *ch = channel_new(uri, true, &err);
    g_assert_no_error(err);
    channel_set_child_cpus(ch, &one);
    g_assert_true(channel_connect(ch, &err));
    g_assert_cmpint(sched_getaffinity(0, sizeof(after), &after), ==, 0);
    g_assert_true(CPU_EQUAL(&after, &own));
    g_assert_true(channel_write_all(ch, "data", 4, &err));
    g_assert_true(channel_close(ch, true, &err));
    g_assert_no_error(err);
    g_assert_true(g_file_get_contents(out, &contents, NULL, NULL));
    g_autofree char *want = g_strdup_printf("Cpus_allowed_list:\t%d\n", last);
    g_assert_cmpstr(contents, ==, want);
    g_unlink(out);
    remove_dir(dir);
}

/* Without the request the command runs as frostvm does (a precopy's sink). */
static void test_exec_child_normal(void)
{
    g_autoptr(GError) err = NULL;
    MigrationChannel *ch = channel_open_outgoing("exec:cat > /dev/null", &err);
    bool all;

    g_assert_no_error(err);
    g_assert_cmpuint(group_policy(SCHED_OTHER, &all), >=, 1);
    g_assert_true(all);
    g_assert_true(channel_close(ch, true, &err));
    g_assert_no_error(err);
}

static void test_exec_incoming(void)
{
    g_autoptr(GError) err = NULL;
    MigrationChannel *ch = channel_open_incoming("exec:printf 'abc'; exit 4", &err);
    char buf[16];
    ssize_t n, total = 0;

    g_assert_no_error(err);
    while ((n = channel_read(ch, buf + total, sizeof(buf) - total, &err)) > 0) {
        total += n;
    }
    g_assert_cmpint(n, ==, 0);
    g_assert_cmpmem(buf, total, "abc", 3);
    g_assert_false(channel_close(ch, true, &err));
    g_assert_nonnull(strstr(err->message, "exited with status 4"));
}

typedef struct Peer {
    char *uri;
    GByteArray *data;
    GError *err;
} Peer;

static gpointer peer_send(gpointer opaque)
{
    Peer *p = opaque;
    MigrationChannel *ch = channel_open_outgoing(p->uri, &p->err);

    if (ch) {
        if (channel_write_all(ch, p->data->data, p->data->len, &p->err)) {
            channel_close(ch, true, &p->err);
        } else {
            channel_close(ch, false, NULL);
        }
    }
    return NULL;
}

/* Listen on @uri, send 5 MiB from a thread, receive and compare. */
static void check_socket_roundtrip(const char *uri)
{
    g_autoptr(GError) err = NULL;
    MigrationChannel *in = channel_open_incoming(uri, &err);
    Peer peer = { 0 };
    GThread *t;
    g_autofree uint8_t *got = NULL;
    size_t total = 0;
    ssize_t n;

    g_assert_no_error(err);
    peer.uri = channel_listen_uri(in);
    g_assert_nonnull(peer.uri);
    peer.data = g_byte_array_sized_new(5 << 20);
    g_byte_array_set_size(peer.data, 5 << 20);
    for (guint i = 0; i < peer.data->len; i++) {
        peer.data->data[i] = (uint8_t)(i * 7 + (i >> 12));
    }
    t = g_thread_new("peer", peer_send, &peer);
    g_assert_true(channel_accept(in, &err));
    g_assert_no_error(err);
    got = g_malloc(peer.data->len + 1);
    while ((n = channel_read(in, got + total, peer.data->len + 1 - total, &err)) > 0) {
        total += (size_t)n;
    }
    g_assert_no_error(err);
    g_thread_join(t);
    g_assert_no_error(peer.err);
    g_assert_cmpmem(got, total, peer.data->data, peer.data->len);
    g_assert_true(channel_close(in, true, &err));
    g_byte_array_unref(peer.data);
    g_free(peer.uri);
}

static void test_unix_roundtrip(void)
{
    g_autofree char *dir = make_tmpdir();
    g_autofree char *uri = g_strdup_printf("unix:%s/sock", dir);

    check_socket_roundtrip(uri);
    /* The listener's socket file is gone once the connection was taken. */
    g_assert_cmpuint(count_files(dir, NULL), ==, 0);
    remove_dir(dir);
}

static void test_tcp_ipv4_roundtrip(void)
{
    check_socket_roundtrip("tcp:127.0.0.1:0");
}

static void test_tcp_ipv6_roundtrip(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };

    if (fd < 0 || bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) < 0) {
        if (fd >= 0) {
            close(fd);
        }
        g_test_skip("IPv6 loopback (::1) is not available on this host");
        return;
    }
    close(fd);
    check_socket_roundtrip("tcp:[::1]:0");
}

static void test_tcp_refused(void)
{
    g_autoptr(GError) err = NULL;
    MigrationChannel *in = channel_open_incoming("tcp:127.0.0.1:0", &err);
    g_autofree char *uri = channel_listen_uri(in);

    /* Nobody listens once the listener is closed. */
    channel_close(in, false, NULL);
    g_assert_null(channel_open_outgoing(uri, &err));
    g_assert_nonnull(strstr(err->message, "Connection refused"));
}

static gpointer cancel_later(gpointer opaque)
{
    g_usleep(100 * 1000);
    channel_cancel(opaque);
    return NULL;
}

static void test_cancel_accept(void)
{
    g_autoptr(GError) err = NULL;
    MigrationChannel *in = channel_open_incoming("tcp:127.0.0.1:0", &err);
    GThread *t = g_thread_new("cancel", cancel_later, in);

    g_assert_false(channel_accept(in, &err));
    g_assert_nonnull(strstr(err->message, "cancelled"));
    g_thread_join(t);
    g_assert_true(channel_is_cancelled(in));
    channel_close(in, false, NULL);
}

static void test_cancel_blocked_write(void)
{
    g_autoptr(GError) err = NULL;
    /* A reader that never reads: the pipe fills and the write blocks. */
    MigrationChannel *ch = channel_open_outgoing("exec:sleep 30", &err);
    g_autofree uint8_t *buf = g_malloc0(16 << 20);
    GThread *t;
    int64_t start = g_get_monotonic_time();

    g_assert_no_error(err);
    t = g_thread_new("cancel", cancel_later, ch);
    g_assert_false(channel_write_all(ch, buf, 16 << 20, &err));
    g_assert_nonnull(strstr(err->message, "cancelled"));
    g_thread_join(t);
    /* Closing after a failure kills the command instead of waiting 30 s. */
    channel_close(ch, false, NULL);
    g_assert_cmpint(g_get_monotonic_time() - start, <, 5 * G_USEC_PER_SEC);
}

static void test_bad_uris(void)
{
    static const struct {
        const char *uri;
        const char *message;
    } cases[] = {
        { "foo:bar", "unknown migration protocol" },
        { "exec:", "names no command" },
        { "tcp:localhost", "expected tcp:HOST:PORT" },
        { "tcp:[::1:4444", "expected tcp:[IPV6-ADDRESS]:PORT" },
        { "tcp:localhost:", "no port given" },
        { "fd:abc", "needs a file descriptor number" },
        { "fd:987", "not an open file descriptor" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) err = NULL;
        MigrationChannel *ch = channel_open_outgoing(cases[i].uri, &err);

        g_assert_null(ch);
        g_assert_nonnull(err);
        if (!strstr(err->message, cases[i].message)) {
            g_error("%s: '%s' lacks '%s'", cases[i].uri, err->message, cases[i].message);
        }
    }
}

static void test_fd_channel(void)
{
    g_autoptr(GError) err = NULL;
    int fds[2];
    g_autofree char *uri = NULL;
    MigrationChannel *ch;
    char buf[8] = { 0 };

    g_assert_cmpint(pipe(fds), ==, 0);
    uri = g_strdup_printf("fd:%d", fds[1]);
    ch = channel_open_outgoing(uri, &err);
    g_assert_no_error(err);
    g_assert_true(channel_write_all(ch, "fdok", 4, &err));
    g_assert_true(channel_close(ch, true, &err));
    /* The caller's descriptor is still open: the channel had its own copy. */
    g_assert_cmpint(write(fds[1], "!", 1), ==, 1);
    close(fds[1]);
    g_assert_cmpint(read(fds[0], buf, sizeof(buf)), ==, 5);
    g_assert_cmpstr(buf, ==, "fdok!");
    close(fds[0]);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/channel/file/rename-on-success", test_file_rename_on_success);
    g_test_add_func("/channel/file/removed-on-failure", test_file_removed_on_failure);
    g_test_add_func("/channel/file/missing-folder", test_file_missing_folder);
    g_test_add_func("/channel/exec/exit-status", test_exec_exit_status);
    g_test_add_func("/channel/exec/killed-by-signal", test_exec_signal);
    g_test_add_func("/channel/exec/inheritance", test_exec_inheritance);
    g_test_add_func("/channel/exec/early-exit-epipe", test_exec_early_exit);
    g_test_add_func("/channel/exec/incoming", test_exec_incoming);
    g_test_add_func("/channel/exec/child-idle", test_exec_child_idle);
    g_test_add_func("/channel/exec/child-normal", test_exec_child_normal);
    g_test_add_func("/channel/exec/child-cpus", test_exec_child_cpus);
    g_test_add_func("/channel/unix/roundtrip", test_unix_roundtrip);
    g_test_add_func("/channel/tcp/ipv4-roundtrip", test_tcp_ipv4_roundtrip);
    g_test_add_func("/channel/tcp/ipv6-roundtrip", test_tcp_ipv6_roundtrip);
    g_test_add_func("/channel/tcp/refused", test_tcp_refused);
    g_test_add_func("/channel/cancel/accept", test_cancel_accept);
    g_test_add_func("/channel/cancel/blocked-write", test_cancel_blocked_write);
    g_test_add_func("/channel/uri/errors", test_bad_uris);
    g_test_add_func("/channel/fd/roundtrip", test_fd_channel);
    return g_test_run();
}
