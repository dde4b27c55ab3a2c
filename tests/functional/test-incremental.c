/* SPDX-License-Identifier: GPL-2.0-or-later */
/* End-to-end incremental snapshots: chains of the busy payload exact at each instant, restores from the chain, refusals, commit. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "snapshot-e2e.h"
#include "vm-helper.h"

#define I_TIMEOUT_MS 30000
#define I_RAM_MB "256"
#define I_RAM_BYTES (256ull << 20)
#define I_CHAIN 4          /* a full image and three increments */

typedef struct {
    const char *accel;     /* "kvm" or "test" */
    bool mapped;           /* page-aligned images, else streams */
    const char *append;
    const char *backend;   /* guest RAM's -object (without id and size), or NULL */
} IncCase;

typedef struct {
    TestVm *vm;
    TestVm *dst;
} IncFixture;

static void i_setup(IncFixture *f, gconstpointer data)
{
    memset(f, 0, sizeof(*f));
}

static void i_teardown(IncFixture *f, gconstpointer data)
{
    g_clear_pointer(&f->dst, test_vm_free);
    g_clear_pointer(&f->vm, test_vm_free);
}

static bool case_skip(const IncCase *c)
{
    /* The source and one restored guest at a time: RAM / 2 MiB pages each. */
    if (c->backend && strstr(c->backend, "hugetlb=on") &&
        test_vm_skip_without_huge_pages(2 * (I_RAM_BYTES >> 21))) {
        return true;
    }
    return !strcmp(c->accel, "kvm") && test_vm_skip_without_kvm();
}

static TestVm *guest_new(const IncCase *c, bool kernel)
{
    TestVm *vm = snap_guest_new(c->accel, I_RAM_MB, c->append, kernel);

    if (c->backend) {
        g_autofree char *object = g_strdup_printf("%s,id=ram0,size=%sM", c->backend, I_RAM_MB);

        test_vm_add_args(vm, "-object", object, "-machine", "memory-backend=ram0", NULL);
    }
    return vm;
}

static PayloadProgress progress(TestVm *vm)
{
    return snap_progress_healthy(vm, I_TIMEOUT_MS);
}

static void assert_serial_clean(TestVm *vm)
{
    snap_assert_serial_clean(vm);
}

static TestVm *source_start(const IncCase *c)
{
    g_autoptr(GError) err = NULL;
    TestVm *vm = guest_new(c, true);

    test_vm_launch_or_fail(vm);
    test_vm_wait_serial(vm, "PAYLOAD READY", I_TIMEOUT_MS, NULL, &err);
    g_assert_no_error(err);
    (void)progress(vm);
    return vm;
}

static void set_caps(QmpClient *qmp, bool background, bool incremental, bool mapped)
{
    g_autofree char *args = g_strdup_printf(
        "{\"capabilities\": [{\"capability\": \"background-snapshot\", \"state\": %s},"
        " {\"capability\": \"incremental-snapshot\", \"state\": %s},"
        " {\"capability\": \"mapped-ram\", \"state\": %s}]}",
        background ? "true" : "false", incremental ? "true" : "false",
        mapped ? "true" : "false");

    snap_qmp_do(qmp, "migrate-set-capabilities", args);
}

static void set_base(QmpClient *qmp, const char *base)
{
    g_autofree char *args = g_strdup_printf("{\"snapshot-base\": \"%s\"}", base ? base : "");

    snap_qmp_do(qmp, "migrate-set-parameters", args);
}

static void drop_migration_events(QmpClient *qmp)
{
    snap_drop_migration_events(qmp);
}

/* One background snapshot to @path on @base (NULL: full); the guest's steps around it. */
static void snapshot(TestVm *vm, const char *path, const char *base, uint64_t *before,
                     uint64_t *after)
{
    QmpClient *qmp = test_vm_qmp(vm);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autoptr(JsonObject) info = NULL;
    JsonObject *bg;

    set_base(qmp, base);
    drop_migration_events(qmp);
    test_vm_log_skip(vm, TEST_VM_LOG_SERIAL);
    *before = progress(vm).steps;
    snap_migrate(qmp, uri);
    snap_wait_completed(qmp);
    info = snap_query_migrate(qmp);
    bg = json_object_get_object_member(info, "background-snapshot");
    g_assert_cmpint(json_object_get_boolean_member(bg, "incremental"), ==, base != NULL);
    if (base) {
        /* 256 MiB of RAM of which the payload writes 64 MiB: most of it unchanged. */
        g_assert_cmpint(json_object_get_int_member(bg, "pages-unchanged"), >,
                        (gint64)(I_RAM_BYTES / 4096 / 2));
    }
    test_vm_log_skip(vm, TEST_VM_LOG_SERIAL);
    *after = progress(vm).steps;
}

/* Pages the last snapshot saved, with data or as zero (query-migrate). */
static uint64_t pages_saved(TestVm *vm)
{
    g_autoptr(JsonObject) info = snap_query_migrate(test_vm_qmp(vm));
    JsonObject *ram = json_object_get_object_member(info, "ram");

    return (uint64_t)json_object_get_int_member(ram, "normal") +
           (uint64_t)json_object_get_int_member(ram, "duplicate");
}

/* frostvm-img dump-ram of @path (the composite of its chain) into @raw; returns its bytes. */
static GMappedFile *dump(const char *path, const char *raw)
{
    g_autofree char *out = NULL;
    g_autoptr(GError) err = NULL;
    GMappedFile *map;

    if (snap_img_tool(&out, "dump-ram", path, raw, NULL) != 0) {
        g_error("frostvm-img dump-ram %s: %s", path, out);
    }
    map = g_mapped_file_new(raw, FALSE, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(g_mapped_file_get_length(map), ==, I_RAM_BYTES);
    return map;
}

/*
 * The chain ending at @path checks (every link, every byte), and its
 * composite memory is the payload at one instant between @before and @after.
 */
static void check_composite_in(TestVm *vm, const char *path, uint64_t before, uint64_t after,
                               bool first_sweep);

static void check_composite(TestVm *vm, const char *path, uint64_t before, uint64_t after)
{
    check_composite_in(vm, path, before, after, false);
}

/* As check_composite(); during the first sweep pages not reached yet are zero (untouched). */
static void check_composite_in(TestVm *vm, const char *path, uint64_t before, uint64_t after,
                               bool first_sweep)
{
    g_autofree char *raw = test_vm_path(vm, "composite.raw");
    g_autofree char *out = NULL;
    g_autoptr(GMappedFile) map = NULL;
    g_autoptr(GError) err = NULL;
    PayloadCheckResult res;

    if (snap_img_tool(&out, "check", path, NULL) != 0) {
        g_error("frostvm-img check %s: %s", path, out);
    }
    map = dump(path, raw);
    if (!payload_check_memory((const uint8_t *)g_mapped_file_get_contents(map), I_RAM_BYTES,
                              &res, &err)) {
        g_autofree char *why = payload_check_result_describe(&res);
        g_error("the composite of %s breaks the payload's invariant: %s\n%s", path,
                err->message, why);
    }
    if (first_sweep) {
        g_assert_cmpuint(res.pages_untouched, >, 0);
    } else {
        g_assert_cmpuint(res.pages_untouched, ==, 0);
    }
    g_assert_cmpuint(res.pages_bad, ==, 0);
    g_assert_cmpuint(res.guest_errors, ==, 0);
    g_assert_cmpuint(res.regs_failures, ==, 0);
    g_assert_cmpuint(res.steps, >=, before);
    g_assert_cmpuint(res.steps, <=, after);
    g_unlink(raw);
}

/* A new frostvm restoring @path (eager or lazy); it must continue from the image's instant. */
static TestVm *restore_and_continue(const IncCase *c, const char *path, const char *mode,
                                    uint64_t image_steps)
{
    TestVm *vm = guest_new(c, false);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autofree char *global = g_strdup_printf("migration.restore-mode=%s", mode);

    test_vm_add_args(vm, "-global", global, "-incoming", uri, NULL);
    test_vm_launch_or_fail(vm);
    PayloadProgress p1 = progress(vm), p2 = progress(vm);
    g_autofree char *log = test_vm_log_read(vm, TEST_VM_LOG_SERIAL);
    g_autofree char *status = snap_query_status(test_vm_qmp(vm));

    g_assert_cmpuint(p1.steps, >=, image_steps);
    g_assert_cmpuint(p2.steps, >, p1.steps);
    g_assert_cmpstr(status, ==, "running");
    g_assert_null(strstr(log, "PAYLOAD START"));
    assert_serial_clean(vm);
    return vm;
}

/*
 * A chain of four snapshots of the busy payload (a full image and three
 * increments, each on the one before), each exact at its instant on the
 * composite; restores from the middle and the end continue; commit gives
 * the chain's memory, as one flat image and folded into the base.
 */
static void test_chain(IncFixture *f, gconstpointer data)
{
    const IncCase *c = data;
    /* A NULL-terminated vector: g_autofree on an array would free only its first string. */
    g_auto(GStrv) paths = g_new0(char *, I_CHAIN + 1);
    uint64_t steps[I_CHAIN];

    if (case_skip(c)) {
        return;
    }
    f->vm = source_start(c);
    set_caps(test_vm_qmp(f->vm), true, true, c->mapped);
    for (unsigned i = 0; i < I_CHAIN; i++) {
        uint64_t before, after;
        g_autofree char *name = g_strdup_printf("s%u.img", i);

        paths[i] = test_vm_path(f->vm, name);
        snapshot(f->vm, paths[i], i ? paths[i - 1] : NULL, &before, &after);
        check_composite(f->vm, paths[i], before, after);
        steps[i] = before;
    }
    {
        /* info shows the chain, newest first, down to the full image. */
        g_autofree char *out = NULL;
        g_assert_cmpint(snap_img_tool(&out, "info", paths[I_CHAIN - 1], NULL), ==, 0);
        g_assert_nonnull(strstr(out, "chain: 4 images"));
        g_assert_nonnull(strstr(out, "flat"));
    }
    f->dst = restore_and_continue(c, paths[1], "eager", steps[1]);
    g_clear_pointer(&f->dst, test_vm_free);
    {
        /* A base moved away: found through restore-base instead of the recorded path. */
        g_autofree char *moved = g_strdup_printf("%s.moved", paths[I_CHAIN - 2]);
        g_autofree char *global = g_strdup_printf("migration.restore-base=%s", moved);
        g_autofree char *uri = g_strdup_printf("file:%s", paths[I_CHAIN - 1]);

        g_assert_cmpint(rename(paths[I_CHAIN - 2], moved), ==, 0);
        f->dst = guest_new(c, false);
        test_vm_add_args(f->dst, "-global", global, "-global", "migration.restore-mode=eager",
                         "-incoming", uri, NULL);
        test_vm_launch_or_fail(f->dst);
        g_assert_cmpuint(progress(f->dst).steps, >=, steps[I_CHAIN - 1]);
        assert_serial_clean(f->dst);
        g_clear_pointer(&f->dst, test_vm_free);
        g_assert_cmpint(rename(moved, paths[I_CHAIN - 2]), ==, 0);
    }
    f->dst = restore_and_continue(c, paths[I_CHAIN - 1], c->mapped ? "lazy" : "eager",
                                  steps[I_CHAIN - 1]);
    g_clear_pointer(&f->dst, test_vm_free);

    /* commit: the whole chain as one flat image, then the top folded into its base. */
    g_autofree char *flat = test_vm_path(f->vm, "flat.img");
    g_autofree char *raw_chain = test_vm_path(f->vm, "chain.raw");
    g_autofree char *raw_other = test_vm_path(f->vm, "other.raw");
    g_autofree char *out = NULL;
    g_autoptr(GMappedFile) chain_map = dump(paths[I_CHAIN - 1], raw_chain);

    g_assert_cmpint(snap_img_tool(&out, "commit", paths[I_CHAIN - 1], flat, NULL), ==, 0);
    {
        g_autoptr(GMappedFile) m = dump(flat, raw_other);
        g_assert_true(memcmp(g_mapped_file_get_contents(m),
                             g_mapped_file_get_contents(chain_map), I_RAM_BYTES) == 0);
        g_clear_pointer(&out, g_free);
        g_assert_cmpint(snap_img_tool(&out, "info", flat, NULL), ==, 0);
        g_assert_null(strstr(out, "incremental on"));
    }
    g_clear_pointer(&out, g_free);
    g_assert_cmpint(snap_img_tool(&out, "commit", paths[I_CHAIN - 1], NULL), ==, 0);
    {
        /* The base now holds the top's instant, still on its own base. */
        g_autoptr(GMappedFile) m = dump(paths[I_CHAIN - 2], raw_other);
        g_assert_true(memcmp(g_mapped_file_get_contents(m),
                             g_mapped_file_get_contents(chain_map), I_RAM_BYTES) == 0);
        g_clear_pointer(&out, g_free);
        g_assert_cmpint(snap_img_tool(&out, "check", paths[I_CHAIN - 2], NULL), ==, 0);
        g_clear_pointer(&out, g_free);
        /* The old top names a base that is now another image: refused. */
        g_assert_cmpint(snap_img_tool(&out, "check", paths[I_CHAIN - 1], NULL), !=, 0);
        g_assert_nonnull(strstr(out, "is another image"));
    }
    f->dst = restore_and_continue(c, flat, "eager", steps[I_CHAIN - 1]);
    g_unlink(raw_chain);
    g_unlink(raw_other);
}

/*
 * An idle guest (everything written once, then nothing): the increment holds
 * the device state and a handful of pages, and its size stays within 5% of
 * the pages it saved.
 */
static void test_idle_increment(IncFixture *f, gconstpointer data)
{
    const IncCase *c = data;
    g_autofree char *full = NULL, *inc = NULL;
    uint64_t before, after;
    struct stat st;

    if (case_skip(c)) {
        return;
    }
    f->vm = source_start(c);
    set_caps(test_vm_qmp(f->vm), true, true, c->mapped);
    full = test_vm_path(f->vm, "full.img");
    inc = test_vm_path(f->vm, "inc.img");
    snapshot(f->vm, full, NULL, &before, &after);
    snapshot(f->vm, inc, full, &before, &after);
    check_composite(f->vm, inc, before, after);

    uint64_t saved = pages_saved(f->vm);
    g_test_message("idle increment: %" G_GUINT64_FORMAT " pages saved", saved);
    g_assert_cmpuint(saved, <, 64);
    g_assert_cmpint(stat(inc, &st), ==, 0);
    /* Allocated bytes: a page-aligned image is sparse, as long as the RAM. */
    g_assert_cmpuint((uint64_t)st.st_blocks * 512, <=,
                     saved * 4096 * 105 / 100 + SNAP_FIXED_OVERHEAD);
}

/*
 * A tracked snapshot during the guest's first sweep: pages it has not
 * reached are holes (write tracking puts markers in them), and some of them
 * get data between the snapshot's early work and its pause. The image has
 * each page as it was at the instant (holes as zero, written ones with their
 * data); an increment on it, once every page is written, is exact too.
 */
static void test_first_sweep(IncFixture *f, gconstpointer data)
{
    const IncCase *c = data;
    g_autofree char *s0 = NULL, *s1 = NULL;
    g_autoptr(GError) err = NULL;
    uint64_t before, after;

    if (case_skip(c)) {
        return;
    }
    f->vm = guest_new(c, true);
    test_vm_launch_or_fail(f->vm);
    (void)progress(f->vm);
    set_caps(test_vm_qmp(f->vm), true, true, c->mapped);
    s0 = test_vm_path(f->vm, "s0.img");
    s1 = test_vm_path(f->vm, "s1.img");
    snapshot(f->vm, s0, NULL, &before, &after);
    {
        /* Holes under tracking's markers are known as such: saved as zero, not read. */
        g_autoptr(JsonObject) info = snap_query_migrate(test_vm_qmp(f->vm));
        JsonObject *bg = json_object_get_object_member(info, "background-snapshot");

        g_assert_cmpint(json_object_get_int_member(bg, "pages-unpopulated"), >, 0);
    }
    check_composite_in(f->vm, s0, before, after, true);
    test_vm_wait_serial(f->vm, "PAYLOAD READY", I_TIMEOUT_MS, NULL, &err);
    g_assert_no_error(err);
    snapshot(f->vm, s1, s0, &before, &after);
    check_composite(f->vm, s1, before, after);
    assert_serial_clean(f->vm);
}

/* The migrate error (or the failed migration's reason) contains @needle. */
static void expect_refused(TestVm *vm, const char *uri, const char *needle)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *args = g_strdup_printf("{\"uri\": \"%s\"}", uri);
    g_autoptr(JsonNode) ret = qmp_client_execute_json(test_vm_qmp(vm), "migrate", args, &err);

    if (!err) {
        /* Accepted: the thread must fail, with the reason. */
        g_autofree char *status = snap_wait_migration_end(test_vm_qmp(vm));
        g_autoptr(JsonObject) info = snap_query_migrate(test_vm_qmp(vm));
        g_assert_cmpstr(status, ==, "failed");
        const char *desc = json_object_get_string_member(info, "error-desc");
        if (!strstr(desc, needle)) {
            g_error("migration failed with '%s', expected '%s'", desc, needle);
        }
        return;
    }
    if (!strstr(err->message, needle)) {
        g_error("migrate refused with '%s', expected '%s'", err->message, needle);
    }
}

/* A copy (another file, holes kept). */
static void copy_file(const char *from, const char *to)
{
    const char *argv[] = { "cp", "--sparse=always", from, to, NULL };
    g_autoptr(GError) err = NULL;
    int status = 0;

    g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                               NULL, NULL, &status, &err));
    g_assert_true(g_spawn_check_wait_status(status, NULL));
}

/*
 * Flip one byte of @path: guest memory (40 MiB in: the payload's range, in a
 * stream's data or a page region) or, with @metadata, what a restore reads
 * first (a page-aligned image's block table, a stream's device records).
 */
static void tamper(const char *path, bool metadata)
{
    int fd = open(path, O_RDWR);
    struct stat st;
    uint8_t b;

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(fstat(fd, &st), ==, 0);
    off_t off = 40 << 20;
    if (metadata) {
        uint8_t head[16];
        g_assert_cmpint(pread(fd, head, sizeof(head), 0), ==, sizeof(head));
        off = (head[14] & 1) ? 4096 + 40 : st.st_size - 40;
    }
    g_assert_cmpint(pread(fd, &b, 1, off), ==, 1);
    b ^= 0x5a;
    g_assert_cmpint(pwrite(fd, &b, 1, off), ==, 1);
    close(fd);
}

/* A frostvm that must refuse to restore @path, saying @needle; nothing runs. */
static void expect_restore_refused(const IncCase *c, const char *path, const char *needle)
{
    TestVm *vm = guest_new(c, false);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autoptr(GError) err = NULL;
    int status = 0;

    test_vm_add_args(vm, "-global", "migration.restore-mode=eager", "-incoming", uri, NULL);
    test_vm_launch(vm, NULL);
    g_assert_true(test_vm_wait_exit(vm, I_TIMEOUT_MS, &status, &err));
    g_assert_cmpint(status, ==, 1);
    g_autofree char *errlog = test_vm_log_read(vm, TEST_VM_LOG_STDERR);
    g_autofree char *serial = test_vm_log_read(vm, TEST_VM_LOG_SERIAL);
    if (!strstr(errlog, needle)) {
        g_error("restore of %s failed with '%s', expected '%s'", path, errlog, needle);
    }
    g_assert_null(strstr(serial, "PROGRESS"));
    test_vm_free(vm);
}

/*
 * Refusals with the reason: tracking off, no chain yet, a base that is
 * missing, not of this chain, changed, or from before the capability was
 * turned off and on; at restore, a missing, replaced or damaged base.
 */
static void test_refused(IncFixture *f, gconstpointer data)
{
    const IncCase *c = data;
    QmpClient *qmp;
    g_autofree char *s0 = NULL, *s1 = NULL, *s2 = NULL, *other = NULL, *uri = NULL;
    uint64_t before, after;

    if (case_skip(c)) {
        return;
    }
    f->vm = source_start(c);
    qmp = test_vm_qmp(f->vm);
    s0 = test_vm_path(f->vm, "s0.img");
    s1 = test_vm_path(f->vm, "s1.img");
    s2 = test_vm_path(f->vm, "s2.img");
    other = test_vm_path(f->vm, "other.img");
    uri = g_strdup_printf("file:%s", s1);

    /* Tracking off. */
    set_caps(qmp, true, false, c->mapped);
    set_base(qmp, s0);
    expect_refused(f->vm, uri, "incremental-snapshot is off");
    /* On, but nothing taken yet. */
    set_caps(qmp, true, true, c->mapped);
    expect_refused(f->vm, uri, "take a full snapshot first");
    snapshot(f->vm, s0, NULL, &before, &after);
    /* A base that is not there. */
    set_base(qmp, other);
    expect_refused(f->vm, uri, "cannot open image");
    /* An image this frostvm did not take (converted there and back: another identity). */
    {
        g_autofree char *conv = test_vm_path(f->vm, "conv.img");
        g_autofree char *out = NULL;
        g_assert_cmpint(snap_img_tool(&out, "convert", s0, conv, NULL), ==, 0);
        g_clear_pointer(&out, g_free);
        g_assert_cmpint(snap_img_tool(&out, "convert", conv, other, NULL), ==, 0);
        set_base(qmp, other);
        expect_refused(f->vm, uri, "was not taken by this frostvm");
        g_unlink(conv);
        g_unlink(other);
    }
    /* A base whose layout differs from mapped-ram's setting. */
    set_caps(qmp, true, true, !c->mapped);
    set_base(qmp, s0);
    expect_refused(f->vm, uri, "an increment has its base's layout");
    set_caps(qmp, true, true, c->mapped);
    /* A changed base: its bytes no longer give the digest. */
    copy_file(s0, other);
    tamper(s0, false);
    set_base(qmp, s0);
    expect_refused(f->vm, uri, "no longer matches the image frostvm took");
    /* The same image, copied elsewhere (another file): read through, accepted. */
    set_base(qmp, other);
    snap_migrate(qmp, uri);
    snap_wait_completed(qmp);
    snapshot(f->vm, s2, s1, &before, &after);
    check_composite(f->vm, s2, before, after);
    /* Off and on: the chain is forgotten. */
    set_caps(qmp, true, false, c->mapped);
    set_caps(qmp, true, true, c->mapped);
    set_base(qmp, s1);
    expect_refused(f->vm, uri, "take a full snapshot first");

    /* Restores: s2's chain is s2 -> s1 -> other. */
    g_autofree char *moved = g_strdup_printf("%s.moved", other);
    g_assert_cmpint(rename(other, moved), ==, 0);
    expect_restore_refused(c, s2, "is missing");
    /* Replaced by another image of the same machine. */
    copy_file(s2, other);
    expect_restore_refused(c, s2, "another image");
    /* Damaged. */
    g_assert_cmpint(rename(moved, other), ==, 0);
    tamper(other, true);
    expect_restore_refused(c, s2, c->mapped ? "digest" : "checksum mismatch");
}

/* Tracking survives stop/cont and a precopy migration (which uses the dirty log too). */
static void test_stop_cont_precopy(IncFixture *f, gconstpointer data)
{
    const IncCase *c = data;
    QmpClient *qmp;
    g_autofree char *s0 = NULL, *pre = NULL, *s1 = NULL, *pre_uri = NULL;
    uint64_t before, after;

    if (case_skip(c)) {
        return;
    }
    f->vm = source_start(c);
    qmp = test_vm_qmp(f->vm);
    s0 = test_vm_path(f->vm, "s0.img");
    s1 = test_vm_path(f->vm, "s1.img");
    pre = test_vm_path(f->vm, "precopy.img");
    pre_uri = g_strdup_printf("file:%s", pre);
    set_caps(qmp, true, true, c->mapped);
    snapshot(f->vm, s0, NULL, &before, &after);

    snap_qmp_do(qmp, "stop", NULL);
    g_usleep(100 * 1000);
    snap_qmp_do(qmp, "cont", NULL);
    (void)progress(f->vm);

    /* A precopy migration to a file: it completes, the guest stays stopped, then runs on. */
    set_caps(qmp, false, true, false);
    set_base(qmp, NULL);
    drop_migration_events(qmp);
    snap_migrate(qmp, pre_uri);
    snap_wait_completed(qmp);
    snap_qmp_do(qmp, "cont", NULL);
    (void)progress(f->vm);

    set_caps(qmp, true, true, c->mapped);
    snapshot(f->vm, s1, s0, &before, &after);
    check_composite(f->vm, s1, before, after);
    assert_serial_clean(f->vm);
}

/* HMP: the parameter by name, shown by info migrate_parameters; "" clears it. */
static void test_hmp(IncFixture *f, gconstpointer data)
{
    const IncCase *c = data;
    QmpClient *qmp;

    f->vm = source_start(c);
    qmp = test_vm_qmp(f->vm);
    g_autofree char *o1 = snap_hmp(qmp, "migrate_set_capability incremental-snapshot on");
    g_autofree char *o2 = snap_hmp(qmp, "migrate_set_parameter snapshot-base ./a.img");
    g_autofree char *o3 = snap_hmp(qmp, "info migrate_parameters");
    g_assert_nonnull(strstr(o3, "snapshot-base: './a.img'"));
    g_autofree char *o4 = snap_hmp(qmp, "migrate_set_parameter snapshot-base \"\"");
    g_autofree char *o5 = snap_hmp(qmp, "info migrate_parameters");
    g_assert_nonnull(strstr(o5, "snapshot-base: ''"));
    g_autofree char *o6 = snap_hmp(qmp, "info migrate_capabilities");
    g_assert_nonnull(strstr(o6, "incremental-snapshot: on"));
}

typedef struct {
    const IncCase *c;
    const char *mode;      /* restore-mode of the restore the chain starts at */
    /*
     * The image is taken during the guest's first sweep, so the pages it had
     * not reached yet are absent (zero) in it, and the restored guest writes
     * some of them during the fill and not again before the increment.
     */
    bool first_sweep;
} RestoredCase;

/* Poll query-migrate until the incoming side completed (a lazy fill included). */
static void wait_incoming_completed(TestVm *vm, bool *ran_while_filling)
{
    gint64 deadline = g_get_monotonic_time() + I_TIMEOUT_MS * (gint64)1000;
    uint64_t first = 0;

    for (;;) {
        g_autoptr(JsonObject) info = snap_query_migrate(test_vm_qmp(vm));
        const char *status = json_object_get_string_member(info, "status");

        if (!strcmp(status, "completed")) {
            return;
        }
        g_assert_cmpstr(status, !=, "failed");
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        if (!strcmp(status, "postcopy-active")) {
            /* The guest runs while its RAM arrives: its steps show it writing meanwhile. */
            uint64_t steps = progress(vm).steps;

            if (!first) {
                first = steps;
            } else if (steps > first) {
                *ran_while_filling = true;
            }
        }
        g_usleep(20 * 1000);
    }
}

/*
 * An increment on the image a guest was restored from: with
 * incremental-snapshot on at the restore (-global migration.x-... on the
 * command line, or set before migrate-incoming), the restored image is the
 * first of the new process's chain. The increment saves only what the guest
 * wrote since the restore (during a lazy fill too, found by content), its
 * composite is exact, and it restores.
 */
static void test_restored_base(IncFixture *f, gconstpointer data)
{
    const RestoredCase *rc = data;
    const IncCase *c = rc->c;
    g_autofree char *s0 = NULL, *s1 = NULL, *uri = NULL;
    uint64_t before, after, restored_steps;
    bool lazy = !strcmp(rc->mode, "lazy");
    bool ran_while_filling = false;
    QmpClient *qmp;

    if (case_skip(c)) {
        return;
    }
    if (rc->first_sweep) {
        f->vm = guest_new(c, true);
        test_vm_launch_or_fail(f->vm);
        (void)progress(f->vm);
        (void)progress(f->vm);
    } else {
        f->vm = source_start(c);
    }
    set_caps(test_vm_qmp(f->vm), true, false, c->mapped);
    s0 = test_vm_path(f->vm, "s0.img");
    s1 = test_vm_path(f->vm, "s1.img");
    uri = g_strdup_printf("file:%s", s0);
    snapshot(f->vm, s0, NULL, &restored_steps, &after);
    /* The source has nothing more to do; stopped, it leaves the CPUs to the restore. */
    snap_qmp_do(test_vm_qmp(f->vm), "stop", NULL);

    f->dst = guest_new(c, false);
    if (lazy) {
        /* Set over QMP before migrate-incoming; a slow fill, so the guest writes during it. */
        g_autofree char *args = g_strdup_printf("{\"uri\": \"%s\"}", uri);

        test_vm_add_args(f->dst, "-incoming", "defer", NULL);
        test_vm_launch_or_fail(f->dst);
        qmp = test_vm_qmp(f->dst);
        set_caps(qmp, false, true, false);
        snap_qmp_do(qmp, "migrate-set-parameters", rc->first_sweep
                    ? "{\"restore-mode\": \"lazy\", \"max-bandwidth\": 8388608}"
                    : "{\"restore-mode\": \"lazy\", \"max-bandwidth\": 33554432}");
        snap_qmp_do(qmp, "migrate-incoming", args);
    } else {
        g_autofree char *mode = g_strdup_printf("migration.restore-mode=%s", rc->mode);

        test_vm_add_args(f->dst, "-global", "migration.x-incremental-snapshot=on",
                         "-global", mode, "-incoming", uri, NULL);
        test_vm_launch_or_fail(f->dst);
        qmp = test_vm_qmp(f->dst);
    }
    wait_incoming_completed(f->dst, &ran_while_filling);
    if (lazy) {
        g_assert_true(ran_while_filling);
        snap_qmp_do(qmp, "migrate-set-parameters", "{\"max-bandwidth\": 0}");
    }
    g_assert_cmpuint(progress(f->dst).steps, >=, restored_steps);
    if (rc->first_sweep) {
        /* Every page written once (the composite check wants no untouched page). */
        g_autoptr(GError) err = NULL;

        test_vm_wait_serial(f->dst, "PAYLOAD READY", I_TIMEOUT_MS, NULL, &err);
        g_assert_no_error(err);
    }
    {
        /* The chain is there before any snapshot of this process: the restored image. */
        g_autoptr(JsonObject) info = snap_query_migrate(qmp);
        JsonObject *t = json_object_get_object_member(info, "incremental-tracking");
        g_autofree char *hmp = snap_hmp(qmp, "info migrate");

        g_assert_nonnull(t);
        g_assert_cmpint(json_object_get_int_member(t, "chain-images"), ==, 1);
        g_assert_false(json_object_has_member(t, "lost"));
        g_assert_nonnull(strstr(hmp, "1 images in the chain"));
    }
    set_caps(qmp, true, true, c->mapped);
    snapshot(f->dst, s1, s0, &before, &after);
    check_composite(f->dst, s1, before, after);
    assert_serial_clean(f->dst);
    g_clear_pointer(&f->dst, test_vm_free);
    f->dst = restore_and_continue(c, s1, c->mapped ? "lazy" : "eager", before);
}

/*
 * A guest rewriting a small hot set: the increment holds the pages that
 * changed and hardly more. Tracking counts every page it releases as written,
 * so a fault during the full snapshot that released the rest of a saved
 * 2 MiB region would add hundreds of pages here.
 */
static void test_hot_set(IncFixture *f, gconstpointer data)
{
    const IncCase *c = data;
    g_autofree char *full = NULL, *inc = NULL, *raw_full = NULL, *raw_inc = NULL;

    if (case_skip(c)) {
        return;
    }
    f->vm = source_start(c);
    set_caps(test_vm_qmp(f->vm), true, true, false);
    full = test_vm_path(f->vm, "full.img");
    inc = test_vm_path(f->vm, "inc.img");
    raw_full = test_vm_path(f->vm, "full.raw");
    raw_inc = test_vm_path(f->vm, "inc.raw");
    /*
     * Twice: whether the guest's first write to its control block after the
     * instant comes before or after the scan saved that region is timing.
     */
    for (unsigned round = 0; round < 2; round++) {
        uint64_t before, after, changed = 0;

        /*
         * A full snapshot of a second: the guest writes its control block in
         * a region the scan has saved, and faults there.
         */
        snap_qmp_do(test_vm_qmp(f->vm), "migrate-set-parameters",
                    "{\"max-bandwidth\": 67108864}");
        snapshot(f->vm, full, NULL, &before, &after);
        snap_qmp_do(test_vm_qmp(f->vm), "migrate-set-parameters",
                    "{\"max-bandwidth\": 4294967296}");
        /* Two sweeps of the hot set since: every hot page changed. */
        uint64_t sweep = progress(f->vm).sweep;
        while (progress(f->vm).sweep < sweep + 2) {
        }
        snapshot(f->vm, inc, full, &before, &after);
        check_composite(f->vm, inc, before, after);

        uint64_t saved = pages_saved(f->vm);
        g_autoptr(GMappedFile) a = dump(full, raw_full);
        g_autoptr(GMappedFile) b = dump(inc, raw_inc);
        const uint8_t *pa = (const uint8_t *)g_mapped_file_get_contents(a);
        const uint8_t *pb = (const uint8_t *)g_mapped_file_get_contents(b);
        for (uint64_t off = 0; off < I_RAM_BYTES; off += 4096) {
            changed += memcmp(pa + off, pb + off, 4096) != 0;
        }
        g_test_message("hot set, round %u: %" G_GUINT64_FORMAT " pages changed, %"
                       G_GUINT64_FORMAT " saved", round, changed, saved);
        /* 8 MiB rewritten, and the control block. */
        g_assert_cmpuint(changed, >=, (8u << 20) / 4096);
        g_assert_cmpuint(saved, >=, changed);
        /*
         * Runs released ahead of a sequential writer add some: a run shorter
         * than 256 pages may go past the end of the hot set by as many pages
         * as were written in a row before it, so at most 255 (0-181 seen
         * here, depending on where the sweep was at the instant); a fault
         * releasing the rest of a saved 2 MiB region adds about 500 more
         * (2,560 in all). (The runs' own sizing is /epoch-tracking/runs-bounded's.)
         */
        g_assert_cmpuint(saved, <=, changed + 255 + 16);
        g_unlink(raw_full);
        g_unlink(raw_inc);
    }
}

static const IncCase stream_test = { "test", false, "mem=64M rate=0" };
static const IncCase mapped_test = { "test", true, "mem=64M rate=0" };
/* Shared memory and 2 MiB hugetlbfs pages: protection changes by backing page there. */
static const IncCase memfd_test = { "test", true, "mem=64M rate=0",
                                    "memory-backend-memfd,share=on" };
static const IncCase hugetlb_test = { "test", false, "mem=64M rate=0",
                                      "memory-backend-memfd,share=on,hugetlb=on" };
/*
 * Paced (100,000 steps a second): a sweep of the hot set takes 20 ms. Reports
 * (writes to the control block) every 200 ms: the first after the instant
 * comes once the scan has saved the control block's region.
 */
static const IncCase hot_test = { "test", false, "mem=64M hot=8M report_ms=200" };
static const IncCase hot_kvm = { "kvm", false, "mem=64M hot=8M report_ms=200" };
static const IncCase idle_test = { "test", false, "mem=64M idle=1" };
static const IncCase idle_mapped_test = { "test", true, "mem=64M idle=1" };
static const IncCase stream_kvm = { "kvm", false, "mem=64M" };
static const IncCase mapped_kvm = { "kvm", true, "mem=64M" };
static const IncCase idle_kvm = { "kvm", true, "mem=64M idle=1" };
/* A first sweep of about 0.8 s: a snapshot right after boot meets it. */
static const IncCase first_sweep_test = { "test", true, "mem=64M rate=20000" };
static const RestoredCase restored_stream = { &stream_test, "eager" };
static const RestoredCase restored_eager = { &mapped_test, "eager" };
/*
 * Paced (test accelerator: steps per second), so that pages the guest writes
 * during the fill are not written again before the increment: only the
 * fill's comparison can find them.
 */
static const IncCase paced_mapped_test = { "test", true, "mem=64M rate=3000" };
static const RestoredCase restored_lazy = { &paced_mapped_test, "lazy" };
static const RestoredCase restored_lazy_first_sweep = { &paced_mapped_test, "lazy", true };
static const RestoredCase restored_lazy_kvm = { &mapped_kvm, "lazy" };

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, data, fn) \
    g_test_add("/incremental/" path, IncFixture, data, i_setup, fn, i_teardown)
    ADD("test-accel/chain/stream", &stream_test, test_chain);
    ADD("test-accel/chain/mapped", &mapped_test, test_chain);
    ADD("test-accel/chain/memfd", &memfd_test, test_chain);
    ADD("test-accel/chain/hugetlb", &hugetlb_test, test_chain);
    ADD("test-accel/idle/stream", &idle_test, test_idle_increment);
    ADD("test-accel/idle/mapped", &idle_mapped_test, test_idle_increment);
    ADD("test-accel/hot-set", &hot_test, test_hot_set);
    ADD("test-accel/refused/stream", &stream_test, test_refused);
    ADD("test-accel/refused/mapped", &mapped_test, test_refused);
    ADD("test-accel/stop-cont-precopy", &mapped_test, test_stop_cont_precopy);
    ADD("test-accel/hmp", &stream_test, test_hmp);
    ADD("test-accel/first-sweep", &first_sweep_test, test_first_sweep);
    ADD("test-accel/restored-base/stream", &restored_stream, test_restored_base);
    ADD("test-accel/restored-base/eager", &restored_eager, test_restored_base);
    ADD("test-accel/restored-base/lazy", &restored_lazy, test_restored_base);
    ADD("test-accel/restored-base/lazy-first-sweep", &restored_lazy_first_sweep,
        test_restored_base);
    ADD("kvm/restored-base/lazy", &restored_lazy_kvm, test_restored_base);
    ADD("kvm/chain/stream", &stream_kvm, test_chain);
    ADD("kvm/chain/mapped", &mapped_kvm, test_chain);
    ADD("kvm/idle", &idle_kvm, test_idle_increment);
    ADD("kvm/hot-set", &hot_kvm, test_hot_set);
    ADD("kvm/stop-cont-precopy", &mapped_kvm, test_stop_cont_precopy);
#undef ADD
    return g_test_run();
}
