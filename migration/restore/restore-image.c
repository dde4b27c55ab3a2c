/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Restoring a page-aligned image: checks, device state, the mode's start, and the fill's end or failure on the main loop. */
#include "migration/restore/restore-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "migration/channel.h"
#include "migration/migration-internal.h"
#include "migration/restore-chain.h"
#include "migration/savevm.h"
#include "system/machine.h"
#include "system/memory-backend.h"
#include "system/runstate.h"
#include "util/error.h"

bool restore_channel_is_mapped_image(MigrationChannel *ch)
{
    uint8_t head[SAVEVM_HEADER_SIZE];

    if (channel_kind(ch) != MIGRATION_CHANNEL_FILE || channel_fd(ch) < 0) {
        return false;
    }
    return pread(channel_fd(ch), head, sizeof(head), 0) == (ssize_t)sizeof(head) &&
           mapped_ram_is_image_header(head, sizeof(head));
}

void restore_progress(RestoreState *r, uint64_t pages)
{
    __atomic_fetch_add(&r->pages_filled, pages, __ATOMIC_RELAXED);
}

void restore_throttle(RestoreState *r, uint64_t bytes)
{
    uint64_t limit = migration_max_bandwidth(r->s);

    r->throttle_bytes += bytes;
    if (!limit) {
        return;
    }
    if (!r->throttle_start_us) {
        r->throttle_start_us = migration_now_us();
    }
    /* Sleep in short steps until the average is back under the limit, or we stop. */
    while (!restore_should_stop(r)) {
        uint64_t due_us = r->throttle_bytes * 1000000 / limit;
        uint64_t elapsed_us = migration_now_us() - r->throttle_start_us;

        if (elapsed_us >= due_us) {
            return;
        }
        g_usleep(MIN(due_us - elapsed_us, 10 * 1000));
    }
}

bool restore_should_stop(RestoreState *r)
{
    return __atomic_load_n(&r->stopping, __ATOMIC_ACQUIRE) ||
           __atomic_load_n(&r->fill_state, __ATOMIC_ACQUIRE) == RESTORE_FILL_FAILED;
}

int restore_ram_discard(RamBlock *b)
{
    MemoryBackend *be = b->backend;
    bool shared = be && be->opts.share;

    /* Shared memory keeps its pages in the file: remove them there. */
    if (madvise(b->host, b->size, shared ? MADV_REMOVE : MADV_DONTNEED) < 0) {
        return -errno;
    }
    return 0;
}

/* Run @fn(@r) on the main loop (inline when there is none, as in unit tests). */
static void restore_on_main_loop(RestoreState *r, GSourceFunc fn)
{
    Machine *m = r->m;

    if (!m->main_context) {
        fn(r);
        return;
    }
    GSource *src = g_idle_source_new();
    g_source_set_callback(src, fn, r, NULL);
    g_source_attach(src, m->main_context);
    g_source_unref(src);
}

static void restore_emit_completed(RestoreState *r)
{
    JsonObject *data;

    if (!r->m->monitor) {
        return;
    }
    data = json_object_new();
    json_object_set_string_member(data, "mode", migration_restore_mode_name(r->mode));
    json_object_set_int_member(data, "pages", (gint64)r->pages_total);
    json_object_set_int_member(data, "faults",
                               (gint64)__atomic_load_n(&r->faults, __ATOMIC_RELAXED));
    json_object_set_int_member(data, "fill-time-ms",
                               (gint64)(__atomic_load_n(&r->fill_us, __ATOMIC_RELAXED) / 1000));
    monitor_emit_event(r->m->monitor, "RESTORE_FILL_COMPLETED", data);
}

/* Main loop: after the guest started, tell the world how the fill ended. */
static gboolean restore_announce(gpointer opaque)
{
    RestoreState *r = opaque;
    MigrationState *s = r->s;
    int state = __atomic_load_n(&r->fill_state, __ATOMIC_ACQUIRE);

    if (!r->guest_started || r->announced || state == RESTORE_FILL_RUNNING) {
        return G_SOURCE_REMOVE;
    }
    r->announced = true;
    if (state == RESTORE_FILL_FAILED) {
        /* An outgoing migration started meanwhile owns the status; it fails by itself. */
        if (migration_get_status(s) == MIGRATION_STATUS_POSTCOPY_ACTIVE) {
            g_mutex_lock(&r->lock);
            migration_record_error(s, r->error);
            g_mutex_unlock(&r->lock);
            migration_set_state(s, MIGRATION_STATUS_POSTCOPY_ACTIVE, MIGRATION_STATUS_FAILED);
        }
        /*
         * The guest must not touch memory that cannot be given to it: stop it
         * for good (cont is refused in internal-error). A vCPU blocked on the
         * missing page stays blocked; the accelerator counts it as stopped.
         */
        if (runstate_is_running(r->m)) {
            runstate_vm_stop(r->m, RUN_STATE_INTERNAL_ERROR);
        } else {
            runstate_set(r->m, RUN_STATE_INTERNAL_ERROR);
        }
        g_printerr("frostvm: restore from %s failed, the guest is stopped: %s\n",
                   r->img->path, r->error->message);
        return G_SOURCE_REMOVE;
    }
    migration_set_state(s, MIGRATION_STATUS_POSTCOPY_ACTIVE, MIGRATION_STATUS_COMPLETED);
    restore_emit_completed(r);
    return G_SOURCE_REMOVE;
}

void restore_fill_done(RestoreState *r)
{
    int expect = RESTORE_FILL_RUNNING;

    __atomic_store_n(&r->fill_us, migration_now_us() - r->running_us, __ATOMIC_RELAXED);
    g_mutex_lock(&r->lock);
    __atomic_compare_exchange_n(&r->fill_state, &expect, RESTORE_FILL_DONE, false,
                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    g_cond_broadcast(&r->cond);
    g_mutex_unlock(&r->lock);
    restore_on_main_loop(r, restore_announce);
}

void restore_fill_failed(RestoreState *r, GError *err)
{
    int expect = RESTORE_FILL_RUNNING;

    __atomic_store_n(&r->fill_us, migration_now_us() - r->running_us, __ATOMIC_RELAXED);
    g_mutex_lock(&r->lock);
    if (!__atomic_compare_exchange_n(&r->fill_state, &expect, RESTORE_FILL_FAILED, false,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        g_mutex_unlock(&r->lock);
        g_error_free(err);
        return;
    }
    r->error = err;
    g_cond_broadcast(&r->cond);
    g_mutex_unlock(&r->lock);
    restore_on_main_loop(r, restore_announce);
}

static RestoreState *restore_new(MigrationState *s, MappedRamImage *img)
{
    RestoreState *r = g_new0(RestoreState, 1);

    r->s = s;
    r->m = s->machine;
    r->img = img;
    r->mode = (MigrationRestoreMode)__atomic_load_n(&s->parameters.restore_mode,
                                                    __ATOMIC_RELAXED);
    r->uffd = -1;
    r->wake_fd = -1;
    r->lease_wake_fd = -1;
    r->start_us = migration_now_us();
    g_mutex_init(&r->lock);
    g_cond_init(&r->cond);
    latency_histogram_init(&r->fault_latency);
    for (uint32_t i = 0; i < img->h.nblocks; i++) {
        r->pages_total += mapped_ram_image_present_pages(img, i);
    }
    return r;
}

bool restore_image_start(MigrationState *s, MigrationChannel *ch, SavevmLoadInfo *info,
                         GError **errp)
{
    Machine *m = s->machine;
    int fd = fcntl(channel_fd(ch), F_DUPFD_CLOEXEC, 3);
    MappedRamImage *img;
    RestoreState *r;
    struct stat st;
    bool have_st;
    bool ok;

    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot reopen %s", channel_uri(ch));
        return false;
    }
    have_st = fstat(fd, &st) == 0;
    /* Pages are read where they are needed, not in order. */
    posix_fadvise(fd, 0, 0, POSIX_FADV_NORMAL);
    img = mapped_ram_image_open(channel_uri(ch) + strlen("file:"), fd, errp);
    if (!img) {
        return false;
    }
    if (img->h.layout_flags & MAPPED_RAM_LAYOUT_HAS_BASE) {
        g_autofree char *override = migration_restore_base(s);

        /* Every base found and every link checked before anything else happens. */
        if ((MigrationRestoreMode)__atomic_load_n(&s->parameters.restore_mode,
                                                  __ATOMIC_RELAXED) == MIGRATION_RESTORE_MAP) {
            error_setg(errp, "restore-mode map cannot restore the incremental image %s: its "
                       "pages are spread over a chain of images; restore it lazy or eager, "
                       "or fold the chain into one image (frostvm-img commit)", img->path);
            mapped_ram_image_close(img);
            return false;
        }
        if (!restore_chain_open_mapped(img, override, errp)) {
            mapped_ram_image_close(img);
            return false;
        }
    }
    r = restore_new(s, img);
    r->image_st = st;
    r->have_image_st = have_st;
    if (r->mode == MIGRATION_RESTORE_MAP) {
        /* From here on, a change of the image waits for us (before anything is mapped). */
        restore_lease_start(r);
    }
    ok = mapped_ram_image_check_machine(img, m, errp) &&
         (r->mode != MIGRATION_RESTORE_MAP || restore_map_check(r, errp)) &&
         mapped_ram_image_load_devices(img, m, info, errp);
    for (guint i = 0; ok && i < m->ram_blocks->len; i++) {
        RamBlock *b = g_ptr_array_index(m->ram_blocks, i);
        int ret = restore_ram_discard(b);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "cannot clear RAM block '%s' for the restore",
                             b->name);
            ok = false;
        }
    }
    if (ok) {
        switch (r->mode) {
        case MIGRATION_RESTORE_EAGER:
            ok = restore_eager_load(r, errp);
            r->fill_state = RESTORE_FILL_NONE;
            break;
        case MIGRATION_RESTORE_LAZY:
            r->fill_state = RESTORE_FILL_RUNNING;
            r->running_us = migration_now_us();
            ok = restore_lazy_start(r, errp);
            break;
        case MIGRATION_RESTORE_MAP:
        default:
            r->fill_state = RESTORE_FILL_RUNNING;
            r->running_us = migration_now_us();
            ok = restore_map_start(r, errp);
            break;
        }
    }
    info->data_pages = r->pages_total;
    r->info = *info;
    if (!ok) {
        restore_free(r);
        return false;
    }
    r->running_us = r->running_us ? r->running_us : migration_now_us();
    /* Published for the main loop's query-migrate while this thread goes on. */
    __atomic_store_n(&s->restore, r, __ATOMIC_RELEASE);
    return true;
}

/* The restore of @s, or NULL; set once by the incoming thread. */
static RestoreState *restore_of(MigrationState *s)
{
    return __atomic_load_n(&s->restore, __ATOMIC_ACQUIRE);
}

bool restore_image_may_run(MigrationState *s)
{
    RestoreState *r = restore_of(s);

    return !r || __atomic_load_n(&r->fill_state, __ATOMIC_ACQUIRE) != RESTORE_FILL_FAILED;
}

void restore_image_guest_started(MigrationState *s)
{
    RestoreState *r = restore_of(s);
    int state = __atomic_load_n(&r->fill_state, __ATOMIC_ACQUIRE);

    r->guest_started = true;
    if (state == RESTORE_FILL_NONE) {
        r->announced = true;
        migration_set_state(s, MIGRATION_STATUS_ACTIVE, MIGRATION_STATUS_COMPLETED);
        return;
    }
    /* As QEMU's postcopy: the guest runs here while its RAM still arrives. */
    migration_set_state(s, MIGRATION_STATUS_ACTIVE, MIGRATION_STATUS_POSTCOPY_ACTIVE);
    restore_announce(r);
}

bool restore_is_filling(MigrationState *s)
{
    RestoreState *r = restore_of(s);

    return r && __atomic_load_n(&r->fill_state, __ATOMIC_ACQUIRE) == RESTORE_FILL_RUNNING;
}

bool restore_image_filled_at_load(MigrationState *s)
{
    RestoreState *r = restore_of(s);

    return !r || r->mode == MIGRATION_RESTORE_EAGER;
}

bool restore_wait_fill(MigrationState *s, GError **errp)
{
    RestoreState *r = restore_of(s);
    bool ok;

    if (!r) {
        return true;
    }
    g_mutex_lock(&r->lock);
    while (__atomic_load_n(&r->fill_state, __ATOMIC_ACQUIRE) == RESTORE_FILL_RUNNING &&
           !migration_is_cancelling(s)) {
        g_cond_wait_until(&r->cond, &r->lock, g_get_monotonic_time() + 20 * 1000);
    }
    ok = __atomic_load_n(&r->fill_state, __ATOMIC_ACQUIRE) != RESTORE_FILL_FAILED;
    if (!ok) {
        error_setg(errp, "the guest's restore from %s failed (%s): its memory is incomplete",
                   r->img->path, r->error->message);
    } else if (migration_is_cancelling(s)) {
        error_setg(errp, "cancelled while waiting for the restore's fill to end");
        ok = false;
    }
    g_mutex_unlock(&r->lock);
    return ok;
}

bool restore_allows_write_protect(MigrationState *s, GError **errp)
{
    RestoreState *r = restore_of(s);

    if (r && r->mode == MIGRATION_RESTORE_MAP &&
        __atomic_load_n(&r->lease_state, __ATOMIC_ACQUIRE) != RESTORE_LEASE_DETACHED) {
        error_setg(errp, "background-snapshot: guest RAM maps the image %s privately "
                   "(restore-mode map), and the kernel cannot write-protect private file "
                   "mappings; restore with restore-mode lazy or eager to take snapshots",
                   r->img->path);
        return false;
    }
    return true;
}

static uint64_t restore_fill_ms(RestoreState *r)
{
    int state = __atomic_load_n(&r->fill_state, __ATOMIC_ACQUIRE);

    if (state == RESTORE_FILL_DONE || state == RESTORE_FILL_FAILED) {
        return __atomic_load_n(&r->fill_us, __ATOMIC_RELAXED) / 1000;
    }
    return state == RESTORE_FILL_NONE ? 0 : (migration_now_us() - r->running_us) / 1000;
}

static const char *restore_fill_state_name(RestoreState *r)
{
    static const char *const names[] = { "none", "filling", "completed", "failed" };

    return names[__atomic_load_n(&r->fill_state, __ATOMIC_ACQUIRE)];
}

void restore_stats_to_json(MigrationState *s, JsonBuilder *b)
{
    RestoreState *r = restore_of(s);
    const LatencyHistogram *h;

    if (!r) {
        return;
    }
    h = &r->fault_latency;
    json_builder_set_member_name(b, "restore");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "mode");
    json_builder_add_string_value(b, migration_restore_mode_name(r->mode));
    json_builder_set_member_name(b, "fill-status");
    json_builder_add_string_value(b, restore_fill_state_name(r));
    if (r->mode == MIGRATION_RESTORE_MAP) {
        json_builder_set_member_name(b, "image-lease");
        json_builder_add_string_value(b, restore_lease_state_name(r));
    }
#define PUT(name, v) \
    json_builder_set_member_name(b, name); \
    json_builder_add_int_value(b, (gint64)(v))
    PUT("pages-total", r->pages_total);
    PUT("pages-filled", __atomic_load_n(&r->pages_filled, __ATOMIC_RELAXED));
    PUT("faults", __atomic_load_n(&r->faults, __ATOMIC_RELAXED));
    PUT("fault-pages", __atomic_load_n(&r->fault_pages, __ATOMIC_RELAXED));
    PUT("huge-pages-moved", __atomic_load_n(&r->huge_moved, __ATOMIC_RELAXED));
    PUT("fault-service-p50-us", latency_histogram_percentile_us(h, 50));
    PUT("fault-service-p99-us", latency_histogram_percentile_us(h, 99));
    PUT("fault-service-max-us", (latency_histogram_max_ns(h) + 999) / 1000);
    PUT("setup-us", r->running_us - r->start_us);
    PUT("fill-time-ms", restore_fill_ms(r));
#undef PUT
    json_builder_end_object(b);
}

void restore_stats_to_hmp(MigrationState *s, GString *out)
{
    RestoreState *r = restore_of(s);

    if (!r) {
        return;
    }
    g_string_append_printf(out, "restore mode: %s\n", migration_restore_mode_name(r->mode));
    if (r->mode == MIGRATION_RESTORE_MAP) {
        g_string_append_printf(out, "restore image lease: %s\n", restore_lease_state_name(r));
    }
    g_string_append_printf(out, "restore fill: %s, %" G_GUINT64_FORMAT " of %"
                           G_GUINT64_FORMAT " pages, %" G_GUINT64_FORMAT " ms\n",
                           restore_fill_state_name(r),
                           __atomic_load_n(&r->pages_filled, __ATOMIC_RELAXED),
                           r->pages_total, restore_fill_ms(r));
    g_string_append_printf(out, "restore faults: %" G_GUINT64_FORMAT " (p50 %" G_GUINT64_FORMAT
                           " us, p99 %" G_GUINT64_FORMAT " us)\n",
                           __atomic_load_n(&r->faults, __ATOMIC_RELAXED),
                           latency_histogram_percentile_us(&r->fault_latency, 50),
                           latency_histogram_percentile_us(&r->fault_latency, 99));
    if (r->mode == MIGRATION_RESTORE_LAZY) {
        g_string_append_printf(out, "restore huge pages moved in: %" G_GUINT64_FORMAT "\n",
                               __atomic_load_n(&r->huge_moved, __ATOMIC_RELAXED));
    }
}

void restore_free(RestoreState *r)
{
    if (!r) {
        return;
    }
    __atomic_store_n(&r->stopping, true, __ATOMIC_RELEASE);
    /* The lease thread may be waiting for the verifier on the condition. */
    g_mutex_lock(&r->lock);
    g_cond_broadcast(&r->cond);
    g_mutex_unlock(&r->lock);
    restore_lazy_stop(r);
    restore_lease_stop(r);
    mapped_ram_image_close(r->img);
    g_clear_error(&r->error);
    g_mutex_clear(&r->lock);
    g_cond_clear(&r->cond);
    g_free(r);
}
