/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The snapshot's starvation watchdog: lifts the idle-priority scan and writer when busy CPUs starve them. */
#include "migration/snapshot/snapshot-internal.h"

#include "migration/page-pool.h"

/*
 * The scan and the writer run at SCHED_IDLE so that they yield to the vCPUs;
 * on a host whose CPUs are all busy that starves them (a 1 GiB guest took 57
 * times longer with two CPU hogs, and the engine's unit tests, whose writer
 * threads spin on both CPUs, took minutes). No progress for this long while
 * not waiting for the pool means starvation, not back-pressure: lift the
 * thread for a while. (Judging by the pool's free share instead lifted the
 * scan every 200 ms for the whole of a snapshot to a slow sink, where it then
 * preempted the vCPU.) The watchdog lives in the engine so that every user
 * of it, not only the migration thread, gets it.
 */
#define WATCH_PERIOD_US (50 * 1000)
#define STARVED_US (200 * 1000)
#define STARVED_BOOST_NS (100 * 1000 * 1000ULL)

typedef struct WatchState {
    uint64_t last_saved;
    gint64 scan_moved;
    uint64_t last_bytes;
    gint64 writer_moved;
} WatchState;

static void watch_scan(BackgroundSnapshot *bs, WatchState *ws, gint64 now)
{
    uint64_t saved = __atomic_load_n(&bs->fig.saved_pages, __ATOMIC_RELAXED);

    if (saved != ws->last_saved) {
        ws->last_saved = saved;
        ws->scan_moved = now;
    } else if (now - ws->scan_moved >= STARVED_US && !page_pool_scan_waiting(bs->pool)) {
        snapshot_scan_boost_starved(bs, STARVED_BOOST_NS);
        ws->scan_moved = now;
    }
}

/* The writer starves the same way: records queued, no bytes written. */
static void watch_writer(BackgroundSnapshot *bs, WatchState *ws, gint64 now)
{
    SnapshotWriter *w = &bs->writer;
    uint64_t bytes = __atomic_load_n(&w->bytes, __ATOMIC_RELAXED);

    if (bytes != ws->last_bytes || !snapshot_writer_pending(w)) {
        ws->last_bytes = bytes;
        ws->writer_moved = now;
    } else if (now - ws->writer_moved >= STARVED_US) {
        snapshot_writer_boost_starved(w, STARVED_BOOST_NS);
        ws->writer_moved = now;
    }
}

static gpointer watchdog_main(gpointer opaque)
{
    BackgroundSnapshot *bs = opaque;
    SnapshotWatchdog *wd = &bs->watchdog;
    WatchState ws = { .scan_moved = g_get_monotonic_time() };

    ws.writer_moved = ws.scan_moved;
    g_mutex_lock(&wd->lock);
    while (!wd->stop) {
        gint64 deadline = g_get_monotonic_time() + WATCH_PERIOD_US;

        g_cond_wait_until(&wd->cond, &wd->lock, deadline);
        if (!wd->stop) {
            gint64 now = g_get_monotonic_time();
            watch_scan(bs, &ws, now);
            watch_writer(bs, &ws, now);
        }
    }
    g_mutex_unlock(&wd->lock);
    return NULL;
}

void snapshot_watchdog_init(BackgroundSnapshot *bs)
{
    g_mutex_init(&bs->watchdog.lock);
    g_cond_init(&bs->watchdog.cond);
}

void snapshot_watchdog_clear(BackgroundSnapshot *bs)
{
    snapshot_watchdog_stop(bs);
    g_mutex_clear(&bs->watchdog.lock);
    g_cond_clear(&bs->watchdog.cond);
}

void snapshot_watchdog_start(BackgroundSnapshot *bs)
{
    SnapshotWatchdog *wd = &bs->watchdog;

    if (!wd->thread) {
        wd->stop = false;
        wd->thread = g_thread_new("snapshot-watch", watchdog_main, bs);
    }
}

void snapshot_watchdog_stop(BackgroundSnapshot *bs)
{
    SnapshotWatchdog *wd = &bs->watchdog;

    if (!wd->thread) {
        return;
    }
    g_mutex_lock(&wd->lock);
    wd->stop = true;
    g_cond_signal(&wd->cond);
    g_mutex_unlock(&wd->lock);
    g_thread_join(wd->thread);
    wd->thread = NULL;
}
