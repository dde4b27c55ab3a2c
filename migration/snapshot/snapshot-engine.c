/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The background snapshot engine's lifecycle: set up, arm in the pause, save RAM, and a teardown that always releases the guest. */
#include "migration/snapshot/snapshot-internal.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "migration/background-snapshot.h"
#include "migration/epoch-tracking.h"
#include "system/machine.h"
#include "system/ram-populated.h"
#include "util/bitmap.h"
#include "util/error.h"
#include "util/pagemap.h"

#define MIB (1024ULL * 1024)
/* Auto pool: a quarter of guest RAM (a typical hot set), within these bounds. */
#define POOL_AUTO_MIN (16 * MIB)
#define POOL_AUTO_MAX (1024 * MIB)
/*
 * Buffers populated before the pause, so neither a fault nor the scan pays
 * for first touches (and no fault waits for the kernel to find a huge page):
 * with the pool on transparent huge pages this costs about 0.06 ms per MiB
 * here, 1.5 ms per MiB with 4 KiB pages.
 */
#define POOL_PREFAULT_MAX (128 * MIB)
/*
 * ... but no more than what RAM holds now, and this much for what the guest
 * fills before the pause: an idle guest's snapshot spent 137-291 ms of its
 * 147-310 ms populating 128 MiB it never used (1.1 MiB saved). Buffers past
 * the populated ones still work; each costs its first touch when taken.
 */
#define POOL_PREFAULT_SLACK (8 * MIB)
/* Fault blocks: 256 KiB copies cost ~0.2 ms here, 2 MiB over 1 ms (DESIGN.md). */
#define FAULT_BLOCK_DEFAULT_PAGES 64u

/*
 * Bytes of guest RAM that may hold data now (a pagemap walk, or holes of a
 * shared file): an upper bound of what the snapshot copies, but for what
 * gets data before the pause. All of RAM where the kernel cannot say.
 */
static uint64_t ram_with_data(BackgroundSnapshot *bs)
{
    uint64_t bytes = 0;

    for (unsigned i = 0; i < bs->nr_blocks; i++) {
        SnapshotBlock *sb = &bs->blocks[i];
        unsigned long *zero = bitmap_new(sb->pages);

        if (ram_block_find_zero(sb->rb, bs->pagemap_fd, NULL, zero, NULL, NULL, NULL)) {
            bytes += (sb->pages - bitmap_count_set(zero, sb->pages)) * SNAPSHOT_PAGE_SIZE;
        } else {
            bytes += sb->rb->size;
        }
        bitmap_free(zero);
    }
    return bytes;
}

void snapshot_thread_yield_to_vcpus(void)
{
    struct sched_param batch = { 0 };

    pthread_setschedparam(pthread_self(), SCHED_BATCH, &batch);
}

uint64_t snapshot_default_pool_size(uint64_t ram_bytes)
{
    uint64_t size = ram_bytes / 4;
    return MIN(MAX(size, POOL_AUTO_MIN), POOL_AUTO_MAX);
}

/* Largest power of two <= @v (v >= 1). */
static uint32_t pow2_floor(uint32_t v)
{
    return 1u << (31 - __builtin_clz(v));
}

BackgroundSnapshot *snapshot_engine_new(GPtrArray *blocks, uint64_t pool_bytes,
                                        StreamFile *f, MappedRamWriter *mapped,
                                        GError **errp)
{
    return snapshot_engine_new_tracked(blocks, pool_bytes, f, mapped, NULL, errp);
}

BackgroundSnapshot *snapshot_engine_new_tracked(GPtrArray *blocks, uint64_t pool_bytes,
                                                StreamFile *f, MappedRamWriter *mapped,
                                                EpochTracking *epoch, GError **errp)
{
    uint64_t start = write_tracking_now_ns();
    BackgroundSnapshot *bs = g_new0(BackgroundSnapshot, 1);
    uint64_t ram_bytes = 0;
    uint64_t pool_min = 0;

    bs->ram_blocks = g_ptr_array_ref(blocks);
    bs->nr_blocks = blocks->len;
    bs->blocks = g_new0(SnapshotBlock, blocks->len);
    bs->pagemap_fd = -1;
    g_mutex_init(&bs->scan_prio_lock);
    g_mutex_init(&bs->arm_lock);
    snapshot_collapse_init(bs);
    snapshot_pause_copy_init(bs);
    snapshot_watchdog_init(bs);
    snapshot_writer_init(&bs->writer);
    bs->fault_idle_since_ns = write_tracking_now_ns();
    bs->prearm_released = g_array_new(false, false, sizeof(SnapshotRange));
    latency_histogram_init(&bs->fault_latency);
    for (unsigned i = 0; i < blocks->len; i++) {
        SnapshotBlock *sb = &bs->blocks[i];
        sb->rb = g_ptr_array_index(blocks, i);
        sb->pages = sb->rb->size / SNAPSHOT_PAGE_SIZE;
        sb->group_pages = MAX(sb->rb->page_size, SNAPSHOT_PAGE_SIZE) / SNAPSHOT_PAGE_SIZE;
        if (sb->rb->page_size > SNAPSHOT_MAX_BACKING_PAGE) {
            error_setg(errp, "background-snapshot: RAM block '%s' is backed by %" G_GUINT64_FORMAT
                       " MiB pages; at most 2 MiB pages are supported", sb->rb->name,
                       sb->rb->page_size >> 20);
            goto fail;
        }
        if (sb->group_pages > 1) {
            /* A fault saves at least one backing page: keep room for several. */
            pool_min = MAX(pool_min, 8 * (uint64_t)sb->rb->page_size);
        }
        sb->regions = (sb->pages + SNAPSHOT_HUGE_PAGES - 1) / SNAPSHOT_HUGE_PAGES;
        sb->claimed = bitmap_new(sb->pages);
        sb->saved = bitmap_new(sb->pages);
        sb->zero_before = bitmap_new(sb->pages);
        sb->zero_at_pause = bitmap_new(sb->pages);
        /* Huge-page care is for transparent huge pages; hugetlbfs has its groups. */
        if (sb->group_pages == 1) {
            sb->huge = bitmap_new(sb->regions);
            sb->split = bitmap_new(sb->regions);
        }
        /* The pause writes these: their page faults are taken now, while the guest runs. */
        bitmap_populate(sb->claimed, sb->pages);
        bitmap_populate(sb->saved, sb->pages);
        bitmap_populate(sb->zero_at_pause, sb->pages);
        if (epoch) {
            sb->opened = bitmap_new(sb->pages);
            bitmap_populate(sb->opened, sb->pages);
        }
        bs->total_pages += sb->pages;
        ram_bytes += sb->rb->size;
    }

    if (!pool_bytes) {
        pool_bytes = snapshot_default_pool_size(ram_bytes);
    }
    pool_bytes = MAX(pool_bytes, pool_min);
    /* Before the pool: it sizes what the pool populates now. */
    bs->pagemap_fd = pagemap_open();
    uint64_t prefault = MIN(ram_with_data(bs) + POOL_PREFAULT_SLACK, POOL_PREFAULT_MAX);
    bs->pool = page_pool_obtain(pool_bytes, pool_bytes / 4, MIN(pool_bytes, prefault), errp);
    if (!bs->pool) {
        error_prefix(errp, "background-snapshot: ");
        goto fail;
    }
    /* A fault block must fit in the reserve even when the scan holds the rest. */
    uint32_t reserve = page_pool_max_take(bs->pool, PAGE_POOL_USER_FAULT) -
                       page_pool_max_take(bs->pool, PAGE_POOL_USER_SCAN);
    bs->fault_block_max_pages = pow2_floor(MAX(1u, MIN(FAULT_BLOCK_DEFAULT_PAGES, reserve)));

    if (epoch) {
        /* Tracking's userfaultfd and fault thread serve this snapshot from its instant on. */
        bs->epoch = epoch;
        bs->wt = epoch_tracking_write_tracking(epoch);
    } else {
        /*
         * Without the page tables' word on what is unpopulated, never-touched
         * memory must be protected (or populated) like the rest.
         */
        bs->wt = write_tracking_new(blocks, bs->pagemap_fd < 0, errp);
        if (!bs->wt) {
            goto fail;
        }
    }
    if (!snapshot_writer_start(&bs->writer, f, mapped, bs->pool, errp)) {
        goto fail;
    }
    if (!snapshot_collapse_start(bs, errp)) {
        goto fail;
    }
    if (!epoch && !snapshot_pause_copy_start(bs, errp)) {
        goto fail;
    }
    if (!epoch &&
        !write_tracking_start_fault_thread(bs->wt, snapshot_fault_handle, bs, true, errp)) {
        goto fail;
    }
    bs->setup_ns = write_tracking_now_ns() - start;
    return bs;

fail:
    snapshot_engine_free(bs);
    return NULL;
}

void snapshot_engine_set_base(BackgroundSnapshot *bs, const uint8_t *uuid)
{
    bs->has_base = uuid != NULL;
    if (uuid) {
        memcpy(bs->base_uuid, uuid, sizeof(bs->base_uuid));
    }
}

void snapshot_engine_keep_pool(BackgroundSnapshot *bs, uint64_t keep_ms, GMainContext *context)
{
    bs->pool_keep_ms = keep_ms;
    bs->pool_keep_context = context;
}

bool background_snapshot_vcpus_fill_cpus(unsigned nr_vcpus)
{
    cpu_set_t cpus;

    /* The process's CPUs (its first thread's): a snapshot narrows its own threads'. */
    return sched_getaffinity(getpid(), sizeof(cpus), &cpus) == 0 &&
           (unsigned)CPU_COUNT(&cpus) <= nr_vcpus;
}

void snapshot_engine_set_vcpus(BackgroundSnapshot *bs, unsigned nr_vcpus)
{
    bs->vcpus_fill_cpus = background_snapshot_vcpus_fill_cpus(nr_vcpus);
    if (bs->vcpus_fill_cpus) {
        snapshot_writer_keep_priority(&bs->writer);
    }
}

bool snapshot_engine_save_ram(BackgroundSnapshot *bs, bool (*tick)(void *opaque),
                              void *opaque, GError **errp)
{
    /* Stopped by snapshot_engine_finish(), which every end of a snapshot goes through. */
    snapshot_watchdog_start(bs);
    if (!snapshot_scan_run(bs, tick, opaque, errp)) {
        return false;
    }
    /*
     * Every page is claimed now, but a fault may still be copying the pages
     * it claimed: wait for them (a few microseconds, or a pool wait).
     */
    while (__atomic_load_n(&bs->fig.saved_pages, __ATOMIC_ACQUIRE) < bs->total_pages) {
        if (snapshot_writer_failed(&bs->writer)) {
            snapshot_writer_get_error(&bs->writer, errp);
            return false;
        }
        if (__atomic_load_n(&bs->aborting, __ATOMIC_ACQUIRE)) {
            error_setg(errp, "background-snapshot: stopped while faults were being saved");
            return false;
        }
        if (tick && !tick(opaque)) {
            error_setg(errp, "background-snapshot: cancelled");
            return false;
        }
        g_usleep(50);
    }
    return true;
}

bool snapshot_engine_finish(BackgroundSnapshot *bs, GError **errp)
{
    if (bs->finished) {
        return true;
    }
    bs->finished = true;
    /*
     * Order matters: the fault thread may wait for the pool or for a page the
     * scan claimed; aborted snapshots close the pool first (see abort). Then
     * tracking stops (every page writable, every vCPU woken) before the
     * writer is drained, so a slow sink never holds the guest.
     */
    if (bs->epoch) {
        /* Tracking keeps RAM protected and serves faults on its own again. */
        epoch_tracking_detach(bs->epoch);
    } else if (bs->wt) {
        write_tracking_stop(bs->wt);
    }
    /* Split huge pages come back while the writer drains. */
    snapshot_collapse_unprotected(bs);
    bool ok = snapshot_writer_finish(&bs->writer, errp);
    snapshot_watchdog_stop(bs);     /* after the drain: the writer may starve in it too */
    snapshot_collapse_finish(bs);
    return ok;
}

void snapshot_engine_abort(BackgroundSnapshot *bs)
{
    __atomic_store_n(&bs->aborting, true, __ATOMIC_RELEASE);
    if (bs->pool) {
        page_pool_close(bs->pool);
    }
    snapshot_engine_finish(bs, NULL);
}

void snapshot_engine_free(BackgroundSnapshot *bs)
{
    if (!bs) {
        return;
    }
    if (!bs->finished) {
        snapshot_engine_abort(bs);
    }
    snapshot_pause_copy_stop(bs);
    if (!bs->epoch) {
        write_tracking_free(bs->wt);
    }
    page_pool_keep(bs->pool, bs->pool_keep_ms, bs->pool_keep_context);
    if (bs->pagemap_fd >= 0) {
        close(bs->pagemap_fd);
    }
    for (unsigned i = 0; i < bs->nr_blocks; i++) {
        bitmap_free(bs->blocks[i].claimed);
        bitmap_free(bs->blocks[i].saved);
        bitmap_free(bs->blocks[i].zero_before);
        bitmap_free(bs->blocks[i].zero_at_pause);
        bitmap_free(bs->blocks[i].opened);
        bitmap_free(bs->blocks[i].huge);
        bitmap_free(bs->blocks[i].split);
    }
    g_free(bs->blocks);
    g_mutex_clear(&bs->scan_prio_lock);
    g_mutex_clear(&bs->arm_lock);
    snapshot_collapse_clear(bs);
    snapshot_pause_copy_clear(bs);
    snapshot_watchdog_clear(bs);
    snapshot_writer_clear(&bs->writer);
    g_array_unref(bs->prearm_released);
    g_ptr_array_unref(bs->ram_blocks);
    g_free(bs);
}

void snapshot_engine_get_stats(BackgroundSnapshot *bs, BackgroundSnapshotStats *st)
{
    const LatencyHistogram *h = &bs->fault_latency;

    st->write_faults = __atomic_load_n(&bs->fig.write_faults, __ATOMIC_RELAXED);
    st->pages_out_of_order = __atomic_load_n(&bs->fig.pages_out_of_order, __ATOMIC_RELAXED);
    st->pages_saved_ahead = __atomic_load_n(&bs->fig.pages_saved_ahead, __ATOMIC_RELAXED);
    st->pages_saved_in_pause = __atomic_load_n(&bs->fig.pages_saved_in_pause, __ATOMIC_RELAXED);
    st->fault_us_p50 = latency_histogram_percentile_us(h, 50);
    st->fault_us_p99 = latency_histogram_percentile_us(h, 99);
    st->fault_us_p999 = latency_histogram_percentile_us(h, 99.9);
    st->fault_us_max = (latency_histogram_max_ns(h) + 999) / 1000;
    if (bs->pool) {
        PagePoolStats ps;
        page_pool_get_stats(bs->pool, &ps);
        st->pool_size = ps.capacity_pages * PAGE_POOL_PAGE_SIZE;
        st->pool_high_water = ps.high_water_pages * PAGE_POOL_PAGE_SIZE;
        st->pool_populated = ps.prefaulted_pages * PAGE_POOL_PAGE_SIZE;
        st->pool_reused = ps.reused_pages * PAGE_POOL_PAGE_SIZE;
        st->pool_waits = ps.fault_waits;
        st->pool_wait_us = ps.fault_wait_ns / 1000;
    }
    st->pages_unpopulated = __atomic_load_n(&bs->fig.pages_unpopulated, __ATOMIC_RELAXED);
    st->incremental = bs->has_base;
    st->pages_unchanged = bs->fig.pages_unchanged;
    st->huge_pages = __atomic_load_n(&bs->fig.huge_in_pause, __ATOMIC_RELAXED);
    st->huge_page_faults = __atomic_load_n(&bs->fig.huge_whole_faults, __ATOMIC_RELAXED);
    st->huge_pages_split = __atomic_load_n(&bs->fig.huge_split, __ATOMIC_RELAXED);
    st->huge_pages_restored = __atomic_load_n(&bs->fig.huge_restored, __ATOMIC_RELAXED);
    st->huge_collapse_failed = __atomic_load_n(&bs->fig.huge_collapse_failed, __ATOMIC_RELAXED);
    st->paced_faults = __atomic_load_n(&bs->fig.paced_faults, __ATOMIC_RELAXED);
    st->paced_us = __atomic_load_n(&bs->fig.paced_ns, __ATOMIC_RELAXED) / 1000;
    /* Registering (and populating, without WP_UNPOPULATED) plus protecting. */
    if (bs->wt) {
        st->wp_setup_us = (write_tracking_register_ns(bs->wt) + bs->prearm_ns + bs->arm_ns) /
                          1000;
    }
}
