/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Precopy: guest RAM sent in passes while the guest runs, then the rest with it stopped. */
#ifndef MIGRATION_RAM_H
#define MIGRATION_RAM_H

#include <stdbool.h>
#include <glib.h>

typedef struct MigrationState MigrationState;
typedef struct StreamFile StreamFile;

/* Pages per RAM record at most (256 KiB of data): one write each. */
#define RAM_RECORD_MAX_PAGES 64u

/*
 * Run a whole precopy migration into @f (nothing written yet): header, RAM in
 * passes under the accelerator's dirty log (s->machine->accel), switch-over
 * once the remaining dirty RAM fits downtime-limit at the bandwidth measured
 * in the last pass, then stop the guest (runstate finish-migrate, sets
 * s->vm_stopped), send the rest, the devices and the footer. Moves the status
 * setup -> active -> device. Without dirty logging, or with the guest not
 * running, the guest is stopped first and RAM is sent once. Returns with the
 * guest still stopped; the caller decides between "postmigrate" and
 * resuming. Fails on stream errors and when cancelled.
 */
bool ram_save_precopy(MigrationState *s, StreamFile *f, GError **errp);

#endif
