/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A bounded pool of 4 KiB page buffers with a fault-only reserve, blocking takes and wait accounting. */
#include "migration/page-pool.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "util/error.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define MIN_PAGES 16

struct PagePool {
    uint8_t *memory;
    uint64_t map_len;
    uint32_t capacity;
    uint32_t reserve;

    GMutex lock;
    GCond freed;
    uint32_t *free_slots;     /* a stack: the most recently freed is reused first */
    uint32_t nr_free;
    bool closed;
    PagePoolStats stats;
};

PagePool *page_pool_new(uint64_t bytes, uint64_t reserve_bytes, uint64_t prefault_bytes,
                        GError **errp)
{
    uint64_t pages = MAX(bytes / PAGE_POOL_PAGE_SIZE, (uint64_t)MIN_PAGES);

    if (pages > UINT32_MAX) {
        error_setg(errp, "page pool: %" G_GUINT64_FORMAT " bytes is too large", bytes);
        return NULL;
    }

    uint64_t len = pages * PAGE_POOL_PAGE_SIZE;
    void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) {
        error_setg_errno(errp, errno, "page pool: cannot map %" G_GUINT64_FORMAT " bytes",
                         len);
        return NULL;
    }
    /* Huge pages make the prefault below and the TLB cheap; best effort. */
    madvise(mem, len, MADV_HUGEPAGE);

    PagePool *p = g_new0(PagePool, 1);
    p->memory = mem;
    p->map_len = len;
    p->capacity = (uint32_t)pages;
    p->reserve = (uint32_t)MIN(reserve_bytes / PAGE_POOL_PAGE_SIZE, pages - 1);
    g_mutex_init(&p->lock);
    g_cond_init(&p->freed);
    p->free_slots = g_new(uint32_t, pages);
    /* Slot 0 on top: the pool's touched (resident) part grows only as needed. */
    for (uint32_t i = 0; i < p->capacity; i++) {
        p->free_slots[i] = p->capacity - 1 - i;
    }
    p->nr_free = p->capacity;
    p->stats.capacity_pages = p->capacity;
    p->stats.reserve_pages = p->reserve;

    uint64_t prefault = MIN(prefault_bytes, len);
    if (prefault) {
        if (madvise(mem, prefault, MADV_POPULATE_WRITE) != 0) {
            /* Older kernels: touch one byte per page instead. */
            for (uint64_t off = 0; off < prefault; off += PAGE_POOL_PAGE_SIZE) {
                ((volatile uint8_t *)mem)[off] = 0;
            }
        }
    }
    return p;
}

void page_pool_free(PagePool *p)
{
    if (!p) {
        return;
    }
    g_assert(p->nr_free == p->capacity);
    munmap(p->memory, p->map_len);
    g_free(p->free_slots);
    g_mutex_clear(&p->lock);
    g_cond_clear(&p->freed);
    g_free(p);
}

uint32_t page_pool_max_take(PagePool *p, PagePoolUser user)
{
    return user == PAGE_POOL_USER_SCAN ? p->capacity - p->reserve : p->capacity;
}

/* Free pages @user may take; called with the lock held. */
static uint32_t available_locked(PagePool *p, PagePoolUser user)
{
    if (user == PAGE_POOL_USER_SCAN) {
        return p->nr_free > p->reserve ? p->nr_free - p->reserve : 0;
    }
    return p->nr_free;
}

uint32_t page_pool_available(PagePool *p, PagePoolUser user)
{
    g_mutex_lock(&p->lock);
    uint32_t n = available_locked(p, user);
    g_mutex_unlock(&p->lock);
    return n;
}

double page_pool_free_fraction(PagePool *p)
{
    return (double)__atomic_load_n(&p->nr_free, __ATOMIC_RELAXED) / p->capacity;
}

bool page_pool_take(PagePool *p, uint32_t n, PagePoolUser user, bool wait, uint32_t *slots)
{
    g_assert(n > 0 && n <= page_pool_max_take(p, user));

    g_mutex_lock(&p->lock);
    if (!p->closed && available_locked(p, user) < n) {
        if (!wait) {
            g_mutex_unlock(&p->lock);
            return false;
        }
        gint64 start = g_get_monotonic_time();
        while (!p->closed && available_locked(p, user) < n) {
            g_cond_wait(&p->freed, &p->lock);
        }
        uint64_t waited_ns = (uint64_t)(g_get_monotonic_time() - start) * 1000;
        if (user == PAGE_POOL_USER_FAULT) {
            p->stats.fault_waits++;
            p->stats.fault_wait_ns += waited_ns;
        } else {
            p->stats.scan_waits++;
            p->stats.scan_wait_ns += waited_ns;
        }
    }
    if (p->closed) {
        g_mutex_unlock(&p->lock);
        return false;
    }
    p->nr_free -= n;
    memcpy(slots, &p->free_slots[p->nr_free], n * sizeof(*slots));
    uint64_t in_use = p->capacity - p->nr_free;
    if (in_use > p->stats.high_water_pages) {
        p->stats.high_water_pages = in_use;
    }
    g_mutex_unlock(&p->lock);
    return true;
}

void page_pool_put(PagePool *p, const uint32_t *slots, uint32_t n)
{
    if (!n) {
        return;
    }
    g_mutex_lock(&p->lock);
    g_assert(p->nr_free + n <= p->capacity);
    memcpy(&p->free_slots[p->nr_free], slots, n * sizeof(*slots));
    p->nr_free += n;
    g_cond_broadcast(&p->freed);
    g_mutex_unlock(&p->lock);
}

uint8_t *page_pool_page(PagePool *p, uint32_t slot)
{
    g_assert(slot < p->capacity);
    return p->memory + (uint64_t)slot * PAGE_POOL_PAGE_SIZE;
}

void page_pool_close(PagePool *p)
{
    g_mutex_lock(&p->lock);
    p->closed = true;
    g_cond_broadcast(&p->freed);
    g_mutex_unlock(&p->lock);
}

void page_pool_get_stats(PagePool *p, PagePoolStats *stats)
{
    g_mutex_lock(&p->lock);
    *stats = p->stats;
    stats->in_use_pages = p->capacity - p->nr_free;
    g_mutex_unlock(&p->lock);
}
