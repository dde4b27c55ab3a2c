/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The migration HMP commands: parse the words, call the QMP-level API, print as QEMU 7.2 does. */
#include "migration/migration.h"

#include "migration/restore.h"

#include <inttypes.h>
#include <string.h>

#include "migration/migration-internal.h"
#include "migration/restore.h"
#include "system/machine.h"
#include "util/error.h"

static bool hmp_migrate(Machine *m, int argc, char **argv, GString *out, GError **errp)
{
    if (hmp_has_flag(argc, argv, 'b') || hmp_has_flag(argc, argv, 'i')) {
        error_setg(errp, "Block migration (-b/-i) is not supported: frostvm has no "
                   "block devices");
        return false;
    }
    if (hmp_has_flag(argc, argv, 'r')) {
        error_setg(errp, "resume (-r) is only for a paused postcopy migration, which "
                   "frostvm does not have");
        return false;
    }
    /* Without -d QEMU waits and shows progress; here both return at once. */
    return migration_start(m->migration, hmp_arg(argc, argv, 0), errp);
}

static bool hmp_migrate_incoming(Machine *m, int argc, char **argv, GString *out,
                                 GError **errp)
{
    g_autoptr(JsonObject) args = json_object_new();
    g_autoptr(JsonNode) ret = NULL;
    g_autoptr(GError) err = NULL;

    json_object_set_string_member(args, "uri", hmp_arg(argc, argv, 0));
    ret = monitor_qmp_call(m->monitor, "migrate-incoming", args, &err);
    if (err) {
        g_propagate_error(errp, g_steal_pointer(&err));
        return false;
    }
    return true;
}

static bool hmp_migrate_cancel(Machine *m, int argc, char **argv, GString *out,
                               GError **errp)
{
    migration_cancel(m->migration);
    return true;
}

static bool hmp_migrate_continue(Machine *m, int argc, char **argv, GString *out,
                                 GError **errp)
{
    const char *name = hmp_arg(argc, argv, 0);
    MigrationStatus state;

    if (!migration_status_from_name(name, &state)) {
        error_setg(errp, "Parameter 'state' does not accept value '%s'", name);
        return false;
    }
    return migration_continue(m->migration, state, errp);
}

static bool hmp_migrate_set_capability(Machine *m, int argc, char **argv, GString *out,
                                       GError **errp)
{
    const char *name = hmp_arg(argc, argv, 0);
    MigrationCapability cap;
    bool on;

    if (!migration_capability_from_name(name, &cap)) {
        error_setg(errp, "invalid parameter value: %s", name);
        return false;
    }
    if (!hmp_parse_on_off(hmp_arg(argc, argv, 1), &on, errp)) {
        return false;
    }
    return migration_set_capability(m->migration, cap, on, errp);
}

/* QEMU 7.2's parameter names that frostvm does not implement. */
static const char *const unsupported_parameters[] = {
    "announce-initial", "announce-max", "announce-rounds", "announce-step",
    "compress-level", "compress-threads", "compress-wait-thread", "decompress-threads",
    "tls-creds", "tls-hostname", "tls-authz",
    "x-checkpoint-delay", "block-incremental", "multifd-channels", "xbzrle-cache-size",
    "max-postcopy-bandwidth", "multifd-compression",
    "multifd-zlib-level", "multifd-zstd-level", "block-bitmap-mapping", NULL,
};

/* A boolean parameter's value, with the words QEMU's HMP takes for one. */
static bool parse_bool_parameter(const char *name, const char *value, bool *on, GError **errp)
{
    static const char *const yes[] = { "on", "yes", "true", "y", NULL };
    static const char *const no[] = { "off", "no", "false", "n", NULL };

    if (value && g_strv_contains(yes, value)) {
        *on = true;
        return true;
    }
    if (value && g_strv_contains(no, value)) {
        *on = false;
        return true;
    }
    error_setg(errp, "Parameter '%s' expects 'on' or 'off'", name);
    return false;
}

/*
 * Where plain integer parameter @name goes in @u (pointing at @v), and
 * QEMU's type name for it in @type; false if @name is none of them.
 */
static bool integer_parameter(const char *name, MigrationParameterUpdate *u, const uint64_t *v,
                              const char **type)
{
    *type = "uint8";
    if (!strcmp(name, "downtime-limit")) {
        *type = "uint64";
        u->downtime_limit = v;
    } else if (!strcmp(name, "background-snapshot-buffer-keep")) {
        *type = "uint64";
        u->background_snapshot_buffer_keep = v;
    } else if (!strcmp(name, "cpu-throttle-initial")) {
        u->cpu_throttle_initial = v;
    } else if (!strcmp(name, "cpu-throttle-increment")) {
        u->cpu_throttle_increment = v;
    } else if (!strcmp(name, "max-cpu-throttle")) {
        u->max_cpu_throttle = v;
    } else if (!strcmp(name, "throttle-trigger-threshold")) {
        u->throttle_trigger_threshold = v;
    } else {
        return false;
    }
    return true;
}

static bool hmp_migrate_set_parameter(Machine *m, int argc, char **argv, GString *out,
                                      GError **errp)
{
    const char *name = hmp_arg(argc, argv, 0);
    const char *value = hmp_arg(argc, argv, 1);
    MigrationParameterUpdate u = { 0 };
    const char *type;
    uint64_t v;

    if (!strcmp(name, "max-bandwidth")) {
        /* As QEMU's HMP: a bare number is in MiB/s. */
        return hmp_parse_size(value, 1024 * 1024, &v, errp) &&
               migration_set_parameters(m->migration,
                                        &(MigrationParameterUpdate){ .max_bandwidth = &v },
                                        errp);
    }
    if (!strcmp(name, "background-snapshot-buffer-size")) {
        return hmp_parse_size(value, 1, &v, errp) &&
               migration_set_parameters(m->migration,
                                        &(MigrationParameterUpdate){
                                            .background_snapshot_buffer_size = &v },
                                        errp);
    }
    if (!strcmp(name, "cpu-throttle-tailslow")) {
        bool on;

        return parse_bool_parameter(name, value, &on, errp) &&
               migration_set_parameters(m->migration,
                                        &(MigrationParameterUpdate){
                                            .cpu_throttle_tailslow = &on },
                                        errp);
    }
    if (integer_parameter(name, &u, &v, &type)) {
        char *end;

        /* As QEMU's HMP: decimal, 0x hexadecimal or 0 octal. */
        v = g_ascii_strtoull(value, &end, 0);
        if (!*value || *end || value[0] == '-') {
            error_setg(errp, "Parameter '%s' expects %s", name, type);
            return false;
        }
        return migration_set_parameters(m->migration, &u, errp);
    }
    if (!strcmp(name, "restore-mode")) {
        MigrationRestoreMode mode;

        if (!migration_restore_mode_from_name(value, &mode)) {
            error_setg(errp, "Parameter 'restore-mode' expects lazy, eager or map");
            return false;
        }
        return migration_set_restore_mode(m->migration, mode, errp);
    }
    if (!strcmp(name, "snapshot-base") || !strcmp(name, "restore-base")) {
        /* `migrate_set_parameter snapshot-base ""` clears it: the next snapshot is full. */
        return migration_set_path_parameter(m->migration, name, value ? value : "", errp);
    }
    if (g_strv_contains(unsupported_parameters, name)) {
        error_setg(errp, "Parameter '%s' is not supported", name);
        return false;
    }
    error_setg(errp, "invalid parameter value: %s", name);
    return false;
}

static int64_t member_int(JsonObject *o, const char *name)
{
    return json_object_get_int_member_with_default(o, name, 0);
}

static bool hmp_info_migrate(Machine *m, int argc, char **argv, GString *out, GError **errp)
{
    MigrationState *s = m->migration;
    g_autoptr(JsonNode) info = migration_query(s);
    JsonObject *o = json_node_get_object(info);
    JsonObject *ram;

    /* QEMU prints its global migration properties first; these are frostvm's. */
    g_string_append(out, "globals:\n"
                    "store-global-state: on\n"
                    "only-migratable: off\n"
                    "send-configuration: on\n"
                    "send-section-footer: on\n"
                    "decompress-error-check: on\n"
                    "clear-bitmap-shift: 18\n");
    if (!json_object_has_member(o, "status")) {
        return true;
    }
    g_string_append_printf(out, "Migration status: %s",
                           json_object_get_string_member(o, "status"));
    if (json_object_has_member(o, "error-desc")) {
        g_string_append_printf(out, " (%s)", json_object_get_string_member(o, "error-desc"));
    }
    g_string_append_c(out, '\n');
    if (json_object_has_member(o, "total-time")) {
        g_string_append_printf(out, "total time: %" PRId64 " ms\n", member_int(o, "total-time"));
    }
    if (json_object_has_member(o, "expected-downtime")) {
        g_string_append_printf(out, "expected downtime: %" PRId64 " ms\n",
                               member_int(o, "expected-downtime"));
    }
    if (json_object_has_member(o, "downtime")) {
        g_string_append_printf(out, "downtime: %" PRId64 " ms\n", member_int(o, "downtime"));
    }
    if (json_object_has_member(o, "setup-time")) {
        g_string_append_printf(out, "setup: %" PRId64 " ms\n", member_int(o, "setup-time"));
    }
    if (json_object_has_member(o, "ram")) {
        ram = json_object_get_object_member(o, "ram");
        g_string_append_printf(out, "transferred ram: %" PRId64 " kbytes\n",
                               member_int(ram, "transferred") >> 10);
        g_string_append_printf(out, "throughput: %0.2f mbps\n",
                               json_object_get_double_member(ram, "mbps"));
        g_string_append_printf(out, "remaining ram: %" PRId64 " kbytes\n",
                               member_int(ram, "remaining") >> 10);
        g_string_append_printf(out, "total ram: %" PRId64 " kbytes\n",
                               member_int(ram, "total") >> 10);
        g_string_append_printf(out, "duplicate: %" PRId64 " pages\n",
                               member_int(ram, "duplicate"));
        g_string_append_printf(out, "skipped: %" PRId64 " pages\n", member_int(ram, "skipped"));
        g_string_append_printf(out, "normal: %" PRId64 " pages\n", member_int(ram, "normal"));
        g_string_append_printf(out, "normal bytes: %" PRId64 " kbytes\n",
                               member_int(ram, "normal-bytes") >> 10);
        g_string_append_printf(out, "dirty sync count: %" PRId64 "\n",
                               member_int(ram, "dirty-sync-count"));
        g_string_append_printf(out, "page size: %" PRId64 " kbytes\n",
                               member_int(ram, "page-size") >> 10);
        g_string_append_printf(out, "multifd bytes: %" PRId64 " kbytes\n",
                               member_int(ram, "multifd-bytes") >> 10);
        g_string_append_printf(out, "pages-per-second: %" PRId64 "\n",
                               member_int(ram, "pages-per-second"));
        if (member_int(ram, "dirty-pages-rate")) {
            g_string_append_printf(out, "dirty pages rate: %" PRId64 " pages\n",
                                   member_int(ram, "dirty-pages-rate"));
        }
        if (member_int(ram, "precopy-bytes")) {
            g_string_append_printf(out, "precopy ram: %" PRId64 " kbytes\n",
                                   member_int(ram, "precopy-bytes") >> 10);
        }
        if (member_int(ram, "downtime-bytes")) {
            g_string_append_printf(out, "downtime ram: %" PRId64 " kbytes\n",
                                   member_int(ram, "downtime-bytes") >> 10);
        }
    }
    if (json_object_has_member(o, "cpu-throttle-percentage")) {
        g_string_append_printf(out, "cpu throttle percentage: %" PRId64 "\n",
                               member_int(o, "cpu-throttle-percentage"));
    }
    g_mutex_lock(&s->lock);
    if (s->snapshot_ran) {
        BackgroundSnapshotStats st = s->snapshot;
        g_mutex_unlock(&s->lock);
        background_snapshot_stats_to_hmp(&st, out);
    } else {
        g_mutex_unlock(&s->lock);
    }
    if (json_object_has_member(o, "incremental-tracking")) {
        JsonObject *t = json_object_get_object_member(o, "incremental-tracking");

        g_string_append_printf(out, "incremental tracking: %" PRId64 " pages written since the "
                               "last snapshot, %" PRId64 " images in the chain, %" PRId64
                               " faults%s%s\n", member_int(t, "epoch-pages"),
                               member_int(t, "chain-images"), member_int(t, "faults"),
                               json_object_has_member(t, "lost") ? "; LOST: " : "",
                               json_object_has_member(t, "lost")
                                   ? json_object_get_string_member(t, "lost") : "");
    }
    if (s->incoming) {
        restore_stats_to_hmp(s, out);
    }
    return true;
}

static bool hmp_info_migrate_capabilities(Machine *m, int argc, char **argv, GString *out,
                                          GError **errp)
{
    for (int c = 0; c < MIGRATION_CAPABILITY__MAX; c++) {
        g_string_append_printf(out, "%s: %s\n", migration_capability_name((MigrationCapability)c),
                               migration_capability_enabled(m->migration,
                                                            (MigrationCapability)c)
                               ? "on" : "off");
    }
    return true;
}

static bool hmp_info_migrate_parameters(Machine *m, int argc, char **argv, GString *out,
                                        GError **errp)
{
    MigrationState *s = m->migration;

    g_string_append_printf(out, "max-bandwidth: %" PRIu64 " bytes/second\n",
                           migration_max_bandwidth(s));
    g_string_append_printf(out, "downtime-limit: %" PRIu64 " ms\n",
                           migration_downtime_limit(s));
    g_string_append_printf(out, "background-snapshot-buffer-size: %" PRIu64 " bytes\n",
                           (uint64_t)__atomic_load_n(&s->parameters.background_snapshot_buffer_size,
                                                     __ATOMIC_RELAXED));
    g_string_append_printf(out, "background-snapshot-buffer-keep: %" PRIu64 " ms\n",
                           (uint64_t)__atomic_load_n(&s->parameters.background_snapshot_buffer_keep,
                                                     __ATOMIC_RELAXED));
    AutoConvergeParams ac;

    migration_auto_converge_params(s, &ac);
    /* QEMU's order. */
    g_string_append_printf(out, "throttle-trigger-threshold: %u\n"
                           "cpu-throttle-initial: %u\n"
                           "cpu-throttle-increment: %u\n"
                           "cpu-throttle-tailslow: %s\n"
                           "max-cpu-throttle: %u\n",
                           ac.threshold, ac.initial, ac.increment,
                           ac.tailslow ? "on" : "off", ac.max);
    g_string_append_printf(out, "restore-mode: %s\n", migration_restore_mode_name(
        (MigrationRestoreMode)__atomic_load_n(&s->parameters.restore_mode, __ATOMIC_RELAXED)));
    g_autofree char *snapshot_base = migration_snapshot_base(s);
    g_autofree char *restore_base = migration_restore_base(s);
    g_string_append_printf(out, "snapshot-base: '%s'\n", snapshot_base);
    g_string_append_printf(out, "restore-base: '%s'\n", restore_base);
    return true;
}

const HmpCommand migration_hmp_commands[] = {
    { "migrate", "[-d] [-b] [-i] [-r] uri", NULL, hmp_migrate },
    { "migrate_incoming", "uri", NULL, hmp_migrate_incoming },
    { "migrate_cancel", "", NULL, hmp_migrate_cancel },
    { "migrate_continue", "state", NULL, hmp_migrate_continue },
    { "migrate_set_capability", "capability state", NULL, hmp_migrate_set_capability },
    { "migrate_set_parameter", "parameter value", NULL, hmp_migrate_set_parameter },
    { "info migrate", "", NULL, hmp_info_migrate },
    { "info migrate_capabilities", "", NULL, hmp_info_migrate_capabilities },
    { "info migrate_parameters", "", NULL, hmp_info_migrate_parameters },
    { NULL, NULL, NULL, NULL },
};
