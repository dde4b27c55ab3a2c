/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests of a page pool kept between snapshots: reuse, the keeper, its timer and its release. */
#include <string.h>
#include <sys/mman.h>
#include <glib.h>

#include "migration/page-pool.h"

#define CHUNK_BYTES (512u * PAGE_POOL_PAGE_SIZE)
#define POOL_BYTES (4 * CHUNK_BYTES)
#define POOL_PAGES (POOL_BYTES / PAGE_POOL_PAGE_SIZE)

/* Take every page, write each, give them back: a snapshot's use of the pool. */
static void use_all(PagePool *p)
{
    g_autofree uint32_t *slots = g_new(uint32_t, POOL_PAGES);

    g_assert_true(page_pool_take(p, POOL_PAGES, PAGE_POOL_USER_FAULT, false, slots));
    for (unsigned i = 0; i < POOL_PAGES; i++) {
        memset(page_pool_page(p, slots[i]), 0x5a, PAGE_POOL_PAGE_SIZE);
    }
    page_pool_put(p, slots, POOL_PAGES);
}

/* An idle pool reused: its memory still there and counted, its counters and state new. */
static void test_reuse(void)
{
    g_autoptr(GError) err = NULL;
    PagePool *p = page_pool_new(POOL_BYTES, CHUNK_BYTES, POOL_BYTES, &err);
    uint32_t slots[8];
    PagePoolStats st;

    g_assert_no_error(err);
    use_all(p);
    page_pool_close(p);     /* as an aborted snapshot leaves it */
    page_pool_idle(p);
    page_pool_reuse(p, 2 * CHUNK_BYTES, CHUNK_BYTES);
    page_pool_get_stats(p, &st);
    /* Nothing presses on memory here: every page is still resident. */
    g_assert_cmpuint(st.reused_pages, ==, POOL_PAGES);
    g_assert_cmpuint(st.prefaulted_pages, ==, CHUNK_BYTES / PAGE_POOL_PAGE_SIZE);
    g_assert_cmpuint(st.high_water_pages, ==, 0);
    g_assert_cmpuint(st.reserve_pages, ==, 2 * CHUNK_BYTES / PAGE_POOL_PAGE_SIZE);
    g_assert_cmpuint(page_pool_returned(p), ==, 0);
    g_assert_cmpuint(page_pool_max_take(p, PAGE_POOL_USER_SCAN), ==,
                     POOL_PAGES - 2 * CHUNK_BYTES / PAGE_POOL_PAGE_SIZE);
    /* Open again, faults first get the populated slots, and every page is there. */
    g_assert_true(page_pool_take(p, 8, PAGE_POOL_USER_FAULT, false, slots));
    for (int i = 0; i < 8; i++) {
        g_assert_cmpuint(slots[i], <, CHUNK_BYTES / PAGE_POOL_PAGE_SIZE);
    }
    page_pool_put(p, slots, 8);
    use_all(p);
    page_pool_free(p);
}

/* Memory the kernel took back is not counted as reused. */
static void test_reuse_counts_resident(void)
{
    g_autoptr(GError) err = NULL;
    PagePool *p = page_pool_new(POOL_BYTES, 0, POOL_BYTES, &err);
    PagePoolStats st;

    g_assert_no_error(err);
    use_all(p);
    page_pool_idle(p);
    /* What reclaim does to lazily freed memory, for one chunk. */
    g_assert_cmpint(madvise(page_pool_page(p, 0), CHUNK_BYTES, MADV_DONTNEED), ==, 0);
    page_pool_reuse(p, 0, 0);
    page_pool_get_stats(p, &st);
    g_assert_cmpuint(st.reused_pages, ==, POOL_PAGES - CHUNK_BYTES / PAGE_POOL_PAGE_SIZE);
    use_all(p);
    page_pool_free(p);
}

static bool reused(PagePool *p)
{
    PagePoolStats st;

    page_pool_get_stats(p, &st);
    return st.reused_pages > 0;
}

/* The kept pool serves the next request of its size; another size gets a new one. */
static void test_obtain(void)
{
    g_autoptr(GError) err = NULL;
    GMainContext *ctx = g_main_context_new();
    PagePool *p = page_pool_obtain(POOL_BYTES, 0, POOL_BYTES, &err);
    PagePool *q;

    g_assert_no_error(err);
    g_assert_false(reused(p));
    use_all(p);
    page_pool_keep(p, 60000, ctx);
    g_assert_cmpuint(page_pool_kept_bytes(), ==, POOL_BYTES);

    q = page_pool_obtain(POOL_BYTES, 0, POOL_BYTES, &err);
    g_assert_no_error(err);
    g_assert_true(q == p);
    g_assert_true(reused(q));
    g_assert_cmpuint(page_pool_kept_bytes(), ==, 0);
    use_all(q);

    page_pool_keep(q, 60000, ctx);
    p = page_pool_obtain(2 * POOL_BYTES, 0, POOL_BYTES, &err);
    g_assert_no_error(err);
    g_assert_false(reused(p));
    g_assert_cmpuint(page_pool_bytes(p), ==, 2 * POOL_BYTES);
    g_assert_cmpuint(page_pool_kept_bytes(), ==, 0);

    /* Kept for 0 ms, or with no loop to free it later: freed at once. */
    page_pool_keep(p, 0, ctx);
    g_assert_cmpuint(page_pool_kept_bytes(), ==, 0);
    p = page_pool_obtain(POOL_BYTES, 0, 0, &err);
    page_pool_keep(p, 1000, NULL);
    g_assert_cmpuint(page_pool_kept_bytes(), ==, 0);
    g_main_context_unref(ctx);
}

static void run_for(GMainContext *ctx, unsigned ms)
{
    gint64 end = g_get_monotonic_time() + ms * 1000;

    while (g_get_monotonic_time() < end) {
        g_main_context_iteration(ctx, FALSE);
        g_usleep(1000);
    }
}

/* The timer frees the pool it was set for, never one kept after it. */
static void test_timer(void)
{
    g_autoptr(GError) err = NULL;
    GMainContext *ctx = g_main_context_new();
    PagePool *p = page_pool_obtain(POOL_BYTES, 0, 0, &err);

    g_assert_no_error(err);
    page_pool_keep(p, 20, ctx);
    g_assert_cmpuint(page_pool_kept_bytes(), ==, POOL_BYTES);
    run_for(ctx, 200);
    g_assert_cmpuint(page_pool_kept_bytes(), ==, 0);

    /* A 20 ms keep, taken back and kept again for longer: its timer finds nothing of its own. */
    p = page_pool_obtain(POOL_BYTES, 0, 0, &err);
    page_pool_keep(p, 20, ctx);
    p = page_pool_obtain(POOL_BYTES, 0, 0, &err);
    page_pool_keep(p, 60000, ctx);
    run_for(ctx, 200);
    g_assert_cmpuint(page_pool_kept_bytes(), ==, POOL_BYTES);
    page_pool_drop_kept();
    g_assert_cmpuint(page_pool_kept_bytes(), ==, 0);
    g_main_context_unref(ctx);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/page-pool-keep/reuse", test_reuse);
    g_test_add_func("/page-pool-keep/reuse-counts-resident", test_reuse_counts_resident);
    g_test_add_func("/page-pool-keep/obtain", test_obtain);
    g_test_add_func("/page-pool-keep/timer", test_timer);
    return g_test_run();
}
