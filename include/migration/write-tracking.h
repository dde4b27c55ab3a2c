/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Write tracking for background snapshots: UFFD-WP over every RAM block and the fault handler thread. */
#ifndef MIGRATION_WRITE_TRACKING_H
#define MIGRATION_WRITE_TRACKING_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

typedef struct RamBlock RamBlock;
typedef struct WriteTracking WriteTracking;

/*
 * Called on the fault thread for every write fault on a protected page:
 * @block_index into the tracked blocks, @offset (page aligned) in the block,
 * @read_ns the CLOCK_MONOTONIC time the event was read. The callee must save
 * the page and remove its protection (write_tracking_unprotect()), or leave
 * that to whoever already claimed the page; the faulting thread stays blocked
 * until then.
 */
typedef void (*WriteTrackingFaultFunc)(void *opaque, unsigned block_index, uint64_t offset,
                                       uint64_t read_ns);

/* What write tracking needs from the kernel for @blocks (RamBlock *). */
typedef struct WriteTrackingFeatures {
    uint64_t kernel;        /* UFFD_FEATURE_* the kernel offers */
    uint64_t required;      /* what tracking of these blocks cannot do without */
    uint64_t wanted;        /* required + optional ones the kernel has */
} WriteTrackingFeatures;

/*
 * Can @blocks be write-protected on this kernel? Asks the kernel's features
 * and every block's backend (a block without a backend is taken as private
 * anonymous memory). On false, @errp names the block, its backend and why.
 * @features (may be NULL) receives the features tracking would use.
 */
bool write_tracking_check(GPtrArray *blocks, WriteTrackingFeatures *features, GError **errp);

/*
 * Open a userfaultfd and register every block of @blocks (RamBlock *, kept by
 * reference) for write-protect. Nothing is protected yet. NULL with @errp set
 * on failure (already registered ranges are released).
 *
 * Protection only sticks to pages that exist. With @protect_unpopulated,
 * never-touched anonymous memory must be protected too: with
 * UFFD_FEATURE_WP_UNPOPULATED the kernel leaves a marker in each such page
 * (allocating page tables, 4 KiB at a time, where a huge page could later
 * have gone), else every block is populated by reading it (never writing:
 * that would change and allocate the guest's memory). Without it, the caller
 * takes care of never-touched pages itself (a background snapshot saves them
 * as zero in the pause) and they are left as they are. Shared memory
 * (shmem, hugetlbfs) always keeps protection on pages that are not mapped.
 */
WriteTracking *write_tracking_new(GPtrArray *blocks, bool protect_unpopulated, GError **errp);

/*
 * Start the fault handler thread: it polls the userfaultfd, reads events in
 * batches and calls @fn for each write fault. With @raise_priority it asks for
 * SCHED_FIFO, else nice -10, and carries on silently if refused.
 */
bool write_tracking_start_fault_thread(WriteTracking *wt, WriteTrackingFaultFunc fn,
                                       void *opaque, bool raise_priority, GError **errp);

/*
 * Move the running fault thread to @cpus; false if there is none or the
 * kernel refused. A fault is served soonest on the CPU of the thread that
 * took it: see snapshot-placement.c.
 */
bool write_tracking_fault_thread_cpus(WriteTracking *wt, const cpu_set_t *cpus);

/*
 * Write-protect all of every block. Meant for the pause: after it returns,
 * every write to guest RAM faults until the page is unprotected.
 */
bool write_tracking_protect_all(WriteTracking *wt, GError **errp);

/*
 * Remove protection from [@offset, @offset + @len) of block @block_index and
 * wake the threads that faulted there. Returns 0 or -errno; thread-safe.
 */
int write_tracking_unprotect(WriteTracking *wt, unsigned block_index, uint64_t offset,
                             uint64_t len);

/*
 * Called by write_tracking_unprotect() before (@done false) and after (@done
 * true) it removes protection from [@offset, @offset + @len) of block
 * @block_index, on whatever thread unprotects: epoch tracking records the
 * pages as written before the guest can write them unseen, and as open (to
 * be protected again) only once they are writable, so that a pass that takes
 * the open ones and protects them can never protect a page before its
 * release (which would leave it writable for good). Must not block.
 */
typedef void (*WriteTrackingReleaseFunc)(void *opaque, unsigned block_index, uint64_t offset,
                                         uint64_t len, bool done);

/* Install @fn (NULL: none) before protection is first removed. */
void write_tracking_set_release_hook(WriteTracking *wt, WriteTrackingReleaseFunc fn,
                                     void *opaque);

/*
 * Whether block @block_index may leave userfaultfd region by region before
 * the stop (write_tracking_let_go()): shared memory (shmem), tracked without
 * a release hook (epoch tracking keeps every range registered).
 */
bool write_tracking_can_let_go(WriteTracking *wt, unsigned block_index);

/*
 * For good: unregister [@offset, @offset + @len) of block @block_index
 * (whole 2 MiB regions from a 2 MiB boundary; the last may end at the
 * block's end), waking whoever faulted there, and give its pages write
 * access back. Only for a range whose every page is saved: nothing there is
 * tracked any more. Unprotecting a range that was let go does nothing, and
 * the stop leaves it alone. Thread-safe; a no-op for a range let go already.
 * 0 or -errno (then the range stays registered, its protection removed).
 */
int write_tracking_let_go(WriteTracking *wt, unsigned block_index, uint64_t offset,
                          uint64_t len);

/* Bytes let go so far. */
uint64_t write_tracking_let_go_bytes(WriteTracking *wt);

/* Write-protect [@offset, @offset + @len) of block @block_index again. 0 or -errno. */
int write_tracking_protect(WriteTracking *wt, unsigned block_index, uint64_t offset,
                           uint64_t len);

/* Wake threads that faulted in a range without changing protection (0 or -errno). */
int write_tracking_wake(WriteTracking *wt, unsigned block_index, uint64_t offset,
                        uint64_t len);

/*
 * Stop: join the fault thread, then remove every protection (waking every
 * blocked thread), unregister every range (shared memory: and give its
 * pages write access back) and close the userfaultfd. Safe to
 * call at any point after write_tracking_new(), more than once. Whoever may
 * block the fault callback (a full pool, a page another thread is copying)
 * must release it first, or the join waits for it.
 */
void write_tracking_stop(WriteTracking *wt);

/* Stop (if not yet) and free. NULL is fine. */
void write_tracking_free(WriteTracking *wt);

/* True once write_tracking_stop() has begun: fault callbacks stop waiting. */
bool write_tracking_is_stopping(WriteTracking *wt);

/* The features the userfaultfd was opened with. */
uint64_t write_tracking_features(WriteTracking *wt);

/* True when never-touched memory is protected without populating it. */
bool write_tracking_has_wp_unpopulated(WriteTracking *wt);

/* Fault events read / write faults delivered to the callback so far. */
uint64_t write_tracking_events_read(WriteTracking *wt);

/* Nanoseconds write_tracking_new() spent registering (and populating), and
 * the last write_tracking_protect_all() took. */
uint64_t write_tracking_register_ns(WriteTracking *wt);
uint64_t write_tracking_protect_ns(WriteTracking *wt);

/* CLOCK_MONOTONIC now, in nanoseconds (the clock of @read_ns). */
uint64_t write_tracking_now_ns(void);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(WriteTracking, write_tracking_free)

#endif
