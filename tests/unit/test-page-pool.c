/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests of the snapshot's page pool: bounds, the fault reserve, blocking takes and their accounting, close. */
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <glib.h>

#include "migration/page-pool.h"

#define PAGES 64
#define RESERVE 16

static PagePool *new_pool(void)
{
    g_autoptr(GError) err = NULL;
    PagePool *p = page_pool_new(PAGES * PAGE_POOL_PAGE_SIZE, RESERVE * PAGE_POOL_PAGE_SIZE,
                                PAGES * PAGE_POOL_PAGE_SIZE, &err);
    g_assert_no_error(err);
    return p;
}

static void test_bounds(void)
{
    PagePool *p = new_pool();
    uint32_t slots[PAGES];

    g_assert_cmpuint(page_pool_max_take(p, PAGE_POOL_USER_FAULT), ==, PAGES);
    g_assert_cmpuint(page_pool_max_take(p, PAGE_POOL_USER_SCAN), ==, PAGES - RESERVE);
    g_assert_true(page_pool_take(p, PAGES, PAGE_POOL_USER_FAULT, false, slots));
    /* Every slot distinct, pages writable and disjoint. */
    for (unsigned i = 0; i < PAGES; i++) {
        memset(page_pool_page(p, slots[i]), i, PAGE_POOL_PAGE_SIZE);
    }
    for (unsigned i = 0; i < PAGES; i++) {
        g_assert_cmpuint(page_pool_page(p, slots[i])[PAGE_POOL_PAGE_SIZE - 1], ==, i & 0xff);
    }
    g_assert_false(page_pool_take(p, 1, PAGE_POOL_USER_FAULT, false, slots));
    page_pool_put(p, slots, PAGES);
    g_assert_cmpuint(page_pool_available(p, PAGE_POOL_USER_FAULT), ==, PAGES);
    g_assert_cmpfloat(page_pool_free_fraction(p), ==, 1.0);

    PagePoolStats st;
    page_pool_get_stats(p, &st);
    g_assert_cmpuint(st.high_water_pages, ==, PAGES);
    g_assert_cmpuint(st.in_use_pages, ==, 0);
    g_assert_cmpuint(st.fault_waits, ==, 0);
    page_pool_free(p);
}

static void test_reserve(void)
{
    PagePool *p = new_pool();
    uint32_t scan[PAGES], fault[PAGES];

    /* The scan stops at the reserve... */
    g_assert_true(page_pool_take(p, PAGES - RESERVE, PAGE_POOL_USER_SCAN, false, scan));
    g_assert_cmpuint(page_pool_available(p, PAGE_POOL_USER_SCAN), ==, 0);
    g_assert_false(page_pool_take(p, 1, PAGE_POOL_USER_SCAN, false, scan));
    /* ...which faults can still use. */
    g_assert_cmpuint(page_pool_available(p, PAGE_POOL_USER_FAULT), ==, RESERVE);
    g_assert_true(page_pool_take(p, RESERVE, PAGE_POOL_USER_FAULT, false, fault));
    page_pool_put(p, fault, RESERVE);
    page_pool_put(p, scan, PAGES - RESERVE);
    page_pool_free(p);
}

typedef struct Taker {
    PagePool *pool;
    PagePoolUser user;
    uint32_t n;
    bool result;
    int tid;                    /* atomic: set before the take */
    uint32_t slots[PAGES];
} Taker;

static gpointer take_thread(gpointer opaque)
{
    Taker *t = opaque;
    __atomic_store_n(&t->tid, (int)syscall(SYS_gettid), __ATOMIC_RELEASE);
    t->result = page_pool_take(t->pool, t->n, t->user, true, t->slots);
    return NULL;
}

/*
 * Until @t's thread sleeps: its take is then blocked on the pool (nothing
 * else in it can sleep), so the waits that follow are all counted. Timing a
 * fixed head start instead failed on a loaded machine.
 */
static void wait_taker_blocked(Taker *t)
{
    int tid;

    while (!(tid = __atomic_load_n(&t->tid, __ATOMIC_ACQUIRE))) {
        g_usleep(100);
    }
    g_autofree char *path = g_strdup_printf("/proc/self/task/%d/stat", tid);
    for (;;) {
        g_autofree char *stat = NULL;
        g_assert_true(g_file_get_contents(path, &stat, NULL, NULL));
        /* "tid (comm) S ...": the state follows the last parenthesis. */
        const char *close = strrchr(stat, ')');
        g_assert_nonnull(close);
        if (close[1] == ' ' && close[2] == 'S') {
            return;
        }
        g_usleep(100);
    }
}

static void test_blocking_take(void)
{
    PagePool *p = new_pool();
    uint32_t all[PAGES];
    Taker t = { .pool = p, .user = PAGE_POOL_USER_FAULT, .n = 4 };

    g_assert_true(page_pool_take(p, PAGES, PAGE_POOL_USER_FAULT, false, all));
    GThread *th = g_thread_new("taker", take_thread, &t);
    wait_taker_blocked(&t);
    g_usleep(20000);
    /* Three pages are not enough for a take of four. */
    page_pool_put(p, all, 3);
    g_usleep(10000);
    page_pool_put(p, all + 3, 1);
    g_thread_join(th);
    g_assert_true(t.result);

    PagePoolStats st;
    page_pool_get_stats(p, &st);
    g_assert_cmpuint(st.fault_waits, ==, 1);
    g_assert_cmpuint(st.fault_wait_ns, >=, 25 * 1000 * 1000);
    g_assert_cmpuint(st.scan_waits, ==, 0);
    g_assert_cmpuint(st.in_use_pages, ==, PAGES);

    page_pool_put(p, t.slots, 4);
    page_pool_put(p, all + 4, PAGES - 4);
    page_pool_free(p);
}

/* Released, the reserve is the scan's too: a scan blocked at it goes on, with nothing put back. */
static void test_release_reserve(void)
{
    PagePool *p = new_pool();
    uint32_t scan[PAGES];
    Taker t = { .pool = p, .user = PAGE_POOL_USER_SCAN, .n = RESERVE / 2 };

    g_assert_true(page_pool_take(p, PAGES - RESERVE, PAGE_POOL_USER_SCAN, false, scan));
    GThread *th = g_thread_new("taker", take_thread, &t);
    wait_taker_blocked(&t);
    page_pool_release_reserve(p);
    g_thread_join(th);
    g_assert_true(t.result);
    g_assert_cmpuint(page_pool_max_take(p, PAGE_POOL_USER_SCAN), ==, PAGES);
    g_assert_cmpuint(page_pool_available(p, PAGE_POOL_USER_SCAN), ==, RESERVE / 2);

    PagePoolStats st;
    page_pool_get_stats(p, &st);
    g_assert_cmpuint(st.scan_waits, ==, 1);
    g_assert_cmpuint(st.in_use_pages, ==, PAGES - RESERVE / 2);

    page_pool_put(p, t.slots, t.n);
    page_pool_put(p, scan, PAGES - RESERVE);
    page_pool_free(p);
}

static void test_close_wakes(void)
{
    PagePool *p = new_pool();
    uint32_t all[PAGES];
    Taker t = { .pool = p, .user = PAGE_POOL_USER_SCAN, .n = 1 };

    g_assert_true(page_pool_take(p, PAGES - RESERVE, PAGE_POOL_USER_SCAN, false, all));
    GThread *th = g_thread_new("taker", take_thread, &t);
    g_usleep(10000);
    page_pool_close(p);
    g_thread_join(th);
    g_assert_false(t.result);
    /* Closed: nothing more is handed out, but pages can come back. */
    g_assert_false(page_pool_take(p, 1, PAGE_POOL_USER_FAULT, false, t.slots));
    page_pool_put(p, all, PAGES - RESERVE);

    PagePoolStats st;
    page_pool_get_stats(p, &st);
    g_assert_cmpuint(st.scan_waits, ==, 1);
    page_pool_free(p);
}

/* Faults get populated buffers first; the scan leaves them to faults. */
static void test_warm_for_faults(void)
{
    g_autoptr(GError) err = NULL;
    PagePool *p = page_pool_new(PAGES * PAGE_POOL_PAGE_SIZE, RESERVE * PAGE_POOL_PAGE_SIZE,
                                8 * PAGE_POOL_PAGE_SIZE, &err);
    uint32_t fault[4], again[4], scan[8];

    g_assert_no_error(err);
    g_assert_true(page_pool_take(p, 4, PAGE_POOL_USER_FAULT, false, fault));
    for (int i = 0; i < 4; i++) {
        g_assert_cmpuint(fault[i], <, 8);       /* prefaulted */
    }
    g_assert_true(page_pool_take(p, 8, PAGE_POOL_USER_SCAN, false, scan));
    for (int i = 0; i < 8; i++) {
        g_assert_cmpuint(scan[i], >=, 8);       /* populated by the scan itself */
    }
    /* Returned buffers are populated: a fault reuses them. */
    page_pool_put(p, scan, 8);
    g_assert_true(page_pool_take(p, 4, PAGE_POOL_USER_FAULT, false, again));
    g_assert_cmpuint(again[0], >=, 8);
    page_pool_put(p, again, 4);
    page_pool_put(p, fault, 4);
    /* Nothing lost: every page can be taken at once. */
    uint32_t all[PAGES];
    g_assert_true(page_pool_take(p, PAGES, PAGE_POOL_USER_FAULT, false, all));
    page_pool_put(p, all, PAGES);
    page_pool_free(p);
}

#define CHUNK 512
#define CHUNK_BYTES (CHUNK * PAGE_POOL_PAGE_SIZE)

static gpointer give_thread(gpointer opaque)
{
    Taker *t = opaque;
    __atomic_store_n(&t->tid, (int)syscall(SYS_gettid), __ATOMIC_RELEASE);
    t->result = page_pool_give_back_chunk(t->pool, true);
    return NULL;
}

/* Pages of [@addr, @addr + @len) in memory (mincore). */
static unsigned resident_pages(void *addr, size_t len)
{
    unsigned char vec[CHUNK];
    unsigned n = 0;

    g_assert_cmpuint(len / PAGE_POOL_PAGE_SIZE, <=, CHUNK);
    g_assert_cmpint(mincore(addr, len, vec), ==, 0);
    for (size_t i = 0; i < len / PAGE_POOL_PAGE_SIZE; i++) {
        n += vec[i] & 1;
    }
    return n;
}

/*
 * A free populated chunk goes back to the kernel, one in use never; its
 * buffers stay in the pool and come back populated when taken.
 */
static void test_give_back_chunk(void)
{
    g_autoptr(GError) err = NULL;
    PagePool *p = page_pool_new(2 * CHUNK_BYTES, 0, 2 * CHUNK_BYTES, &err);
    uint32_t first[CHUNK], all[2 * CHUNK];

    g_assert_no_error(err);
    /* Faults take the lowest populated slots first: all of chunk 0. */
    g_assert_true(page_pool_take(p, CHUNK, PAGE_POOL_USER_FAULT, false, first));
    for (int i = 0; i < CHUNK; i++) {
        g_assert_cmpuint(first[i], <, CHUNK);
        memset(page_pool_page(p, first[i]), 0xa5, PAGE_POOL_PAGE_SIZE);
    }
    uint8_t *chunk1 = page_pool_page(p, CHUNK);
    g_assert_cmpuint(resident_pages(chunk1, CHUNK_BYTES), ==, CHUNK);

    g_assert_true(page_pool_give_back_chunk(p, false));         /* chunk 1 */
    g_assert_cmpuint(resident_pages(chunk1, CHUNK_BYTES), ==, 0);
    g_assert_false(page_pool_give_back_chunk(p, false));        /* 0 in use, 1 gone */
    for (int i = 0; i < CHUNK; i++) {
        g_assert_cmpuint(page_pool_page(p, first[i])[PAGE_POOL_PAGE_SIZE - 1], ==, 0xa5);
    }

    page_pool_put(p, first, CHUNK);
    g_assert_true(page_pool_give_back_chunk(p, false));         /* chunk 0, now free */
    g_assert_cmpuint(resident_pages(page_pool_page(p, 0), CHUNK_BYTES), ==, 0);
    g_assert_false(page_pool_give_back_chunk(p, true));         /* nothing left to wait for */

    PagePoolStats st;
    page_pool_get_stats(p, &st);
    g_assert_cmpuint(st.chunks_given_back, ==, 2);
    g_assert_cmpuint(st.in_use_pages, ==, 0);

    /* Nothing lost: every buffer can be taken, and a taken one is in memory again. */
    g_assert_true(page_pool_take(p, 2 * CHUNK, PAGE_POOL_USER_FAULT, false, all));
    for (int i = 0; i < 2 * CHUNK; i++) {
        g_assert_cmpuint(resident_pages(page_pool_page(p, all[i]), PAGE_POOL_PAGE_SIZE), ==, 1);
    }
    /* Populated again by the takes: each may go back once more once free. */
    page_pool_put(p, all, 2 * CHUNK);
    g_assert_true(page_pool_give_back_chunk(p, false));
    g_assert_true(page_pool_give_back_chunk(p, false));
    g_assert_false(page_pool_give_back_chunk(p, false));
    page_pool_free(p);
}

/* With every populated chunk in use, a give-back waits for the writer, and close ends the wait. */
static void test_give_back_waits(void)
{
    g_autoptr(GError) err = NULL;
    PagePool *p = page_pool_new(2 * CHUNK_BYTES, 0, 2 * CHUNK_BYTES, &err);
    uint32_t all[2 * CHUNK];
    Taker t = { .pool = p };

    g_assert_no_error(err);
    g_assert_true(page_pool_take(p, 2 * CHUNK, PAGE_POOL_USER_FAULT, false, all));
    GThread *th = g_thread_new("giver", give_thread, &t);
    wait_taker_blocked(&t);
    /* Half a chunk back from each: neither is free yet. */
    page_pool_put(p, all, CHUNK / 2);
    page_pool_put(p, all + CHUNK, CHUNK / 2);
    g_usleep(10000);
    g_assert_false(__atomic_load_n(&t.result, __ATOMIC_ACQUIRE));
    page_pool_put(p, all + CHUNK / 2, CHUNK / 2);
    g_thread_join(th);
    g_assert_true(t.result);

    /* The other chunk stays in use: close ends the wait, giving nothing back. */
    Taker t2 = { .pool = p };
    th = g_thread_new("giver", give_thread, &t2);
    wait_taker_blocked(&t2);
    page_pool_close(p);
    g_thread_join(th);
    g_assert_false(t2.result);

    PagePoolStats st;
    page_pool_get_stats(p, &st);
    g_assert_cmpuint(st.chunks_given_back, ==, 1);
    page_pool_put(p, all + CHUNK + CHUNK / 2, CHUNK / 2);
    page_pool_free(p);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/page-pool/bounds", test_bounds);
    g_test_add_func("/page-pool/reserve", test_reserve);
    g_test_add_func("/page-pool/blocking-take", test_blocking_take);
    g_test_add_func("/page-pool/release-reserve", test_release_reserve);
    g_test_add_func("/page-pool/close-wakes", test_close_wakes);
    g_test_add_func("/page-pool/warm-for-faults", test_warm_for_faults);
    g_test_add_func("/page-pool/give-back-chunk", test_give_back_chunk);
    g_test_add_func("/page-pool/give-back-waits", test_give_back_waits);
    return g_test_run();
}
