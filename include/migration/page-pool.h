/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The bounded pool of page buffers between the snapshot's copiers (fault handler, scan) and its writer. */
#ifndef MIGRATION_PAGE_POOL_H
#define MIGRATION_PAGE_POOL_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#define PAGE_POOL_PAGE_SIZE 4096u

/*
 * Who takes pages. Faults may take every free page; the scan does not take
 * the reserve (so a faulting vCPU finds room even while the scan runs ahead
 * of a slow sink) until page_pool_release_reserve().
 */
typedef enum {
    PAGE_POOL_USER_FAULT,
    PAGE_POOL_USER_SCAN,
} PagePoolUser;

typedef struct PagePool PagePool;

typedef struct PagePoolStats {
    uint64_t capacity_pages;
    uint64_t reserve_pages;
    uint64_t in_use_pages;        /* now */
    uint64_t high_water_pages;    /* most in use at once */
    uint64_t fault_waits;         /* takes by faults that had to wait */
    uint64_t fault_wait_ns;       /* total time they waited */
    uint64_t scan_waits;
    uint64_t scan_wait_ns;
    uint64_t chunks_given_back;   /* page_pool_give_back_chunk() */
    uint64_t prefaulted_pages;    /* populated by page_pool_new() or page_pool_reuse() */
    uint64_t reused_pages;        /* resident already when page_pool_reuse() began */
} PagePoolStats;

/*
 * Create a pool of @bytes (rounded down to pages, at least 16 pages), of which
 * @reserve_bytes only faults may take. The memory is mapped once and reused.
 * @prefault_bytes are populated now, and the scan leaves that many populated
 * buffers to faults (it populates further ones itself, before it claims
 * pages), so a faulting vCPU does not pay for first touches of the pool.
 * NULL with @errp set if the mapping fails.
 */
PagePool *page_pool_new(uint64_t bytes, uint64_t reserve_bytes, uint64_t prefault_bytes,
                        GError **errp);

/* The pool's size in bytes. */
uint64_t page_pool_bytes(PagePool *p);

/*
 * Between snapshots (no page in use): the buffers' contents no longer
 * matter, so the kernel may take their memory back under pressure
 * (MADV_FREE); otherwise it stays resident for page_pool_reuse().
 */
void page_pool_idle(PagePool *p);

/*
 * Make an idle pool ready for another snapshot, as page_pool_new() with the
 * same size would, with new counters: what is still resident costs no first
 * touch again (stats.reused_pages counts it).
 */
void page_pool_reuse(PagePool *p, uint64_t reserve_bytes, uint64_t prefault_bytes);

/* Unmap the pool. No page may be in use. NULL is fine. */
void page_pool_free(PagePool *p);

/* The most pages one take by @user can get (capacity, less the reserve for the scan while it holds). */
uint32_t page_pool_max_take(PagePool *p, PagePoolUser user);

/* Free pages @user could take right now without waiting. */
uint32_t page_pool_available(PagePool *p, PagePoolUser user);

/* Free pages as a fraction of capacity, 0.0 - 1.0 (a hint; no lock). */
double page_pool_free_fraction(PagePool *p);

/*
 * Take @n pages (n <= page_pool_max_take()), storing their slot numbers in
 * @slots. With @wait, blocks until enough are free (counting the wait);
 * otherwise returns false at once when they are not. Also false, taking
 * nothing, once the pool is closed.
 */
bool page_pool_take(PagePool *p, uint32_t n, PagePoolUser user, bool wait, uint32_t *slots);

/* Give pages back; wakes waiters. */
void page_pool_put(PagePool *p, const uint32_t *slots, uint32_t n);

/*
 * From now on the scan may take the reserve too. Only the caller knows when
 * faults can no longer run short (see snapshot_pool_covers_rest()). Wakes a
 * scan waiting for pages.
 */
void page_pool_release_reserve(PagePool *p);

/*
 * True while a take by the scan waits for pages (back-pressure from the
 * sink, as opposed to a scan that gets no CPU). A hint; no lock.
 */
bool page_pool_scan_waiting(PagePool *p);

/* Pages given back since creation: its growth over time is the sink's drain rate. */
uint64_t page_pool_returned(PagePool *p);

/* Pages in the pool. */
uint32_t page_pool_capacity(PagePool *p);

/* The memory of slot @slot (PAGE_POOL_PAGE_SIZE bytes). */
uint8_t *page_pool_page(PagePool *p, uint32_t slot);

/* Make every current and future take fail (wakes the waiters): used to abort. */
void page_pool_close(PagePool *p);

/*
 * Give the memory of one free 2 MiB chunk of the pool back to the kernel
 * (MADV_DONTNEED), so that the next huge page this thread allocates is most
 * likely that one: memory the host already backs. On hosts that take free
 * memory back (free page reporting), a new huge page costs the host's
 * faults while it is first filled. The chunk's buffers stay in the pool and
 * are populated again when next taken. With @wait, waits for a populated
 * chunk to become free while one is in use. False if none was given back
 * (none populated and free, or the pool is closed).
 */
bool page_pool_give_back_chunk(PagePool *p, bool wait);
/* A consistent copy of the counters. */
void page_pool_get_stats(PagePool *p, PagePoolStats *stats);

/* Whether page_pool_new(@bytes, ...) would make a pool of @p's size. */
bool page_pool_fits(PagePool *p, uint64_t bytes);

/*
 * Between snapshots (migration/snapshot/page-pool-keep.c). A pool for a
 * snapshot: the kept one made ready again if it has the size asked for
 * (page_pool_reuse()), otherwise a new one (page_pool_new()).
 */
PagePool *page_pool_obtain(uint64_t bytes, uint64_t reserve_bytes, uint64_t prefault_bytes,
                           GError **errp);

/*
 * Keep @p (no page in use) for the next page_pool_obtain(), idle
 * (page_pool_idle()), for @keep_ms: then a timer on @context frees it. Frees
 * it at once if @keep_ms is 0 or @context NULL. A pool kept before is freed.
 */
void page_pool_keep(PagePool *p, uint64_t keep_ms, GMainContext *context);

/* Bytes of the pool kept now; 0 if none. */
uint64_t page_pool_kept_bytes(void);

/* Free the kept pool now, if any. */
void page_pool_drop_kept(void);

#endif
