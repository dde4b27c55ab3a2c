/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Epoch tracking for incremental snapshots: which guest pages were written since each snapshot's instant. */
#ifndef MIGRATION_EPOCH_TRACKING_H
#define MIGRATION_EPOCH_TRACKING_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include <sys/stat.h>

#include "migration/image-identity.h"

typedef struct EpochTracking EpochTracking;
typedef struct BackgroundSnapshot BackgroundSnapshot;
typedef struct WriteTracking WriteTracking;

/*
 * With the incremental-snapshot capability on, guest RAM stays registered
 * with one synchronous userfaultfd from the first snapshot on. Every page
 * is write-protected at a snapshot's instant; the first write to a page
 * afterwards faults, and the fault thread records the page as written
 * *before* it removes the protection. So at the next instant (vCPUs
 * stopped) every page the guest changed since the last one is recorded,
 * including a page whose write raced with the instant: its vCPU cannot
 * park before its fault was served. A background snapshot borrows the same
 * userfaultfd (a VMA has only one) and leaves saved pages protected, so
 * writes during the snapshot count for the new epoch too. The choice and
 * its measurements are in docs/incremental.md.
 *
 * The images taken since tracking began form the epoch chain: for each,
 * the pages written since its instant, so an incremental snapshot on any
 * of them knows what to save.
 */

/* Summary for query-migrate and `info migrate`. */
typedef struct EpochTrackingStats {
    bool started;               /* a snapshot's instant has begun an epoch */
    uint64_t faults;            /* write faults served between snapshots */
    uint64_t epoch_pages;       /* pages written in the current epoch so far */
    uint64_t images;            /* images in the epoch chain */
    char *lost;                 /* why tracking was lost, or NULL (caller frees) */
} EpochTrackingStats;

/*
 * Register @blocks (RamBlock *) for write-protect and start the fault
 * thread. Nothing is protected until the first instant. NULL with @errp.
 */
EpochTracking *epoch_tracking_new(GPtrArray *blocks, GError **errp);

/* Stop tracking (every page writable, the userfaultfd closed) and free. NULL is fine. */
void epoch_tracking_free(EpochTracking *et);

/* The userfaultfd a background snapshot shares while tracking runs. */
WriteTracking *epoch_tracking_write_tracking(EpochTracking *et);

/*
 * Guest running, before a snapshot's pause: protect again what was written
 * since the last instant, so the pause has only the pages written since
 * this call left to protect.
 */
bool epoch_tracking_prearm(EpochTracking *et, GError **errp);

/*
 * In the pause (vCPUs stopped): the snapshot's instant. The pages written
 * since the last instant go into every chain image's record, a new epoch
 * begins, every page is protected (but for the few the guest was writing,
 * which @bs may copy in the pause and which then count as written in the
 * new epoch); then @bs learns what to save (the pages written since
 * @base_uuid's instant, or everything when NULL) and takes over the fault
 * service until epoch_tracking_detach(). With @bs NULL only the epoch
 * changes (tests, the start of a restored chain). False with @errp set if
 * protection cannot be restored (tracking is then lost), the base left the
 * chain, or @bs could not arm.
 */
bool epoch_tracking_instant(EpochTracking *et, BackgroundSnapshot *bs,
                            const uint8_t *base_uuid, GError **errp);

/*
 * The fault thread (holding the tracker's lock, as when it serves a fault)
 * could not unprotect pages of block @block_index (@err: -errno): release
 * all of guest RAM, so that no writer stays blocked, and say tracking is
 * lost (increments are refused until it is turned off and on again).
 */
void epoch_tracking_lose_locked(EpochTracking *et, unsigned block_index, int err);

/*
 * A snapshot's fault thread, once the faulting page's backing page at
 * @group is saved: release it, or a run of saved pages ahead of a
 * sequential writer, as between snapshots (recorded as written).
 */
void epoch_tracking_release_saved(EpochTracking *et, BackgroundSnapshot *bs,
                                  unsigned block_index, uint64_t group);

/* The snapshot is over (completed or not): faults are tracking's alone again. */
void epoch_tracking_detach(EpochTracking *et);

/*
 * Whether an incremental snapshot on the image file @path can be taken now:
 * tracking has begun and was not lost, @path's identity is an image of the
 * epoch chain with the digest it had when taken. @id receives @path's
 * identity. *@needs_verify is set when @path is not the file frostvm
 * wrote (another inode, size or modification time): its bytes must then be
 * read to prove they still give the digest (image_identity_verify()).
 */
bool epoch_tracking_check_base(EpochTracking *et, const char *path, ImageIdentity *id,
                               bool *needs_verify, GError **errp);

/* @path was verified to be the chain image @uuid: remember its file. */
void epoch_tracking_base_verified(EpochTracking *et, const uint8_t uuid[IMAGE_UUID_SIZE],
                                  const char *path);

/*
 * A snapshot whose instant was the last one completed as image @id, at
 * @path when known (a file: URI; NULL for pipes and sockets): it joins the
 * epoch chain, with nothing written since its instant beyond what the
 * current epoch records. @expect (or NULL): the file as stat() saw it when
 * its bytes were read; if @path is another file by now, it is read through
 * before an increment builds on it.
 */
void epoch_tracking_add_image(EpochTracking *et, const ImageIdentity *id, const char *path,
                              const struct stat *expect);

/*
 * Pages [@first, @first + @n) of block @block changed in the current epoch
 * without a fault telling (a restore found them changed by content).
 */
void epoch_tracking_mark_written(EpochTracking *et, unsigned block, uint64_t first, uint64_t n);

/* Tracking can no longer be trusted (@why): incremental snapshots are refused. */
void epoch_tracking_set_lost(EpochTracking *et, const char *why);

void epoch_tracking_get_stats(EpochTracking *et, EpochTrackingStats *st);

/*
 * Pages written since the instant of chain image @uuid so far (what an
 * increment on it would save if taken now; 0 when @uuid is not in the chain).
 */
uint64_t epoch_tracking_pages_since_count(EpochTracking *et, const uint8_t uuid[IMAGE_UUID_SIZE]);

/*
 * Copy into @out (one bit per page of block @block) the pages written since
 * the instant of chain image @uuid up to now: its record and the current
 * epoch so far (with the guest running, more may follow). False if @uuid is
 * not in the chain.
 */
bool epoch_tracking_copy_since(EpochTracking *et, const uint8_t uuid[IMAGE_UUID_SIZE],
                               unsigned block, unsigned long *out);

#endif
