/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Tests of the background snapshot engine on transparent huge pages, and on
 * memory that gets its first data while a snapshot starts: the image equals
 * RAM at the pause, and the guest keeps (or gets back) its huge pages.
 */
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
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

static void snapshot_checked(TestGuest *g, uint64_t pool, TickCtx *t, SnapshotResult *res,
                             const char *what)
{
    StreamFile *f = stream_file_new_memory_output();
    TickCtx none = { 0 };

    run_snapshot(g, f, pool, t ? t : &none, res);
    g_assert_no_error(res->error);
    g_assert_true(res->ok);
    g_assert_true(stream_file_flush(f));
    check_image(g, stream_file_memory_output(f), res);
    print_stats(what, res, g);
    stream_file_free(f);
}

/* One snapshot of THP-backed RAM with a pool of @pool bytes; the figures for the caller. */
static bool huge_snapshot(uint64_t pool, TickCtx *t, const char *what, SnapshotResult *res)
{
    TestGuest *g = huge_guest_new();

    if (!g) {
        return false;
    }
    int64_t before = huge_regions(g->rb[0].host, DATA_SIZE);
    snapshot_checked(g, pool, t, res, what);
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

    if (huge_snapshot(128 * MIB, NULL, "snapshot of THP-backed RAM, 128 MiB pool", &res)) {
        g_assert_cmpuint(res.stats.write_faults, >, 0);
        g_assert_cmpuint(res.stats.huge_page_faults, >, 0);
        result_clear(&res);
    }
}

/*
 * A second scan-like thread that only helps: from before the pause until RAM
 * is saved it takes pieces of every fault's posted block, as the scan does
 * between its own pieces, and counts as a helper meanwhile, as the scan
 * does while it copies. (The scan itself, at idle priority beside the
 * test's two spinning writers, is rarely there while a fault copies.)
 */
typedef struct Helper {
    GThread *thread;
    BackgroundSnapshot *bs;
    bool pinned;                /* on CPU 0, real-time below the preemptor */
    bool stop;                  /* atomic */
} Helper;

static void pin_self(int cpu)
{
    cpu_set_t set;

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    g_assert_cmpint(sched_setaffinity(0, sizeof(set), &set), ==, 0);
}

static gpointer helper_main(gpointer opaque)
{
    Helper *h = opaque;

    if (h->pinned) {
        struct sched_param sp = { .sched_priority = 1 };

        pin_self(0);
        pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);  /* allowed: the preemptor's was */
    }
    while (!__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE)) {
        snapshot_fault_share_help(h->bs);
    }
    return NULL;
}

static void start_helping(TickCtx *t)
{
    Helper *h = t->opaque;

    h->bs = t->bs;
    __atomic_fetch_add(&h->bs->fault_share.helpers, 1, __ATOMIC_RELAXED);
    h->thread = g_thread_new("share-helper", helper_main, h);
}

static void stop_helping(TickCtx *t)
{
    Helper *h = t->opaque;

    __atomic_store_n(&h->stop, true, __ATOMIC_RELEASE);
    g_thread_join(h->thread);
    __atomic_fetch_sub(&h->bs->fault_share.helpers, 1, __ATOMIC_RELAXED);
}

/*
 * A fault's whole 2 MiB copy shared: the helper copies some of its pieces,
 * and the image still holds every page once, as at the pause. That the
 * helper comes while a fault copies is up to the scheduler: a few snapshots
 * are allowed for it; each is checked whole.
 */
static void test_huge_fault_shared(void)
{
    uint64_t helped = 0;

    for (int i = 0; i < 5 && !helped; i++) {
        SnapshotResult res;
        Helper h = { 0 };
        TickCtx t = { .before_pause = start_helping, .after_save = stop_helping, .opaque = &h };

        if (!huge_snapshot(128 * MIB, &t, "THP-backed RAM, faults' copies shared", &res)) {
            return;
        }
        g_assert_cmpuint(res.stats.huge_page_faults, >, 0);
        helped = res.stats.fault_pages_by_scan;
        result_clear(&res);
    }
    g_assert_cmpuint(helped, >, 0);
}

/*
 * A helper that is preempted in the middle of a piece, as the scan can be:
 * on CPU 0 a real-time thread takes the CPU for 100 us at a time and leaves
 * it for about 20 us, where the helper, real-time below it, may just take a
 * piece. The fault thread, on CPU 1, takes the piece back after waiting.
 */
typedef struct Preemptor {
    GThread *thread;
    bool stop;                  /* atomic */
    int error;                  /* from pthread_setschedparam(), in the thread */
    bool ready;                 /* atomic */
} Preemptor;

static gpointer preemptor_main(gpointer opaque)
{
    Preemptor *p = opaque;
    struct sched_param sp = { .sched_priority = 2 };

    pin_self(0);
    prctl(PR_SET_TIMERSLACK, 1UL);  /* sleeps of 20 us, not 70 */
    p->error = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
    __atomic_store_n(&p->ready, true, __ATOMIC_RELEASE);
    while (!p->error && !__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
        gint64 until = g_get_monotonic_time() + 100;

        while (g_get_monotonic_time() < until) {
        }
        g_usleep(20);
    }
    return NULL;
}

static void start_helping_fault_on_cpu1(TickCtx *t)
{
    cpu_set_t one;

    CPU_ZERO(&one);
    CPU_SET(1, &one);
    g_assert_true(write_tracking_fault_thread_cpus(t->bs->wt, &one));
    start_helping(t);
}

static void test_huge_fault_taken_back(void)
{
    uint64_t taken_back = 0;
    Preemptor p = { 0 };

    if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
        g_test_skip("needs two CPUs");
        return;
    }
    p.thread = g_thread_new("preemptor", preemptor_main, &p);
    while (!__atomic_load_n(&p.ready, __ATOMIC_ACQUIRE)) {
        g_usleep(100);
    }
    if (p.error) {
        g_thread_join(p.thread);
        g_autofree char *why = g_strdup_printf("no real-time priority here: %s",
                                               g_strerror(p.error));
        g_test_skip(why);
        return;
    }
    bool ran = true;
    for (int i = 0; i < 5 && ran && !taken_back; i++) {
        SnapshotResult res;
        Helper h = { .pinned = true };
        TickCtx t = { .before_pause = start_helping_fault_on_cpu1, .after_save = stop_helping,
                      .opaque = &h };

        ran = huge_snapshot(128 * MIB, &t, "THP-backed RAM, a preempted helper", &res);
        if (ran) {
            taken_back = res.stats.fault_pieces_taken_back;
            result_clear(&res);
        }
    }
    __atomic_store_n(&p.stop, true, __ATOMIC_RELEASE);
    g_thread_join(p.thread);
    if (ran) {
        g_assert_cmpuint(taken_back, >, 0);
    }
}

/*
 * A pool of 64 pages cannot take a huge page: faults are served small, which
 * splits huge mappings, and each split one is collapsed again once saved.
 */
static void test_huge_restored(void)
{
    SnapshotResult res;

    if (huge_snapshot(64 * PAGE, NULL, "snapshot of THP-backed RAM, 256 KiB pool", &res)) {
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
    snapshot_checked(g, 8 * MIB, NULL, &res, "snapshot while the guest populates new memory");
    g_assert_cmpuint(__atomic_load_n(&g->grown_pages, __ATOMIC_RELAXED), >, grown_before);
    result_clear(&res);
    guest_free(g);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/background-snapshot/huge/kept-whole", test_huge_kept);
    g_test_add_func("/background-snapshot/huge/split-and-restored", test_huge_restored);
    g_test_add_func("/background-snapshot/huge/fault-copy-shared", test_huge_fault_shared);
    g_test_add_func("/background-snapshot/huge/fault-copy-taken-back", test_huge_fault_taken_back);
    g_test_add_func("/background-snapshot/engine/grows-during-prearm", test_grows_during_prearm);
    return g_test_run();
}
