/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Tests of the background snapshot engine on transparent huge pages, and on
 * memory that gets its first data while a snapshot starts: the image equals
 * RAM at the pause, and the guest keeps (or gets back) its huge pages.
 */
#include <string.h>
#include <glib.h>

#include "migration/snapshot/snapshot-internal.h"
#include "migration/stream-file.h"
#include "util/pagemap.h"

#include "snapshot-test-guest.h"

/* Block 0's hot and cold parts: written before the snapshot, 12 huge pages when THP works. */
#define DATA_SIZE (HOT_SIZE + COLD_SIZE)

/* A THP-backed guest whose data is mapped huge, or NULL (the test is skipped). */
static TestGuest *huge_guest_new(void)
{
    g_autofree char *enabled = NULL;

    if (!wp_available()) {
        return NULL;
    }
    if (!g_file_get_contents("/sys/kernel/mm/transparent_hugepage/enabled", &enabled, NULL,
                             NULL) || strstr(enabled, "[never]")) {
        g_test_skip("transparent huge pages are off");
        return NULL;
    }
    TestGuestOptions o = { .writers = true, .thp = true };
    TestGuest *g = guest_new_with(&o);
    g_usleep(20000);    /* writers up to speed */
    int64_t huge = huge_regions(g->rb[0].host, DATA_SIZE);
    if (huge < 0) {
        g_test_skip("needs PAGEMAP_SCAN (Linux 6.7) to see huge mappings");
    } else if (huge < (int64_t)(DATA_SIZE / (2 * MIB)) / 2) {
        g_test_skip("the kernel gave few huge pages (fragmented memory?)");
    } else {
        return g;
    }
    guest_free(g);
    return NULL;
}

static void snapshot_checked(TestGuest *g, uint64_t pool, SnapshotResult *res,
                             const char *what)
{
    StreamFile *f = stream_file_new_memory_output();
    TickCtx t = { 0 };

    run_snapshot(g, f, pool, &t, res);
    g_assert_no_error(res->error);
    g_assert_true(res->ok);
    g_assert_true(stream_file_flush(f));
    check_image(g, stream_file_memory_output(f), res);
    print_stats(what, res, g);
    stream_file_free(f);
}

/* One snapshot of THP-backed RAM with a pool of @pool bytes; the figures for the caller. */
static bool huge_snapshot(uint64_t pool, const char *what, SnapshotResult *res)
{
    TestGuest *g = huge_guest_new();

    if (!g) {
        return false;
    }
    int64_t before = huge_regions(g->rb[0].host, DATA_SIZE);
    snapshot_checked(g, pool, res, what);
    int64_t after = huge_regions(g->rb[0].host, DATA_SIZE);

    /* Every split one is put back (unless the kernel had no huge page to give). */
    g_assert_cmpuint(res->stats.huge_pages_restored + res->stats.huge_collapse_failed, ==,
                     res->stats.huge_pages_split);
    g_assert_cmpint(after, >=, before - (int64_t)res->stats.huge_collapse_failed);
    g_test_message("huge pages of the data: %" G_GINT64_FORMAT " before, %" G_GINT64_FORMAT
                   " after", before, after);
    guest_free(g);
    return true;
}

/*
 * A pool larger than all of RAM (never low, never paced): faults on huge
 * pages save and release them whole (some may still be split and put back,
 * if a copy was slow on a loaded machine).
 */
static void test_huge_kept(void)
{
    SnapshotResult res;

    if (huge_snapshot(128 * MIB, "snapshot of THP-backed RAM, 128 MiB pool", &res)) {
        g_assert_cmpuint(res.stats.write_faults, >, 0);
        g_assert_cmpuint(res.stats.huge_page_faults, >, 0);
        result_clear(&res);
    }
}

/*
 * A pool of 64 pages cannot take a huge page: faults are served small, which
 * splits huge mappings, and each split one is collapsed again once saved.
 */
static void test_huge_restored(void)
{
    SnapshotResult res;

    if (huge_snapshot(64 * PAGE, "snapshot of THP-backed RAM, 256 KiB pool", &res)) {
        g_assert_cmpuint(res.stats.huge_page_faults, ==, 0);
        g_assert_cmpuint(res.stats.huge_pages_split, >, 0);
        result_clear(&res);
    }
}

/*
 * Pages that get their first data between the early protect and the pause
 * were not protected by it; the pause must protect them, or the guest's
 * later writes would reach the image.
 */
static void test_grows_during_prearm(void)
{
    SnapshotResult res;

    if (!wp_available()) {
        return;
    }
    TestGuestOptions o = { .writers = true, .grower = true };
    TestGuest *g = guest_new_with(&o);

    g_usleep(10000);
    uint64_t grown_before = __atomic_load_n(&g->grown_pages, __ATOMIC_RELAXED);
    snapshot_checked(g, 8 * MIB, &res, "snapshot while the guest populates new memory");
    g_assert_cmpuint(__atomic_load_n(&g->grown_pages, __ATOMIC_RELAXED), >, grown_before);
    result_clear(&res);
    guest_free(g);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/background-snapshot/huge/kept-whole", test_huge_kept);
    g_test_add_func("/background-snapshot/huge/split-and-restored", test_huge_restored);
    g_test_add_func("/background-snapshot/engine/grows-during-prearm", test_grows_during_prearm);
    return g_test_run();
}
