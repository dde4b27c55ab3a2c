/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The background snapshot thread: pause, save devices and arm write tracking, resume, save RAM, finish the stream. */
#include "migration/background-snapshot.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "migration/image-identity.h"
#include "migration/incremental-snapshot.h"
#include "migration/mapped-ram.h"
#include "migration/migration.h"
#include "migration/savevm.h"
#include "migration/snapshot/snapshot-internal.h"
#include "migration/stream-file.h"
#include "monitor/monitor.h"
#include "system/machine.h"
#include "system/memory-backend.h"
#include "system/runstate.h"
#include "util/error.h"
#include "util/idle-section.h"

/* query-migrate's figures are refreshed this often. */
#define STATS_REFRESH_US (50 * 1000)
/* Longest the set-up before the pause stays at idle priority (vCPUs on every CPU). */
#define SETUP_IDLE_MAX_MS 50

typedef struct SnapshotRun {
    MigrationState *s;
    BackgroundSnapshot *bs;
    SnapshotPlacement *placement;   /* where its threads run, and at what weight */
    uint64_t downtime_us;
    /*
     * A small thread refreshes the figures (the migration thread may sit for
     * long in a pool wait or in the final drain to a slow sink, and
     * query-migrate must keep moving meanwhile). The engine watches its own
     * threads for starvation (snapshot-watchdog.c).
     */
    GThread *stats_thread;
    GMutex stats_lock;
    GCond stats_cond;
    bool stats_stop;
} SnapshotRun;

bool background_snapshot_check_capability(Machine *m, GError **errp)
{
    for (unsigned i = 0; i < m->ram_blocks->len; i++) {
        RamBlock *rb = g_ptr_array_index(m->ram_blocks, i);
        if (rb->page_size > SNAPSHOT_MAX_BACKING_PAGE) {
            g_autofree char *desc = rb->backend ? memory_backend_describe(rb->backend)
                                                : g_strdup("anonymous memory");
            error_setg(errp, "background-snapshot: RAM block '%s' (%s) is backed by %"
                       G_GUINT64_FORMAT " MiB pages; background snapshots support pages "
                       "of at most 2 MiB", rb->name, desc, rb->page_size >> 20);
            return false;
        }
    }
    return write_tracking_check(m->ram_blocks, NULL, errp);
}

/* Copy the engine's figures into the migration state (query-migrate reads them). */
static void refresh_stats(SnapshotRun *run)
{
    BackgroundSnapshotStats st = { 0 };
    SnapshotWriter *w = &run->bs->writer;

    snapshot_engine_get_stats(run->bs, &st);
    st.downtime_us = run->downtime_us;
    migration_update_snapshot_stats(run->s, &st,
        __atomic_load_n(&w->data_pages, __ATOMIC_RELAXED),
        __atomic_load_n(&w->zero_pages, __ATOMIC_RELAXED),
        __atomic_load_n(&w->bytes, __ATOMIC_RELAXED),
        run->bs->total_pages - __atomic_load_n(&run->bs->fig.saved_pages, __ATOMIC_RELAXED));
}

static gpointer stats_thread_fn(gpointer opaque)
{
    SnapshotRun *run = opaque;
    struct sched_param idle = { 0 };

    /* Figures for query-migrate can wait; a vCPU waited 1 ms behind this thread's start. */
    if (!run->bs->vcpus_fill_cpus) {
        pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle);
    }

    g_mutex_lock(&run->stats_lock);
    while (!run->stats_stop) {
        gint64 deadline = g_get_monotonic_time() + STATS_REFRESH_US;

        g_cond_wait_until(&run->stats_cond, &run->stats_lock, deadline);
        if (!run->stats_stop) {
            refresh_stats(run);
        }
    }
    g_mutex_unlock(&run->stats_lock);
    return NULL;
}

static void stats_thread_stop(SnapshotRun *run)
{
    if (!run->stats_thread) {
        return;
    }
    g_mutex_lock(&run->stats_lock);
    run->stats_stop = true;
    g_cond_signal(&run->stats_cond);
    g_mutex_unlock(&run->stats_lock);
    g_thread_join(run->stats_thread);
    run->stats_thread = NULL;
}

/* Between scan chunks: false once cancelled. */
static bool scan_tick(void *opaque)
{
    SnapshotRun *run = opaque;

    return !migration_is_cancelling(run->s);
}

/*
 * The only downtime: stop the vCPUs, save device state into memory, protect
 * all RAM, resume. Resuming only after protection is in place is what makes
 * the image consistent: any write from then on faults first. Returns the
 * device state, or NULL (the guest is running again either way).
 */
static GByteArray *pause_and_arm(SnapshotRun *run, Machine *m, GError **errp)
{
    RunState before = runstate_get(m);
    bool was_running = before == RUN_STATE_RUNNING;
    uint64_t start = write_tracking_now_ns();
    g_autoptr(GError) resume_err = NULL;

    /*
     * STOP and RESUME keep their times but reach the client after the pause:
     * sent in it, the main loop and the client woke on this thread's CPU and
     * took 0.2-0.7 ms of a 1.5 ms pause with KVM (bpftrace, sched_switch).
     */
    monitor_events_hold(m->monitor);
    snapshot_placement_pause_begin(run->placement);
    /* Placed off the vCPUs' CPUs, this thread may spin while they park. */
    machine_set_pause_spin(m, run->placement->active);
    runstate_vm_stop(m, RUN_STATE_SAVE_VM);
    machine_set_pause_spin(m, false);
    GByteArray *devices = savevm_save_devices(m, errp);
    if (devices && !snapshot_engine_arm(run->bs, errp)) {
        g_byte_array_unref(devices);
        devices = NULL;
    }
    if (was_running) {
        if (!runstate_vm_start(m, &resume_err)) {
            g_warning("background-snapshot: resuming the guest failed: %s",
                      resume_err->message);
        }
    } else {
        runstate_set(m, before);
    }
    run->downtime_us = (write_tracking_now_ns() - start) / 1000;
    snapshot_placement_pause_end(run->placement);
    snapshot_placement_release_vcpu(run->placement);
    monitor_events_release(m->monitor);
    return devices;
}

bool background_snapshot_run(MigrationState *s, StreamFile *f, GError **errp)
{
    Machine *m = s->machine;
    SnapshotRun run = { .s = s };
    g_autoptr(GByteArray) devices = NULL;
    bool tracked = s->incremental &&
                   migration_capability_enabled(s, MIGRATION_CAPABILITY_INCREMENTAL_SNAPSHOT);
    ImageIdentity id = { .has_uuid = true };
    IdleSection *setup_idle = NULL;
    SnapshotPlacement placement = { 0 };
    bool ok = false;

    g_mutex_init(&run.stats_lock);
    g_cond_init(&run.stats_cond);

    /* 0 lets the engine size the pool from guest RAM. */
    uint64_t pool_bytes = __atomic_load_n(&s->parameters.background_snapshot_buffer_size,
                                          __ATOMIC_RELAXED);

    /* Incremental-snapshot: tracking runs from here on; the image names its base. */
    if (tracked && !incremental_snapshot_begin(s, s->incremental, &id, errp)) {
        goto out;
    }
    if (tracked && !pool_bytes) {
        pool_bytes = incremental_snapshot_pool_bytes(s, s->incremental);
    }
    if (!tracked) {
        image_uuid_generate(id.uuid);
    }
    if (s->mapped_ram) {
        /* The image's header is written last, by mapped_ram_writer_finish(). */
        id.page_aligned = true;
        memcpy(id.uuid, mapped_ram_writer_header(s->mapped_ram)->uuid, IMAGE_UUID_SIZE);
        if (id.has_base) {
            mapped_ram_writer_set_base(s->mapped_ram, id.base_uuid, id.base_digest,
                                       id.base_path);
        }
    } else if (!savevm_write_header_identity(f, m, SAVEVM_STREAM_BACKGROUND_SNAPSHOT, &id,
                                             errp)) {
        goto out;
    }
    /*
     * The set-up yields to the vCPUs (util/idle-section.h): at normal
     * priority its long system calls (populating the pool, registering and
     * protecting RAM) kept a woken vCPU waiting 3-4 ms (bpftrace). The pause
     * itself runs at the thread's own priority.
     */
    snapshot_placement_begin(&placement, m, f ? stream_file_channel(f) : NULL);
    run.placement = &placement;
    if (!background_snapshot_vcpus_fill_cpus(m->smp)) {
        setup_idle = idle_section_begin(SETUP_IDLE_MAX_MS);
    }
    /* From here until snapshot_engine_finish() only the writer thread writes to @f. */
    run.bs = tracked ? snapshot_engine_new_tracked(m->ram_blocks, pool_bytes, f, s->mapped_ram,
                                                   s->epoch, errp)
                     : snapshot_engine_new(m->ram_blocks, pool_bytes, f, s->mapped_ram, errp);
    if (!run.bs) {
        goto out;
    }
    if (tracked) {
        snapshot_engine_set_base(run.bs, incremental_snapshot_base_uuid(s->incremental));
    }
    snapshot_engine_set_vcpus(run.bs, m->smp);
    snapshot_engine_keep_pool(run.bs, __atomic_load_n(&s->parameters.background_snapshot_buffer_keep,
                                                      __ATOMIC_RELAXED), m->main_context);
    snapshot_placement_fault_thread(&placement, run.bs);
    /* Protect while the guest runs: the pause then only redoes what it wrote since. */
    snapshot_placement_hold_vcpu(&placement, m);
    if (!snapshot_engine_prearm(run.bs, errp)) {
        goto out;
    }
    snapshot_engine_prearm_settle(run.bs);
    g_clear_pointer(&setup_idle, idle_section_end);
    devices = pause_and_arm(&run, m, errp);
    if (!devices) {
        goto out;
    }
    refresh_stats(&run);
    run.stats_thread = g_thread_new("snapshot-stats", stats_thread_fn, &run);
    if (!snapshot_engine_save_ram(run.bs, scan_tick, &run, errp)) {
        goto out;
    }
    if (!snapshot_engine_finish(run.bs, errp)) {
        goto out;
    }
    if (s->mapped_ram) {
        ok = mapped_ram_writer_finish(s->mapped_ram, devices->data, devices->len, errp);
        id.digest = mapped_ram_writer_header(s->mapped_ram)->digest;
    } else {
        ok = savevm_write_ram_end(f, errp) &&
             savevm_write_devices(f, devices, errp) &&
             savevm_write_footer_digest(f, &id.digest, errp) &&
             stream_file_flush(f) &&
             stream_file_check(f, errp);
    }
    if (ok && tracked) {
        incremental_snapshot_written(s->incremental, &id);
    }
    if (!ok && errp && !*errp) {
        error_setg(errp, "background-snapshot: writing the stream failed");
    }

out:
    g_clear_pointer(&setup_idle, idle_section_end);
    stats_thread_stop(&run);
    g_mutex_clear(&run.stats_lock);
    g_cond_clear(&run.stats_cond);
    if (run.bs) {
        /* Abort releases the guest whatever happened above (no-op when finished). */
        if (!ok) {
            snapshot_engine_abort(run.bs);
        }
        refresh_stats(&run);
        snapshot_engine_free(run.bs);
    }
    snapshot_placement_end(&placement);
    image_identity_clear(&id);
    return ok;
}
