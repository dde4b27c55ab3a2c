/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The background snapshot's linear scan: chunk by chunk, skip unpopulated memory, save, unprotect. */
#include "migration/snapshot/snapshot-internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "migration/snapshot/snapshot-trace.h"
#include "system/machine.h"
#include "util/bitmap.h"
#include "util/error.h"

/*
 * Pages the scan claims at a time: a faulting vCPU that hits a page the scan
 * claimed waits until the scan has copied it, so claims are one word of the
 * bitmap (256 KiB, some tens of microseconds of copying), not a whole chunk.
 */
#define SCAN_CLAIM_PAGES BITMAP_BITS_PER_WORD
/*
 * After a fault, the scan runs ahead of the guest at a fair share for this
 * long, not at idle priority: at idle it shared its CPU with the writer and
 * the sink, and where the sink's memory was cold (a first snapshot) it saved
 * one 2 MiB chunk per 5-6 ms, so a guest writing 2 MiB per 6 ms in order
 * faulted on chunk after chunk (4 in a row, bpftrace).
 */
#define SCAN_AHEAD_BOOST_NS (20 * 1000 * 1000ULL)

/* Back to SCHED_IDLE if a fault boosted us while we held claims. */
static void scan_unboost(BackgroundSnapshot *bs)
{
    if (!__atomic_load_n(&bs->scan_boosted, __ATOMIC_ACQUIRE)) {
        return;
    }
    /* A starvation boost lasts its whole period, not one claim. */
    if (write_tracking_now_ns() < __atomic_load_n(&bs->scan_starved_until_ns,
                                                  __ATOMIC_ACQUIRE)) {
        return;
    }
    struct sched_param idle = { 0 };
    g_mutex_lock(&bs->scan_prio_lock);
    if (bs->scan_lowered) {
        pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle);
    }
    __atomic_store_n(&bs->scan_boosted, false, __ATOMIC_RELEASE);
    g_mutex_unlock(&bs->scan_prio_lock);
}

void snapshot_scan_boost(BackgroundSnapshot *bs)
{
    if (__atomic_load_n(&bs->scan_boosted, __ATOMIC_ACQUIRE)) {
        return;
    }
    g_mutex_lock(&bs->scan_prio_lock);
    if (bs->scan_tid && bs->scan_lowered && !bs->scan_boosted) {
        struct sched_param fifo = { .sched_priority = 1 };
        struct sched_param normal = { 0 };
        /* Like the fault thread itself: real-time if allowed, else just not idle. */
        if (sched_setscheduler(bs->scan_tid, SCHED_FIFO, &fifo) != 0) {
            sched_setscheduler(bs->scan_tid, SCHED_OTHER, &normal);
        }
        __atomic_store_n(&bs->scan_boosted, true, __ATOMIC_RELEASE);
        bs->fig.scan_boosts++;
    }
    g_mutex_unlock(&bs->scan_prio_lock);
}

/*
 * SCHED_BATCH until @for_ns from now, under scan_prio_lock: a fair share,
 * never real-time for this long (even over a fault's boost): SCHED_BATCH
 * weighs like normal priority but never preempts a vCPU when it wakes, which
 * would stall the guest for a time slice. False if the scan is not running.
 */
static bool scan_boost_batch_locked(BackgroundSnapshot *bs, uint64_t for_ns)
{
    struct sched_param batch = { 0 };
    uint64_t now = write_tracking_now_ns();

    if (!bs->scan_tid || !bs->scan_lowered) {
        return false;
    }
    /* Written only here, under the lock; scan_unboost() reads it without. */
    uint64_t until = __atomic_load_n(&bs->scan_starved_until_ns, __ATOMIC_RELAXED);

    if (bs->scan_boosted && until > now) {
        /* In a batch period already: only make it last. */
        __atomic_store_n(&bs->scan_starved_until_ns, MAX(until, now + for_ns), __ATOMIC_RELEASE);
        return true;
    }
    __atomic_store_n(&bs->scan_starved_until_ns, now + for_ns, __ATOMIC_RELEASE);
    if (sched_setscheduler(bs->scan_tid, SCHED_BATCH, &batch) != 0) {
        return false;
    }
    __atomic_store_n(&bs->scan_boosted, true, __ATOMIC_RELEASE);
    return true;
}

void snapshot_scan_boost_starved(BackgroundSnapshot *bs, uint64_t for_ns)
{
    g_mutex_lock(&bs->scan_prio_lock);
    if (scan_boost_batch_locked(bs, for_ns)) {
        bs->fig.scan_starved_boosts++;
    }
    g_mutex_unlock(&bs->scan_prio_lock);
}

void snapshot_scan_boost_ahead(BackgroundSnapshot *bs)
{
    if (bs->vcpus_fill_cpus) {
        return;     /* the scan was never lowered: nothing to lift (and no lock to take) */
    }
    g_mutex_lock(&bs->scan_prio_lock);
    if (scan_boost_batch_locked(bs, SCAN_AHEAD_BOOST_NS)) {
        bs->fig.scan_ahead_boosts++;
    }
    g_mutex_unlock(&bs->scan_prio_lock);
}

/* Zero records for the pages of [@first, @first + @n) known zero in the pause (saved there). */
static void scan_emit_zero(BackgroundSnapshot *bs, unsigned block_index, uint64_t first,
                           uint64_t n)
{
    SnapshotBlock *sb = &bs->blocks[block_index];
    uint64_t end = first + n;

    for (uint64_t p = bitmap_find_next_set(sb->zero_at_pause, end, first); p < end;) {
        uint64_t stop = bitmap_find_next_zero(sb->zero_at_pause, end, p);
        snapshot_writer_push(&bs->writer, snapshot_record_new(block_index, p, stop - p, true,
                                                              NULL));
        p = stop < end ? bitmap_find_next_set(sb->zero_at_pause, end, stop) : end;
    }
}

/*
 * Shared memory: the 2 MiB regions around [@first, @first + @n) that are
 * saved whole leave userfaultfd for good, and their pages get write access
 * back (write_tracking_let_go()). Unprotected, they would stay read-only
 * until the end, and every page the guest wrote behind the scan would take a
 * page fault in the kernel: a guest sweeping shared memory kept a third of
 * its rate during snapshots.
 */
static void scan_let_go(BackgroundSnapshot *bs, unsigned block_index, uint64_t first, uint64_t n)
{
    SnapshotBlock *sb = &bs->blocks[block_index];

    /* Never under epoch tracking: its release hook keeps every range registered. */
    if (!write_tracking_can_let_go(bs->wt, block_index)) {
        return;
    }
    for (uint64_t r = first / SNAPSHOT_HUGE_PAGES; r * SNAPSHOT_HUGE_PAGES < first + n; r++) {
        uint64_t rstart = r * SNAPSHOT_HUGE_PAGES;
        uint64_t rn = MIN((uint64_t)SNAPSHOT_HUGE_PAGES, sb->pages - rstart);

        /*
         * A region that held nothing at the pause has no page the guest
         * wrote before the snapshot: left registered, the stop unregisters
         * it with its neighbours in one call (and restores what needs it).
         */
        if (bitmap_range_is_set_atomic(sb->saved, rstart, rn) &&
            !bitmap_range_is_set_atomic(sb->zero_at_pause, rstart, rn)) {
            write_tracking_let_go(bs->wt, block_index, rstart * SNAPSHOT_PAGE_SIZE,
                                  rn * SNAPSHOT_PAGE_SIZE);
        }
    }
}

/* Save one chunk of a block, adding the pages saved to @saved; false when the pool was closed under us. */
static bool scan_chunk(BackgroundSnapshot *bs, unsigned block_index, uint64_t first,
                       uint64_t n, uint64_t *saved)
{
    SnapshotBlock *sb = &bs->blocks[block_index];
    uint32_t slots[SNAPSHOT_SCAN_CHUNK_PAGES];

    scan_emit_zero(bs, block_index, first, n);
    if (bitmap_range_is_set_atomic(sb->claimed, first, n)) {
        scan_let_go(bs, block_index, first, n);
        return true;    /* faults, or the pause's zero pages, saved all of it */
    }

    /*
     * Take buffers before claiming: a page we claim blocks a faulting vCPU
     * until we save it, so we must not then wait for the sink. Claims only
     * grow, so today's unclaimed count bounds what we will win.
     */
    uint32_t need = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (!bitmap_test_atomic(sb->claimed, first + i)) {
            need++;
        }
    }
    /*
     * Once the pool covers the rest, the faults' reserve is the scan's too:
     * every page it saves first is one fault fewer.
     */
    snapshot_pool_covers_rest(bs);
    if (need && !page_pool_take(bs->pool, need, PAGE_POOL_USER_SCAN, true, slots)) {
        return false;
    }

    uint32_t used = 0;
    bool any = false;
    for (uint64_t sub = 0; sub < n; sub += SCAN_CLAIM_PAGES) {
        uint64_t m = MIN((uint64_t)SCAN_CLAIM_PAGES, n - sub);
        unsigned long won;

        if (!bitmap_claim_range_atomic(sb->claimed, first + sub, m, &won)) {
            continue;
        }
        any = true;
        uint32_t k = __builtin_popcountl(won);
        trace_snapshot_page_claimed(block_index, (first + sub) * SNAPSHOT_PAGE_SIZE, k, 0);
        g_assert(used + k <= need);
        *saved += snapshot_save_claimed(bs, block_index, first + sub, m, &won, slots + used, k,
                                        NULL);
        used += k;
        scan_unboost(bs);
    }
    page_pool_put(bs->pool, slots + used, need - used);
    if (any && !bs->epoch) {
        /*
         * Release as soon as copied, not when written: the guest runs on.
         * Chunks without a page of ours (all zero in the pause, or saved by
         * faults) cost no call: nothing there is ours to release. Under
         * epoch tracking the pages stay protected: the next write to each is
         * what the next increment must see.
         */
        snapshot_unprotect_saved(bs, block_index, first, n, false);
    }
    scan_let_go(bs, block_index, first, n);
    return true;
}

/* Let vCPUs and the fault handler run first: on two cores the scan's priority decides the tail. */
static void scan_lower_priority(BackgroundSnapshot *bs, struct sched_param *old_param,
                                int *old_policy)
{
    struct sched_param idle = { 0 };

    g_mutex_lock(&bs->scan_prio_lock);
    bs->scan_tid = (pid_t)syscall(SYS_gettid);
    /* Where the vCPUs fill the CPUs, idle priority would never get one. */
    bs->scan_lowered = !bs->vcpus_fill_cpus &&
                       pthread_getschedparam(pthread_self(), old_policy, old_param) == 0 &&
                       pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle) == 0;
    g_mutex_unlock(&bs->scan_prio_lock);
}

/* Restore the caller's scheduling, under the lock so no boost lands afterwards. */
static void scan_restore_priority(BackgroundSnapshot *bs, const struct sched_param *old_param,
                                  int old_policy)
{
    g_mutex_lock(&bs->scan_prio_lock);
    if (bs->scan_lowered) {
        pthread_setschedparam(pthread_self(), old_policy, old_param);
    }
    bs->scan_tid = 0;
    bs->scan_lowered = false;
    bs->scan_boosted = false;
    g_mutex_unlock(&bs->scan_prio_lock);
}

/*
 * Where the scan goes after a fault: the chunks following the faulting
 * block, on until it meets a chunk it has done already or the block ends.
 * A guest writing memory in order (a copy, a sweep, a log) then finds it
 * saved and writable instead of faulting once per 2 MiB; a guest writing at
 * random loses nothing, the scan only changes its order. (Runs of 16 chunks
 * left a guest sweeping 1 GiB a whole 2 MiB fault per 32 MiB it went on
 * past a run's end.) The runs after what the pause saved, and a fault's run
 * that a newer fault displaced, go 16 chunks: with those without end too,
 * two vCPUs writing in order faulted more (8 against none in six snapshots;
 * likely the runs where the guest went no further, its counters, taking
 * turns with theirs).
 */
#define SCAN_AHEAD_CHUNKS 16u
/*
 * And the chunk just below each range the pause saved, in the first turn:
 * memory next to what a guest writes is likely written soon, below it as
 * above (a stack grows down). The test payload wrote the 2 MiB below its
 * counters 0.4-41 ms after the pause, a whole 2 MiB fault each time, in 7 of
 * 39 snapshots with KVM (bench/fault-places.bt), while the scan ran ahead.
 */
#define SCAN_BELOW_CHUNKS 1u
#define SCAN_HINT_PAGE_BITS 40

bool snapshot_scan_hint(BackgroundSnapshot *bs, unsigned block_index, uint64_t page)
{
    if (page >= bs->blocks[block_index].pages) {
        return false;
    }
    __atomic_store_n(&bs->scan_hint, ((uint64_t)block_index << SCAN_HINT_PAGE_BITS | page) + 1,
                     __ATOMIC_RELEASE);
    return true;
}

void snapshot_scan_after_pause_save(BackgroundSnapshot *bs, const SnapshotRange *r)
{
    if (bs->nr_pause_saved < SNAPSHOT_PAUSE_SAVED_MAX) {
        bs->pause_saved[bs->nr_pause_saved++] = *r;
    }
}

/* A run ahead: up to @left chunks from @first, until one that is done or the block's end. */
typedef struct ScanRun {
    unsigned block;
    uint64_t first;
    uint64_t left;
} ScanRun;

/*
 * The scan's position: a run ahead of the last fault, other runs ahead
 * (after what the pause saved, or after earlier faults: taken in turn), or
 * the walk from the start.
 */
typedef struct ScanCursor {
    unsigned long **done;       /* per block, one bit per chunk handed to scan_chunk() */
    uint64_t chunk;             /* pages per chunk */
    unsigned block;             /* the walk */
    uint64_t first;
    ScanRun fault_run;
    ScanRun runs[2 * SNAPSHOT_PAUSE_SAVED_MAX];
    unsigned turn;              /* whose turn among @runs */
} ScanCursor;

static bool cursor_take(ScanCursor *c, unsigned b, uint64_t first)
{
    uint64_t i = first / c->chunk;

    if (bitmap_test_bit(c->done[b], i)) {
        return false;
    }
    bitmap_set_bit(c->done[b], i);
    return true;
}

static void run_start(ScanCursor *c, ScanRun *r, unsigned block, uint64_t page, uint64_t left)
{
    r->block = block;
    r->first = page / c->chunk * c->chunk;
    r->left = left;
}

/*
 * A new fault's run takes the lead; the one it replaces goes on in turn with
 * the others if there is room (two vCPUs writing in order, each its own
 * range, keep both followed).
 */
static void fault_run_start(ScanCursor *c, unsigned block, uint64_t page)
{
    if (c->fault_run.left) {
        for (unsigned k = 0; k < G_N_ELEMENTS(c->runs); k++) {
            if (!c->runs[k].left) {
                c->runs[k] = c->fault_run;
                c->runs[k].left = SCAN_AHEAD_CHUNKS;
                break;
            }
        }
    }
    run_start(c, &c->fault_run, block, page, UINT64_MAX);
}

/* The run's next chunk; false (and the run is over) at a chunk done already or the block's end. */
static bool run_take(ScanCursor *c, BackgroundSnapshot *bs, ScanRun *r, unsigned *block,
                     uint64_t *first)
{
    uint64_t f = r->first;

    if (!r->left) {
        return false;
    }
    r->left--;
    r->first += c->chunk;
    if (f >= bs->blocks[r->block].pages || !cursor_take(c, r->block, f)) {
        r->left = 0;
        return false;
    }
    *block = r->block;
    *first = f;
    return true;
}

/* The next chunk to save (@ahead: in a run ahead): false when every chunk has been handed out. */
static bool cursor_next(ScanCursor *c, BackgroundSnapshot *bs, unsigned *block, uint64_t *first,
                        bool *ahead)
{
    uint64_t hint = __atomic_exchange_n(&bs->scan_hint, 0, __ATOMIC_ACQ_REL);

    if (hint--) {
        fault_run_start(c, hint >> SCAN_HINT_PAGE_BITS, hint & ((1ULL << SCAN_HINT_PAGE_BITS) - 1));
    }
    *ahead = true;
    if (run_take(c, bs, &c->fault_run, block, first)) {
        return true;
    }
    /*
     * Then a chunk of each other run, in turn: the guest is going on after
     * one of those the pause saved (its counters are another), and each
     * chunk saved there is one fault fewer if it is that one.
     */
    for (unsigned k = 0; k < G_N_ELEMENTS(c->runs); k++) {
        if (run_take(c, bs, &c->runs[c->turn++ % G_N_ELEMENTS(c->runs)], block, first)) {
            return true;
        }
    }
    *ahead = false;
    for (; c->block < bs->nr_blocks; c->block++, c->first = 0) {
        for (; c->first < bs->blocks[c->block].pages; c->first += c->chunk) {
            if (cursor_take(c, c->block, c->first)) {
                *block = c->block;
                *first = c->first;
                c->first += c->chunk;
                return true;
            }
        }
    }
    return false;
}

bool snapshot_scan_run(BackgroundSnapshot *bs, bool (*tick)(void *opaque), void *opaque, GError **errp)
{
    struct sched_param old_param;
    int old_policy;
    bool ok = true;
    ScanCursor c = {
        .chunk = MIN((uint64_t)SNAPSHOT_SCAN_CHUNK_PAGES,
                     (uint64_t)page_pool_max_take(bs->pool, PAGE_POOL_USER_SCAN)),
    };
    unsigned b;
    uint64_t first;
    bool ahead;

    for (unsigned i = 0; i < bs->nr_pause_saved; i++) {
        const SnapshotRange *r = &bs->pause_saved[i];

        run_start(&c, &c.runs[i], r->block_index, (r->offset + r->len) / SNAPSHOT_PAGE_SIZE,
                  SCAN_AHEAD_CHUNKS);
        if (r->offset >= c.chunk * SNAPSHOT_PAGE_SIZE) {
            run_start(&c, &c.runs[SNAPSHOT_PAUSE_SAVED_MAX + i], r->block_index,
                      r->offset / SNAPSHOT_PAGE_SIZE - c.chunk, SCAN_BELOW_CHUNKS);
        }
    }
    c.done = g_new0(unsigned long *, bs->nr_blocks);
    for (b = 0; b < bs->nr_blocks; b++) {
        c.done[b] = bitmap_new((bs->blocks[b].pages + c.chunk - 1) / c.chunk);
    }
    scan_lower_priority(bs, &old_param, &old_policy);

    while (ok && cursor_next(&c, bs, &b, &first, &ahead)) {
        SnapshotBlock *sb = &bs->blocks[b];
        uint64_t saved = 0;

        if (tick && !tick(opaque)) {
            error_setg(errp, "background-snapshot: cancelled");
            ok = false;
        } else if (snapshot_writer_failed(&bs->writer)) {
            snapshot_writer_get_error(&bs->writer, errp);
            ok = false;
        } else if (__atomic_load_n(&bs->aborting, __ATOMIC_ACQUIRE)) {
            error_setg(errp, "background-snapshot: stopped while saving RAM block '%s'",
                       sb->rb->name);
            ok = false;
        } else if (!scan_chunk(bs, b, first, MIN(c.chunk, sb->pages - first), &saved)) {
            error_setg(errp, "background-snapshot: the buffer pool was closed");
            ok = false;
        }
        if (ahead) {
            __atomic_fetch_add(&bs->fig.pages_saved_ahead, saved, __ATOMIC_RELAXED);
        }
    }
    scan_restore_priority(bs, &old_param, old_policy);
    for (b = 0; b < bs->nr_blocks; b++) {
        g_free(c.done[b]);
    }
    g_free(c.done);
    return ok;
}
