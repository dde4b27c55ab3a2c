/* SPDX-License-Identifier: GPL-2.0-or-later */
/* End-to-end test helper: run the frostvm binary in a private directory, talk QMP, read its logs, always kill it. */
#include "vm-helper.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <glib-unix.h>
#include <linux/kvm.h>

#define TEST_VM_GRACE_MS 3000
#define TEST_VM_POLL_US (10 * 1000)
#define TEST_VM_LOG_TAIL 1500

static const char *const log_names[TEST_VM_LOG__MAX] = {
    [TEST_VM_LOG_SERIAL] = "serial.log",
    [TEST_VM_LOG_STDOUT] = "stdout.log",
    [TEST_VM_LOG_STDERR] = "stderr.log",
};

G_DEFINE_QUARK(test-vm-error-quark, test_vm_error)

struct TestVm {
    TestVmFlags flags;
    char *dir;
    GPtrArray *args;            /* char *, the test's own arguments */
    pid_t pid;                  /* 0 before launch */
    bool reaped;
    int exit_status;
    int stdin_fd;
    QmpClient *qmp;
    gsize cursor[TEST_VM_LOG__MAX];
    GArray *guarded;            /* pid_t: processes that are not our children */
    pid_t guardian;
    int guardian_fd;            /* write end: pids to kill if we die */
};

/* The build tree holds the test program in tests/functional/. */
static char *test_vm_build_path(const char *env, const char *relative)
{
    const char *set = g_getenv(env);
    g_autofree char *self = NULL;
    g_autofree char *dir = NULL;

    if (set && *set) {
        return g_strdup(set);
    }
    self = g_file_read_link("/proc/self/exe", NULL);
    if (!self) {
        return g_strdup(relative);
    }
    dir = g_path_get_dirname(self);
    return g_build_filename(dir, relative, NULL);
}

char *test_vm_frostvm_path(void)
{
    return test_vm_build_path("FROSTVM", "../../frostvm");
}

char *test_vm_payload_path(void)
{
    return test_vm_build_path("FROSTVM_PAYLOAD", "../guest/payload.elf");
}

bool test_vm_kvm_usable(char **reason)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    int version;
    int vm;

    if (fd < 0) {
        if (reason) {
            *reason = g_strdup_printf("cannot open /dev/kvm: %s", g_strerror(errno));
        }
        return false;
    }
    version = ioctl(fd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION) {
        if (reason) {
            *reason = g_strdup_printf("/dev/kvm speaks API version %d, not %d", version,
                                      KVM_API_VERSION);
        }
        close(fd);
        return false;
    }
    vm = ioctl(fd, KVM_CREATE_VM, 0);
    if (vm < 0) {
        if (reason) {
            *reason = g_strdup_printf("KVM_CREATE_VM failed: %s", g_strerror(errno));
        }
        close(fd);
        return false;
    }
    close(vm);
    close(fd);
    return true;
}

bool test_vm_skip_without_kvm(void)
{
    g_autofree char *reason = NULL;
    g_autofree char *msg = NULL;

    if (test_vm_kvm_usable(&reason)) {
        return false;
    }
    msg = g_strdup_printf("no /dev/kvm: %s", reason);
    g_test_skip(msg);
    return true;
}

bool test_vm_skip_without_huge_pages(uint64_t n)
{
    g_autofree char *meminfo = NULL;
    g_autofree char *msg = NULL;
    const char *line = NULL;

    if (g_file_get_contents("/proc/meminfo", &meminfo, NULL, NULL)) {
        line = strstr(meminfo, "HugePages_Free:");
    }
    if (line && g_ascii_strtoull(line + strlen("HugePages_Free:"), NULL, 10) >= n) {
        return false;
    }
    msg = g_strdup_printf("needs %" G_GUINT64_FORMAT " free 2 MiB huge pages (vm.nr_hugepages)",
                          n);
    g_test_skip(msg);
    return true;
}

/*
 * The guardian: a child that only reads pids from a pipe and, when the pipe
 * reaches EOF (the test program exited or died), SIGKILLs those still listed
 * and removes the VM's directory.
 * Between fork and _exit it calls only async-signal-safe functions, since the
 * test program may have threads.
 */
static void test_vm_guardian_run(int rfd, const char *dir)
{
    pid_t victims[32];
    unsigned n = 0;
    struct sigaction ign = { .sa_handler = SIG_IGN };
    int null = open("/dev/null", O_RDWR);

    /* Outlive the signals that hit the whole process group (Ctrl-C, timeouts). */
    sigaction(SIGINT, &ign, NULL);
    sigaction(SIGTERM, &ign, NULL);
    sigaction(SIGHUP, &ign, NULL);
    sigaction(SIGPIPE, &ign, NULL);
    /* Hold no other descriptor: a client socket or a stdin pipe must close when the test closes it. */
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
    }
    for (int fd = 3; fd < 4096; fd++) {
        if (fd != rfd) {
            close(fd);
        }
    }
    for (;;) {
        int32_t v;
        ssize_t r = read(rfd, &v, sizeof(v));

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r != sizeof(v)) {
            break;
        }
        if (v > 0 && n < G_N_ELEMENTS(victims)) {
            victims[n++] = v;
        } else if (v < 0) {
            for (unsigned i = 0; i < n; i++) {
                if (victims[i] == -v) {
                    victims[i] = victims[--n];
                    break;
                }
            }
        }
    }
    for (unsigned i = 0; i < n; i++) {
        kill(victims[i], SIGKILL);
    }
    /* A test that aborted leaves its directory behind otherwise. */
    {
        char *const rm_argv[] = { "rm", "-rf", "--", (char *)dir, NULL };

        execv("/bin/rm", rm_argv);
        execv("/usr/bin/rm", rm_argv);
    }
    _exit(0);
}

static void test_vm_guardian_start(TestVm *vm)
{
    int fds[2];
    pid_t pid;

    if (!g_unix_open_pipe(fds, FD_CLOEXEC, NULL)) {
        g_error("vm-helper: cannot create the guardian's pipe: %s", g_strerror(errno));
    }
    pid = fork();
    if (pid < 0) {
        g_error("vm-helper: cannot fork the guardian: %s", g_strerror(errno));
    }
    if (pid == 0) {
        test_vm_guardian_run(fds[0], vm->dir);
    }
    close(fds[0]);
    vm->guardian = pid;
    vm->guardian_fd = fds[1];
}

static void test_vm_guardian_tell(TestVm *vm, int32_t v)
{
    if (write(vm->guardian_fd, &v, sizeof(v)) != sizeof(v)) {
        g_test_message("vm-helper: cannot reach the guardian: %s", g_strerror(errno));
    }
}

TestVm *test_vm_new(TestVmFlags flags)
{
    TestVm *vm = g_new0(TestVm, 1);
    g_autoptr(GError) err = NULL;

    vm->flags = flags;
    vm->dir = g_dir_make_tmp("frostvm-func-XXXXXX", &err);
    g_assert_no_error(err);
    vm->args = g_ptr_array_new_with_free_func(g_free);
    vm->stdin_fd = -1;
    vm->guarded = g_array_new(FALSE, FALSE, sizeof(pid_t));
    test_vm_guardian_start(vm);
    return vm;
}

void test_vm_add_args(TestVm *vm, const char *first, ...)
{
    va_list ap;

    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        g_ptr_array_add(vm->args, g_strdup(a));
    }
    va_end(ap);
}

void test_vm_add_guest(TestVm *vm, const char *accel, const char *append)
{
    g_autofree char *payload = test_vm_payload_path();

    if (!strcmp(accel, "test")) {
        test_vm_add_args(vm, "-accel", "test", "-m", "64", "-append", append, NULL);
    } else {
        test_vm_add_args(vm, "-accel", accel, "-m", "64", "-kernel", payload,
                         "-append", append, NULL);
    }
}

const char *test_vm_any_accel(void)
{
    return test_vm_kvm_usable(NULL) ? "kvm" : "test";
}

const char *test_vm_dir(TestVm *vm)
{
    return vm->dir;
}

char *test_vm_path(TestVm *vm, const char *name)
{
    return g_build_filename(vm->dir, name, NULL);
}

pid_t test_vm_pid(TestVm *vm)
{
    return vm->pid;
}

int test_vm_stdin_fd(TestVm *vm)
{
    return vm->stdin_fd;
}

void test_vm_close_stdin(TestVm *vm)
{
    if (vm->stdin_fd >= 0) {
        close(vm->stdin_fd);
        vm->stdin_fd = -1;
    }
}

QmpClient *test_vm_qmp(TestVm *vm)
{
    return vm->qmp;
}

static char *test_vm_log_path(TestVm *vm, TestVmLog log)
{
    return test_vm_path(vm, log_names[log]);
}

char *test_vm_log_read(TestVm *vm, TestVmLog log)
{
    g_autofree char *path = test_vm_log_path(vm, log);
    char *text = NULL;

    if (!g_file_get_contents(path, &text, NULL, NULL)) {
        return g_strdup("");
    }
    return text;
}

gsize test_vm_log_size(TestVm *vm, TestVmLog log)
{
    g_autofree char *path = test_vm_log_path(vm, log);
    struct stat st;

    return stat(path, &st) == 0 ? (gsize)st.st_size : 0;
}

/* The end of @log for an error message. */
static char *test_vm_log_tail(TestVm *vm, TestVmLog log)
{
    g_autofree char *text = test_vm_log_read(vm, log);
    gsize len = strlen(text);

    if (len > TEST_VM_LOG_TAIL) {
        return g_strdup_printf("...%s", text + len - TEST_VM_LOG_TAIL);
    }
    return g_steal_pointer(&text);
}

/* Reap the process if it has exited; records its status. */
bool test_vm_is_running(TestVm *vm)
{
    int st;
    pid_t r;

    if (!vm->pid || vm->reaped) {
        return false;
    }
    do {
        r = waitpid(vm->pid, &st, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == 0) {
        return true;
    }
    vm->reaped = true;
    if (r == vm->pid) {
        vm->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    } else {
        vm->exit_status = -1;
    }
    test_vm_guardian_tell(vm, -vm->pid);
    return false;
}

static bool test_vm_failed_to_start(TestVm *vm, GError **errp)
{
    g_autofree char *err_tail = test_vm_log_tail(vm, TEST_VM_LOG_STDERR);

    g_set_error(errp, TEST_VM_ERROR, 0,
                "frostvm exited with status %d before its QMP socket accepted; stderr: %s",
                vm->exit_status, err_tail);
    return false;
}

static bool test_vm_connect_main(TestVm *vm, GError **errp)
{
    g_autofree char *sock = test_vm_path(vm, "qmp.sock");
    gint64 deadline = g_get_monotonic_time() + TEST_VM_TIMEOUT_MS * (gint64)1000;

    for (;;) {
        if (!test_vm_is_running(vm)) {
            return test_vm_failed_to_start(vm, errp);
        }
        if (g_file_test(sock, G_FILE_TEST_EXISTS)) {
            vm->qmp = test_vm_qmp_connect(vm, true, errp);
            return vm->qmp != NULL;
        }
        if (g_get_monotonic_time() > deadline) {
            g_set_error(errp, TEST_VM_ERROR, 0,
                        "frostvm did not create its QMP socket %s within %d ms", sock,
                        TEST_VM_TIMEOUT_MS);
            return false;
        }
        g_usleep(TEST_VM_POLL_US);
    }
}

bool test_vm_launch(TestVm *vm, GError **errp)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *out_path = test_vm_log_path(vm, TEST_VM_LOG_STDOUT);
    g_autofree char *err_path = test_vm_log_path(vm, TEST_VM_LOG_STDERR);
    g_autofree char *cmd = NULL;
    int out_fd, err_fd, in_fd = -1;
    int pipe_fds[2] = { -1, -1 };
    GPid pid;
    bool ok;

    g_assert(!vm->pid);
    g_ptr_array_add(argv, test_vm_frostvm_path());
    g_ptr_array_add(argv, g_strdup("-display"));
    g_ptr_array_add(argv, g_strdup("none"));
    if (!(vm->flags & TEST_VM_NO_QMP)) {
        g_ptr_array_add(argv, g_strdup("-qmp"));
        g_ptr_array_add(argv, g_strdup_printf("unix:%s/qmp.sock,server=on,wait=off",
                                              vm->dir));
    }
    if (!(vm->flags & TEST_VM_NO_SERIAL)) {
        g_ptr_array_add(argv, g_strdup("-serial"));
        g_ptr_array_add(argv, g_strdup_printf("file:%s/serial.log", vm->dir));
    }
    for (guint i = 0; i < vm->args->len; i++) {
        g_ptr_array_add(argv, g_strdup(g_ptr_array_index(vm->args, i)));
    }
    g_ptr_array_add(argv, NULL);
    cmd = g_strjoinv(" ", (char **)argv->pdata);
    g_test_message("vm-helper: starting %s", cmd);

    out_fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    err_fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    g_assert_cmpint(out_fd, >=, 0);
    g_assert_cmpint(err_fd, >=, 0);
    if (vm->flags & TEST_VM_STDIN_PIPE) {
        ok = g_unix_open_pipe(pipe_fds, FD_CLOEXEC, errp);
        if (!ok) {
            close(out_fd);
            close(err_fd);
            return false;
        }
        in_fd = pipe_fds[0];
    } else {
        in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    ok = g_spawn_async_with_fds(vm->dir, (char **)argv->pdata, NULL,
                                G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &pid,
                                in_fd, out_fd, err_fd, errp);
    close(in_fd);
    close(out_fd);
    close(err_fd);
    if (!ok) {
        if (pipe_fds[1] >= 0) {
            close(pipe_fds[1]);
        }
        return false;
    }
    vm->pid = pid;
    vm->stdin_fd = pipe_fds[1];
    test_vm_guardian_tell(vm, pid);
    if (vm->flags & (TEST_VM_NO_QMP | TEST_VM_NO_CONNECT)) {
        return true;
    }
    return test_vm_connect_main(vm, errp);
}

void test_vm_launch_or_fail(TestVm *vm)
{
    g_autoptr(GError) err = NULL;

    test_vm_launch(vm, &err);
    g_assert_no_error(err);
}

QmpClient *test_vm_qmp_connect(TestVm *vm, bool negotiate, GError **errp)
{
    g_autofree char *sock = test_vm_path(vm, "qmp.sock");
    QmpClient *c = qmp_client_connect(sock, TEST_VM_TIMEOUT_MS, errp);

    if (!c) {
        return NULL;
    }
    qmp_client_set_timeout(c, TEST_VM_TIMEOUT_MS);
    if (negotiate && !qmp_client_negotiate(c, errp)) {
        qmp_client_free(c);
        return NULL;
    }
    return c;
}

/* A complete line at or after @from that contains @needle; sets *end past it. */
static char *test_vm_find_line(const char *text, gsize len, gsize from, const char *needle,
                               gsize *end)
{
    gsize pos = from;

    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        g_autofree char *line = NULL;

        if (!nl) {
            return NULL;
        }
        line = g_strndup(text + pos, nl - (text + pos));
        pos = nl - text + 1;
        if (strstr(line, needle)) {
            gsize l = strlen(line);

            if (l && line[l - 1] == '\r') {
                line[l - 1] = '\0';
            }
            *end = pos;
            return g_steal_pointer(&line);
        }
    }
    return NULL;
}

bool test_vm_wait_log(TestVm *vm, TestVmLog log, const char *needle, int timeout_ms,
                      char **line_out, GError **errp)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    g_autofree char *tail = NULL;
    bool running = true;

    for (;;) {
        g_autofree char *text = test_vm_log_read(vm, log);
        gsize len = strlen(text);
        gsize end = 0;
        char *line;

        if (len < vm->cursor[log]) {
            vm->cursor[log] = 0;        /* the file was truncated or recreated */
        }
        line = test_vm_find_line(text, len, vm->cursor[log], needle, &end);
        if (line) {
            vm->cursor[log] = end;
            if (line_out) {
                *line_out = line;
            } else {
                g_free(line);
            }
            return true;
        }
        /* One more read after the exit: the last lines may have landed meanwhile. */
        if (!running || g_get_monotonic_time() > deadline) {
            break;
        }
        running = test_vm_is_running(vm) || vm->pid == 0 || vm->guarded->len > 0;
        if (running) {
            g_usleep(TEST_VM_POLL_US);
        }
    }
    tail = test_vm_log_tail(vm, log);
    g_set_error(errp, TEST_VM_ERROR, 0,
                "no line containing '%s' in %s %s; it ends with: %s", needle, log_names[log],
                running ? "in time" : "before frostvm exited", tail);
    return false;
}

bool test_vm_wait_serial(TestVm *vm, const char *needle, int timeout_ms,
                         char **line_out, GError **errp)
{
    return test_vm_wait_log(vm, TEST_VM_LOG_SERIAL, needle, timeout_ms, line_out, errp);
}

void test_vm_log_skip(TestVm *vm, TestVmLog log)
{
    g_autofree char *text = test_vm_log_read(vm, log);
    char *nl = strrchr(text, '\n');

    /* Up to the last complete line: a line being written is still new. */
    vm->cursor[log] = nl ? (gsize)(nl - text + 1) : 0;
}

bool test_vm_wait_progress(TestVm *vm, int timeout_ms, PayloadProgress *out,
                           GError **errp)
{
    g_autofree char *line = NULL;

    if (!test_vm_wait_serial(vm, "PROGRESS ", timeout_ms, &line, errp)) {
        return false;
    }
    return payload_parse_progress(line, out, errp);
}

void test_vm_assert_event(JsonObject *event, const char *name)
{
    JsonObject *ts;
    gint64 now_s = g_get_real_time() / G_USEC_PER_SEC;

    g_assert_nonnull(event);
    g_assert_cmpstr(json_object_get_string_member(event, "event"), ==, name);
    g_assert_true(json_object_has_member(event, "timestamp"));
    ts = json_object_get_object_member(event, "timestamp");
    g_assert_nonnull(ts);
    g_assert_true(json_object_has_member(ts, "seconds"));
    g_assert_true(json_object_has_member(ts, "microseconds"));
    g_assert_cmpint(json_object_get_int_member(ts, "microseconds"), >=, 0);
    g_assert_cmpint(json_object_get_int_member(ts, "microseconds"), <, G_USEC_PER_SEC);
    g_assert_cmpint(json_object_get_int_member(ts, "seconds"), >, now_s - 60);
    g_assert_cmpint(json_object_get_int_member(ts, "seconds"), <=, now_s + 1);
}

GHashTable *test_vm_parse_keyvals(const char *line)
{
    GHashTable *kv = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_auto(GStrv) words = g_strsplit_set(line, " \t\r\n", -1);

    for (char **w = words; *w; w++) {
        char *eq = strchr(*w, '=');

        if (eq && eq != *w) {
            g_hash_table_replace(kv, g_strndup(*w, eq - *w), g_strdup(eq + 1));
        }
    }
    return kv;
}

bool test_vm_wait_exit(TestVm *vm, int timeout_ms, int *status, GError **errp)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    while (test_vm_is_running(vm)) {
        if (g_get_monotonic_time() > deadline) {
            g_set_error(errp, TEST_VM_ERROR, 0,
                        "frostvm (pid %d) still runs after %d ms", (int)vm->pid,
                        timeout_ms);
            return false;
        }
        g_usleep(TEST_VM_POLL_US);
    }
    if (!vm->pid) {
        g_set_error(errp, TEST_VM_ERROR, 0, "frostvm was never started");
        return false;
    }
    if (status) {
        *status = vm->exit_status;
    }
    return true;
}

void test_vm_guard_pid(TestVm *vm, pid_t pid)
{
    g_array_append_val(vm->guarded, pid);
    test_vm_guardian_tell(vm, pid);
}

void test_vm_unguard_pid(TestVm *vm, pid_t pid)
{
    for (guint i = 0; i < vm->guarded->len; i++) {
        if (g_array_index(vm->guarded, pid_t, i) == pid) {
            g_array_remove_index_fast(vm->guarded, i);
            break;
        }
    }
    test_vm_guardian_tell(vm, -pid);
}

/* SIGTERM, then SIGKILL after the grace period, for a process that is not our child. */
static void test_vm_kill_foreign(pid_t pid)
{
    gint64 deadline = g_get_monotonic_time() + TEST_VM_GRACE_MS * (gint64)1000;

    if (kill(pid, SIGTERM) < 0) {
        return;
    }
    while (kill(pid, 0) == 0) {
        if (g_get_monotonic_time() > deadline) {
            g_test_message("vm-helper: pid %d ignored SIGTERM; killing it", (int)pid);
            kill(pid, SIGKILL);
            break;
        }
        g_usleep(TEST_VM_POLL_US);
    }
}

static void test_vm_kill_child(TestVm *vm)
{
    gint64 deadline = g_get_monotonic_time() + TEST_VM_GRACE_MS * (gint64)1000;
    int st;

    if (!test_vm_is_running(vm)) {
        return;
    }
    kill(vm->pid, SIGTERM);
    while (test_vm_is_running(vm)) {
        if (g_get_monotonic_time() > deadline) {
            g_test_message("vm-helper: frostvm (pid %d) ignored SIGTERM; killing it",
                           (int)vm->pid);
            kill(vm->pid, SIGKILL);
            while (waitpid(vm->pid, &st, 0) < 0 && errno == EINTR) {
            }
            vm->reaped = true;
            test_vm_guardian_tell(vm, -vm->pid);
            return;
        }
        g_usleep(TEST_VM_POLL_US);
    }
}

static void test_vm_remove_tree(const char *path)
{
    g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
    const char *name;

    if (dir) {
        while ((name = g_dir_read_name(dir))) {
            g_autofree char *child = g_build_filename(path, name, NULL);

            if (g_file_test(child, G_FILE_TEST_IS_DIR) &&
                !g_file_test(child, G_FILE_TEST_IS_SYMLINK)) {
                test_vm_remove_tree(child);
            } else {
                g_unlink(child);
            }
        }
    }
    g_rmdir(path);
}

void test_vm_free(TestVm *vm)
{
    int st;

    if (!vm) {
        return;
    }
    /* A failing test shows what the VM said; the directory is gone afterwards. */
    if (g_test_failed() && vm->pid) {
        for (int log = 0; log < TEST_VM_LOG__MAX; log++) {
            g_autofree char *tail = test_vm_log_tail(vm, log);

            if (*tail) {
                g_test_message("vm-helper: %s: %s", log_names[log], tail);
            }
        }
    }
    g_clear_pointer(&vm->qmp, qmp_client_free);
    test_vm_close_stdin(vm);
    test_vm_kill_child(vm);
    for (guint i = 0; i < vm->guarded->len; i++) {
        test_vm_kill_foreign(g_array_index(vm->guarded, pid_t, i));
        test_vm_guardian_tell(vm, -g_array_index(vm->guarded, pid_t, i));
    }
    close(vm->guardian_fd);
    while (waitpid(vm->guardian, &st, 0) < 0 && errno == EINTR) {
    }
    test_vm_remove_tree(vm->dir);
    g_free(vm->dir);
    g_ptr_array_unref(vm->args);
    g_array_unref(vm->guarded);
    g_free(vm);
}

void test_vm_fixture_setup(TestVmFixture *f, gconstpointer data)
{
    f->vm = NULL;
}

void test_vm_fixture_teardown(TestVmFixture *f, gconstpointer data)
{
    g_clear_pointer(&f->vm, test_vm_free);
}
