/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Tests of the background snapshot engine without KVM: host threads write
 * guest RAM in a known pattern while a snapshot runs, and the image must equal
 * RAM at the pause instant, byte for byte, each page saved once.
 */
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "accel/accel.h"
#include "migration/background-snapshot.h"
#include "migration/channel.h"
#include "migration/migration.h"
#include "migration/vmstate.h"
#include "migration/savevm.h"
#include "migration/snapshot/snapshot-internal.h"
#include "migration/stream-file.h"
#include "system/machine.h"
#include "system/memory-backend.h"
#include "util/bitmap.h"
#include "util/error.h"
#include "util/pagemap.h"
#include "util/userfaultfd.h"

#include "snapshot-test-guest.h"


static void test_consistent_image(void)
{
    if (!wp_available()) {
        return;
    }
    TestGuest *g = guest_new(true);
    StreamFile *f = stream_file_new_memory_output();
    TickCtx t = { 0 };
    SnapshotResult res;

    g_usleep(20000);    /* writers up to speed */
    run_snapshot(g, f, 8 * MIB, &t, &res);
    g_assert_no_error(res.error);
    g_assert_true(res.ok);
    g_assert_true(stream_file_flush(f));
    check_image(g, stream_file_memory_output(f), &res);
    print_stats("snapshot with 2 writers", &res, g);

    /*
     * Writes hit protected pages; whether a fault saves them itself or finds
     * the scan got there first depends on timing (both happen).
     */
    g_assert_cmpuint(res.stats.write_faults, >, 0);
    g_assert_cmpuint(res.stats.pool_size, ==, 8 * MIB);
    g_assert_cmpuint(res.stats.pool_high_water, >, 0);
    g_assert_cmpuint(res.stats.fault_us_max, >=, res.stats.fault_us_p50);

    /*
     * The untouched tail of block 0 and of block 1 is saved as zero in the
     * pause, never read, never protected (so never populated), and so are hot
     * pages the writers had not reached yet.
     */
    uint64_t untouched = (BLOCK0_SIZE - HOT_SIZE - COLD_SIZE + BLOCK1_SIZE / 2) / PAGE;
    g_assert_cmpuint(res.stats.pages_unpopulated, >=, untouched);
    g_assert_cmpuint(res.stats.pages_unpopulated, <=, untouched + HOT_SIZE / PAGE);
    g_assert_cmpuint(populated_pages(g->rb[0].host + HOT_SIZE + COLD_SIZE,
                                     BLOCK0_SIZE - HOT_SIZE - COLD_SIZE), ==, 0);
    g_assert_cmpuint(populated_pages(g->rb[1].host + BLOCK1_SIZE / 2, BLOCK1_SIZE / 2), ==, 0);
    result_clear(&res);
    stream_file_free(f);
    guest_free(g);
}

/* Shared memory (memfd) and, when the host has free huge pages, hugetlbfs. */
static void test_backed(gconstpointer data)
{
    bool hugetlb = GPOINTER_TO_INT(data);
    g_autoptr(MemoryBackendOptions) opts = memory_backend_options_new(MEMORY_BACKEND_MEMFD);

    if (!wp_available()) {
        return;
    }
    opts->share = true;
    opts->hugetlb = hugetlb;
    if (hugetlb) {
        g_autofree char *meminfo = NULL;
        const char *free_line;
        g_file_get_contents("/proc/meminfo", &meminfo, NULL, NULL);
        free_line = meminfo ? strstr(meminfo, "HugePages_Free:") : NULL;
        if (!free_line || g_ascii_strtoull(free_line + 15, NULL, 10) < 40) {
            g_test_skip("needs 40 free 2 MiB huge pages (vm.nr_hugepages)");
            return;
        }
    }
    TestGuest *g = guest_new_backed(true, opts);
    StreamFile *f = stream_file_new_memory_output();
    TickCtx t = { 0 };
    SnapshotResult res;

    g_usleep(20000);
    run_snapshot_checked(g, f, 8 * MIB, &t, &res);
    print_stats(hugetlb ? "snapshot of hugetlbfs memory" : "snapshot of memfd memory", &res, g);
    g_assert_cmpuint(res.stats.write_faults, >, 0);
    result_clear(&res);
    stream_file_free(f);
    guest_free(g);
}

/* A pool far smaller than the hot set: faults wait for the writer, and say so. */
static void test_small_pool(void)
{
    if (!wp_available()) {
        return;
    }
    TestGuest *g = guest_new(true);
    StreamFile *f = stream_file_new_memory_output();
    TickCtx t = { 0 };
    SnapshotResult res;

    g_usleep(20000);
    run_snapshot_checked(g, f, 64 * PAGE, &t, &res);
    print_stats("snapshot with a 256 KiB pool", &res, g);
    g_assert_cmpuint(res.stats.pool_high_water, <=, 64 * PAGE);
    result_clear(&res);
    stream_file_free(f);
    guest_free(g);
}

/* Write all of @g's RAM from a new thread; true if it got through within 5 s. */
static gpointer write_all_main(gpointer opaque)
{
    TestGuest *g = opaque;
    for (int i = 0; i < 2; i++) {
        for (uint64_t off = 0; off < g->rb[i].size; off += PAGE) {
            g->rb[i].host[off] ^= 1;
        }
    }
    g->all_touched = true;
    return GINT_TO_POINTER(1);
}

static void assert_ram_writable(TestGuest *g)
{
    GThread *t = g_thread_new("write-all", write_all_main, g);
    /* A blocked write would hang here: the test's timeout catches that. */
    g_assert_nonnull(g_thread_join(t));
}

static void test_cancel_then_again(void)
{
    if (!wp_available()) {
        return;
    }
    TestGuest *g = guest_new(true);
    StreamFile *f = stream_file_new_memory_output();
    TickCtx t = { .cancel_after = 3 };
    SnapshotResult res;

    run_snapshot(g, f, 8 * MIB, &t, &res);
    g_assert_false(res.ok);
    g_assert_error(res.error, FROSTVM_ERROR, FROSTVM_ERROR_GENERIC);
    g_assert_nonnull(strstr(res.error->message, "cancelled"));
    result_clear(&res);
    stream_file_free(f);

    /* Nothing stays protected: the guest writes everywhere, a new snapshot works. */
    assert_ram_writable(g);
    f = stream_file_new_memory_output();
    t = (TickCtx){ 0 };
    run_snapshot_checked(g, f, 8 * MIB, &t, &res);
    result_clear(&res);
    stream_file_free(f);
    guest_free(g);
}

static void test_sink_fails(void)
{
    g_autoptr(GError) err = NULL;

    if (!wp_available()) {
        return;
    }
    TestGuest *g = guest_new(true);
    /* A sink that reads 1 MiB and goes away: the writer gets EPIPE. */
    MigrationChannel *ch = channel_open_outgoing("exec:head -c 1048576 >/dev/null", &err);
    g_assert_no_error(err);
    StreamFile *f = stream_file_new_output(ch);
    TickCtx t = { 0 };
    SnapshotResult res;

    run_snapshot(g, f, 4 * MIB, &t, &res);
    g_assert_false(res.ok);
    g_assert_nonnull(res.error);
    g_test_message("sink failure reported as: %s", res.error->message);
    result_clear(&res);
    stream_file_free(f);
    channel_close(ch, false, NULL);
    assert_ram_writable(g);
    guest_free(g);
}

/* A snapshot of the guest without writers, its image checked. */
typedef struct IdleRun {
    TestGuest *g;
    StreamFile *f;
    SnapshotResult res;
} IdleRun;

static void idle_run(IdleRun *r, uint64_t pool_bytes)
{
    TickCtx t = { 0 };

    r->g = guest_new(false);
    r->f = stream_file_new_memory_output();
    run_snapshot(r->g, r->f, pool_bytes, &t, &r->res);
    g_assert_no_error(r->res.error);
    g_assert_true(stream_file_flush(r->f));
    check_image(r->g, stream_file_memory_output(r->f), &r->res);
}

static void idle_done(IdleRun *r)
{
    result_clear(&r->res);
    stream_file_free(r->f);
    guest_free(r->g);
}

/* No writers at all: nothing faults, everything comes from the scan. */
static void test_idle_guest(void)
{
    IdleRun r;

    if (!wp_available()) {
        return;
    }
    idle_run(&r, 0);
    g_assert_cmpuint(r.res.stats.write_faults, ==, 0);
    g_assert_cmpuint(r.res.stats.pages_out_of_order, ==, 0);
    /* Auto pool: a quarter of 64 MiB is below the 16 MiB floor. */
    g_assert_cmpuint(r.res.stats.pool_size, ==, 16 * MIB);
    idle_done(&r);
}

/*
 * However large the pool, it populates before the pause only what RAM
 * holds (at most 32 of 64 MiB here) and 8 MiB more: populating all of it
 * cost an idle guest's snapshot most of its time.
 */
static void test_pool_populated_by_data(void)
{
    uint64_t data = HOT_SIZE + COLD_SIZE + BLOCK1_SIZE / 2;
    IdleRun r;

    if (!wp_available()) {
        return;
    }
    idle_run(&r, 128 * MIB);
    g_assert_cmpuint(r.res.stats.pool_size, ==, 128 * MIB);
    /* The walk may find less: pages of the shared zero page hold no data. */
    g_assert_cmpuint(r.res.stats.pool_populated, >=, 8 * MIB);
    g_assert_cmpuint(r.res.stats.pool_populated, <=, data + 8 * MIB);
    idle_done(&r);
}

/*
 * The guest's writes, made from the scan thread between chunks so that the
 * order is fixed: before the first chunk, the first page of the cold part
 * (a fault there points the scan at it); before the fourth, a page 2 MiB
 * further on, which the scan has saved by then only if it ran ahead.
 */
static void write_in_order(TickCtx *t)
{
    TestGuest *g = t->opaque;
    uint8_t *cold = g->rb[0].host + HOT_SIZE;

    if (t->ticks == 1) {
        cold[0] ^= 1;
    } else if (t->ticks == 4) {
        cold[2 * MIB + PAGE] ^= 1;
    }
}

static void test_scan_runs_ahead(void)
{
    if (!wp_available()) {
        return;
    }
    TestGuest *g = guest_new(false);
    StreamFile *f = stream_file_new_memory_output();
    TickCtx t = { .on_tick = write_in_order, .opaque = g };
    SnapshotResult res;

    run_snapshot_checked(g, f, 16 * MIB, &t, &res);
    print_stats("snapshot of a guest writing in order", &res, g);
    g_assert_cmpuint(t.ticks, >=, 4);
    /* The first write faults; the second finds its page saved and writable. */
    g_assert_cmpuint(res.stats.write_faults, ==, 1);
    g_assert_cmpuint(res.stats.pages_saved_ahead, >=, 2 * MIB / PAGE);
    result_clear(&res);
    stream_file_free(f);
    guest_free(g);
}

/*
 * A run ahead goes on until it meets a chunk already saved, not for a fixed
 * number of chunks. All of block 0 holds data (24 chunks of 2 MiB). The scan
 * picks a chunk, then ticks, then saves it: it picks chunk 0, the tick writes
 * in chunk 4 (a fault), and the run from there takes chunks 4 to 23 next,
 * chunk 22 as the scan's twentieth; so a write to chunk 22 at the
 * twenty-first tick finds the page saved. (A run of 16 chunks would end at
 * chunk 19, and the walk would go on with chunks 1 to 3 and 20: the write
 * would fault.)
 */
#define RUN_FAULT_CHUNK 4
#define RUN_LATE_CHUNK 22
#define RUN_LATE_TICK 21

static void write_far_ahead(TickCtx *t)
{
    TestGuest *g = t->opaque;
    uint64_t chunk = SNAPSHOT_SCAN_CHUNK_PAGES * PAGE;

    if (t->ticks == 1) {
        g->rb[0].host[RUN_FAULT_CHUNK * chunk + PAGE] ^= 1;
    } else if (t->ticks == RUN_LATE_TICK) {
        g->rb[0].host[RUN_LATE_CHUNK * chunk + PAGE] ^= 1;
    }
}

static void test_scan_run_has_no_length_limit(void)
{
    if (!wp_available()) {
        return;
    }
    TestGuest *g = guest_new(false);
    StreamFile *f = stream_file_new_memory_output();
    TickCtx t = { .on_tick = write_far_ahead, .opaque = g };
    SnapshotResult res;

    g_assert_cmpuint(BLOCK0_SIZE / (SNAPSHOT_SCAN_CHUNK_PAGES * PAGE), ==, 24);
    write_all_main(g);
    run_snapshot_checked(g, f, 16 * MIB, &t, &res);
    g_assert_cmpuint(t.ticks, >=, RUN_LATE_TICK);
    /* The first write faults; the second finds its page saved and writable. */
    g_assert_cmpuint(res.stats.write_faults, ==, 1);
    g_assert_cmpuint(res.stats.pages_saved_ahead, >=,
                     (uint64_t)(RUN_LATE_CHUNK - RUN_FAULT_CHUNK) * SNAPSHOT_SCAN_CHUNK_PAGES);
    result_clear(&res);
    stream_file_free(f);
    guest_free(g);
}

/*
 * After a fault that sends it ahead, the scan runs at a fair share
 * (SCHED_BATCH) for a while instead of idle priority. Where the vCPUs can
 * take every CPU it never runs at idle priority at all (nor is lifted). The
 * scan thread checks its own policy from its ticks.
 */
typedef struct BoostCtx {
    TestGuest *g;
    unsigned vcpus;         /* for snapshot_engine_set_vcpus(); 0: not called */
    bool saw_batch;
    bool saw_idle_after;    /* idle priority at some tick after the fault */
} BoostCtx;

static void boost_set_vcpus(TickCtx *t)
{
    BoostCtx *b = t->opaque;

    if (b->vcpus) {
        snapshot_engine_set_vcpus(t->bs, b->vcpus);
    }
}

static void boost_tick(TickCtx *t)
{
    BoostCtx *b = t->opaque;
    int policy = sched_getscheduler(0);

    if (t->ticks == 1) {
        b->g->rb[0].host[RUN_FAULT_CHUNK * SNAPSHOT_SCAN_CHUNK_PAGES * PAGE + PAGE] ^= 1;
        return;
    }
    b->saw_batch |= policy == SCHED_BATCH;
    b->saw_idle_after |= policy == SCHED_IDLE;
}

static void run_boost_case(unsigned vcpus, BoostCtx *b)
{
    TestGuest *g = guest_new(false);
    StreamFile *f = stream_file_new_memory_output();
    TickCtx t = { .on_tick = boost_tick, .before_pause = boost_set_vcpus, .opaque = b };
    SnapshotResult res;

    *b = (BoostCtx){ .g = g, .vcpus = vcpus };
    write_all_main(g);
    run_snapshot_checked(g, f, 16 * MIB, &t, &res);
    g_assert_cmpuint(res.stats.write_faults, ==, 1);
    result_clear(&res);
    stream_file_free(f);
    guest_free(g);
}

static void test_scan_boosted_after_fault(void)
{
    BoostCtx b;

    if (!wp_available()) {
        return;
    }
    /* One vCPU beside this machine's CPUs (or unset): the fault lifts the scan. */
    run_boost_case(sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 1 : 0, &b);
    g_assert_true(b.saw_batch);
    /* vCPUs for every CPU: idle priority would starve; the scan keeps its own, unlifted. */
    g_assert_true(background_snapshot_vcpus_fill_cpus(1024));
    g_assert_false(background_snapshot_vcpus_fill_cpus(0));
    run_boost_case(1024, &b);
    g_assert_false(b.saw_batch);
    g_assert_false(b.saw_idle_after);
}

/* A page of the cold part, written just before the pause and right after it. */
#define HOT_PAGE_OFFSET (HOT_SIZE + 5 * PAGE)

static void write_before_pause(TickCtx *t)
{
    TestGuest *g = t->opaque;

    g->rb[0].host[HOT_PAGE_OFFSET] ^= 1;
}

static void write_again_after(TickCtx *t)
{
    TestGuest *g = t->opaque;

    if (t->ticks == 1) {
        g->rb[0].host[HOT_PAGE_OFFSET] ^= 2;
    }
}

/* After the scan's first chunk: a write in the 2 MiB that follow the hot page's. */
static void write_next_region(TickCtx *t)
{
    TestGuest *g = t->opaque;

    if (t->ticks == 2) {
        g->rb[0].host[(HOT_PAGE_OFFSET & ~(2 * MIB - 1)) + 2 * MIB + 9 * PAGE] ^= 4;
    }
}

/*
 * A write before the pause in the 2 MiB after the hot page's; after it (once
 * the scan has saved two chunks) one in the hot page's own 2 MiB: below the
 * range the pause saved.
 */
static void write_above_before_pause(TickCtx *t)
{
    TestGuest *g = t->opaque;

    g->rb[0].host[HOT_PAGE_OFFSET + 2 * MIB] ^= 1;
}

static void write_below_after(TickCtx *t)
{
    TestGuest *g = t->opaque;

    if (t->ticks == 3) {
        g->rb[0].host[HOT_PAGE_OFFSET + 3 * PAGE] ^= 2;
    }
}

/* Three 2 MiB regions in a row, written before the pause and again after it. */
#define HOT_REGIONS 3

static void write_regions(TestGuest *g, uint8_t bit)
{
    for (unsigned i = 0; i < HOT_REGIONS; i++) {
        g->rb[0].host[HOT_PAGE_OFFSET + i * 2 * MIB] ^= bit;
    }
}

static void write_regions_before_pause(TickCtx *t)
{
    write_regions(t->opaque, 1);
}

static void write_regions_again_after(TickCtx *t)
{
    if (t->ticks == 1) {
        write_regions(t->opaque, 2);
    }
}

/* What the guest does before and after the pause, and what the pause saves. */
typedef struct HotPauseCase {
    void (*before)(TickCtx *t);
    void (*after)(TickCtx *t);
    unsigned regions;           /* 2 MiB regions released before the pause */
    uint64_t pool_bytes;        /* up to an eighth of it is saved in the pause */
    const char *what;
} HotPauseCase;

static const HotPauseCase hot_written_again = {
    write_before_pause, write_again_after, 1, 16 * MIB,
    "snapshot of a guest writing one page before and after the pause",
};
static const HotPauseCase hot_then_next = {
    write_before_pause, write_next_region, 1, 16 * MIB,
    "snapshot of a guest going on past what it wrote before the pause",
};
/* The scan's second chunk is the one below the hot range (a stack grows down). */
static const HotPauseCase hot_then_below = {
    write_above_before_pause, write_below_after, 1, 16 * MIB,
    "snapshot of a guest writing below what it wrote before the pause",
};
/* Three pieces for the pause's two copying threads (snapshot-pause-copy.c). */
static const HotPauseCase hot_three_regions = {
    write_regions_before_pause, write_regions_again_after, HOT_REGIONS, 64 * MIB,
    "snapshot of a guest writing three 2 MiB regions before and after the pause",
};

static void test_hot_pause(gconstpointer data)
{
    const HotPauseCase *c = data;

    if (!wp_available()) {
        return;
    }
    TestGuest *g = guest_new(false);
    StreamFile *f = stream_file_new_memory_output();
    TickCtx t = { .before_pause = c->before, .on_tick = c->after, .opaque = g };
    SnapshotResult res;

    run_snapshot_checked(g, f, c->pool_bytes, &t, &res);
    print_stats(c->what, &res, g);
    /*
     * The 2 MiB written before the pause were saved in it and left writable,
     * and the scan's first chunk is the one after them, where a guest writing
     * in order goes next: neither write after the pause faults.
     */
    g_assert_cmpuint(t.ticks, >=, 2);
    g_assert_cmpuint(res.stats.pages_saved_in_pause, >, (c->regions - 1) * 2 * MIB / PAGE);
    g_assert_cmpuint(res.stats.pages_saved_in_pause, <=, c->regions * 2 * MIB / PAGE);
    g_assert_cmpuint(res.stats.write_faults, ==, 0);
    result_clear(&res);
    stream_file_free(f);
    guest_free(g);
}

/*
 * Between the early protect and the pause, a guest writes one 2 MiB region,
 * then another a while later: the settling waits while releases come, so
 * the pause knows both. The test's quiet time (50 ms) is far longer than the
 * gap (5 ms), so a loaded machine's delays in starting threads and serving
 * faults do not decide it; without the settling the second write comes too
 * late.
 */
#define SETTLE_GAP_US 5000
#define SETTLE_QUIET_NS (50 * 1000 * 1000ULL)
#define SETTLE_MAX_NS (5000 * 1000 * 1000ULL)

typedef struct SettleCtx {
    TestGuest *g;
    bool released[2];
    uint64_t settle_ns;
} SettleCtx;

static gpointer write_two_regions_main(gpointer opaque)
{
    TestGuest *g = opaque;

    g->rb[0].host[HOT_PAGE_OFFSET] ^= 1;
    g_usleep(SETTLE_GAP_US);
    g->rb[0].host[HOT_PAGE_OFFSET + 2 * MIB] ^= 1;
    return NULL;
}

static void settle_before_pause(TickCtx *t)
{
    SettleCtx *c = t->opaque;
    GThread *writer = g_thread_new("settle-writer", write_two_regions_main, c->g);
    uint64_t start = write_tracking_now_ns();

    snapshot_engine_prearm_settle_for(t->bs, SETTLE_QUIET_NS, SETTLE_MAX_NS);
    c->settle_ns = write_tracking_now_ns() - start;
    g_mutex_lock(&t->bs->arm_lock);
    for (guint i = 0; i < t->bs->prearm_released->len; i++) {
        const SnapshotRange *r = &g_array_index(t->bs->prearm_released, SnapshotRange, i);

        for (unsigned k = 0; k < 2; k++) {
            uint64_t off = HOT_PAGE_OFFSET + k * 2 * MIB;
            c->released[k] |= r->block_index == 0 && r->offset <= off && off < r->offset + r->len;
        }
    }
    g_mutex_unlock(&t->bs->arm_lock);
    g_thread_join(writer);
}

static void test_prearm_settle(void)
{
    if (!wp_available()) {
        return;
    }
    TestGuest *g = guest_new(false);
    StreamFile *f = stream_file_new_memory_output();
    SettleCtx c = { .g = g };
    TickCtx t = { .before_pause = settle_before_pause, .opaque = &c };
    SnapshotResult res;

    /* The pause copies up to an eighth of the pool: 8 MiB of 64. */
    run_snapshot_checked(g, f, 64 * MIB, &t, &res);
    g_assert_true(c.released[0]);
    g_assert_true(c.released[1]);
    /* It ended because the releases stopped, not at its limit. */
    g_assert_cmpuint(c.settle_ns, <, SETTLE_MAX_NS);
    g_assert_cmpuint(res.stats.pages_saved_in_pause, >, 2 * MIB / PAGE);
    result_clear(&res);
    stream_file_free(f);
    guest_free(g);
}

static void test_default_pool_size(void)
{
    g_assert_cmpuint(snapshot_default_pool_size(32 * MIB), ==, 16 * MIB);
    g_assert_cmpuint(snapshot_default_pool_size(512 * MIB), ==, 128 * MIB);
    g_assert_cmpuint(snapshot_default_pool_size(2048 * MIB), ==, 512 * MIB);
    g_assert_cmpuint(snapshot_default_pool_size(64 * 1024 * MIB), ==, 1024 * MIB);
}

static void test_stats_json(void)
{
    BackgroundSnapshotStats st = { .write_faults = 94, .fault_us_p99 = 12, .downtime_us = 800 };
    g_autoptr(JsonBuilder) b = json_builder_new();

    json_builder_begin_object(b);
    background_snapshot_stats_to_json(&st, b);
    json_builder_end_object(b);
    g_autoptr(JsonNode) root = json_builder_get_root(b);
    JsonObject *o = json_object_get_object_member(json_node_get_object(root),
                                                  "background-snapshot");
    g_assert_nonnull(o);
    g_assert_cmpint(json_object_get_int_member(o, "write-faults"), ==, 94);
    g_assert_cmpint(json_object_get_int_member(o, "fault-service-p99-us"), ==, 12);
    g_assert_cmpint(json_object_get_int_member(o, "downtime-us"), ==, 800);

    g_autoptr(GString) s = g_string_new(NULL);
    background_snapshot_stats_to_hmp(&st, s);
    g_assert_nonnull(strstr(s->str, "write faults: 94\n"));
}

/*
 * The whole background_snapshot_run() on a fake machine whose "vCPUs" are the
 * writer threads: the test accelerator's pause parks them and copies RAM (the
 * snapshot instant), and the image is loaded into a second machine.
 */
typedef struct UnitMachine {
    Machine m;
    TestGuest *g;
    uint8_t *at_pause[2];
    uint64_t device_value;      /* a "device register": saved, loaded, compared */
    unsigned pauses;
} UnitMachine;

static void unit_pause(Machine *m)
{
    UnitMachine *um = (UnitMachine *)m;

    guest_pause(um->g);
    um->pauses++;
    um->device_value = __atomic_load_n(&um->g->steps, __ATOMIC_RELAXED);
    uint64_t touched[2] = { HOT_SIZE + COLD_SIZE, BLOCK1_SIZE / 2 };
    for (int i = 0; i < 2; i++) {
        g_free(um->at_pause[i]);
        um->at_pause[i] = g_malloc0(um->g->rb[i].size);
        memcpy(um->at_pause[i], um->g->rb[i].host, touched[i]);
    }
}

static void unit_resume(Machine *m)
{
    guest_resume(((UnitMachine *)m)->g);
}

static const AccelOps unit_accel_ops = {
    .name = "unit",
    .pause_vcpus = unit_pause,
    .resume_vcpus = unit_resume,
};

static bool device_save(void *opaque, GByteArray *buf, GError **errp)
{
    vmstate_put_u64(buf, ((UnitMachine *)opaque)->device_value);
    return true;
}

static bool device_load(void *opaque, const uint8_t *data, size_t len, uint32_t version,
                        GError **errp)
{
    VMStateReader r;

    vmstate_reader_init(&r, data, len);
    ((UnitMachine *)opaque)->device_value = vmstate_get_u64(&r);
    return vmstate_reader_finish(&r, "unit device", errp);
}

static UnitMachine *unit_machine_new(TestGuest *g)
{
    UnitMachine *um = g_new0(UnitMachine, 1);
    Machine *m = &um->m;

    um->g = g;
    m->ram_blocks = g_ptr_array_ref(g->blocks);
    m->ram_size = BLOCK0_SIZE + BLOCK1_SIZE;
    m->smp = NR_WRITERS;
    m->accel = &unit_accel_ops;
    m->vmstate_handlers = g_array_new(false, true, sizeof(VMStateHandler));
    g_mutex_init(&m->runstate_lock);
    g_mutex_init(&m->transition_lock);
    m->runstate = RUN_STATE_RUNNING;
    m->vcpus_started = true;
    vmstate_register(m, &(VMStateHandler){ .name = "unit-device", .version = 1,
                                           .save = device_save, .load = device_load,
                                           .opaque = um });
    m->migration = migration_new(m);
    return um;
}

static void unit_machine_free(UnitMachine *um)
{
    migration_free(um->m.migration);
    g_array_unref(um->m.vmstate_handlers);
    g_ptr_array_unref(um->m.ram_blocks);
    g_free(um->at_pause[0]);
    g_free(um->at_pause[1]);
    g_free(um);
}

static void test_run_and_load(void)
{
    g_autoptr(GError) err = NULL;

    if (!wp_available()) {
        return;
    }
    TestGuest *g = guest_new(true);
    UnitMachine *src = unit_machine_new(g);
    MigrationState *s = src->m.migration;
    StreamFile *f = stream_file_new_memory_output();

    g_usleep(20000);
    s->vm_was_running = true;
    g_assert_true(background_snapshot_run(s, f, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(src->pauses, ==, 1);
    g_assert_cmpint(runstate_get(&src->m), ==, RUN_STATE_RUNNING);
    g_assert_true(s->snapshot_ran);
    g_assert_cmpuint(s->snapshot.downtime_us, >, 0);
    g_assert_cmpuint(migration_stat_get(&s->ram.remaining), ==, 0);
    g_assert_cmpuint(migration_stat_get(&s->ram.normal) + migration_stat_get(&s->ram.duplicate),
                     ==, (BLOCK0_SIZE + BLOCK1_SIZE) / PAGE);

    /* Load into a second machine with its own RAM; it must hold the pause instant. */
    TestGuest *g2 = guest_new(false);
    UnitMachine *dst = unit_machine_new(g2);
    GByteArray *image = stream_file_memory_output(f);
    StreamFile *in = stream_file_new_memory_input(image->data, image->len);
    SavevmLoadInfo info;
    dst->m.runstate = RUN_STATE_INMIGRATE;
    g_assert_true(savevm_load_full(in, &dst->m, &info, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(info.stream_flags & SAVEVM_STREAM_BACKGROUND_SNAPSHOT, !=, 0);
    g_assert_cmpuint(dst->device_value, ==, src->device_value);
    for (int i = 0; i < 2; i++) {
        g_assert_true(memcmp(g2->rb[i].host, src->at_pause[i], g2->rb[i].size) == 0);
    }
    g_test_message("image %u bytes for %" G_GUINT64_FORMAT " data pages",
                   image->len, info.data_pages);
    /* Fixed overhead aside, the image is the non-zero RAM: headers cost under 1%. */
    g_assert_cmpuint(image->len, <=, info.data_pages * PAGE * 101 / 100 + 64 * 1024);

    stream_file_free(in);
    stream_file_free(f);
    unit_machine_free(dst);
    guest_free(g2);
    unit_machine_free(src);
    guest_free(g);
}

/* Capability check on plain anonymous RAM passes; it names the block when it fails. */
static void test_check_capability(void)
{
    g_autoptr(GError) err = NULL;

    if (!wp_available()) {
        return;
    }
    TestGuest *g = guest_new(false);
    UnitMachine *um = unit_machine_new(g);
    g_assert_true(background_snapshot_check_capability(&um->m, &err));
    g_assert_no_error(err);

    /* A file on ext4 (the build tree's file system here) cannot be write-protected. */
    g_autofree char *dir = g_dir_make_tmp("frostvm-bs-XXXXXX", NULL);
    g_autoptr(MemoryBackendOptions) opts = memory_backend_options_new(MEMORY_BACKEND_FILE);
    opts->size = 4 * MIB;
    opts->share = true;
    opts->mem_path = g_strdup(dir);
    g_autoptr(MemoryBackend) be = memory_backend_new(opts, &err);
    g_assert_no_error(err);
    if (be->backing != MEMORY_BACKING_OTHER_FILE) {
        g_test_message("temporary directory is on %s, not a disk file system: "
                       "refusal not checked", be->fs_type);
    } else {
        RamBlock filerb = { .name = (char *)"pc.ram", .backend = be, .host = be->host,
                            .size = be->size, .page_size = be->page_size };
        g_ptr_array_index(um->m.ram_blocks, 0) = &filerb;
        g_assert_false(background_snapshot_check_capability(&um->m, &err));
        g_test_message("%s", err->message);
        g_assert_nonnull(strstr(err->message, "RAM block 'pc.ram'"));
        g_assert_nonnull(strstr(err->message, "memory-backend-file"));
        g_assert_nonnull(strstr(err->message, be->fs_type));
        g_ptr_array_index(um->m.ram_blocks, 0) = &g->rb[0];
    }
    g_rmdir(dir);
    unit_machine_free(um);
    guest_free(g);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/background-snapshot/engine/consistent-image", test_consistent_image);
    g_test_add_func("/background-snapshot/engine/small-pool", test_small_pool);
    g_test_add_data_func("/background-snapshot/engine/memfd", GINT_TO_POINTER(0), test_backed);
    g_test_add_data_func("/background-snapshot/engine/hugetlbfs", GINT_TO_POINTER(1),
                         test_backed);
    g_test_add_func("/background-snapshot/engine/cancel-then-again", test_cancel_then_again);
    g_test_add_func("/background-snapshot/engine/sink-fails", test_sink_fails);
    g_test_add_func("/background-snapshot/engine/idle-guest", test_idle_guest);
    g_test_add_func("/background-snapshot/engine/pool-populated-by-data",
                    test_pool_populated_by_data);
    g_test_add_func("/background-snapshot/engine/scan-runs-ahead", test_scan_runs_ahead);
    g_test_add_func("/background-snapshot/engine/scan-run-has-no-length-limit",
                    test_scan_run_has_no_length_limit);
    g_test_add_func("/background-snapshot/engine/scan-boosted-after-fault",
                    test_scan_boosted_after_fault);
    g_test_add_data_func("/background-snapshot/engine/hot-saved-in-pause", &hot_written_again,
                         test_hot_pause);
    g_test_add_data_func("/background-snapshot/engine/scan-starts-after-hot", &hot_then_next,
                         test_hot_pause);
    g_test_add_data_func("/background-snapshot/engine/scan-saves-below-hot", &hot_then_below,
                         test_hot_pause);
    g_test_add_func("/background-snapshot/engine/prearm-settles", test_prearm_settle);
    g_test_add_data_func("/background-snapshot/engine/hot-pieces-in-pause", &hot_three_regions,
                         test_hot_pause);
    g_test_add_func("/background-snapshot/run/load-equals-pause", test_run_and_load);
    g_test_add_func("/background-snapshot/run/check-capability", test_check_capability);
    g_test_add_func("/background-snapshot/default-pool-size", test_default_pool_size);
    g_test_add_func("/background-snapshot/stats-json", test_stats_json);
    return g_test_run();
}
