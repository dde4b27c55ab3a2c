/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The migration QMP commands (qapi/migration.json): thin wrappers around migration.c. */
#include "migration/migration.h"

#include <string.h>

#include "migration/epoch-tracking.h"
#include "migration/migration-internal.h"
#include "migration/restore.h"
#include "system/machine.h"
#include "util/error.h"

static void put_uint(JsonBuilder *b, const char *name, uint64_t v)
{
    json_builder_set_member_name(b, name);
    json_builder_add_int_value(b, (gint64)MIN(v, (uint64_t)G_MAXINT64));
}

static uint64_t elapsed_ms(MigrationState *s)
{
    return (migration_now_us() - (uint64_t)s->start_us) / 1000;
}

static void query_ram(MigrationState *s, MigrationStatus status, JsonBuilder *b)
{
    MigrationRamStats *st = &s->ram;
    uint64_t transferred = migration_stat_get(&st->transferred);
    uint64_t normal = migration_stat_get(&st->normal);
    uint64_t duplicate = migration_stat_get(&st->duplicate);
    uint64_t bandwidth = migration_stat_get(&st->bandwidth);
    uint64_t pps = migration_stat_get(&st->pages_per_second);
    uint64_t ms = status == MIGRATION_STATUS_COMPLETED ? migration_stat_get(&s->total_time)
                                                       : elapsed_ms(s);
    double mbps;

    /* QEMU: megabits per second; once completed, over the whole migration. */
    if (status == MIGRATION_STATUS_COMPLETED || !bandwidth) {
        mbps = ms ? transferred * 8.0 / (ms / 1000.0) / 1e6 : 0;
    } else {
        mbps = bandwidth * 8.0 / 1e6;
    }
    if (!pps && ms) {
        pps = (normal + duplicate) * 1000 / ms;
    }

    json_builder_set_member_name(b, "ram");
    json_builder_begin_object(b);
    put_uint(b, "transferred", transferred);
    put_uint(b, "remaining", migration_stat_get(&st->remaining));
    put_uint(b, "total", migration_stat_get(&st->total));
    put_uint(b, "duplicate", duplicate);
    put_uint(b, "skipped", 0);
    put_uint(b, "normal", normal);
    put_uint(b, "normal-bytes", migration_stat_get(&st->normal_bytes));
    put_uint(b, "dirty-pages-rate", migration_stat_get(&st->dirty_pages_rate));
    json_builder_set_member_name(b, "mbps");
    json_builder_add_double_value(b, mbps);
    put_uint(b, "dirty-sync-count", migration_stat_get(&st->dirty_sync_count));
    put_uint(b, "postcopy-requests", 0);
    put_uint(b, "page-size", MACHINE_PAGE_SIZE);
    put_uint(b, "multifd-bytes", 0);
    put_uint(b, "pages-per-second", pps);
    put_uint(b, "precopy-bytes", migration_stat_get(&st->precopy_bytes));
    put_uint(b, "downtime-bytes", migration_stat_get(&st->downtime_bytes));
    put_uint(b, "postcopy-bytes", 0);
    json_builder_end_object(b);
}

JsonNode *migration_query(MigrationState *s)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    MigrationStatus status = migration_get_status(s);
    g_autofree char *error = NULL;

    json_builder_begin_object(b);
    if (status == MIGRATION_STATUS_NONE) {
        /* No migration ever: QEMU answers {}. */
        json_builder_end_object(b);
        return json_builder_get_root(b);
    }
    json_builder_set_member_name(b, "status");
    json_builder_add_string_value(b, migration_status_name(status));

    switch (status) {
    case MIGRATION_STATUS_POSTCOPY_ACTIVE:
    case MIGRATION_STATUS_ACTIVE:
    case MIGRATION_STATUS_PRE_SWITCHOVER:
    case MIGRATION_STATUS_DEVICE:
    case MIGRATION_STATUS_CANCELLING:
        put_uint(b, "setup-time", migration_stat_get(&s->setup_time));
        put_uint(b, "total-time", elapsed_ms(s));
        if (!s->incoming) {
            int throttle = cpu_throttle_get_percent(&s->machine->throttle);

            put_uint(b, "expected-downtime", migration_stat_get(&s->expected_downtime));
            /* As QEMU: present only once auto-converge throttles the guest. */
            if (throttle) {
                put_uint(b, "cpu-throttle-percentage", (uint64_t)throttle);
            }
        }
        query_ram(s, status, b);
        break;
    case MIGRATION_STATUS_COMPLETED:
        put_uint(b, "setup-time", migration_stat_get(&s->setup_time));
        put_uint(b, "total-time", migration_stat_get(&s->total_time));
        if (!s->incoming) {
            put_uint(b, "downtime", migration_stat_get(&s->downtime));
        }
        query_ram(s, status, b);
        break;
    case MIGRATION_STATUS_FAILED:
        error = migration_error_desc(s);
        if (error) {
            json_builder_set_member_name(b, "error-desc");
            json_builder_add_string_value(b, error);
        }
        break;
    default:
        break;
    }
    g_mutex_lock(&s->lock);
    if (s->snapshot_ran) {
        BackgroundSnapshotStats st = s->snapshot;
        g_mutex_unlock(&s->lock);
        background_snapshot_stats_to_json(&st, b);
    } else {
        g_mutex_unlock(&s->lock);
    }
    if (s->incoming) {
        restore_stats_to_json(s, b);
    }
    EpochTracking *et = __atomic_load_n(&s->epoch, __ATOMIC_ACQUIRE);
    if (et) {
        EpochTrackingStats ts;

        /* The monitor's thread frees tracking only with the capability: safe to read here. */
        epoch_tracking_get_stats(et, &ts);
        json_builder_set_member_name(b, "incremental-tracking");
        json_builder_begin_object(b);
        put_uint(b, "epoch-pages", ts.epoch_pages);
        put_uint(b, "chain-images", ts.images);
        put_uint(b, "faults", ts.faults);
        if (ts.lost) {
            json_builder_set_member_name(b, "lost");
            json_builder_add_string_value(b, ts.lost);
        }
        json_builder_end_object(b);
        g_free(ts.lost);
    }
    json_builder_end_object(b);
    return json_builder_get_root(b);
}

static JsonNode *qmp_migrate(Machine *m, JsonObject *args, GError **errp)
{
    if (json_object_get_boolean_member_with_default(args, "blk", FALSE) ||
        json_object_get_boolean_member_with_default(args, "inc", FALSE)) {
        error_setg(errp, "Block migration (blk/inc) is not supported: frostvm has no "
                   "block devices");
        return NULL;
    }
    if (json_object_get_boolean_member_with_default(args, "resume", FALSE)) {
        error_setg(errp, "resume is only for a paused postcopy migration, which frostvm "
                   "does not have");
        return NULL;
    }
    migration_start(m->migration, json_object_get_string_member(args, "uri"), errp);
    return NULL;
}

static JsonNode *qmp_migrate_incoming(Machine *m, JsonObject *args, GError **errp)
{
    MigrationState *s = m->migration;

    if (s->incoming_requested) {
        error_setg(errp, "The incoming migration has already been started");
        return NULL;
    }
    if (runstate_get(m) != RUN_STATE_INMIGRATE) {
        error_setg(errp, "'-incoming' was not specified on the command line");
        return NULL;
    }
    migration_incoming_start(m, json_object_get_string_member(args, "uri"), errp);
    return NULL;
}

static JsonNode *qmp_migrate_cancel(Machine *m, JsonObject *args, GError **errp)
{
    migration_cancel(m->migration);
    return NULL;
}

static JsonNode *qmp_query_migrate(Machine *m, JsonObject *args, GError **errp)
{
    return migration_query(m->migration);
}

static JsonNode *qmp_migrate_set_capabilities(Machine *m, JsonObject *args, GError **errp)
{
    MigrationState *s = m->migration;
    JsonArray *list = json_object_get_array_member(args, "capabilities");
    bool caps[MIGRATION_CAPABILITY__MAX];
    guint n = json_array_get_length(list);

    if (migration_is_active(s)) {
        error_setg(errp, "There's a migration process in progress");
        return NULL;
    }
    g_mutex_lock(&s->lock);
    memcpy(caps, s->capabilities, sizeof(caps));
    g_mutex_unlock(&s->lock);
    /* All or nothing: check the whole new set before applying any of it. */
    for (guint i = 0; i < n; i++) {
        JsonObject *o = json_array_get_object_element(list, i);
        MigrationCapability cap;

        if (!migration_capability_from_name(json_object_get_string_member(o, "capability"),
                                            &cap)) {
            error_setg(errp, "Parameter 'capability' does not accept value '%s'",
                       json_object_get_string_member(o, "capability"));
            return NULL;
        }
        caps[cap] = json_object_get_boolean_member(o, "state");
    }
    for (int c = 0; c < MIGRATION_CAPABILITY__MAX; c++) {
        if (!migration_check_capability(s, caps, (MigrationCapability)c, caps[c], errp)) {
            return NULL;
        }
    }
    g_mutex_lock(&s->lock);
    for (int c = 0; c < MIGRATION_CAPABILITY__MAX; c++) {
        __atomic_store_n(&s->capabilities[c], caps[c], __ATOMIC_RELAXED);
    }
    g_mutex_unlock(&s->lock);
    migration_capabilities_changed(s);
    return NULL;
}

static JsonNode *qmp_migrate_continue(Machine *m, JsonObject *args, GError **errp)
{
    const char *name = json_object_get_string_member(args, "state");
    MigrationStatus state;

    if (!migration_status_from_name(name, &state)) {
        /* A MigrationStatus frostvm never enters (colo, wait-unplug...): never the current one. */
        state = MIGRATION_STATUS__MAX;
    }
    migration_continue(m->migration, state, errp);
    return NULL;
}

static JsonNode *qmp_query_migrate_capabilities(Machine *m, JsonObject *args,
                                                GError **errp)
{
    g_autoptr(JsonBuilder) b = json_builder_new();

    json_builder_begin_array(b);
    for (int c = 0; c < MIGRATION_CAPABILITY__MAX; c++) {
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "capability");
        json_builder_add_string_value(b, migration_capability_name((MigrationCapability)c));
        json_builder_set_member_name(b, "state");
        json_builder_add_boolean_value(b, migration_capability_enabled(m->migration,
                                                                       (MigrationCapability)c));
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    return json_builder_get_root(b);
}

static bool get_u64_member(JsonObject *args, const char *name, uint64_t *v)
{
    if (!json_object_has_member(args, name)) {
        return false;
    }
    *v = (uint64_t)json_object_get_int_member(args, name);
    return true;
}

static JsonNode *qmp_migrate_set_parameters(Machine *m, JsonObject *args, GError **errp)
{
    uint64_t bw, downtime, buffer, keep, initial, increment, max_throttle, threshold;
    bool tailslow = json_object_has_member(args, "cpu-throttle-tailslow") &&
                    json_object_get_boolean_member(args, "cpu-throttle-tailslow");
    MigrationParameterUpdate u = {
        .max_bandwidth = get_u64_member(args, "max-bandwidth", &bw) ? &bw : NULL,
        .downtime_limit = get_u64_member(args, "downtime-limit", &downtime) ? &downtime : NULL,
        .background_snapshot_buffer_size =
            get_u64_member(args, "background-snapshot-buffer-size", &buffer) ? &buffer : NULL,
        .background_snapshot_buffer_keep =
            get_u64_member(args, "background-snapshot-buffer-keep", &keep) ? &keep : NULL,
        .cpu_throttle_initial =
            get_u64_member(args, "cpu-throttle-initial", &initial) ? &initial : NULL,
        .cpu_throttle_increment =
            get_u64_member(args, "cpu-throttle-increment", &increment) ? &increment : NULL,
        .max_cpu_throttle =
            get_u64_member(args, "max-cpu-throttle", &max_throttle) ? &max_throttle : NULL,
        .throttle_trigger_threshold =
            get_u64_member(args, "throttle-trigger-threshold", &threshold) ? &threshold : NULL,
        .cpu_throttle_tailslow =
            json_object_has_member(args, "cpu-throttle-tailslow") ? &tailslow : NULL,
    };
    MigrationRestoreMode mode;

    if (json_object_has_member(args, "restore-mode")) {
        const char *name = json_object_get_string_member(args, "restore-mode");
        if (!migration_restore_mode_from_name(name, &mode)) {
            error_setg(errp, "Parameter 'restore-mode' does not accept value '%s'", name);
            return NULL;
        }
    }
    if (!migration_set_parameters(m->migration, &u, errp)) {
        return NULL;
    }
    if (json_object_has_member(args, "restore-mode") &&
        !migration_set_restore_mode(m->migration, mode, errp)) {
        return NULL;
    }
    for (const char *const *name = (const char *const[]){ "snapshot-base", "restore-base", NULL };
         *name; name++) {
        if (json_object_has_member(args, *name) &&
            !migration_set_path_parameter(m->migration, *name,
                                          json_object_get_string_member(args, *name), errp)) {
            return NULL;
        }
    }
    return NULL;
}

static JsonNode *qmp_query_migrate_parameters(Machine *m, JsonObject *args, GError **errp)
{
    MigrationState *s = m->migration;
    g_autoptr(JsonBuilder) b = json_builder_new();

    json_builder_begin_object(b);
    put_uint(b, "max-bandwidth", migration_max_bandwidth(s));
    put_uint(b, "downtime-limit", migration_downtime_limit(s));
    put_uint(b, "background-snapshot-buffer-size",
             __atomic_load_n(&s->parameters.background_snapshot_buffer_size,
                             __ATOMIC_RELAXED));
    put_uint(b, "background-snapshot-buffer-keep",
             __atomic_load_n(&s->parameters.background_snapshot_buffer_keep, __ATOMIC_RELAXED));
    AutoConvergeParams ac;

    migration_auto_converge_params(s, &ac);
    put_uint(b, "throttle-trigger-threshold", ac.threshold);
    put_uint(b, "cpu-throttle-initial", ac.initial);
    put_uint(b, "cpu-throttle-increment", ac.increment);
    json_builder_set_member_name(b, "cpu-throttle-tailslow");
    json_builder_add_boolean_value(b, ac.tailslow);
    put_uint(b, "max-cpu-throttle", ac.max);
    json_builder_set_member_name(b, "restore-mode");
    json_builder_add_string_value(b, migration_restore_mode_name(
        (MigrationRestoreMode)__atomic_load_n(&s->parameters.restore_mode, __ATOMIC_RELAXED)));
    g_autofree char *snapshot_base = migration_snapshot_base(s);
    g_autofree char *restore_base = migration_restore_base(s);
    json_builder_set_member_name(b, "snapshot-base");
    json_builder_add_string_value(b, snapshot_base);
    json_builder_set_member_name(b, "restore-base");
    json_builder_add_string_value(b, restore_base);
    json_builder_end_object(b);
    return json_builder_get_root(b);
}

const QmpCommand migration_qmp_commands[] = {
    { "migrate", qmp_migrate },
    { "migrate-incoming", qmp_migrate_incoming },
    { "migrate_cancel", qmp_migrate_cancel },
    { "migrate-continue", qmp_migrate_continue },
    { "query-migrate", qmp_query_migrate },
    { "migrate-set-capabilities", qmp_migrate_set_capabilities },
    { "query-migrate-capabilities", qmp_query_migrate_capabilities },
    { "migrate-set-parameters", qmp_migrate_set_parameters },
    { "query-migrate-parameters", qmp_query_migrate_parameters },
    { NULL, NULL },
};
