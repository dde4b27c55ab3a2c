/* SPDX-License-Identifier: GPL-2.0-or-later */
/* End-to-end: the command line of the frostvm binary (bad options, serial, memory, -pidfile, -daemonize). */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vm-helper.h"

#define MAX_ARGS 16

/* A command line frostvm must refuse: status 1 and a message naming the culprit. */
typedef struct {
    const char *name;
    const char *args[MAX_ARGS];     /* "@PAYLOAD": the payload's path; "@ACCEL": kvm or test */
    const char *message;            /* part of stderr */
    bool needs_kvm;                 /* the check comes after opening /dev/kvm */
    const char *known_bug;          /* skip with this reason until it is fixed */
} BadCmdline;

static const BadCmdline bad_cmdlines[] = {
    { "unknown-option", { "-bogus", NULL }, "-bogus" },
    { "unknown-option-after-good-ones", { "-accel", "test", "-m", "64", "-frobnicate", NULL },
      "-frobnicate" },
    { "missing-argument", { "-accel", "test", "-m", NULL }, "-m" },
    { "m-not-a-size", { "-m", "lots", NULL }, "lots" },
    { "m-bad-suffix", { "-m", "64X", NULL }, "-m" },
    { "m-zero", { "-m", "0", NULL }, "-m" },
    { "smp-too-many", { "-smp", "99", NULL }, "-smp" },
    { "smp-zero", { "-smp", "0", NULL }, "-smp" },
    { "smp-not-a-number", { "-smp", "two", NULL }, "-smp" },
    { "accel-tcg", { "-accel", "tcg", NULL }, "tcg" },
    { "accel-unknown", { "-accel", "hvf", NULL }, "hvf" },
    /* Every accelerator tried, each failure named, in one message. */
    { "accel-incompatible", { "-accel", "tcg", "-machine", "accel=tcg", NULL }, "incompatible" },
    { "accel-none-works", { "-accel", "tcg", "-accel", "tcg", NULL },
      "no accelerator could be used" },
    { "accel-test-bad-append", { "-accel", "kvm", "-accel", "test", "-m", "64", "-append",
                                 "order=zigzag", NULL }, "order=zigzag" },
    { "accel-test-range-too-big", { "-accel", "kvm", "-accel", "test", "-m", "64", "-append",
                                    "mem=256M", NULL }, "does not fit" },
    { "machine-unknown", { "-machine", "foo", NULL }, "foo" },
    { "display-gtk", { "-display", "gtk", NULL }, "-display" },
    { "serial-unknown", { "-serial", "bogus", NULL }, "-serial" },
    { "qmp-unknown-kind", { "-qmp", "bogus:x", NULL }, "bogus:x" },
    { "qmp-client-mode", { "-qmp", "unix:x.sock,server=off", NULL }, "server" },
    { "monitor-unknown-kind", { "-monitor", "bogus", NULL }, "bogus" },
    { "object-unknown-type", { "-accel", "test", "-m", "64", "-object",
                               "memory-backend-foo,id=m,size=64M", NULL },
      "memory-backend-foo" },
    { "object-without-size", { "-accel", "test", "-object", "memory-backend-ram,id=m", NULL },
      "size" },
    { "machine-backend-unknown-id", { "-accel", "test", "-m", "64", "-machine",
                                      "memory-backend=nope", NULL }, "nope" },
    { "backend-size-mismatch", { "-accel", "test", "-m", "64", "-object",
                                 "memory-backend-memfd,id=m,size=32M", "-machine",
                                 "memory-backend=m", "-append", "mem=8M", NULL },
      "size" },
    { "backend-file-missing-dir", { "-accel", "test", "-m", "64", "-object",
                                    "memory-backend-file,id=m,size=64M,"
                                    "mem-path=no/such/dir/guest.ram",
                                    "-machine", "memory-backend=m", "-append", "mem=8M", NULL },
      "no/such/dir" },
    { "incoming-unknown-protocol", { "-accel", "test", "-append", "mem=8M", "-incoming",
                                     "bogus:x", NULL }, "bogus:x" },
    { "serial-file-missing-dir", { "-accel", "test", "-append", "mem=8M", "-serial",
                                   "file:no/such/dir/serial.log", NULL }, "no/such/dir" },
    { "pidfile-missing-dir", { "-accel", "test", "-append", "mem=8M", "-pidfile",
                               "no/such/dir/vm.pid", NULL }, "-pidfile" },
    { "kvm-without-kernel", { "-accel", "kvm", "-m", "64", NULL }, "kernel", true },
    { "kernel-missing", { "-accel", "@ACCEL", "-m", "64", "-append", "mem=8M", "-kernel",
                          "no-such-kernel", NULL }, "no-such-kernel" },
    { "kernel-not-multiboot", { "-accel", "kvm", "-m", "64", "-kernel", "not-a-kernel", NULL },
      "not-a-kernel", true },
    { "kernel-not-multiboot-test-accel", { "-accel", "test", "-m", "64", "-append", "mem=8M",
                                           "-kernel", "not-a-kernel", NULL },
      "not-a-kernel" },
    { "initrd-missing", { "-accel", "@ACCEL", "-m", "64", "-append", "mem=8M", "-kernel",
                          "@PAYLOAD", "-initrd", "no-such-initrd", NULL }, "no-such-initrd" },
    { "backend-file-missing-dir-kvm", { "-accel", "kvm", "-m", "64", "-kernel", "@PAYLOAD",
                                        "-append", "mem=8M", "-object",
                                        "memory-backend-file,id=m,size=64M,"
                                        "mem-path=no/such/dir/guest.ram",
                                        "-machine", "memory-backend=m", NULL },
      "no/such/dir", true },
    /* QEMU refuses to daemonize with the terminal as a device: the output would be lost. */
    { "daemonize-serial-stdio", { "-accel", "test", "-append", "mem=8M", "-daemonize",
                                  "-serial", "stdio", NULL }, "stdio", false, NULL },
    { "daemonize-monitor-stdio", { "-accel", "test", "-append", "mem=8M", "-daemonize",
                                   "-monitor", "stdio", NULL }, "stdio", false, NULL },
    { "daemonize-nographic", { "-accel", "test", "-append", "mem=8M", "-daemonize",
                               "-nographic", NULL }, "-nographic", false, NULL },
};

static void test_bad_cmdline(TestVmFixture *f, gconstpointer data)
{
    const BadCmdline *bc = data;
    g_autoptr(GError) err = NULL;
    g_autofree char *junk = NULL;
    g_autofree char *out = NULL;
    g_autofree char *errtext = NULL;
    g_autofree char *payload = test_vm_payload_path();
    int status = -1;

    if (bc->known_bug) {
        g_autofree char *msg = g_strdup_printf("known bug: %s", bc->known_bug);

        g_test_skip(msg);
        return;
    }
    if (bc->needs_kvm && test_vm_skip_without_kvm()) {
        return;
    }
    f->vm = test_vm_new(TEST_VM_NO_QMP | TEST_VM_NO_SERIAL);
    /* Something that is not a Multiboot image. */
    junk = test_vm_path(f->vm, "not-a-kernel");
    g_assert_true(g_file_set_contents(junk, "#!/bin/sh\necho not a kernel\n", -1, NULL));
    for (int i = 0; bc->args[i]; i++) {
        const char *a = bc->args[i];

        test_vm_add_args(f->vm, !strcmp(a, "@PAYLOAD") ? payload :
                                !strcmp(a, "@ACCEL") ? test_vm_any_accel() : a, NULL);
    }
    test_vm_launch_or_fail(f->vm);
    test_vm_wait_exit(f->vm, TEST_VM_TIMEOUT_MS, &status, &err);
    g_assert_no_error(err);
    errtext = test_vm_log_read(f->vm, TEST_VM_LOG_STDERR);
    out = test_vm_log_read(f->vm, TEST_VM_LOG_STDOUT);
    g_test_message("stderr: %s", errtext);
    g_assert_cmpint(status, ==, 1);
    g_assert_true(g_str_has_prefix(errtext, "frostvm: "));
    if (!strstr(errtext, bc->message)) {
        g_error("the message '%s' does not name '%s'", errtext, bc->message);
    }
    /* No guest ran. */
    g_assert_null(strstr(out, "PROGRESS"));
}

/* A frostvm that only prints and exits: its status and stdout. */
static char *run_and_exit(TestVmFixture *f, const char *arg, int *status)
{
    g_autoptr(GError) err = NULL;

    f->vm = test_vm_new(TEST_VM_NO_QMP | TEST_VM_NO_SERIAL);
    test_vm_add_args(f->vm, arg, NULL);
    test_vm_launch_or_fail(f->vm);
    test_vm_wait_exit(f->vm, TEST_VM_TIMEOUT_MS, status, &err);
    g_assert_no_error(err);
    return test_vm_log_read(f->vm, TEST_VM_LOG_STDOUT);
}

static void test_version(TestVmFixture *f, gconstpointer data)
{
    int status = -1;
    g_autofree char *out = run_and_exit(f, "-version", &status);

    g_assert_cmpint(status, ==, 0);
    g_assert_nonnull(strstr(out, "0."));
    g_assert_nonnull(strstr(out, "frostvm"));
}

static void test_help(TestVmFixture *f, gconstpointer data)
{
    static const char *const options[] = {
        "-m ", "-smp", "-accel", "-kernel", "-append", "-qmp", "-monitor", "-serial",
        "-object", "-machine", "-S ", "-incoming", "-pidfile", "-daemonize", "-name",
        "-nographic", "-display",
    };
    int status = -1;
    g_autofree char *out = run_and_exit(f, "-help", &status);

    g_assert_cmpint(status, ==, 0);
    for (guint i = 0; i < G_N_ELEMENTS(options); i++) {
        if (!strstr(out, options[i])) {
            g_error("-help does not mention %s", options[i]);
        }
    }
}

/* A guest started with @extra, its first PROGRESS line seen. */
static TestVm *start_guest(TestVmFixture *f, TestVmFlags flags, const char *accel,
                           const char *append, const char *const *extra)
{
    f->vm = test_vm_new(flags);
    test_vm_add_guest(f->vm, accel, append);
    for (int i = 0; extra && extra[i]; i++) {
        test_vm_add_args(f->vm, extra[i], NULL);
    }
    test_vm_launch_or_fail(f->vm);
    return f->vm;
}

/* -serial file: gets the guest's lines, with the -append keys echoed; stdout gets none. */
static void test_serial_file(TestVmFixture *f, gconstpointer data)
{
    static const char *const extra[] = { "-serial", "file:guest.log", NULL };
    g_autoptr(GError) err = NULL;
    g_autofree char *path = NULL;
    g_autofree char *text = NULL;
    g_autofree char *out = NULL;
    g_autoptr(GHashTable) kv = NULL;
    g_auto(GStrv) lines = NULL;
    gint64 deadline = g_get_monotonic_time() + TEST_VM_TIMEOUT_MS * (gint64)1000;

    f->vm = test_vm_new(TEST_VM_NO_SERIAL);
    path = test_vm_path(f->vm, "guest.log");
    /* An old log is replaced, not appended to (QEMU truncates it). */
    g_assert_true(g_file_set_contents(path, "OLD LOG\n", -1, NULL));
    test_vm_add_guest(f->vm, test_vm_any_accel(), "mem=8M order=random seed=7 report_ms=50");
    test_vm_add_args(f->vm, extra[0], extra[1], NULL);
    test_vm_launch_or_fail(f->vm);
    /* The relative path is the VM's working directory. */
    for (;;) {
        g_free(text);
        text = NULL;
        g_file_get_contents(path, &text, NULL, NULL);
        if (text && strstr(text, "PAYLOAD READY")) {
            break;
        }
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(10 * 1000);
    }
    lines = g_strsplit(text, "\n", -1);
    g_assert_true(g_str_has_prefix(lines[0], "PAYLOAD START version=1 "));
    kv = test_vm_parse_keyvals(lines[0]);
    g_assert_cmpstr(g_hash_table_lookup(kv, "mem"), ==, "0x800000");
    g_assert_cmpstr(g_hash_table_lookup(kv, "order"), ==, "random");
    g_assert_cmpstr(g_hash_table_lookup(kv, "seed"), ==, "7");
    g_assert_cmpstr(g_hash_table_lookup(kv, "report_ms"), ==, "50");
    g_assert_true(g_str_has_prefix(lines[1], "PROGRESS "));
    out = test_vm_log_read(f->vm, TEST_VM_LOG_STDOUT);
    g_assert_cmpstr(out, ==, "");
    g_assert_no_error(err);
}

static void test_serial_stdio(TestVmFixture *f, gconstpointer data)
{
    static const char *const extra[] = { "-serial", "stdio", NULL };
    g_autoptr(GError) err = NULL;
    PayloadProgress p;

    start_guest(f, TEST_VM_NO_SERIAL, test_vm_any_accel(), "mem=8M report_ms=50", extra);
    test_vm_wait_log(f->vm, TEST_VM_LOG_STDOUT, "PAYLOAD START", TEST_VM_TIMEOUT_MS, NULL,
                     &err);
    g_assert_no_error(err);
    test_vm_wait_log(f->vm, TEST_VM_LOG_STDOUT, "PROGRESS ", TEST_VM_TIMEOUT_MS, NULL, &err);
    g_assert_no_error(err);
    /* The same lines as -serial file: would get: parse one. */
    {
        g_autofree char *line = NULL;

        test_vm_wait_log(f->vm, TEST_VM_LOG_STDOUT, "PROGRESS ", TEST_VM_TIMEOUT_MS, &line,
                         &err);
        g_assert_no_error(err);
        g_assert_true(payload_parse_progress(line, &p, &err));
        g_assert_true(p.regs_ok);
    }
}

/* -serial null: the guest runs, its output goes nowhere. */
static void test_serial_null(TestVmFixture *f, gconstpointer data)
{
    static const char *const extra[] = { "-serial", "null", NULL };
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) ret = NULL;
    g_autofree char *out = NULL;

    start_guest(f, TEST_VM_NO_SERIAL, test_vm_any_accel(), "mem=8M report_ms=50", extra);
    g_usleep(300 * 1000);
    ret = qmp_client_execute(test_vm_qmp(f->vm), "query-status", NULL, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(json_object_get_string_member(json_node_get_object(ret), "status"), ==,
                    "running");
    out = test_vm_log_read(f->vm, TEST_VM_LOG_STDOUT);
    g_assert_null(strstr(out, "PAYLOAD"));
}

/* -nographic puts the serial port on stdout, as in QEMU. */
static void test_nographic(TestVmFixture *f, gconstpointer data)
{
    static const char *const extra[] = { "-nographic", NULL };
    g_autoptr(GError) err = NULL;

    start_guest(f, TEST_VM_NO_SERIAL, test_vm_any_accel(), "mem=8M report_ms=50", extra);
    test_vm_wait_log(f->vm, TEST_VM_LOG_STDOUT, "PROGRESS ", TEST_VM_TIMEOUT_MS, NULL, &err);
    g_assert_no_error(err);
}

/* Spellings of the same thing: sizes with suffixes, QEMU's older -qmp syntax, -name. */
typedef struct {
    const char *name;
    const char *extra[8];
    TestVmFlags flags;
    bool needs_kvm;                 /* the spelling is about KVM itself */
} GoodCmdline;

static const GoodCmdline good_cmdlines[] = {
    { "m-suffix-M", { "-m", "64M", NULL } },
    { "m-suffix-K", { "-m", "65536K", NULL } },
    { "m-suffix-G", { "-m", "1G", NULL } },
    { "enable-kvm", { "-enable-kvm", NULL }, .needs_kvm = true },
    { "name", { "-name", "guest-one", NULL } },
    { "qmp-legacy-syntax", { "-qmp", "unix:qmp.sock,server,nowait", NULL }, TEST_VM_NO_QMP },
    { "backend-ram", { "-object", "memory-backend-ram,id=m,size=64M", "-machine",
                       "memory-backend=m", NULL } },
    { "backend-memfd", { "-object", "memory-backend-memfd,id=m,size=64M,share=on",
                         "-machine", "memory-backend=m", NULL } },
    { "machine-thp-off", { "-machine", "pc,thp=off", NULL } },
};

static void test_good_cmdline(TestVmFixture *f, gconstpointer data)
{
    const GoodCmdline *gc = data;
    g_autoptr(GError) err = NULL;
    g_autoptr(QmpClient) own = NULL;
    QmpClient *qmp;
    PayloadProgress p;

    if (gc->needs_kvm && test_vm_skip_without_kvm()) {
        return;
    }
    start_guest(f, gc->flags, gc->needs_kvm ? "kvm" : test_vm_any_accel(), "mem=8M report_ms=50",
                gc->extra);
    qmp = test_vm_qmp(f->vm);
    if (!qmp) {
        own = test_vm_qmp_connect(f->vm, true, &err);
        g_assert_no_error(err);
        qmp = own;
    }
    test_vm_wait_progress(f->vm, TEST_VM_TIMEOUT_MS, &p, &err);
    g_assert_no_error(err);
    g_assert_true(p.regs_ok);
    g_assert_cmpuint(p.errors, ==, 0);
    g_autoptr(JsonNode) ret = qmp_client_execute(qmp, "query-status", NULL, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(json_object_get_string_member(json_node_get_object(ret), "status"), ==,
                    "running");
}

/*
 * memory-backend-file with share=on: the file is guest RAM, so with the VM
 * stopped it holds the payload's memory, and its invariant holds.
 */
static void test_backend_file_image(TestVmFixture *f, gconstpointer data)
{
    const char *accel = data;
    static const char *const extra[] = {
        "-object", "memory-backend-file,id=m,size=64M,mem-path=guest.ram,share=on",
        "-machine", "memory-backend=m", NULL,
    };
    g_autoptr(GError) err = NULL;
    g_autofree char *path = NULL;
    g_autofree char *ram = NULL;
    gsize len = 0;
    PayloadProgress before;
    PayloadCheckResult res;
    QmpClient *qmp;

    if (!strcmp(accel, "kvm") && test_vm_skip_without_kvm()) {
        return;
    }
    start_guest(f, TEST_VM_DEFAULT, accel, "mem=8M report_ms=50", extra);
    qmp = test_vm_qmp(f->vm);
    test_vm_wait_serial(f->vm, "PAYLOAD READY", TEST_VM_TIMEOUT_MS, NULL, &err);
    g_assert_no_error(err);
    test_vm_wait_progress(f->vm, TEST_VM_TIMEOUT_MS, &before, &err);
    g_assert_no_error(err);
    g_autoptr(JsonNode) r1 = qmp_client_execute(qmp, "stop", NULL, &err);
    g_assert_no_error(err);
    g_assert_nonnull(r1);

    path = test_vm_path(f->vm, "guest.ram");
    g_assert_true(g_file_get_contents(path, &ram, &len, &err));
    g_assert_cmpuint(len, ==, 64 << 20);
    if (!payload_check_memory((const uint8_t *)ram, len, &res, &err)) {
        g_autofree char *desc = payload_check_result_describe(&res);

        g_error("the stopped guest's RAM breaks the invariant: %s\n%s",
                err ? err->message : "", desc);
    }
    g_assert_cmpuint(res.pages_bad, ==, 0);
    g_assert_cmpuint(res.npages, ==, 2048);
    g_assert_cmpuint(res.steps, >=, before.steps);
    g_assert_cmpuint(res.sweep, >=, 1);

    g_autoptr(JsonNode) r2 = qmp_client_execute(qmp, "cont", NULL, &err);
    g_assert_no_error(err);
    g_assert_nonnull(r2);
    /*
     * The first report after cont may come before any step (its deadline
     * passed while paused); the guest must move on within a few reports.
     */
    for (int i = 0; i < 10; i++) {
        test_vm_wait_progress(f->vm, TEST_VM_TIMEOUT_MS, &before, &err);
        g_assert_no_error(err);
        if (before.steps > res.steps) {
            break;
        }
    }
    g_assert_cmpuint(before.steps, >, res.steps);
}

/*
 * -qmp without wait=off waits, as QEMU does, for the first client before the
 * machine starts; then it runs.
 */
static void test_qmp_wait_on(TestVmFixture *f, gconstpointer data)
{
    static const char *const extra[] = { "-qmp", "unix:qmp.sock,server=on", NULL };
    g_autoptr(GError) err = NULL;
    g_autoptr(QmpClient) c = NULL;
    g_autofree char *sock = NULL;
    gint64 deadline = g_get_monotonic_time() + TEST_VM_TIMEOUT_MS * (gint64)1000;
    PayloadProgress p;

    start_guest(f, TEST_VM_NO_QMP, test_vm_any_accel(), "mem=8M report_ms=50", extra);
    sock = test_vm_path(f->vm, "qmp.sock");
    while (!g_file_test(sock, G_FILE_TEST_EXISTS)) {
        g_assert_true(test_vm_is_running(f->vm));
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(10 * 1000);
    }
    g_usleep(300 * 1000);
    g_assert_cmpuint(test_vm_log_size(f->vm, TEST_VM_LOG_SERIAL), ==, 0);
    c = test_vm_qmp_connect(f->vm, true, &err);
    g_assert_no_error(err);
    test_vm_wait_progress(f->vm, TEST_VM_TIMEOUT_MS, &p, &err);
    g_assert_no_error(err);
}

/* Two -qmp sockets serve at once; a stale socket file from an earlier run is replaced. */
static void test_qmp_two_sockets(TestVmFixture *f, gconstpointer data)
{
    static const char *const extra[] = {
        "-qmp", "unix:second.sock,server=on,wait=off", NULL,
    };
    g_autoptr(GError) err = NULL;
    g_autoptr(QmpClient) c2 = NULL;
    g_autoptr(JsonNode) r = NULL;
    g_autofree char *second = NULL;
    g_autofree char *stale = NULL;
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd;

    f->vm = test_vm_new(TEST_VM_DEFAULT);
    /* A socket file nobody listens on, as a killed VM leaves behind. */
    stale = test_vm_path(f->vm, "qmp.sock");
    g_strlcpy(addr.sun_path, stale, sizeof(addr.sun_path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), ==, 0);
    close(fd);
    g_assert_true(g_file_test(stale, G_FILE_TEST_EXISTS));

    test_vm_add_guest(f->vm, test_vm_any_accel(), "mem=8M report_ms=50");
    test_vm_add_args(f->vm, extra[0], extra[1], NULL);
    test_vm_launch_or_fail(f->vm);
    second = test_vm_path(f->vm, "second.sock");
    c2 = qmp_client_open(second, TEST_VM_TIMEOUT_MS, &err);
    g_assert_no_error(err);
    r = qmp_client_execute(c2, "stop", NULL, &err);
    g_assert_no_error(err);
    /* Events reach the clients of both sockets. */
    g_autoptr(JsonObject) e1 = qmp_client_wait_event(test_vm_qmp(f->vm), "STOP",
                                                     TEST_VM_TIMEOUT_MS, &err);
    g_assert_no_error(err);
    g_autoptr(JsonObject) e2 = qmp_client_wait_event(c2, "STOP", TEST_VM_TIMEOUT_MS, &err);
    g_assert_no_error(err);
    test_vm_assert_event(e1, "STOP");
    test_vm_assert_event(e2, "STOP");
}

static bool process_gone(pid_t pid)
{
    return kill(pid, 0) < 0 && errno == ESRCH;
}

/* The pid in @path, or 0. */
static pid_t read_pidfile(const char *path)
{
    g_autofree char *text = NULL;
    char *end = NULL;
    long pid;

    if (!g_file_get_contents(path, &text, NULL, NULL)) {
        return 0;
    }
    pid = strtol(text, &end, 10);
    g_assert_true(end != text && (*end == '\n' || *end == '\0'));
    return (pid_t)pid;
}

/* -pidfile without -daemonize: the VM's own pid, removed at exit. */
static void test_pidfile(TestVmFixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *pidfile = NULL;
    const char *extra[3] = { "-pidfile", NULL, NULL };
    g_autoptr(JsonNode) ret = NULL;
    int status = -1;

    f->vm = test_vm_new(TEST_VM_DEFAULT);
    pidfile = test_vm_path(f->vm, "vm.pid");
    extra[1] = pidfile;
    test_vm_add_guest(f->vm, test_vm_any_accel(), "mem=8M");
    test_vm_add_args(f->vm, extra[0], extra[1], NULL);
    test_vm_launch_or_fail(f->vm);
    g_assert_cmpint(read_pidfile(pidfile), ==, test_vm_pid(f->vm));
    ret = qmp_client_execute(test_vm_qmp(f->vm), "quit", NULL, &err);
    g_assert_no_error(err);
    g_assert_true(test_vm_wait_exit(f->vm, TEST_VM_TIMEOUT_MS, &status, &err));
    g_assert_cmpint(status, ==, 0);
    g_assert_false(g_file_test(pidfile, G_FILE_TEST_EXISTS));
}

/*
 * -daemonize -pidfile F: the command returns (status 0) once the machine is
 * up; F names a live process in its own session that serves QMP and runs the
 * guest; quit ends it with status 0 and removes F. The test program is a
 * child subreaper (set in main), so the daemon becomes its child and its
 * status can be read.
 */
static void test_daemonize(TestVmFixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(QmpClient) qmp = NULL;
    g_autoptr(JsonNode) st = NULL;
    g_autoptr(JsonNode) q = NULL;
    g_autofree char *pidfile = NULL;
    PayloadProgress p;
    gint64 t0;
    pid_t pid;
    int status = -1;
    int wst;

    f->vm = test_vm_new(TEST_VM_NO_CONNECT);
    pidfile = test_vm_path(f->vm, "vm.pid");
    test_vm_add_guest(f->vm, test_vm_any_accel(), "mem=8M report_ms=50");
    test_vm_add_args(f->vm, "-daemonize", "-pidfile", pidfile, NULL);
    t0 = g_get_monotonic_time();
    test_vm_launch_or_fail(f->vm);
    test_vm_wait_exit(f->vm, TEST_VM_TIMEOUT_MS, &status, &err);
    g_assert_no_error(err);
    g_assert_cmpint(status, ==, 0);
    g_test_message("-daemonize returned after %" G_GINT64_FORMAT " ms",
                   (g_get_monotonic_time() - t0) / 1000);

    pid = read_pidfile(pidfile);
    g_assert_cmpint(pid, >, 0);
    test_vm_guard_pid(f->vm, pid);
    g_assert_cmpint(pid, !=, test_vm_pid(f->vm));
    g_assert_false(process_gone(pid));
    g_assert_cmpint(getsid(pid), ==, pid);

    qmp = test_vm_qmp_connect(f->vm, true, &err);
    g_assert_no_error(err);
    st = qmp_client_execute(qmp, "query-status", NULL, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(json_object_get_string_member(json_node_get_object(st), "status"), ==,
                    "running");
    test_vm_wait_progress(f->vm, TEST_VM_TIMEOUT_MS, &p, &err);
    g_assert_no_error(err);
    g_assert_true(p.regs_ok);

    q = qmp_client_execute(qmp, "quit", NULL, &err);
    g_assert_no_error(err);
    g_assert_true(qmp_client_wait_closed(qmp, TEST_VM_TIMEOUT_MS, &err));
    g_assert_cmpint(waitpid(pid, &wst, 0), ==, pid);
    test_vm_unguard_pid(f->vm, pid);
    g_assert_true(WIFEXITED(wst));
    g_assert_cmpint(WEXITSTATUS(wst), ==, 0);
    g_assert_false(g_file_test(pidfile, G_FILE_TEST_EXISTS));
    g_assert_true(process_gone(pid));
}

/*
 * Accelerators are tried in order (QEMU's rule for repeated -accel and for
 * -machine accel=a:b): tcg is never available, kvm only where /dev/kvm works,
 * test always. The one chosen is what query-kvm and the guest show; the ones
 * passed over are named on stderr.
 */
static void test_accel_fallback(TestVmFixture *f, gconstpointer data)
{
    const char *spelling = data;
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) kvm = NULL;
    g_autofree char *errtext = NULL;
    g_autofree char *why = NULL;
    bool have_kvm = test_vm_kvm_usable(&why);
    g_autofree char *payload = test_vm_payload_path();
    PayloadProgress p;
    JsonObject *o;

    f->vm = test_vm_new(TEST_VM_DEFAULT);
    if (!strcmp(spelling, "options")) {
        test_vm_add_args(f->vm, "-accel", "tcg", "-accel", "kvm", "-accel", "test", NULL);
    } else {
        test_vm_add_args(f->vm, "-machine", "pc,accel=tcg:kvm:test", NULL);
    }
    test_vm_add_args(f->vm, "-m", "64", "-kernel", payload, "-append", "mem=8M", NULL);
    test_vm_launch_or_fail(f->vm);
    kvm = qmp_client_execute(test_vm_qmp(f->vm), "query-kvm", NULL, &err);
    g_assert_no_error(err);
    o = json_node_get_object(kvm);
    g_assert_cmpint(json_object_get_boolean_member(o, "enabled"), ==, have_kvm);
    g_assert_cmpint(json_object_get_boolean_member(o, "present"), ==, have_kvm);
    test_vm_wait_progress(f->vm, TEST_VM_TIMEOUT_MS, &p, &err);
    g_assert_no_error(err);
    g_assert_true(p.regs_ok);
    errtext = test_vm_log_read(f->vm, TEST_VM_LOG_STDERR);
    g_test_message("stderr: %s", errtext);
    g_assert_nonnull(strstr(errtext, "tcg"));
    g_assert_nonnull(strstr(errtext, have_kvm ? "using kvm" : "using test"));
    if (!have_kvm) {
        g_assert_nonnull(strstr(errtext, "/dev/kvm"));
    }
}

/* se.slice (ns) of the thread of @pid named @comm, from /proc; 0 when not shown. */
static guint64 thread_slice_ns(pid_t pid, const char *comm)
{
    g_autofree char *dir = g_strdup_printf("/proc/%d/task", (int)pid);
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *tid;

    while (d && (tid = g_dir_read_name(d))) {
        g_autofree char *cpath = g_strdup_printf("%s/%s/comm", dir, tid);
        g_autofree char *spath = g_strdup_printf("%s/%s/sched", dir, tid);
        g_autofree char *name = NULL, *sched = NULL;
        const char *line;

        if (g_file_get_contents(cpath, &name, NULL, NULL) && !strcmp(g_strstrip(name), comm) &&
            g_file_get_contents(spath, &sched, NULL, NULL) &&
            (line = strstr(sched, "se.slice")) && (line = strchr(line, ':'))) {
            return g_ascii_strtoull(line + 1, NULL, 10);
        }
    }
    return 0;
}

/*
 * The vCPU thread's time slice: frostvm's 100 us by default, what
 * -accel test,x-vcpu-slice-us= says, or the kernel's own with 0.
 */
static void test_vcpu_slice(TestVmFixture *f, gconstpointer data)
{
    const char *value = data;
    g_autofree char *payload = test_vm_payload_path();
    g_autofree char *accel = value ? g_strdup_printf("test,x-vcpu-slice-us=%s", value)
                                   : g_strdup("test");
    g_autoptr(GError) err = NULL;
    PayloadProgress p;

    f->vm = test_vm_new(TEST_VM_DEFAULT);
    test_vm_add_args(f->vm, "-accel", accel, "-m", "64", "-kernel", payload, "-append",
                     "mem=8M", NULL);
    test_vm_launch_or_fail(f->vm);
    test_vm_wait_progress(f->vm, TEST_VM_TIMEOUT_MS, &p, &err);
    g_assert_no_error(err);
    guint64 ns = thread_slice_ns(test_vm_pid(f->vm), "test-vcpu0");
    if (!ns) {
        g_test_skip("this kernel does not show se.slice in /proc (before Linux 6.6)");
        return;
    }
    if (!value) {
        g_assert_cmpuint(ns, ==, 100 * 1000);
    } else if (!strcmp(value, "0")) {
        g_assert_cmpuint(ns, !=, 100 * 1000);   /* the kernel's default, whatever it is */
    } else {
        g_assert_cmpuint(ns, ==, g_ascii_strtoull(value, NULL, 10) * 1000);
    }
}

/* A failing start under -daemonize: the command itself exits 1 with the message. */
static void test_daemonize_failure(TestVmFixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *errtext = NULL;
    g_autofree char *pidfile = NULL;
    int status = -1;

    f->vm = test_vm_new(TEST_VM_NO_QMP | TEST_VM_NO_SERIAL);
    pidfile = test_vm_path(f->vm, "vm.pid");
    test_vm_add_args(f->vm, "-accel", "test", "-append", "mem=8M", "-daemonize",
                     "-pidfile", pidfile, "-incoming", "bogus:x", NULL);
    test_vm_launch_or_fail(f->vm);
    test_vm_wait_exit(f->vm, TEST_VM_TIMEOUT_MS, &status, &err);
    g_assert_no_error(err);
    g_assert_cmpint(status, ==, 1);
    errtext = test_vm_log_read(f->vm, TEST_VM_LOG_STDERR);
    g_assert_nonnull(strstr(errtext, "bogus:x"));
    g_assert_false(g_file_test(pidfile, G_FILE_TEST_EXISTS));
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
    /* A -daemonize'd frostvm becomes our child when its parent exits: we can reap it. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
        g_error("prctl(PR_SET_CHILD_SUBREAPER): %s", g_strerror(errno));
    }

    for (guint i = 0; i < G_N_ELEMENTS(bad_cmdlines); i++) {
        g_autofree char *path = g_strdup_printf("/cmdline/bad/%s", bad_cmdlines[i].name);

        add(path, &bad_cmdlines[i], test_bad_cmdline);
    }
    for (guint i = 0; i < G_N_ELEMENTS(good_cmdlines); i++) {
        g_autofree char *path = g_strdup_printf("/cmdline/good/%s", good_cmdlines[i].name);

        add(path, &good_cmdlines[i], test_good_cmdline);
    }
    add("/cmdline/version", NULL, test_version);
    add("/cmdline/help", NULL, test_help);
    add("/cmdline/serial/file", NULL, test_serial_file);
    add("/cmdline/serial/stdio", NULL, test_serial_stdio);
    add("/cmdline/serial/null", NULL, test_serial_null);
    add("/cmdline/nographic", NULL, test_nographic);
    add("/cmdline/vcpu-slice/default", NULL, test_vcpu_slice);
    add("/cmdline/vcpu-slice/kernel", "0", test_vcpu_slice);
    add("/cmdline/vcpu-slice/500us", "500", test_vcpu_slice);
    add("/cmdline/backend-file-image/kvm", "kvm", test_backend_file_image);
    add("/cmdline/backend-file-image/test", "test", test_backend_file_image);
    add("/cmdline/qmp/wait-on", NULL, test_qmp_wait_on);
    add("/cmdline/qmp/two-sockets", NULL, test_qmp_two_sockets);
    add("/cmdline/pidfile", NULL, test_pidfile);
    add("/cmdline/daemonize/run-and-quit", NULL, test_daemonize);
    add("/cmdline/daemonize/failure", NULL, test_daemonize_failure);
    add("/cmdline/accel/fallback-options", "options", test_accel_fallback);
    add("/cmdline/accel/fallback-machine-accel", "machine", test_accel_fallback);
    return g_test_run();
}
