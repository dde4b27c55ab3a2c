/* SPDX-License-Identifier: GPL-2.0-or-later */
/* End-to-end page-aligned images (mapped-ram) and instant restore: lazy, eager and map modes, snapshots during the fill, clones, damaged images, conversion. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <linux/userfaultfd.h>

#include "snapshot-e2e.h"
#include "vm-helper.h"

#define R_TIMEOUT_MS 30000
/* Header, block table, machine description, devices, bitmap and checksum pages. */
#define R_FIXED_OVERHEAD (64 * 1024)

typedef struct {
    const char *accel;     /* "kvm" or "test" */
    const char *ram_mb;
    const char *append;
} RestoreCase;

typedef struct {
    TestVm *src;
    TestVm *dst;
    TestVm *clones[3];
} RestoreFixture;

static void r_setup(RestoreFixture *f, gconstpointer data)
{
    memset(f, 0, sizeof(*f));
}

static void r_teardown(RestoreFixture *f, gconstpointer data)
{
    for (unsigned i = 0; i < G_N_ELEMENTS(f->clones); i++) {
        g_clear_pointer(&f->clones[i], test_vm_free);
    }
    g_clear_pointer(&f->dst, test_vm_free);
    g_clear_pointer(&f->src, test_vm_free);
}

static bool case_skip(const RestoreCase *c)
{
    return !strcmp(c->accel, "kvm") && test_vm_skip_without_kvm();
}

static TestVm *guest_new(const RestoreCase *c, bool kernel)
{
    return snap_guest_new(c->accel, c->ram_mb, c->append, kernel);
}

static uint64_t ram_bytes(const RestoreCase *c)
{
    return g_ascii_strtoull(c->ram_mb, NULL, 10) << 20;
}

static PayloadProgress progress(TestVm *vm)
{
    return snap_progress_healthy(vm, R_TIMEOUT_MS);
}

static void assert_serial_clean(TestVm *vm)
{
    snap_assert_serial_clean(vm);
}

/* A running source guest that has written its whole range once. */
static TestVm *source_start(RestoreFixture *f, const RestoreCase *c)
{
    g_autoptr(GError) err = NULL;

    f->src = guest_new(c, true);
    test_vm_launch_or_fail(f->src);
    test_vm_wait_serial(f->src, "PAYLOAD READY", R_TIMEOUT_MS, NULL, &err);
    g_assert_no_error(err);
    (void)progress(f->src);
    return f->src;
}

static void set_caps(QmpClient *qmp, bool background, bool mapped)
{
    g_autofree char *args = g_strdup_printf(
        "{\"capabilities\": [{\"capability\": \"background-snapshot\", \"state\": %s},"
        " {\"capability\": \"mapped-ram\", \"state\": %s}]}",
        background ? "true" : "false", mapped ? "true" : "false");

    snap_qmp_do(qmp, "migrate-set-capabilities", args);
}

/* Forget MIGRATION events of earlier migrations (a restore's "completed"). */
static void drop_migration_events(QmpClient *qmp)
{
    snap_drop_migration_events(qmp);
}

/* Snapshot @vm to @path (a page-aligned image unless !@mapped); returns the steps around it. */
static void snapshot_to(TestVm *vm, const char *path, bool background, bool mapped,
                        uint64_t *steps_before, uint64_t *steps_after)
{
    QmpClient *qmp = test_vm_qmp(vm);
    g_autofree char *uri = g_strdup_printf("file:%s", path);

    set_caps(qmp, background, mapped);
    drop_migration_events(qmp);
    test_vm_log_skip(vm, TEST_VM_LOG_SERIAL);
    *steps_before = progress(vm).steps;
    snap_migrate(qmp, uri);
    snap_wait_completed(qmp);
    if (!background) {
        /* Precopy leaves the source stopped (postmigrate): its image is its last state. */
        *steps_after = G_MAXUINT64;
        return;
    }
    test_vm_log_skip(vm, TEST_VM_LOG_SERIAL);
    *steps_after = progress(vm).steps;
}

static uint64_t count_nonzero_pages(const uint8_t *ram, uint64_t len)
{
    static const uint8_t zero[4096];
    uint64_t n = 0;

    for (uint64_t off = 0; off < len; off += 4096) {
        n += memcmp(ram + off, zero, 4096) != 0;
    }
    return n;
}

/*
 * frostvm-img check passes, the allocation stays within 1% of the non-zero
 * RAM (plus the fixed part), and the memory is the payload at one instant.
 */
static PayloadCheckResult check_mapped_image(TestVm *vm, const char *path, uint64_t ram)
{
    g_autofree char *raw = test_vm_path(vm, "ram.raw");
    g_autofree char *out = NULL;
    g_autoptr(GMappedFile) map = NULL;
    g_autoptr(GError) err = NULL;
    PayloadCheckResult res;
    uint64_t nonzero, allocated;
    struct stat st;

    if (snap_img_tool(&out, "check", path, NULL) != 0) {
        g_error("frostvm-img check %s: %s", path, out);
    }
    g_clear_pointer(&out, g_free);
    g_assert_cmpint(snap_img_tool(&out, "info", path, NULL), ==, 0);
    g_assert_nonnull(strstr(out, "page-aligned image"));
    g_clear_pointer(&out, g_free);
    if (snap_img_tool(&out, "dump-ram", path, raw, NULL) != 0) {
        g_error("frostvm-img dump-ram %s: %s", path, out);
    }
    map = g_mapped_file_new(raw, FALSE, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(g_mapped_file_get_length(map), ==, ram);
    if (!payload_check_memory((const uint8_t *)g_mapped_file_get_contents(map), ram, &res,
                              &err)) {
        g_autofree char *why = payload_check_result_describe(&res);
        g_error("the image breaks the payload's invariant: %s\n%s", err->message, why);
    }
    g_assert_cmpuint(res.pages_untouched, ==, 0);
    g_assert_cmpuint(res.pages_bad, ==, 0);
    g_assert_cmpuint(res.guest_errors, ==, 0);
    g_assert_cmpuint(res.regs_failures, ==, 0);
    nonzero = count_nonzero_pages((const uint8_t *)g_mapped_file_get_contents(map), ram);
    g_assert_cmpint(stat(path, &st), ==, 0);
    allocated = (uint64_t)st.st_blocks * 512;
    g_test_message("image %s: allocated %" G_GUINT64_FORMAT " bytes for %" G_GUINT64_FORMAT
                   " bytes of non-zero RAM (%.3f%% over); file length %" G_GUINT64_FORMAT,
                   path, allocated, nonzero * 4096,
                   100.0 * ((double)allocated / (double)(nonzero * 4096) - 1),
                   (uint64_t)st.st_size);
    g_assert_cmpuint(allocated, <=, nonzero * 4096 + nonzero * 4096 / 100 + R_FIXED_OVERHEAD);
    g_unlink(raw);
    return res;
}

/* A new frostvm restoring @path: straight from -incoming file: (lazy), or in @mode. */
static TestVm *restore_start(const RestoreCase *c, const char *path, const char *mode,
                             const char *max_bandwidth)
{
    TestVm *vm = guest_new(c, false);
    g_autofree char *uri = g_strdup_printf("file:%s", path);

    if (!mode) {
        test_vm_add_args(vm, "-incoming", uri, NULL);
        test_vm_launch_or_fail(vm);
        return vm;
    }
    test_vm_add_args(vm, "-incoming", "defer", NULL);
    test_vm_launch_or_fail(vm);
    {
        g_autofree char *params = g_strdup_printf("{\"restore-mode\": \"%s\"%s%s}", mode,
                                                  max_bandwidth ? ", \"max-bandwidth\": " : "",
                                                  max_bandwidth ? max_bandwidth : "");
        g_autofree char *args = g_strdup_printf("{\"uri\": \"%s\"}", uri);

        snap_qmp_do(test_vm_qmp(vm), "migrate-set-parameters", params);
        snap_qmp_do(test_vm_qmp(vm), "migrate-incoming", args);
    }
    return vm;
}

/* query-migrate's restore object (caller unrefs the returned info). */
static JsonObject *restore_info(TestVm *vm, JsonObject **info_out)
{
    gint64 deadline = g_get_monotonic_time() + R_TIMEOUT_MS * (gint64)1000;
    JsonObject *info;

    /* Right after migrate-incoming the image may still be opening. */
    while (!json_object_has_member((info = snap_query_migrate(test_vm_qmp(vm))), "restore")) {
        json_object_unref(info);
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(1000);
    }
    *info_out = info;
    return json_object_get_object_member(info, "restore");
}

/* Poll query-migrate until the restore is no longer filling; returns its final status. */
static char *wait_restore_end(TestVm *vm)
{
    gint64 deadline = g_get_monotonic_time() + R_TIMEOUT_MS * (gint64)1000;

    for (;;) {
        g_autoptr(JsonObject) info = NULL;
        JsonObject *r;
        const char *status;

        if (!json_object_has_member((info = snap_query_migrate(test_vm_qmp(vm))), "restore")) {
            g_assert_cmpint(g_get_monotonic_time(), <, deadline);
            g_usleep(10 * 1000);
            continue;
        }
        r = json_object_get_object_member(info, "restore");
        status = json_object_get_string_member(info, "status");
        if (strcmp(json_object_get_string_member(r, "fill-status"), "filling") &&
            strcmp(status, "active") && strcmp(status, "postcopy-active")) {
            return g_strdup(status);
        }
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(10 * 1000);
    }
}

/* The restored guest continues from the image's instant, healthy (an idle one only reports). */
static void check_continues_idle(TestVm *vm, uint64_t image_steps, bool idle)
{
    PayloadProgress p1 = progress(vm), p2 = progress(vm);
    g_autofree char *status = snap_query_status(test_vm_qmp(vm));
    g_autofree char *log = test_vm_log_read(vm, TEST_VM_LOG_SERIAL);

    g_assert_cmpuint(p1.steps, >=, image_steps);
    if (idle) {
        g_assert_cmpuint(p2.steps, ==, p1.steps);
    } else {
        g_assert_cmpuint(p2.steps, >, p1.steps);
    }
    g_assert_cmpstr(status, ==, "running");
    g_assert_null(strstr(log, "PAYLOAD START"));
    assert_serial_clean(vm);
}

static void check_continues(TestVm *vm, uint64_t image_steps)
{
    check_continues_idle(vm, image_steps, false);
}

/*
 * After a restore: a background snapshot of the restored guest (ordinary
 * memory again) holds the payload's invariant at its own instant.
 */
static void check_snapshot_of_restored(TestVm *vm, const RestoreCase *c)
{
    g_autofree char *path = test_vm_path(vm, "again.img");
    uint64_t before, after;
    PayloadCheckResult res;

    snapshot_to(vm, path, true, true, &before, &after);
    res = check_mapped_image(vm, path, ram_bytes(c));
    g_assert_cmpuint(res.steps, >=, before);
    g_assert_cmpuint(res.steps, <=, after);
}

/* ---- the scenarios ---- */

/* Snapshot to a page-aligned image, restore it in @data's mode, watch it run and check it. */
typedef struct {
    RestoreCase c;
    const char *mode;
    bool snapshot_again;   /* then snapshot the restored guest and check that image */
    bool expect_moves;     /* lazy: whole regions untouched by faults, moved in huge */
} ModeCase;

#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
#endif

/*
 * Whether this kernel offers UFFDIO_MOVE (Linux 6.8). Where the system call
 * is refused (frostvm would then use /dev/userfaultfd), the answer is no and
 * the test only asserts less.
 */
static bool kernel_has_uffd_move(void)
{
    struct uffdio_api api = { .api = UFFD_API };
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
    bool has;

    if (fd < 0) {
        return false;
    }
    has = ioctl(fd, UFFDIO_API, &api) == 0 && (api.features & UFFD_FEATURE_MOVE);
    close(fd);
    return has;
}

static void test_restore_mode(RestoreFixture *f, gconstpointer data)
{
    const ModeCase *mc = data;
    const RestoreCase c = mc->c;
    const char *mode = mc->mode;
    g_autofree char *path = NULL;
    g_autofree char *status = NULL;
    g_autoptr(JsonObject) info = NULL;
    uint64_t before, after;
    PayloadCheckResult img;
    JsonObject *r;

    if (case_skip(&c)) {
        return;
    }
    source_start(f, &c);
    path = test_vm_path(f->src, "vm.img");
    snapshot_to(f->src, path, true, true, &before, &after);
    img = check_mapped_image(f->src, path, ram_bytes(&c));
    g_assert_cmpuint(img.steps, >=, before);
    g_assert_cmpuint(img.steps, <=, after);

    f->dst = restore_start(&c, path, strcmp(mode, "lazy") ? mode : NULL, NULL);
    status = wait_restore_end(f->dst);
    g_assert_cmpstr(status, ==, "completed");
    r = restore_info(f->dst, &info);
    g_assert_cmpstr(json_object_get_string_member(r, "mode"), ==, mode);
    g_assert_cmpint(json_object_get_int_member(r, "pages-filled"), ==,
                    json_object_get_int_member(r, "pages-total"));
    g_assert_cmpstr(json_object_get_string_member(r, "fill-status"), ==,
                    strcmp(mode, "eager") ? "completed" : "none");
    if (mc->expect_moves && kernel_has_uffd_move()) {
        /* The guest's check below says whether they hold the right data. */
        g_assert_cmpint(json_object_get_int_member(r, "huge-pages-moved"), >, 0);
    } else if (mc->expect_moves) {
        g_test_message("no UFFDIO_MOVE in this kernel: the fill copied every page");
    }
    if (strcmp(mode, "eager")) {
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonObject) ev = NULL;

        /* With -incoming defer the client saw the whole restore. */
        if (strcmp(mode, "lazy")) {
            ev = qmp_client_wait_event(test_vm_qmp(f->dst), "RESTORE_FILL_COMPLETED",
                                       R_TIMEOUT_MS, &err);
            g_assert_no_error(err);
            test_vm_assert_event(ev, "RESTORE_FILL_COMPLETED");
        }
    }
    check_continues(f->dst, img.steps);
    if (!strcmp(mode, "map")) {
        /* A private file mapping cannot be write-protected: refused, clearly. */
        g_autoptr(GError) err = NULL;
        JsonNode *ret = qmp_client_execute_json(
            test_vm_qmp(f->dst), "migrate-set-capabilities",
            "{\"capabilities\": [{\"capability\": \"background-snapshot\", \"state\": true}]}",
            &err);
        g_assert_null(ret);
        g_assert_nonnull(strstr(err->message, "private file mappings"));
        return;
    }
    if (mc->snapshot_again) {
        check_snapshot_of_restored(f->dst, &c);
    }
}

/*
 * A source guest snapshotted to a page-aligned image (checked, into @img),
 * and a lazy restore of it held back to @max_bandwidth, returned once the
 * restored guest runs (postcopy-active) with the fill still going.
 */
static QmpClient *lazy_restore_running(RestoreFixture *f, const RestoreCase *c,
                                       const char *max_bandwidth, PayloadCheckResult *img)
{
    g_autofree char *path = NULL;
    uint64_t before, after;

    source_start(f, c);
    path = test_vm_path(f->src, "vm.img");
    snapshot_to(f->src, path, true, true, &before, &after);
    *img = check_mapped_image(f->src, path, ram_bytes(c));
    f->dst = restore_start(c, path, "lazy", max_bandwidth);
    for (;;) {
        g_autoptr(JsonObject) info = NULL;
        JsonObject *r = restore_info(f->dst, &info);

        g_assert_cmpstr(json_object_get_string_member(r, "fill-status"), ==, "filling");
        /* Capabilities change once the incoming side runs the guest (postcopy-active). */
        if (!strcmp(json_object_get_string_member(info, "status"), "postcopy-active")) {
            return test_vm_qmp(f->dst);
        }
        g_usleep(1000);
    }
}

/*
 * A background snapshot asked for while the lazy fill still runs (held back
 * by max-bandwidth): exact at its instant, and the restored guest continues.
 */
static void test_snapshot_during_fill(RestoreFixture *f, gconstpointer data)
{
    const RestoreCase *c = data;
    g_autofree char *snap = NULL;
    g_autofree char *uri = NULL;
    uint64_t after, b2;
    PayloadCheckResult img, res;
    QmpClient *qmp;

    if (case_skip(c)) {
        return;
    }
    /*
     * 2 MiB/s: the image would take half a minute to fill; the guest's own
     * faults bring its range in sooner, so ask for the snapshot at once. Its
     * instant is after the restore began: at least the image's steps.
     */
    qmp = lazy_restore_running(f, c, "2097152", &img);
    snap = test_vm_path(f->dst, "during.img");
    uri = g_strdup_printf("file:%s", snap);
    set_caps(qmp, true, true);
    drop_migration_events(qmp);
    b2 = img.steps;
    snap_migrate(qmp, uri);
    /* Let the fill go at full speed now; the snapshot follows it. */
    snap_qmp_do(qmp, "migrate-set-parameters", "{\"max-bandwidth\": 0}");
    snap_wait_completed(qmp);
    test_vm_log_skip(f->dst, TEST_VM_LOG_SERIAL);
    after = progress(f->dst).steps;
    res = check_mapped_image(f->dst, snap, ram_bytes(c));
    g_assert_cmpuint(res.steps, >=, b2);
    g_assert_cmpuint(res.steps, <=, after);
    check_continues(f->dst, res.steps);
}

/*
 * stop and cont, over and over, while a slow lazy fill runs: each stop kicks
 * the vCPUs with a signal, and a vCPU may be waiting in a missing-page fault
 * on guest RAM at that moment (docs/restore.md, "How it works", failure).
 * The guest must never see a failed access (a FAULT line, a KVM internal
 * error), and it ends running on from the image's instant.
 */
static void test_stop_cont_during_fill(RestoreFixture *f, gconstpointer data)
{
    const RestoreCase *c = data;
    g_autofree char *status = NULL;
    g_autofree char *log = NULL;
    g_autoptr(JsonObject) info = NULL;
    unsigned cycles = 0;
    gint64 faults0, faults1;
    PayloadCheckResult img;
    QmpClient *qmp;

    if (case_skip(c)) {
        return;
    }
    /* 1 MiB/s: the fill alone would take a minute; the guest's faults do the work. */
    qmp = lazy_restore_running(f, c, "1048576", &img);
    faults0 = json_object_get_int_member(restore_info(f->dst, &info), "faults");
    g_clear_pointer(&info, json_object_unref);
    for (; cycles < 60; cycles++) {
        JsonObject *r = restore_info(f->dst, &info);
        bool filling = !strcmp(json_object_get_string_member(r, "fill-status"), "filling");

        g_clear_pointer(&info, json_object_unref);
        if (!filling) {
            break;
        }
        snap_qmp_do(qmp, "stop", NULL);
        g_usleep(g_random_int_range(200, 3000));
        snap_qmp_do(qmp, "cont", NULL);
        g_usleep(g_random_int_range(0, 5000));
    }
    faults1 = json_object_get_int_member(restore_info(f->dst, &info), "faults");
    g_clear_pointer(&info, json_object_unref);
    g_test_message("%u stop/cont cycles during the fill, %" G_GINT64_FORMAT " faults served",
                   cycles, faults1 - faults0);
    /* Enough of them met a fill in progress, with the guest faulting, to mean something. */
    g_assert_cmpuint(cycles, >=, 20);
    g_assert_cmpint(faults1, >, faults0);
    snap_qmp_do(qmp, "migrate-set-parameters", "{\"max-bandwidth\": 0}");
    status = wait_restore_end(f->dst);
    g_assert_cmpstr(status, ==, "completed");
    check_continues(f->dst, img.steps);
    log = test_vm_log_read(f->dst, TEST_VM_LOG_SERIAL);
    g_assert_null(strstr(log, "FAULT"));
}

/* Live precopy and a stopped-guest save to a page-aligned image (no background-snapshot). */
static void test_precopy_mapped(RestoreFixture *f, gconstpointer data)
{
    const RestoreCase *c = data;
    g_autofree char *path = NULL;
    g_autofree char *status = NULL;
    uint64_t before, after;
    PayloadCheckResult img;

    if (case_skip(c)) {
        return;
    }
    source_start(f, c);
    path = test_vm_path(f->src, "precopy.img");
    snapshot_to(f->src, path, false, true, &before, &after);
    img = check_mapped_image(f->src, path, ram_bytes(c));
    g_assert_cmpuint(img.steps, >=, before);
    f->dst = restore_start(c, path, NULL, NULL);
    status = wait_restore_end(f->dst);
    g_assert_cmpstr(status, ==, "completed");
    /* The source stayed in postmigrate: the image is its final state. */
    check_continues(f->dst, img.steps);
    /* After the fill, RAM is ordinary memory: live precopy (the dirty log) works on it. */
    {
        g_autofree char *again = test_vm_path(f->dst, "again.img");
        PayloadCheckResult res;

        snapshot_to(f->dst, again, false, true, &before, &after);
        res = check_mapped_image(f->dst, again, ram_bytes(c));
        g_assert_cmpuint(res.steps, >=, before);
    }
}

static uint64_t pss_kib(pid_t pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/smaps_rollup", (int)pid);
    g_autofree char *text = NULL;
    const char *p;

    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    p = strstr(text, "\nPss:");
    g_assert_nonnull(p);
    return g_ascii_strtoull(p + 5, NULL, 10);
}

/* Clones of one image: each runs; in map mode they share the image's page cache. */
static uint64_t clones_pss(RestoreFixture *f, const RestoreCase *c, const char *path,
                           const char *mode, uint64_t image_steps)
{
    uint64_t total = 0;

    for (unsigned i = 0; i < G_N_ELEMENTS(f->clones); i++) {
        f->clones[i] = restore_start(c, path, mode, NULL);
    }
    for (unsigned i = 0; i < G_N_ELEMENTS(f->clones); i++) {
        g_autofree char *status = wait_restore_end(f->clones[i]);
        g_assert_cmpstr(status, ==, "completed");
        check_continues_idle(f->clones[i], image_steps, true);
    }
    for (unsigned i = 0; i < G_N_ELEMENTS(f->clones); i++) {
        total += pss_kib(test_vm_pid(f->clones[i]));
    }
    for (unsigned i = 0; i < G_N_ELEMENTS(f->clones); i++) {
        g_clear_pointer(&f->clones[i], test_vm_free);
    }
    return total;
}

static void test_clones(RestoreFixture *f, gconstpointer data)
{
    const RestoreCase *c = data;
    g_autofree char *path = NULL;
    uint64_t before, after, lazy_kib, map_kib;
    PayloadCheckResult img;

    if (case_skip(c)) {
        return;
    }
    source_start(f, c);
    path = test_vm_path(f->src, "clone.img");
    snapshot_to(f->src, path, true, true, &before, &after);
    img = check_mapped_image(f->src, path, ram_bytes(c));
    lazy_kib = clones_pss(f, c, path, "lazy", img.steps);
    map_kib = clones_pss(f, c, path, "map", img.steps);
    g_test_message("%u clones: PSS together %" G_GUINT64_FORMAT " KiB lazy, %" G_GUINT64_FORMAT
                   " KiB map", (unsigned)G_N_ELEMENTS(f->clones), lazy_kib, map_kib);
    /* Lazy clones each own a copy; map clones share one page cache copy. */
    g_assert_cmpuint(map_kib * 4, <, lazy_kib * 3);
}

/* Damage, then expect the running restore to stop the guest cleanly. */
typedef enum { DAMAGE_CORRUPT, DAMAGE_TRUNCATE } Damage;

static void corrupt_page(const char *path, double where, uint64_t range_bytes)
{
    g_autofree char *out = NULL;
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonObject *o;
    uint64_t offset;
    int fd;
    uint8_t b;

    /* A data page of the payload's range: its RAM block offset from info --output=json. */
    g_assert_cmpint(snap_img_tool(&out, "--output=json", "info", path, NULL), ==, 0);
    g_assert_true(json_parser_load_from_data(parser, out, -1, NULL));
    o = json_node_get_object(json_parser_get_root(parser));
    offset = (uint64_t)json_object_get_int_member(
                 json_array_get_object_element(json_object_get_array_member(o, "ram-blocks"), 0),
                 "pages-offset");
    /* The payload's range starts at 16 MiB and is data all through. */
    offset += (16ull << 20) + (uint64_t)(where * (double)range_bytes) / 4096 * 4096 + 123;
    fd = open(path, O_RDWR | O_CLOEXEC);
    g_assert_cmpint(pread(fd, &b, 1, (off_t)offset), ==, 1);
    b ^= 0x5a;
    g_assert_cmpint(pwrite(fd, &b, 1, (off_t)offset), ==, 1);
    close(fd);
}

static void test_damaged_under_restore(RestoreFixture *f, gconstpointer data)
{
    Damage damage = GPOINTER_TO_INT(data);
    /*
     * A sequential sweep of 256 MiB takes the guest well over half a second:
     * its faults reach the damage (90% into the range, or past the cut at
     * 20 MiB) in order, long before the slow fill would.
     */
    const RestoreCase c = { "test", "512", "mem=256M report_ms=50" };
    g_autofree char *path = NULL;
    g_autofree char *status = NULL;
    g_autofree char *hmp = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) ev = NULL;
    g_autoptr(JsonObject) info = NULL;
    uint64_t before, after;
    QmpClient *qmp;

    source_start(f, &c);
    path = test_vm_path(f->src, "vm.img");
    snapshot_to(f->src, path, true, true, &before, &after);
    if (damage == DAMAGE_CORRUPT) {
        corrupt_page(path, 0.9, 256ull << 20);
    }
    /* A slow fill: the guest's own faults reach the damage first. */
    f->dst = restore_start(&c, path, "lazy", "1048576");
    qmp = test_vm_qmp(f->dst);
    if (damage == DAMAGE_TRUNCATE) {
        (void)progress(f->dst);
        g_assert_cmpint(truncate(path, 20 << 20), ==, 0);
    }
    status = wait_restore_end(f->dst);
    g_assert_cmpstr(status, ==, "failed");
    ev = qmp_client_wait_event(qmp, "STOP", R_TIMEOUT_MS, &err);
    g_assert_no_error(err);
    g_free(status);
    status = snap_query_status(qmp);
    g_assert_cmpstr(status, ==, "internal-error");
    info = snap_query_migrate(qmp);
    g_test_message("error-desc: %s", json_object_get_string_member(info, "error-desc"));
    g_assert_nonnull(strstr(json_object_get_string_member(info, "error-desc"),
                            damage == DAMAGE_CORRUPT ? "checksum" : "truncated"));
    /* The monitor stays up, and the guest cannot be resumed onto missing memory. */
    g_assert_null(qmp_client_execute(qmp, "cont", NULL, &err));
    g_assert_nonnull(strstr(err->message, "internal-error"));
    hmp = snap_hmp(qmp, "info migrate");
    g_assert_nonnull(strstr(hmp, "restore fill: failed"));
    g_assert_true(test_vm_is_running(f->dst));
}

/*
 * restore-mode map, then the image changes under the clone (@data: truncated,
 * or opened for writing with O_TRUNC and rewritten, as cp does). The change
 * waits while guest RAM is copied off the image, then goes through; the guest
 * goes on from its own memory. It starts paused, so every page it then checks
 * comes from that copy, and it runs two whole sweeps: a page the copy missed
 * would read as zero and the payload would report it.
 */
static void test_map_image_changed(RestoreFixture *f, gconstpointer data)
{
    Damage damage = GPOINTER_TO_INT(data);
    const RestoreCase c = { "test", "512", "mem=64M order=seq report_ms=50" };
    g_autofree char *path = NULL;
    g_autofree char *uri = NULL;
    g_autofree char *status = NULL;
    g_autofree char *hmp = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) info = NULL;
    uint64_t before, after;
    PayloadProgress p0, p;
    QmpClient *qmp;
    gint64 start;

    source_start(f, &c);
    path = test_vm_path(f->src, "vm.img");
    snapshot_to(f->src, path, true, true, &before, &after);
    /* Its directory holds the image: stopped, not gone. */
    snap_qmp_do(test_vm_qmp(f->src), "stop", NULL);

    uri = g_strdup_printf("file:%s", path);
    f->dst = guest_new(&c, false);
    test_vm_add_args(f->dst, "-S", "-global", "migration.restore-mode=map", "-incoming", uri,
                     NULL);
    test_vm_launch_or_fail(f->dst);
    qmp = test_vm_qmp(f->dst);
    status = wait_restore_end(f->dst);
    g_assert_cmpstr(status, ==, "completed");
    g_assert_cmpstr(json_object_get_string_member(restore_info(f->dst, &info), "image-lease"),
                    ==, "held");
    g_clear_pointer(&info, json_object_unref);
    /* Still on the image: no snapshot. */
    g_assert_null(qmp_client_execute_json(qmp, "migrate-set-capabilities",
                                          "{\"capabilities\": [{\"capability\": "
                                          "\"background-snapshot\", \"state\": true}]}",
                                          &err));
    g_assert_nonnull(strstr(err->message, "restore-mode map"));
    g_clear_error(&err);

    /* The writer waits for the copy (the kernel's limit is 45 s), then goes on. */
    start = g_get_monotonic_time();
    if (damage == DAMAGE_TRUNCATE) {
        g_assert_cmpint(truncate(path, 0), ==, 0);
    } else {
        static const uint8_t junk[65536] = { 0x5a };
        int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);

        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(write(fd, junk, sizeof(junk)), ==, (ssize_t)sizeof(junk));
        close(fd);
    }
    g_test_message("the change waited %" G_GINT64_FORMAT " ms",
                   (g_get_monotonic_time() - start) / 1000);
    g_assert_cmpint(g_get_monotonic_time() - start, <, 20 * G_USEC_PER_SEC);
    g_assert_cmpstr(json_object_get_string_member(restore_info(f->dst, &info), "image-lease"),
                    ==, "detached");
    g_clear_pointer(&info, json_object_unref);
    hmp = snap_hmp(qmp, "info migrate");
    g_assert_nonnull(strstr(hmp, "restore image lease: detached"));
    g_free(status);
    status = snap_query_status(qmp);
    g_assert_cmpstr(status, ==, "paused");

    snap_qmp_do(qmp, "cont", NULL);
    p0 = progress(f->dst);
    g_assert_cmpuint(p0.steps, >=, before);
    do {
        p = progress(f->dst);
    } while (p.sweep < p0.sweep + 2);
    assert_serial_clean(f->dst);
    /* Ordinary memory now: a background snapshot works and holds the invariant. */
    check_snapshot_of_restored(f->dst, &c);
}

/* Damaged before the start: refused at once, the guest never runs. */
static void test_damaged_refused(RestoreFixture *f, gconstpointer data)
{
    const char *const *args = data;
    const RestoreCase c = { "test", "256", "mem=32M report_ms=50" };
    g_autofree char *path = NULL;
    g_autofree char *uri = NULL;
    g_autofree char *errlog = NULL;
    g_autofree char *serial = NULL;
    g_autoptr(GError) err = NULL;
    uint64_t before, after;
    int status = 0;

    source_start(f, &c);
    path = test_vm_path(f->src, "vm.img");
    snapshot_to(f->src, path, true, true, &before, &after);
    if (!strcmp(args[0], "truncated")) {
        g_assert_cmpint(truncate(path, 40 << 20), ==, 0);
    } else {
        corrupt_page(path, 0.5, 32ull << 20);
    }
    f->dst = guest_new(&c, false);
    uri = g_strdup_printf("%s%s", !strcmp(args[1], "exec") ? "exec:cat " : "file:", path);
    if (!strcmp(args[1], "eager")) {
        g_autofree char *stream = g_strdup_printf("file:%s", path);
        test_vm_add_args(f->dst, "-incoming", "defer", NULL);
        test_vm_launch_or_fail(f->dst);
        snap_qmp_do(test_vm_qmp(f->dst), "migrate-set-parameters",
                    "{\"restore-mode\": \"eager\"}");
        {
            g_autofree char *a = g_strdup_printf("{\"uri\": \"%s\"}", stream);
            snap_qmp_do(test_vm_qmp(f->dst), "migrate-incoming", a);
        }
    } else {
        test_vm_add_args(f->dst, "-incoming", uri, NULL);
        test_vm_launch(f->dst, NULL);
    }
    g_assert_true(test_vm_wait_exit(f->dst, R_TIMEOUT_MS, &status, &err));
    g_assert_cmpint(status, ==, 1);
    errlog = test_vm_log_read(f->dst, TEST_VM_LOG_STDERR);
    g_test_message("%s", errlog);
    g_assert_nonnull(strstr(errlog, args[2]));
    serial = test_vm_log_read(f->dst, TEST_VM_LOG_SERIAL);
    g_assert_null(strstr(serial, "PROGRESS"));
}

/* A stream image to a page-aligned one and back; both restore and continue. */
static void test_convert(RestoreFixture *f, gconstpointer data)
{
    const RestoreCase c = { "test", "256", "mem=32M report_ms=50" };
    g_autofree char *stream = NULL;
    g_autofree char *mapped = NULL;
    g_autofree char *back = NULL;
    g_autofree char *out = NULL;
    g_autofree char *status = NULL;
    uint64_t before, after;
    PayloadCheckResult img;

    source_start(f, &c);
    stream = test_vm_path(f->src, "stream.img");
    mapped = test_vm_path(f->src, "mapped.img");
    back = test_vm_path(f->src, "back.img");
    snapshot_to(f->src, stream, true, false, &before, &after);
    g_assert_cmpint(snap_img_tool(&out, "convert", stream, mapped, NULL), ==, 0);
    img = check_mapped_image(f->src, mapped, ram_bytes(&c));
    g_assert_cmpuint(img.steps, >=, before);
    g_assert_cmpuint(img.steps, <=, after);
    g_clear_pointer(&out, g_free);
    g_assert_cmpint(snap_img_tool(&out, "convert", mapped, back, NULL), ==, 0);
    g_clear_pointer(&out, g_free);
    g_assert_cmpint(snap_img_tool(&out, "check", back, NULL), ==, 0);

    f->dst = restore_start(&c, mapped, NULL, NULL);
    status = wait_restore_end(f->dst);
    g_assert_cmpstr(status, ==, "completed");
    check_continues(f->dst, img.steps);
    g_clear_pointer(&f->dst, test_vm_free);
    {
        TestVm *vm = guest_new(&c, false);
        g_autofree char *uri = g_strdup_printf("exec:cat %s", back);

        test_vm_add_args(vm, "-incoming", uri, NULL);
        test_vm_launch_or_fail(vm);
        f->dst = vm;
        check_continues(f->dst, img.steps);
    }
}

/* mapped-ram needs a file: URI, as in QEMU. */
static void test_refuse_other_uris(RestoreFixture *f, gconstpointer data)
{
    const RestoreCase c = { "test", "128", "mem=8M" };
    g_autoptr(GError) err = NULL;
    QmpClient *qmp;

    f->src = guest_new(&c, true);
    test_vm_launch_or_fail(f->src);
    qmp = test_vm_qmp(f->src);
    set_caps(qmp, true, true);
    g_assert_null(qmp_client_execute_json(qmp, "migrate", "{\"uri\": \"exec:cat > /dev/null\"}",
                                          &err));
    g_test_message("%s", err->message);
    g_assert_nonnull(strstr(err->message, "mapped-ram needs a file: URI"));
    g_clear_error(&err);
    g_assert_null(qmp_client_execute_json(qmp, "migrate-set-capabilities",
                  "{\"capabilities\": [{\"capability\": \"xbzrle\", \"state\": true}]}", &err));
    g_clear_error(&err);
    /* restore-mode: QMP checks the enum, HMP takes the same names. */
    g_assert_null(qmp_client_execute_json(qmp, "migrate-set-parameters",
                                          "{\"restore-mode\": \"fast\"}", &err));
    g_clear_error(&err);
    {
        g_autofree char *bad = snap_hmp(qmp, "migrate_set_parameter restore-mode fast");
        g_autofree char *good = snap_hmp(qmp, "migrate_set_parameter restore-mode map");
        g_autofree char *params = snap_hmp(qmp, "info migrate_parameters");
        g_autoptr(JsonNode) q = snap_qmp_ok(qmp, "query-migrate-parameters", NULL);

        g_assert_nonnull(strstr(bad, "lazy, eager or map"));
        g_assert_nonnull(strstr(params, "restore-mode: map"));
        g_assert_cmpstr(json_object_get_string_member(json_node_get_object(q), "restore-mode"),
                        ==, "map");
    }
}

#define MODE_GUEST "512", "mem=64M report_ms=50"
static const ModeCase mode_kvm_lazy = { { "kvm", MODE_GUEST }, "lazy", true };
static const ModeCase mode_test_lazy = { { "test", MODE_GUEST }, "lazy", true };
static const ModeCase mode_test_eager = { { "test", MODE_GUEST }, "eager", true };
static const ModeCase mode_test_map = { { "test", MODE_GUEST }, "map", false };
static const ModeCase mode_test_2g = { { "test", "2048", "mem=512M report_ms=50" }, "lazy",
                                       false, true };
static const RestoreCase case_fill = { "test", "512", "mem=64M order=random report_ms=50" };
static const RestoreCase case_fill_kvm = { "kvm", "512", "mem=64M order=random report_ms=50" };
static const RestoreCase case_precopy = { "test", "256", "mem=32M report_ms=50" };
static const RestoreCase case_clones = { "test", "512", "mem=64M idle=1 report_ms=50" };
static const char *const refuse_truncated[] = { "truncated", "lazy", "truncated" };
static const char *const refuse_corrupt_eager[] = { "corrupt", "eager", "checksum" };
static const char *const refuse_exec[] = { "corrupt", "exec", "page-aligned image" };

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, data, fn) \
    g_test_add("/restore/" path, RestoreFixture, data, r_setup, fn, r_teardown)
    ADD("kvm/lazy", &mode_kvm_lazy, test_restore_mode);
    ADD("kvm/snapshot-during-fill", &case_fill_kvm, test_snapshot_during_fill);
    ADD("kvm/stop-cont-during-fill", &case_fill_kvm, test_stop_cont_during_fill);
    ADD("test-accel/lazy", &mode_test_lazy, test_restore_mode);
    ADD("test-accel/eager", &mode_test_eager, test_restore_mode);
    ADD("test-accel/map", &mode_test_map, test_restore_mode);
    ADD("test-accel/snapshot-during-fill", &case_fill, test_snapshot_during_fill);
    ADD("test-accel/stop-cont-during-fill", &case_fill, test_stop_cont_during_fill);
    ADD("test-accel/2g", &mode_test_2g, test_restore_mode);
    ADD("test-accel/precopy", &case_precopy, test_precopy_mapped);
    ADD("test-accel/clones", &case_clones, test_clones);
    ADD("fail/corrupt-page-under-restore", GINT_TO_POINTER(DAMAGE_CORRUPT),
        test_damaged_under_restore);
    ADD("fail/truncated-under-restore", GINT_TO_POINTER(DAMAGE_TRUNCATE),
        test_damaged_under_restore);
    ADD("fail/truncated", refuse_truncated, test_damaged_refused);
    ADD("map/image-truncated", GINT_TO_POINTER(DAMAGE_TRUNCATE), test_map_image_changed);
    ADD("map/image-rewritten", GINT_TO_POINTER(DAMAGE_CORRUPT), test_map_image_changed);
    ADD("fail/corrupt-eager", refuse_corrupt_eager, test_damaged_refused);
    ADD("fail/page-aligned-from-exec", refuse_exec, test_damaged_refused);
    ADD("convert", NULL, test_convert);
    ADD("refuse/non-file-uri", NULL, test_refuse_other_uris);
#undef ADD
    return g_test_run();
}
