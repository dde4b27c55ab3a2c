/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The background snapshot's shared context: what its scan, fault handler and writer see of each other. */
#ifndef MIGRATION_SNAPSHOT_INTERNAL_H
#define MIGRATION_SNAPSHOT_INTERNAL_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <glib.h>

#include "migration/page-pool.h"
#include "migration/write-tracking.h"
#include "util/latency-histogram.h"
#include "util/pi-mutex.h"

typedef struct RamBlock RamBlock;
typedef struct StreamFile StreamFile;
typedef struct MappedRamWriter MappedRamWriter;
typedef struct EpochTracking EpochTracking;
typedef struct Machine Machine;
typedef struct MigrationChannel MigrationChannel;

#define SNAPSHOT_PAGE_SIZE 4096u
/* Largest backing page supported (2 MiB hugetlbfs): a fault must fit in the pool. */
#define SNAPSHOT_MAX_BACKING_PAGE (2u << 20)
/* Scan step: the THP size, so a chunk's unprotect keeps huge mappings whole. */
#define SNAPSHOT_SCAN_CHUNK_PAGES 512u
/* Largest aligned block a fault saves around the faulting page (the THP size). */
#define SNAPSHOT_FAULT_BLOCK_MAX_PAGES 512u
/* A transparent huge page, in 4 KiB pages: protection changes in these where RAM is mapped huge. */
#define SNAPSHOT_HUGE_PAGES 512u

/*
 * Per RAM block claim state. A page is "claimed" by whoever sets its bit
 * first (scan or fault handler) and only that thread saves it. "saved" is set,
 * with release order, once the page's content is copied or known to be zero:
 * only then may anyone remove its write protection.
 */
typedef struct SnapshotBlock {
    RamBlock *rb;
    uint64_t pages;
    uint64_t regions;           /* 2 MiB regions (the last may be partial) */
    uint32_t group_pages;       /* backing page in 4 KiB pages: protection changes in these */
    unsigned long *claimed;
    unsigned long *saved;
    /*
     * Pages known zero without reading (never populated, or the zero page):
     * before the early protect (see snapshot_engine_prearm()) and in the
     * pause. Those of the pause are claimed and saved there, and were never
     * protected; the scan writes their zero records.
     */
    unsigned long *zero_before;
    unsigned long *zero_at_pause;
    /*
     * Under epoch tracking: the pages it released between the prearm and the
     * instant, taken in the pause (written there, so populated beforehand:
     * first touches of a fresh bitmap cost 20-30 us a page in a pause here).
     */
    unsigned long *opened;
    /*
     * Per 2 MiB region: mapped by one huge PMD in the pause and still whole
     * (atomic; protection changes only for the whole region while set), and
     * split by us because a fault had to be served small (atomic; the region
     * goes to the collapse thread once saved).
     */
    unsigned long *huge;
    unsigned long *split;
} SnapshotBlock;

/* A range of one RAM block. */
typedef struct SnapshotRange {
    unsigned block_index;
    uint64_t offset;
    uint64_t len;
} SnapshotRange;

/* One RAM record on its way to the writer: contiguous pages of one block. */
typedef struct SnapshotRecord {
    unsigned block_index;
    uint64_t offset;            /* bytes into the block */
    uint32_t npages;
    bool zero;                  /* no data: the pages are all zero */
    uint32_t slots[];           /* npages pool slots holding the data (unless zero) */
} SnapshotRecord;

/*
 * The thread that puts split huge pages back together (MADV_COLLAPSE), off
 * the fault thread and the vCPUs: a collapse copies 2 MiB with the mmap lock
 * held for writing, about a millisecond.
 */
typedef struct SnapshotCollapser {
    GThread *thread;
    GMutex lock;
    GCond cond;
    GQueue queue;               /* SnapshotRange *: regions saved and released */
    bool finishing;             /* protection is gone: collapse the queue, then stop */
    bool drained;               /* the thread has emptied the queue and is ending */
    bool unsupported;           /* the kernel has no MADV_COLLAPSE */
} SnapshotCollapser;

/*
 * The pause's second copying thread (snapshot-pause-copy.c): one pause's
 * work, 2 MiB pieces taken from one counter by both threads.
 */
typedef struct SnapshotPauseCopy {
    GThread *thread;
    int tid;                    /* atomic: the helper's kernel id, once it runs */
    GMutex lock;
    GCond cond;
    bool woken;                 /* under lock: the pause has begun */
    bool quit;                  /* under lock */
    bool published;             /* atomic: pieces and nr are set */
    const SnapshotRange *pieces;
    unsigned nr;
    unsigned next;              /* atomic: the next piece to take */
    unsigned done;              /* atomic: pieces saved (or failed) */
    GError *error;              /* under lock: the first failure */
} SnapshotPauseCopy;

/* The starvation watchdog (snapshot-watchdog.c): a thread from the scan's start to the drain's end. */
typedef struct SnapshotWatchdog {
    GThread *thread;
    GMutex lock;
    GCond cond;
    bool stop;
} SnapshotWatchdog;

/* Pacing faults while the pool is low (snapshot-pacer.c); fault thread only. */
typedef struct SnapshotPacer {
    uint64_t sample_ns;         /* last drain sample */
    uint64_t sample_returned;   /* pool pages returned then */
    double drain_pages_per_s;   /* moving average; 0 until measured */
    double tokens;              /* pages faults may take before waiting */
    uint64_t tokens_ns;
} SnapshotPacer;

/* The writer thread and its queue; it alone writes to the stream while it runs. */
typedef struct SnapshotWriter {
    StreamFile *f;
    MappedRamWriter *mapped;    /* mapped-ram: pages go to their offsets, not into @f */
    PagePool *pool;
    GThread *thread;
    PiMutex lock;               /* the fault handler pushes; the idle-priority writer pops */
    PiCond cond;
    GQueue queue;               /* SnapshotRecord * */
    bool finishing;             /* no more records: drain and stop */
    bool failed;                /* atomic: a write failed; records are dropped */
    GError *error;              /* the first failure, under lock */
    /* Figures, updated by the writer thread (atomic reads elsewhere). */
    uint64_t records;
    uint64_t data_pages;
    uint64_t zero_pages;
    uint64_t bytes;             /* record bytes handed to the stream */
    uint64_t unflushed;         /* writer thread only: bytes since the last flush */
    uint64_t pressure_flushes;  /* writer thread only */
    /* Priority: SCHED_IDLE, lifted for a while when starved (see snapshot_writer_boost_starved()). */
    GMutex prio_lock;
    pid_t tid;                  /* 0 until the thread runs */
    bool lowered;               /* it runs at SCHED_IDLE */
    bool keep_priority;         /* the vCPUs fill the CPUs: never SCHED_IDLE */
    uint64_t boost_until_ns;    /* lifted until then (0: not lifted) */
    uint64_t starved_boosts;
} SnapshotWriter;

typedef struct SnapshotFigures {
    uint64_t write_faults;      /* atomic: fault events served */
    uint64_t pages_out_of_order;
    uint64_t pages_saved_ahead; /* atomic: saved by the scan running ahead of a fault */
    uint64_t pages_saved_in_pause; /* written in the pause only: hot ranges saved there */
    uint64_t pages_unpopulated; /* known zero in the pause */
    uint64_t huge_in_pause;     /* 2 MiB regions mapped huge in the pause */
    uint64_t huge_whole_faults; /* atomic: faults served by saving a whole huge page */
    uint64_t huge_split;        /* atomic: huge pages split to serve a fault small */
    uint64_t huge_restored;     /* atomic: split ones collapsed again (MADV_COLLAPSE) */
    uint64_t huge_collapse_failed; /* atomic */
    uint64_t paced_faults;      /* atomic: faults that waited for the pacer */
    uint64_t paced_ns;          /* atomic: and how long, in all */
    uint64_t saved_pages;       /* atomic: pages with their "saved" bit set */
    uint64_t pages_unchanged;   /* incremental: pages not written since the base (not saved) */
    uint64_t fault_waits_on_scan;
    uint64_t scan_boosts;       /* under scan_prio_lock */
    uint64_t scan_starved_boosts; /* under scan_prio_lock */
    uint64_t scan_ahead_boosts; /* under scan_prio_lock */
} SnapshotFigures;

/* Ranges saved in the pause that the scan runs ahead from first. */
#define SNAPSHOT_PAUSE_SAVED_MAX 8

typedef struct BackgroundSnapshot {
    GPtrArray *ram_blocks;      /* RamBlock *, borrowed from the machine */
    SnapshotBlock *blocks;
    unsigned nr_blocks;
    uint64_t total_pages;

    WriteTracking *wt;          /* owned, or borrowed from @epoch */
    /*
     * Incremental-snapshot tracking (NULL without): it owns the userfaultfd
     * and its fault thread, hands faults to this snapshot from the instant
     * on, and records every page released; saved pages stay protected so
     * that writes during the snapshot are seen for the new epoch.
     */
    EpochTracking *epoch;
    bool has_base;              /* incremental: save only what changed since base_uuid */
    bool vcpus_fill_cpus;       /* vCPUs can take every CPU: nothing at SCHED_IDLE, no boosts */
    uint8_t base_uuid[16];
    PagePool *pool;
    uint64_t pool_keep_ms;            /* snapshot_engine_keep_pool(); 0: freed with the engine */
    GMainContext *pool_keep_context;
    SnapshotWriter writer;
    LatencyHistogram fault_latency;
    SnapshotFigures fig;
    uint32_t fault_block_max_pages;   /* power of two, 1..SNAPSHOT_FAULT_BLOCK_MAX_PAGES */
    /* atomic: 0 while the fault thread serves a fault, else when it last finished (ns) */
    uint64_t fault_idle_since_ns;
    bool aborting;              /* atomic: give up; fault handler releases without saving */
    int pagemap_fd;             /* /proc/self/pagemap, or -1 (then every page is read) */
    SnapshotCollapser collapser;
    SnapshotPauseCopy pause_copy;
    SnapshotPacer pacer;
    bool pool_covers_rest;      /* atomic: see snapshot_pool_covers_rest() */
    SnapshotWatchdog watchdog;
    bool finished;
    uint64_t setup_ns;

    /* Before the pause (see snapshot_engine_prearm()). */
    GMutex arm_lock;
    bool prearmed;              /* atomic reads; changed under arm_lock */
    bool zero_before_known;     /* the early protect filled zero_before and huge */
    GArray *prearm_released;    /* SnapshotRange: released by faults before the pause */
    unsigned prearm_releases;   /* atomic: its length, read without arm_lock */
    uint64_t prearm_ns;         /* the early protect, before the pause */
    uint64_t arm_ns;            /* finding zero pages and protecting, inside the pause */

    /* The scan runs at SCHED_IDLE; a fault waiting on its claims boosts it. */
    GMutex scan_prio_lock;
    pid_t scan_tid;             /* 0 while no scan runs */
    bool scan_lowered;          /* the scan thread is at SCHED_IDLE */
    bool scan_boosted;          /* atomic */          /* registering, populating, pool, threads */
    uint64_t scan_starved_until_ns; /* atomic: a starvation boost holds until then */
    /* atomic: (block << 40 | page after the last fault's block) + 1, or 0; see snapshot-scan.c */
    uint64_t scan_hint;
    /*
     * Written in the pause, read by the scan after it: ranges saved there.
     * A guest writing in order goes on after one of them, so the scan runs
     * ahead from the end of each first.
     */
    SnapshotRange pause_saved[SNAPSHOT_PAUSE_SAVED_MAX];
    unsigned nr_pause_saved;
} BackgroundSnapshot;

/* snapshot-engine.c: the lifecycle, free of the migration core (unit-testable) */

typedef struct BackgroundSnapshotStats BackgroundSnapshotStats;

/*
 * For the collapse thread: SCHED_BATCH, which weighs like normal priority
 * but never preempts a running thread when it wakes. Best effort.
 */
void snapshot_thread_yield_to_vcpus(void);

/* Pool size for @ram_bytes of guest RAM when the parameter is 0 (auto). */
uint64_t snapshot_default_pool_size(uint64_t ram_bytes);

/*
 * Before the pause: register @blocks (RamBlock *) for write-protect, map a
 * pool of @pool_bytes (0: the default), start the writer on @f (or, with
 * @mapped not NULL, on that page-aligned image: positioned writes, nothing
 * into @f) and the fault handler. Nothing is protected yet. NULL with @errp
 * set on failure.
 */
BackgroundSnapshot *snapshot_engine_new(GPtrArray *blocks, uint64_t pool_bytes,
                                        StreamFile *f, MappedRamWriter *mapped,
                                        GError **errp);

/*
 * snapshot_engine_new() on the userfaultfd of @epoch (epoch tracking): the
 * snapshot saves what its base (snapshot_engine_set_base()) needs, and
 * leaves every page it saved protected for the next epoch (but for those it
 * copied in the pause, which tracking counts as written).
 */
BackgroundSnapshot *snapshot_engine_new_tracked(GPtrArray *blocks, uint64_t pool_bytes,
                                                StreamFile *f, MappedRamWriter *mapped,
                                                EpochTracking *epoch, GError **errp);

/* Before the pause: save only the pages written since the instant of image @uuid. */
void snapshot_engine_set_base(BackgroundSnapshot *bs, const uint8_t *uuid);

/*
 * When the engine is freed, keep its pool for @keep_ms on @context for the
 * next snapshot (page_pool_keep()) instead of freeing it.
 */
void snapshot_engine_keep_pool(BackgroundSnapshot *bs, uint64_t keep_ms, GMainContext *context);

/*
 * Before the pause: the guest runs @nr_vcpus vCPUs. When they can take every
 * CPU this thread may run on, the scan never leaves idle priority to run
 * ahead of a fault (it would take a vCPU's time). Unset, the scan may.
 */
void snapshot_engine_set_vcpus(BackgroundSnapshot *bs, unsigned nr_vcpus);

/* The vCPUs fill the CPUs: the writer leaves (or never enters) SCHED_IDLE. */
void snapshot_writer_keep_priority(SnapshotWriter *w);

/*
 * Before the pause, with the guest running: write-protect all RAM now, so the
 * pause only has to protect again what the guest wrote in between. Until
 * snapshot_engine_arm(), a write fault just releases a 2 MiB block and
 * remembers it. Optional: without it, arm protects everything.
 */
bool snapshot_engine_prearm(BackgroundSnapshot *bs, GError **errp);

/*
 * After snapshot_engine_prearm(), with the guest running: wait (at most a
 * few milliseconds) until its writes stop finding new blocks to release,
 * so that the pause knows all it is writing now.
 */
void snapshot_engine_prearm_settle(BackgroundSnapshot *bs);
/* The same, until no release for @quiet_ns, at most @max_ns (tests). */
void snapshot_engine_prearm_settle_for(BackgroundSnapshot *bs, uint64_t quiet_ns,
                                       uint64_t max_ns);

/*
 * Inside the pause: make all RAM write-protected (again, for what the guest
 * wrote since snapshot_engine_prearm()). From here on faults save pages.
 */
bool snapshot_engine_arm(BackgroundSnapshot *bs, GError **errp);

/*
 * The pause under epoch tracking, after it took the pages it released since
 * the prearm into the blocks' @opened maps (@opened_pages of them in each
 * block): whether they are few enough (and the pool large enough) to be
 * copied in the pause and left writable, rather than protected again, only
 * to fault at once when the guest runs on (as the ranges a guest was writing
 * are without tracking, see HOT_SAVE_MAX_BYTES).
 */
bool snapshot_tracked_hot_fits(BackgroundSnapshot *bs, const uint64_t *opened_pages);

/*
 * The pause under epoch tracking (called by it): every page is protected,
 * but for the @opened ones when @hot, which this saves in the pool (or, when
 * it has no room, protects). @needed (per block, pages written since the
 * base; NULL: every page) is what to save; every other page counts as saved
 * already, so the scan skips it and a fault on it only releases it. The
 * pages to save that are zero now are saved as zero without being read; the
 * rest of what was zero at the prearm and not opened since still is.
 */
bool snapshot_arm_tracked(BackgroundSnapshot *bs, unsigned long *const *needed, bool hot,
                          GError **errp);

/*
 * After the pause: scan, and wait until every page is saved (faults may
 * still be copying theirs). @tick as for snapshot_scan_run().
 */
bool snapshot_engine_save_ram(BackgroundSnapshot *bs, bool (*tick)(void *opaque),
                              void *opaque, GError **errp);

/*
 * Stop write tracking (all protection removed, blocked vCPUs woken) and
 * drain the writer. On success every RAM record is in the stream and the
 * stream is free for the caller again. Safe after any failure; idempotent.
 */
bool snapshot_engine_finish(BackgroundSnapshot *bs, GError **errp);

/* Give up: release the guest and anything waiting, then finish. */
void snapshot_engine_abort(BackgroundSnapshot *bs);

/* Abort if still running, and free everything. NULL is fine. */
void snapshot_engine_free(BackgroundSnapshot *bs);

/* Fill @st with the figures so far (downtime is the caller's). */
void snapshot_engine_get_stats(BackgroundSnapshot *bs, BackgroundSnapshotStats *st);

/* snapshot-writer.c */

/* Set up the writer's locks and queue (no thread yet); snapshot_writer_clear() undoes it. */
void snapshot_writer_init(SnapshotWriter *w);
void snapshot_writer_clear(SnapshotWriter *w);

/*
 * Start the writer thread draining into @f (or into @mapped, see
 * snapshot_engine_new()), giving slots back to @pool.
 */
bool snapshot_writer_start(SnapshotWriter *w, StreamFile *f, MappedRamWriter *mapped,
                           PagePool *pool, GError **errp);

/*
 * Queue a record (ownership passes to the writer). After a write failure the
 * record is dropped and its slots returned at once.
 */
void snapshot_writer_push(SnapshotWriter *w, SnapshotRecord *rec);

/*
 * Drain the queue and join the thread. False with the first write error (the
 * stream's own or the writer's). Safe to call when never started.
 */
bool snapshot_writer_finish(SnapshotWriter *w, GError **errp);

/* True once a write has failed (checked by the scan to stop early). */
bool snapshot_writer_failed(SnapshotWriter *w);

/* Records queued and not yet written. */
unsigned snapshot_writer_pending(SnapshotWriter *w);

/*
 * Called by a watchdog when the writer made no progress for a while with
 * records queued: the vCPUs keep every CPU busy and an idle-priority thread
 * gets none (it would never finish the stream). Run it at SCHED_BATCH for
 * @for_ns, then let it drop back.
 */
void snapshot_writer_boost_starved(SnapshotWriter *w, uint64_t for_ns);

/* Set @errp to "writing RAM failed: <the stream's reason>". Any thread. */
void snapshot_writer_get_error(SnapshotWriter *w, GError **errp);

/* Build records for pages [first, first + n) of a block, zero or with @slots. */
SnapshotRecord *snapshot_record_new(unsigned block_index, uint64_t first_page, uint32_t npages,
                                    bool zero, const uint32_t *slots);

/* snapshot-scan.c */

/*
 * Save every page not yet claimed, block by block, in chunks; runs on the
 * calling thread (lowered to SCHED_IDLE while it scans). @tick (may be NULL)
 * runs between chunks (progress figures); it returns false to cancel. Stops
 * early, false, when cancelled, when the writer fails, or on abort.
 */
bool snapshot_scan_run(BackgroundSnapshot *bs, bool (*tick)(void *opaque), void *opaque,
                       GError **errp);

/*
 * Called by the fault thread when it waits for a page the scan claimed:
 * raise the scan (SCHED_FIFO if allowed) until it finishes its current
 * claims, so an idle-priority scan never holds a vCPU (priority inversion).
 */
void snapshot_scan_boost(BackgroundSnapshot *bs);

/*
 * Called by the fault thread after saving a block that ends before @page:
 * the scan saves the memory from @page on next (a sequential writer's path).
 * False if @page is past the block's end (nothing to run ahead into).
 */
bool snapshot_scan_hint(BackgroundSnapshot *bs, unsigned block_index, uint64_t page);

/*
 * In the pause, after saving @r: the scan runs ahead from its end first (up
 * to SNAPSHOT_PAUSE_SAVED_MAX such runs, a chunk of each in turn), as after
 * a fault, and saves the chunk below its start in the first turn.
 */
void snapshot_scan_after_pause_save(BackgroundSnapshot *bs, const SnapshotRange *r);

/*
 * Called by a watchdog when the scan made no progress for a while although
 * the pool had room: other work at normal priority keeps an idle-priority
 * scan off both CPUs (a busy host), and the snapshot would crawl. Run the
 * scan at normal priority for @for_ns, then let it drop back to SCHED_IDLE.
 */
void snapshot_scan_boost_starved(BackgroundSnapshot *bs, uint64_t for_ns);

/*
 * Called by the fault thread after a fault that sent the scan ahead (a guest
 * that caught up with it): the scan runs at a fair share for a while (see
 * SCAN_AHEAD_BOOST_NS), then drops back to SCHED_IDLE.
 */
void snapshot_scan_boost_ahead(BackgroundSnapshot *bs);

/* snapshot-pages.c: claiming, copying and releasing pages, shared by scan and faults */

/*
 * Publish pages [@first, @first + @n) of @sb, claimed by the caller, as saved
 * (content copied or known zero): from now on anyone may unprotect them.
 */
void snapshot_mark_saved(BackgroundSnapshot *bs, SnapshotBlock *sb, uint64_t first,
                         uint64_t n);

/*
 * Save the pages won in @claimed (bits relative to @first, @n pages): pages
 * flagged in @unpopulated (may be NULL) and pages that read as zero become
 * zero records; the others are copied into @slots (@nslots pool slots taken
 * by the caller, at least one per non-zero page), in contiguous runs, each
 * run its own record. Marks them saved, queues the records, and gives unused
 * slots back to the pool. Returns the number of pages saved.
 */
uint64_t snapshot_save_claimed(BackgroundSnapshot *bs, unsigned block_index, uint64_t first,
                               uint64_t n, const unsigned long *claimed, uint32_t *slots,
                               uint32_t nslots, const unsigned long *unpopulated);

/*
 * Remove protection from [@first, @first + @n) of block @block_index where
 * the pages are saved (one call when all are). Pages still being copied by
 * another thread stay protected. A region still mapped huge is released
 * whole or not at all (so it stays huge), and a region we split goes to the
 * collapse thread once all of it is saved. Under write tracking (@bs->epoch)
 * exactly the saved pages of the range are released, huge or not: tracking
 * counts every released page as written.
 */
void snapshot_unprotect_saved(BackgroundSnapshot *bs, unsigned block_index, uint64_t first,
                              uint64_t n, bool by_fault);

/* snapshot-collapse.c */

/* snapshot-watchdog.c: lifts the idle-priority scan and writer when they starve */

void snapshot_watchdog_init(BackgroundSnapshot *bs);
/* Stops the thread if it runs. */
void snapshot_watchdog_clear(BackgroundSnapshot *bs);
/* Watch from now on (idempotent). */
void snapshot_watchdog_start(BackgroundSnapshot *bs);
/* Stop watching and wait for the thread; safe when never started. */
void snapshot_watchdog_stop(BackgroundSnapshot *bs);

/* snapshot-pause-copy.c: the pause's copies on two CPUs */
/* Set up (no thread yet); snapshot_pause_copy_clear() undoes it, after _stop(). */
void snapshot_pause_copy_init(BackgroundSnapshot *bs);
void snapshot_pause_copy_clear(BackgroundSnapshot *bs);
/* Start the helper thread, before the pause (none where this process may use one CPU only). */
bool snapshot_pause_copy_start(BackgroundSnapshot *bs, GError **errp);
/* The pause has begun (vCPUs parked): the helper gets ready for the work. */
void snapshot_pause_copy_wake(BackgroundSnapshot *bs);
/*
 * In the pause, once per engine: save @pieces (2 MiB at most each, in the
 * pool or, when it has no room, by protecting them), with the helper if it
 * is awake; returns when all are done. False with @errp set if a protect
 * failed.
 */
bool snapshot_pause_copy_run(BackgroundSnapshot *bs, const SnapshotRange *pieces, unsigned nr,
                             GError **errp);
/* Save one piece (either thread); false with @errp set if protecting it failed. */
bool snapshot_save_pause_piece(BackgroundSnapshot *bs, const SnapshotRange *piece,
                               GError **errp);
/* Let the helper end and wait for it; safe when never started. */
void snapshot_pause_copy_stop(BackgroundSnapshot *bs);

/* snapshot-placement.c: the snapshot's threads on CPUs the vCPUs are not on */
typedef struct SnapshotPlacement {
    bool active;                /* CPUs narrowed */
    bool niced;                 /* nice raised (the vCPUs fill the CPUs) */
    int nice, nice_before;
    cpu_set_t before;           /* the calling thread's CPUs before */
    cpu_set_t vcpu_cpus;        /* one vCPU: the CPUs it may be on (before less spare); else empty */
    MigrationChannel *sink;     /* an exec: command moved with it, or NULL */
    int held_vcpu;              /* a vCPU thread held on vcpu_cpus, or 0 */
    cpu_set_t held_before;      /* its CPUs before */
} SnapshotPlacement;

/*
 * On the thread that runs the snapshot, before it starts any other: keep it
 * (and so every thread it starts, which inherit it) and @sink's command off
 * the CPUs the vCPUs run on now, or may run on if pinned; where the vCPUs
 * fill the CPUs, give them nice 10 instead. False, changing nothing, where
 * neither applies (no CPU would be left, or the nice is that high already).
 */
bool snapshot_placement_begin(SnapshotPlacement *pl, Machine *m, MigrationChannel *sink);
/*
 * With one vCPU and CPUs to spare, the fault thread of @bs (not epoch
 * tracking's, which outlives the snapshot) goes to the vCPU's CPU: a fault
 * is then served without waking another CPU.
 */
void snapshot_placement_fault_thread(SnapshotPlacement *pl, BackgroundSnapshot *bs);
/* Back to the CPUs before; safe when begin changed nothing. */
void snapshot_placement_end(SnapshotPlacement *pl);
/*
 * With one vCPU and CPUs to spare: keep the vCPU on the CPUs it is on until
 * snapshot_placement_release_vcpu() (from the early protect to the end of
 * the pause), so that the faults that release blocks before the pause do not
 * move it, woken, to the snapshot's own CPU.
 */
void snapshot_placement_hold_vcpu(SnapshotPlacement *pl, Machine *m);
void snapshot_placement_release_vcpu(SnapshotPlacement *pl);
/* Around the pause: its thread at the priority it had before (the vCPUs are parked then). */
void snapshot_placement_pause_begin(SnapshotPlacement *pl);
void snapshot_placement_pause_end(SnapshotPlacement *pl);

/* Set up the collapser's queue (no thread yet); snapshot_collapse_clear() undoes it. */
void snapshot_collapse_init(BackgroundSnapshot *bs);
void snapshot_collapse_clear(BackgroundSnapshot *bs);

/* Start the collapse thread. */
bool snapshot_collapse_start(BackgroundSnapshot *bs, GError **errp);

/* Queue the split region @region of block @block_index: all its pages are saved. */
void snapshot_collapse_push(BackgroundSnapshot *bs, unsigned block_index, uint64_t region);

/*
 * All protection is removed: collapse what is still queued or was refused
 * while protected, then let the thread end. Does not wait.
 */
void snapshot_collapse_unprotected(BackgroundSnapshot *bs);

/* As snapshot_collapse_unprotected(), and wait for the thread. Safe when never started. */
void snapshot_collapse_finish(BackgroundSnapshot *bs);

/* Whether 2 MiB region @region of @sb is mapped huge and whole (atomic read). */
bool snapshot_region_is_huge(SnapshotBlock *sb, uint64_t region);

/*
 * A fault must be served small in huge region @region: from now on its
 * protection changes in pieces (the kernel splits the mapping). Counts the
 * split and marks the region for the collapse thread. False if it was no
 * longer huge (someone else split it).
 */
bool snapshot_region_split(BackgroundSnapshot *bs, SnapshotBlock *sb, uint64_t region);

/* snapshot-pacer.c (fault thread only, but for snapshot_pool_covers_rest()) */

/*
 * Ask whether the pool's free pages cover every page still to save (with
 * room for one scan chunk): then no one can wait for the sink any more, so
 * faults are neither paced nor served small, and the scan may take the
 * faults' reserve (released here). Stays true. Any thread; takes the pool's
 * lock until true, so the fault thread asks once per fault and the scan once
 * per chunk.
 */
bool snapshot_pool_covers_rest(BackgroundSnapshot *bs);

/* The last answer of snapshot_pool_covers_rest(), without asking again. */
static inline bool snapshot_pool_covered(BackgroundSnapshot *bs)
{
    return __atomic_load_n(&bs->pool_covers_rest, __ATOMIC_ACQUIRE);
}

/* Sample the pool's drain (pages returned per second) at @now_ns. */
void snapshot_pacer_update(BackgroundSnapshot *bs, uint64_t now_ns);

/* True while the pool is low enough that faults are paced. */
bool snapshot_pacer_active(BackgroundSnapshot *bs);

/* Most pages one fault should save now (a power of two), so a paced wait stays short. */
uint32_t snapshot_pacer_block_cap(BackgroundSnapshot *bs);

/* Before a fault takes @pages buffers: wait as long as pacing asks (at most 2 ms). */
void snapshot_pacer_admit(BackgroundSnapshot *bs, uint32_t pages);

/* snapshot-fault.c */

/* The WriteTrackingFaultFunc of a background snapshot (@opaque is the BackgroundSnapshot). */
void snapshot_fault_handle(void *opaque, unsigned block_index, uint64_t offset,
                           uint64_t read_ns);

/*
 * A write fault before the pause (after snapshot_engine_prearm()): release the
 * block around it and remember it; served as a real fault once armed.
 */
void snapshot_prearm_release(BackgroundSnapshot *bs, unsigned block_index, uint64_t offset);

/* How many pages a fault saves around the faulting page now (a power of two). */
uint32_t snapshot_fault_block_pages(BackgroundSnapshot *bs);

#endif
