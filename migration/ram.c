/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Precopy RAM: dirty-log passes, zero-page detection, convergence, the stop-and-copy switch-over. */
#include "migration/ram.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "accel/accel.h"
#include "migration/auto-converge.h"
#include "migration/mapped-ram.h"
#include "migration/migration.h"
#include "migration/savevm.h"
#include "migration/stream-file.h"
#include "system/cpu-throttle.h"
#include "system/machine.h"
#include "system/memory-backend.h"
#include "system/ram-populated.h"
#include "system/runstate.h"
#include "util/bitmap.h"
#include "util/error.h"
#include "util/pagemap.h"
#include "util/zero-page.h"

typedef struct RamSaveState {
    MigrationState *s;
    Machine *m;
    StreamFile *f;
    MappedRamWriter *mapped;  /* mapped-ram: pages to fixed offsets instead of into @f */
    guint nblocks;
    unsigned long **dirty;    /* per block, one bit per page still to send */
    unsigned long **zero;     /* per block: known zero without reading, until first sent */
    uint64_t *npages;         /* per block */
    uint64_t dirty_pages;     /* set bits over all blocks */
    uint8_t *staging;         /* a record header and up to RAM_RECORD_MAX_PAGES pages */
    uint64_t stop_us;         /* when the guest was stopped */
    uint64_t stop_offset;     /* stream offset then */
    bool logging;             /* dirty log started */
} RamSaveState;

/* Bytes sent so far: the stream's, or the page data of a page-aligned image. */
static uint64_t ram_bytes_out(RamSaveState *rs)
{
    return rs->mapped ? mapped_ram_writer_bytes(rs->mapped) : stream_file_offset(rs->f);
}

/* A page-aligned image's write failed: the stream carries the error, as for streams. */
static void ram_mapped_result(RamSaveState *rs, bool ok, GError *err)
{
    if (!ok) {
        stream_file_set_error(rs->f, err);
    }
}

static void ram_account(RamSaveState *rs, uint32_t npages, bool zero)
{
    MigrationRamStats *st = &rs->s->ram;

    if (zero) {
        migration_stat_add(&st->duplicate, npages);
    } else {
        migration_stat_add(&st->normal, npages);
        migration_stat_add(&st->normal_bytes, (uint64_t)npages * SAVEVM_PAGE_SIZE);
    }
    migration_stat_set(&st->transferred, ram_bytes_out(rs));
}

static void ram_send_zero(RamSaveState *rs, guint bi, uint64_t offset, uint32_t npages)
{
    uint8_t hdr[SAVEVM_RAM_RECORD_HEADER_SIZE];

    if (rs->mapped) {
        GError *err = NULL;
        ram_mapped_result(rs, mapped_ram_writer_zero(rs->mapped, bi, offset / SAVEVM_PAGE_SIZE,
                                                     npages, &err), err);
    } else {
        savevm_encode_ram_header(hdr, bi, offset, npages, SAVEVM_RAM_ZERO);
        stream_file_write(rs->f, hdr, sizeof(hdr));
    }
    ram_account(rs, npages, true);
}

/*
 * Send @n dirty pages of block @bi from page @first. The caller has cleared
 * their dirty bits already: a guest write from now on shows up in the next
 * sync, so whatever we read here is either current or sent again. Pages
 * known to be zero (never populated) are sent as such without being read:
 * reading would map the zero page into them, 4 KiB at a time once the
 * region has a page table, which costs a page fault each and leaves the
 * guest a small page where its first write would have got a huge one. Data
 * is copied to the staging buffer first: the checksum and the bytes written
 * must be the same bytes, and the guest may change its page in between.
 */
static bool ram_send_run(RamSaveState *rs, guint bi, uint64_t first, uint32_t n)
{
    RamBlock *b = g_ptr_array_index(rs->m->ram_blocks, bi);
    const uint8_t *host = b->host + first * SAVEVM_PAGE_SIZE;
    unsigned long *zero = rs->zero[bi];
    uint32_t i = 0;

    while (i < n) {
        uint32_t start = i;
        uint64_t offset = (first + start) * SAVEVM_PAGE_SIZE;

        if (bitmap_test_bit(zero, first + i)) {
            while (i < n && bitmap_test_bit(zero, first + i)) {
                bitmap_clear_bit(zero, first + i);
                i++;
            }
            ram_send_zero(rs, bi, offset, i - start);
        } else if (buffer_is_zero(host + (uint64_t)i * SAVEVM_PAGE_SIZE, SAVEVM_PAGE_SIZE)) {
            while (i < n && !bitmap_test_bit(zero, first + i) &&
                   buffer_is_zero(host + (uint64_t)i * SAVEVM_PAGE_SIZE, SAVEVM_PAGE_SIZE)) {
                i++;
            }
            ram_send_zero(rs, bi, offset, i - start);
        } else {
            uint8_t *data = rs->staging + SAVEVM_RAM_RECORD_HEADER_SIZE;

            do {
                memcpy(data + (uint64_t)(i - start) * SAVEVM_PAGE_SIZE,
                       host + (uint64_t)i * SAVEVM_PAGE_SIZE, SAVEVM_PAGE_SIZE);
                i++;
            } while (i < n && !bitmap_test_bit(zero, first + i) &&
                     !buffer_is_zero(host + (uint64_t)i * SAVEVM_PAGE_SIZE, SAVEVM_PAGE_SIZE));
            if (rs->mapped) {
                GError *err = NULL;
                ram_mapped_result(rs, mapped_ram_writer_put(rs->mapped, bi,
                                                            offset / SAVEVM_PAGE_SIZE,
                                                            i - start, data, &err), err);
            } else {
                savevm_encode_ram_header(rs->staging, bi, offset, i - start,
                                         SAVEVM_RAM_DATA);
                stream_file_write(rs->f, rs->staging, SAVEVM_RAM_RECORD_HEADER_SIZE +
                                  (size_t)(i - start) * SAVEVM_PAGE_SIZE);
            }
            ram_account(rs, i - start, false);
        }
    }
    return !stream_file_error(rs->f);
}

/*
 * Before the first pass, with writes already tracked (or the guest
 * stopped): which pages hold nothing yet. A page that gets data after this
 * is dirty and sent again, so a stale "zero" is never the last word.
 */
static bool ram_find_zero(RamSaveState *rs, GError **errp)
{
    int fd = pagemap_open();

    for (guint bi = 0; bi < rs->nblocks; bi++) {
        RamBlock *b = g_ptr_array_index(rs->m->ram_blocks, bi);

        if (!ram_block_find_zero(b, fd, NULL, rs->zero[bi], NULL, NULL, errp)) {
            error_prefix(errp, "migration: ");
            if (fd >= 0) {
                close(fd);
            }
            return false;
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    return true;
}

static bool ram_cancelled(RamSaveState *rs, GError **errp)
{
    if (migration_is_cancelling(rs->s)) {
        error_setg(errp, "migration cancelled");
        return true;
    }
    return false;
}

/* Send every page whose dirty bit is set. */
static bool ram_send_dirty(RamSaveState *rs, GError **errp)
{
    MigrationRamStats *st = &rs->s->ram;

    for (guint bi = 0; bi < rs->nblocks; bi++) {
        unsigned long *map = rs->dirty[bi];
        uint64_t npages = rs->npages[bi];
        uint64_t page = bitmap_find_next_set(map, npages, 0);

        while (page < npages) {
            uint64_t end = bitmap_find_next_zero(map, MIN(npages, page + RAM_RECORD_MAX_PAGES),
                                                 page);
            uint32_t n = (uint32_t)(end - page);

            if (ram_cancelled(rs, errp)) {
                return false;
            }
            bitmap_clear_range(map, page, n);
            rs->dirty_pages -= n;
            if (!ram_send_run(rs, bi, page, n)) {
                return stream_file_check(rs->f, errp);
            }
            migration_stat_set(&st->remaining, rs->dirty_pages * SAVEVM_PAGE_SIZE);
            page = bitmap_find_next_set(map, npages, end);
        }
    }
    return true;
}

/* Collect what the guest dirtied since the last sync into the bitmaps. */
static bool ram_sync(RamSaveState *rs, GError **errp)
{
    const AccelOps *ops = rs->m->accel;
    uint64_t dirty = 0;

    for (guint bi = 0; bi < rs->nblocks; bi++) {
        RamBlock *b = g_ptr_array_index(rs->m->ram_blocks, bi);

        if (!ops->dirty_log_sync(rs->m, b, rs->dirty[bi], errp)) {
            error_prefix(errp, "migration: reading the dirty log of '%s': ", b->name);
            return false;
        }
        dirty += bitmap_count_set(rs->dirty[bi], rs->npages[bi]);
    }
    rs->dirty_pages = dirty;
    migration_stat_add(&rs->s->ram.dirty_sync_count, 1);
    migration_stat_set(&rs->s->ram.remaining, dirty * SAVEVM_PAGE_SIZE);
    return true;
}

/*
 * Settling (see ram.h): once what is left fits the limit, a few more live
 * passes while each at least halves it. Each costs its copy time with the
 * guest running, and the pause shrinks with what is left: QEMU's rule alone
 * stopped a 512 MiB guest writing 128 MiB for 15 ms of copying, where two or
 * three more passes of a few milliseconds leave well under one.
 */
bool ram_switch_over_ready(RamConvergence *c, uint64_t remaining, uint64_t bandwidth,
                           uint64_t limit_ms)
{
    if (remaining == 0 || !bandwidth) {
        return true;
    }
    bool halved = remaining <= c->last_remaining / 2;

    c->last_remaining = remaining;
    if (remaining > bandwidth / 1000 * limit_ms) {
        return false;       /* QEMU's rule: not yet */
    }
    /*
     * A pass that did not halve the rest ends settling, unless the rest grew
     * past the best so far (a pass slowed by the host or the sink): then one
     * more is likely to bring it back down.
     */
    bool ready = remaining <= RAM_SETTLE_BYTES || c->settle_passes == RAM_SETTLE_PASSES ||
                 (!halved && c->best_remaining && remaining <= c->best_remaining);
    if (!c->best_remaining || remaining < c->best_remaining) {
        c->best_remaining = remaining;
    }
    if (!ready) {
        c->settle_passes++;
    }
    return ready;
}

/*
 * auto-converge: after a pass of @sent bytes in which the guest dirtied
 * @dirtied bytes, throttle its vCPUs further if it keeps outrunning the sink.
 */
static void ram_auto_converge(RamSaveState *rs, AutoConverge *ac, uint64_t sent,
                              uint64_t dirtied)
{
    CpuThrottle *t = &rs->m->throttle;
    AutoConvergeParams p;
    unsigned current = (unsigned)cpu_throttle_get_percent(t);
    unsigned next;

    migration_auto_converge_params(rs->s, &p);
    next = auto_converge_update(ac, &p, current, migration_now_us(), sent, dirtied);
    if (next != current) {
        g_debug("auto-converge: guest dirtied %" PRIu64 " bytes against %" PRIu64
                " sent; throttle %u%% -> %u%%", dirtied, sent, current, next);
        cpu_throttle_set(t, (int)next);
    }
}

/*
 * Live passes until what is left fits the downtime limit at the bandwidth
 * the last pass achieved (QEMU's switch-over rule), then settling. A guest
 * that dirties faster than the sink drains never converges unless
 * auto-converge slows it; migrate_cancel ends it.
 */
static bool ram_iterate(RamSaveState *rs, GError **errp)
{
    MigrationState *s = rs->s;
    uint64_t bandwidth = 0;
    RamConvergence conv = { .last_remaining = UINT64_MAX };
    /* The first period starts with the first pass, as QEMU's does with its first sync. */
    AutoConverge ac = { .period_start_us = migration_now_us() };
    bool auto_converge = migration_capability_enabled(s, MIGRATION_CAPABILITY_AUTO_CONVERGE);

    for (;;) {
        uint64_t start = migration_now_us();
        uint64_t sent_before = ram_bytes_out(rs);
        uint64_t elapsed_us, sent, remaining, limit_ms;
        uint64_t sent_pages_before = migration_stat_get(&s->ram.normal) +
                                     migration_stat_get(&s->ram.duplicate);
        uint64_t pages;

        if (!ram_send_dirty(rs, errp) || !ram_sync(rs, errp)) {
            return false;
        }
        elapsed_us = migration_now_us() - start;
        elapsed_us = MAX(elapsed_us, 1);     /* MAX() would read the clock twice */
        sent = ram_bytes_out(rs) - sent_before;
        pages = migration_stat_get(&s->ram.normal) + migration_stat_get(&s->ram.duplicate) -
                sent_pages_before;
        if (sent >= 64 * 1024) {
            /* Tiny passes measure latency, not bandwidth: keep the last figure. */
            bandwidth = sent * 1000000 / elapsed_us;
        }
        remaining = rs->dirty_pages * SAVEVM_PAGE_SIZE;
        limit_ms = migration_downtime_limit(s);
        if (auto_converge) {
            /* Every page was sent before the sync: what it found, the guest dirtied meanwhile. */
            ram_auto_converge(rs, &ac, sent, remaining);
        }
        migration_stat_set(&s->ram.bandwidth, bandwidth);
        migration_stat_set(&s->ram.pages_per_second, pages * 1000000 / elapsed_us);
        migration_stat_set(&s->ram.dirty_pages_rate, rs->dirty_pages * 1000000 / elapsed_us);
        migration_stat_set(&s->ram.precopy_bytes, ram_bytes_out(rs));
        migration_stat_set(&s->expected_downtime,
                           bandwidth ? remaining * 1000 / bandwidth : 0);
        g_debug("precopy pass: %" PRIu64 " bytes in %" PRIu64 " us, %" PRIu64
                " bytes dirty, bandwidth %" PRIu64 " B/s", sent, elapsed_us, remaining,
                bandwidth);
        if (ram_switch_over_ready(&conv, remaining, bandwidth, limit_ms)) {
            return true;
        }
    }
}

static void ram_save_cleanup(RamSaveState *rs)
{
    /* Whatever the end, the guest runs at full speed again. */
    cpu_throttle_stop(&rs->m->throttle);
    if (rs->logging) {
        rs->m->accel->dirty_log_stop(rs->m);
        rs->logging = false;
    }
    for (guint bi = 0; bi < rs->nblocks; bi++) {
        bitmap_free(rs->dirty[bi]);
        bitmap_free(rs->zero[bi]);
    }
    g_free(rs->dirty);
    g_free(rs->zero);
    g_free(rs->npages);
    free(rs->staging);
}

static void ram_stop_guest(RamSaveState *rs)
{
    rs->stop_us = migration_now_us();
    rs->stop_offset = ram_bytes_out(rs);
    rs->s->vm_stopped = true;
    runstate_vm_stop(rs->m, RUN_STATE_FINISH_MIGRATE);
}

bool ram_save_precopy(MigrationState *s, StreamFile *f, GError **errp)
{
    Machine *m = s->machine;
    const AccelOps *ops = m->accel;
    RamSaveState rs = { .s = s, .m = m, .f = f, .mapped = s->mapped_ram };
    g_autoptr(GByteArray) devices = NULL;
    bool live;
    bool ok = false;

    rs.nblocks = m->ram_blocks->len;
    rs.dirty = g_new0(unsigned long *, rs.nblocks);
    rs.zero = g_new0(unsigned long *, rs.nblocks);
    rs.npages = g_new0(uint64_t, rs.nblocks);
    for (guint bi = 0; bi < rs.nblocks; bi++) {
        RamBlock *b = g_ptr_array_index(m->ram_blocks, bi);

        rs.npages[bi] = b->size / SAVEVM_PAGE_SIZE;
        rs.dirty[bi] = bitmap_new(rs.npages[bi]);
        rs.zero[bi] = bitmap_new(rs.npages[bi]);
        /* The first pass sends everything. */
        bitmap_set_range(rs.dirty[bi], 0, rs.npages[bi]);
        rs.dirty_pages += rs.npages[bi];
    }
    if (posix_memalign((void **)&rs.staging, 4096,
                       SAVEVM_RAM_RECORD_HEADER_SIZE +
                       (size_t)RAM_RECORD_MAX_PAGES * SAVEVM_PAGE_SIZE)) {
        error_setg(errp, "migration: out of memory for the staging buffer");
        goto out;
    }
    migration_stat_set(&s->ram.remaining, rs.dirty_pages * SAVEVM_PAGE_SIZE);

    /* A page-aligned image gets its header last (mapped_ram_writer_finish()). */
    if (!rs.mapped && !savevm_write_header(f, m, SAVEVM_STREAM_PRECOPY, errp)) {
        goto out;
    }
    live = runstate_is_running(m) && ops && ops->dirty_log_start && ops->dirty_log_sync &&
           ops->dirty_log_stop;
    if (live) {
        if (!ops->dirty_log_start(m, errp)) {
            error_prefix(errp, "migration: cannot start dirty logging: ");
            goto out;
        }
        rs.logging = true;
    } else {
        /* Nothing can track writes (or nothing writes): stop, then copy once. */
        ram_stop_guest(&rs);
    }
    if (!ram_find_zero(&rs, errp)) {
        goto out;
    }
    if (!migration_set_state(s, MIGRATION_STATUS_SETUP, MIGRATION_STATUS_ACTIVE)) {
        error_setg(errp, "migration cancelled");
        goto out;
    }
    if (live && !ram_iterate(&rs, errp)) {
        goto out;
    }

    /*
     * Switch-over: the guest stops (STOP comes before MIGRATION "device", as
     * in QEMU); everything from here is downtime. A cancel from here on
     * resumes the guest through vm_stopped.
     */
    if (live) {
        ram_stop_guest(&rs);
    }
    /* pause-before-switchover: the guest stays stopped until migrate-continue. */
    MigrationStatus before_device = migration_pause_before_switchover(s);
    if (before_device == MIGRATION_STATUS_CANCELLING ||
        !migration_set_state(s, before_device, MIGRATION_STATUS_DEVICE)) {
        error_setg(errp, "migration cancelled");
        goto out;
    }
    /* The last pass is not throttled (as in QEMU): the guest is waiting. */
    stream_file_follow_rate_limit(f, NULL);
    stream_file_set_rate_limit(f, 0);
    if (live) {
        if (!ram_sync(&rs, errp)) {
            goto out;
        }
    }
    migration_stat_set(&s->expected_downtime, 0);
    if (!ram_send_dirty(&rs, errp)) {
        goto out;
    }
    if (rs.logging) {
        ops->dirty_log_stop(m);
        rs.logging = false;
    }
    devices = savevm_save_devices(m, errp);
    if (!devices || !stream_file_check(f, errp)) {
        goto out;
    }
    if (rs.mapped ? !mapped_ram_writer_finish(rs.mapped, devices->data, devices->len, errp)
                  : (!savevm_write_ram_end(f, errp) ||
                     !savevm_write_devices(f, devices, errp) ||
                     !savevm_write_footer(f, errp) ||
                     !stream_file_flush(f) || !stream_file_check(f, errp))) {
        goto out;
    }
    migration_stat_set(&s->downtime, (migration_now_us() - rs.stop_us) / 1000);
    migration_stat_set(&s->ram.downtime_bytes, ram_bytes_out(&rs) - rs.stop_offset);
    migration_stat_set(&s->ram.transferred, ram_bytes_out(&rs));
    migration_stat_set(&s->ram.remaining, 0);
    ok = true;

out:
    ram_save_cleanup(&rs);
    return ok;
}
