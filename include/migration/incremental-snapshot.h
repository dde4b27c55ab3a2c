/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Incremental snapshots seen from the migration core: snapshot-base checks, the new image's identity, the epoch chain. */
#ifndef MIGRATION_INCREMENTAL_SNAPSHOT_H
#define MIGRATION_INCREMENTAL_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "migration/image-identity.h"

typedef struct MigrationState MigrationState;
typedef struct IncrementalSnapshot IncrementalSnapshot;
typedef struct SavevmLoadInfo SavevmLoadInfo;
typedef struct EpochTracking EpochTracking;
struct stat;

/*
 * At migrate, on the monitor's thread: what the next migration to @uri
 * needs of incremental snapshots. With snapshot-base set, checks that it
 * can be done (background-snapshot and incremental-snapshot on, tracking
 * running and not lost, the base an image of the epoch chain with its
 * digest, the layout of mapped-ram); the refusal names the reason. NULL
 * with @errp on refusal.
 */
IncrementalSnapshot *incremental_snapshot_prepare(MigrationState *s, const char *uri,
                                                  GError **errp);

/*
 * On the migration thread, before a background snapshot with the
 * incremental-snapshot capability: start epoch tracking if it is not
 * running yet, read the base through if it is not the file frostvm wrote,
 * and fill @id for the new image (a fresh UUID; the base's UUID, digest and
 * recorded path).
 */
bool incremental_snapshot_begin(MigrationState *s, IncrementalSnapshot *inc,
                                ImageIdentity *id, GError **errp);

/*
 * The buffer pool an increment needs when background-snapshot-buffer-size is
 * automatic: the pages written since the base so far, with room to grow,
 * instead of a quarter of RAM (populating a large pool costs an increment
 * of a few MiB more than its pages). 0 for a full snapshot (the default).
 */
uint64_t incremental_snapshot_pool_bytes(MigrationState *s, IncrementalSnapshot *inc);

/* The base's UUID (what the snapshot saves changes since), or NULL for a full snapshot. */
const uint8_t *incremental_snapshot_base_uuid(IncrementalSnapshot *inc);

/* The snapshot wrote image @id (with its digest): it joins the chain once its file is in place. */
void incremental_snapshot_written(IncrementalSnapshot *inc, const ImageIdentity *id);

/* The migration ended (@ok: the image is complete and in place). */
void incremental_snapshot_finish(MigrationState *s, IncrementalSnapshot *inc, bool ok);

void incremental_snapshot_free(IncrementalSnapshot *inc);

/*
 * Guest RAM was restored from the image file @path (@info: its identity):
 * with incremental-snapshot on, start tracking here (every page
 * write-protected), with the image as the first of a new epoch chain, so
 * that snapshot-base may name it. If the guest ran since the restore (a
 * lazy fill), the caller must mark what it changed before this returned. @read_st: the file as it was before its bytes
 * were read (another file at @path later is read through first). Returns
 * the tracking, not yet published (the caller may mark pages it knows
 * changed, epoch_tracking_mark_written()), or NULL: without @errp set when
 * there is nothing to track (capability off, a pipe or socket with @path
 * NULL, an image without a UUID).
 */
EpochTracking *incremental_snapshot_restored_begin(MigrationState *s, const char *path,
                                                   const SavevmLoadInfo *info,
                                                   const struct stat *read_st, GError **errp);

/* Make @et the migration's tracking (or free it, if the capability went off meanwhile). */
void incremental_snapshot_restored_publish(MigrationState *s, EpochTracking *et);

/* The capability went off: stop tracking, forget the chain. */
void incremental_snapshot_stop_tracking(MigrationState *s);

#endif
