/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The background snapshot's write-fault service: claim, copy into the pool, unprotect, queue. */
#include "migration/snapshot/snapshot-internal.h"

#include "migration/epoch-tracking.h"
#include "migration/snapshot/snapshot-trace.h"
#include "system/machine.h"
#include "util/bitmap.h"
#include "util/cpu-relax.h"

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

    if (snapshot_pool_covered(bs)) {
        return pages;   /* however full, the pool will not make a fault wait */
    }
    while (pages > 1 && free_share < threshold) {
        pages /= 2;
        threshold /= 2;
    }
    return pages;
}

/*
 * Serving a fault on a huge page: save all 2 MiB and release them in one
 * piece, which keeps the mapping huge, or save a small block, which splits
 * it. A split costs the guest TLB misses (on this paravirtual host up to
 * ten times the CPU per page touched) until the collapse after the
 * snapshot, and the collapse holds the mmap lock for 0.13-0.56 ms. Whole
 * costs a 2 MiB copy on the vCPU's wait (0.2-0.9 ms, a few over 1 ms) and
 * 2 MiB of pool. So: whole whenever the pool has room to spare and is not
 * being paced, or covers all that is left to save. (Splitting after slow
 * whole copies was tried: the collapses it caused stalled the guest longer
 * than the copies it avoided.)
 */
/* Room left for other faults after a whole save: this share of the pool, at least 64 pages. */
#define HUGE_WHOLE_SPARE_DIVISOR 128
#define HUGE_WHOLE_SPARE_MIN 64u

static bool fault_whole_huge(BackgroundSnapshot *bs)
{
    uint32_t spare = MAX(page_pool_capacity(bs->pool) / HUGE_WHOLE_SPARE_DIVISOR,
                         HUGE_WHOLE_SPARE_MIN);

    if (snapshot_pool_covered(bs)) {
        return true;    /* the 2 MiB is part of what the pool covers */
    }
    return page_pool_available(bs->pool, PAGE_POOL_USER_FAULT) >= SNAPSHOT_HUGE_PAGES + spare &&
           !snapshot_pacer_active(bs);
}

/*
 * The faulting page is ours: save an aligned block around it, then release
 * it. True if the scan was sent ahead of it.
 */
static bool fault_save_block(BackgroundSnapshot *bs, unsigned block_index, uint64_t page)
{
    SnapshotBlock *sb = &bs->blocks[block_index];
    unsigned long won[BITMAP_WORDS(SNAPSHOT_FAULT_BLOCK_MAX_PAGES)];
    uint32_t slots[SNAPSHOT_FAULT_BLOCK_MAX_PAGES];
    uint64_t region = page / SNAPSHOT_HUGE_PAGES;
    bool whole = false;

    /* Asked once here; the sizing and pacing below read the answer. */
    snapshot_pool_covers_rest(bs);
    if (snapshot_region_is_huge(sb, region)) {
        whole = fault_whole_huge(bs);
        if (!whole) {
            snapshot_region_split(bs, sb, region);
        }
    }
    /*
     * Each bound read once: both move with the pool, and MIN() evaluates its
     * arguments twice (a pacing cap of 8 read as 512 the second time gave a
     * 64-page pool a 512-page block).
     */
    uint32_t size_cap = snapshot_fault_block_pages(bs);
    uint32_t pace_cap = snapshot_pacer_block_cap(bs);
    uint32_t block_pages = whole ? SNAPSHOT_HUGE_PAGES
                                 : MAX(MIN(size_cap, pace_cap), sb->group_pages);
    uint64_t first = page & ~(uint64_t)(block_pages - 1);
    uint64_t n = MIN((uint64_t)block_pages, sb->pages - first);

    /* A low pool: wait a little now rather than long for the sink later. */
    snapshot_pacer_admit(bs, (uint32_t)n);

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
        return false;
    }
    uint64_t saved = snapshot_save_claimed(bs, block_index, first, n, won, slots, nwon, NULL);
    __atomic_fetch_add(&bs->fig.pages_out_of_order, saved, __ATOMIC_RELAXED);
    bool sent_ahead = snapshot_scan_hint(bs, block_index, first + n);
    if (bs->epoch) {
        /* Epoch tracking: the written page goes (and saved ones ahead of a sequential writer). */
        epoch_tracking_release_saved(bs->epoch, bs, block_index,
                                     page & ~(uint64_t)(sb->group_pages - 1));
    } else {
        snapshot_unprotect_saved(bs, block_index, first, n, true);
    }
    if (whole) {
        __atomic_fetch_add(&bs->fig.huge_whole_faults, 1, __ATOMIC_RELAXED);
    }
    return sent_ahead;
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
            cpu_relax();
        }
    }
}

void snapshot_fault_handle(void *opaque, unsigned block_index, uint64_t offset,
                           uint64_t read_ns)
{
    BackgroundSnapshot *bs = opaque;
    SnapshotBlock *sb = &bs->blocks[block_index];
    uint64_t page = offset / SNAPSHOT_PAGE_SIZE;

    if (__atomic_load_n(&bs->prearmed, __ATOMIC_ACQUIRE)) {
        snapshot_prearm_release(bs, block_index, offset);
        return;
    }
    __atomic_fetch_add(&bs->fig.write_faults, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&bs->fault_idle_since_ns, 0, __ATOMIC_RELAXED);
    if (__atomic_load_n(&bs->aborting, __ATOMIC_ACQUIRE)) {
        /* The image is lost anyway; never hold the guest. */
        uint64_t g = page & ~(uint64_t)(SNAPSHOT_HUGE_PAGES - 1);
        write_tracking_unprotect(bs->wt, block_index, g * SNAPSHOT_PAGE_SIZE,
                                 MIN((uint64_t)SNAPSHOT_HUGE_PAGES, sb->pages - g) *
                                 SNAPSHOT_PAGE_SIZE);
        __atomic_store_n(&bs->fault_idle_since_ns, write_tracking_now_ns(), __ATOMIC_RELAXED);
        return;
    }
    bool mine = !bitmap_test_and_set_atomic(sb->claimed, page);
    bool sent_ahead = mine && fault_save_block(bs, block_index, page);

    /*
     * Protection only changes in whole units: the backing page (hugetlbfs),
     * or the 2 MiB region while it is mapped huge. Not ours, or ours but
     * sharing that unit with pages the scan is still copying: release it
     * once all are saved.
     */
    uint64_t unit = snapshot_region_is_huge(sb, page / SNAPSHOT_HUGE_PAGES)
                    ? SNAPSHOT_HUGE_PAGES : sb->group_pages;
    uint64_t group = page & ~(unit - 1);
    uint64_t group_n = MIN(unit, sb->pages - group);

    if (!mine || !bitmap_range_is_set_atomic(sb->saved, group, group_n)) {
        fault_wait_saved(bs, sb, group, group_n);
        if (bitmap_range_is_set_atomic(sb->saved, group, group_n)) {
            if (bs->epoch) {
                /* From the faulting page's backing page: tracking releases it, or a run from it. */
                epoch_tracking_release_saved(bs->epoch, bs, block_index,
                                             page & ~(uint64_t)(sb->group_pages - 1));
            } else {
                snapshot_unprotect_saved(bs, block_index, group, group_n, true);
            }
        } else {
            /* Stopping: the snapshot is abandoned, let the guest go. */
            write_tracking_unprotect(bs->wt, block_index, group * SNAPSHOT_PAGE_SIZE,
                                     group_n * SNAPSHOT_PAGE_SIZE);
        }
    }
    uint64_t now_ns = write_tracking_now_ns();
    uint64_t service_ns = now_ns - read_ns;
    __atomic_store_n(&bs->fault_idle_since_ns, now_ns, __ATOMIC_RELAXED);
    latency_histogram_record(&bs->fault_latency, service_ns);
    uint64_t addr = (uint64_t)(uintptr_t)(sb->rb->host + offset);
    trace_snapshot_fault_served(addr, service_ns);
    if (sent_ahead) {
        /* After the release: the vCPU goes on meanwhile. */
        snapshot_scan_boost_ahead(bs);
    }
}
