/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The background snapshot engine's test guest: RAM, writer threads, the pause, and the image check. */
#include "snapshot-test-guest.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "migration/savevm.h"
#include "migration/snapshot/snapshot-internal.h"
#include "migration/write-tracking.h"
#include "util/bitmap.h"
#include "util/error.h"
#include "util/le-bytes.h"
#include "util/pagemap.h"

typedef struct WriterArg {
    TestGuest *g;
    unsigned index;
} WriterArg;

static WriterArg writer_args[NR_WRITERS + 1];

/* Park here while a pause is requested; false when told to quit. */
static bool writer_checkpoint(TestGuest *g)
{
    if (!__atomic_load_n(&g->pause_requested, __ATOMIC_ACQUIRE)) {
        return true;
    }
    g_mutex_lock(&g->lock);
    g->parked++;
    g_cond_broadcast(&g->cond);
    while (g->pause_requested && !g->quit) {
        g_cond_wait(&g->cond, &g->lock);
    }
    g->parked--;
    bool go_on = !g->quit;
    g_mutex_unlock(&g->lock);
    return go_on;
}

/*
 * Like the test payload: each writer owns every NR_WRITERS-th page of the hot
 * part and stamps a running counter into it, at a moving position, so every
 * pass changes every page it owns.
 */
static gpointer writer_main(gpointer opaque)
{
    WriterArg *a = opaque;
    TestGuest *g = a->g;
    uint8_t *hot = g->rb[0].host;
    uint64_t counter = 1;

    for (;;) {
        for (uint64_t p = a->index; p < HOT_SIZE / PAGE; p += NR_WRITERS) {
            if (!writer_checkpoint(g)) {
                return NULL;
            }
            uint64_t *word = (uint64_t *)(hot + p * PAGE) + counter % (PAGE / 8);
            *word = counter++;
            __atomic_fetch_add(&g->steps, 1, __ATOMIC_RELAXED);
        }
        if (__atomic_load_n(&g->quit, __ATOMIC_ACQUIRE)) {
            return NULL;
        }
    }
}

void guest_pause(TestGuest *g)
{
    g_mutex_lock(&g->lock);
    __atomic_store_n(&g->pause_requested, true, __ATOMIC_RELEASE);
    while (g->parked < g->nr_writers) {
        g_cond_wait(&g->cond, &g->lock);
    }
    g_mutex_unlock(&g->lock);
}

void guest_resume(TestGuest *g)
{
    g_mutex_lock(&g->lock);
    __atomic_store_n(&g->pause_requested, false, __ATOMIC_RELEASE);
    g_cond_broadcast(&g->cond);
    g_mutex_unlock(&g->lock);
}

/* Anonymous RAM for block @i; with @thp 2 MiB aligned and advised huge. */
static void map_ram(TestGuest *g, int i, bool thp)
{
    uint64_t size = g->rb[i].size;
    uint64_t len = thp ? size + 2 * MIB : size;
    uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    g_assert(p != MAP_FAILED);
    g->raw[i] = p;
    g->raw_len[i] = len;
    if (thp) {
        p = (uint8_t *)(((uintptr_t)p + 2 * MIB - 1) & ~(uintptr_t)(2 * MIB - 1));
        g_assert_cmpint(madvise(p, size, MADV_HUGEPAGE), ==, 0);
    } else {
        madvise(p, size, MADV_NOHUGEPAGE);
    }
    g->rb[i].host = p;
}

/*
 * Fills block 1's second half a page at a time (one every GROW_PAGE_US), and
 * keeps rewriting every page it filled: pages that get data while a snapshot
 * starts, and change after its pause.
 */
#define GROW_PAGE_US 20

static gpointer grower_main(gpointer opaque)
{
    WriterArg *a = opaque;
    TestGuest *g = a->g;
    uint8_t *area = g->rb[1].host + BLOCK1_SIZE / 2;
    uint64_t area_pages = BLOCK1_SIZE / 2 / PAGE;
    uint64_t counter = 1, filled = 0;
    gint64 next = g_get_monotonic_time();

    for (;;) {
        for (uint64_t p = 0; p <= filled && p < area_pages; p++) {
            if (!writer_checkpoint(g)) {
                return NULL;
            }
            *(uint64_t *)(area + p * PAGE + (counter % (PAGE / 8)) * 8) = counter;
            counter++;
            if (filled < area_pages && g_get_monotonic_time() >= next) {
                filled++;
                __atomic_store_n(&g->grown_pages, filled, __ATOMIC_RELAXED);
                next += GROW_PAGE_US;
            }
        }
        if (__atomic_load_n(&g->quit, __ATOMIC_ACQUIRE)) {
            return NULL;
        }
    }
}

TestGuest *guest_new_with(const TestGuestOptions *opts)
{
    TestGuest *g = g_new0(TestGuest, 1);
    static char *names[2] = { "pc.ram", "extra.ram" };
    uint64_t sizes[2] = { BLOCK0_SIZE, BLOCK1_SIZE };

    g->blocks = g_ptr_array_new();
    for (int i = 0; i < 2; i++) {
        g->rb[i] = (RamBlock){ .name = names[i], .size = sizes[i], .page_size = PAGE };
        if (opts->backend) {
            g_autoptr(GError) err = NULL;
            g_autoptr(MemoryBackendOptions) o = memory_backend_options_new(opts->backend->kind);
            o->size = sizes[i];
            o->share = opts->backend->share;
            o->hugetlb = opts->backend->hugetlb;
            g->backend[i] = memory_backend_new(o, &err);
            g_assert_no_error(err);
            g->rb[i].backend = g->backend[i];
            g->rb[i].host = g->backend[i]->host;
            g->rb[i].page_size = g->backend[i]->page_size;
        } else {
            map_ram(g, i, opts->thp);
        }
        g_ptr_array_add(g->blocks, &g->rb[i]);
    }
    /* Cold data, and a recognisable pattern in the second block. */
    for (uint64_t off = 0; off < COLD_SIZE; off += 8) {
        *(uint64_t *)(g->rb[0].host + HOT_SIZE + off) = off * 0x9e3779b97f4a7c15ULL;
    }
    memset(g->rb[1].host, 0xc3, BLOCK1_SIZE / 2);
    g_mutex_init(&g->lock);
    g_cond_init(&g->cond);
    g->nr_writers = opts->writers ? NR_WRITERS : 0;
    for (unsigned i = 0; i < g->nr_writers; i++) {
        writer_args[i] = (WriterArg){ .g = g, .index = i };
        g->writers[i] = g_thread_new("guest-writer", writer_main, &writer_args[i]);
    }
    if (opts->grower) {
        g->grower = true;
        writer_args[g->nr_writers] = (WriterArg){ .g = g, .index = g->nr_writers };
        g->writers[g->nr_writers] = g_thread_new("guest-grower", grower_main,
                                                 &writer_args[g->nr_writers]);
        g->nr_writers++;
    }
    return g;
}

TestGuest *guest_new_backed(bool start_writers, const MemoryBackendOptions *opts)
{
    TestGuestOptions o = { .writers = start_writers, .backend = opts };
    return guest_new_with(&o);
}

TestGuest *guest_new(bool start_writers)
{
    return guest_new_backed(start_writers, NULL);
}

void guest_free(TestGuest *g)
{
    g_mutex_lock(&g->lock);
    __atomic_store_n(&g->quit, true, __ATOMIC_RELEASE);
    g_cond_broadcast(&g->cond);
    g_mutex_unlock(&g->lock);
    for (unsigned i = 0; i < G_N_ELEMENTS(g->writers); i++) {
        if (g->writers[i]) {
            g_thread_join(g->writers[i]);
        }
    }
    for (int i = 0; i < 2; i++) {
        if (g->backend[i]) {
            memory_backend_free(g->backend[i]);
        } else {
            munmap(g->raw[i], g->raw_len[i]);
        }
    }
    g_ptr_array_unref(g->blocks);
    g_free(g);
}

bool wp_available(void)
{
    g_autoptr(GPtrArray) none = g_ptr_array_new();
    g_autoptr(GError) err = NULL;

    if (!write_tracking_check(none, NULL, &err)) {
        g_test_skip(err->message);
        return false;
    }
    return true;
}

uint64_t populated_pages(const uint8_t *start, uint64_t len)
{
    int fd = pagemap_open();
    PagemapMaps maps = { .populated = bitmap_new(len / PAGE) };
    uint64_t n;

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pagemap_walk(fd, start, len, &maps, false, NULL), ==, 0);
    n = bitmap_count_set(maps.populated, len / PAGE);
    bitmap_free(maps.populated);
    close(fd);
    return n;
}

int64_t huge_regions(const uint8_t *start, uint64_t len)
{
    int fd = pagemap_open();
    PagemapMaps maps = { .huge = bitmap_new(len / (2 * MIB)) };
    PagemapWalkInfo info;
    int64_t n = -1;

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pagemap_walk(fd, start, len, &maps, false, &info), ==, 0);
    if (info.huge_known) {
        n = (int64_t)bitmap_count_set(maps.huge, len / (2 * MIB));
    }
    bitmap_free(maps.huge);
    close(fd);
    return n;
}

bool tick(void *opaque)
{
    TickCtx *t = opaque;
    t->ticks++;
    if (t->on_tick) {
        t->on_tick(t);
    }
    return !t->cancel_after || t->ticks < t->cancel_after;
}

void run_snapshot(TestGuest *g, StreamFile *f, uint64_t pool_bytes, TickCtx *t,
                  SnapshotResult *res)
{
    memset(res, 0, sizeof(*res));
    BackgroundSnapshot *bs = snapshot_engine_new(g->blocks, pool_bytes, f, NULL, &res->error);
    g_assert_no_error(res->error);

    /* Protect while the writers run, and let them write for a while before the pause. */
    g_assert_true(snapshot_engine_prearm(bs, &res->error));
    if (t) {
        t->bs = bs;
    }
    if (t && t->before_pause) {
        t->before_pause(t);
    }
    g_usleep(5000);

    uint64_t t0 = write_tracking_now_ns();
    guest_pause(g);
    /*
     * Copy what the guest wrote; the rest was never touched and reading it
     * would populate it (then the snapshot could not skip it).
     */
    uint64_t touched[2] = { HOT_SIZE + COLD_SIZE, BLOCK1_SIZE / 2 };
    if (g->all_touched) {
        touched[0] = BLOCK0_SIZE;
        touched[1] = BLOCK1_SIZE;
    }
    if (g->grower) {
        /* What the grower filled; the rest of its area reads as zero, untouched. */
        uint64_t grown = __atomic_load_n(&g->grown_pages, __ATOMIC_RELAXED) + 1;
        touched[1] = BLOCK1_SIZE / 2 + MIN(grown, BLOCK1_SIZE / 2 / PAGE) * PAGE;
    }
    for (int i = 0; i < 2; i++) {
        res->at_pause[i] = g_malloc0(g->rb[i].size);
        memcpy(res->at_pause[i], g->rb[i].host, touched[i]);
    }
    snapshot_engine_arm(bs, &res->error);
    g_assert_no_error(res->error);
    guest_resume(g);
    uint64_t downtime = write_tracking_now_ns() - t0;

    res->ok = snapshot_engine_save_ram(bs, tick, t, &res->error) &&
              snapshot_engine_finish(bs, &res->error);
    if (!res->ok) {
        snapshot_engine_abort(bs);
    }
    snapshot_engine_get_stats(bs, &res->stats);
    res->stats.downtime_us = downtime / 1000;
    res->zero_pages = bs->writer.zero_pages;
    res->data_pages = bs->writer.data_pages;
    snapshot_engine_free(bs);
}

void run_snapshot_checked(TestGuest *g, StreamFile *f, uint64_t pool_bytes, TickCtx *t,
                          SnapshotResult *res)
{
    run_snapshot(g, f, pool_bytes, t, res);
    g_assert_no_error(res->error);
    g_assert_true(stream_file_flush(f));
    check_image(g, stream_file_memory_output(f), res);
}

void result_clear(SnapshotResult *res)
{
    g_clear_error(&res->error);
    g_free(res->at_pause[0]);
    g_free(res->at_pause[1]);
}

void check_image(TestGuest *g, const GByteArray *out, const SnapshotResult *res)
{
    uint8_t *image[2];
    unsigned long *seen[2];
    size_t pos = 0;
    uint64_t zero = 0, data = 0;

    for (int i = 0; i < 2; i++) {
        image[i] = g_malloc0(g->rb[i].size);
        seen[i] = bitmap_new(g->rb[i].size / PAGE);
    }
    while (pos < out->len) {
        const uint8_t *h = out->data + pos;
        g_assert_cmpuint(out->len - pos, >=, SAVEVM_RAM_RECORD_HEADER_SIZE);
        g_assert_cmpuint(le_get32(h), ==, SAVEVM_REC_RAM);
        uint32_t flags = le_get32(h + 4);
        uint64_t len = le_get64(h + 8);
        uint32_t block = le_get32(h + 16);
        uint32_t npages = le_get32(h + 20);
        uint64_t offset = le_get64(h + 24);

        g_assert_cmpuint(block, <, 2);
        g_assert_cmpuint(offset + npages * PAGE, <=, g->rb[block].size);
        for (uint64_t p = offset / PAGE; p < offset / PAGE + npages; p++) {
            /* Each page once: the claim bitmap's promise. */
            g_assert_false(bitmap_test_bit(seen[block], p));
            bitmap_set_bit(seen[block], p);
        }
        if (flags == SAVEVM_RAM_DATA) {
            g_assert_cmpuint(len, ==, 16 + npages * PAGE);
            memcpy(image[block] + offset, h + SAVEVM_RAM_RECORD_HEADER_SIZE, npages * PAGE);
            data += npages;
        } else {
            g_assert_cmpuint(flags, ==, SAVEVM_RAM_ZERO);
            g_assert_cmpuint(len, ==, 16);
            zero += npages;
        }
        pos += SAVEVM_RECORD_HEADER_SIZE + len;
    }
    for (int i = 0; i < 2; i++) {
        uint64_t pages = g->rb[i].size / PAGE;
        g_assert_cmpuint(bitmap_count_set(seen[i], pages), ==, pages);
        for (uint64_t p = 0; p < pages; p++) {
            if (memcmp(image[i] + p * PAGE, res->at_pause[i] + p * PAGE, PAGE)) {
                g_error("block %d page %" G_GUINT64_FORMAT " differs from RAM at the pause", i, p);
            }
        }
        g_free(image[i]);
        bitmap_free(seen[i]);
    }
    g_assert_cmpuint(zero, ==, res->zero_pages);
    g_assert_cmpuint(data, ==, res->data_pages);
    /* Zero pages cost a flag: only the hot, cold and patterned pages carry data. */
    if (!g->all_touched && !g->grower) {
        g_assert_cmpuint(data, <=, (HOT_SIZE + COLD_SIZE + BLOCK1_SIZE / 2) / PAGE);
    }
}

void print_stats(const char *what, const SnapshotResult *res, TestGuest *g)
{
    g_autoptr(GString) s = g_string_new(NULL);
    background_snapshot_stats_to_hmp(&res->stats, s);
    g_test_message("%s (guest page writes so far %" G_GUINT64_FORMAT "):\n%s", what,
                   __atomic_load_n(&g->steps, __ATOMIC_RELAXED), s->str);
}
