/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Saving claimed pages (zero test, copy into pool slots, records) and releasing their protection. */
#include "migration/snapshot/snapshot-internal.h"

#include <string.h>

#include "migration/snapshot/snapshot-trace.h"
#include "system/machine.h"
#include "util/bitmap.h"
#include "util/zero-page.h"

SnapshotRecord *snapshot_record_new(unsigned block_index, uint64_t first_page, uint32_t npages,
                                    bool zero, const uint32_t *slots)
{
    SnapshotRecord *rec = g_malloc(sizeof(*rec) + (zero ? 0 : npages * sizeof(uint32_t)));

    rec->block_index = block_index;
    rec->offset = first_page * SNAPSHOT_PAGE_SIZE;
    rec->npages = npages;
    rec->zero = zero;
    if (!zero) {
        memcpy(rec->slots, slots, npages * sizeof(uint32_t));
    }
    return rec;
}

void snapshot_mark_saved(BackgroundSnapshot *bs, SnapshotBlock *sb, uint64_t first, uint64_t n)
{
    /* Release order: whoever sees the bit also sees the copy complete. */
    bitmap_set_range_atomic(sb->saved, first, n);
    __atomic_fetch_add(&bs->fig.saved_pages, n, __ATOMIC_RELAXED);
}

/* A run of pages of one kind (zero or data) being collected into a record. */
typedef struct PageRun {
    uint64_t first;     /* page index in the block */
    uint32_t npages;
    bool zero;
    uint32_t slot_start;  /* index into the caller's slot array */
} PageRun;

static void flush_run(BackgroundSnapshot *bs, unsigned block_index, PageRun *run,
                      const uint32_t *slots)
{
    if (!run->npages) {
        return;
    }
    snapshot_mark_saved(bs, &bs->blocks[block_index], run->first, run->npages);
    snapshot_writer_push(&bs->writer,
                         snapshot_record_new(block_index, run->first, run->npages, run->zero,
                                             run->zero ? NULL : slots + run->slot_start));
    run->npages = 0;
}

uint64_t snapshot_save_claimed(BackgroundSnapshot *bs, unsigned block_index, uint64_t first,
                               uint64_t n, const unsigned long *claimed, uint32_t *slots,
                               uint32_t nslots, const unsigned long *unpopulated)
{
    SnapshotBlock *sb = &bs->blocks[block_index];
    PageRun run = { 0 };
    uint32_t used = 0;
    uint64_t saved = 0;

    for (uint64_t i = 0; i < n; i++) {
        if (!bitmap_test_bit(claimed, i)) {
            flush_run(bs, block_index, &run, slots);
            continue;
        }
        const uint8_t *src = sb->rb->host + (first + i) * SNAPSHOT_PAGE_SIZE;
        /* Unpopulated pages are not read: reading would populate them. */
        bool zero = (unpopulated && bitmap_test_bit(unpopulated, i)) ||
                    buffer_is_zero(src, SNAPSHOT_PAGE_SIZE);

        if (run.npages && run.zero != zero) {
            flush_run(bs, block_index, &run, slots);
        }
        if (!run.npages) {
            run.first = first + i;
            run.zero = zero;
            run.slot_start = used;
        }
        if (!zero) {
            g_assert(used < nslots);
            memcpy(page_pool_page(bs->pool, slots[used]), src, SNAPSHOT_PAGE_SIZE);
            used++;
        }
        run.npages++;
        saved++;
    }
    flush_run(bs, block_index, &run, slots);
    page_pool_put(bs->pool, slots + used, nslots - used);
    return saved;
}

/* Unprotect one range; a failure leaves the guest blocked there, so abort the snapshot. */
static void unprotect_range(BackgroundSnapshot *bs, unsigned block_index, uint64_t first,
                            uint64_t n, bool by_fault)
{
    int ret = write_tracking_unprotect(bs->wt, block_index, first * SNAPSHOT_PAGE_SIZE,
                                       n * SNAPSHOT_PAGE_SIZE);
    if (ret < 0) {
        if (!__atomic_exchange_n(&bs->aborting, true, __ATOMIC_ACQ_REL)) {
            g_warning("background-snapshot: unprotecting %" G_GUINT64_FORMAT " pages of RAM "
                      "block '%s' failed: %s; stopping the snapshot",
                      n, bs->blocks[block_index].rb->name, g_strerror(-ret));
        }
        return;
    }
    trace_snapshot_page_unprotected(block_index, first * SNAPSHOT_PAGE_SIZE,
                                    n * SNAPSHOT_PAGE_SIZE, by_fault);
}

void snapshot_unprotect_saved(BackgroundSnapshot *bs, unsigned block_index, uint64_t first,
                              uint64_t n, bool by_fault)
{
    SnapshotBlock *sb = &bs->blocks[block_index];
    uint64_t g = sb->group_pages;

    /*
     * The scan and a fault can finish the pages of one range at the same
     * time; each marks its pages saved and then looks at the others'. A full
     * fence between the two makes sure at least one of them sees all saved.
     */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (bitmap_range_is_set_atomic(sb->saved, first, n)) {
        unprotect_range(bs, block_index, first, n, by_fault);
        return;
    }
    /*
     * Some pages are still being copied by the other thread: it releases
     * those. Protection changes in whole backing pages (hugetlbfs), so only
     * groups that are saved entirely are released here.
     */
    uint64_t end = first + n;
    uint64_t i = first;
    while (i < end) {
        while (i < end && !bitmap_range_is_set_atomic(sb->saved, i, MIN(g, end - i))) {
            i += g;
        }
        uint64_t start = i;
        while (i < end && bitmap_range_is_set_atomic(sb->saved, i, MIN(g, end - i))) {
            i += g;
        }
        if (i > start) {
            unprotect_range(bs, block_index, start, MIN(i, end) - start, by_fault);
        }
    }
}
