/* SPDX-License-Identifier: GPL-2.0-or-later */
/* End-to-end migration: the test payload moves between frostvm processes over unix:, tcp:, exec: and file:, and bad images are refused. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "payload-check.h"
#include "qmp-client.h"
#include "vm-helper.h"

#define VM_RAM "128"
#define VM_APPEND "mem=16M order=random report_ms=50"

typedef struct Vm {
    char *name;
    char *qmp_path;
    char *serial_path;
    char *log_path;
    GPid pid;
    bool reaped;
    int status;
    QmpClient *qmp;
} Vm;

typedef struct Fixture {
    char *dir;
    GPtrArray *vms;     /* Vm *, killed at teardown whatever happened */
} Fixture;

static const char *env_path(const char *name)
{
    const char *p = g_getenv(name);

    g_assert_nonnull(p);
    return p;
}

/* Skip (with the reason) when @accel is kvm and /dev/kvm is missing or not a KVM. */
static bool skip_without(const char *accel)
{
    g_autofree char *reason = NULL;

    if (!strcmp(accel, "kvm") && !test_vm_kvm_usable(&reason)) {
        g_autofree char *why = g_strdup_printf("no usable /dev/kvm: %s", reason);
        g_test_skip(why);
        return true;
    }
    return false;
}

static void vm_kill(Vm *vm)
{
    if (!vm->reaped) {
        kill(vm->pid, SIGKILL);
        waitpid(vm->pid, &vm->status, 0);
        vm->reaped = true;
    }
}

static void vm_free(gpointer p)
{
    Vm *vm = p;

    vm_kill(vm);
    g_clear_pointer(&vm->qmp, qmp_client_free);
    g_free(vm->name);
    g_free(vm->qmp_path);
    g_free(vm->serial_path);
    g_free(vm->log_path);
    g_free(vm);
}

static void fixture_setup(Fixture *fx, gconstpointer data)
{
    fx->dir = g_dir_make_tmp("test-migration-XXXXXX", NULL);
    fx->vms = g_ptr_array_new_with_free_func(vm_free);
}

static void fixture_teardown(Fixture *fx, gconstpointer data)
{
    g_autoptr(GDir) d = NULL;
    const char *name;

    g_ptr_array_unref(fx->vms);
    if (g_test_failed() || g_getenv("KEEP_LOGS")) {
        g_test_message("logs kept in %s", fx->dir);
        g_free(fx->dir);
        return;
    }
    d = g_dir_open(fx->dir, 0, NULL);
    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(fx->dir, name, NULL);
        g_unlink(p);
    }
    g_rmdir(fx->dir);
    g_free(fx->dir);
}

static char *fx_path(Fixture *fx, const char *name)
{
    return g_build_filename(fx->dir, name, NULL);
}

/* In the child: die with the test, even when an assertion aborts it. */
static void vm_child_setup(gpointer data)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
}

/*
 * Start frostvm. @accel is "kvm" or "test"; @extra ends with NULL. With
 * @kernel the payload boots, otherwise the machine waits (for -incoming).
 */
static Vm *vm_spawn(Fixture *fx, const char *name, const char *accel, const char *ram,
                    bool kernel, const char *const *extra, bool connect)
{
    Vm *vm = g_new0(Vm, 1);
    g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GError) err = NULL;
    g_autofree char *qmp_spec = NULL;
    g_autofree char *serial_spec = NULL;
    int log_fd;

    vm->name = g_strdup(name);
    vm->qmp_path = g_strdup_printf("%s/%s.qmp", fx->dir, name);
    vm->serial_path = g_strdup_printf("%s/%s.serial", fx->dir, name);
    vm->log_path = g_strdup_printf("%s/%s.log", fx->dir, name);
    qmp_spec = g_strdup_printf("unix:%s,server=on,wait=off", vm->qmp_path);
    serial_spec = g_strdup_printf("file:%s", vm->serial_path);

    g_ptr_array_add(argv, g_strdup(env_path("FROSTVM")));
    for (const char *a[] = { "-accel", accel, "-m", ram, "-smp", "1", "-display", "none",
                             "-serial", serial_spec, "-qmp", qmp_spec, NULL },
         **p = a; *p; p++) {
        g_ptr_array_add(argv, g_strdup(*p));
    }
    if (kernel) {
        g_ptr_array_add(argv, g_strdup("-kernel"));
        g_ptr_array_add(argv, g_strdup(env_path("PAYLOAD")));
    }
    /* The test accelerator reads the same keys as the payload. */
    g_ptr_array_add(argv, g_strdup("-append"));
    g_ptr_array_add(argv, g_strdup(VM_APPEND));
    for (; extra && *extra; extra++) {
        g_ptr_array_add(argv, g_strdup(*extra));
    }
    g_ptr_array_add(argv, NULL);

    log_fd = open(vm->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    g_assert_cmpint(log_fd, >=, 0);
    g_assert_true(g_spawn_async_with_fds(NULL, (char **)argv->pdata, NULL,
                                         G_SPAWN_DO_NOT_REAP_CHILD, vm_child_setup, NULL,
                                         &vm->pid,
                                         -1, log_fd, log_fd, &err));
    g_assert_no_error(err);
    close(log_fd);
    g_ptr_array_add(fx->vms, vm);
    if (!connect) {
        return vm;
    }
    vm->qmp = qmp_client_open(vm->qmp_path, 20000, &err);
    if (!vm->qmp) {
        g_autofree char *log = NULL;
        g_file_get_contents(vm->log_path, &log, NULL, NULL);
        g_error("%s: no QMP: %s\n%s", name, err->message, log ? log : "");
    }
    qmp_client_set_timeout(vm->qmp, 60000);
    return vm;
}

static Vm *vm_launch(Fixture *fx, const char *name, const char *accel, const char *ram,
                     bool kernel, const char *const *extra)
{
    return vm_spawn(fx, name, accel, ram, kernel, extra, true);
}

/* The exit status (waiting at most @timeout_ms), or -1 if it still runs. */
static int vm_wait_exit(Vm *vm, int timeout_ms)
{
    for (int i = 0; i <= timeout_ms / 10 && !vm->reaped; i++) {
        if (waitpid(vm->pid, &vm->status, WNOHANG) == vm->pid) {
            vm->reaped = true;
            break;
        }
        g_usleep(10 * 1000);
    }
    return vm->reaped ? vm->status : -1;
}

static char *vm_log(Vm *vm)
{
    char *log = NULL;

    g_file_get_contents(vm->log_path, &log, NULL, NULL);
    return log ? log : g_strdup("");
}

/* The next serial line containing @needle at or after byte *@pos (advanced past it). */
static char *vm_wait_serial(Vm *vm, const char *needle, gsize *pos, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    do {
        g_autofree char *data = NULL;
        gsize len = 0;

        if (g_file_get_contents(vm->serial_path, &data, &len, NULL) && *pos < len) {
            char *start = data + *pos;
            char *nl;

            while ((nl = memchr(start, '\n', len - (start - data)))) {
                *nl = '\0';
                if (strstr(start, needle)) {
                    *pos = (gsize)(nl + 1 - data);
                    return g_strdup(start);
                }
                start = nl + 1;
            }
        }
        g_usleep(20 * 1000);
    } while (g_get_monotonic_time() < deadline);
    {
        g_autofree char *log = vm_log(vm);
        g_error("%s: no serial line with '%s' in %d ms; log:\n%s", vm->name, needle,
                timeout_ms, log);
    }
}

static gsize serial_size(Vm *vm)
{
    g_autofree char *data = NULL;
    gsize len = 0;

    g_file_get_contents(vm->serial_path, &data, &len, NULL);
    return len;
}

/* Wait for a PROGRESS line and check it: registers, errors, register checksum. */
static PayloadProgress vm_progress(Vm *vm, gsize *pos)
{
    g_autofree char *line = vm_wait_serial(vm, "PROGRESS", pos, 30000);
    g_autoptr(GError) err = NULL;
    PayloadProgress p;

    g_assert_true(payload_parse_progress(line, &p, &err));
    if (!p.regs_ok || p.errors || !payload_progress_csum_ok(&p)) {
        g_error("%s: bad PROGRESS line: %s", vm->name, line);
    }
    return p;
}

static JsonNode *vm_cmd(Vm *vm, const char *command, const char *args_json)
{
    g_autoptr(GError) err = NULL;
    JsonNode *ret = qmp_client_execute_json(vm->qmp, command, args_json, &err);

    if (!ret) {
        g_error("%s: %s failed: %s", vm->name, command, err->message);
    }
    return ret;
}

static char *vm_hmp(Vm *vm, const char *line)
{
    g_autoptr(GError) err = NULL;
    char *out = qmp_client_hmp(vm->qmp, line, &err);

    g_assert_no_error(err);
    return out;
}

static char *vm_status(Vm *vm)
{
    g_autoptr(JsonNode) r = vm_cmd(vm, "query-status", NULL);

    return g_strdup(json_object_get_string_member(json_node_get_object(r), "status"));
}

static JsonObject *vm_query_migrate(Vm *vm);

/*
 * Wait until query-migrate shows a final status; returns it. Polling, not the
 * MIGRATION event: a destination loading a file may finish before our QMP
 * client has even connected.
 */
static char *vm_wait_migration_end(Vm *vm, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    for (;;) {
        g_autoptr(JsonObject) info = vm_query_migrate(vm);
        const char *status = json_object_get_string_member_with_default(info, "status", "none");

        if (!strcmp(status, "completed") || !strcmp(status, "failed") ||
            !strcmp(status, "cancelled")) {
            return g_strdup(status);
        }
        if (g_get_monotonic_time() > deadline) {
            g_autofree char *log = vm_log(vm);
            g_error("%s: migration still '%s' after %d ms\n%s", vm->name, status,
                    timeout_ms, log);
        }
        g_usleep(20 * 1000);
    }
}

static JsonObject *vm_query_migrate(Vm *vm)
{
    JsonNode *r = vm_cmd(vm, "query-migrate", NULL);
    JsonObject *o = json_object_ref(json_node_get_object(r));

    json_node_unref(r);
    return o;
}

/* A source running the payload, past its first report. */
static Vm *start_source(Fixture *fx, const char *accel, gsize *pos, PayloadProgress *last)
{
    Vm *src = vm_launch(fx, "src", accel, VM_RAM, !strcmp(accel, "kvm"), NULL);

    /* Past the first sweep: the whole range is written, the image is not trivial. */
    *pos = 0;
    do {
        *last = vm_progress(src, pos);
    } while (last->sweep < 1);
    return src;
}

/* The destination runs on from where the source stopped, registers intact. */
static void check_destination_continues(Vm *dst, const PayloadProgress *before)
{
    gsize pos = 0;
    PayloadProgress p1 = vm_progress(dst, &pos);
    PayloadProgress p2 = vm_progress(dst, &pos);
    g_autofree char *status = vm_status(dst);

    g_assert_cmpstr(status, ==, "running");
    g_assert_cmpuint(p1.steps, >=, before->steps);
    g_assert_cmpuint(p2.steps, >, p1.steps);
}

/* The MIGRATION events of a completed outgoing migration, in order. */
static void check_source_events(Vm *src)
{
    static const char *const want[] = { "setup", "active", "device", "completed" };

    for (size_t i = 0; i < G_N_ELEMENTS(want); i++) {
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonObject) ev = qmp_client_wait_event(src->qmp, "MIGRATION", 10000, &err);

        g_assert_no_error(err);
        g_assert_cmpstr(json_object_get_string_member(json_object_get_object_member(ev, "data"),
                                                      "status"), ==, want[i]);
    }
}

static void wait_source_done(Vm *src)
{
    g_autofree char *status = vm_wait_migration_end(src, 60000);
    g_autofree char *rs = NULL;

    if (strcmp(status, "completed")) {
        g_autoptr(JsonObject) info = vm_query_migrate(src);
        g_error("source migration %s: %s", status,
                json_object_get_string_member_with_default(info, "error-desc", "?"));
    }
    rs = vm_status(src);
    g_assert_cmpstr(rs, ==, "postmigrate");
    check_source_events(src);
}

static void live_migrate(Fixture *fx, const char *accel, const char *dst_uri,
                         const char *src_uri)
{
    g_autofree char *args = g_strdup_printf("{\"uri\": \"%s\"}", src_uri);
    const char *extra[] = { "-incoming", dst_uri, NULL };
    PayloadProgress last;
    gsize pos;
    Vm *src, *dst;
    g_autofree char *dst_status = NULL;
    g_autoptr(JsonNode) r = NULL;

    if (skip_without(accel)) {
        return;
    }
    src = start_source(fx, accel, &pos, &last);
    dst = vm_launch(fx, "dst", accel, VM_RAM, false, extra);
    r = vm_cmd(src, "migrate", args);
    wait_source_done(src);
    dst_status = vm_wait_migration_end(dst, 60000);
    g_assert_cmpstr(dst_status, ==, "completed");
    check_destination_continues(dst, &last);
}

static int free_tcp_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sin);

    g_assert_cmpint(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), ==, 0);
    g_assert_cmpint(getsockname(fd, (struct sockaddr *)&sin, &len), ==, 0);
    close(fd);
    return ntohs(sin.sin_port);
}

static void test_live_unix(Fixture *fx, gconstpointer data)
{
    g_autofree char *uri = g_strdup_printf("unix:%s/mig.sock", fx->dir);

    live_migrate(fx, data, uri, uri);
}

static void test_live_tcp(Fixture *fx, gconstpointer data)
{
    g_autofree char *uri = g_strdup_printf("tcp:127.0.0.1:%d", free_tcp_port());

    live_migrate(fx, data, uri, uri);
}

static void test_live_exec(Fixture *fx, gconstpointer data)
{
    g_autofree char *fifo = fx_path(fx, "fifo");
    g_autofree char *in = g_strdup_printf("exec:cat %s", fifo);
    g_autofree char *out = g_strdup_printf("exec:cat > %s", fifo);

    g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
    live_migrate(fx, data, in, out);
}

/* Save with HMP (QEMU's quoting), check the image offline, restore in a new process. */
static void test_file_save_restore(Fixture *fx, gconstpointer data)
{
    const char *accel = data;
    g_autofree char *img = fx_path(fx, "vm_state");
    g_autofree char *raw = fx_path(fx, "ram.raw");
    g_autofree char *line = g_strdup_printf("migrate -d \"exec:cat > '%s'\"", img);
    g_autofree char *file_uri = g_strdup_printf("file:%s", img);
    const char *extra[] = { "-incoming", file_uri, NULL };
    g_autofree char *out = NULL;
    g_autofree char *ram = NULL;
    gsize ram_len, pos;
    int status;
    PayloadProgress last;
    PayloadCheckResult res;
    g_autoptr(GError) err = NULL;
    Vm *src, *dst;

    if (skip_without(accel)) {
        return;
    }
    src = start_source(fx, accel, &pos, &last);
    out = vm_hmp(src, line);
    g_assert_cmpstr(out, ==, "");
    wait_source_done(src);
    g_clear_pointer(&out, g_free);
    out = vm_hmp(src, "info migrate");
    g_assert_nonnull(strstr(out, "Migration status: completed"));
    g_assert_nonnull(strstr(out, "transferred ram: "));
    g_clear_pointer(&out, g_free);
    out = vm_hmp(src, "quit");
    g_assert_cmpint(vm_wait_exit(src, 10000), ==, 0);

    /* Offline: the image is sound and holds the payload's invariant. */
    {
        const char *check[] = { env_path("FROSTVM_IMG"), "check", img, NULL };
        const char *dump[] = { env_path("FROSTVM_IMG"), "dump-ram", img, raw, NULL };
        g_autofree char *o1 = NULL, *e1 = NULL, *o2 = NULL, *e2 = NULL;

        g_assert_true(g_spawn_sync(NULL, (char **)check, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                                   &o1, &e1, &status, &err));
        g_assert_cmpint(status, ==, 0);
        g_assert_true(g_spawn_sync(NULL, (char **)dump, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                                   &o2, &e2, &status, &err));
        g_assert_cmpint(status, ==, 0);
    }
    g_assert_true(g_file_get_contents(raw, &ram, &ram_len, NULL));
    if (!payload_check_memory((const uint8_t *)ram, ram_len, &res, &err)) {
        g_autofree char *why = payload_check_result_describe(&res);
        g_error("image breaks the payload invariant: %s\n%s", err->message, why);
    }
    g_assert_cmpuint(res.steps, >=, last.steps);

    dst = vm_launch(fx, "dst", accel, VM_RAM, false, extra);
    {
        g_autofree char *st = vm_wait_migration_end(dst, 60000);
        g_assert_cmpstr(st, ==, "completed");
    }
    check_destination_continues(dst, &last);
}

static void test_cancel(Fixture *fx, gconstpointer data)
{
    const char *accel = data;
    g_autofree char *img = fx_path(fx, "vm_state");
    g_autofree char *args = g_strdup_printf("{\"uri\": \"file:%s\"}", img);
    g_autofree char *out = NULL;
    g_autofree char *status = NULL;
    g_autofree char *rs = NULL;
    g_autoptr(JsonNode) r1 = NULL, r2 = NULL;
    g_autoptr(GError) err = NULL;
    PayloadProgress last, after;
    gsize pos;
    Vm *src;

    if (skip_without(accel)) {
        return;
    }
    src = start_source(fx, accel, &pos, &last);
    /* QEMU's HMP unit: MiB/s. Slow enough to cancel mid-way. */
    out = vm_hmp(src, "migrate_set_parameter max-bandwidth 1");
    g_assert_cmpstr(out, ==, "");
    g_clear_pointer(&out, g_free);
    out = vm_hmp(src, "info migrate_parameters");
    g_assert_nonnull(strstr(out, "max-bandwidth: 1048576 bytes/second"));
    r1 = vm_cmd(src, "migrate", args);
    g_usleep(300 * 1000);
    /* A second migrate is refused while one runs. */
    {
        g_autoptr(JsonNode) again = qmp_client_execute_json(src->qmp, "migrate", args, &err);
        if (again) {
            g_autoptr(JsonObject) info = vm_query_migrate(src);
            g_autoptr(JsonGenerator) gen = json_generator_new();
            g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), info);
            g_autofree char *text = NULL;
            json_generator_set_root(gen, node);
            text = json_generator_to_data(gen, NULL);
            g_error("a second migrate was accepted; query-migrate: %s", text);
        }
    }
    g_assert_cmpstr(err->message, ==, "There's a migration process in progress");
    r2 = vm_cmd(src, "migrate_cancel", NULL);
    status = vm_wait_migration_end(src, 30000);
    g_assert_cmpstr(status, ==, "cancelled");
    rs = vm_status(src);
    g_assert_cmpstr(rs, ==, "running");
    after = vm_progress(src, &pos);
    after = vm_progress(src, &pos);
    g_assert_cmpuint(after.steps, >, last.steps);
    g_assert_false(g_file_test(img, G_FILE_TEST_EXISTS));
}

/* The source's migration under way failed saying @why, and its guest runs on. */
static void check_source_failed(Vm *src, gsize *pos, const char *why)
{
    g_autofree char *status = vm_wait_migration_end(src, 60000);
    g_autoptr(JsonObject) info = vm_query_migrate(src);
    g_autofree char *rs = vm_status(src);
    const char *desc = json_object_get_string_member_with_default(info, "error-desc", "");

    g_assert_cmpstr(status, ==, "failed");
    g_test_message("error-desc: %s", desc);
    if (!strstr(desc, why)) {
        g_error("error-desc '%s' lacks '%s'", desc, why);
    }
    g_assert_cmpstr(rs, ==, "running");
    (void)vm_progress(src, pos);
}

/* A migration to @uri fails saying @why; the source guest runs on. */
static void check_source_failure(Vm *src, gsize *pos, const char *uri, const char *why)
{
    g_autofree char *args = g_strdup_printf("{\"uri\": \"%s\"}", uri);
    g_autoptr(JsonNode) r = vm_cmd(src, "migrate", args);

    check_source_failed(src, pos, why);
}

static void test_exec_fails(Fixture *fx, gconstpointer data)
{
    const char *accel = data;
    PayloadProgress last;
    gsize pos;
    Vm *src;

    if (skip_without(accel)) {
        return;
    }
    src = start_source(fx, accel, &pos, &last);
    check_source_failure(src, &pos, "exec:exit 3", "exited early (status 3)");
    check_source_failure(src, &pos, "exec:cat > /dev/null; exit 4", "exited with status 4");
}

static void test_destination_disappears(Fixture *fx, gconstpointer data)
{
    const char *accel = data;
    g_autofree char *uri = g_strdup_printf("tcp:127.0.0.1:%d", free_tcp_port());
    g_autofree char *args = g_strdup_printf("{\"uri\": \"%s\"}", uri);
    const char *extra[] = { "-incoming", uri, NULL };
    g_autoptr(JsonNode) r1 = NULL, r2 = NULL;
    PayloadProgress last;
    gsize pos;
    Vm *src, *dst;

    if (skip_without(accel)) {
        return;
    }
    src = start_source(fx, accel, &pos, &last);
    dst = vm_launch(fx, "dst", accel, VM_RAM, false, extra);
    r1 = vm_cmd(src, "migrate-set-parameters", "{\"max-bandwidth\": 4194304}");
    r2 = vm_cmd(src, "migrate", args);
    g_usleep(400 * 1000);
    vm_kill(dst);
    check_source_failed(src, &pos, uri);
}

/* A destination started with -incoming defer, return-path on or not, listening on @uri. */
static Vm *return_path_destination(Fixture *fx, const char *name, const char *accel,
                                   const char *ram, bool return_path, const char *uri)
{
    const char *extra[] = { "-incoming", "defer", NULL };
    g_autofree char *args = g_strdup_printf("{\"uri\": \"%s\"}", uri);
    Vm *dst = vm_launch(fx, name, accel, ram, false, extra);
    g_autoptr(JsonNode) r1 = NULL, r2 = NULL;

    if (return_path) {
        r1 = vm_cmd(dst, "migrate-set-capabilities",
                    "{\"capabilities\": [{\"capability\": \"return-path\", "
                    "\"state\": true}]}");
    }
    r2 = vm_cmd(dst, "migrate-incoming", args);
    return dst;
}

/*
 * return-path and pause-before-switchover, the two capabilities libvirt
 * turns on for a live migration: the source completes only on the
 * destination's yes. A destination that cannot load the stream (another RAM
 * size) says no, one without the capability never answers, exec: cannot
 * carry an answer: each time the source fails and its guest runs on. With
 * both right, the source waits in pre-switchover for migrate-continue.
 */
static void test_return_path(Fixture *fx, gconstpointer data)
{
    const char *accel = data;
    g_autofree char *uri = g_strdup_printf("unix:%s/mig.sock", fx->dir);
    g_autofree char *args = g_strdup_printf("{\"uri\": \"%s\"}", uri);
    g_autofree char *dst_status = NULL;
    g_autoptr(JsonNode) r1 = NULL, r5 = NULL, r6 = NULL;
    PayloadProgress last;
    gsize pos;
    Vm *src, *dst;

    if (skip_without(accel)) {
        return;
    }
    src = start_source(fx, accel, &pos, &last);
    r1 = vm_cmd(src, "migrate-set-capabilities",
                "{\"capabilities\": [{\"capability\": \"return-path\", \"state\": true}]}");

    check_source_failure(src, &pos, "exec:cat > /dev/null",
                         "return-path needs a connection both ways");

    dst = return_path_destination(fx, "dst-other-ram", accel, "256", true, uri);
    check_source_failure(src, &pos, uri, "the destination could not load the stream");
    vm_kill(dst);

    dst = return_path_destination(fx, "dst-no-return-path", accel, VM_RAM, false, uri);
    check_source_failure(src, &pos, uri, "without saying whether it loaded the stream");
    vm_kill(dst);

    r5 = vm_cmd(src, "migrate-set-capabilities",
                "{\"capabilities\": [{\"capability\": \"pause-before-switchover\", "
                "\"state\": true}]}");
    dst = return_path_destination(fx, "dst", accel, VM_RAM, true, uri);
    last = vm_progress(src, &pos);
    r6 = vm_cmd(src, "migrate", args);
    for (gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;;) {
        g_autoptr(JsonObject) info = vm_query_migrate(src);

        if (!strcmp(json_object_get_string_member(info, "status"), "pre-switchover")) {
            break;
        }
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(10 * 1000);
    }
    {
        g_autofree char *rs = vm_status(src);
        g_autoptr(JsonNode) r = vm_cmd(src, "migrate-continue",
                                       "{\"state\": \"pre-switchover\"}");

        g_assert_cmpstr(rs, ==, "finish-migrate");
    }
    {
        g_autofree char *status = vm_wait_migration_end(src, 60000);

        g_assert_cmpstr(status, ==, "completed");
    }
    dst_status = vm_wait_migration_end(dst, 60000);
    g_assert_cmpstr(dst_status, ==, "completed");
    check_destination_continues(dst, &last);
}

/* A saved image from a quick source, reused by the refusal cases. */
static char *save_image(Fixture *fx, const char *accel, const char *ram)
{
    char *img = fx_path(fx, "vm_state");
    g_autofree char *args = g_strdup_printf("{\"uri\": \"file:%s\"}", img);
    const char *extra[] = { NULL };
    gsize pos = 0;
    Vm *src = vm_launch(fx, "saver", accel, ram, !strcmp(accel, "kvm"), extra);
    g_autoptr(JsonNode) r = NULL;

    (void)vm_progress(src, &pos);
    r = vm_cmd(src, "migrate", args);
    wait_source_done(src);
    vm_kill(src);
    return img;
}

/* Loading @img must fail: exit status 1, @why on stderr, and the guest never ran. */
static void expect_load_refused(Fixture *fx, const char *accel, const char *img,
                                const char *ram, const char *why)
{
    g_autofree char *uri = g_strdup_printf("file:%s", img);
    const char *extra[] = { "-incoming", uri, NULL };
    Vm *dst = vm_spawn(fx, "dst", accel, ram, false, extra, false);
    g_autofree char *log = NULL;
    int status = vm_wait_exit(dst, 30000);

    log = vm_log(dst);
    if (status == -1) {
        g_autofree char *script = g_strdup_printf("for t in /proc/%d/task/*; do "
                                                  "echo $(cat $t/comm) $(cat $t/wchan); done",
                                                  dst->pid);
        const char *argv[] = { "/bin/sh", "-c", script, NULL };
        g_autofree char *state = NULL;
        g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &state, NULL,
                     NULL, NULL);
        g_error("refused load: still running after 30 s; log:\n%s\nthreads:\n%s", log,
                state ? state : "");
    }
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 1)) {
        g_error("refused load: status 0x%x, log:\n%s", status, log);
    }
    if (!strstr(log, "load of migration failed")) {
        g_error("the log does not say why the load failed:\n%s", log);
    }
    {
        /* Alternatives separated by '|'. */
        g_auto(GStrv) any = g_strsplit(why, "|", -1);
        bool found = false;
        for (char **w = any; *w; w++) {
            found |= strstr(log, *w) != NULL;
        }
        if (!found) {
            g_error("the log does not say '%s':\n%s", why, log);
        }
    }
    g_assert_cmpuint(serial_size(dst), ==, 0);
    g_ptr_array_remove(fx->vms, dst);
}

static void test_refuse_bad_images(Fixture *fx, gconstpointer data)
{
    const char *accel = data;
    g_autofree char *img = NULL;
    g_autofree char *bad = fx_path(fx, "bad");
    g_autofree char *contents = NULL;
    gsize len;

    if (skip_without(accel)) {
        return;
    }
    img = save_image(fx, accel, VM_RAM);
    g_assert_true(g_file_get_contents(img, &contents, &len, NULL));

    g_assert_true(g_file_set_contents(bad, contents, len / 2, NULL));
    expect_load_refused(fx, accel, bad, VM_RAM, "truncated at offset");

    /* Most likely page data (only the checksum tells), else a record header. */
    contents[len / 2] ^= 0x08;
    g_assert_true(g_file_set_contents(bad, contents, len, NULL));
    expect_load_refused(fx, accel, bad, VM_RAM, "checksum mismatch|corrupt stream at offset");
    contents[len / 2] ^= 0x08;

    expect_load_refused(fx, accel, img, "256", "RAM size: the image has 128 MiB, this machine 256 MiB");
}

static void test_defer_and_start_paused(Fixture *fx, gconstpointer data)
{
    const char *accel = data;
    g_autofree char *uri = g_strdup_printf("unix:%s/mig.sock", fx->dir);
    g_autofree char *args = g_strdup_printf("{\"uri\": \"%s\"}", uri);
    const char *extra[] = { "-incoming", "defer", "-S", NULL };
    g_autoptr(JsonNode) r1 = NULL, r2 = NULL, r3 = NULL;
    g_autofree char *st = NULL, *rs = NULL, *rs2 = NULL;
    g_autoptr(GError) err = NULL;
    PayloadProgress last;
    gsize pos;
    Vm *src, *dst;

    if (skip_without(accel)) {
        return;
    }
    src = start_source(fx, accel, &pos, &last);
    dst = vm_launch(fx, "dst", accel, VM_RAM, false, extra);
    rs = vm_status(dst);
    g_assert_cmpstr(rs, ==, "inmigrate");
    r1 = vm_cmd(dst, "migrate-incoming", args);
    g_assert_null(qmp_client_execute_json(dst->qmp, "migrate-incoming", args, &err));
    g_assert_cmpstr(err->message, ==, "The incoming migration has already been started");
    r2 = vm_cmd(src, "migrate", args);
    wait_source_done(src);
    st = vm_wait_migration_end(dst, 60000);
    g_assert_cmpstr(st, ==, "completed");
    /* -S: loaded but paused, as QEMU; cont runs it. */
    rs2 = vm_status(dst);
    g_assert_cmpstr(rs2, ==, "paused");
    g_assert_cmpuint(serial_size(dst), ==, 0);
    r3 = vm_cmd(dst, "cont", NULL);
    check_destination_continues(dst, &last);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    signal(SIGPIPE, SIG_IGN);
    static const char *const accels[] = { "kvm", "test" };

    for (unsigned i = 0; i < G_N_ELEMENTS(accels); i++) {
        static const struct {
            const char *name;
            void (*fn)(Fixture *, gconstpointer);
        } cases[] = {
            { "live-unix", test_live_unix },
            { "live-tcp", test_live_tcp },
            { "live-exec", test_live_exec },
            { "file-save-restore", test_file_save_restore },
            { "cancel-source-keeps-running", test_cancel },
            { "exec-fails-source-keeps-running", test_exec_fails },
            { "destination-disappears", test_destination_disappears },
            { "refuse-truncated-flipped-other-ram", test_refuse_bad_images },
            { "incoming-defer-start-paused", test_defer_and_start_paused },
            { "return-path", test_return_path },
        };

        for (unsigned k = 0; k < G_N_ELEMENTS(cases); k++) {
            g_autofree char *path = g_strdup_printf("/migration/%s/%s",
                                                    i ? "test-accel" : "kvm", cases[k].name);

            g_test_add(path, Fixture, accels[i], fixture_setup, cases[k].fn,
                       fixture_teardown);
        }
    }
    return g_test_run();
}
