/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The migration state machine: status and events, capabilities, parameters, the outgoing thread, cancel. */
#include "migration/migration.h"

#include <inttypes.h>
#include <signal.h>
#include <string.h>

#include "accel/accel.h"
#include "migration/channel.h"
#include "migration/incremental-snapshot.h"
#include "migration/mapped-ram.h"
#include "migration/page-pool.h"
#include "migration/restore.h"
#include "migration/migration-internal.h"
#include "migration/savevm.h"
#include "migration/ram.h"
#include "migration/stream-file.h"
#include "system/machine.h"
#include "util/error.h"

static const char *const status_names[MIGRATION_STATUS__MAX] = {
    [MIGRATION_STATUS_NONE] = "none",
    [MIGRATION_STATUS_SETUP] = "setup",
    [MIGRATION_STATUS_CANCELLING] = "cancelling",
    [MIGRATION_STATUS_CANCELLED] = "cancelled",
    [MIGRATION_STATUS_ACTIVE] = "active",
    [MIGRATION_STATUS_COMPLETED] = "completed",
    [MIGRATION_STATUS_FAILED] = "failed",
    [MIGRATION_STATUS_DEVICE] = "device",
    [MIGRATION_STATUS_POSTCOPY_ACTIVE] = "postcopy-active",
    [MIGRATION_STATUS_PRE_SWITCHOVER] = "pre-switchover",
};

static const char *const restore_mode_names[MIGRATION_RESTORE__MAX] = {
    [MIGRATION_RESTORE_LAZY] = "lazy",
    [MIGRATION_RESTORE_EAGER] = "eager",
    [MIGRATION_RESTORE_MAP] = "map",
};

static const char *const capability_names[MIGRATION_CAPABILITY__MAX] = {
    [MIGRATION_CAPABILITY_XBZRLE] = "xbzrle",
    [MIGRATION_CAPABILITY_RDMA_PIN_ALL] = "rdma-pin-all",
    [MIGRATION_CAPABILITY_AUTO_CONVERGE] = "auto-converge",
    [MIGRATION_CAPABILITY_ZERO_BLOCKS] = "zero-blocks",
    [MIGRATION_CAPABILITY_COMPRESS] = "compress",
    [MIGRATION_CAPABILITY_EVENTS] = "events",
    [MIGRATION_CAPABILITY_POSTCOPY_RAM] = "postcopy-ram",
    [MIGRATION_CAPABILITY_X_COLO] = "x-colo",
    [MIGRATION_CAPABILITY_RELEASE_RAM] = "release-ram",
    [MIGRATION_CAPABILITY_BLOCK] = "block",
    [MIGRATION_CAPABILITY_RETURN_PATH] = "return-path",
    [MIGRATION_CAPABILITY_PAUSE_BEFORE_SWITCHOVER] = "pause-before-switchover",
    [MIGRATION_CAPABILITY_MULTIFD] = "multifd",
    [MIGRATION_CAPABILITY_DIRTY_BITMAPS] = "dirty-bitmaps",
    [MIGRATION_CAPABILITY_POSTCOPY_BLOCKTIME] = "postcopy-blocktime",
    [MIGRATION_CAPABILITY_LATE_BLOCK_ACTIVATE] = "late-block-activate",
    [MIGRATION_CAPABILITY_X_IGNORE_SHARED] = "x-ignore-shared",
    [MIGRATION_CAPABILITY_VALIDATE_UUID] = "validate-uuid",
    [MIGRATION_CAPABILITY_BACKGROUND_SNAPSHOT] = "background-snapshot",
    [MIGRATION_CAPABILITY_ZERO_COPY_SEND] = "zero-copy-send",
    [MIGRATION_CAPABILITY_POSTCOPY_PREEMPT] = "postcopy-preempt",
    [MIGRATION_CAPABILITY_MAPPED_RAM] = "mapped-ram",
    [MIGRATION_CAPABILITY_INCREMENTAL_SNAPSHOT] = "incremental-snapshot",
};

const char *migration_status_name(MigrationStatus status)
{
    g_assert(status < MIGRATION_STATUS__MAX);
    return status_names[status];
}

const char *migration_capability_name(MigrationCapability cap)
{
    g_assert(cap < MIGRATION_CAPABILITY__MAX);
    return capability_names[cap];
}

bool migration_capability_from_name(const char *name, MigrationCapability *cap)
{
    for (int i = 0; i < MIGRATION_CAPABILITY__MAX; i++) {
        if (!strcmp(name, capability_names[i])) {
            *cap = (MigrationCapability)i;
            return true;
        }
    }
    return false;
}

const char *migration_restore_mode_name(MigrationRestoreMode mode)
{
    g_assert(mode < MIGRATION_RESTORE__MAX);
    return restore_mode_names[mode];
}

bool migration_restore_mode_from_name(const char *name, MigrationRestoreMode *mode)
{
    for (int i = 0; i < MIGRATION_RESTORE__MAX; i++) {
        if (!strcmp(name, restore_mode_names[i])) {
            *mode = (MigrationRestoreMode)i;
            return true;
        }
    }
    return false;
}

bool migration_set_restore_mode(MigrationState *s, MigrationRestoreMode mode, GError **errp)
{
    if (s->incoming && migration_is_active(s)) {
        error_setg(errp, "restore-mode cannot change while an incoming migration runs");
        return false;
    }
    __atomic_store_n(&s->parameters.restore_mode, (int)mode, __ATOMIC_RELAXED);
    return true;
}

uint64_t migration_now_us(void)
{
    return (uint64_t)g_get_monotonic_time();
}

MigrationState *migration_new(Machine *m)
{
    MigrationState *s = g_new0(MigrationState, 1);

    s->machine = m;
    g_mutex_init(&s->lock);
    g_cond_init(&s->continue_cond);
    s->status = MIGRATION_STATUS_NONE;
    s->parameters.max_bandwidth = MIGRATION_DEFAULT_MAX_BANDWIDTH;
    s->parameters.downtime_limit = MIGRATION_DEFAULT_DOWNTIME_LIMIT_MS;
    s->parameters.background_snapshot_buffer_size = 0;
    s->parameters.background_snapshot_buffer_keep = MIGRATION_DEFAULT_SNAPSHOT_BUFFER_KEEP_MS;
    s->parameters.cpu_throttle_initial = AUTO_CONVERGE_DEFAULT_INITIAL;
    s->parameters.cpu_throttle_increment = AUTO_CONVERGE_DEFAULT_INCREMENT;
    s->parameters.max_cpu_throttle = AUTO_CONVERGE_DEFAULT_MAX;
    s->parameters.throttle_trigger_threshold = AUTO_CONVERGE_DEFAULT_THRESHOLD;
    s->parameters.cpu_throttle_tailslow = false;
    s->parameters.snapshot_base = g_strdup("");
    s->parameters.restore_base = g_strdup("");
    /* QEMU defaults "events" to off; frostvm sends MIGRATION events unless told not to. */
    s->capabilities[MIGRATION_CAPABILITY_EVENTS] = true;
    return s;
}

void migration_free(MigrationState *s)
{
    if (!s) {
        return;
    }
    migration_cancel(s);
    g_mutex_lock(&s->lock);
    if (s->channel) {
        /* An incoming migration blocked in accept or read. */
        channel_cancel(s->channel);
    }
    g_mutex_unlock(&s->lock);
    migration_wait(s);
    /* Before the accelerator goes: a vCPU blocked on a restore's fault is released. */
    restore_free(s->restore);
    incremental_snapshot_stop_tracking(s);
    g_free(s->parameters.snapshot_base);
    g_free(s->parameters.restore_base);
    g_clear_error(&s->error);
    g_free(s->uri);
    g_cond_clear(&s->continue_cond);
    g_mutex_clear(&s->lock);
    g_free(s);
}

MigrationState *migration_get(Machine *m)
{
    return m->migration;
}

MigrationStatus migration_get_status(MigrationState *s)
{
    return (MigrationStatus)__atomic_load_n(&s->status, __ATOMIC_ACQUIRE);
}

bool migration_is_cancelling(MigrationState *s)
{
    return migration_get_status(s) == MIGRATION_STATUS_CANCELLING;
}

bool migration_is_active(MigrationState *s)
{
    switch (migration_get_status(s)) {
    case MIGRATION_STATUS_SETUP:
    case MIGRATION_STATUS_ACTIVE:
    case MIGRATION_STATUS_PRE_SWITCHOVER:
    case MIGRATION_STATUS_DEVICE:
    case MIGRATION_STATUS_CANCELLING:
        return true;
    default:
        return false;
    }
}

bool migration_capability_enabled(MigrationState *s, MigrationCapability cap)
{
    return __atomic_load_n(&s->capabilities[cap], __ATOMIC_RELAXED);
}

uint64_t migration_max_bandwidth(MigrationState *s)
{
    return __atomic_load_n(&s->parameters.max_bandwidth, __ATOMIC_RELAXED);
}

uint64_t migration_downtime_limit(MigrationState *s)
{
    return __atomic_load_n(&s->parameters.downtime_limit, __ATOMIC_RELAXED);
}

static void migration_emit_event(MigrationState *s, MigrationStatus status)
{
    Machine *m = s->machine;
    JsonObject *data;

    if (!m || !m->monitor || !migration_capability_enabled(s, MIGRATION_CAPABILITY_EVENTS)) {
        return;
    }
    data = json_object_new();
    json_object_set_string_member(data, "status", migration_status_name(status));
    monitor_emit_event(m->monitor, "MIGRATION", data);
}

bool migration_set_state(MigrationState *s, MigrationStatus old_status,
                         MigrationStatus new_status)
{
    int expected = (int)old_status;

    if (!__atomic_compare_exchange_n(&s->status, &expected, (int)new_status, false,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        return false;
    }
    if (old_status == MIGRATION_STATUS_SETUP && new_status == MIGRATION_STATUS_ACTIVE) {
        migration_stat_set(&s->setup_time, (migration_now_us() - (uint64_t)s->start_us) / 1000);
    }
    g_debug("migration: %s -> %s", migration_status_name(old_status),
            migration_status_name(new_status));
    migration_emit_event(s, new_status);
    return true;
}

void migration_update_snapshot_stats(MigrationState *s, const BackgroundSnapshotStats *st,
                                     uint64_t data_pages, uint64_t zero_pages,
                                     uint64_t bytes, uint64_t remaining_pages)
{
    g_mutex_lock(&s->lock);
    s->snapshot = *st;
    s->snapshot_ran = true;
    g_mutex_unlock(&s->lock);
    migration_stat_set(&s->ram.normal, data_pages);
    migration_stat_set(&s->ram.normal_bytes, data_pages * MACHINE_PAGE_SIZE);
    migration_stat_set(&s->ram.duplicate, zero_pages);
    migration_stat_set(&s->ram.transferred, bytes);
    migration_stat_set(&s->ram.remaining, remaining_pages * MACHINE_PAGE_SIZE);
    migration_stat_set(&s->ram.precopy_bytes, bytes);
    migration_stat_set(&s->downtime, st->downtime_us / 1000);
}

char *migration_error_desc(MigrationState *s)
{
    char *desc;

    g_mutex_lock(&s->lock);
    desc = s->error ? g_strdup(s->error->message) : NULL;
    g_mutex_unlock(&s->lock);
    return desc;
}

void migration_record_error(MigrationState *s, const GError *err)
{
    g_mutex_lock(&s->lock);
    g_clear_error(&s->error);
    s->error = g_error_copy(err);
    g_mutex_unlock(&s->lock);
}

void migration_wait(MigrationState *s)
{
    GThread *t;

    g_mutex_lock(&s->lock);
    t = g_steal_pointer(&s->thread);
    g_mutex_unlock(&s->lock);
    if (t) {
        g_thread_join(t);
    }
}

/* Forget the figures of the last migration; a new one starts at @uri. */
void migration_reset(MigrationState *s, const char *uri, bool incoming)
{
    uint64_t total = 0;

    if (s->machine && s->machine->ram_blocks) {
        for (guint i = 0; i < s->machine->ram_blocks->len; i++) {
            RamBlock *b = g_ptr_array_index(s->machine->ram_blocks, i);
            total += b->size;
        }
    }
    g_mutex_lock(&s->lock);
    g_clear_error(&s->error);
    g_free(s->uri);
    s->uri = g_strdup(uri);
    s->incoming = incoming;
    s->snapshot_ran = false;
    memset(&s->snapshot, 0, sizeof(s->snapshot));
    memset(&s->ram, 0, sizeof(s->ram));
    s->ram.total = total;
    s->start_us = (int64_t)migration_now_us();
    s->setup_time = 0;
    s->total_time = 0;
    s->downtime = 0;
    s->expected_downtime = 0;
    s->vm_stopped = false;
    g_mutex_unlock(&s->lock);
}

/*
 * Outgoing end: what happens to the guest. A completed precopy leaves it
 * stopped in "postmigrate"; a failed or cancelled one resumes it if it was
 * running, so the source carries on as if nothing happened.
 */
static void migration_finish_runstate(MigrationState *s, bool ok)
{
    Machine *m = s->machine;
    g_autoptr(GError) err = NULL;

    if (!s->vm_stopped) {
        return;
    }
    s->vm_stopped = false;
    if (runstate_get(m) == RUN_STATE_SHUTDOWN) {
        /* Cancelled because frostvm is quitting: nothing to resume. */
        return;
    }
    if (ok) {
        runstate_set(m, RUN_STATE_POSTMIGRATE);
    } else if (s->vm_was_running) {
        if (!runstate_vm_start(m, &err)) {
            g_warning("migration: cannot resume the guest after the failed migration: %s",
                      err->message);
        }
    } else {
        runstate_set(m, s->runstate_before);
    }
}

/* Move from whatever running status we are in to @to. */
static void migration_set_final_state(MigrationState *s, MigrationStatus to)
{
    for (;;) {
        MigrationStatus cur = migration_get_status(s);

        if (cur == MIGRATION_STATUS_CANCELLING && to != MIGRATION_STATUS_COMPLETED) {
            to = MIGRATION_STATUS_CANCELLED;
        }
        if (migration_set_state(s, cur, to)) {
            return;
        }
    }
}

static gpointer migration_thread(gpointer opaque)
{
    MigrationState *s = opaque;
    MigrationChannel *ch = s->channel;
    bool snapshot = migration_capability_enabled(s, MIGRATION_CAPABILITY_BACKGROUND_SNAPSHOT);
    bool return_path = migration_capability_enabled(s, MIGRATION_CAPABILITY_RETURN_PATH);
    bool confirmed = false;
    g_autoptr(GError) err = NULL;
    StreamFile *f = NULL;
    bool ok;

    /*
     * Guest RAM still arriving from an image (a lazy restore's fill) is not
     * ordinary memory yet: a snapshot or precopy starts once the fill ends.
     */
    ok = restore_wait_fill(s, &err) && channel_connect(ch, &err) &&
         (!return_path || channel_return_path_possible(ch, &err));
    if (ok && migration_capability_enabled(s, MIGRATION_CAPABILITY_MAPPED_RAM)) {
        s->mapped_ram = mapped_ram_writer_for_machine(s->machine, ch,
                                                      snapshot ? SAVEVM_STREAM_BACKGROUND_SNAPSHOT
                                                               : SAVEVM_STREAM_PRECOPY, &err);
        ok = s->mapped_ram != NULL;
    }
    if (ok) {
        f = stream_file_new_output(ch);
        /* max-bandwidth applies to precopy and snapshots, and changes apply at once. */
        stream_file_follow_rate_limit(f, &s->parameters.max_bandwidth);
        if (snapshot) {
            /*
             * The snapshot has no setup phase of its own to report: from here
             * query-migrate shows it active, with its figures.
             */
            migration_set_state(s, MIGRATION_STATUS_SETUP, MIGRATION_STATUS_ACTIVE);
            ok = background_snapshot_run(s, f, &err);
        } else {
            ok = ram_save_precopy(s, f, &err);
        }
        ok = ok && stream_file_flush(f) && stream_file_check(f, &err);
        /* return-path: complete only once the destination says it loaded everything. */
        if (ok && return_path) {
            ok = confirmed = channel_return_path_wait(ch, &err);
        } else if (!ok && return_path && !migration_is_cancelling(s) &&
                   channel_return_path_refused(ch)) {
            /* It hung up on us: say why, as it told us. */
            error_prefix(&err, "the destination could not load the stream (it said so on "
                         "the return path): ");
        }
        if (ok) {
            migration_stat_set(&s->ram.transferred, s->mapped_ram
                               ? mapped_ram_writer_bytes(s->mapped_ram)
                               : stream_file_offset(f));
        }
    }
    g_clear_pointer(&s->mapped_ram, mapped_ram_writer_free);
    if (ok && migration_is_cancelling(s) && !confirmed) {
        /*
         * Too late to abort the stream, but the user asked: drop the image.
         * Not once the destination confirmed: it runs the guest now.
         */
        ok = false;
    }
    g_mutex_lock(&s->lock);
    s->channel = NULL;
    g_mutex_unlock(&s->lock);
    if (!channel_close(ch, ok, ok ? &err : NULL)) {
        ok = false;
    }
    stream_file_free(f);

    if (s->incremental) {
        /* Only an image complete and in place joins the epoch chain. */
        incremental_snapshot_finish(s, s->incremental, ok);
        g_clear_pointer(&s->incremental, incremental_snapshot_free);
    }
    migration_finish_runstate(s, ok);
    migration_stat_set(&s->total_time, (migration_now_us() - (uint64_t)s->start_us) / 1000);
    if (ok) {
        migration_set_final_state(s, MIGRATION_STATUS_COMPLETED);
    } else {
        if (!migration_is_cancelling(s)) {
            if (!err) {
                error_setg(&err, "migration to %s failed", s->uri);
            }
            migration_record_error(s, err);
            g_info("migration to %s failed: %s", s->uri, err->message);
        }
        migration_set_final_state(s, MIGRATION_STATUS_FAILED);
    }
    return NULL;
}

bool migration_start(MigrationState *s, const char *uri, GError **errp)
{
    Machine *m = s->machine;
    MigrationChannel *ch;
    MigrationStatus cur = migration_get_status(s);
    RunState rs;

    if (migration_is_active(s)) {
        error_setg(errp, "There's a migration process in progress");
        return false;
    }
    rs = runstate_get(m);
    if (rs == RUN_STATE_INMIGRATE) {
        error_setg(errp, "Guest is waiting for an incoming migration");
        return false;
    }
    if (rs == RUN_STATE_SHUTDOWN) {
        error_setg(errp, "The guest has shut down; there is nothing to migrate");
        return false;
    }
    ch = channel_new(uri, true, errp);
    if (!ch) {
        return false;
    }
    if (!machine_has_guest(m)) {
        error_setg(errp, "The 'none' machine has no guest to migrate");
        channel_close(ch, false, NULL);
        return false;
    }
    if (migration_capability_enabled(s, MIGRATION_CAPABILITY_BACKGROUND_SNAPSHOT) &&
        !restore_allows_write_protect(s, errp)) {
        channel_close(ch, false, NULL);
        return false;
    }
    if (migration_capability_enabled(s, MIGRATION_CAPABILITY_MAPPED_RAM) &&
        !channel_is_regular_file(ch)) {
        error_setg(errp, "mapped-ram needs a file: URI, not '%s': pages are written at "
                   "fixed offsets, which a pipe or a socket cannot take", uri);
        channel_close(ch, false, NULL);
        return false;
    }
    if (!channel_fd_resolve(ch, m->monitor, errp)) {
        channel_close(ch, false, NULL);
        return false;
    }
    /*
     * A background snapshot's exec: command yields to the vCPUs as the
     * snapshot's own writer does (snapshot-writer.c lifts both if starved),
     * unless the vCPUs can take every CPU.
     */
    channel_set_child_idle(ch, migration_capability_enabled(s,
                                   MIGRATION_CAPABILITY_BACKGROUND_SNAPSHOT) &&
                               !background_snapshot_vcpus_fill_cpus(m->smp));
    /* And off the vCPUs' CPUs from its start, as the snapshot's threads will be. */
    cpu_set_t own, spare;
    if (migration_capability_enabled(s, MIGRATION_CAPABILITY_BACKGROUND_SNAPSHOT) &&
        sched_getaffinity(0, sizeof(own), &own) == 0 &&
        background_snapshot_spare_cpus(m, &own, &spare)) {
        channel_set_child_cpus(ch, &spare);
    }
    migration_wait(s);
    /* snapshot-base is checked now, so a refusal is the command's error. */
    IncrementalSnapshot *inc = incremental_snapshot_prepare(s, uri, errp);
    if (!inc) {
        channel_close(ch, false, NULL);
        return false;
    }
    g_clear_pointer(&s->incremental, incremental_snapshot_free);
    s->incremental = inc;

    migration_reset(s, uri, false);
    s->runstate_before = rs;
    s->vm_was_running = rs == RUN_STATE_RUNNING;
    g_mutex_lock(&s->lock);
    s->channel = ch;
    g_mutex_unlock(&s->lock);
    if (!migration_set_state(s, cur, MIGRATION_STATUS_SETUP)) {
        g_mutex_lock(&s->lock);
        s->channel = NULL;
        g_mutex_unlock(&s->lock);
        channel_close(ch, false, NULL);
        error_setg(errp, "There's a migration process in progress");
        return false;
    }
    g_mutex_lock(&s->lock);
    s->thread = g_thread_new("migration", migration_thread, s);
    g_mutex_unlock(&s->lock);
    return true;
}

void migration_cancel(MigrationState *s)
{
    for (;;) {
        MigrationStatus cur = migration_get_status(s);

        if (s->incoming || (cur != MIGRATION_STATUS_SETUP && cur != MIGRATION_STATUS_ACTIVE &&
                            cur != MIGRATION_STATUS_PRE_SWITCHOVER &&
                            cur != MIGRATION_STATUS_DEVICE)) {
            return;
        }
        if (migration_set_state(s, cur, MIGRATION_STATUS_CANCELLING)) {
            break;
        }
    }
    g_mutex_lock(&s->lock);
    g_cond_broadcast(&s->continue_cond);
    if (s->channel) {
        /* Wakes the thread out of connect, write or a throttling sleep. */
        channel_cancel(s->channel);
    }
    g_mutex_unlock(&s->lock);
}

bool migration_continue(MigrationState *s, MigrationStatus state, GError **errp)
{
    MigrationStatus cur = migration_get_status(s);

    if (cur != state || cur != MIGRATION_STATUS_PRE_SWITCHOVER) {
        error_setg(errp, "Migration not in expected state: %s", migration_status_name(cur));
        return false;
    }
    g_mutex_lock(&s->lock);
    s->continue_requested = true;
    g_cond_broadcast(&s->continue_cond);
    g_mutex_unlock(&s->lock);
    return true;
}

MigrationStatus migration_pause_before_switchover(MigrationState *s)
{
    if (!migration_capability_enabled(s, MIGRATION_CAPABILITY_PAUSE_BEFORE_SWITCHOVER)) {
        return MIGRATION_STATUS_ACTIVE;
    }
    g_mutex_lock(&s->lock);
    /* A continue before the pause (the status was not pre-switchover) is refused; clear anyway. */
    s->continue_requested = false;
    g_mutex_unlock(&s->lock);
    if (!migration_set_state(s, MIGRATION_STATUS_ACTIVE, MIGRATION_STATUS_PRE_SWITCHOVER)) {
        return migration_get_status(s);
    }
    g_mutex_lock(&s->lock);
    while (!s->continue_requested && !migration_is_cancelling(s)) {
        g_cond_wait(&s->continue_cond, &s->lock);
    }
    s->continue_requested = false;
    g_mutex_unlock(&s->lock);
    return migration_get_status(s);
}

bool migration_status_from_name(const char *name, MigrationStatus *status)
{
    for (int i = 0; i < MIGRATION_STATUS__MAX; i++) {
        if (status_names[i] && !g_strcmp0(name, status_names[i])) {
            *status = (MigrationStatus)i;
            return true;
        }
    }
    return false;
}

/* Which capabilities frostvm implements; setting any other one on is refused. */
static bool capability_implemented(MigrationCapability cap)
{
    return cap == MIGRATION_CAPABILITY_EVENTS ||
           cap == MIGRATION_CAPABILITY_AUTO_CONVERGE ||
           cap == MIGRATION_CAPABILITY_PAUSE_BEFORE_SWITCHOVER ||
           cap == MIGRATION_CAPABILITY_RETURN_PATH ||
           /* Disks activated at cont, not at the end of the load: frostvm has none. */
           cap == MIGRATION_CAPABILITY_LATE_BLOCK_ACTIVATE ||
           cap == MIGRATION_CAPABILITY_BACKGROUND_SNAPSHOT ||
           cap == MIGRATION_CAPABILITY_MAPPED_RAM ||
           cap == MIGRATION_CAPABILITY_INCREMENTAL_SNAPSHOT;
}

/* QEMU refuses these together with background-snapshot. */
static const MigrationCapability snapshot_incompatible[] = {
    MIGRATION_CAPABILITY_POSTCOPY_RAM, MIGRATION_CAPABILITY_DIRTY_BITMAPS,
    MIGRATION_CAPABILITY_POSTCOPY_BLOCKTIME, MIGRATION_CAPABILITY_LATE_BLOCK_ACTIVATE,
    MIGRATION_CAPABILITY_RETURN_PATH, MIGRATION_CAPABILITY_MULTIFD,
    MIGRATION_CAPABILITY_PAUSE_BEFORE_SWITCHOVER, MIGRATION_CAPABILITY_AUTO_CONVERGE,
    MIGRATION_CAPABILITY_RELEASE_RAM, MIGRATION_CAPABILITY_RDMA_PIN_ALL,
    MIGRATION_CAPABILITY_COMPRESS, MIGRATION_CAPABILITY_XBZRLE, MIGRATION_CAPABILITY_X_COLO,
    MIGRATION_CAPABILITY_VALIDATE_UUID, MIGRATION_CAPABILITY_ZERO_COPY_SEND,
};

/* Pages at fixed offsets cannot be compressed, deltas or streamed in order. */
static const MigrationCapability mapped_ram_incompatible[] = {
    MIGRATION_CAPABILITY_XBZRLE, MIGRATION_CAPABILITY_COMPRESS,
    MIGRATION_CAPABILITY_POSTCOPY_RAM, MIGRATION_CAPABILITY_X_COLO,
    MIGRATION_CAPABILITY_RDMA_PIN_ALL, MIGRATION_CAPABILITY_ZERO_COPY_SEND,
    MIGRATION_CAPABILITY_POSTCOPY_PREEMPT, MIGRATION_CAPABILITY_BLOCK,
};

bool migration_check_capability(MigrationState *s, const bool *caps,
                                MigrationCapability cap, bool on, GError **errp)
{
    if (!on) {
        return true;
    }
    if (!capability_implemented(cap)) {
        error_setg(errp, "Capability '%s' is not supported", migration_capability_name(cap));
        return false;
    }
    if (cap == MIGRATION_CAPABILITY_BACKGROUND_SNAPSHOT) {
        for (size_t i = 0; i < G_N_ELEMENTS(snapshot_incompatible); i++) {
            if (caps[snapshot_incompatible[i]]) {
                error_setg(errp, "Background-snapshot is not compatible with %s",
                           migration_capability_name(snapshot_incompatible[i]));
                return false;
            }
        }
        return restore_allows_write_protect(s, errp) &&
               background_snapshot_check_capability(s->machine, errp);
    }
    /* The same pairs, turned on the other way round. */
    for (size_t i = 0; caps[MIGRATION_CAPABILITY_BACKGROUND_SNAPSHOT] &&
                       i < G_N_ELEMENTS(snapshot_incompatible); i++) {
        if (cap == snapshot_incompatible[i]) {
            error_setg(errp, "Background-snapshot is not compatible with %s",
                       migration_capability_name(cap));
            return false;
        }
    }
    if (cap == MIGRATION_CAPABILITY_INCREMENTAL_SNAPSHOT) {
        /* Tracking write-protects guest RAM between snapshots, as a snapshot does. */
        return restore_allows_write_protect(s, errp) &&
               background_snapshot_check_capability(s->machine, errp);
    }
    if (cap == MIGRATION_CAPABILITY_MAPPED_RAM) {
        for (size_t i = 0; i < G_N_ELEMENTS(mapped_ram_incompatible); i++) {
            if (caps[mapped_ram_incompatible[i]]) {
                error_setg(errp, "mapped-ram is not compatible with '%s'",
                           migration_capability_name(mapped_ram_incompatible[i]));
                return false;
            }
        }
    }
    return true;
}

bool migration_set_capability(MigrationState *s, MigrationCapability cap, bool on,
                              GError **errp)
{
    bool caps[MIGRATION_CAPABILITY__MAX];

    if (migration_is_active(s)) {
        error_setg(errp, "There's a migration process in progress");
        return false;
    }
    g_mutex_lock(&s->lock);
    memcpy(caps, s->capabilities, sizeof(caps));
    g_mutex_unlock(&s->lock);
    caps[cap] = on;
    if (!migration_check_capability(s, caps, cap, on, errp)) {
        return false;
    }
    g_mutex_lock(&s->lock);
    __atomic_store_n(&s->capabilities[cap], on, __ATOMIC_RELAXED);
    g_mutex_unlock(&s->lock);
    migration_capabilities_changed(s);
    return true;
}

void migration_capabilities_changed(MigrationState *s)
{
    if (!migration_capability_enabled(s, MIGRATION_CAPABILITY_INCREMENTAL_SNAPSHOT)) {
        /* Off: nothing stays protected, and the chain is forgotten. */
        incremental_snapshot_stop_tracking(s);
    }
}

char *migration_snapshot_base(MigrationState *s)
{
    g_mutex_lock(&s->lock);
    char *v = g_strdup(s->parameters.snapshot_base);
    g_mutex_unlock(&s->lock);
    return v;
}

char *migration_restore_base(MigrationState *s)
{
    g_mutex_lock(&s->lock);
    char *v = g_strdup(s->parameters.restore_base);
    g_mutex_unlock(&s->lock);
    return v;
}

bool migration_set_path_parameter(MigrationState *s, const char *name, const char *value,
                                  GError **errp)
{
    char **slot;

    if (strlen(value) > IMAGE_BASE_PATH_MAX) {
        error_setg(errp, "Parameter '%s' expects a path of at most %u bytes", name,
                   IMAGE_BASE_PATH_MAX);
        return false;
    }
    if (!strcmp(name, "snapshot-base")) {
        slot = &s->parameters.snapshot_base;
    } else if (!strcmp(name, "restore-base")) {
        if (s->incoming && migration_is_active(s)) {
            error_setg(errp, "restore-base cannot change while an incoming migration runs");
            return false;
        }
        slot = &s->parameters.restore_base;
    } else {
        error_setg(errp, "invalid parameter value: %s", name);
        return false;
    }
    g_mutex_lock(&s->lock);
    g_free(*slot);
    *slot = g_strdup(value);
    g_mutex_unlock(&s->lock);
    return true;
}

/* A percentage parameter outside QEMU's range gets QEMU's message (its name with underscores). */
static bool check_percent(const uint64_t *v, const char *name, uint64_t max, GError **errp)
{
    if (v && (*v < 1 || *v > max)) {
        error_setg(errp, "Parameter '%s' expects an integer in the range of 1 to %" PRIu64,
                   name, max);
        return false;
    }
    return true;
}

static void store_u64(uint64_t *slot, const uint64_t *v)
{
    if (v) {
        __atomic_store_n(slot, *v, __ATOMIC_RELAXED);
    }
}

bool migration_set_parameters(MigrationState *s, const MigrationParameterUpdate *u,
                              GError **errp)
{
    MigrationParameters *p = &s->parameters;

    if (u->downtime_limit && *u->downtime_limit > MIGRATION_MAX_DOWNTIME_LIMIT_MS) {
        error_setg(errp, "Parameter 'downtime_limit' expects an integer in the range "
                   "of 0 to %llu milliseconds", MIGRATION_MAX_DOWNTIME_LIMIT_MS);
        return false;
    }
    if (u->background_snapshot_buffer_size && *u->background_snapshot_buffer_size &&
        *u->background_snapshot_buffer_size < MIGRATION_MIN_SNAPSHOT_BUFFER) {
        error_setg(errp, "Parameter 'background-snapshot-buffer-size' expects 0 "
                   "(automatic) or at least %u bytes", MIGRATION_MIN_SNAPSHOT_BUFFER);
        return false;
    }
    if (u->background_snapshot_buffer_keep &&
        *u->background_snapshot_buffer_keep > MIGRATION_MAX_SNAPSHOT_BUFFER_KEEP_MS) {
        error_setg(errp, "Parameter 'background-snapshot-buffer-keep' expects an integer in "
                   "the range of 0 to %llu milliseconds", MIGRATION_MAX_SNAPSHOT_BUFFER_KEEP_MS);
        return false;
    }
    if (!check_percent(u->cpu_throttle_initial, "cpu_throttle_initial", 99, errp) ||
        !check_percent(u->cpu_throttle_increment, "cpu_throttle_increment", 99, errp) ||
        !check_percent(u->throttle_trigger_threshold, "throttle_trigger_threshold", 100,
                       errp)) {
        return false;
    }
    g_mutex_lock(&s->lock);
    /* As QEMU, on the values as they would be: the maximum may not be under the start. */
    uint64_t initial = u->cpu_throttle_initial ? *u->cpu_throttle_initial
                                               : p->cpu_throttle_initial;
    uint64_t max = u->max_cpu_throttle ? *u->max_cpu_throttle : p->max_cpu_throttle;
    if (max < initial || max > 99) {
        g_mutex_unlock(&s->lock);
        error_setg(errp, "Parameter 'max_cpu_throttle' expects an integer in the range of "
                   "cpu_throttle_initial to 99");
        return false;
    }
    store_u64(&p->max_bandwidth, u->max_bandwidth);
    store_u64(&p->downtime_limit, u->downtime_limit);
    store_u64(&p->background_snapshot_buffer_size, u->background_snapshot_buffer_size);
    store_u64(&p->background_snapshot_buffer_keep, u->background_snapshot_buffer_keep);
    store_u64(&p->cpu_throttle_initial, u->cpu_throttle_initial);
    store_u64(&p->cpu_throttle_increment, u->cpu_throttle_increment);
    store_u64(&p->max_cpu_throttle, u->max_cpu_throttle);
    store_u64(&p->throttle_trigger_threshold, u->throttle_trigger_threshold);
    if (u->cpu_throttle_tailslow) {
        __atomic_store_n(&p->cpu_throttle_tailslow, *u->cpu_throttle_tailslow,
                         __ATOMIC_RELAXED);
    }
    g_mutex_unlock(&s->lock);
    if (u->background_snapshot_buffer_keep && !*u->background_snapshot_buffer_keep) {
        page_pool_drop_kept();      /* not kept: give back what is kept now */
    }
    return true;
}

void migration_auto_converge_params(MigrationState *s, AutoConvergeParams *out)
{
    MigrationParameters *p = &s->parameters;

    out->initial = (unsigned)__atomic_load_n(&p->cpu_throttle_initial, __ATOMIC_RELAXED);
    out->increment = (unsigned)__atomic_load_n(&p->cpu_throttle_increment, __ATOMIC_RELAXED);
    out->max = (unsigned)__atomic_load_n(&p->max_cpu_throttle, __ATOMIC_RELAXED);
    out->threshold = (unsigned)__atomic_load_n(&p->throttle_trigger_threshold,
                                               __ATOMIC_RELAXED);
    out->tailslow = __atomic_load_n(&p->cpu_throttle_tailslow, __ATOMIC_RELAXED);
}
