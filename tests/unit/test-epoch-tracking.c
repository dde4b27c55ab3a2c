/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests of epoch tracking: no write is missed, least of all one racing with the epoch change. */
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <glib.h>

#include "migration/epoch-tracking.h"
#include "system/machine.h"
#include "system/memory-backend.h"
#include "util/bitmap.h"

#define PAGE 4096u
#define BLOCK_SIZE (64u << 20)
#define PAGES (BLOCK_SIZE / PAGE)
#define WRITERS 2

/*
 * Host threads stand in for vCPUs, as the test accelerator's do: they write
 * pages without pause, park only at a checkpoint between two writes, and
 * note every page they have written since the last instant. An instant
 * happens with all of them parked, exactly as a snapshot's pause; writes
 * still blocked in a fault when the pause is asked for must complete (and
 * be recorded) before their writer can park.
 */
typedef struct Guest {
    RamBlock rb;
    GPtrArray *blocks;
    GThread *threads[WRITERS];
    GMutex lock;
    GCond cond;
    bool pause;                 /* atomic reads */
    bool quit;                  /* atomic reads */
    unsigned parked;
    unsigned long *truth[WRITERS];  /* pages each writer wrote since the chain's first image */
    uint64_t writes;            /* atomic */
} Guest;

typedef struct Writer {
    Guest *g;
    unsigned index;
} Writer;

static bool writer_checkpoint(Guest *g)
{
    bool run;

    if (!__atomic_load_n(&g->pause, __ATOMIC_ACQUIRE)) {
        return !__atomic_load_n(&g->quit, __ATOMIC_ACQUIRE);
    }
    g_mutex_lock(&g->lock);
    g->parked++;
    g_cond_broadcast(&g->cond);
    while (g->pause && !g->quit) {
        g_cond_wait(&g->cond, &g->lock);
    }
    g->parked--;
    run = !g->quit;
    g_mutex_unlock(&g->lock);
    return run;
}

static gpointer writer_main(gpointer opaque)
{
    Writer *w = opaque;
    Guest *g = w->g;
    GRand *rand = g_rand_new_with_seed(0x5eed + w->index);
    uint64_t seq = 0;

    while (writer_checkpoint(g)) {
        /* Sequential runs (the release-ahead path) and scattered pages, both. */
        uint64_t page = g_rand_int_range(rand, 0, PAGES);
        uint64_t run = g_rand_boolean(rand) ? g_rand_int_range(rand, 1, 96) : 1;

        for (uint64_t i = 0; i < run && page + i < PAGES; i++) {
            volatile uint64_t *p = (volatile uint64_t *)(g->rb.host + (page + i) * PAGE);

            p[w->index] = ++seq;
            bitmap_set_bit(g->truth[w->index], page + i);
            __atomic_fetch_add(&g->writes, 1, __ATOMIC_RELAXED);
            if (!writer_checkpoint(g)) {
                goto out;
            }
        }
    }
out:
    g_rand_free(rand);
    return NULL;
}

static void guest_pause(Guest *g)
{
    g_mutex_lock(&g->lock);
    __atomic_store_n(&g->pause, true, __ATOMIC_RELEASE);
    while (g->parked < WRITERS) {
        g_cond_wait(&g->cond, &g->lock);
    }
    g_mutex_unlock(&g->lock);
}

static void guest_resume(Guest *g)
{
    g_mutex_lock(&g->lock);
    __atomic_store_n(&g->pause, false, __ATOMIC_RELEASE);
    g_cond_broadcast(&g->cond);
    g_mutex_unlock(&g->lock);
}

static Guest *guest_new(void)
{
    Guest *g = g_new0(Guest, 1);

    g->rb.name = (char *)"pc.ram";
    g->rb.size = BLOCK_SIZE;
    g->rb.page_size = PAGE;
    g->rb.host = mmap(NULL, BLOCK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                      -1, 0);
    g_assert(g->rb.host != MAP_FAILED);
    g->blocks = g_ptr_array_new();
    g_ptr_array_add(g->blocks, &g->rb);
    g_mutex_init(&g->lock);
    g_cond_init(&g->cond);
    for (unsigned i = 0; i < WRITERS; i++) {
        g->truth[i] = bitmap_new(PAGES);
    }
    return g;
}

static void guest_start(Guest *g, Writer *w)
{
    /* Writers start parked, as vCPUs do. */
    __atomic_store_n(&g->pause, true, __ATOMIC_RELEASE);
    for (unsigned i = 0; i < WRITERS; i++) {
        w[i] = (Writer){ .g = g, .index = i };
        g->threads[i] = g_thread_new("writer", writer_main, &w[i]);
    }
    guest_pause(g);
}

static void guest_free(Guest *g)
{
    g_mutex_lock(&g->lock);
    __atomic_store_n(&g->quit, true, __ATOMIC_RELEASE);
    g_cond_broadcast(&g->cond);
    g_mutex_unlock(&g->lock);
    for (unsigned i = 0; i < WRITERS; i++) {
        if (g->threads[i]) {
            g_thread_join(g->threads[i]);
        }
        bitmap_free(g->truth[i]);
    }
    munmap(g->rb.host, BLOCK_SIZE);
    g_ptr_array_unref(g->blocks);
    g_mutex_clear(&g->lock);
    g_cond_clear(&g->cond);
    g_free(g);
}

/* The chain image the test compares against (a fake identity: no file). */
static void add_image(EpochTracking *et, uint8_t uuid[IMAGE_UUID_SIZE])
{
    ImageIdentity id = { .has_uuid = true };

    image_uuid_generate(uuid);
    memcpy(id.uuid, uuid, IMAGE_UUID_SIZE);
    epoch_tracking_add_image(et, &id, NULL, NULL);
}

/* The first instant starts tracking (everything protected); the image @uuid begins there. */
static void tracking_start(EpochTracking *et, uint8_t uuid[IMAGE_UUID_SIZE])
{
    g_autoptr(GError) err = NULL;

    g_assert_true(epoch_tracking_prearm(et, &err));
    g_assert_true(epoch_tracking_instant(et, NULL, NULL, &err));
    g_assert_no_error(err);
    add_image(et, uuid);
}

/*
 * Many instants while writers hammer memory: after each, the pages recorded
 * since the chain image's instant include every page a writer wrote since,
 * and may exceed them (runs released ahead of a sequential writer).
 */
static void test_no_write_missed(void)
{
    g_autoptr(GError) err = NULL;
    Guest *g = guest_new();
    Writer w[WRITERS];
    uint8_t uuid[IMAGE_UUID_SIZE];
    g_autofree unsigned long *recorded = bitmap_new(PAGES);
    EpochTracking *et;
    unsigned rounds = 60;     /* the chain keeps 64 images: the first stays */

    guest_start(g, w);
    et = epoch_tracking_new(g->blocks, &err);
    g_assert_no_error(err);

    tracking_start(et, uuid);
    guest_resume(g);

    /*
     * Each round checks the epoch that just ended exactly (an image taken at
     * its start, so its record is that epoch alone) and the first image's
     * record, which spans them all.
     */
    uint8_t epoch_uuid[IMAGE_UUID_SIZE];
    g_autofree unsigned long *epoch_truth = bitmap_new(PAGES);
    memcpy(epoch_uuid, uuid, IMAGE_UUID_SIZE);
    for (unsigned r = 0; r < rounds; r++) {
        uint64_t missed = 0, missed_epoch = 0, recorded_pages, written_pages = 0;

        g_usleep(g_random_int_range(200, 4000));
        if (r % 2) {
            /* As a snapshot does: protect again while the writers run, then pause. */
            g_assert_true(epoch_tracking_prearm(et, &err));
            g_usleep(g_random_int_range(0, 1000));
        }
        guest_pause(g);
        g_assert_true(epoch_tracking_instant(et, NULL, NULL, &err));
        g_assert_no_error(err);
        g_assert_true(epoch_tracking_copy_since(et, uuid, 0, recorded));
        for (uint64_t p = 0; p < PAGES; p++) {
            bool written = false;
            for (unsigned i = 0; i < WRITERS; i++) {
                written |= bitmap_test_bit(g->truth[i], p);
            }
            written_pages += written;
            missed += written && !bitmap_test_bit(recorded, p);
        }
        recorded_pages = bitmap_count_set(recorded, PAGES);
        g_assert_true(epoch_tracking_copy_since(et, epoch_uuid, 0, recorded));
        for (uint64_t p = 0; p < PAGES; p++) {
            bool written = false;
            for (unsigned i = 0; i < WRITERS; i++) {
                written |= bitmap_test_bit(g->truth[i], p) && !bitmap_test_bit(epoch_truth, p);
            }
            missed_epoch += written && !bitmap_test_bit(recorded, p);
        }
        if (missed || missed_epoch) {
            g_error("round %u: %" G_GUINT64_FORMAT " pages written in the epoch and %"
                    G_GUINT64_FORMAT " since the first image were not recorded (%"
                    G_GUINT64_FORMAT " written, %" G_GUINT64_FORMAT " recorded)",
                    r, missed_epoch, missed, written_pages, recorded_pages);
        }
        g_assert_cmpuint(recorded_pages, >=, written_pages);
        if (r == rounds / 2) {
            g_test_message("round %u: %" G_GUINT64_FORMAT " pages written, %" G_GUINT64_FORMAT
                           " recorded, %" G_GUINT64_FORMAT " writes", r, written_pages,
                           recorded_pages, __atomic_load_n(&g->writes, __ATOMIC_RELAXED));
        }
        /* The next epoch's own image; what was written before it is "old". */
        add_image(et, epoch_uuid);
        bitmap_clear_range(epoch_truth, 0, PAGES);
        for (uint64_t p = 0; p < PAGES; p++) {
            for (unsigned i = 0; i < WRITERS; i++) {
                if (bitmap_test_bit(g->truth[i], p)) {
                    bitmap_set_bit(epoch_truth, p);
                }
            }
        }
        guest_resume(g);
    }

    /* A second image taken now sees only what follows it. */
    guest_pause(g);
    g_assert_true(epoch_tracking_instant(et, NULL, NULL, &err));
    uint8_t uuid2[IMAGE_UUID_SIZE];
    add_image(et, uuid2);
    for (unsigned i = 0; i < WRITERS; i++) {
        bitmap_clear_range(g->truth[i], 0, PAGES);
    }
    guest_resume(g);
    g_usleep(3000);
    guest_pause(g);
    g_assert_true(epoch_tracking_instant(et, NULL, NULL, &err));
    g_assert_true(epoch_tracking_copy_since(et, uuid2, 0, recorded));
    for (uint64_t p = 0; p < PAGES; p++) {
        for (unsigned i = 0; i < WRITERS; i++) {
            if (bitmap_test_bit(g->truth[i], p)) {
                g_assert_true(bitmap_test_bit(recorded, p));
            }
        }
    }
    guest_resume(g);

    /* Freeing tracking releases everything: the writers go on (no deadline but a generous one). */
    epoch_tracking_free(et);
    uint64_t before = __atomic_load_n(&g->writes, __ATOMIC_RELAXED);
    gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
    while (__atomic_load_n(&g->writes, __ATOMIC_RELAXED) < before + 1000) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(1000);
    }
    guest_free(g);
}

/* An image that never joined the chain is not a base; nothing is recorded before tracking starts. */
static void test_unknown_image(void)
{
    g_autoptr(GError) err = NULL;
    Guest *g = guest_new();
    g_autofree unsigned long *recorded = bitmap_new(PAGES);
    uint8_t uuid[IMAGE_UUID_SIZE];
    EpochTracking *et = epoch_tracking_new(g->blocks, &err);

    g_assert_no_error(err);
    image_uuid_generate(uuid);
    g_assert_false(epoch_tracking_copy_since(et, uuid, 0, recorded));
    EpochTrackingStats st;
    epoch_tracking_get_stats(et, &st);
    g_assert_false(st.started);
    g_assert_cmpuint(st.images, ==, 0);
    epoch_tracking_free(et);
    guest_free(g);
}

/*
 * Pages marked written (a lazy restore found them changed by content) count
 * since the chain image like pages the guest wrote: exactly those, nothing else.
 */
static void test_marked_written(void)
{
    g_autoptr(GError) err = NULL;
    Guest *g = guest_new();
    g_autofree unsigned long *recorded = bitmap_new(PAGES);
    uint8_t uuid[IMAGE_UUID_SIZE];
    EpochTracking *et = epoch_tracking_new(g->blocks, &err);

    g_assert_no_error(err);
    g_assert_true(epoch_tracking_instant(et, NULL, NULL, &err));
    add_image(et, uuid);
    epoch_tracking_mark_written(et, 0, 5, 4);
    epoch_tracking_mark_written(et, 0, PAGES - 1, 8);    /* clipped at the block's end */
    g_assert_cmpuint(epoch_tracking_pages_since_count(et, uuid), ==, 5);
    /* Seen in the current epoch already (an increment's prearm asks before its instant)... */
    g_assert_true(epoch_tracking_copy_since(et, uuid, 0, recorded));
    g_assert_cmpuint(bitmap_count_set(recorded, PAGES), ==, 5);
    g_assert_true(bitmap_test_bit(recorded, 5) && bitmap_test_bit(recorded, PAGES - 1));
    /* ...and folded into the image's record at the next instant. */
    g_assert_true(epoch_tracking_instant(et, NULL, NULL, &err));
    g_assert_no_error(err);
    g_assert_true(epoch_tracking_copy_since(et, uuid, 0, recorded));
    g_assert_cmpuint(bitmap_count_set(recorded, PAGES), ==, 5);
    for (uint64_t p = 5; p < 9; p++) {
        g_assert_true(bitmap_test_bit(recorded, p));
    }
    g_assert_true(bitmap_test_bit(recorded, PAGES - 1));
    epoch_tracking_free(et);
    guest_free(g);
}

/*
 * A writer of a few pages in a row costs the next increment at most as many
 * pages again: a run released ahead is as long as what was written in a row
 * before it (1, 1, 2, 4... pages), and from 256 on ends at a 2 MiB boundary.
 */
static void test_runs_bounded(gconstpointer data)
{
    static const uint64_t bursts[] = { 1, 2, 3, 5, 17, 64, 100, 256, 300, 700 };
    bool small_pages = GPOINTER_TO_INT(data);
    g_autoptr(GError) err = NULL;
    Guest *g = guest_new();
    g_autofree unsigned long *recorded = bitmap_new(PAGES);
    uint8_t uuid[IMAGE_UUID_SIZE];
    EpochTracking *et;

    /*
     * 4 KiB mappings: long runs are released in pieces there. Huge pages
     * where the host gives them (THP "always" or "madvise"): a whole run on
     * one still mapped huge goes in one call.
     */
    g_assert_cmpint(madvise(g->rb.host, BLOCK_SIZE, small_pages ? MADV_NOHUGEPAGE : MADV_HUGEPAGE),
                    ==, 0);
    et = epoch_tracking_new(g->blocks, &err);

    g_assert_no_error(err);
    tracking_start(et, uuid);
    /* This thread writes: the fault thread serves it, as it serves a vCPU. */
    for (unsigned i = 0; i < G_N_ELEMENTS(bursts); i++) {
        uint64_t first = (uint64_t)i * 1536 + 7;

        for (uint64_t p = first; p < first + bursts[i]; p++) {
            ((volatile uint8_t *)g->rb.host)[p * PAGE] = 1;
        }
    }
    g_assert_true(epoch_tracking_instant(et, NULL, NULL, &err));
    g_assert_no_error(err);
    g_assert_true(epoch_tracking_copy_since(et, uuid, 0, recorded));

    uint64_t expected_total = 0;
    for (unsigned i = 0; i < G_N_ELEMENTS(bursts); i++) {
        uint64_t first = (uint64_t)i * 1536 + 7, k = bursts[i], want;

        if (k <= 256) {
            for (want = 1; want < k; want *= 2) {
            }
        } else {
            /* Past 256 written in a row: whole 2 MiB regions, ending at a boundary. */
            uint64_t end = (first + k + 511) / 512 * 512;
            want = end - first;
            g_assert_cmpuint(want - k, <, 512);
        }
        g_assert_cmpuint(bitmap_find_next_zero(recorded, PAGES, first), ==, first + want);
        g_assert_true(first == 0 || !bitmap_test_bit(recorded, first - 1));
        expected_total += want;
    }
    g_assert_cmpuint(bitmap_count_set(recorded, PAGES), ==, expected_total);
    epoch_tracking_free(et);
    guest_free(g);
}

/* Page faults this thread took writing pages [@first, @end) of @host. */
static long faults_writing(uint8_t *host, uint64_t first, uint64_t end)
{
    struct rusage before, after;

    getrusage(RUSAGE_THREAD, &before);
    for (uint64_t p = first; p < end; p++) {
        ((volatile uint8_t *)host)[p * PAGE] = 2;
    }
    getrusage(RUSAGE_THREAD, &after);
    return after.ru_minflt - before.ru_minflt;
}

/*
 * Shared memory stays registered under tracking, and the kernel keeps a
 * released page read-only: a release populates its pages for writing, so
 * the pages of a run released ahead take no fault at all when written.
 */
static void test_shared_release_populates(void)
{
    g_autoptr(GError) err = NULL;
    MemoryBackendOptions *opts = memory_backend_options_new(MEMORY_BACKEND_MEMFD);
    uint8_t uuid[IMAGE_UUID_SIZE];
    RamBlock rb = { .name = (char *)"pc.ram", .size = 8u << 20, .page_size = PAGE };

    opts->size = rb.size;
    MemoryBackend *be = memory_backend_new(opts, &err);
    memory_backend_options_free(opts);
    g_assert_no_error(err);
    rb.backend = be;
    rb.host = be->host;
    memset(rb.host, 1, rb.size);

    g_autoptr(GPtrArray) blocks = g_ptr_array_new();
    g_ptr_array_add(blocks, &rb);
    EpochTracking *et = epoch_tracking_new(blocks, &err);
    if (!et) {
        g_test_skip(err->message);      /* no write-protect on shmem here */
        memory_backend_free(be);
        return;
    }
    tracking_start(et, uuid);
    /* 128 pages in a row, then one more: its fault releases the next 128 too. */
    faults_writing(rb.host, 0, 129);
    g_usleep(20 * 1000);                /* the fault thread populates after waking us */
    g_assert_cmpint(faults_writing(rb.host, 129, 256), ==, 0);
    /* Beyond the run: still protected, still recorded. */
    faults_writing(rb.host, 256, 257);
    g_assert_cmpuint(epoch_tracking_pages_since_count(et, uuid), >=, 257);
    epoch_tracking_free(et);
    /* Tracking gone: every write lands (each page not released faults once in the kernel). */
    faults_writing(rb.host, 257, rb.size / PAGE);
    g_assert_cmpuint(rb.host[(rb.size / PAGE - 1) * PAGE], ==, 2);
    memory_backend_free(be);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/epoch-tracking/no-write-missed", test_no_write_missed);
    g_test_add_func("/epoch-tracking/unknown-image", test_unknown_image);
    g_test_add_func("/epoch-tracking/marked-written", test_marked_written);
    g_test_add_data_func("/epoch-tracking/runs-bounded/huge-pages", GINT_TO_POINTER(0),
                         test_runs_bounded);
    g_test_add_data_func("/epoch-tracking/runs-bounded/small-pages", GINT_TO_POINTER(1),
                         test_runs_bounded);
    g_test_add_func("/epoch-tracking/shared/release-populates", test_shared_release_populates);
    return g_test_run();
}
