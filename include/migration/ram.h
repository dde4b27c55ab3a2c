/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Precopy: guest RAM sent in passes while the guest runs, then the rest with it stopped. */
#ifndef MIGRATION_RAM_H
#define MIGRATION_RAM_H

#include <stdbool.h>
#include <stdint.h>
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

/*
 * Settling: once what is left fits the limit, up to this many more live
 * passes while each at least halves it (or it grew past its best) and it
 * is over RAM_SETTLE_BYTES.
 */
#define RAM_SETTLE_PASSES 4u
#define RAM_SETTLE_BYTES (256u * 1024u)

/* Precopy's switch-over decision, one per migration. */
typedef struct RamConvergence {
    uint64_t last_remaining;    /* dirty bytes after the pass before; UINT64_MAX at first */
    uint64_t best_remaining;    /* the least left after a pass within the limit; 0: none yet */
    unsigned settle_passes;     /* passes made although the limit was already met */
} RamConvergence;

/*
 * After a live pass left @remaining dirty bytes at @bandwidth (bytes/s):
 * true to stop the guest and send the rest. QEMU's rule (the rest fits
 * @limit_ms at that bandwidth), then settling.
 */
bool ram_switch_over_ready(RamConvergence *c, uint64_t remaining, uint64_t bandwidth,
                           uint64_t limit_ms);

#endif
