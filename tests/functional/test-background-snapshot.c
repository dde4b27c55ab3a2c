/* SPDX-License-Identifier: GPL-2.0-or-later */
/* End-to-end background snapshots with the frostvm binary: a busy guest snapshotted to every sink, checked, restored; cancel, failing sinks, refusal, HMP. */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/magic.h>

#include <glib/gstdio.h>

#include "proc-threads.h"
#include "snapshot-e2e.h"
#include "vm-helper.h"

/* The payload's report interval (report_ms=) in every case. */
#define SNAP_REPORT_MS 50
/* A guest "stalls" when two of its page steps are further apart than this. */
#define SNAP_MAX_STALL_US (2 * G_USEC_PER_SEC)

typedef enum {
    SINK_FILE,           /* file:PATH */
    SINK_EXEC,           /* exec:cat > PATH */
    SINK_UNIX_READER,    /* unix:PATH, a socket this test accepts and copies to a file */
    SINK_UNIX_FROSTVM,   /* unix:PATH, a second frostvm with -incoming */
} SinkKind;

/* One guest and one sink; the same scenario runs for each. */
typedef struct {
    const char *accel;   /* "kvm" or "test" */
    const char *ram_mb;
    const char *smp;
    const char *append;  /* the payload's keys (the test accelerator reads the same) */
    SinkKind sink;
    const char *backend; /* guest RAM on this -object (id and size added); NULL: the default */
} SnapCase;

typedef struct {
    TestVm *src;
    TestVm *dst;
    char *mounted;       /* a tmpfs this test mounted, unmounted at teardown */
} SnapFixture;

static void snap_setup(SnapFixture *f, gconstpointer data)
{
    memset(f, 0, sizeof(*f));
}

static void snap_teardown(SnapFixture *f, gconstpointer data)
{
    if (f->mounted) {
        if (umount2(f->mounted, MNT_DETACH) < 0) {
            g_test_message("cannot unmount %s: %s", f->mounted, g_strerror(errno));
        }
        g_free(f->mounted);
    }
    g_clear_pointer(&f->dst, test_vm_free);
    g_clear_pointer(&f->src, test_vm_free);
}

static bool case_skip(const SnapCase *c)
{
    /* The source and the restored guest run side by side: RAM / 2 MiB pages each. */
    if (c->backend && strstr(c->backend, "hugetlb=on") &&
        test_vm_skip_without_huge_pages(g_ascii_strtoull(c->ram_mb, NULL, 10))) {
        return true;
    }
    return !strcmp(c->accel, "kvm") && test_vm_skip_without_kvm();
}

/* ---- the guest ---- */

static TestVm *guest_new(const SnapCase *c, bool kernel)
{
    TestVm *vm = test_vm_new(TEST_VM_DEFAULT);

    test_vm_add_args(vm, "-accel", c->accel, "-m", c->ram_mb, "-smp", c->smp, NULL);
    if (kernel && !strcmp(c->accel, "kvm")) {
        g_autofree char *payload = test_vm_payload_path();

        test_vm_add_args(vm, "-kernel", payload, NULL);
    }
    test_vm_add_args(vm, "-append", c->append, NULL);
    if (c->backend) {
        g_autofree char *object = g_strdup_printf("%s,id=ram0,size=%sM", c->backend, c->ram_mb);

        test_vm_add_args(vm, "-object", object, "-machine", "memory-backend=ram0", NULL);
    }
    return vm;
}

static void assert_healthy(TestVm *vm, const SnapCase *c, const PayloadProgress *p,
                           const char *line)
{
    bool csum_ok = payload_progress_csum_ok(p);

    if (!p->regs_ok || p->errors || !csum_ok) {
        g_autofree char *log = test_vm_log_read(vm, TEST_VM_LOG_SERIAL);
        g_error("unhealthy PROGRESS line (registers, errors or checksum): %s\nserial:\n%s",
                line ? line : "", log);
    }
}

/* The next PROGRESS line: the payload's registers agree with memory, no mismatch. */
static PayloadProgress progress(TestVm *vm, const SnapCase *c)
{
    g_autofree char *line = NULL;
    g_autoptr(GError) err = NULL;
    PayloadProgress p;

    test_vm_wait_serial(vm, "PROGRESS ", SNAP_TIMEOUT_MS, &line, &err);
    g_assert_no_error(err);
    g_assert_true(payload_parse_progress(line, &p, &err));
    assert_healthy(vm, c, &p, line);
    return p;
}

/* The last complete PROGRESS line written so far, and the highest rate seen. */
static PayloadProgress last_progress(TestVm *vm, uint64_t *max_rate)
{
    g_autofree char *log = test_vm_log_read(vm, TEST_VM_LOG_SERIAL);
    g_auto(GStrv) lines = g_strsplit(log, "\n", -1);
    PayloadProgress last = { 0 };
    bool found = false;

    for (char **l = lines; *l && l[1]; l++) {     /* the last piece is not complete */
        PayloadProgress p;

        if (strstr(*l, "PROGRESS ") && payload_parse_progress(*l, &p, NULL)) {
            last = p;
            found = true;
            if (max_rate) {
                *max_rate = MAX(*max_rate, p.rate);
            }
        }
    }
    g_assert_true(found);
    return last;
}

/* Nothing on the serial log says something went wrong. */
static void assert_serial_clean(TestVm *vm)
{
    g_autofree char *log = test_vm_log_read(vm, TEST_VM_LOG_SERIAL);

    for (const char *const *w = (const char *const[]) { "MISMATCH", "FAIL", "FAULT",
                                                        "PAYLOAD ERROR", NULL }; *w; w++) {
        if (strstr(log, *w)) {
            g_error("the guest printed %s:\n%s", *w, log);
        }
    }
}

/* Launch f->src and wait until the guest has written every page of its range. */
static TestVm *source_launch(SnapFixture *f, const SnapCase *c)
{
    g_autoptr(GError) err = NULL;

    test_vm_launch_or_fail(f->src);
    test_vm_wait_serial(f->src, "PAYLOAD READY", SNAP_TIMEOUT_MS, NULL, &err);
    g_assert_no_error(err);
    (void)progress(f->src, c);
    snap_enable(test_vm_qmp(f->src));
    return f->src;
}

static TestVm *source_start(SnapFixture *f, const SnapCase *c)
{
    f->src = guest_new(c, true);
    return source_launch(f, c);
}

/*
 * The guest keeps going: steps grow, no step waits long, and it completes a
 * whole sweep, so every page took a write (a page left protected would hang
 * its vCPU). Returns the last line.
 */
static PayloadProgress assert_keeps_running(TestVm *vm, const SnapCase *c)
{
    g_autofree char *status = snap_query_status(test_vm_qmp(vm));
    PayloadProgress first, p;
    gint64 deadline = g_get_monotonic_time() + SNAP_TIMEOUT_MS * (gint64)1000;

    g_assert_cmpstr(status, ==, "running");
    test_vm_log_skip(vm, TEST_VM_LOG_SERIAL);
    first = progress(vm, c);
    p = first;
    do {
        PayloadProgress next = progress(vm, c);

        g_assert_cmpuint(next.steps, >, p.steps);
        g_assert_cmpuint(next.maxstall_us, <, SNAP_MAX_STALL_US);
        p = next;
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
    } while (p.sweep < first.sweep + 2);
    assert_serial_clean(vm);
    return p;
}

/* The offline checks of snap_image_check() for this case's machine. */
static SnapImage check_image(TestVm *vm, const SnapCase *c, const char *path)
{
    g_autofree char *raw = test_vm_path(vm, "ram.raw");

    return snap_image_check(path, raw, g_ascii_strtoull(c->ram_mb, NULL, 10) << 20,
                            (unsigned)g_ascii_strtoull(c->smp, NULL, 10));
}

/*
 * A new frostvm loads @uri (launched before the source migrates, for a
 * socket). check_restored(): the guest continues from the snapshot instant,
 * its first PROGRESS line counts on from the image's steps, a little above
 * them, with the registers (r14 count, r15 checksum chain) intact.
 */
static TestVm *restore_start(SnapFixture *f, const SnapCase *c, const char *uri)
{
    f->dst = guest_new(c, false);
    test_vm_add_args(f->dst, "-incoming", uri, NULL);
    test_vm_launch_or_fail(f->dst);
    return f->dst;
}

static void check_restored(TestVm *dst, const SnapCase *c, uint64_t steps_lo,
                           uint64_t steps_hi, uint64_t rate)
{
    g_autofree char *log = NULL;
    g_autofree char *status = NULL;
    PayloadProgress p1, p2;
    /* The first report comes within a report interval after the resume. */
    uint64_t near = rate * (2 * SNAP_REPORT_MS + 100) / 1000 + 1000;

    p1 = progress(dst, c);
    p2 = progress(dst, c);
    g_test_message("restored: first steps %" G_GUINT64_FORMAT ", then %" G_GUINT64_FORMAT
                   ", image steps %" G_GUINT64_FORMAT "..%" G_GUINT64_FORMAT, p1.steps,
                   p2.steps, steps_lo, steps_hi);
    /*
     * With one vCPU the first report counts from the image on. With more,
     * the instant may fall while the boot CPU sends a report it summed just
     * before, while the others stepped on: only the next one is all after.
     */
    g_assert_cmpuint(strcmp(c->smp, "1") ? p2.steps : p1.steps, >=, steps_lo);
    g_assert_cmpuint(p1.steps, <=, steps_hi + near);
    g_assert_cmpuint(p2.steps, >, p1.steps);
    status = snap_query_status(test_vm_qmp(dst));
    g_assert_cmpstr(status, ==, "running");
    log = test_vm_log_read(dst, TEST_VM_LOG_SERIAL);
    /* It resumed: the payload did not start over. */
    g_assert_null(strstr(log, "PAYLOAD START"));
    assert_serial_clean(dst);
}

/* ---- the scenarios ---- */

/*
 * Snapshot a busy guest to the case's sink, check the image offline at its
 * instant, restore it in a new frostvm and watch the guest continue.
 */
static void test_snapshot_restore(SnapFixture *f, gconstpointer data)
{
    const SnapCase *c = data;
    g_autofree char *img_path = NULL;
    g_autofree char *sock = NULL;
    g_autofree char *uri = NULL;
    g_autofree char *load_uri = NULL;
    SnapReader *reader = NULL;
    uint64_t reader_bytes = 0;
    PayloadProgress before, after;
    uint64_t rate = 0, transferred;
    QmpClient *qmp;
    SnapImage img;

    if (case_skip(c)) {
        return;
    }
    source_start(f, c);
    qmp = test_vm_qmp(f->src);
    img_path = test_vm_path(f->src, "vm_state");
    sock = test_vm_path(f->src, "snap.sock");
    switch (c->sink) {
    case SINK_FILE:
        uri = g_strdup_printf("file:%s", img_path);
        break;
    case SINK_EXEC:
        uri = g_strdup_printf("exec:cat > %s", img_path);
        break;
    case SINK_UNIX_READER:
        uri = g_strdup_printf("unix:%s", sock);
        reader = snap_reader_start(sock, img_path);
        break;
    case SINK_UNIX_FROSTVM:
        uri = g_strdup_printf("unix:%s", sock);
        restore_start(f, c, uri);
        g_assert_true(g_file_test(sock, G_FILE_TEST_EXISTS));
        break;
    }

    before = last_progress(f->src, &rate);
    snap_migrate(qmp, uri);
    snap_wait_completed(qmp);
    test_vm_log_skip(f->src, TEST_VM_LOG_SERIAL);
    after = progress(f->src, c);
    /* The source runs on, not paused by the snapshot. */
    {
        g_autofree char *status = snap_query_status(qmp);
        g_assert_cmpstr(status, ==, "running");
    }
    if (reader) {
        reader_bytes = snap_reader_finish(reader);
    }

    if (c->sink == SINK_UNIX_FROSTVM) {
        (void)snap_check_figures(qmp, NULL);
        check_restored(f->dst, c, before.steps, after.steps, rate);
        return;
    }
    img = check_image(f->src, c, img_path);
    transferred = snap_check_figures(qmp, &img.info);
    g_assert_cmpuint(transferred, ==, img.info.file_size);
    if (c->sink == SINK_UNIX_READER) {
        g_assert_cmpuint(reader_bytes, ==, img.info.file_size);
    }
    /* The image is the guest between the command and the end of the snapshot. */
    g_assert_cmpuint(img.res.steps, >=, before.steps);
    g_assert_cmpuint(img.res.steps, <=, after.steps);

    if (c->backend) {
        /* Shared memory and hugetlbfs: the pages never written were known, not read. */
        g_autoptr(JsonObject) info = snap_query_migrate(qmp);
        JsonObject *bs = json_object_get_object_member(info, "background-snapshot");

        g_assert_cmpint(json_object_get_int_member(bs, "pages-unpopulated"), >, 0);
    }

    load_uri = g_strdup_printf("file:%s", img_path);
    restore_start(f, c, load_uri);
    check_restored(f->dst, c, img.res.steps, img.res.steps, rate);
}

/* A second snapshot after a cancelled or failed one: nothing was left behind. */
static void snapshot_again(TestVm *vm, const SnapCase *c)
{
    QmpClient *qmp = test_vm_qmp(vm);
    g_autofree char *path = test_vm_path(vm, "vm_state2");
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    SnapImage img;

    snap_migrate(qmp, uri);
    snap_wait_completed(qmp);
    img = check_image(vm, c, path);
    (void)snap_check_figures(qmp, &img.info);
}

/* No file in @dir starts with @name: a file: sink left nothing, not even its temporary. */
static void assert_no_file_like(const char *dir, const char *name)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *entry;

    g_assert_nonnull(d);
    while ((entry = g_dir_read_name(d))) {
        if (g_str_has_prefix(entry, name)) {
            g_error("%s/%s was left behind", dir, entry);
        }
    }
}

static int64_t max_bandwidth(QmpClient *qmp)
{
    g_autoptr(JsonNode) r = snap_qmp_ok(qmp, "query-migrate-parameters", NULL);

    return json_object_get_int_member(json_node_get_object(r), "max-bandwidth");
}

static void set_max_bandwidth(QmpClient *qmp, int64_t bytes_per_s)
{
    g_autofree char *args = g_strdup_printf("{\"max-bandwidth\": %" G_GINT64_FORMAT "}",
                                            bytes_per_s);

    snap_qmp_do(qmp, "migrate-set-parameters", args);
}

/*
 * migrate_cancel while the sink is slow (file: throttled by max-bandwidth, or
 * exec: through pv): cancelled, the guest runs on, nothing claims to be an
 * image, and the next snapshot works.
 */
static void test_cancel(SnapFixture *f, gconstpointer data)
{
    const SnapCase *c = data;
    g_autofree char *img_path = NULL;
    g_autofree char *uri = NULL;
    g_autofree char *pv = g_find_program_in_path("pv");
    g_autofree char *status = NULL;
    g_autoptr(JsonObject) info = NULL;
    int64_t bandwidth = 0;
    QmpClient *qmp;

    if (case_skip(c)) {
        return;
    }
    source_start(f, c);
    qmp = test_vm_qmp(f->src);
    img_path = test_vm_path(f->src, "vm_state");
    if (c->sink == SINK_FILE) {
        bandwidth = max_bandwidth(qmp);
        set_max_bandwidth(qmp, 4 << 20);
        uri = g_strdup_printf("file:%s", img_path);
    } else if (pv) {
        uri = g_strdup_printf("exec:pv -q -L 4m > %s", img_path);
    } else {
        /* Without pv, a sink that reads nothing for a while. */
        uri = g_strdup_printf("exec:sleep 3; cat > %s", img_path);
    }
    snap_migrate(qmp, uri);
    g_usleep(500 * 1000);
    info = snap_query_migrate(qmp);
    {
        const char *mid = json_object_get_string_member(info, "status");

        if (strcmp(mid, "setup") && strcmp(mid, "active")) {
            g_error("the snapshot was not in progress after 0.5 s at a slow sink: %s", mid);
        }
    }
    snap_qmp_do(qmp, "migrate_cancel", NULL);
    status = snap_wait_migration_end(qmp);
    g_assert_cmpstr(status, ==, "cancelled");
    g_clear_pointer(&info, json_object_unref);
    info = snap_query_migrate(qmp);
    g_assert_cmpstr(json_object_get_string_member(info, "status"), ==, "cancelled");

    (void)assert_keeps_running(f->src, c);

    if (c->sink == SINK_FILE) {
        /* file: renames its temporary only on success. */
        assert_no_file_like(test_vm_dir(f->src), "vm_state");
        set_max_bandwidth(qmp, bandwidth);
    } else {
        /* Whatever reached the pipe is a truncated stream and says so. */
        g_autofree char *out = NULL;

        if (g_file_test(img_path, G_FILE_TEST_EXISTS)) {
            g_assert_cmpint(snap_img_tool(&out, "check", img_path, NULL), !=, 0);
        }
    }
    snapshot_again(f->src, c);
}

static int64_t ram_transferred(JsonObject *info)
{
    return json_object_get_int_member(json_object_get_object_member(info, "ram"),
                                      "transferred");
}

/*
 * While a snapshot runs at 4 MiB/s: the status is "active", as QEMU reports
 * it, and the figures follow the sink (ram.transferred grows).
 */
static void test_mid_snapshot(SnapFixture *f, gconstpointer data)
{
    const SnapCase *c = data;
    g_autofree char *img_path = NULL;
    g_autofree char *uri = NULL;
    g_autofree char *out = NULL;
    g_autofree char *status = NULL;
    g_autoptr(JsonObject) first = NULL;
    g_autoptr(JsonObject) second = NULL;
    int64_t t1, t2, sent1, sent2;
    QmpClient *qmp;

    if (case_skip(c)) {
        return;
    }
    source_start(f, c);
    qmp = test_vm_qmp(f->src);
    img_path = test_vm_path(f->src, "vm_state");
    uri = g_strdup_printf("file:%s", img_path);
    set_max_bandwidth(qmp, 4 << 20);
    snap_migrate(qmp, uri);
    g_usleep(500 * 1000);
    first = snap_query_migrate(qmp);
    out = snap_hmp(qmp, "info migrate");
    g_usleep(1000 * 1000);
    second = snap_query_migrate(qmp);
    snap_qmp_do(qmp, "migrate_cancel", NULL);
    status = snap_wait_migration_end(qmp);
    g_assert_cmpstr(status, ==, "cancelled");

    g_assert_cmpstr(json_object_get_string_member(first, "status"), ==, "active");
    g_assert_cmpstr(json_object_get_string_member(second, "status"), ==, "active");
    g_assert_nonnull(strstr(out, "Migration status: active"));
    t1 = json_object_get_int_member(first, "total-time");
    t2 = json_object_get_int_member(second, "total-time");
    g_assert_cmpint(t2, >=, t1 + 900);
    sent1 = ram_transferred(first);
    sent2 = ram_transferred(second);
    g_test_message("ram.transferred %" G_GINT64_FORMAT " at %" G_GINT64_FORMAT " ms, %"
                   G_GINT64_FORMAT " at %" G_GINT64_FORMAT " ms", sent1, t1, sent2, t2);
    /* A second at 4 MiB/s: at least 2 MiB more, whatever the pool holds. */
    g_assert_cmpint(sent2, >=, sent1 + (2 << 20));
}

/* ---- where the snapshot's threads run ---- */

/*
 * With CPUs to spare, the snapshot's threads and its exec: command run off
 * the CPUs the vCPUs are on (snapshot-placement.c); the vCPUs' own CPUs are
 * left alone. Where the vCPUs fill the CPUs nothing is narrowed: the
 * snapshot's threads and the command run at nice 10 instead.
 */
static void test_placement(SnapFixture *f, gconstpointer data)
{
    const SnapCase *c = data;
    g_autofree char *img_path = NULL;
    g_autofree char *uri = NULL;
    g_autofree char *writer = NULL;
    g_autofree char *vcpu = NULL;
    guint64 all, vcpu_before, writer_cpus = 0, sink_cpus = 0;
    int writer_nice = 100, sink_nice = 100;
    gint64 deadline;
    pid_t pid, sink;
    QmpClient *qmp;

    if (case_skip(c)) {
        return;
    }
    source_start(f, c);
    qmp = test_vm_qmp(f->src);
    pid = test_vm_pid(f->src);
    all = proc_allowed_cpus(pid, NULL);
    if (__builtin_popcountll(all) < 2) {
        g_test_skip("one CPU: there is no CPU to keep the snapshot on");
        return;
    }
    vcpu = proc_thread_named(pid, !strcmp(c->accel, "kvm") ? "vcpu0" : "test-vcpu0");
    g_assert_nonnull(vcpu);
    vcpu_before = proc_allowed_cpus(pid, vcpu);
    img_path = test_vm_path(f->src, "vm_state");
    /*
     * The command reads nothing for a while: the writer is there to look at,
     * and with the smallest pool the guest's data does not fit, so RAM stays
     * protected and the fault thread runs until the command reads.
     */
    snap_qmp_do(qmp, "migrate-set-parameters",
                "{\"background-snapshot-buffer-size\": 16777216}");
    uri = g_strdup_printf("exec:sleep 2; cat > %s", img_path);
    snap_migrate(qmp, uri);
    deadline = g_get_monotonic_time() + G_USEC_PER_SEC;
    while ((!writer_cpus || !sink_cpus) && g_get_monotonic_time() < deadline) {
        g_clear_pointer(&writer, g_free);
        writer = proc_thread_named(pid, "snapshot-writer");
        writer_cpus = writer ? proc_allowed_cpus(pid, writer) : 0;
        writer_nice = writer ? proc_nice(pid, writer) : 100;
        sink = proc_child_of(pid);
        sink_cpus = sink ? proc_allowed_cpus(sink, NULL) : 0;
        sink_nice = sink ? proc_nice(sink, NULL) : 100;
        g_usleep(10 * 1000);
    }
    g_test_message("CPUs: process %#" G_GINT64_MODIFIER "x, writer %#" G_GINT64_MODIFIER
                   "x, exec: command %#" G_GINT64_MODIFIER "x, vCPU %#" G_GINT64_MODIFIER
                   "x; nice: writer %d, exec: command %d", all, writer_cpus, sink_cpus,
                   vcpu_before, writer_nice, sink_nice);
    g_assert_cmphex(writer_cpus, !=, 0);
    /*
     * Every snapshot thread has its own name (Linux keeps 15 characters, and
     * GLib sets none for a longer one: the thread kept "migration"). A thread
     * just made is still "migration" until it names itself: look again.
     */
    deadline = g_get_monotonic_time() + G_USEC_PER_SEC;
    while (proc_threads_named(pid, "migration") != 1 && g_get_monotonic_time() < deadline) {
        g_usleep(10 * 1000);
    }
    g_assert_cmpuint(proc_threads_named(pid, "migration"), ==, 1);
    if ((unsigned)__builtin_popcountll(all) <= g_ascii_strtoull(c->smp, NULL, 10)) {
        g_assert_cmphex(writer_cpus, ==, all);
        g_assert_cmphex(sink_cpus, ==, all);
        /* Only where frostvm may come back from it for the pause (CAP_SYS_NICE). */
        int expect = proc_may_lower_nice() ? 10 : proc_nice(pid, NULL);

        g_assert_cmpint(writer_nice, ==, expect);
        g_assert_cmpint(sink_nice, ==, expect);
    } else {
        g_assert_cmphex(writer_cpus & ~all, ==, 0);
        g_assert_cmphex(writer_cpus, !=, all);
        g_assert_cmphex(sink_cpus, ==, writer_cpus);
        g_assert_cmpint(writer_nice, ==, proc_nice(pid, NULL));
        /* One vCPU: its faults are served on its CPU; with more, beside the others. */
        guint64 want = !strcmp(c->smp, "1") ? all & ~writer_cpus : writer_cpus;
        guint64 fault_cpus = 0;

        deadline = g_get_monotonic_time() + G_USEC_PER_SEC;
        for (;;) {
            g_autofree char *faults = proc_thread_named(pid, "snapshot-faults");

            fault_cpus = faults ? proc_allowed_cpus(pid, faults) : 0;
            if (fault_cpus == want || g_get_monotonic_time() > deadline) {
                break;
            }
            g_usleep(10 * 1000);
        }
        g_test_message("CPUs: fault thread %#" G_GINT64_MODIFIER "x", fault_cpus);
        g_assert_cmphex(fault_cpus, ==, want);
    }
    snap_wait_completed(qmp);
    g_assert_cmphex(proc_allowed_cpus(pid, vcpu), ==, vcpu_before);
    g_assert_cmpint(proc_nice(pid, vcpu), ==, proc_nice(pid, NULL));
    (void)assert_keeps_running(f->src, c);
}

/* The sink fails mid-way: failed with the reason, the guest runs on, no image. */
static void expect_sink_failure(TestVm *vm, const SnapCase *c, const char *uri,
                                const char *why)
{
    QmpClient *qmp = test_vm_qmp(vm);
    g_autofree char *status = NULL;
    g_autoptr(JsonObject) info = NULL;
    const char *desc;

    snap_migrate(qmp, uri);
    status = snap_wait_migration_end(qmp);
    info = snap_query_migrate(qmp);
    desc = json_object_get_string_member_with_default(info, "error-desc", "");
    g_test_message("%s: %s: %s", uri, status, desc);
    g_assert_cmpstr(status, ==, "failed");
    g_assert_cmpstr(json_object_get_string_member(info, "status"), ==, "failed");
    if (!strstr(desc, why)) {
        g_error("error-desc '%s' does not say '%s'", desc, why);
    }
    (void)assert_keeps_running(vm, c);
}

/* exec: whose command stops reading after 1 MB. */
static void test_exec_exits_early(SnapFixture *f, gconstpointer data)
{
    const SnapCase *c = data;
    g_autofree char *img_path = NULL;
    g_autofree char *uri = NULL;
    g_autofree char *out = NULL;

    if (case_skip(c)) {
        return;
    }
    source_start(f, c);
    img_path = test_vm_path(f->src, "vm_state");
    uri = g_strdup_printf("exec:head -c 1000000 > %s", img_path);
    expect_sink_failure(f->src, c, uri, "exited early");
    g_assert_cmpint(snap_img_tool(&out, "check", img_path, NULL), !=, 0);
    snapshot_again(f->src, c);
}

/*
 * Mount a small tmpfs at @dir. In a private mount namespace when possible, so
 * that the mount cannot outlive this program even if it aborts.
 */
static bool mount_small_tmpfs(SnapFixture *f, const char *dir, char **why)
{
    if (geteuid() != 0) {
        *why = g_strdup("mounting a small tmpfs needs root");
        return false;
    }
    /* Fails in a process with threads sharing its fs state; the mount is then global. */
    if (unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        g_test_message("mount namespace not private: %s", g_strerror(errno));
    }
    if (g_mkdir(dir, 0755) < 0 || mount("tmpfs", dir, "tmpfs", 0, "size=16m") < 0) {
        *why = g_strdup_printf("cannot mount a 16 MiB tmpfs on %s: %s", dir, g_strerror(errno));
        return false;
    }
    f->mounted = g_strdup(dir);
    return true;
}

/* file: on a 16 MiB tmpfs: the disk fills up half-way through 32 MiB of data. */
static void test_file_disk_full(SnapFixture *f, gconstpointer data)
{
    const SnapCase *c = data;
    g_autofree char *small = NULL;
    g_autofree char *uri = NULL;
    g_autofree char *why = NULL;

    if (case_skip(c)) {
        return;
    }
    /* Before the launch: the VM must see the mount, also in a private namespace. */
    f->src = guest_new(c, true);
    small = test_vm_path(f->src, "small");
    if (!mount_small_tmpfs(f, small, &why)) {
        g_test_skip(why);
        return;
    }
    source_launch(f, c);
    uri = g_strdup_printf("file:%s/vm_state", small);
    expect_sink_failure(f->src, c, uri, "No space left on device");
    assert_no_file_like(small, "vm_state");
    snapshot_again(f->src, c);
}

/*
 * RAM in a file on a disk file system cannot be write-protected: setting the
 * capability is refused at once, naming the block and its backend.
 */
static void test_refuse_file_backed_ram(SnapFixture *f, gconstpointer data)
{
    const SnapCase *c = data;
    g_autofree char *mem_dir = NULL;
    g_autofree char *object = NULL;
    g_autofree char *out = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) caps = NULL;
    struct statfs sfs;
    QmpClient *qmp;
    const char *desc;

    f->src = test_vm_new(TEST_VM_DEFAULT);
    mem_dir = test_vm_path(f->src, "mem");
    g_assert_cmpint(g_mkdir(mem_dir, 0755), ==, 0);
    g_assert_cmpint(statfs(mem_dir, &sfs), ==, 0);
    if (sfs.f_type == TMPFS_MAGIC || sfs.f_type == HUGETLBFS_MAGIC) {
        g_test_skip("the temporary directory is on tmpfs or hugetlbfs, which support "
                    "write-protect: no disk file system to refuse");
        return;
    }
    object = g_strdup_printf("memory-backend-file,id=m,size=%sM,mem-path=%s", c->ram_mb,
                             mem_dir);
    test_vm_add_args(f->src, "-accel", test_vm_any_accel(), "-m", c->ram_mb,
                     "-object", object, "-machine", "memory-backend=m", NULL);
    if (!strcmp(test_vm_any_accel(), "kvm")) {
        g_autofree char *payload = test_vm_payload_path();

        test_vm_add_args(f->src, "-kernel", payload, NULL);
    }
    test_vm_add_args(f->src, "-append", c->append, NULL);
    test_vm_launch_or_fail(f->src);
    qmp = test_vm_qmp(f->src);

    g_assert_null(qmp_client_execute_json(qmp, "migrate-set-capabilities",
        "{\"capabilities\": [{\"capability\": \"background-snapshot\", \"state\": true}]}",
        &err));
    g_assert_nonnull(err);
    desc = err->message;
    g_test_message("refused: %s", desc);
    g_assert_cmpstr(qmp_client_last_error_class(qmp), ==, "GenericError");
    if (!(strstr(desc, "RAM block 'pc.ram'") || strstr(desc, "RAM block 'm'")) ||
        !strstr(desc, "memory-backend-file") || !strstr(desc, mem_dir) ||
        !strstr(desc, "write-protect")) {
        g_error("the refusal does not name the block, its backend and path: %s", desc);
    }
    /* HMP says the same, and the capability stays off. */
    out = snap_hmp(qmp, "migrate_set_capability background-snapshot on");
    g_assert_true(g_str_has_prefix(out, "Error: "));
    g_assert_nonnull(strstr(out, desc));
    caps = snap_qmp_ok(qmp, "query-migrate-capabilities", NULL);
    for (guint i = 0; i < json_array_get_length(json_node_get_array(caps)); i++) {
        JsonObject *cap = json_array_get_object_element(json_node_get_array(caps), i);

        if (!strcmp(json_object_get_string_member(cap, "capability"), "background-snapshot")) {
            g_assert_false(json_object_get_boolean_member(cap, "state"));
        }
    }
    {
        g_autofree char *status = snap_query_status(qmp);
        g_assert_cmpstr(status, ==, "running");
    }
}

/* ---- HMP: the lines a user types ---- */

static void write_all(int fd, const char *text)
{
    size_t len = strlen(text);

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

/* Read the HMP socket up to the next prompt; returns what came before it. */
static char *hmp_socket_reply(int fd)
{
    g_autoptr(GString) acc = g_string_new(NULL);
    gint64 deadline = g_get_monotonic_time() + SNAP_TIMEOUT_MS * (gint64)1000;

    while (!g_str_has_suffix(acc->str, "(frostvm) ")) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        char buf[4096];
        ssize_t n;
        int left = (int)((deadline - g_get_monotonic_time()) / 1000);

        if (left <= 0) {
            g_error("HMP socket: no prompt after '%s'", acc->str);
        }
        if (poll(&pfd, 1, left) <= 0) {
            continue;
        }
        n = read(fd, buf, sizeof(buf));
        g_assert_cmpint(n, >, 0);
        g_string_append_len(acc, buf, n);
    }
    g_string_truncate(acc, acc->len - strlen("(frostvm) "));
    return g_string_free(g_steal_pointer(&acc), FALSE);
}

/* Send one line, return its output (the echo, if any, removed). */
static char *hmp_socket_line(int fd, const char *line)
{
    g_autofree char *with_nl = g_strconcat(line, "\n", NULL);
    g_autofree char *reply = NULL;
    const char *out;

    write_all(fd, with_nl);
    reply = hmp_socket_reply(fd);
    out = reply;
    if (g_str_has_prefix(out, line)) {
        out += strlen(line);
        while (*out == '\r' || *out == '\n') {
            out++;
        }
    }
    return g_strdup(out);
}

static void assert_info_migrate_completed(const char *out)
{
    static const char *const lines[] = {
        "Migration status: completed", "transferred ram: ", "write faults: ",
        "pages saved out of order: ", "pages saved ahead of faults: ",
        "pages saved in the pause: ",
        "fault service (us): p50 ", "buffer pool: ", "pages unpopulated: ",
        "snapshot downtime: ", "write-protect setup: ",
    };

    for (guint i = 0; i < G_N_ELEMENTS(lines); i++) {
        if (!strstr(out, lines[i])) {
            g_error("info migrate lacks '%s':\n%s", lines[i], out);
        }
    }
}

/*
 * The documented lines, typed on -monitor unix: and then sent through QMP's
 * human-monitor-command; the image lands in the VM's working directory.
 */
static void test_hmp_lines(SnapFixture *f, gconstpointer data)
{
    const SnapCase *c = data;
    static const char *const set_cap = "migrate_set_capability background-snapshot on";
    static const char *const migrate = "migrate exec:'cat > ./vm_state'";
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    g_autofree char *sock = NULL;
    g_autofree char *img_path = NULL;
    g_autofree char *out = NULL;
    g_autoptr(GError) err = NULL;
    QmpClient *qmp;
    int fd;

    if (case_skip(c)) {
        return;
    }
    f->src = guest_new(c, true);
    test_vm_add_args(f->src, "-monitor", "unix:hmp.sock,server=on,wait=off", NULL);
    test_vm_launch_or_fail(f->src);
    qmp = test_vm_qmp(f->src);
    test_vm_wait_serial(f->src, "PAYLOAD READY", SNAP_TIMEOUT_MS, NULL, &err);
    g_assert_no_error(err);
    sock = test_vm_path(f->src, "hmp.sock");
    img_path = test_vm_path(f->src, "vm_state");

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_strlcpy(addr.sun_path, sock, sizeof(addr.sun_path));
    g_assert_cmpint(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), ==, 0);
    g_free(hmp_socket_reply(fd));          /* the banner */
    out = hmp_socket_line(fd, set_cap);
    g_assert_cmpstr(out, ==, "");
    g_clear_pointer(&out, g_free);
    out = hmp_socket_line(fd, "info migrate_capabilities");
    g_assert_nonnull(strstr(out, "background-snapshot: on"));
    g_clear_pointer(&out, g_free);
    out = hmp_socket_line(fd, migrate);
    g_assert_cmpstr(out, ==, "");
    snap_wait_completed(qmp);
    g_clear_pointer(&out, g_free);
    out = hmp_socket_line(fd, "info migrate");
    assert_info_migrate_completed(out);
    close(fd);
    (void)check_image(f->src, c, img_path);
    (void)snap_check_figures(qmp, NULL);

    /* Again through QMP, the way virsh qemu-monitor-command --hmp sends them. */
    g_assert_cmpint(g_unlink(img_path), ==, 0);
    g_clear_pointer(&out, g_free);
    out = snap_hmp(qmp, set_cap);
    g_assert_cmpstr(out, ==, "");
    g_clear_pointer(&out, g_free);
    out = snap_hmp(qmp, migrate);
    g_assert_cmpstr(out, ==, "");
    snap_wait_completed(qmp);
    g_clear_pointer(&out, g_free);
    out = snap_hmp(qmp, "info migrate");
    assert_info_migrate_completed(out);
    (void)check_image(f->src, c, img_path);
    (void)assert_keeps_running(f->src, c);
}

/* ---- the table ---- */

#define KVM_RANDOM "mem=32M order=random report_ms=" G_STRINGIFY(SNAP_REPORT_MS)
#define KVM_SEQ "mem=64M order=seq report_ms=" G_STRINGIFY(SNAP_REPORT_MS)
#define KVM_SMP2 KVM_RANDOM " cpus=2"

static const SnapCase kvm_random_file = { "kvm", "256", "1", KVM_RANDOM, SINK_FILE };
static const SnapCase kvm_seq_exec = { "kvm", "512", "1", KVM_SEQ, SINK_EXEC };
static const SnapCase kvm_random_unix = { "kvm", "256", "1", KVM_RANDOM, SINK_UNIX_READER };
static const SnapCase kvm_unix_frostvm = { "kvm", "256", "1", KVM_RANDOM, SINK_UNIX_FROSTVM };
static const SnapCase kvm_smp2_file = { "kvm", "256", "2", KVM_SMP2, SINK_FILE };
static const SnapCase kvm_smp2_exec = { "kvm", "256", "2", KVM_SMP2, SINK_EXEC };

static const SnapCase test_random_file = { "test", "256", "1", KVM_RANDOM, SINK_FILE };
static const SnapCase test_seq_exec = { "test", "256", "1", KVM_SEQ, SINK_EXEC };
static const SnapCase test_random_unix = { "test", "256", "1", KVM_RANDOM, SINK_UNIX_READER };
static const SnapCase test_unix_frostvm = { "test", "256", "1", KVM_RANDOM, SINK_UNIX_FROSTVM };
static const SnapCase test_smp2_file = { "test", "256", "2", KVM_RANDOM, SINK_FILE };
static const SnapCase test_smp2_exec = { "test", "256", "2", KVM_RANDOM, SINK_EXEC };
static const SnapCase test_memfd_file = { "test", "256", "1", KVM_RANDOM, SINK_FILE,
                                          "memory-backend-memfd" };
static const SnapCase test_memfd_seq_exec = { "test", "256", "1", KVM_SEQ, SINK_EXEC,
                                              "memory-backend-memfd" };
static const SnapCase test_shared_ram_file = { "test", "256", "1", KVM_RANDOM, SINK_FILE,
                                               "memory-backend-ram,share=on" };
static const SnapCase test_hugetlb_file = { "test", "64", "1", KVM_RANDOM, SINK_FILE,
                                            "memory-backend-memfd,hugetlb=on" };

static void add(const char *path, const SnapCase *c,
                void (*fn)(SnapFixture *, gconstpointer))
{
    g_autofree char *full = g_strconcat("/background-snapshot/", path, NULL);

    g_test_add(full, SnapFixture, c, snap_setup, fn, snap_teardown);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    signal(SIGPIPE, SIG_IGN);

    add("kvm/random/file/restore", &kvm_random_file, test_snapshot_restore);
    add("kvm/seq/exec/restore", &kvm_seq_exec, test_snapshot_restore);
    add("kvm/random/unix-reader/restore", &kvm_random_unix, test_snapshot_restore);
    add("kvm/random/unix-frostvm", &kvm_unix_frostvm, test_snapshot_restore);
    add("kvm/smp2/file/restore", &kvm_smp2_file, test_snapshot_restore);
    add("kvm/cancel/file", &kvm_random_file, test_cancel);
    add("kvm/cancel/exec", &kvm_smp2_exec, test_cancel);
    add("kvm/fail/exec-exits-early", &kvm_random_file, test_exec_exits_early);
    add("kvm/fail/file-disk-full", &kvm_random_file, test_file_disk_full);
    add("kvm/hmp-lines", &kvm_random_file, test_hmp_lines);
    add("kvm/placement", &kvm_seq_exec, test_placement);
    add("kvm/smp2/placement", &kvm_smp2_exec, test_placement);

    add("test-accel/random/file/restore", &test_random_file, test_snapshot_restore);
    add("test-accel/seq/exec/restore", &test_seq_exec, test_snapshot_restore);
    add("test-accel/random/unix-reader/restore", &test_random_unix, test_snapshot_restore);
    add("test-accel/random/unix-frostvm", &test_unix_frostvm, test_snapshot_restore);
    add("test-accel/smp2/file/restore", &test_smp2_file, test_snapshot_restore);
    add("test-accel/memfd/file/restore", &test_memfd_file, test_snapshot_restore);
    /* A sweep behind the scan writes regions that left userfaultfd early. */
    add("test-accel/memfd/seq/exec/restore", &test_memfd_seq_exec, test_snapshot_restore);
    add("test-accel/memfd/cancel/exec", &test_memfd_seq_exec, test_cancel);
    add("test-accel/shared-ram/file/restore", &test_shared_ram_file, test_snapshot_restore);
    add("test-accel/hugetlb/file/restore", &test_hugetlb_file, test_snapshot_restore);
    add("test-accel/cancel/file", &test_random_file, test_cancel);
    add("test-accel/cancel/exec", &test_seq_exec, test_cancel);
    add("test-accel/fail/exec-exits-early", &test_random_file, test_exec_exits_early);
    add("test-accel/fail/file-disk-full", &test_random_file, test_file_disk_full);
    add("test-accel/hmp-lines", &test_random_file, test_hmp_lines);
    add("test-accel/placement", &test_seq_exec, test_placement);
    add("test-accel/smp2/placement", &test_smp2_exec, test_placement);
    add("mid-snapshot-status-and-figures", &test_random_file, test_mid_snapshot);
    add("refuse-file-backed-ram", &test_random_file, test_refuse_file_backed_ram);
    return g_test_run();
}
