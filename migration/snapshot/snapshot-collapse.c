/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Putting huge pages back: split regions collapse again (MADV_COLLAPSE) once saved, off the vCPUs' path. */
#include "migration/snapshot/snapshot-internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>

#include "system/machine.h"
#include "util/bitmap.h"
#include "util/error.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

/*
 * A collapse holds the mmap lock for writing while it allocates and fills
 * a new huge page: 0.13-0.5 ms here mostly, but 4-12 ms when the page is
 * memory the host has not backed yet (free memory is reported back to it).
 * Every unprotect waits for the lock meanwhile, and so does the vCPU whose
 * fault it serves; a "quiet moment" between faults did not keep them
 * apart. So regions are only queued while RAM is protected, and collapsed
 * once no page is: then the only vCPU that can wait is one touching the
 * region being collapsed.
 *
 * The copy into the new huge page is what takes 4-12 ms, when the host has
 * to back that page on its first touch (kernel stacks under the lock:
 * copy_mc_enhanced_fast_string in collapse_huge_page). So each collapse is
 * fed: a free 2 MiB chunk of the pool, populated and so backed, is given back
 * to the kernel just before, on the same CPU, where the collapse's allocation
 * finds it first. A one-off program here: the first collapse of a process
 * took 4.8-8 ms in 4 of 8 runs plain, 0.27-0.43 ms in 8 of 8 fed.
 */

/* Keep this thread on the CPU it is on (the kernel's free lists are per CPU); false if it was already. */
static bool hold_this_cpu(cpu_set_t *was)
{
    int cpu = sched_getcpu();
    cpu_set_t one;

    if (cpu < 0 || pthread_getaffinity_np(pthread_self(), sizeof(*was), was) != 0 ||
        CPU_COUNT(was) <= 1) {
        return false;
    }
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return pthread_setaffinity_np(pthread_self(), sizeof(one), &one) == 0;
}

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

static gpointer collapse_thread_main(gpointer opaque)
{
    BackgroundSnapshot *bs = opaque;
    SnapshotCollapser *c = &bs->collapser;

    snapshot_thread_yield_to_vcpus();
    g_mutex_lock(&c->lock);
    while (!c->finishing) {
        g_cond_wait(&c->cond, &c->lock);
    }
    for (SnapshotRange *r; (r = g_queue_pop_head(&c->queue));) {
        g_mutex_unlock(&c->lock);
        cpu_set_t was;
        bool held = !c->unsupported && hold_this_cpu(&was);

        if (!c->unsupported && bs->pool) {
            /* Waits for the writer to free a chunk; the pool's close ends it. */
            page_pool_give_back_chunk(bs->pool, true);
        }
        if (c->unsupported || !collapse_region(bs, r)) {
            __atomic_fetch_add(&bs->fig.huge_collapse_failed, 1, __ATOMIC_RELAXED);
        }
        if (held) {
            pthread_setaffinity_np(pthread_self(), sizeof(was), &was);
        }
        g_free(r);
        g_mutex_lock(&c->lock);
    }
    c->drained = true;
    g_mutex_unlock(&c->lock);
    return NULL;
}

void snapshot_collapse_init(BackgroundSnapshot *bs)
{
    SnapshotCollapser *c = &bs->collapser;

    g_mutex_init(&c->lock);
    g_cond_init(&c->cond);
    g_queue_init(&c->queue);
}

void snapshot_collapse_clear(BackgroundSnapshot *bs)
{
    SnapshotCollapser *c = &bs->collapser;

    g_assert(!c->thread);
    g_queue_clear_full(&c->queue, g_free);
    g_mutex_clear(&c->lock);
    g_cond_clear(&c->cond);
}

bool snapshot_collapse_start(BackgroundSnapshot *bs, GError **errp)
{
    SnapshotCollapser *c = &bs->collapser;

    c->thread = g_thread_try_new("snapshot-thp", collapse_thread_main, bs, errp);
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
    if (!c->thread || c->drained) {
        /* No thread, or it has finished: the kernel's khugepaged will do it. */
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
