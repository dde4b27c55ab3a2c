/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A second thread that faults guest RAM in ahead of a restore writing into it. */
#include "system/ram-prefault.h"

#include <glib.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* One transparent huge page: what one populate call allocates at most. */
#define PREFAULT_REGION ((uintptr_t)2 << 20)
#define PREFAULT_PAGE ((uintptr_t)4096)

struct RamPrefault {
    GThread *thread;
    GMutex lock;
    GCond cond;
    uint64_t lead;
    /* The writer's last window, [start, end): end is capped at start + lead. */
    uint8_t *start;
    uint8_t *end;
    /* The next byte to populate; nothing to do while it is at or past end. */
    uint8_t *next;
    uint64_t populated;
    bool stopping;
};

static uint8_t *region_after(uint8_t *p)
{
    return (uint8_t *)(((uintptr_t)p & ~(PREFAULT_REGION - 1)) + PREFAULT_REGION);
}

static gpointer ram_prefault_thread(gpointer opaque)
{
    RamPrefault *pf = opaque;

    g_mutex_lock(&pf->lock);
    while (!pf->stopping) {
        if (pf->next >= pf->end) {
            g_cond_wait(&pf->cond, &pf->lock);
            continue;
        }
        uint8_t *from = pf->next;
        uint8_t *to = MIN(region_after(from), pf->end);

        g_mutex_unlock(&pf->lock);
        int r = madvise(from, (size_t)(to - from), MADV_POPULATE_WRITE);
        g_mutex_lock(&pf->lock);
        if (r != 0) {
            /*
             * Kernels before 5.14 (EINVAL), no memory or no free huge page
             * (ENOMEM, EFAULT): the writer's own faults will tell.
             */
            break;
        }
        pf->populated += (uint64_t)(to - from);
        /* Unless the writer moved the helper elsewhere meanwhile. */
        if (pf->next == from) {
            pf->next = to;
        }
    }
    g_mutex_unlock(&pf->lock);
    return NULL;
}

RamPrefault *ram_prefault_start(uint64_t lead)
{
    RamPrefault *pf = g_new0(RamPrefault, 1);

    g_mutex_init(&pf->lock);
    g_cond_init(&pf->cond);
    pf->lead = lead;
    pf->thread = g_thread_try_new("ram-prefault", ram_prefault_thread, pf, NULL);
    if (!pf->thread) {
        g_mutex_clear(&pf->lock);
        g_cond_clear(&pf->cond);
        g_free(pf);
        return NULL;
    }
    return pf;
}

void ram_prefault_next(RamPrefault *pf, uint8_t *addr, uint64_t len, uint64_t ahead)
{
    if (!pf) {
        return;
    }
    uint8_t *end = addr + MIN(len + ahead, pf->lead);

    end = (uint8_t *)((uintptr_t)end & ~(PREFAULT_PAGE - 1));
    g_mutex_lock(&pf->lock);
    /* Going on in the same window keeps what is done; elsewhere starts anew. */
    if (addr >= pf->start && addr <= pf->end) {
        pf->next = MAX(pf->next, region_after(addr));
    } else {
        pf->next = region_after(addr);
    }
    pf->start = addr;
    pf->end = end;
    if (pf->next < pf->end) {
        g_cond_signal(&pf->cond);
    }
    g_mutex_unlock(&pf->lock);
}

uint64_t ram_prefault_populated(RamPrefault *pf)
{
    uint64_t n;

    if (!pf) {
        return 0;
    }
    g_mutex_lock(&pf->lock);
    n = pf->populated;
    g_mutex_unlock(&pf->lock);
    return n;
}

void ram_prefault_stop(RamPrefault *pf)
{
    if (!pf) {
        return;
    }
    g_mutex_lock(&pf->lock);
    pf->stopping = true;
    g_cond_signal(&pf->cond);
    g_mutex_unlock(&pf->lock);
    g_thread_join(pf->thread);
    g_mutex_clear(&pf->lock);
    g_cond_clear(&pf->cond);
    g_free(pf);
}
