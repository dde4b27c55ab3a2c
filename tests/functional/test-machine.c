/* SPDX-License-Identifier: GPL-2.0-or-later */
/* End-to-end: the payload boots and progresses, pauses and resumes, and the VM shuts down, under KVM and -accel test. */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "vm-helper.h"

/* One accelerator and guest per case; the same scenario runs under each. */
typedef struct {
    const char *accel;          /* "kvm" or "test" */
    const char *append;
    const char *extra[4];       /* more arguments, NULL-terminated */
} GuestCase;

static bool guest_case_skip(const GuestCase *gc)
{
    return !strcmp(gc->accel, "kvm") && test_vm_skip_without_kvm();
}

static TestVm *guest_start(TestVmFixture *f, const GuestCase *gc, TestVmFlags flags)
{
    f->vm = test_vm_new(flags);
    test_vm_add_guest(f->vm, gc->accel, gc->append);
    for (int i = 0; gc->extra[i]; i++) {
        test_vm_add_args(f->vm, gc->extra[i], NULL);
    }
    test_vm_launch_or_fail(f->vm);
    return f->vm;
}

/* Read @n PROGRESS lines: healthy, and steps strictly increasing; returns the last. */
static PayloadProgress assert_progress(TestVm *vm, const GuestCase *gc, int n,
                                       uint64_t after_steps)
{
    PayloadProgress p = { 0 };
    uint64_t prev = after_steps;

    for (int i = 0; i < n; i++) {
        g_autoptr(GError) err = NULL;

        test_vm_wait_progress(vm, TEST_VM_TIMEOUT_MS, &p, &err);
        g_assert_no_error(err);
        g_assert_true(p.regs_ok);
        g_assert_cmpuint(p.errors, ==, 0);
        g_assert_cmpuint(p.steps, >, prev);
        g_assert_cmpuint(p.rate, >, 0);
        /* Under KVM r15 must be the chain over exactly the reported steps. */
        if (!strcmp(gc->accel, "kvm")) {
            g_assert_true(payload_progress_csum_ok(&p));
        }
        prev = p.steps;
    }
    return p;
}

static void query_status_is(QmpClient *qmp, const char *status, bool running)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) ret = qmp_client_execute(qmp, "query-status", NULL, &err);
    JsonObject *o;

    g_assert_no_error(err);
    g_assert_true(JSON_NODE_HOLDS_OBJECT(ret));
    o = json_node_get_object(ret);
    g_assert_cmpstr(json_object_get_string_member(o, "status"), ==, status);
    g_assert_cmpint(json_object_get_boolean_member(o, "running"), ==, running);
    g_assert_true(json_object_has_member(o, "singlestep"));
    g_assert_false(json_object_get_boolean_member(o, "singlestep"));
    g_assert_cmpuint(json_object_get_size(o), ==, 3);
}

static gint64 event_time_us(JsonObject *ev)
{
    JsonObject *ts = json_object_get_object_member(ev, "timestamp");

    return json_object_get_int_member(ts, "seconds") * G_USEC_PER_SEC +
           json_object_get_int_member(ts, "microseconds");
}

static void qmp_ok(QmpClient *qmp, const char *command)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) ret = qmp_client_execute(qmp, command, NULL, &err);

    g_assert_no_error(err);
    g_assert_nonnull(ret);
}

static void wait_event(QmpClient *qmp, const char *name, JsonObject **out)
{
    g_autoptr(GError) err = NULL;
    JsonObject *ev = qmp_client_wait_event(qmp, name, TEST_VM_TIMEOUT_MS, &err);

    g_assert_no_error(err);
    test_vm_assert_event(ev, name);
    if (out) {
        *out = ev;
    } else {
        json_object_unref(ev);
    }
}

/* The serial log does not grow for @ms: the guest does not run. */
static void assert_serial_still(TestVm *vm, int ms)
{
    gsize before = test_vm_log_size(vm, TEST_VM_LOG_SERIAL);

    g_usleep(ms * 1000);
    g_assert_cmpuint(test_vm_log_size(vm, TEST_VM_LOG_SERIAL), ==, before);
}

/*
 * Every PROGRESS line of the whole log is healthy with steps strictly
 * increasing, READY follows the first line that completed a sweep, and nothing
 * complains. Returns the number of PROGRESS lines.
 */
static guint assert_log_healthy(TestVm *vm)
{
    g_autofree char *log = test_vm_log_read(vm, TEST_VM_LOG_SERIAL);
    g_auto(GStrv) lines = g_strsplit(log, "\n", -1);
    PayloadProgress prev = { 0 };
    bool ready = false;
    guint swept_before_ready = 0;
    guint n = 0;

    for (char **l = lines; *l; l++) {
        PayloadProgress p;
        g_autoptr(GError) err = NULL;

        if (!l[1]) {
            break;      /* what follows the last newline: empty or still being written */
        }
        g_assert_null(strstr(*l, "MISMATCH"));
        g_assert_null(strstr(*l, "FAIL"));
        g_assert_null(strstr(*l, "WARN"));
        g_assert_null(strstr(*l, "FAULT"));
        if (g_str_has_prefix(*l, "PAYLOAD READY")) {
            g_assert_cmpuint(n, >=, 1);
            g_assert_cmpuint(prev.sweep, >=, 1);
            ready = true;
        }
        if (!g_str_has_prefix(*l, "PROGRESS ")) {
            continue;
        }
        payload_parse_progress(*l, &p, &err);
        g_assert_no_error(err);
        g_assert_true(p.regs_ok);
        g_assert_cmpuint(p.errors, ==, 0);
        g_assert_cmpuint(p.steps, >, prev.steps);
        g_assert_cmpuint(p.sweep, >=, prev.sweep);
        /* READY follows the first line at which a sweep was complete. */
        if (!ready && p.sweep >= 1) {
            swept_before_ready++;
            g_assert_cmpuint(swept_before_ready, ==, 1);
        }
        prev = p;
        n++;
    }
    g_assert_true(ready);
    return n;
}

static void test_boot_progress(TestVmFixture *f, gconstpointer data)
{
    const GuestCase *gc = data;
    g_autoptr(GError) err = NULL;
    g_autofree char *start = NULL;
    g_autoptr(GHashTable) kv = NULL;
    TestVm *vm;

    if (guest_case_skip(gc)) {
        return;
    }
    vm = guest_start(f, gc, TEST_VM_DEFAULT);
    test_vm_wait_serial(vm, "PAYLOAD START", TEST_VM_TIMEOUT_MS, &start, &err);
    g_assert_no_error(err);
    g_assert_true(g_str_has_prefix(start, "PAYLOAD START version=1 "));
    kv = test_vm_parse_keyvals(start);
    g_assert_nonnull(g_hash_table_lookup(kv, "mem"));
    g_assert_cmpuint(g_ascii_strtoull(g_hash_table_lookup(kv, "mem"), NULL, 0), ==,
                     8 << 20);
    test_vm_wait_serial(vm, "PAYLOAD READY", TEST_VM_TIMEOUT_MS, NULL, &err);
    g_assert_no_error(err);
    assert_progress(vm, gc, 3, 0);
    query_status_is(test_vm_qmp(vm), "running", true);
    g_assert_cmpuint(assert_log_healthy(vm), >=, 4);
}

static void test_stop_cont(TestVmFixture *f, gconstpointer data)
{
    const GuestCase *gc = data;
    PayloadProgress before;
    JsonObject *stop_ev = NULL;
    JsonObject *resume_ev = NULL;
    QmpClient *qmp;
    TestVm *vm;
    gint64 t0;

    if (guest_case_skip(gc)) {
        return;
    }
    vm = guest_start(f, gc, TEST_VM_DEFAULT);
    qmp = test_vm_qmp(vm);
    before = assert_progress(vm, gc, 2, 0);

    t0 = g_get_monotonic_time();
    qmp_ok(qmp, "stop");
    /* Pausing is bounded: the vCPUs are kicked out of the guest, not waited for. */
    g_test_message("stop took %" G_GINT64_FORMAT " us", g_get_monotonic_time() - t0);
    g_assert_cmpint(g_get_monotonic_time() - t0, <, 2 * G_USEC_PER_SEC);
    /* The event comes before the reply, so it is already here. */
    g_assert_cmpuint(qmp_client_events(qmp)->len, >=, 1);
    wait_event(qmp, "STOP", &stop_ev);
    query_status_is(qmp, "paused", false);
    assert_serial_still(vm, 300);
    query_status_is(qmp, "paused", false);

    /* A second stop is accepted and emits nothing. */
    qmp_ok(qmp, "stop");
    qmp_ok(qmp, "query-status");
    g_assert_cmpuint(qmp_client_events(qmp)->len, ==, 0);

    test_vm_log_skip(vm, TEST_VM_LOG_SERIAL);
    qmp_ok(qmp, "cont");
    wait_event(qmp, "RESUME", &resume_ev);
    /* Timestamps tell the order and the pause (300 ms at least). */
    g_assert_cmpint(event_time_us(resume_ev) - event_time_us(stop_ev), >=, 300 * 1000);
    json_object_unref(stop_ev);
    json_object_unref(resume_ev);
    query_status_is(qmp, "running", true);
    assert_progress(vm, gc, 3, before.steps);

    /* And once more: pausing is repeatable. */
    qmp_ok(qmp, "stop");
    wait_event(qmp, "STOP", NULL);
    assert_serial_still(vm, 300);
    test_vm_log_skip(vm, TEST_VM_LOG_SERIAL);
    qmp_ok(qmp, "cont");
    wait_event(qmp, "RESUME", NULL);
    assert_progress(vm, gc, 2, before.steps);
}

static void test_prelaunch(TestVmFixture *f, gconstpointer data)
{
    const GuestCase *gc = data;
    QmpClient *qmp;
    TestVm *vm;
    g_autoptr(GError) err = NULL;

    if (guest_case_skip(gc)) {
        return;
    }
    f->vm = vm = test_vm_new(TEST_VM_DEFAULT);
    test_vm_add_guest(vm, gc->accel, gc->append);
    test_vm_add_args(vm, "-S", NULL);
    test_vm_launch_or_fail(vm);
    qmp = test_vm_qmp(vm);

    query_status_is(qmp, "prelaunch", false);
    g_usleep(300 * 1000);
    g_assert_cmpuint(test_vm_log_size(vm, TEST_VM_LOG_SERIAL), ==, 0);
    query_status_is(qmp, "prelaunch", false);
    g_assert_cmpuint(qmp_client_events(qmp)->len, ==, 0);

    qmp_ok(qmp, "cont");
    wait_event(qmp, "RESUME", NULL);
    query_status_is(qmp, "running", true);
    test_vm_wait_serial(vm, "PAYLOAD START", TEST_VM_TIMEOUT_MS, NULL, &err);
    g_assert_no_error(err);
    assert_progress(vm, gc, 2, 0);
}

/* quit: reply, SHUTDOWN host-qmp-quit, the connection closes, status 0, socket gone. */
static void test_quit(TestVmFixture *f, gconstpointer data)
{
    const GuestCase *gc = data;
    g_autoptr(GError) err = NULL;
    g_autofree char *sock = NULL;
    JsonObject *ev = NULL;
    JsonObject *d;
    QmpClient *qmp;
    TestVm *vm;
    int status = -1;

    if (guest_case_skip(gc)) {
        return;
    }
    vm = guest_start(f, gc, TEST_VM_DEFAULT);
    qmp = test_vm_qmp(vm);
    assert_progress(vm, gc, 1, 0);
    qmp_ok(qmp, "quit");
    wait_event(qmp, "SHUTDOWN", &ev);
    d = json_object_get_object_member(ev, "data");
    g_assert_nonnull(d);
    g_assert_false(json_object_get_boolean_member(d, "guest"));
    g_assert_cmpstr(json_object_get_string_member(d, "reason"), ==, "host-qmp-quit");
    json_object_unref(ev);
    qmp_client_wait_closed(qmp, TEST_VM_TIMEOUT_MS, &err);
    g_assert_no_error(err);
    test_vm_wait_exit(vm, TEST_VM_TIMEOUT_MS, &status, &err);
    g_assert_no_error(err);
    g_assert_cmpint(status, ==, 0);
    sock = test_vm_path(vm, "qmp.sock");
    g_assert_false(g_file_test(sock, G_FILE_TEST_EXISTS));
}

/* SIGTERM, SIGINT and SIGHUP shut down cleanly, as in QEMU: SHUTDOWN host-signal, status 0. */
static void test_signal(TestVmFixture *f, gconstpointer data)
{
    const GuestCase *gc = data;
    static const int signals[] = { SIGTERM, SIGINT, SIGHUP };

    if (guest_case_skip(gc)) {
        return;
    }
    for (guint i = 0; i < G_N_ELEMENTS(signals); i++) {
        g_autoptr(GError) err = NULL;
        JsonObject *ev = NULL;
        JsonObject *d;
        TestVm *vm;
        int status = -1;

        g_test_message("signal %d", signals[i]);
        g_clear_pointer(&f->vm, test_vm_free);
        vm = guest_start(f, gc, TEST_VM_DEFAULT);
        assert_progress(vm, gc, 1, 0);
        g_assert_cmpint(kill(test_vm_pid(vm), signals[i]), ==, 0);
        wait_event(test_vm_qmp(vm), "SHUTDOWN", &ev);
        d = json_object_get_object_member(ev, "data");
        g_assert_false(json_object_get_boolean_member(d, "guest"));
        g_assert_cmpstr(json_object_get_string_member(d, "reason"), ==, "host-signal");
        json_object_unref(ev);
        test_vm_wait_exit(vm, TEST_VM_TIMEOUT_MS, &status, &err);
        g_assert_no_error(err);
        g_assert_cmpint(status, ==, 0);
    }
}

/* quit before the guest ever ran (-S): the same clean exit. */
static void test_prelaunch_quit(TestVmFixture *f, gconstpointer data)
{
    const GuestCase *gc = data;
    g_autoptr(GError) err = NULL;
    TestVm *vm;
    int status = -1;

    if (guest_case_skip(gc)) {
        return;
    }
    f->vm = vm = test_vm_new(TEST_VM_DEFAULT);
    test_vm_add_guest(vm, gc->accel, gc->append);
    test_vm_add_args(vm, "-S", NULL);
    test_vm_launch_or_fail(vm);
    query_status_is(test_vm_qmp(vm), "prelaunch", false);
    qmp_ok(test_vm_qmp(vm), "quit");
    wait_event(test_vm_qmp(vm), "SHUTDOWN", NULL);
    test_vm_wait_exit(vm, TEST_VM_TIMEOUT_MS, &status, &err);
    g_assert_no_error(err);
    g_assert_cmpint(status, ==, 0);
    g_assert_cmpuint(test_vm_log_size(vm, TEST_VM_LOG_SERIAL), ==, 0);
}

/*
 * The isa-debug-exit path: sweeps=N makes the payload write 0x10 to port 0xf4,
 * and frostvm exits with (0x10 << 1) | 1 = 33, as QEMU does, after a SHUTDOWN
 * event that says the guest asked for it.
 */
static void test_debug_exit(TestVmFixture *f, gconstpointer data)
{
    const GuestCase *gc = data;
    g_autofree char *append = g_strdup_printf("%s sweeps=5", gc->append);
    g_autoptr(GError) err = NULL;
    g_autofree char *done = NULL;
    g_autoptr(GHashTable) kv = NULL;
    JsonObject *ev = NULL;
    JsonObject *d;
    TestVm *vm;
    int status = -1;

    if (guest_case_skip(gc)) {
        return;
    }
    f->vm = vm = test_vm_new(TEST_VM_DEFAULT);
    test_vm_add_guest(vm, gc->accel, append);
    test_vm_launch_or_fail(vm);
    wait_event(test_vm_qmp(vm), "SHUTDOWN", &ev);
    d = json_object_get_object_member(ev, "data");
    g_assert_true(json_object_get_boolean_member(d, "guest"));
    g_assert_cmpstr(json_object_get_string_member(d, "reason"), ==, "guest-shutdown");
    json_object_unref(ev);
    test_vm_wait_exit(vm, TEST_VM_TIMEOUT_MS, &status, &err);
    g_assert_no_error(err);
    g_assert_cmpint(status, ==, 33);
    test_vm_wait_serial(vm, "PAYLOAD DONE", 0, &done, &err);
    g_assert_no_error(err);
    kv = test_vm_parse_keyvals(done);
    g_assert_cmpstr(g_hash_table_lookup(kv, "sweeps"), ==, "5");
    g_assert_cmpstr(g_hash_table_lookup(kv, "steps"), ==, "10240");
    g_assert_cmpstr(g_hash_table_lookup(kv, "errors"), ==, "0");
    g_assert_cmpstr(g_hash_table_lookup(kv, "regs_failures"), ==, "0");
}

/* A bad payload argument ends the guest with 0x13: status 39. */
static void test_debug_exit_bad_args(TestVmFixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    TestVm *vm;
    int status = -1;

    if (test_vm_skip_without_kvm()) {
        return;
    }
    f->vm = vm = test_vm_new(TEST_VM_NO_QMP);
    /* 64 MiB of RAM cannot hold a 128 MiB range at 16 MiB. */
    test_vm_add_guest(vm, "kvm", "mem=128M");
    test_vm_launch_or_fail(vm);
    test_vm_wait_exit(vm, TEST_VM_TIMEOUT_MS, &status, &err);
    g_assert_no_error(err);
    g_assert_cmpint(status, ==, 39);
    test_vm_wait_serial(vm, "PAYLOAD ERROR", 0, NULL, &err);
    g_assert_no_error(err);
}

static const GuestCase kvm_seq = { "kvm", "mem=8M", { NULL } };
static const GuestCase kvm_random = { "kvm", "mem=8M order=random seed=7", { NULL } };
static const GuestCase kvm_smp2 = { "kvm", "mem=8M cpus=2", { "-smp", "2", NULL } };
/* The range above the PCI hole: RAM there is mapped and in the memory map. */
static const GuestCase kvm_high = { "kvm", "mem=8M base=0x100000000", { "-m", "4G", NULL } };
static const GuestCase test_seq = { "test", "mem=8M rate=50000", { NULL } };
static const GuestCase test_random = { "test", "mem=8M order=random rate=50000", { NULL } };
static const GuestCase test_smp2 = { "test", "mem=8M cpus=2 rate=50000", { "-smp", "2", NULL } };
static const GuestCase test_high = { "test", "mem=8M base=0x100000000 rate=50000",
                                     { "-m", "4G", NULL } };

static void add(const char *path, const GuestCase *gc,
                void (*fn)(TestVmFixture *, gconstpointer))
{
    g_test_add(path, TestVmFixture, gc, test_vm_fixture_setup, fn,
               test_vm_fixture_teardown);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    add("/machine/kvm/boot-progress/seq", &kvm_seq, test_boot_progress);
    add("/machine/kvm/boot-progress/random", &kvm_random, test_boot_progress);
    add("/machine/kvm/boot-progress/smp2", &kvm_smp2, test_boot_progress);
    add("/machine/kvm/boot-progress/above-4g", &kvm_high, test_boot_progress);
    add("/machine/test/boot-progress/seq", &test_seq, test_boot_progress);
    add("/machine/test/boot-progress/random", &test_random, test_boot_progress);
    add("/machine/test/boot-progress/smp2", &test_smp2, test_boot_progress);
    add("/machine/test/boot-progress/above-4g", &test_high, test_boot_progress);
    add("/machine/kvm/stop-cont", &kvm_seq, test_stop_cont);
    add("/machine/kvm/stop-cont-smp2", &kvm_smp2, test_stop_cont);
    add("/machine/test/stop-cont", &test_seq, test_stop_cont);
    add("/machine/test/stop-cont-smp2", &test_smp2, test_stop_cont);
    add("/machine/kvm/prelaunch-cont", &kvm_seq, test_prelaunch);
    add("/machine/test/prelaunch-cont", &test_seq, test_prelaunch);
    add("/machine/kvm/quit", &kvm_seq, test_quit);
    add("/machine/test/quit", &test_seq, test_quit);
    add("/machine/kvm/signals", &kvm_seq, test_signal);
    add("/machine/test/signals", &test_seq, test_signal);
    add("/machine/kvm/prelaunch-quit", &kvm_seq, test_prelaunch_quit);
    add("/machine/test/prelaunch-quit", &test_seq, test_prelaunch_quit);
    add("/machine/kvm/debug-exit/done", &kvm_seq, test_debug_exit);
    add("/machine/test/debug-exit/done", &test_seq, test_debug_exit);
    add("/machine/kvm/debug-exit/bad-args", NULL, test_debug_exit_bad_args);
    return g_test_run();
}
