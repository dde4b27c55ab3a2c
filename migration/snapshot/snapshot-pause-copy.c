/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The pause's copies on two CPUs: the ranges the guest was writing when it
 * stopped are saved in the pause (snapshot-arm.c), and the CPU its parked
 * vCPU left is free meanwhile. A thread made before the pause takes 2 MiB
 * pieces from the same counter as the pausing thread; one that wakes late
 * finds none left, so the pause never waits for a wake-up, only for a piece
 * the helper has begun.
 */
#include "migration/snapshot/snapshot-internal.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include "system/machine.h"
#include "util/bitmap.h"
#include "util/cpu-relax.h"
#include "util/error.h"

/*
 * One step of a thread's wait for the other, which runs on the other CPU:
 * a spin, the wait being tens of microseconds. A yield in this loop, tried,
 * gave one pause of 4.3 ms in 12: sched_yield() can hand the CPU to the
 * idle-priority writer, which then runs until the next tick. Past a
 * millisecond (both threads on one CPU after all, or the other one stalled)
 * it sleeps a little, so a thread it waits for on the same CPU can run.
 */
#define WAIT_SPIN_US 1000
#define WAIT_SLEEP_US 50

static void wait_a_little(gint64 *since)
{
    if (!*since) {
        *since = g_get_monotonic_time();
    }
    if (g_get_monotonic_time() - *since < WAIT_SPIN_US) {
        cpu_relax();
    } else {
        g_usleep(WAIT_SLEEP_US);
    }
}

bool snapshot_save_pause_piece(BackgroundSnapshot *bs, const SnapshotRange *piece,
                               GError **errp)
{
    SnapshotBlock *sb = &bs->blocks[piece->block_index];
    uint64_t p = piece->offset / SNAPSHOT_PAGE_SIZE;
    uint64_t n = piece->len / SNAPSHOT_PAGE_SIZE;
    unsigned long won[BITMAP_WORDS(SNAPSHOT_HUGE_PAGES)];
    uint32_t slots[SNAPSHOT_HUGE_PAGES];
    /* Unclaimed now means not zero: the pause's zero pages are claimed already. */
    uint32_t need = 0;

    g_assert(n <= SNAPSHOT_HUGE_PAGES);
    for (uint64_t i = 0; i < n; i++) {
        need += !bitmap_test_bit(sb->claimed, p + i);
    }
    if (need && (need > page_pool_max_take(bs->pool, PAGE_POOL_USER_FAULT) ||
                 !page_pool_take(bs->pool, need, PAGE_POOL_USER_FAULT, false, slots))) {
        /* No buffers now: protect it after all. */
        int ret = write_tracking_protect(bs->wt, piece->block_index, piece->offset, piece->len);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "background-snapshot: cannot write-protect "
                             "RAM block '%s'", sb->rb->name);
            return false;
        }
        return true;
    }
    uint32_t nwon = (uint32_t)bitmap_claim_range_atomic(sb->claimed, p, n, won);
    g_assert(nwon == need);
    if (nwon) {
        snapshot_save_claimed(bs, piece->block_index, p, n, won, slots, nwon, NULL);
        __atomic_fetch_add(&bs->fig.pages_saved_in_pause, nwon, __ATOMIC_RELAXED);
    }
    return true;
}

/* Save pieces until none is left to take; both threads run this. */
static void take_pieces(BackgroundSnapshot *bs)
{
    SnapshotPauseCopy *pc = &bs->pause_copy;
    unsigned i;

    while ((i = __atomic_fetch_add(&pc->next, 1, __ATOMIC_ACQ_REL)) < pc->nr) {
        GError *err = NULL;

        if (!snapshot_save_pause_piece(bs, &pc->pieces[i], &err)) {
            g_mutex_lock(&pc->lock);
            if (!pc->error) {
                pc->error = g_steal_pointer(&err);
            }
            g_mutex_unlock(&pc->lock);
            g_clear_error(&err);
        }
        __atomic_fetch_add(&pc->done, 1, __ATOMIC_RELEASE);
    }
}

static gpointer pause_copy_main(gpointer opaque)
{
    BackgroundSnapshot *bs = opaque;
    SnapshotPauseCopy *pc = &bs->pause_copy;
    struct sched_param normal = { 0 };
    bool woken;

    /*
     * Made during the idle set-up, it would inherit SCHED_IDLE; in the pause
     * it should take the free CPU from the writer and the sink at once.
     * Best effort: where the policy cannot change, it still gets a free CPU.
     */
    pthread_setschedparam(pthread_self(), SCHED_OTHER, &normal);
    __atomic_store_n(&pc->tid, (int)gettid(), __ATOMIC_RELEASE);
    g_mutex_lock(&pc->lock);
    while (!pc->woken && !pc->quit) {
        g_cond_wait(&pc->cond, &pc->lock);
    }
    woken = pc->woken;
    g_mutex_unlock(&pc->lock);
    if (!woken) {
        return NULL;
    }
    /* The pause is finding empty pages and protecting: tens of microseconds. */
    gint64 since = 0;
    while (!__atomic_load_n(&pc->published, __ATOMIC_ACQUIRE)) {
        wait_a_little(&since);
    }
    take_pieces(bs);
    return NULL;
}

void snapshot_pause_copy_init(BackgroundSnapshot *bs)
{
    g_mutex_init(&bs->pause_copy.lock);
    g_cond_init(&bs->pause_copy.cond);
}

bool snapshot_pause_copy_start(BackgroundSnapshot *bs, GError **errp)
{
    SnapshotPauseCopy *pc = &bs->pause_copy;
    cpu_set_t cpus;

    /* Confined to one CPU (a pinned VM), a second thread has nowhere to copy. */
    if (sched_getaffinity(0, sizeof(cpus), &cpus) == 0 && CPU_COUNT(&cpus) < 2) {
        return true;
    }
    pc->thread = g_thread_try_new("snapshot-pause", pause_copy_main, bs, errp);
    if (!pc->thread) {
        error_prefix(errp, "background-snapshot: cannot start the pause's copy thread: ");
        return false;
    }
    return true;
}

/*
 * Woken on the pausing thread's CPU (where the scheduler puts a wakee when
 * the other CPU is busy), the helper took that CPU from the pause and then
 * spun there waiting for it: pauses of 1.2-2 ms with KVM, against 0.5 ms
 * (bpftrace, sched_switch). Its work is on the other CPUs only.
 */
static void keep_helper_off_this_cpu(SnapshotPauseCopy *pc)
{
    int tid = __atomic_load_n(&pc->tid, __ATOMIC_ACQUIRE);
    int self = sched_getcpu();
    cpu_set_t cpus;

    /* The process's CPUs: this thread's may be narrowed to the ones the vCPUs leave. */
    if (tid <= 0 || self < 0 || sched_getaffinity(getpid(), sizeof(cpus), &cpus) != 0) {
        return;
    }
    CPU_CLR(self, &cpus);
    if (CPU_COUNT(&cpus) > 0) {
        sched_setaffinity(tid, sizeof(cpus), &cpus);   /* best effort */
    }
}

void snapshot_pause_copy_wake(BackgroundSnapshot *bs)
{
    SnapshotPauseCopy *pc = &bs->pause_copy;

    keep_helper_off_this_cpu(pc);
    g_mutex_lock(&pc->lock);
    pc->woken = true;
    g_cond_signal(&pc->cond);
    g_mutex_unlock(&pc->lock);
}

bool snapshot_pause_copy_run(BackgroundSnapshot *bs, const SnapshotRange *pieces, unsigned nr,
                             GError **errp)
{
    SnapshotPauseCopy *pc = &bs->pause_copy;

    g_assert(!pc->published);
    pc->pieces = pieces;
    pc->nr = nr;
    __atomic_store_n(&pc->published, true, __ATOMIC_RELEASE);
    take_pieces(bs);
    /* Only a piece the helper has begun is left: a copy of at most 2 MiB. */
    gint64 since = 0;
    while (__atomic_load_n(&pc->done, __ATOMIC_ACQUIRE) < nr) {
        wait_a_little(&since);
    }
    g_mutex_lock(&pc->lock);
    GError *err = g_steal_pointer(&pc->error);
    g_mutex_unlock(&pc->lock);
    if (err) {
        g_propagate_error(errp, err);
        return false;
    }
    return true;
}

void snapshot_pause_copy_stop(BackgroundSnapshot *bs)
{
    SnapshotPauseCopy *pc = &bs->pause_copy;

    if (!pc->thread) {
        return;
    }
    g_mutex_lock(&pc->lock);
    pc->quit = true;
    g_cond_signal(&pc->cond);
    g_mutex_unlock(&pc->lock);
    /* A pause that ended before it handed out work leaves nothing to take. */
    __atomic_store_n(&pc->published, true, __ATOMIC_RELEASE);
    g_thread_join(pc->thread);
    pc->thread = NULL;
}

void snapshot_pause_copy_clear(BackgroundSnapshot *bs)
{
    g_assert(!bs->pause_copy.thread);
    g_clear_error(&bs->pause_copy.error);
    g_mutex_clear(&bs->pause_copy.lock);
    g_cond_clear(&bs->pause_copy.cond);
}
