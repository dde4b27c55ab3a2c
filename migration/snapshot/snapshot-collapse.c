/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Putting huge pages back: split regions collapse again (MADV_COLLAPSE) once saved, off the vCPUs' path. */
#include "migration/snapshot/snapshot-internal.h"

#include <errno.h>
#include <sys/mman.h>

#include "system/machine.h"
#include "util/bitmap.h"
#include "util/error.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

/*
 * A collapse holds the mmap lock for writing while it copies (about a
 * millisecond here): a fault being served then waits for it in its
 * unprotect, and so does its vCPU. During the snapshot, collapse only once
 * the fault thread has been idle this long; after it, at once.
 */
#define COLLAPSE_QUIET_NS (5 * 1000 * 1000ULL)

/*
 * The kernel refuses a collapse while any page of the range still carries
 * write protection (or was never populated, while registered). A region is
 * queued when all its pages are saved, which is a moment before the last of
 * them is unprotected: try once more after this pause, then after the
 * snapshot.
 */
#define COLLAPSE_RETRY_US 2000

/* One MADV_COLLAPSE; true when the region is mapped huge again. */
static bool collapse_region(BackgroundSnapshot *bs, const SnapshotRange *r)
{
    SnapshotBlock *sb = &bs->blocks[r->block_index];

    if (madvise(sb->rb->host + r->offset, r->len, MADV_COLLAPSE) == 0) {
        __atomic_fetch_add(&bs->fig.huge_restored, 1, __ATOMIC_RELAXED);
        return true;
    }
    if (errno == EINVAL && !bs->collapser.unsupported) {
        /* Before Linux 6.1 there is no such advice; EINVAL also means a refused range. */
        bs->collapser.unsupported = madvise(sb->rb->host, 0, MADV_COLLAPSE) != 0 &&
                                    errno == EINVAL;
    }
    return false;
}

/* Wait (lock held) until faults have paused for COLLAPSE_QUIET_NS or the snapshot ends. */
static void collapse_wait_quiet(BackgroundSnapshot *bs)
{
    SnapshotCollapser *c = &bs->collapser;

    while (!c->finishing) {
        uint64_t idle = __atomic_load_n(&bs->fault_idle_since_ns, __ATOMIC_RELAXED);
        uint64_t now = write_tracking_now_ns();
        uint64_t wait_ns = COLLAPSE_QUIET_NS;

        if (idle && now - idle >= COLLAPSE_QUIET_NS) {
            return;
        }
        if (idle) {
            wait_ns = COLLAPSE_QUIET_NS - (now - idle);
        }
        g_cond_wait_until(&c->cond, &c->lock, g_get_monotonic_time() + wait_ns / 1000 + 1);
    }
}

static gpointer collapse_thread_main(gpointer opaque)
{
    BackgroundSnapshot *bs = opaque;
    SnapshotCollapser *c = &bs->collapser;

    snapshot_thread_yield_to_vcpus();
    g_mutex_lock(&c->lock);
    for (;;) {
        SnapshotRange *r = g_queue_pop_head(&c->queue);
        bool finishing = c->finishing;

        if (!r && finishing) {
            r = g_queue_pop_head(&c->later);
        }
        if (!r) {
            if (finishing) {
                break;
            }
            g_cond_wait(&c->cond, &c->lock);
            continue;
        }
        if (!finishing) {
            collapse_wait_quiet(bs);
            finishing = c->finishing;
        }
        g_mutex_unlock(&c->lock);
        bool done = !c->unsupported && collapse_region(bs, r);
        if (!done && !finishing && !c->unsupported) {
            g_usleep(COLLAPSE_RETRY_US);
            done = collapse_region(bs, r);
        }
        g_mutex_lock(&c->lock);
        if (done) {
            g_free(r);
        } else if (!finishing && !c->unsupported) {
            g_queue_push_tail(&c->later, r);
        } else {
            __atomic_fetch_add(&bs->fig.huge_collapse_failed, 1, __ATOMIC_RELAXED);
            g_free(r);
        }
    }
    g_mutex_unlock(&c->lock);
    return NULL;
}

void snapshot_collapse_init(BackgroundSnapshot *bs)
{
    SnapshotCollapser *c = &bs->collapser;

    g_mutex_init(&c->lock);
    g_cond_init(&c->cond);
    g_queue_init(&c->queue);
    g_queue_init(&c->later);
}

void snapshot_collapse_clear(BackgroundSnapshot *bs)
{
    SnapshotCollapser *c = &bs->collapser;

    g_assert(!c->thread);
    g_queue_clear_full(&c->queue, g_free);
    g_queue_clear_full(&c->later, g_free);
    g_mutex_clear(&c->lock);
    g_cond_clear(&c->cond);
}

bool snapshot_collapse_start(BackgroundSnapshot *bs, GError **errp)
{
    SnapshotCollapser *c = &bs->collapser;

    c->thread = g_thread_try_new("snapshot-collapse", collapse_thread_main, bs, errp);
    if (!c->thread) {
        error_prefix(errp, "background-snapshot: cannot start the huge page thread: ");
        return false;
    }
    return true;
}

void snapshot_collapse_push(BackgroundSnapshot *bs, unsigned block_index, uint64_t region)
{
    SnapshotCollapser *c = &bs->collapser;
    SnapshotBlock *sb = &bs->blocks[block_index];
    SnapshotRange *r = g_new(SnapshotRange, 1);

    r->block_index = block_index;
    r->offset = region * SNAPSHOT_HUGE_PAGES * SNAPSHOT_PAGE_SIZE;
    r->len = MIN((uint64_t)SNAPSHOT_HUGE_PAGES * SNAPSHOT_PAGE_SIZE, sb->rb->size - r->offset);
    g_mutex_lock(&c->lock);
    if (!c->thread) {
        g_free(r);
    } else {
        g_queue_push_tail(&c->queue, r);
        g_cond_signal(&c->cond);
    }
    g_mutex_unlock(&c->lock);
}

void snapshot_collapse_unprotected(BackgroundSnapshot *bs)
{
    SnapshotCollapser *c = &bs->collapser;

    g_mutex_lock(&c->lock);
    c->finishing = true;
    g_cond_signal(&c->cond);
    g_mutex_unlock(&c->lock);
}

void snapshot_collapse_finish(BackgroundSnapshot *bs)
{
    SnapshotCollapser *c = &bs->collapser;

    if (!c->thread) {
        return;
    }
    snapshot_collapse_unprotected(bs);
    g_thread_join(c->thread);
    g_mutex_lock(&c->lock);
    c->thread = NULL;
    g_mutex_unlock(&c->lock);
}
