/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The restore of a page-aligned image as its modes (eager, lazy, map) share it. */
#ifndef MIGRATION_RESTORE_INTERNAL_H
#define MIGRATION_RESTORE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include <sys/stat.h>

#include "migration/mapped-ram.h"
#include "migration/migration.h"
#include "migration/restore.h"
#include "migration/savevm.h"
#include "util/latency-histogram.h"

typedef struct RamBlock RamBlock;

/* restore-mode map: whether a change of the image can be survived. */
typedef enum {
    RESTORE_LEASE_NONE,      /* not map mode, or the lease could not be taken */
    RESTORE_LEASE_HELD,      /* a writer or truncater waits for the detach */
    RESTORE_LEASE_DETACHED,  /* guest RAM was copied off the image: ordinary memory */
    RESTORE_LEASE_FAILED,    /* the detach failed; the guest still maps the image */
} RestoreLeaseState;

typedef enum {
    RESTORE_FILL_NONE,       /* eager: nothing left after the load */
    RESTORE_FILL_RUNNING,
    RESTORE_FILL_DONE,
    RESTORE_FILL_FAILED,
} RestoreFillState;

struct RestoreState {
    MigrationState *s;
    Machine *m;
    MappedRamImage *img;
    MigrationRestoreMode mode;

    /* Progress, read by query-migrate while the threads move it. */
    uint64_t pages_total;        /* present pages of the image */
    uint64_t pages_filled;       /* atomic: present pages in guest RAM (or verified, map) */
    uint64_t faults;             /* atomic: missing-page faults served */
    uint64_t fault_pages;        /* atomic: present pages copied by faults */
    LatencyHistogram fault_latency;
    uint64_t start_us;           /* monotonic, when restore_image_start() began */
    uint64_t running_us;         /* when the guest could run (setup done) */
    uint64_t fill_us;            /* atomic: the fill's duration, once done */

    int fill_state;              /* atomic: RestoreFillState */
    GMutex lock;                 /* guards error and the condition */
    GCond cond;                  /* signalled when the fill ends */
    GError *error;               /* why the fill failed */

    /* Main loop only. */
    bool guest_started;
    bool announced;

    /* The image file as it was before its bytes were read (an increment's base later). */
    struct stat image_st;
    bool have_image_st;
    SavevmLoadInfo info;         /* what the load found: the image's identity among it */

    /* Lazy mode (restore-lazy.c). */
    unsigned long *resolved[MAPPED_RAM_MAX_BLOCKS];   /* present pages filled, atomic bits */
    int uffd;
    int wake_fd;                 /* eventfd: stops the fault thread */
    GThread *fault_thread;
    GThread *fill_thread;        /* also the map mode's verifier */
    bool can_move[MAPPED_RAM_MAX_BLOCKS];  /* the fill may move whole regions in */
    uint64_t huge_moved;         /* atomic: 2 MiB regions the fill moved in whole */
    bool stopping;               /* atomic: threads leave at the next check */
    uint64_t throttle_start_us;  /* fill thread only: restore_throttle()'s window */
    uint64_t throttle_bytes;

    /* Map mode's lease (restore-lease.c). */
    GThread *lease_thread;
    int lease_wake_fd;           /* eventfd: stops the lease thread */
    int lease_state;             /* atomic: RestoreLeaseState */
    bool lease_ready;            /* under lock: lease_state is set */
    bool map_ready;              /* under lock: the image is mapped over guest RAM */
    uint64_t detach_pause_us;    /* atomic: how long the detach kept the vCPUs parked */
};

/* restore-image.c: shared by the modes */

/* Add @pages to the fill's progress. */
void restore_progress(RestoreState *r, uint64_t pages);

/* The fill (or verification) ended well: announce it on the main loop. */
void restore_fill_done(RestoreState *r);

/*
 * The fill met a page it cannot give the guest (@err, taken): stop the VM
 * with the error on the main loop. The first failure wins. Any thread.
 */
void restore_fill_failed(RestoreState *r, GError *err);

/*
 * Fill thread: @bytes more were read; sleep as long as max-bandwidth asks
 * (on the restored side it limits the background fill; faults are never
 * throttled).
 */
void restore_throttle(RestoreState *r, uint64_t bytes);

/* True once the fill failed or is being stopped: threads stop serving. */
bool restore_should_stop(RestoreState *r);

/*
 * Forget whatever guest RAM of @b holds now (it must read as zero again, and
 * for the lazy mode fault again). 0 or -errno.
 */
int restore_ram_discard(RamBlock *b);

/* restore-eager.c */

/* Read every present page into guest RAM, checked; absent pages stay zero. */
bool restore_eager_load(RestoreState *r, GError **errp);

/* restore-lazy.c */

/* Register guest RAM for missing faults, start the fault and fill threads. */
bool restore_lazy_start(RestoreState *r, GError **errp);

/*
 * Stop the fill thread (the map mode's verifier too) and the fault thread,
 * and release guest RAM (blocked threads wake). Idempotent.
 */
void restore_lazy_stop(RestoreState *r);

/* restore-map.c */

/* Whether @r's machine can map the image (private anonymous RAM). */
bool restore_map_check(RestoreState *r, GError **errp);

/* Map the image over guest RAM (MAP_PRIVATE), start the verifier (in fill_thread). */
bool restore_map_start(RestoreState *r, GError **errp);

/*
 * Copy every page of guest RAM that holds data off the image into anonymous
 * memory at the same addresses, with the vCPUs parked meanwhile: from then
 * on RAM no longer depends on the file. Pages never touched that the image
 * has as zero stay unpopulated. Records the pause in detach_pause_us.
 */
bool restore_map_detach(RestoreState *r, GError **errp);

/* restore-lease.c */

/*
 * Take a read lease on the image (map mode) in a thread of its own; once
 * broken, detach guest RAM from the image, then release it. Warns (and the
 * state says none) where the lease cannot be taken. Returns once the state
 * is known.
 */
void restore_lease_start(RestoreState *r);

/* End the lease thread and release the lease. Idempotent. */
void restore_lease_stop(RestoreState *r);

/* "none", "held", "detached", "failed". */
const char *restore_lease_state_name(RestoreState *r);

#endif
