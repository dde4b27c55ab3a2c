/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Incoming migration: -incoming URI / migrate-incoming, loading on a thread, starting or refusing the guest. */
#include "migration/migration.h"

#include <string.h>
#include <sys/stat.h>

#include "migration/channel.h"
#include "migration/incremental-snapshot.h"
#include "migration/migration-internal.h"
#include "migration/restore.h"
#include "migration/savevm.h"
#include "migration/stream-file.h"
#include "system/machine.h"
#include "util/error.h"

/* Run on the main loop once loading ended: start the guest, or shut down. */
typedef struct IncomingResult {
    Machine *m;
    bool ok;
    bool source_running;
} IncomingResult;

static gboolean incoming_finish(gpointer opaque)
{
    IncomingResult *r = opaque;
    Machine *m = r->m;
    MigrationState *s = m->migration;
    g_autoptr(GError) err = NULL;

    if (!r->ok) {
        g_autofree char *desc = migration_error_desc(s);

        /* The one message the user sees before frostvm exits with status 1. */
        g_printerr("frostvm: load of migration failed: %s\n",
                   desc ? desc : "unknown error");
        runstate_request_shutdown(m, "host-error", 1);
        return G_SOURCE_REMOVE;
    }
    /*
     * As QEMU: the guest runs if it ran on the source, unless -S (or "stop"
     * while waiting) asked to keep it paused.
     */
    /* Leave "inmigrate" first: starting from it only means "run once loaded". */
    runstate_set(m, RUN_STATE_PAUSED);
    if (!restore_image_may_run(s)) {
        /* A lazy restore's image failed its check before the guest ran. */
        restore_image_guest_started(s);
        return G_SOURCE_REMOVE;
    }
    if (r->source_running && !(m->config && m->config->start_paused)) {
        if (!runstate_vm_start(m, &err)) {
            migration_record_error(s, err);
            migration_set_state(s, MIGRATION_STATUS_ACTIVE, MIGRATION_STATUS_FAILED);
            g_printerr("frostvm: cannot start the guest after the migration: %s\n",
                       err->message);
            runstate_request_shutdown(m, "host-error", 1);
            return G_SOURCE_REMOVE;
        }
    }
    if (s->restore) {
        /* A page-aligned image: completed now, or once its fill ends. */
        restore_image_guest_started(s);
        return G_SOURCE_REMOVE;
    }
    /* As QEMU: "completed" once the guest is in its final state, not before. */
    migration_set_state(s, MIGRATION_STATUS_ACTIVE, MIGRATION_STATUS_COMPLETED);
    return G_SOURCE_REMOVE;
}

static gpointer incoming_thread(gpointer opaque)
{
    MigrationState *s = opaque;
    Machine *m = s->machine;
    MigrationChannel *ch = s->channel;
    IncomingResult *r = g_new0(IncomingResult, 1);
    g_autoptr(GError) err = NULL;
    SavevmLoadInfo info = { 0 };
    StreamFile *f = NULL;
    g_autofree char *path = NULL;
    struct stat read_st;
    bool ok;

    ok = channel_accept(ch, &err);
    if (ok) {
        migration_set_state(s, MIGRATION_STATUS_SETUP, MIGRATION_STATUS_ACTIVE);
    }
    /* An image file: an increment may build on it once restored (the file as read). */
    if (ok && channel_kind(ch) == MIGRATION_CHANNEL_FILE && channel_fd(ch) >= 0 &&
        fstat(channel_fd(ch), &read_st) == 0) {
        path = g_strdup(channel_uri(ch) + strlen("file:"));
    }
    if (ok && restore_channel_is_mapped_image(ch)) {
        ok = restore_image_start(s, ch, &info, &err);
        migration_stat_set(&s->ram.normal, info.data_pages);
        migration_stat_set(&s->ram.normal_bytes, info.data_pages * MACHINE_PAGE_SIZE);
    } else if (ok) {
        g_autofree char *base = migration_restore_base(s);
        const char *uri = channel_uri(ch);

        f = stream_file_new_input(ch);
        /* A file's incremental image finds its bases beside it. */
        ok = savevm_load_image(f, m, g_str_has_prefix(uri, "file:") ? uri + strlen("file:") : NULL,
                               base, &info, &err);
        migration_stat_set(&s->ram.transferred, stream_file_offset(f));
        migration_stat_set(&s->ram.normal, info.data_pages);
        migration_stat_set(&s->ram.normal_bytes, info.data_pages * MACHINE_PAGE_SIZE);
        migration_stat_set(&s->ram.duplicate, info.zero_pages);
        g_debug("incoming: %" G_GUINT64_FORMAT " MiB faulted in ahead of the stream, %"
                G_GUINT64_FORMAT " MiB of it given back (no data came)",
                info.prefaulted_bytes >> 20, info.ahead_returned_bytes >> 20);
    }
    if (migration_capability_enabled(s, MIGRATION_CAPABILITY_RETURN_PATH) &&
        channel_fd(ch) >= 0 && channel_return_path_possible(ch, NULL)) {
        g_autoptr(GError) rp_err = NULL;

        /* The source completes on our yes: without it, the guest must not run here too. */
        if (!channel_return_path_send(ch, ok, &rp_err) && ok) {
            ok = false;
            err = g_steal_pointer(&rp_err);
        }
    }
    g_mutex_lock(&s->lock);
    s->channel = NULL;
    g_mutex_unlock(&s->lock);
    if (!channel_close(ch, ok, ok ? &err : NULL)) {
        ok = false;
    }
    stream_file_free(f);
    if (ok && restore_image_filled_at_load(s)) {
        g_autoptr(GError) track_err = NULL;

        /* The guest has not run yet: its first write is already recorded. */
        EpochTracking *et = incremental_snapshot_restored_begin(s, path, &info, &read_st,
                                                                &track_err);
        if (et) {
            incremental_snapshot_restored_publish(s, et);
        } else if (track_err) {
            g_printerr("frostvm: warning: the restored image cannot be a snapshot-base: %s\n",
                       track_err->message);
        }
    }
    migration_stat_set(&s->total_time, (migration_now_us() - (uint64_t)s->start_us) / 1000);

    if (!ok) {
        if (!err) {
            error_setg(&err, "incoming migration from %s failed", s->uri);
        }
        migration_record_error(s, err);
    }
    if (!ok) {
        migration_set_state(s, migration_get_status(s), MIGRATION_STATUS_FAILED);
    }

    r->m = m;
    r->ok = ok;
    r->source_running = info.source_running;
    if (m->main_context) {
        /*
         * Always through a source, never g_main_context_invoke(): a load that
         * fails before main runs its loop would otherwise finish on this
         * thread, and the quit it requests would be lost before the loop starts.
         */
        GSource *source = g_idle_source_new();

        g_source_set_callback(source, incoming_finish, r, g_free);
        g_source_attach(source, m->main_context);
        g_source_unref(source);
    } else {
        incoming_finish(r);
        g_free(r);
    }
    return NULL;
}

bool migration_incoming_start(Machine *m, const char *uri, GError **errp)
{
    MigrationState *s = m->migration;
    MigrationChannel *ch;

    if (!strcmp(uri, "defer")) {
        /* Wait for migrate-incoming. */
        runstate_set(m, RUN_STATE_INMIGRATE);
        return true;
    }
    if (s->incoming_requested) {
        error_setg(errp, "The incoming migration has already been started");
        return false;
    }
    if (migration_is_active(s)) {
        error_setg(errp, "There's a migration process in progress");
        return false;
    }
    ch = channel_new(uri, false, errp);
    if (ch && (!channel_fd_resolve(ch, m->monitor, errp) || !channel_connect(ch, errp))) {
        channel_close(ch, false, NULL);
        ch = NULL;
    }
    if (!ch) {
        return false;
    }
    migration_wait(s);
    migration_reset(s, uri, true);
    s->incoming_requested = true;
    runstate_set(m, RUN_STATE_INMIGRATE);
    g_mutex_lock(&s->lock);
    s->channel = ch;
    g_mutex_unlock(&s->lock);
    migration_set_state(s, migration_get_status(s), MIGRATION_STATUS_SETUP);
    g_mutex_lock(&s->lock);
    s->thread = g_thread_new("migration-in", incoming_thread, s);
    g_mutex_unlock(&s->lock);
    return true;
}
