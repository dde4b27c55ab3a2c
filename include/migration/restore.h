/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Restoring a page-aligned image: eager, lazy (userfaultfd) or mapped, with the fill's progress and its failure. */
#ifndef MIGRATION_RESTORE_H
#define MIGRATION_RESTORE_H

#include <stdbool.h>
#include <glib.h>
#include <json-glib/json-glib.h>

typedef struct MigrationChannel MigrationChannel;
typedef struct MigrationState MigrationState;
typedef struct RestoreState RestoreState;
typedef struct SavevmLoadInfo SavevmLoadInfo;

/*
 * Whether the incoming channel @ch is a file holding a page-aligned image
 * (looks at its first 16 bytes with pread; the stream position is unchanged).
 */
bool restore_channel_is_mapped_image(MigrationChannel *ch);

/*
 * On the incoming thread: restore the page-aligned image on @ch into
 * s->machine in the mode of the restore-mode parameter. Checks the image and
 * the machine, loads the device state, then: eager reads every page now;
 * lazy registers guest RAM for missing-page faults and starts the fault and
 * fill threads; map maps the image privately and starts the verifier. When
 * it returns true the guest may run (s->restore is set); RAM that is still
 * arriving is reported by query-migrate. False (nothing started) on failure.
 */
bool restore_image_start(MigrationState *s, MigrationChannel *ch, SavevmLoadInfo *info,
                         GError **errp);

/*
 * On the main loop, before the guest starts after restore_image_start():
 * false if the fill has already failed (the guest must not run; the failure
 * is reported once restore_image_guest_started() is called). True without a
 * restore.
 */
bool restore_image_may_run(MigrationState *s);

/*
 * On the main loop, once the guest was started (or left paused): the
 * migration status becomes completed for an eager restore, postcopy-active
 * while a fill runs, then completed (with RESTORE_FILL_COMPLETED) when it is
 * done, or failed with the guest stopped in internal-error.
 */
void restore_image_guest_started(MigrationState *s);

/* Whether a fill is still running (lazy or map mode). */
bool restore_is_filling(MigrationState *s);

/*
 * Whether guest RAM holds the whole image once the load returned: a stream,
 * or an eager restore (not a lazy fill, nor the map mode's mapping).
 */
bool restore_image_filled_at_load(MigrationState *s);

/*
 * Wait (on a migration thread) until the fill of a restore, if one runs, has
 * ended: an outgoing migration needs ordinary guest memory. False if the
 * fill failed or the migration was cancelled meanwhile.
 */
bool restore_wait_fill(MigrationState *s, GError **errp);

/*
 * Whether guest RAM can be write-protected for a background snapshot:
 * false (with the reason) for a guest restored in map mode, whose RAM is a
 * private file mapping.
 */
bool restore_allows_write_protect(MigrationState *s, GError **errp);

/* Add the restore's figures ("restore" object) to a query-migrate reply. */
void restore_stats_to_json(MigrationState *s, JsonBuilder *b);

/* Append them as `info migrate` lines. */
void restore_stats_to_hmp(MigrationState *s, GString *out);

/* Stop the fill (releasing any blocked vCPU) and free everything. NULL is fine. */
void restore_free(RestoreState *r);

#endif
