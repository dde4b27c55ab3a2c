/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A bounded pool of 4 KiB page buffers with a fault-only reserve, blocking takes and wait accounting. */
#include "migration/page-pool.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "util/bitmap.h"
#include "util/error.h"
#include "util/huge-map.h"
#include "util/pi-mutex.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define MIN_PAGES 16
/* A huge page of the pool: the unit given back to the kernel. */
#define CHUNK_PAGES 512u

struct PagePool {
    uint8_t *memory;
    uint32_t capacity;
    uint32_t reserve;

    /*
     * Priority inheritance: the real-time fault handler takes it, and the
     * idle-priority writer holds it to give buffers back (util/pi-mutex.c).
     */
    PiMutex lock;
    PiCond freed;
    /*
     * Free slots in two stacks. Warm ones have been touched (populated); a
     * cold one costs a page fault (a 2 MiB clear with THP, milliseconds here)
     * on first use. Faults take warm slots first; the scan takes cold ones
     * while only keep_warm warm ones are left, and warms them outside any
     * claim, so a faulting vCPU never pays for populating pool memory.
     */
    uint32_t *warm_slots;
    uint32_t *cold_slots;
    uint32_t nr_warm;
    uint32_t nr_cold;
    uint32_t nr_free;         /* nr_warm + nr_cold; read without the lock as a hint */
    uint32_t keep_warm;
    /*
     * Per 2 MiB chunk: slots taken, and whether its memory is populated
     * (touched since creation or since it was last given back).
     */
    uint16_t *chunk_used;
    unsigned long *chunk_backed;
    uint32_t nr_chunks;       /* whole chunks only */
    bool closed;
    bool scan_waiting;        /* atomic reads: a scan take waits for pages */
    uint64_t returned;        /* atomic reads: pages given back so far */
    PagePoolStats stats;
};

uint64_t page_pool_bytes(PagePool *p)
{
    return (uint64_t)p->capacity * PAGE_POOL_PAGE_SIZE;
}

/*
 * Fill the free stacks (every slot free) and populate the first
 * @prefault_bytes: the lowest slots go on top of each stack, so the
 * resident part grows only as needed. Pages of a kept pool that are still
 * resident cost only the walk.
 */
static void arrange(PagePool *p, uint64_t reserve_bytes, uint64_t prefault_bytes)
{
    uint64_t prefault = MIN(prefault_bytes, page_pool_bytes(p));
    uint32_t nr_prefault = prefault / PAGE_POOL_PAGE_SIZE;

    p->reserve = (uint32_t)MIN(reserve_bytes / PAGE_POOL_PAGE_SIZE, p->capacity - 1);
    p->nr_warm = 0;
    p->nr_cold = 0;
    for (uint32_t i = 0; i < nr_prefault; i++) {
        p->warm_slots[p->nr_warm++] = nr_prefault - 1 - i;
    }
    for (uint32_t i = p->capacity; i > nr_prefault; i--) {
        p->cold_slots[p->nr_cold++] = i - 1;
    }
    p->nr_free = p->capacity;
    p->keep_warm = nr_prefault;
    p->closed = false;
    p->scan_waiting = false;
    p->returned = 0;
    memset(&p->stats, 0, sizeof(p->stats));
    p->stats.capacity_pages = p->capacity;
    p->stats.reserve_pages = p->reserve;
    p->stats.prefaulted_pages = nr_prefault;
    for (uint32_t c = 0; c * CHUNK_PAGES < nr_prefault; c++) {
        bitmap_set_bit(p->chunk_backed, c);
    }
    if (prefault) {
        if (madvise(p->memory, prefault, MADV_POPULATE_WRITE) != 0) {
            /* Older kernels: touch one byte per page instead. */
            for (uint64_t off = 0; off < prefault; off += PAGE_POOL_PAGE_SIZE) {
                ((volatile uint8_t *)p->memory)[off] = 0;
            }
        }
    }
}

PagePool *page_pool_new(uint64_t bytes, uint64_t reserve_bytes, uint64_t prefault_bytes,
                        GError **errp)
{
    uint64_t pages = MAX(bytes / PAGE_POOL_PAGE_SIZE, (uint64_t)MIN_PAGES);

    if (pages > UINT32_MAX) {
        error_setg(errp, "page pool: %" G_GUINT64_FORMAT " bytes is too large", bytes);
        return NULL;
    }

    uint64_t len = pages * PAGE_POOL_PAGE_SIZE;
    /*
     * Transparent huge pages: copying 2 MiB into pool buffers that are 4 KiB
     * mappings took 2.5-2.9 ms the first time each buffer was touched on a
     * paravirtual host (each new 4 KiB mapping costs the hypervisor a fault),
     * 0.15 ms with huge pages; populating 32 MiB took 7.6 ms against 1.8 ms.
     * A buffer nobody has touched yet costs a 2 MiB clear (0.2 ms here) once
     * per huge page instead of a fault per 4 KiB page; faults take populated
     * buffers first anyway.
     */
    uint8_t *mem = huge_map_anonymous(len);
    if (!mem) {
        error_setg_errno(errp, errno, "page pool: cannot map %" G_GUINT64_FORMAT " bytes",
                         len);
        return NULL;
    }
    madvise(mem, len, MADV_HUGEPAGE);

    PagePool *p = g_new0(PagePool, 1);
    p->memory = mem;
    p->capacity = (uint32_t)pages;
    pi_mutex_init(&p->lock);
    pi_cond_init(&p->freed);
    p->warm_slots = g_new(uint32_t, pages);
    p->cold_slots = g_new(uint32_t, pages);
    p->nr_chunks = p->capacity / CHUNK_PAGES;
    p->chunk_used = g_new0(uint16_t, p->nr_chunks + 1);
    p->chunk_backed = bitmap_new(p->nr_chunks + 1);
    arrange(p, reserve_bytes, prefault_bytes);
    return p;
}

bool page_pool_fits(PagePool *p, uint64_t bytes)
{
    return p->capacity == MAX(bytes / PAGE_POOL_PAGE_SIZE, (uint64_t)MIN_PAGES);
}

void page_pool_idle(PagePool *p)
{
    g_assert(p->nr_free == p->capacity);
    /* Lazily freed: still resident for the next snapshot unless memory runs short. */
    madvise(p->memory, page_pool_bytes(p), MADV_FREE);
}

void page_pool_reuse(PagePool *p, uint64_t reserve_bytes, uint64_t prefault_bytes)
{
    g_assert(p->nr_free == p->capacity);
    uint64_t len = page_pool_bytes(p);
    size_t nr_pages = len / PAGE_POOL_PAGE_SIZE;
    g_autofree unsigned char *resident = g_malloc(nr_pages);
    uint64_t kept = 0;

    /* What memory pressure left of it: counted, so the figures stay honest. */
    if (mincore(p->memory, len, resident) == 0) {
        for (size_t i = 0; i < nr_pages; i++) {
            kept += resident[i] & 1;
        }
    }
    arrange(p, reserve_bytes, prefault_bytes);
    p->stats.reused_pages = kept;
}

void page_pool_free(PagePool *p)
{
    if (!p) {
        return;
    }
    g_assert(p->nr_free == p->capacity);
    munmap(p->memory, page_pool_bytes(p));
    g_free(p->warm_slots);
    g_free(p->cold_slots);
    g_free(p->chunk_used);
    bitmap_free(p->chunk_backed);
    pi_mutex_clear(&p->lock);
    pi_cond_clear(&p->freed);
    g_free(p);
}

uint32_t page_pool_max_take(PagePool *p, PagePoolUser user)
{
    uint32_t reserve = __atomic_load_n(&p->reserve, __ATOMIC_RELAXED);

    return user == PAGE_POOL_USER_SCAN ? p->capacity - reserve : p->capacity;
}

uint32_t page_pool_available(PagePool *p, PagePoolUser user)
{
    /*
     * Without the lock: the fault handler asks several times a fault, and
     * each answer is a snapshot of a moving count anyway. Both counts are
     * stored atomically under the lock, so under it (page_pool_take()) the
     * answer is exact.
     */
    uint32_t nr_free = __atomic_load_n(&p->nr_free, __ATOMIC_RELAXED);
    uint32_t reserve = __atomic_load_n(&p->reserve, __ATOMIC_RELAXED);

    if (user == PAGE_POOL_USER_SCAN) {
        return nr_free > reserve ? nr_free - reserve : 0;
    }
    return nr_free;
}

double page_pool_free_fraction(PagePool *p)
{
    return (double)__atomic_load_n(&p->nr_free, __ATOMIC_RELAXED) / p->capacity;
}

bool page_pool_take(PagePool *p, uint32_t n, PagePoolUser user, bool wait, uint32_t *slots)
{
    g_assert(n > 0 && n <= page_pool_max_take(p, user));

    pi_mutex_lock(&p->lock);
    if (!p->closed && page_pool_available(p, user) < n) {
        if (!wait) {
            pi_mutex_unlock(&p->lock);
            return false;
        }
        gint64 start = g_get_monotonic_time();
        if (user == PAGE_POOL_USER_SCAN) {
            __atomic_store_n(&p->scan_waiting, true, __ATOMIC_RELAXED);
        }
        while (!p->closed && page_pool_available(p, user) < n) {
            pi_cond_wait(&p->freed, &p->lock);
        }
        if (user == PAGE_POOL_USER_SCAN) {
            __atomic_store_n(&p->scan_waiting, false, __ATOMIC_RELAXED);
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
        pi_mutex_unlock(&p->lock);
        return false;
    }
    uint32_t from_warm;
    if (user == PAGE_POOL_USER_FAULT) {
        from_warm = MIN(n, p->nr_warm);
    } else {
        uint32_t spare = p->nr_warm > p->keep_warm ? p->nr_warm - p->keep_warm : 0;
        from_warm = MIN(n, spare);
        if (n - from_warm > p->nr_cold) {
            from_warm = n - p->nr_cold;
        }
    }
    uint32_t from_cold = n - from_warm;
    p->nr_warm -= from_warm;
    memcpy(slots, &p->warm_slots[p->nr_warm], from_warm * sizeof(*slots));
    p->nr_cold -= from_cold;
    memcpy(slots + from_warm, &p->cold_slots[p->nr_cold], from_cold * sizeof(*slots));
    for (uint32_t i = 0; i < n; i++) {
        uint32_t c = slots[i] / CHUNK_PAGES;

        p->chunk_used[c]++;
        bitmap_set_bit(p->chunk_backed, c);
    }
    __atomic_store_n(&p->nr_free, p->nr_free - n, __ATOMIC_RELAXED);
    uint64_t in_use = p->capacity - p->nr_free;
    if (in_use > p->stats.high_water_pages) {
        p->stats.high_water_pages = in_use;
    }
    pi_mutex_unlock(&p->lock);

    /* Populate cold slots now, while the taker holds no claim a vCPU could wait on. */
    for (uint32_t i = from_warm; i < n; i++) {
        *(volatile uint8_t *)page_pool_page(p, slots[i]) = 0;
    }
    return true;
}

void page_pool_put(PagePool *p, const uint32_t *slots, uint32_t n)
{
    if (!n) {
        return;
    }
    pi_mutex_lock(&p->lock);
    g_assert(p->nr_free + n <= p->capacity);
    memcpy(&p->warm_slots[p->nr_warm], slots, n * sizeof(*slots));
    p->nr_warm += n;
    for (uint32_t i = 0; i < n; i++) {
        g_assert(p->chunk_used[slots[i] / CHUNK_PAGES] > 0);
        p->chunk_used[slots[i] / CHUNK_PAGES]--;
    }
    __atomic_store_n(&p->nr_free, p->nr_free + n, __ATOMIC_RELAXED);
    __atomic_store_n(&p->returned, p->returned + n, __ATOMIC_RELAXED);
    pi_mutex_unlock(&p->lock);
    /* After the unlock: a woken taker that preempts this thread finds the lock free. */
    pi_cond_broadcast(&p->freed);
}

/* A populated chunk with no slot taken, or -1; called with the lock held. */
static int64_t free_backed_chunk_locked(PagePool *p, bool *more_coming)
{
    *more_coming = false;
    for (uint32_t c = 0; c < p->nr_chunks; c++) {
        if (!bitmap_test_bit(p->chunk_backed, c)) {
            continue;
        }
        if (!p->chunk_used[c]) {
            return c;
        }
        *more_coming = true;    /* populated, and the writer will give it back */
    }
    return -1;
}

/* Move chunk @c's slots from the warm stack to the cold one; called with the lock held. */
static void chunk_slots_to_cold_locked(PagePool *p, uint32_t c)
{
    uint32_t kept = 0;

    for (uint32_t i = 0; i < p->nr_warm; i++) {
        uint32_t slot = p->warm_slots[i];

        if (slot / CHUNK_PAGES == c) {
            p->cold_slots[p->nr_cold++] = slot;
        } else {
            p->warm_slots[kept++] = slot;
        }
    }
    p->nr_warm = kept;
}

bool page_pool_give_back_chunk(PagePool *p, bool wait)
{
    bool more_coming;
    int64_t c;

    pi_mutex_lock(&p->lock);
    while ((c = free_backed_chunk_locked(p, &more_coming)) < 0 && more_coming && wait &&
           !p->closed) {
        pi_cond_wait(&p->freed, &p->lock);
    }
    if (c >= 0 && !p->closed) {
        /*
         * Under the lock, so no take can touch the chunk between the move
         * to the cold stack and the discard (a take writes its slots).
         */
        chunk_slots_to_cold_locked(p, (uint32_t)c);
        bitmap_clear_bit(p->chunk_backed, (uint32_t)c);
        madvise(p->memory + (uint64_t)c * CHUNK_PAGES * PAGE_POOL_PAGE_SIZE,
                (uint64_t)CHUNK_PAGES * PAGE_POOL_PAGE_SIZE, MADV_DONTNEED);
        p->stats.chunks_given_back++;
    }
    bool given = c >= 0 && !p->closed;
    pi_mutex_unlock(&p->lock);
    return given;
}

void page_pool_release_reserve(PagePool *p)
{
    pi_mutex_lock(&p->lock);
    __atomic_store_n(&p->reserve, 0, __ATOMIC_RELAXED);
    pi_cond_broadcast(&p->freed);    /* a scan waiting for the reserve's pages may go on */
    pi_mutex_unlock(&p->lock);
}

bool page_pool_scan_waiting(PagePool *p)
{
    return __atomic_load_n(&p->scan_waiting, __ATOMIC_RELAXED);
}

uint64_t page_pool_returned(PagePool *p)
{
    return __atomic_load_n(&p->returned, __ATOMIC_RELAXED);
}

uint32_t page_pool_capacity(PagePool *p)
{
    return p->capacity;
}

uint8_t *page_pool_page(PagePool *p, uint32_t slot)
{
    g_assert(slot < p->capacity);
    return p->memory + (uint64_t)slot * PAGE_POOL_PAGE_SIZE;
}

void page_pool_close(PagePool *p)
{
    pi_mutex_lock(&p->lock);
    p->closed = true;
    pi_cond_broadcast(&p->freed);
    pi_mutex_unlock(&p->lock);
}

void page_pool_get_stats(PagePool *p, PagePoolStats *stats)
{
    pi_mutex_lock(&p->lock);
    *stats = p->stats;
    stats->in_use_pages = p->capacity - p->nr_free;
    pi_mutex_unlock(&p->lock);
}
