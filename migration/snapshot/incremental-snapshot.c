/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Incremental snapshots: checking snapshot-base, the new image's identity, joining the epoch chain once written. */
#include "migration/incremental-snapshot.h"

#include <string.h>
#include <sys/stat.h>

#include "migration/epoch-tracking.h"
#include "migration/migration.h"
#include "migration/savevm.h"
#include "migration/snapshot/snapshot-internal.h"
#include "system/machine.h"
#include "util/error.h"

struct IncrementalSnapshot {
    char *image_path;           /* the file: URI's path, or NULL (pipes, sockets) */
    char *base_path;            /* snapshot-base as given, or NULL for a full snapshot */
    ImageIdentity base;         /* its identity, as read at migrate */
    bool base_needs_verify;     /* not the file frostvm wrote: read it all first */
    ImageIdentity taken;        /* the new image, once written */
    bool written;
};

static EpochTracking *tracking_of(MigrationState *s)
{
    return __atomic_load_n(&s->epoch, __ATOMIC_ACQUIRE);
}

void incremental_snapshot_free(IncrementalSnapshot *inc)
{
    if (!inc) {
        return;
    }
    image_identity_clear(&inc->base);
    image_identity_clear(&inc->taken);
    g_free(inc->image_path);
    g_free(inc->base_path);
    g_free(inc);
}

IncrementalSnapshot *incremental_snapshot_prepare(MigrationState *s, const char *uri,
                                                  GError **errp)
{
    g_autofree char *base = migration_snapshot_base(s);
    bool tracking = migration_capability_enabled(s, MIGRATION_CAPABILITY_INCREMENTAL_SNAPSHOT);
    bool snapshot = migration_capability_enabled(s, MIGRATION_CAPABILITY_BACKGROUND_SNAPSHOT);
    bool mapped = migration_capability_enabled(s, MIGRATION_CAPABILITY_MAPPED_RAM);
    IncrementalSnapshot *inc;

    if (*base && !snapshot) {
        error_setg(errp, "snapshot-base is set ('%s') but background-snapshot is off: an "
                   "incremental image is a background snapshot (set snapshot-base to \"\" "
                   "for other migrations)", base);
        return NULL;
    }
    if (*base && !tracking) {
        error_setg(errp, "snapshot-base is set ('%s') but the capability incremental-snapshot "
                   "is off: frostvm does not know which pages changed", base);
        return NULL;
    }
    inc = g_new0(IncrementalSnapshot, 1);
    if (g_str_has_prefix(uri, "file:")) {
        inc->image_path = g_strdup(uri + strlen("file:"));
    }
    if (!*base) {
        return inc;
    }
    if (!tracking_of(s)) {
        error_setg(errp, "snapshot-base: no snapshot was taken since incremental-snapshot "
                   "was turned on: take a full snapshot first (snapshot-base \"\")");
        incremental_snapshot_free(inc);
        return NULL;
    }
    inc->base_path = g_strdup(base);
    if (!epoch_tracking_check_base(tracking_of(s), base, &inc->base, &inc->base_needs_verify,
                                   errp)) {
        incremental_snapshot_free(inc);
        return NULL;
    }
    if (inc->base.page_aligned != mapped) {
        error_setg(errp, "snapshot-base: '%s' is a %s image and mapped-ram is %s: an "
                   "increment has its base's layout", base,
                   inc->base.page_aligned ? "page-aligned" : "stream", mapped ? "on" : "off");
        incremental_snapshot_free(inc);
        return NULL;
    }
    if (inc->image_path && !strcmp(inc->image_path, base)) {
        error_setg(errp, "snapshot-base: the increment would replace its own base '%s'", base);
        incremental_snapshot_free(inc);
        return NULL;
    }
    return inc;
}

bool incremental_snapshot_begin(MigrationState *s, IncrementalSnapshot *inc,
                                ImageIdentity *id, GError **errp)
{
    Machine *m = s->machine;

    if (!tracking_of(s)) {
        EpochTracking *et = epoch_tracking_new(m->ram_blocks, errp);
        if (!et) {
            return false;
        }
        __atomic_store_n(&s->epoch, et, __ATOMIC_RELEASE);
    }
    memset(id, 0, sizeof(*id));
    id->has_uuid = true;
    image_uuid_generate(id->uuid);
    if (!inc->base_path) {
        return true;
    }
    if (inc->base_needs_verify) {
        /* Another file than the one written (copied, touched): its bytes must still prove it. */
        if (!image_identity_verify(inc->base_path, errp)) {
            error_prefix(errp, "snapshot-base: '%s' no longer matches the image frostvm "
                         "took: ", inc->base_path);
            return false;
        }
        epoch_tracking_base_verified(tracking_of(s), inc->base.uuid, inc->base_path);
    }
    id->has_base = true;
    memcpy(id->base_uuid, inc->base.uuid, IMAGE_UUID_SIZE);
    id->base_digest = inc->base.digest;
    if (inc->image_path) {
        id->base_path = image_identity_relative_base(inc->image_path, inc->base_path);
    } else {
        /* The image's place is unknown (a pipe): record where the base is, absolutely. */
        g_autofree char *cwd = g_get_current_dir();
        id->base_path = g_canonicalize_filename(inc->base_path, cwd);
    }
    if (strlen(id->base_path) > IMAGE_BASE_PATH_MAX) {
        error_setg(errp, "snapshot-base: the path '%s' is longer than %u bytes",
                   id->base_path, IMAGE_BASE_PATH_MAX);
        return false;
    }
    return true;
}

uint64_t incremental_snapshot_pool_bytes(MigrationState *s, IncrementalSnapshot *inc)
{
    EpochTracking *et = tracking_of(s);
    uint64_t pages;

    if (!inc->base_path || !et) {
        return 0;
    }
    uint64_t ram = 0;

    pages = epoch_tracking_pages_since_count(et, inc->base.uuid);
    for (guint i = 0; i < s->machine->ram_blocks->len; i++) {
        ram += ((RamBlock *)g_ptr_array_index(s->machine->ram_blocks, i))->size;
    }
    /* Pages written before the pause add to it; never more than a full snapshot's. */
    return MIN(snapshot_default_pool_size(ram), MAX(16ull << 20, pages * 4096 / 4 * 5));
}

const uint8_t *incremental_snapshot_base_uuid(IncrementalSnapshot *inc)
{
    return inc->base_path ? inc->base.uuid : NULL;
}

void incremental_snapshot_written(IncrementalSnapshot *inc, const ImageIdentity *id)
{
    image_identity_clear(&inc->taken);
    inc->taken = *id;
    inc->taken.base_path = g_strdup(id->base_path);
    inc->written = true;
}

void incremental_snapshot_finish(MigrationState *s, IncrementalSnapshot *inc, bool ok)
{
    EpochTracking *et = tracking_of(s);

    if (ok && inc->written && et) {
        epoch_tracking_add_image(et, &inc->taken, inc->image_path, NULL);
    }
}

void incremental_snapshot_stop_tracking(MigrationState *s)
{
    EpochTracking *et = __atomic_exchange_n(&s->epoch, NULL, __ATOMIC_ACQ_REL);

    epoch_tracking_free(et);
}

EpochTracking *incremental_snapshot_restored_begin(MigrationState *s, const char *path,
                                                   const SavevmLoadInfo *info,
                                                   const struct stat *read_st, GError **errp)
{
    ImageIdentity id = { 0 };
    EpochTracking *et;

    if (!migration_capability_enabled(s, MIGRATION_CAPABILITY_INCREMENTAL_SNAPSHOT) ||
        !path || !info->has_uuid) {
        /* Nothing to track, or an image nobody can name as a base (a pipe, an old stream). */
        return NULL;
    }
    if (tracking_of(s)) {
        /* A snapshot before the restore (-incoming defer): its chain no longer describes RAM. */
        epoch_tracking_set_lost(tracking_of(s), "guest RAM was replaced by a restore");
        error_setg(errp, "tracking began before the restore; turn incremental-snapshot off "
                   "and on, then take a full snapshot");
        return NULL;
    }
    et = epoch_tracking_new(s->machine->ram_blocks, errp);
    if (!et) {
        return NULL;
    }
    /* The instant: every page protected, so every later write is recorded. */
    if (!epoch_tracking_instant(et, NULL, NULL, errp)) {
        epoch_tracking_free(et);
        return NULL;
    }
    id.page_aligned = info->page_aligned;
    id.has_uuid = true;
    memcpy(id.uuid, info->uuid, IMAGE_UUID_SIZE);
    id.digest = info->digest;
    epoch_tracking_add_image(et, &id, path, read_st);
    return et;
}

void incremental_snapshot_restored_publish(MigrationState *s, EpochTracking *et)
{
    bool published = false;

    /*
     * Under the lock that orders capability changes: turned off before this,
     * the chain is dropped here; after, the monitor's thread frees it, as any.
     */
    g_mutex_lock(&s->lock);
    if (migration_capability_enabled(s, MIGRATION_CAPABILITY_INCREMENTAL_SNAPSHOT) &&
        !tracking_of(s)) {
        __atomic_store_n(&s->epoch, et, __ATOMIC_RELEASE);
        published = true;
    }
    g_mutex_unlock(&s->lock);
    if (!published) {
        epoch_tracking_free(et);
    }
}
