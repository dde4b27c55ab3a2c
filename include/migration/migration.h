/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The migration state machine: status, capabilities, parameters, figures, the migration thread. */
#ifndef MIGRATION_MIGRATION_H
#define MIGRATION_MIGRATION_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "migration/auto-converge.h"
#include "migration/background-snapshot.h"
#include "monitor/monitor.h"
#include "system/runstate.h"

typedef struct Machine Machine;
typedef struct MigrationChannel MigrationChannel;
typedef struct MappedRamWriter MappedRamWriter;
typedef struct RestoreState RestoreState;
typedef struct EpochTracking EpochTracking;
typedef struct IncrementalSnapshot IncrementalSnapshot;

/*
 * QEMU's MigrationStatus (the COLO and postcopy recovery states are never
 * entered). postcopy-active is the restored side of a lazy restore: the
 * guest runs while its RAM still arrives from the image, as in QEMU's postcopy.
 */
typedef enum {
    MIGRATION_STATUS_NONE,
    MIGRATION_STATUS_SETUP,
    MIGRATION_STATUS_CANCELLING,
    MIGRATION_STATUS_CANCELLED,
    MIGRATION_STATUS_ACTIVE,
    MIGRATION_STATUS_COMPLETED,
    MIGRATION_STATUS_FAILED,
    MIGRATION_STATUS_DEVICE,
    MIGRATION_STATUS_POSTCOPY_ACTIVE,
    MIGRATION_STATUS_PRE_SWITCHOVER,  /* pause-before-switchover: stopped, waiting for migrate-continue */
    MIGRATION_STATUS__MAX,
} MigrationStatus;

/*
 * QEMU 7.2's capabilities, in its order (query-migrate-capabilities lists them
 * so), then mapped-ram from QEMU 9.0.
 */
typedef enum {
    MIGRATION_CAPABILITY_XBZRLE,
    MIGRATION_CAPABILITY_RDMA_PIN_ALL,
    MIGRATION_CAPABILITY_AUTO_CONVERGE,
    MIGRATION_CAPABILITY_ZERO_BLOCKS,
    MIGRATION_CAPABILITY_COMPRESS,
    MIGRATION_CAPABILITY_EVENTS,
    MIGRATION_CAPABILITY_POSTCOPY_RAM,
    MIGRATION_CAPABILITY_X_COLO,
    MIGRATION_CAPABILITY_RELEASE_RAM,
    MIGRATION_CAPABILITY_BLOCK,
    MIGRATION_CAPABILITY_RETURN_PATH,
    MIGRATION_CAPABILITY_PAUSE_BEFORE_SWITCHOVER,
    MIGRATION_CAPABILITY_MULTIFD,
    MIGRATION_CAPABILITY_DIRTY_BITMAPS,
    MIGRATION_CAPABILITY_POSTCOPY_BLOCKTIME,
    MIGRATION_CAPABILITY_LATE_BLOCK_ACTIVATE,
    MIGRATION_CAPABILITY_X_IGNORE_SHARED,
    MIGRATION_CAPABILITY_VALIDATE_UUID,
    MIGRATION_CAPABILITY_BACKGROUND_SNAPSHOT,
    MIGRATION_CAPABILITY_ZERO_COPY_SEND,
    MIGRATION_CAPABILITY_POSTCOPY_PREEMPT,
    MIGRATION_CAPABILITY_MAPPED_RAM,          /* QEMU 9.0's, last in its list too */
    MIGRATION_CAPABILITY_INCREMENTAL_SNAPSHOT, /* frostvm's: track writes between snapshots */
    MIGRATION_CAPABILITY__MAX,
} MigrationCapability;

/* Defaults (documented in docs/migration.md). */
#define MIGRATION_DEFAULT_MAX_BANDWIDTH 0ULL       /* 0: no limit (QEMU 7.2: 32 MiB/s) */
#define MIGRATION_DEFAULT_DOWNTIME_LIMIT_MS 300ULL
#define MIGRATION_MAX_DOWNTIME_LIMIT_MS 2000000ULL /* QEMU's bound */
/* A snapshot's buffer pool is kept this long for the next one (page_pool_keep()). */
#define MIGRATION_DEFAULT_SNAPSHOT_BUFFER_KEEP_MS 30000ULL
#define MIGRATION_MAX_SNAPSHOT_BUFFER_KEEP_MS 86400000ULL  /* a day */

/* How -incoming loads a page-aligned image (the restore-mode parameter). */
typedef enum {
    MIGRATION_RESTORE_LAZY,    /* run at once; pages on demand (userfaultfd) and by a fill thread */
    MIGRATION_RESTORE_EAGER,   /* read every page before the guest runs */
    MIGRATION_RESTORE_MAP,     /* map the image privately: clones share its page cache */
    MIGRATION_RESTORE__MAX,
} MigrationRestoreMode;

typedef struct MigrationParameters {
    uint64_t max_bandwidth;                    /* bytes per second; 0: unlimited */
    uint64_t downtime_limit;                   /* milliseconds */
    uint64_t background_snapshot_buffer_size;  /* bytes; 0: automatic (background-snapshot.c decides) */
    uint64_t background_snapshot_buffer_keep;  /* ms the pool is kept after a snapshot; 0: not kept */
    /* auto-converge (migration/auto-converge.h): percentages */
    uint64_t cpu_throttle_initial;
    uint64_t cpu_throttle_increment;
    uint64_t max_cpu_throttle;
    uint64_t throttle_trigger_threshold;
    bool cpu_throttle_tailslow;
    int restore_mode;                          /* MigrationRestoreMode */
    char *snapshot_base;   /* under lock: the image the next snapshot builds on; "" full */
    char *restore_base;    /* under lock: -incoming's base instead of the recorded one; "" none */
} MigrationParameters;

/*
 * RAM figures of the current or last migration, as query-migrate reports
 * them. Producers update them with migration_stat_add()/_set() (relaxed
 * atomics; query-migrate reads them from the main thread while they move).
 */
typedef struct MigrationRamStats {
    uint64_t transferred;       /* bytes of stream written so far */
    uint64_t total;             /* guest RAM, bytes */
    uint64_t remaining;         /* bytes of RAM still to send (dirty, or not yet saved) */
    uint64_t duplicate;         /* pages sent as zero pages (a flag, no data) */
    uint64_t normal;            /* pages sent with their data */
    uint64_t normal_bytes;      /* normal * 4096 */
    uint64_t dirty_sync_count;  /* dirty-log synchronisations (passes) */
    uint64_t dirty_pages_rate;  /* pages per second the guest dirtied in the last pass */
    uint64_t bandwidth;         /* bytes per second measured in the last pass; 0: unknown */
    uint64_t pages_per_second;  /* pages per second sent in the last pass; 0: unknown */
    uint64_t precopy_bytes;     /* bytes sent while the guest ran */
    uint64_t downtime_bytes;    /* bytes sent while it was stopped */
} MigrationRamStats;

static inline void migration_stat_add(uint64_t *counter, uint64_t n)
{
    __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

static inline void migration_stat_set(uint64_t *counter, uint64_t v)
{
    __atomic_store_n(counter, v, __ATOMIC_RELAXED);
}

static inline uint64_t migration_stat_get(const uint64_t *counter)
{
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

struct MigrationState {
    Machine *machine;

    /* Changed only with migration_set_state(); read with migration_get_status(). */
    int status;

    /* Guards everything below that the monitor and the thread share. */
    GMutex lock;
    bool capabilities[MIGRATION_CAPABILITY__MAX];
    MigrationParameters parameters;   /* writes under lock; read atomically */
    GThread *thread;                  /* outgoing or incoming thread, joined on the next start */
    MigrationChannel *channel;        /* while one is open, for migrate_cancel */
    GError *error;                    /* why the last migration failed */
    GCond continue_cond;              /* pre-switchover: migrate-continue or a cancel */
    bool continue_requested;          /* under lock: migrate-continue came */
    char *uri;

    /* Direction of the current or last migration. */
    bool incoming;
    bool incoming_requested;          /* migrate-incoming / -incoming already used */

    /* The guest ran when the outgoing migration started (saved in the stream). */
    bool vm_was_running;
    RunState runstate_before;         /* the run state when it started */
    /* Precopy stopped the guest to complete (ram.c); migration.c restarts it on failure. */
    bool vm_stopped;

    /* Times of the current or last migration (milliseconds unless noted). */
    int64_t start_us;                 /* monotonic, migration_now_us() */
    uint64_t setup_time;              /* setup -> active */
    uint64_t total_time;              /* start -> end, once ended */
    uint64_t downtime;                /* guest stopped */
    uint64_t expected_downtime;       /* precopy's estimate while active */

    MigrationRamStats ram;

    /* Filled by background_snapshot_run() through migration_update_snapshot_stats(). */
    BackgroundSnapshotStats snapshot;
    bool snapshot_ran;

    /*
     * Outgoing with mapped-ram: pages go to their fixed offsets through this
     * writer instead of the stream (set by the migration thread for the run).
     */
    MappedRamWriter *mapped_ram;
    /* Incoming from a page-aligned image: the restore and its fill (lazy or map). */
    RestoreState *restore;

    /*
     * Incremental snapshots: epoch tracking from the first snapshot with the
     * capability on until it goes off (atomic pointer: query-migrate reads
     * it); the current migration's snapshot-base and new image.
     */
    EpochTracking *epoch;
    IncrementalSnapshot *incremental;
};

/* Create the migration state of @m (parameters and capabilities at their defaults). */
MigrationState *migration_new(Machine *m);

/* Cancel a running migration, wait for its thread, free everything (NULL is fine). */
void migration_free(MigrationState *s);

/* m->migration. */
MigrationState *migration_get(Machine *m);

/* Microseconds on the monotonic clock, the timebase of every migration figure. */
uint64_t migration_now_us(void);

/* "setup", "active", ... (QEMU's names). */
const char *migration_status_name(MigrationStatus status);
const char *migration_capability_name(MigrationCapability cap);
/* The capability called @name; false if there is none. */
bool migration_capability_from_name(const char *name, MigrationCapability *cap);

MigrationStatus migration_get_status(MigrationState *s);

/*
 * Move from @old_status to @new_status if the status is still @old_status
 * (compare-and-set; false if it had changed, e.g. to cancelling). On success
 * a MIGRATION event is sent (when the "events" capability is on, the
 * default in frostvm). Leaving setup records setup-time. Any thread.
 */
bool migration_set_state(MigrationState *s, MigrationStatus old_status,
                         MigrationStatus new_status);

/* True while migrate_cancel is being processed: runners stop at the next check. */
bool migration_is_cancelling(MigrationState *s);

/* True while a migration (either direction) is between setup and its end. */
bool migration_is_active(MigrationState *s);

/* Whether capability @cap is on. */
bool migration_capability_enabled(MigrationState *s, MigrationCapability cap);

/* Current max-bandwidth (bytes/s, 0 unlimited); may change during a migration. */
uint64_t migration_max_bandwidth(MigrationState *s);
/* Current downtime-limit in milliseconds. */
uint64_t migration_downtime_limit(MigrationState *s);

/*
 * Publish a background snapshot's figures: @st goes to s->snapshot (and
 * snapshot_ran is set); RAM figures: normal = @data_pages, duplicate =
 * @zero_pages, transferred = @bytes, remaining = @remaining_pages * 4096.
 * Called from the snapshot's threads.
 */
void migration_update_snapshot_stats(MigrationState *s, const BackgroundSnapshotStats *st,
                                     uint64_t data_pages, uint64_t zero_pages,
                                     uint64_t bytes, uint64_t remaining_pages);

/* "lazy", "eager", "map"; and back (false if @name is none of them). */
const char *migration_restore_mode_name(MigrationRestoreMode mode);
bool migration_restore_mode_from_name(const char *name, MigrationRestoreMode *mode);

/* Set the restore-mode parameter (not while an incoming migration runs). */
bool migration_set_restore_mode(MigrationState *s, MigrationRestoreMode mode, GError **errp);

/* snapshot-base and restore-base ("" when unset); the caller frees them. */
char *migration_snapshot_base(MigrationState *s);
char *migration_restore_base(MigrationState *s);

/*
 * Set the string parameter @name ("snapshot-base" or "restore-base") to
 * @value ("" clears it). restore-base cannot change while an incoming
 * migration runs.
 */
bool migration_set_path_parameter(MigrationState *s, const char *name, const char *value,
                                  GError **errp);

/* The error text of the last failed migration, or NULL. The caller frees it. */
char *migration_error_desc(MigrationState *s);

/* The QMP-level API: the monitors call these, tests too. */

/* Start an outgoing migration (or background snapshot) to @uri on a new thread. */
bool migration_start(MigrationState *s, const char *uri, GError **errp);

/* migrate_cancel: no-op unless a migration is in setup, active, pre-switchover or device. */
void migration_cancel(MigrationState *s);

/*
 * migrate-continue: let a migration paused before its switch-over (the
 * pause-before-switchover capability) go on. @state must be the status it
 * is in ("pre-switchover"), as in QEMU.
 */
bool migration_continue(MigrationState *s, MigrationStatus state, GError **errp);

/*
 * The migration thread, with the guest stopped for the switch-over: with
 * pause-before-switchover on, move from active to pre-switchover and wait
 * for migrate-continue (or a cancel). Returns the status it left the
 * migration in: active without the capability, pre-switchover after a
 * continue, cancelling after a cancel.
 */
MigrationStatus migration_pause_before_switchover(MigrationState *s);

/* The status called @name; false if there is none. */
bool migration_status_from_name(const char *name, MigrationStatus *status);

/* Turn capability @cap on or off, with the checks and QEMU's messages. */
bool migration_set_capability(MigrationState *s, MigrationCapability cap, bool on,
                              GError **errp);

/* New values for migration_set_parameters(): each pointer not NULL is one. */
typedef struct MigrationParameterUpdate {
    const uint64_t *max_bandwidth;
    const uint64_t *downtime_limit;
    const uint64_t *background_snapshot_buffer_size;
    const uint64_t *background_snapshot_buffer_keep;
    const uint64_t *cpu_throttle_initial;
    const uint64_t *cpu_throttle_increment;
    const uint64_t *max_cpu_throttle;
    const uint64_t *throttle_trigger_threshold;
    const bool *cpu_throttle_tailslow;
} MigrationParameterUpdate;

/*
 * Set the numeric and boolean parameters in @u. Checked first, then all
 * applied (none if one is invalid), with QEMU's messages.
 */
bool migration_set_parameters(MigrationState *s, const MigrationParameterUpdate *u,
                              GError **errp);

/* auto-converge's parameters as they are now. */
void migration_auto_converge_params(MigrationState *s, AutoConvergeParams *p);

/*
 * Incoming migration (-incoming URI, or migrate-incoming after -incoming
 * defer): open @uri now (sockets listen before this returns), then accept and
 * load on a thread. On success the guest runs, unless -S was given or the
 * source was not running (then "paused"). On failure the MIGRATION event says
 * failed, the error is printed and the machine shuts down with exit status 1;
 * the guest never runs.
 */
bool migration_incoming_start(Machine *m, const char *uri, GError **errp);

/* Wait for the migration thread (if any) to end; for tests and shutdown. */
void migration_wait(MigrationState *s);

/* Command tables for main to register (monitor_register_qmp/_hmp). */
extern const QmpCommand migration_qmp_commands[];
extern const HmpCommand migration_hmp_commands[];

#endif
