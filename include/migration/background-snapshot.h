/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Background snapshot: a consistent live snapshot with the guest running (UFFD-WP). */
#ifndef MIGRATION_BACKGROUND_SNAPSHOT_H
#define MIGRATION_BACKGROUND_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include <json-glib/json-glib.h>

typedef struct Machine Machine;
typedef struct MigrationState MigrationState;
typedef struct StreamFile StreamFile;

/* Figures of the last background snapshot, shown by query-migrate / info migrate. */
typedef struct BackgroundSnapshotStats {
    uint64_t write_faults;          /* write-fault events served */
    uint64_t pages_out_of_order;    /* pages saved by the fault handler */
    uint64_t pages_saved_ahead;     /* saved by the scan after a fault's or the pause's range */
    uint64_t pages_saved_in_pause;  /* pages the guest wrote just before the pause, saved in it */
    uint64_t fault_us_p50;          /* fault service time, event read to unprotect */
    uint64_t fault_us_p99;
    uint64_t fault_us_p999;
    uint64_t fault_us_max;
    uint64_t pool_size;             /* bytes */
    uint64_t pool_high_water;       /* bytes in use at most */
    uint64_t pool_populated;        /* bytes populated before the pause */
    uint64_t pool_reused;           /* bytes resident already: kept from the last snapshot */
    uint64_t pool_waits;            /* times a fault had to wait for a free buffer */
    uint64_t pool_wait_us;          /* total time faults waited for buffers */
    uint64_t pages_unpopulated;     /* pages known zero in the pause (saved as zero, not read) */
    uint64_t huge_pages;            /* 2 MiB regions mapped huge in the pause */
    uint64_t huge_page_faults;      /* faults served by saving a whole huge page */
    uint64_t huge_pages_split;      /* huge pages split to serve a fault in a smaller piece */
    uint64_t huge_pages_restored;   /* split ones collapsed back into huge pages */
    uint64_t huge_collapse_failed;  /* split ones the kernel would not collapse */
    uint64_t paced_faults;          /* faults slowed to the sink's pace (pool low) */
    uint64_t paced_us;              /* their total wait */
    uint64_t downtime_us;           /* vCPUs stopped, in microseconds */
    uint64_t wp_setup_us;           /* time to register and write-protect RAM */
    bool incremental;               /* saved only what changed since snapshot-base */
    uint64_t pages_unchanged;       /* incremental: pages not written since the base */
} BackgroundSnapshotStats;

/*
 * Can a background snapshot run on this machine? Checks the kernel's
 * userfaultfd features and every RAM block's backend; the error names the
 * block and backend and says why not. Called when the capability is set.
 */
bool background_snapshot_check_capability(Machine *m, GError **errp);

/*
 * Run a background snapshot into @f (already open, nothing written yet) on the
 * migration thread. Stops the vCPUs briefly, then scans and serves write
 * faults until every page is saved, writes device state and the footer.
 * Returns false on failure or cancel (migration_is_cancelling()). Whatever
 * the outcome, write protection is removed and the vCPUs run as before.
 * Fills the stats of @s as it goes.
 */
bool background_snapshot_run(MigrationState *s, StreamFile *f, GError **errp);

/*
 * Whether @nr_vcpus vCPUs can keep every CPU this process may use busy. Then
 * the snapshot's threads and its exec: command do not run at SCHED_IDLE: no
 * CPU is ever left for them, and a 128 MiB snapshot of a KVM guest with two
 * vCPUs on two CPUs took 36-77 s (0.3-0.7 s at normal priority).
 */
bool background_snapshot_vcpus_fill_cpus(unsigned nr_vcpus);

/*
 * The CPUs of @from that no vCPU of @m is on (the CPU each last ran on, or
 * every CPU a pinned one may use): where the snapshot's threads and its
 * exec: command run (snapshot-placement.c). False where there are none to
 * spare, the vCPUs fill the CPUs, or the accelerator cannot name its vCPU
 * threads.
 */
bool background_snapshot_spare_cpus(Machine *m, const cpu_set_t *from, cpu_set_t *spare);

/* Add the snapshot's figures to a query-migrate reply under construction. */
void background_snapshot_stats_to_json(const BackgroundSnapshotStats *st,
                                       JsonBuilder *b);

/* Append the figures as `info migrate` lines ("write faults: 94"). */
void background_snapshot_stats_to_hmp(const BackgroundSnapshotStats *st,
                                      GString *out);

#endif
