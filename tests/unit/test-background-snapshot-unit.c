/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Tests of the background snapshot engine without KVM: host threads write
 * guest RAM in a known pattern while a snapshot runs, and the image must equal
 * RAM at the pause instant, byte for byte, each page saved once.
 */
#include <string.h>
#include <sys/mman.h>
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
#include "util/userfaultfd.h"

#define MIB (1024 * 1024ULL)
#define PAGE 4096ULL
#define NR_WRITERS 2

/*
 * Two RAM blocks. In the first, the writers sweep the hot part; the cold part
 * is written once at start; the rest is never touched (unpopulated).
 */
#define BLOCK0_SIZE (48 * MIB)
#define BLOCK1_SIZE (16 * MIB)
#define HOT_SIZE (16 * MIB)
#define COLD_SIZE (8 * MIB)

typedef struct TestGuest {
    RamBlock rb[2];
    MemoryBackend *backend[2];  /* or NULL: private anonymous mappings */
    GPtrArray *blocks;
    GThread *writers[NR_WRITERS];
    GMutex lock;
    GCond cond;
    bool pause_requested;       /* atomic read by writers */
    unsigned parked;
    unsigned nr_writers;
    bool quit;
    bool all_touched;           /* every page was written at least once */
    uint64_t steps;             /* atomic: page writes done */
} TestGuest;

typedef struct WriterArg {
    TestGuest *g;
    unsigned index;
} WriterArg;

static WriterArg writer_args[NR_WRITERS];

/* Park here while a pause is requested; false when told to quit. */
static bool writer_checkpoint(TestGuest *g)
{
    if (!__atomic_load_n(&g->pause_requested, __ATOMIC_ACQUIRE)) {
        return true;
    }
    g_mutex_lock(&g->lock);
    g->parked++;
    g_cond_broadcast(&g->cond);
    while (g->pause_requested && !g->quit) {
        g_cond_wait(&g->cond, &g->lock);
    }
    g->parked--;
    bool go_on = !g->quit;
    g_mutex_unlock(&g->lock);
    return go_on;
}

/*
 * Like the test payload: each writer owns every NR_WRITERS-th page of the hot
 * part and stamps a running counter into it, at a moving position, so every
 * pass changes every page it owns.
 */
static gpointer writer_main(gpointer opaque)
{
    WriterArg *a = opaque;
    TestGuest *g = a->g;
    uint8_t *hot = g->rb[0].host;
    uint64_t counter = 1;

    for (;;) {
        for (uint64_t p = a->index; p < HOT_SIZE / PAGE; p += NR_WRITERS) {
            if (!writer_checkpoint(g)) {
                return NULL;
            }
            uint64_t *word = (uint64_t *)(hot + p * PAGE) + counter % (PAGE / 8);
            *word = counter++;
            __atomic_fetch_add(&g->steps, 1, __ATOMIC_RELAXED);
        }
        if (__atomic_load_n(&g->quit, __ATOMIC_ACQUIRE)) {
            return NULL;
        }
    }
}

static void guest_pause(TestGuest *g)
{
    g_mutex_lock(&g->lock);
    __atomic_store_n(&g->pause_requested, true, __ATOMIC_RELEASE);
    while (g->parked < g->nr_writers) {
        g_cond_wait(&g->cond, &g->lock);
    }
    g_mutex_unlock(&g->lock);
}

static void guest_resume(TestGuest *g)
{
    g_mutex_lock(&g->lock);
    __atomic_store_n(&g->pause_requested, false, __ATOMIC_RELEASE);
    g_cond_broadcast(&g->cond);
    g_mutex_unlock(&g->lock);
}

static uint8_t *map_ram(uint64_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert(p != MAP_FAILED);
    return p;
}

static TestGuest *guest_new_backed(bool start_writers, const MemoryBackendOptions *opts)
{
    TestGuest *g = g_new0(TestGuest, 1);
    static char *names[2] = { "pc.ram", "extra.ram" };
    uint64_t sizes[2] = { BLOCK0_SIZE, BLOCK1_SIZE };

    g->blocks = g_ptr_array_new();
    for (int i = 0; i < 2; i++) {
        g->rb[i] = (RamBlock){ .name = names[i], .size = sizes[i], .page_size = PAGE };
        if (opts) {
            g_autoptr(GError) err = NULL;
            g_autoptr(MemoryBackendOptions) o = memory_backend_options_new(opts->kind);
            o->size = sizes[i];
            o->share = opts->share;
            o->hugetlb = opts->hugetlb;
            g->backend[i] = memory_backend_new(o, &err);
            g_assert_no_error(err);
            g->rb[i].backend = g->backend[i];
            g->rb[i].host = g->backend[i]->host;
            g->rb[i].page_size = g->backend[i]->page_size;
        } else {
            g->rb[i].host = map_ram(sizes[i]);
        }
        g_ptr_array_add(g->blocks, &g->rb[i]);
    }
    /* Cold data, and a recognisable pattern in the second block. */
    for (uint64_t off = 0; off < COLD_SIZE; off += 8) {
        *(uint64_t *)(g->rb[0].host + HOT_SIZE + off) = off * 0x9e3779b97f4a7c15ULL;
    }
    memset(g->rb[1].host, 0xc3, BLOCK1_SIZE / 2);
    g_mutex_init(&g->lock);
    g_cond_init(&g->cond);
    g->nr_writers = start_writers ? NR_WRITERS : 0;
    for (unsigned i = 0; i < g->nr_writers; i++) {
        writer_args[i] = (WriterArg){ .g = g, .index = i };
        g->writers[i] = g_thread_new("guest-writer", writer_main, &writer_args[i]);
    }
    return g;
}

static TestGuest *guest_new(bool start_writers)
{
    return guest_new_backed(start_writers, NULL);
}

static void guest_free(TestGuest *g)
{
    g_mutex_lock(&g->lock);
    __atomic_store_n(&g->quit, true, __ATOMIC_RELEASE);
    g_cond_broadcast(&g->cond);
    g_mutex_unlock(&g->lock);
    for (unsigned i = 0; i < NR_WRITERS; i++) {
        if (g->writers[i]) {
            g_thread_join(g->writers[i]);
        }
    }
    for (int i = 0; i < 2; i++) {
        if (g->backend[i]) {
            memory_backend_free(g->backend[i]);
        } else {
            munmap(g->rb[i].host, g->rb[i].size);
        }
    }
    g_ptr_array_unref(g->blocks);
    g_free(g);
}

static bool wp_available(void)
{
    g_autoptr(GPtrArray) none = g_ptr_array_new();
    g_autoptr(GError) err = NULL;

    if (!write_tracking_check(none, NULL, &err)) {
        g_test_skip(err->message);
        return false;
    }
    return true;
}

/* What one snapshot produced. */
typedef struct SnapshotResult {
    bool ok;
    GError *error;
    BackgroundSnapshotStats stats;
    uint64_t zero_pages;
    uint64_t data_pages;
    uint8_t *at_pause[2];       /* RAM copied inside the pause */
} SnapshotResult;

typedef struct TickCtx {
    unsigned ticks;
    unsigned cancel_after;      /* 0: never */
} TickCtx;

static bool tick(void *opaque)
{
    TickCtx *t = opaque;
    t->ticks++;
    return !t->cancel_after || t->ticks < t->cancel_after;
}

/* Run the engine as background_snapshot_run() does, with the test guest's pause. */
static void run_snapshot(TestGuest *g, StreamFile *f, uint64_t pool_bytes, TickCtx *t,
                         SnapshotResult *res)
{
    memset(res, 0, sizeof(*res));
    BackgroundSnapshot *bs = snapshot_engine_new(g->blocks, pool_bytes, f, NULL, &res->error);
    g_assert_no_error(res->error);

    /* Protect while the writers run, and let them write for a while before the pause. */
    g_assert_true(snapshot_engine_prearm(bs, &res->error));
    g_usleep(5000);

    uint64_t t0 = write_tracking_now_ns();
    guest_pause(g);
    /*
     * Copy what the guest wrote; the rest was never touched and reading it
     * would populate it (then the snapshot could not skip it).
     */
    uint64_t touched[2] = { HOT_SIZE + COLD_SIZE, BLOCK1_SIZE / 2 };
    if (g->all_touched) {
        touched[0] = BLOCK0_SIZE;
        touched[1] = BLOCK1_SIZE;
    }
    for (int i = 0; i < 2; i++) {
        res->at_pause[i] = g_malloc0(g->rb[i].size);
        memcpy(res->at_pause[i], g->rb[i].host, touched[i]);
    }
    snapshot_engine_arm(bs, &res->error);
    g_assert_no_error(res->error);
    guest_resume(g);
    uint64_t downtime = write_tracking_now_ns() - t0;

    res->ok = snapshot_engine_save_ram(bs, tick, t, &res->error) &&
              snapshot_engine_finish(bs, &res->error);
    if (!res->ok) {
        snapshot_engine_abort(bs);
    }
    snapshot_engine_get_stats(bs, &res->stats);
    res->stats.downtime_us = downtime / 1000;
    res->zero_pages = bs->writer.zero_pages;
    res->data_pages = bs->writer.data_pages;
    snapshot_engine_free(bs);
}

static void result_clear(SnapshotResult *res)
{
    g_clear_error(&res->error);
    g_free(res->at_pause[0]);
    g_free(res->at_pause[1]);
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return GUINT32_FROM_LE(v);
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return GUINT64_FROM_LE(v);
}

/*
 * Read the RAM records back (the engine writes nothing else) and compare with
 * RAM at the pause: every page present exactly once, every byte equal.
 */
static void check_image(TestGuest *g, const GByteArray *out, const SnapshotResult *res)
{
    uint8_t *image[2];
    unsigned long *seen[2];
    size_t pos = 0;
    uint64_t zero = 0, data = 0;

    for (int i = 0; i < 2; i++) {
        image[i] = g_malloc0(g->rb[i].size);
        seen[i] = bitmap_new(g->rb[i].size / PAGE);
    }
    while (pos < out->len) {
        const uint8_t *h = out->data + pos;
        g_assert_cmpuint(out->len - pos, >=, SAVEVM_RAM_RECORD_HEADER_SIZE);
        g_assert_cmpuint(get_u32(h), ==, SAVEVM_REC_RAM);
        uint32_t flags = get_u32(h + 4);
        uint64_t len = get_u64(h + 8);
        uint32_t block = get_u32(h + 16);
        uint32_t npages = get_u32(h + 20);
        uint64_t offset = get_u64(h + 24);

        g_assert_cmpuint(block, <, 2);
        g_assert_cmpuint(offset + npages * PAGE, <=, g->rb[block].size);
        for (uint64_t p = offset / PAGE; p < offset / PAGE + npages; p++) {
            /* Each page once: the claim bitmap's promise. */
            g_assert_false(bitmap_test_bit(seen[block], p));
            bitmap_set_bit(seen[block], p);
        }
        if (flags == SAVEVM_RAM_DATA) {
            g_assert_cmpuint(len, ==, 16 + npages * PAGE);
            memcpy(image[block] + offset, h + SAVEVM_RAM_RECORD_HEADER_SIZE, npages * PAGE);
            data += npages;
        } else {
            g_assert_cmpuint(flags, ==, SAVEVM_RAM_ZERO);
            g_assert_cmpuint(len, ==, 16);
            zero += npages;
        }
        pos += SAVEVM_RECORD_HEADER_SIZE + len;
    }
    for (int i = 0; i < 2; i++) {
        uint64_t pages = g->rb[i].size / PAGE;
        g_assert_cmpuint(bitmap_count_set(seen[i], pages), ==, pages);
        for (uint64_t p = 0; p < pages; p++) {
            if (memcmp(image[i] + p * PAGE, res->at_pause[i] + p * PAGE, PAGE)) {
                g_error("block %d page %" G_GUINT64_FORMAT " differs from RAM at the pause", i, p);
            }
        }
        g_free(image[i]);
        bitmap_free(seen[i]);
    }
    g_assert_cmpuint(zero, ==, res->zero_pages);
    g_assert_cmpuint(data, ==, res->data_pages);
    /* Zero pages cost a flag: only the hot, cold and patterned pages carry data. */
    if (!g->all_touched) {
        g_assert_cmpuint(data, <=, (HOT_SIZE + COLD_SIZE + BLOCK1_SIZE / 2) / PAGE);
    }
}

static void print_stats(const char *what, const SnapshotResult *res, TestGuest *g)
{
    g_autoptr(GString) s = g_string_new(NULL);
    background_snapshot_stats_to_hmp(&res->stats, s);
    g_test_message("%s (guest page writes so far %" G_GUINT64_FORMAT "):\n%s", what,
                   __atomic_load_n(&g->steps, __ATOMIC_RELAXED), s->str);
}

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

    g_assert_cmpuint(res.stats.write_faults, >, 0);
    g_assert_cmpuint(res.stats.pages_out_of_order, >, 0);
    g_assert_cmpuint(res.stats.pool_size, ==, 8 * MIB);
    g_assert_cmpuint(res.stats.pool_high_water, >, 0);
    g_assert_cmpuint(res.stats.fault_us_max, >=, res.stats.fault_us_p50);

    uint64_t kernel = 0;
    g_assert_cmpint(uffd_query_features(&kernel, NULL), ==, 0);
    if (kernel & UFFD_FEATURE_WP_UNPOPULATED) {
        /* The untouched tail of block 0 and of block 1 is skipped, not read. */
        uint64_t untouched = (BLOCK0_SIZE - HOT_SIZE - COLD_SIZE + BLOCK1_SIZE / 2) / PAGE;
        g_assert_cmpuint(res.stats.pages_unpopulated, ==, untouched);
    }
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
    run_snapshot(g, f, 8 * MIB, &t, &res);
    g_assert_no_error(res.error);
    g_assert_true(stream_file_flush(f));
    check_image(g, stream_file_memory_output(f), &res);
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
    run_snapshot(g, f, 64 * PAGE, &t, &res);
    g_assert_no_error(res.error);
    g_assert_true(stream_file_flush(f));
    check_image(g, stream_file_memory_output(f), &res);
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
    run_snapshot(g, f, 8 * MIB, &t, &res);
    g_assert_no_error(res.error);
    g_assert_true(stream_file_flush(f));
    check_image(g, stream_file_memory_output(f), &res);
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

/* No writers at all: nothing faults, everything comes from the scan. */
static void test_idle_guest(void)
{
    if (!wp_available()) {
        return;
    }
    TestGuest *g = guest_new(false);
    StreamFile *f = stream_file_new_memory_output();
    TickCtx t = { 0 };
    SnapshotResult res;

    run_snapshot(g, f, 0, &t, &res);
    g_assert_no_error(res.error);
    g_assert_true(stream_file_flush(f));
    check_image(g, stream_file_memory_output(f), &res);
    g_assert_cmpuint(res.stats.write_faults, ==, 0);
    g_assert_cmpuint(res.stats.pages_out_of_order, ==, 0);
    /* Auto pool: a quarter of 64 MiB is below the 16 MiB floor. */
    g_assert_cmpuint(res.stats.pool_size, ==, 16 * MIB);
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
    g_test_add_func("/background-snapshot/run/load-equals-pause", test_run_and_load);
    g_test_add_func("/background-snapshot/run/check-capability", test_check_capability);
    g_test_add_func("/background-snapshot/default-pool-size", test_default_pool_size);
    g_test_add_func("/background-snapshot/stats-json", test_stats_json);
    return g_test_run();
}
