/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Back-pressure in small steps: when the pool runs low, faults are paced at the sink's drain rate instead of waiting for it in bursts; none once the pool covers the rest. */
#include "migration/snapshot/snapshot-internal.h"

#include "util/error.h"

/*
 * Why: a pool smaller than the guest's hot set fills, and then every fault
 * needs a buffer the sink has yet to free. Sinks drain in bursts (`pv -L
 * 20m` moves 2 MiB every 100 ms, and a full pipe blocks the writer in
 * between), so a fault that waits for a free buffer waits for the next
 * burst: 70-160 ms stalls, each guest step behind them. Pacing admits faults
 * at about the average drain rate while the pool is low, so the pool never
 * runs dry between bursts and the guest waits a little at every fault
 * instead of long at a few. Its speed is the sink's either way.
 */

/* The drain rate is a moving average over about this long (several sink bursts). */
#define DRAIN_WINDOW_S 0.3
/* Samples closer together than this say nothing about a bursty sink. */
#define DRAIN_SAMPLE_MIN_NS (20 * 1000 * 1000ULL)
/*
 * Pace below this many free pages: what the sink drains in a quarter second
 * (longer than the gaps between its bursts), at most half the pool. A large
 * pool that is far from empty needs no pacing, however full it looks.
 */
#define PACE_DRAIN_S 0.25
#define PACE_MIN_PAGES 64
/* One paced wait is at most this long (a fault then takes what the pool has, or waits for it). */
#define PACE_MAX_WAIT_NS (1000 * 1000ULL)
/* A paced fault saves at most what drains in this time, so its wait stays short. */
#define PACE_BLOCK_NS (500 * 1000ULL)
/* Tokens saved up while the guest does not fault: a short burst passes without waiting. */
#define PACE_BURST_NS (2 * 1000 * 1000ULL)

/*
 * Room the pool keeps beyond the pages still to save before it counts as
 * covering them. The scan takes a chunk's buffers before it claims the
 * chunk's pages, so a fault that claims some of them first needs buffers of
 * its own for those too: at most one chunk's worth, as a fault saves at
 * most 2 MiB. Its other pages are covered like the rest.
 */
#define COVER_MARGIN_PAGES SNAPSHOT_SCAN_CHUNK_PAGES

bool snapshot_pool_covers_rest(BackgroundSnapshot *bs)
{
    if (snapshot_pool_covered(bs)) {
        return true;
    }
    /*
     * Saved first, then free: a page unclaimed now was unsaved then, so the
     * pages still to save are at most total - saved (in-flight ones already
     * hold their buffers, and zero ones need none). Once the free pages
     * cover them with the margin, they always will: each page saved takes
     * one buffer and the sink only gives buffers back.
     */
    uint64_t saved = __atomic_load_n(&bs->fig.saved_pages, __ATOMIC_ACQUIRE);
    uint64_t free_pages = page_pool_available(bs->pool, PAGE_POOL_USER_FAULT);

    if (free_pages < bs->total_pages - MIN(saved, bs->total_pages) + COVER_MARGIN_PAGES) {
        return false;
    }
    __atomic_store_n(&bs->pool_covers_rest, true, __ATOMIC_RELEASE);
    page_pool_release_reserve(bs->pool);
    return true;
}

void snapshot_pacer_update(BackgroundSnapshot *bs, uint64_t now_ns)
{
    SnapshotPacer *p = &bs->pacer;
    uint64_t returned = page_pool_returned(bs->pool);

    if (!p->sample_ns) {
        /*
         * Until measured, assume the sink drains the pool in a second. The
         * first samples alone would mislead: the pipe and the sink's own
         * buffer take a first burst at once (measured 10 times the rate).
         */
        p->sample_ns = now_ns;
        p->sample_returned = returned;
        p->drain_pages_per_s = page_pool_capacity(bs->pool);
        return;
    }
    uint64_t dt = now_ns - p->sample_ns;
    if (dt < DRAIN_SAMPLE_MIN_NS) {
        return;
    }
    double rate = (double)(returned - p->sample_returned) * 1e9 / (double)dt;
    double alpha = MIN(1.0, (double)dt / 1e9 / DRAIN_WINDOW_S);

    p->drain_pages_per_s = (1 - alpha) * p->drain_pages_per_s + alpha * rate;
    p->sample_ns = now_ns;
    p->sample_returned = returned;
}

/* Free pages below which faults are paced; 0 while the drain rate is unknown or nothing can run short. */
static uint32_t pace_threshold(BackgroundSnapshot *bs)
{
    SnapshotPacer *p = &bs->pacer;
    uint32_t capacity = page_pool_capacity(bs->pool);

    if (p->drain_pages_per_s <= 0 || snapshot_pool_covered(bs)) {
        return 0;
    }
    double t = MAX((double)PACE_MIN_PAGES, p->drain_pages_per_s * PACE_DRAIN_S);
    return (uint32_t)MIN(t, (double)capacity / 2);
}

/*
 * Admit faults at a rate that falls with the free pages: twice the drain
 * rate at the threshold, the drain rate at half of it, nothing when empty.
 */
static double pace_rate(BackgroundSnapshot *bs, uint32_t threshold)
{
    uint32_t free_pages = page_pool_available(bs->pool, PAGE_POOL_USER_FAULT);

    if (!threshold || free_pages >= threshold) {
        return 0;   /* no pacing */
    }
    return MAX(bs->pacer.drain_pages_per_s * 2.0 * free_pages / threshold, 1.0);
}

bool snapshot_pacer_active(BackgroundSnapshot *bs)
{
    return pace_rate(bs, pace_threshold(bs)) > 0;
}

uint32_t snapshot_pacer_block_cap(BackgroundSnapshot *bs)
{
    double rate = pace_rate(bs, pace_threshold(bs));
    uint32_t cap = SNAPSHOT_FAULT_BLOCK_MAX_PAGES;

    if (rate > 0) {
        double pages = rate * (double)PACE_BLOCK_NS / 1e9;
        while (cap > 1 && cap > pages) {
            cap /= 2;
        }
    }
    return cap;
}

void snapshot_pacer_admit(BackgroundSnapshot *bs, uint32_t pages)
{
    SnapshotPacer *p = &bs->pacer;
    uint64_t now = write_tracking_now_ns();
    double rate;

    snapshot_pacer_update(bs, now);
    rate = pace_rate(bs, pace_threshold(bs));
    if (rate <= 0) {
        p->tokens = 0;
        p->tokens_ns = now;
        return;
    }
    if (p->tokens_ns) {
        double burst = rate * (double)PACE_BURST_NS / 1e9;
        p->tokens = MIN(burst, p->tokens + rate * (double)(now - p->tokens_ns) / 1e9);
    }
    p->tokens_ns = now;
    if (p->tokens >= pages) {
        p->tokens -= pages;
        return;
    }
    uint64_t wait_ns = MIN((uint64_t)(((double)pages - p->tokens) / rate * 1e9),
                           PACE_MAX_WAIT_NS);
    g_usleep(MAX(wait_ns / 1000, 1));
    uint64_t after = write_tracking_now_ns();
    p->tokens = 0;
    p->tokens_ns = after;
    __atomic_fetch_add(&bs->fig.paced_faults, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&bs->fig.paced_ns, after - now, __ATOMIC_RELAXED);
}
