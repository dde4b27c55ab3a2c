/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The background snapshot's write-fault service: claim, copy into the pool, unprotect, queue. */
#include "migration/snapshot/snapshot-internal.h"

#include "migration/epoch-tracking.h"
#include "migration/snapshot/snapshot-trace.h"
#include "system/machine.h"
#include "util/bitmap.h"

uint32_t snapshot_fault_block_pages(BackgroundSnapshot *bs)
{
    /*
     * Full size while at least half the pool is free, then halve with every
     * halving of the free share: under back-pressure a fault waits for the
     * writer to drain, and a small copy both waits less and drains sooner.
     */
    double free_share = page_pool_free_fraction(bs->pool);
    uint32_t pages = bs->fault_block_max_pages;
    double threshold = 0.5;

    while (pages > 1 && free_share < threshold) {
        pages /= 2;
        threshold /= 2;
    }
    return pages;
}

/* The faulting page is ours: save an aligned block around it, then release it. */
static void fault_save_block(BackgroundSnapshot *bs, unsigned block_index, uint64_t page)
{
    SnapshotBlock *sb = &bs->blocks[block_index];
    unsigned long won[BITMAP_WORDS(SNAPSHOT_FAULT_BLOCK_MAX_PAGES)];
    uint32_t slots[SNAPSHOT_FAULT_BLOCK_MAX_PAGES];
    uint32_t block_pages = MAX(snapshot_fault_block_pages(bs), sb->group_pages);
    uint64_t first = page & ~(uint64_t)(block_pages - 1);
    uint64_t n = MIN((uint64_t)block_pages, sb->pages - first);

    /* Only neighbours nobody has claimed yet: the scan may own some of them. */
    bitmap_claim_range_atomic(sb->claimed, first, n, won);
    bitmap_set_bit(won, page - first);
    uint32_t nwon = (uint32_t)bitmap_count_set(won, n);
    trace_snapshot_page_claimed(block_index, first * SNAPSHOT_PAGE_SIZE, nwon, 1);

    /*
     * The copy must happen before the unprotect: once writable, the guest may
     * overwrite the page before we read it. If the pool is full this waits
     * for the writer (the counted back-pressure case).
     */
    if (!page_pool_take(bs->pool, nwon, PAGE_POOL_USER_FAULT, true, slots)) {
        /* Closed: the snapshot is being abandoned; let the guest go. */
        write_tracking_unprotect(bs->wt, block_index, first * SNAPSHOT_PAGE_SIZE,
                                 n * SNAPSHOT_PAGE_SIZE);
        return;
    }
    uint64_t saved = snapshot_save_claimed(bs, block_index, first, n, won, slots, nwon, NULL);
    __atomic_fetch_add(&bs->fig.pages_out_of_order, saved, __ATOMIC_RELAXED);
    if (bs->epoch) {
        /* Epoch tracking: the written page goes (and saved ones ahead of a sequential writer). */
        epoch_tracking_release_saved(bs->epoch, bs, block_index,
                                     page & ~(uint64_t)(sb->group_pages - 1));
    } else {
        snapshot_unprotect_saved(bs, block_index, first, n, true);
    }
}

/*
 * Another thread claimed pages of the group [@first, @first + @n) (the
 * faulting page's backing page) and is copying them: wait until all are
 * saved. The fault thread saves its own claims before it returns, so the
 * copier is the scan, a word's copy away unless it is preempted.
 */
static void fault_wait_saved(BackgroundSnapshot *bs, SnapshotBlock *sb, uint64_t first,
                             uint64_t n)
{
    unsigned spins = 0;

    while (!bitmap_range_is_set_atomic(sb->saved, first, n)) {
        if (__atomic_load_n(&bs->aborting, __ATOMIC_ACQUIRE) ||
            write_tracking_is_stopping(bs->wt)) {
            return;
        }
        if (++spins == 1) {
            __atomic_fetch_add(&bs->fig.fault_waits_on_scan, 1, __ATOMIC_RELAXED);
        }
        if (spins == 8) {
            snapshot_scan_boost(bs);
        }
        /*
         * Sleep rather than spin: this thread may run at real-time priority
         * on the same core as the copier.
         */
        if (spins > 16) {
            g_usleep(20);
        } else {
            __builtin_ia32_pause();
        }
    }
}

void snapshot_fault_handle(void *opaque, unsigned block_index, uint64_t offset,
                           uint64_t read_ns)
{
    BackgroundSnapshot *bs = opaque;
    SnapshotBlock *sb = &bs->blocks[block_index];
    uint64_t page = offset / SNAPSHOT_PAGE_SIZE;
    /* The backing page around it: protection only changes in whole ones. */
    uint64_t group = page & ~(uint64_t)(sb->group_pages - 1);
    uint64_t group_bytes = (uint64_t)sb->group_pages * SNAPSHOT_PAGE_SIZE;

    if (__atomic_load_n(&bs->prearmed, __ATOMIC_ACQUIRE)) {
        snapshot_prearm_release(bs, block_index, offset);
        return;
    }
    __atomic_fetch_add(&bs->fig.write_faults, 1, __ATOMIC_RELAXED);
    if (__atomic_load_n(&bs->aborting, __ATOMIC_ACQUIRE)) {
        /* The image is lost anyway; never hold the guest. */
        write_tracking_unprotect(bs->wt, block_index, group * SNAPSHOT_PAGE_SIZE, group_bytes);
        return;
    }
    bool mine = !bitmap_test_and_set_atomic(sb->claimed, page);
    if (mine) {
        fault_save_block(bs, block_index, page);
    }
    /*
     * Not ours, or (on huge backing pages) ours but sharing its backing page
     * with pages the scan is still copying: release it once all are saved.
     */
    if (!mine || !bitmap_range_is_set_atomic(sb->saved, group, sb->group_pages)) {
        fault_wait_saved(bs, sb, group, sb->group_pages);
        if (bitmap_range_is_set_atomic(sb->saved, group, sb->group_pages)) {
            if (bs->epoch) {
                epoch_tracking_release_saved(bs->epoch, bs, block_index, group);
            } else {
                snapshot_unprotect_saved(bs, block_index, group, sb->group_pages, true);
            }
        } else {
            /* Stopping: the snapshot is abandoned, let the guest go. */
            write_tracking_unprotect(bs->wt, block_index, group * SNAPSHOT_PAGE_SIZE,
                                     group_bytes);
        }
    }
    uint64_t service_ns = write_tracking_now_ns() - read_ns;
    latency_histogram_record(&bs->fault_latency, service_ns);
    uint64_t addr = (uint64_t)(uintptr_t)(sb->rb->host + offset);
    trace_snapshot_fault_served(addr, service_ns);
}
