/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests of the migration state machine and precopy on fake machines whose "vCPU" is a host thread writing RAM. */
#include "migration/migration.h"

#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <glib/gstdio.h>

#include "accel/accel.h"
#include "migration/channel.h"
#include "migration/ram.h"
#include "migration/savevm.h"
#include "migration/stream-file.h"
#include "migration/vmstate.h"
#include "system/machine.h"
#include "system/memory-backend.h"
#include "system/runstate.h"
#include "util/bitmap.h"
#include "util/pagemap.h"
#include "util/error.h"

#define MiB (1024ull * 1024)
#define HOT_PAGES 256u           /* the writer dirties the first 1 MiB over and over */

/* The fake guest: one thread that writes RAM while "running". */
typedef struct FakeGuest {
    Machine *m;
    GThread *thread;
    GMutex lock;
    GCond cond;
    bool run;                 /* resumed */
    bool parked;              /* acknowledged a pause */
    bool quit;
    bool logging;
    unsigned long *dirty;     /* pages written since the last sync (atomic bits) */
    uint64_t counter;         /* a register-like value saved as device state */
    uint64_t writes;
} FakeGuest;

static FakeGuest *guest_of(Machine *m)
{
    return m->accel_state;
}

static gpointer fake_guest_thread(gpointer opaque)
{
    FakeGuest *g = opaque;
    RamBlock *b = g_ptr_array_index(g->m->ram_blocks, 0);
    uint32_t x = 12345;

    g_mutex_lock(&g->lock);
    for (;;) {
        while (!g->run && !g->quit) {
            g->parked = true;
            g_cond_broadcast(&g->cond);
            g_cond_wait(&g->cond, &g->lock);
        }
        if (g->quit) {
            break;
        }
        g->parked = false;
        g_mutex_unlock(&g->lock);
        for (int i = 0; i < 64; i++) {
            uint64_t page, *w;

            x = x * 1103515245u + 12345u;
            page = (x >> 8) % HOT_PAGES;
            w = (uint64_t *)(b->host + page * MACHINE_PAGE_SIZE);
            g->counter++;
            for (int k = 0; k < 8; k++) {
                __atomic_store_n(&w[k * 64], g->counter, __ATOMIC_RELAXED);
            }
            /* Marked after the write, as the hardware log does: never lost. */
            if (__atomic_load_n(&g->logging, __ATOMIC_ACQUIRE)) {
                bitmap_set_range_atomic(g->dirty, page, 1);
            }
            __atomic_fetch_add(&g->writes, 1, __ATOMIC_RELAXED);
        }
        g_usleep(50);
        g_mutex_lock(&g->lock);
    }
    g_mutex_unlock(&g->lock);
    return NULL;
}

static bool fake_start_vcpus(Machine *m, GError **errp)
{
    FakeGuest *g = guest_of(m);

    g->thread = g_thread_new("fake-vcpu", fake_guest_thread, g);
    return true;
}

static void fake_pause_vcpus(Machine *m)
{
    FakeGuest *g = guest_of(m);

    g_mutex_lock(&g->lock);
    g->run = false;
    g_cond_broadcast(&g->cond);
    while (!g->parked) {
        g_cond_wait(&g->cond, &g->lock);
    }
    g_mutex_unlock(&g->lock);
}

static void fake_resume_vcpus(Machine *m)
{
    FakeGuest *g = guest_of(m);

    g_mutex_lock(&g->lock);
    g->run = true;
    g->parked = false;
    g_cond_broadcast(&g->cond);
    g_mutex_unlock(&g->lock);
}

static bool fake_dirty_log_start(Machine *m, GError **errp)
{
    FakeGuest *g = guest_of(m);

    bitmap_clear_range(g->dirty, 0, m->ram_size / MACHINE_PAGE_SIZE);
    __atomic_store_n(&g->logging, true, __ATOMIC_RELEASE);
    return true;
}

static bool fake_dirty_log_sync(Machine *m, RamBlock *block, unsigned long *bitmap,
                                GError **errp)
{
    FakeGuest *g = guest_of(m);
    size_t words = BITMAP_WORDS(block->size / MACHINE_PAGE_SIZE);

    for (size_t i = 0; i < words; i++) {
        bitmap[i] |= __atomic_exchange_n(&g->dirty[i], 0, __ATOMIC_ACQ_REL);
    }
    return true;
}

static void fake_dirty_log_stop(Machine *m)
{
    __atomic_store_n(&guest_of(m)->logging, false, __ATOMIC_RELEASE);
}

static const AccelOps fake_accel = {
    .name = "test",
    .start_vcpus = fake_start_vcpus,
    .pause_vcpus = fake_pause_vcpus,
    .resume_vcpus = fake_resume_vcpus,
    .dirty_log_start = fake_dirty_log_start,
    .dirty_log_sync = fake_dirty_log_sync,
    .dirty_log_stop = fake_dirty_log_stop,
};

static bool counter_save(void *opaque, GByteArray *buf, GError **errp)
{
    vmstate_put_u64(buf, ((FakeGuest *)opaque)->counter);
    return true;
}

static bool counter_load(void *opaque, const uint8_t *data, size_t len, uint32_t version,
                         GError **errp)
{
    VMStateReader r;

    vmstate_reader_init(&r, data, len);
    ((FakeGuest *)opaque)->counter = vmstate_get_u64(&r);
    return vmstate_reader_finish(&r, "fake-cpu", errp);
}

static Machine *fake_machine_build(uint64_t ram_size, bool running, MemoryBackend *backend);

static Machine *fake_machine_new(uint64_t ram_size, bool running)
{
    return fake_machine_build(ram_size, running, NULL);
}

/* Guest RAM from @backend (owned by the machine from now on) instead of anonymous memory. */
static Machine *fake_machine_build(uint64_t ram_size, bool running, MemoryBackend *backend)
{
    Machine *m = g_new0(Machine, 1);
    RamBlock *b = g_new0(RamBlock, 1);
    FakeGuest *g = g_new0(FakeGuest, 1);
    VMStateHandler h = { .name = "fake-cpu", .instance = 0, .version = 1,
                         .save = counter_save, .load = counter_load, .opaque = g };
    g_autoptr(GError) err = NULL;

    m->config = g_new0(MachineConfig, 1);
    b->name = g_strdup("pc.ram");
    b->size = ram_size;
    b->page_size = MACHINE_PAGE_SIZE;
    if (backend) {
        b->backend = backend;
        b->host = backend->host;
    } else {
        b->host = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
        g_assert(b->host != MAP_FAILED);
    }
    m->ram_blocks = g_ptr_array_new();
    g_ptr_array_add(m->ram_blocks, b);
    m->ram_size = ram_size;
    m->smp = 1;
    m->nr_ram_ranges = 1;
    m->ram_ranges[0] = (GuestRamRange){ .gpa = 0, .size = ram_size, .block = b };
    m->accel = &fake_accel;
    m->accel_state = g;
    g_mutex_init(&m->runstate_lock);
    g_mutex_init(&m->transition_lock);
    m->runstate = RUN_STATE_PRELAUNCH;
    cpu_throttle_init(&m->throttle, m);
    g->m = m;
    g->dirty = bitmap_new(ram_size / MACHINE_PAGE_SIZE);
    g_mutex_init(&g->lock);
    g_cond_init(&g->cond);
    vmstate_register(m, &h);
    m->migration = migration_new(m);
    /* Some content beyond the hot set, and a zero tail. */
    for (uint64_t p = HOT_PAGES; p < ram_size / MACHINE_PAGE_SIZE / 2; p++) {
        memset(b->host + p * MACHINE_PAGE_SIZE, (int)(p & 0xff) | 1, 64);
    }
    if (running) {
        g_assert_true(runstate_vm_start(m, &err));
        g_assert_no_error(err);
    }
    return m;
}

static void fake_machine_free(Machine *m)
{
    FakeGuest *g = guest_of(m);
    RamBlock *b = g_ptr_array_index(m->ram_blocks, 0);

    migration_free(m->migration);
    if (g->thread) {
        g_mutex_lock(&g->lock);
        g->quit = true;
        g_cond_broadcast(&g->cond);
        g_mutex_unlock(&g->lock);
        g_thread_join(g->thread);
    }
    bitmap_free(g->dirty);
    g_free(g);
    if (b->backend) {
        memory_backend_free(b->backend);
    } else {
        munmap(b->host, b->size);
    }
    g_free(b->name);
    g_free(b);
    g_ptr_array_unref(m->ram_blocks);
    g_array_unref(m->vmstate_handlers);
    cpu_throttle_destroy(&m->throttle);
    g_free(m->shutdown_reason);
    g_free(m->config);
    g_free(m);
}

static uint64_t guest_writes(Machine *m)
{
    return __atomic_load_n(&guest_of(m)->writes, __ATOMIC_RELAXED);
}

/* Wait until the status leaves setup/active/device/cancelling (10 s at most). */
static MigrationStatus wait_done(MigrationState *s)
{
    for (int i = 0; i < 1000 && migration_is_active(s); i++) {
        g_usleep(10 * 1000);
    }
    migration_wait(s);
    return migration_get_status(s);
}

static void wait_status(MigrationState *s, MigrationStatus want)
{
    for (int i = 0; i < 1000 && migration_get_status(s) != want; i++) {
        g_usleep(5 * 1000);
    }
    g_assert_cmpstr(migration_status_name(migration_get_status(s)), ==,
                    migration_status_name(want));
}

static char *tmp_image(char **dir)
{
    *dir = g_dir_make_tmp("test-migration-XXXXXX", NULL);
    return g_build_filename(*dir, "vm_state", NULL);
}

/* Load @path into a fresh machine and compare its RAM with @src's (stopped) RAM. */
static void check_image_matches(const char *path, Machine *src)
{
    Machine *dst = fake_machine_new(src->ram_size, false);
    RamBlock *sb = g_ptr_array_index(src->ram_blocks, 0);
    RamBlock *db = g_ptr_array_index(dst->ram_blocks, 0);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autoptr(GError) err = NULL;
    MigrationChannel *ch = channel_open_incoming(uri, &err);
    StreamFile *f;

    g_assert_no_error(err);
    memset(db->host, 0, db->size);
    f = stream_file_new_input(ch);
    g_assert_true(savevm_load(f, dst, &err));
    g_assert_no_error(err);
    stream_file_free(f);
    channel_close(ch, true, NULL);
    g_assert_cmpint(memcmp(sb->host, db->host, sb->size), ==, 0);
    g_assert_cmpuint(guest_of(dst)->counter, ==, guest_of(src)->counter);
    fake_machine_free(dst);
}

static void test_precopy_file_live(void)
{
    g_autofree char *dir = NULL;
    g_autofree char *path = tmp_image(&dir);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    Machine *m = fake_machine_new(16 * MiB, true);
    MigrationState *s = m->migration;
    g_autoptr(GError) err = NULL;
    uint64_t bw = 32 * MiB;

    /* Throttled, so the guest dirties pages during the passes. */
    g_assert_true(migration_set_parameters(s, &(MigrationParameterUpdate){ .max_bandwidth = &bw }, &err));
    g_usleep(20 * 1000);
    g_assert_true(migration_start(s, uri, &err));
    g_assert_no_error(err);
    g_assert_cmpint(wait_done(s), ==, MIGRATION_STATUS_COMPLETED);
    g_assert_cmpint(runstate_get(m), ==, RUN_STATE_POSTMIGRATE);
    g_assert_cmpuint(migration_stat_get(&s->ram.dirty_sync_count), >=, 2);
    g_assert_cmpuint(migration_stat_get(&s->ram.duplicate), >, 0);
    g_assert_cmpuint(migration_stat_get(&s->ram.normal), >=, 16 * MiB / 2 / 4096);
    g_assert_cmpuint(migration_stat_get(&s->ram.remaining), ==, 0);
    g_assert_true(g_file_test(path, G_FILE_TEST_EXISTS));
    /* The guest is stopped: the image must equal RAM now, hot pages included. */
    check_image_matches(path, m);
    fake_machine_free(m);
    g_unlink(path);
    g_rmdir(dir);
}

/*
 * pause-before-switchover: the migration waits in pre-switchover with the
 * guest stopped until migrate-continue; a wrong state is refused; a cancel
 * there resumes the guest and leaves no image.
 */
static void test_pause_before_switchover(void)
{
    g_autofree char *dir = NULL;
    g_autofree char *path = tmp_image(&dir);
    g_autofree char *path2 = g_strconcat(path, "-2", NULL);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autofree char *uri2 = g_strdup_printf("file:%s", path2);
    Machine *m = fake_machine_new(16 * MiB, true);
    MigrationState *s = m->migration;
    g_autoptr(GError) err = NULL;

    g_assert_false(migration_continue(s, MIGRATION_STATUS_PRE_SWITCHOVER, &err));
    g_assert_cmpstr(err->message, ==, "Migration not in expected state: none");
    g_clear_error(&err);
    g_assert_true(migration_set_capability(s, MIGRATION_CAPABILITY_PAUSE_BEFORE_SWITCHOVER,
                                           true, &err));
    /* Not beside background-snapshot, as in QEMU. */
    g_assert_false(migration_set_capability(s, MIGRATION_CAPABILITY_BACKGROUND_SNAPSHOT, true,
                                            &err));
    g_assert_cmpstr(err->message, ==,
                    "Background-snapshot is not compatible with pause-before-switchover");
    g_clear_error(&err);
    g_assert_true(migration_start(s, uri, &err));
    wait_status(s, MIGRATION_STATUS_PRE_SWITCHOVER);
    g_assert_cmpint(runstate_get(m), ==, RUN_STATE_FINISH_MIGRATE);
    /* It stays there: nothing moves on by itself. */
    g_usleep(100 * 1000);
    g_assert_cmpint(migration_get_status(s), ==, MIGRATION_STATUS_PRE_SWITCHOVER);
    g_assert_false(migration_continue(s, MIGRATION_STATUS_ACTIVE, &err));
    g_assert_cmpstr(err->message, ==, "Migration not in expected state: pre-switchover");
    g_clear_error(&err);
    g_assert_true(migration_continue(s, MIGRATION_STATUS_PRE_SWITCHOVER, &err));
    g_assert_cmpint(wait_done(s), ==, MIGRATION_STATUS_COMPLETED);
    g_assert_cmpint(runstate_get(m), ==, RUN_STATE_POSTMIGRATE);
    check_image_matches(path, m);

    /* A cancel in pre-switchover: cancelled, the guest runs again, no file. */
    g_assert_true(runstate_vm_start(m, &err));
    g_assert_true(migration_start(s, uri2, &err));
    wait_status(s, MIGRATION_STATUS_PRE_SWITCHOVER);
    migration_cancel(s);
    g_assert_cmpint(wait_done(s), ==, MIGRATION_STATUS_CANCELLED);
    g_assert_cmpint(runstate_get(m), ==, RUN_STATE_RUNNING);
    g_assert_false(g_file_test(path2, G_FILE_TEST_EXISTS));
    fake_machine_free(m);
    g_unlink(path);
    g_rmdir(dir);
}

/* The switch-over rule, then settling passes while each halves what is left. */
static void test_switch_over_settles(void)
{
    const uint64_t bw = 1000 * MiB;     /* 1 MiB per ms: a 300 ms limit allows 300 MiB */
    RamConvergence c = { .last_remaining = UINT64_MAX };

    /* Over the limit: go on, whatever the trend. */
    g_assert_false(ram_switch_over_ready(&c, 400 * MiB, bw, 300));
    /* Under it: settle while each pass at least halves the rest. */
    g_assert_false(ram_switch_over_ready(&c, 35 * MiB, bw, 300));
    g_assert_false(ram_switch_over_ready(&c, 6 * MiB, bw, 300));
    g_assert_false(ram_switch_over_ready(&c, 1 * MiB, bw, 300));
    /* Small enough: stop. */
    g_assert_true(ram_switch_over_ready(&c, RAM_SETTLE_BYTES, bw, 300));

    /* A pass that does not halve the rest ends settling. */
    c = (RamConvergence){ .last_remaining = UINT64_MAX };
    g_assert_false(ram_switch_over_ready(&c, 40 * MiB, bw, 300));
    g_assert_true(ram_switch_over_ready(&c, 30 * MiB, bw, 300));

    /*
     * Unless the rest grew past its best (a slow pass): go on, also through
     * passes over the limit, which do not count.
     */
    c = (RamConvergence){ .last_remaining = UINT64_MAX };
    g_assert_false(ram_switch_over_ready(&c, 35 * MiB, bw, 300));
    g_assert_false(ram_switch_over_ready(&c, 128 * MiB, 100 * MiB, 300));
    g_assert_false(ram_switch_over_ready(&c, 100 * MiB, bw, 300));
    g_assert_false(ram_switch_over_ready(&c, 8 * MiB, bw, 300));
    g_assert_true(ram_switch_over_ready(&c, 7 * MiB, bw, 300));
    g_assert_cmpuint(c.settle_passes, ==, 3);

    /* At most RAM_SETTLE_PASSES more passes, however fast it shrinks. */
    c = (RamConvergence){ .last_remaining = UINT64_MAX };
    uint64_t rest = 256 * MiB;
    unsigned passes = 0;
    while (!ram_switch_over_ready(&c, rest, bw, 300)) {
        passes++;
        rest /= 3;
    }
    g_assert_cmpuint(passes, ==, RAM_SETTLE_PASSES);
    g_assert_cmpuint(rest, >, RAM_SETTLE_BYTES);

    /* Nothing left, or no bandwidth measured yet: stop (as before). */
    c = (RamConvergence){ .last_remaining = UINT64_MAX };
    g_assert_true(ram_switch_over_ready(&c, 0, bw, 300));
    g_assert_true(ram_switch_over_ready(&c, 10 * MiB, 0, 300));
    /* downtime-limit 0: only nothing left switches over. */
    g_assert_false(ram_switch_over_ready(&c, 4096, bw, 0));
}

static void test_precopy_paused_guest(void)
{
    g_autofree char *dir = NULL;
    g_autofree char *path = tmp_image(&dir);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    Machine *m = fake_machine_new(4 * MiB, true);
    MigrationState *s = m->migration;
    g_autoptr(GError) err = NULL;

    runstate_vm_stop(m, RUN_STATE_PAUSED);
    g_assert_true(migration_start(s, uri, &err));
    g_assert_cmpint(wait_done(s), ==, MIGRATION_STATUS_COMPLETED);
    g_assert_cmpint(runstate_get(m), ==, RUN_STATE_POSTMIGRATE);
    /* One pass, nothing dirtied. */
    g_assert_cmpuint(migration_stat_get(&s->ram.dirty_sync_count), ==, 0);
    check_image_matches(path, m);
    fake_machine_free(m);
    g_unlink(path);
    g_rmdir(dir);
}

/* memfd RAM: the holes the guest never wrote are sent as zero without being read. */
static void test_precopy_memfd_holes(void)
{
    g_autofree char *dir = NULL;
    g_autofree char *path = tmp_image(&dir);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autoptr(MemoryBackendOptions) opts = memory_backend_options_new(MEMORY_BACKEND_MEMFD);
    g_autoptr(GError) err = NULL;
    MemoryBackend *be;
    Machine *m;
    struct stat before, after;

    opts->size = 64 * MiB;
    opts->thp = false;
    be = memory_backend_new(opts, &err);
    if (!be) {
        g_autofree char *why = g_strdup_printf("no memfd backend here: %s", err->message);
        g_test_skip(why);
        return;
    }
    m = fake_machine_build(64 * MiB, true, be);
    g_assert_cmpint(fstat(be->fd, &before), ==, 0);
    g_assert_true(migration_start(m->migration, uri, &err));
    g_assert_cmpint(wait_done(m->migration), ==, MIGRATION_STATUS_COMPLETED);
    g_assert_cmpint(fstat(be->fd, &after), ==, 0);
    /* The guest wrote the first half; reading the second half would have filled it. */
    g_assert_cmpint(after.st_blocks * 512, <=, before.st_blocks * 512 + 4 * MiB);
    g_assert_cmpint(after.st_blocks * 512, <, 48 * MiB);
    check_image_matches(path, m);
    fake_machine_free(m);
    g_unlink(path);
    g_rmdir(dir);
}

/* Pages of @b's host memory [first, first + n) that the page tables show populated. */
static uint64_t populated_pages(RamBlock *b, uint64_t first, uint64_t n)
{
    int fd = pagemap_open();
    PagemapMaps maps = { .populated = bitmap_new(n) };
    uint64_t count;

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pagemap_walk(fd, b->host + first * MACHINE_PAGE_SIZE,
                                 n * MACHINE_PAGE_SIZE, &maps, false, NULL), ==, 0);
    count = bitmap_count_set(maps.populated, n);
    bitmap_free(maps.populated);
    close(fd);
    return count;
}

/*
 * Anonymous RAM: the half the guest never touched is sent as zero without
 * being read, live and stopped alike, so it stays unpopulated (no zero pages
 * mapped, no page tables; the guest's first write there may still get a
 * huge page).
 */
static void test_precopy_anonymous_untouched(gconstpointer data)
{
    bool live = GPOINTER_TO_INT(data);
    g_autofree char *dir = NULL;
    g_autofree char *path = tmp_image(&dir);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    uint64_t pages = 32 * MiB / MACHINE_PAGE_SIZE;
    Machine *m = fake_machine_new(32 * MiB, true);
    RamBlock *b = g_ptr_array_index(m->ram_blocks, 0);
    g_autoptr(GError) err = NULL;

    if (!live) {
        runstate_vm_stop(m, RUN_STATE_PAUSED);
    }
    g_assert_cmpuint(populated_pages(b, pages / 2, pages / 2), ==, 0);
    g_assert_true(migration_start(m->migration, uri, &err));
    g_assert_cmpint(wait_done(m->migration), ==, MIGRATION_STATUS_COMPLETED);
    g_assert_cmpuint(populated_pages(b, pages / 2, pages / 2), ==, 0);
    g_assert_cmpuint(migration_stat_get(&m->migration->ram.duplicate), >=, pages / 2);
    check_image_matches(path, m);
    fake_machine_free(m);
    g_unlink(path);
    g_rmdir(dir);
}

static void test_cancel_keeps_source_running(void)
{
    g_autofree char *dir = NULL;
    g_autofree char *path = tmp_image(&dir);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    Machine *m = fake_machine_new(16 * MiB, true);
    MigrationState *s = m->migration;
    g_autoptr(GError) err = NULL;
    uint64_t bw = 1 * MiB;
    uint64_t before;

    g_assert_true(migration_set_parameters(s, &(MigrationParameterUpdate){ .max_bandwidth = &bw }, &err));
    g_assert_true(migration_start(s, uri, &err));
    wait_status(s, MIGRATION_STATUS_ACTIVE);
    /* A second migration is refused while this one runs. */
    g_assert_false(migration_start(s, uri, &err));
    g_assert_cmpstr(err->message, ==, "There's a migration process in progress");
    g_clear_error(&err);
    g_assert_false(migration_set_capability(s, MIGRATION_CAPABILITY_EVENTS, false, &err));
    g_clear_error(&err);
    g_usleep(100 * 1000);
    migration_cancel(s);
    g_assert_cmpint(wait_done(s), ==, MIGRATION_STATUS_CANCELLED);
    g_assert_cmpint(runstate_get(m), ==, RUN_STATE_RUNNING);
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    g_assert_null(migration_error_desc(s));
    before = guest_writes(m);
    g_usleep(20 * 1000);
    g_assert_cmpuint(guest_writes(m), >, before);
    fake_machine_free(m);
    g_rmdir(dir);
}

static void test_failed_exec_keeps_source_running(void)
{
    Machine *m = fake_machine_new(8 * MiB, true);
    MigrationState *s = m->migration;
    g_autoptr(GError) err = NULL;
    g_autofree char *desc = NULL;

    g_assert_true(migration_start(s, "exec:exit 1", &err));
    g_assert_cmpint(wait_done(s), ==, MIGRATION_STATUS_FAILED);
    desc = migration_error_desc(s);
    g_assert_nonnull(desc);
    g_assert_nonnull(strstr(desc, "exec:exit 1 exited early (status 1)"));
    g_assert_cmpint(runstate_get(m), ==, RUN_STATE_RUNNING);
    fake_machine_free(m);
}

static void test_failed_exec_status_after_stream(void)
{
    Machine *m = fake_machine_new(4 * MiB, true);
    MigrationState *s = m->migration;
    g_autoptr(GError) err = NULL;
    g_autofree char *desc = NULL;

    /* Reads the whole stream, then fails: the guest had stopped and resumes. */
    g_assert_true(migration_start(s, "exec:cat > /dev/null; exit 5", &err));
    g_assert_cmpint(wait_done(s), ==, MIGRATION_STATUS_FAILED);
    desc = migration_error_desc(s);
    g_assert_nonnull(strstr(desc, "exited with status 5"));
    g_assert_cmpint(runstate_get(m), ==, RUN_STATE_RUNNING);
    fake_machine_free(m);
}

static void test_capabilities(void)
{
    Machine *m = fake_machine_new(4 * MiB, false);
    MigrationState *s = m->migration;
    g_autoptr(GError) err = NULL;
    MigrationCapability cap;

    g_assert_true(migration_capability_enabled(s, MIGRATION_CAPABILITY_EVENTS));
    g_assert_false(migration_set_capability(s, MIGRATION_CAPABILITY_XBZRLE, true, &err));
    g_assert_cmpstr(err->message, ==, "Capability 'xbzrle' is not supported");
    g_clear_error(&err);
    g_assert_true(migration_set_capability(s, MIGRATION_CAPABILITY_XBZRLE, false, &err));
    g_assert_true(migration_set_capability(s, MIGRATION_CAPABILITY_EVENTS, false, &err));
    g_assert_false(migration_capability_enabled(s, MIGRATION_CAPABILITY_EVENTS));
    g_assert_true(migration_capability_from_name("background-snapshot", &cap));
    g_assert_cmpint(cap, ==, MIGRATION_CAPABILITY_BACKGROUND_SNAPSHOT);
    g_assert_false(migration_capability_from_name("bogus", &cap));
    g_assert_cmpstr(migration_capability_name(MIGRATION_CAPABILITY_POSTCOPY_PREEMPT), ==,
                    "postcopy-preempt");
    fake_machine_free(m);
}

static void test_parameters(void)
{
    Machine *m = fake_machine_new(4 * MiB, false);
    MigrationState *s = m->migration;
    g_autoptr(GError) err = NULL;
    uint64_t big = 2000001, ok = 1000, tiny = 4096, bw = 123456;

    g_assert_cmpuint(migration_downtime_limit(s), ==, 300);
    g_assert_cmpuint(migration_max_bandwidth(s), ==, 0);
    g_assert_false(migration_set_parameters(s, &(MigrationParameterUpdate){
                                                   .max_bandwidth = &bw,
                                                   .downtime_limit = &big }, &err));
    g_assert_cmpstr(err->message, ==, "Parameter 'downtime_limit' expects an integer in "
                    "the range of 0 to 2000000 milliseconds");
    g_clear_error(&err);
    /* All or nothing: max-bandwidth was not applied either. */
    g_assert_cmpuint(migration_max_bandwidth(s), ==, 0);
    g_assert_false(migration_set_parameters(s, &(MigrationParameterUpdate){
                                                   .background_snapshot_buffer_size = &tiny },
                                            &err));
    g_clear_error(&err);
    g_assert_true(migration_set_parameters(s, &(MigrationParameterUpdate){
                                                  .max_bandwidth = &bw,
                                                  .downtime_limit = &ok }, &err));
    g_assert_cmpuint(migration_max_bandwidth(s), ==, 123456);
    g_assert_cmpuint(migration_downtime_limit(s), ==, 1000);
    fake_machine_free(m);
}

/* auto-converge's parameters: QEMU's defaults, ranges and messages, all or nothing. */
static void test_throttle_parameters(void)
{
    Machine *m = fake_machine_new(4 * MiB, false);
    MigrationState *s = m->migration;
    g_autoptr(GError) err = NULL;
    AutoConvergeParams p;
    uint64_t zero = 0, hundred = 100, thirty = 30, five = 5, eighty = 80, ninety = 90;
    bool on = true;

    migration_auto_converge_params(s, &p);
    g_assert_cmpuint(p.initial, ==, 20);
    g_assert_cmpuint(p.increment, ==, 10);
    g_assert_cmpuint(p.max, ==, 99);
    g_assert_cmpuint(p.threshold, ==, 50);
    g_assert_false(p.tailslow);

    g_assert_false(migration_set_parameters(s, &(MigrationParameterUpdate){
                                                   .cpu_throttle_initial = &zero }, &err));
    g_assert_cmpstr(err->message, ==, "Parameter 'cpu_throttle_initial' expects an integer "
                    "in the range of 1 to 99");
    g_clear_error(&err);
    g_assert_false(migration_set_parameters(s, &(MigrationParameterUpdate){
                                                   .max_cpu_throttle = &hundred }, &err));
    g_clear_error(&err);
    /* A bad one among good ones: none applied. */
    g_assert_false(migration_set_parameters(s, &(MigrationParameterUpdate){
                                                   .cpu_throttle_increment = &five,
                                                   .throttle_trigger_threshold = &zero },
                                            &err));
    g_assert_cmpstr(err->message, ==, "Parameter 'throttle_trigger_threshold' expects an "
                    "integer in the range of 1 to 100");
    g_clear_error(&err);
    migration_auto_converge_params(s, &p);
    g_assert_cmpuint(p.increment, ==, 10);

    g_assert_true(migration_set_parameters(s, &(MigrationParameterUpdate){
                                                  .cpu_throttle_initial = &thirty,
                                                  .cpu_throttle_increment = &five,
                                                  .max_cpu_throttle = &eighty,
                                                  .throttle_trigger_threshold = &hundred,
                                                  .cpu_throttle_tailslow = &on }, &err));
    migration_auto_converge_params(s, &p);
    g_assert_cmpuint(p.initial, ==, 30);
    g_assert_cmpuint(p.increment, ==, 5);
    g_assert_cmpuint(p.max, ==, 80);
    g_assert_cmpuint(p.threshold, ==, 100);
    g_assert_true(p.tailslow);
    /* As QEMU: the start may not go above the maximum, whichever of them is set. */
    g_assert_false(migration_set_parameters(s, &(MigrationParameterUpdate){
                                                   .cpu_throttle_initial = &ninety }, &err));
    g_assert_cmpstr(err->message, ==, "Parameter 'max_cpu_throttle' expects an integer in "
                    "the range of cpu_throttle_initial to 99");
    g_clear_error(&err);
    g_assert_false(migration_set_parameters(s, &(MigrationParameterUpdate){
                                                   .max_cpu_throttle = &five }, &err));
    g_clear_error(&err);
    migration_auto_converge_params(s, &p);
    g_assert_cmpuint(p.initial, ==, 30);
    g_assert_cmpuint(p.max, ==, 80);

    /* The capability is on offer now (background-snapshot refuses it: tests/functional). */
    g_assert_true(migration_set_capability(s, MIGRATION_CAPABILITY_AUTO_CONVERGE, true, &err));
    g_assert_true(migration_set_capability(s, MIGRATION_CAPABILITY_AUTO_CONVERGE, false, &err));
    fake_machine_free(m);
}

static const QmpCommand *qmp_find(const char *name)
{
    for (const QmpCommand *c = migration_qmp_commands; c->name; c++) {
        if (!strcmp(c->name, name)) {
            return c;
        }
    }
    g_assert_not_reached();
}

static const HmpCommand *hmp_find(const char *name)
{
    for (const HmpCommand *c = migration_hmp_commands; c->name; c++) {
        if (!strcmp(c->name, name)) {
            return c;
        }
    }
    g_assert_not_reached();
}

static char *hmp_run(Machine *m, const char *name, const char *line)
{
    g_auto(GStrv) argv = g_strsplit(line, " ", -1);
    GString *out = g_string_new(NULL);
    g_autoptr(GError) err = NULL;

    if (!hmp_find(name)->handler(m, (int)g_strv_length(argv), argv, out, &err)) {
        g_string_append_printf(out, "Error: %s\n", err->message);
    }
    return g_string_free(out, FALSE);
}

static void test_query_and_info(void)
{
    g_autofree char *dir = NULL;
    g_autofree char *path = tmp_image(&dir);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    Machine *m = fake_machine_new(8 * MiB, true);
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) args = json_object_new();
    g_autoptr(JsonNode) reply = NULL;
    JsonObject *o, *ram;
    g_autofree char *info = NULL;
    g_autofree char *caps = NULL;
    g_autofree char *params = NULL;
    g_autofree char *bad = NULL;

    reply = qmp_find("query-migrate")->handler(m, args, &err);
    g_assert_cmpuint(json_object_get_size(json_node_get_object(reply)), ==, 0);
    g_clear_pointer(&reply, json_node_unref);

    json_object_set_string_member(args, "uri", uri);
    reply = qmp_find("migrate")->handler(m, args, &err);
    g_assert_no_error(err);
    g_clear_pointer(&reply, json_node_unref);
    g_assert_cmpint(wait_done(m->migration), ==, MIGRATION_STATUS_COMPLETED);

    reply = qmp_find("query-migrate")->handler(m, NULL, &err);
    o = json_node_get_object(reply);
    g_assert_cmpstr(json_object_get_string_member(o, "status"), ==, "completed");
    g_assert_true(json_object_has_member(o, "total-time"));
    g_assert_true(json_object_has_member(o, "downtime"));
    g_assert_true(json_object_has_member(o, "setup-time"));
    ram = json_object_get_object_member(o, "ram");
    g_assert_cmpint(json_object_get_int_member(ram, "total"), ==, 8 * MiB);
    g_assert_cmpint(json_object_get_int_member(ram, "transferred"), >, 3 * MiB);
    g_assert_cmpint(json_object_get_int_member(ram, "remaining"), ==, 0);
    g_assert_cmpint(json_object_get_int_member(ram, "page-size"), ==, 4096);
    g_assert_true(json_object_has_member(ram, "mbps"));

    info = hmp_run(m, "info migrate", "migrate");
    g_assert_nonnull(strstr(info, "globals:\nstore-global-state: on\n"));
    g_assert_nonnull(strstr(info, "Migration status: completed\n"));
    g_assert_nonnull(strstr(info, "total time: "));
    g_assert_nonnull(strstr(info, "downtime: "));
    g_assert_nonnull(strstr(info, "transferred ram: "));
    g_assert_nonnull(strstr(info, "total ram: 8192 kbytes\n"));
    caps = hmp_run(m, "info migrate_capabilities", "migrate_capabilities");
    g_assert_nonnull(g_str_has_prefix(caps, "xbzrle: off\n") ? caps : NULL);
    g_assert_nonnull(strstr(caps, "events: on\n"));
    g_assert_nonnull(strstr(caps, "background-snapshot: off\n"));
    g_free(hmp_run(m, "migrate_set_parameter", "migrate_set_parameter max-bandwidth 100"));
    g_assert_cmpuint(migration_max_bandwidth(m->migration), ==, 100 * MiB);
    params = hmp_run(m, "info migrate_parameters", "migrate_parameters");
    g_assert_nonnull(strstr(params, "max-bandwidth: 104857600 bytes/second\n"));
    g_assert_nonnull(strstr(params, "downtime-limit: 300 ms\n"));
    bad = hmp_run(m, "migrate_set_capability", "migrate_set_capability nosuch on");
    g_assert_cmpstr(bad, ==, "Error: invalid parameter value: nosuch\n");
    g_free(bad);
    bad = hmp_run(m, "migrate_set_capability", "migrate_set_capability compress on");
    g_assert_cmpstr(bad, ==, "Error: Capability 'compress' is not supported\n");
    fake_machine_free(m);
    g_unlink(path);
    g_rmdir(dir);
}

/* Save a running machine to a file, then bring it back with migration_incoming_start. */
static void check_incoming_file(bool start_paused)
{
    g_autofree char *dir = NULL;
    g_autofree char *path = tmp_image(&dir);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    Machine *src = fake_machine_new(8 * MiB, true);
    Machine *dst = fake_machine_new(8 * MiB, false);
    g_autoptr(GError) err = NULL;

    g_assert_true(migration_start(src->migration, uri, &err));
    g_assert_cmpint(wait_done(src->migration), ==, MIGRATION_STATUS_COMPLETED);

    dst->config->start_paused = start_paused;
    g_assert_true(migration_incoming_start(dst, uri, &err));
    g_assert_no_error(err);
    g_assert_cmpint(wait_done(dst->migration), ==, MIGRATION_STATUS_COMPLETED);
    g_assert_cmpint(runstate_get(dst), ==, start_paused ? RUN_STATE_PAUSED : RUN_STATE_RUNNING);
    if (start_paused) {
        RamBlock *a = g_ptr_array_index(src->ram_blocks, 0);
        RamBlock *b = g_ptr_array_index(dst->ram_blocks, 0);
        g_assert_cmpint(memcmp(a->host, b->host, a->size), ==, 0);
        g_assert_cmpuint(guest_of(dst)->counter, ==, guest_of(src)->counter);
    }
    /* Only once per process, as QEMU. */
    g_assert_false(migration_incoming_start(dst, uri, &err));
    g_assert_cmpstr(err->message, ==, "The incoming migration has already been started");
    fake_machine_free(src);
    fake_machine_free(dst);
    g_unlink(path);
    g_rmdir(dir);
}

static void test_incoming_file_runs(void)
{
    check_incoming_file(false);
}

static void test_incoming_file_start_paused(void)
{
    check_incoming_file(true);
}

static void test_incoming_corrupt_refused(void)
{
    g_autofree char *dir = NULL;
    g_autofree char *path = tmp_image(&dir);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    Machine *src = fake_machine_new(4 * MiB, true);
    Machine *dst = fake_machine_new(4 * MiB, false);
    g_autoptr(GError) err = NULL;
    g_autofree char *data = NULL;
    g_autofree char *desc = NULL;
    gsize len;

    g_assert_true(migration_start(src->migration, uri, &err));
    g_assert_cmpint(wait_done(src->migration), ==, MIGRATION_STATUS_COMPLETED);
    g_assert_true(g_file_get_contents(path, &data, &len, NULL));
    data[len / 2] ^= 0x10;
    g_assert_true(g_file_set_contents(path, data, len, NULL));

    g_assert_true(migration_incoming_start(dst, uri, &err));
    g_assert_cmpint(wait_done(dst->migration), ==, MIGRATION_STATUS_FAILED);
    desc = migration_error_desc(dst->migration);
    g_assert_nonnull(strstr(desc, "checksum mismatch"));
    /* The guest never runs; the machine shuts down with status 1. */
    g_assert_true(dst->shutdown_requested);
    g_assert_cmpint(dst->exit_status, ==, 1);
    g_assert_false(dst->vcpus_started);
    fake_machine_free(src);
    fake_machine_free(dst);
    g_unlink(path);
    g_rmdir(dir);
}

/* Live precopy over a socket between two machines in this process. */
static void check_live_socket(const char *listen_uri)
{
    Machine *src = fake_machine_new(16 * MiB, true);
    Machine *dst = fake_machine_new(16 * MiB, false);
    g_autoptr(GError) err = NULL;
    g_autofree char *uri = NULL;
    RamBlock *a, *b;

    dst->config->start_paused = true;
    g_assert_true(migration_incoming_start(dst, listen_uri, &err));
    g_assert_no_error(err);
    g_mutex_lock(&dst->migration->lock);
    uri = channel_listen_uri(dst->migration->channel);
    g_mutex_unlock(&dst->migration->lock);
    g_assert_nonnull(uri);

    g_assert_true(migration_start(src->migration, uri, &err));
    g_assert_no_error(err);
    g_assert_cmpint(wait_done(src->migration), ==, MIGRATION_STATUS_COMPLETED);
    g_assert_cmpint(wait_done(dst->migration), ==, MIGRATION_STATUS_COMPLETED);
    g_assert_cmpint(runstate_get(dst), ==, RUN_STATE_PAUSED);
    a = g_ptr_array_index(src->ram_blocks, 0);
    b = g_ptr_array_index(dst->ram_blocks, 0);
    g_assert_cmpint(memcmp(a->host, b->host, a->size), ==, 0);
    g_assert_cmpuint(guest_of(dst)->counter, ==, guest_of(src)->counter);
    fake_machine_free(src);
    fake_machine_free(dst);
}

static void test_live_tcp(void)
{
    check_live_socket("tcp:127.0.0.1:0");
}

static void test_live_unix(void)
{
    g_autofree char *dir = g_dir_make_tmp("test-migration-XXXXXX", NULL);
    g_autofree char *uri = g_strdup_printf("unix:%s/sock", dir);

    check_live_socket(uri);
    g_rmdir(dir);
}

static void test_destination_disappears(void)
{
    Machine *src = fake_machine_new(16 * MiB, true);
    g_autoptr(GError) err = NULL;
    MigrationChannel *listener = channel_open_incoming("tcp:127.0.0.1:0", &err);
    g_autofree char *uri = channel_listen_uri(listener);
    g_autofree char *desc = NULL;
    uint64_t bw = 4 * MiB;

    g_assert_true(migration_set_parameters(src->migration, &(MigrationParameterUpdate){ .max_bandwidth = &bw }, &err));
    g_assert_true(migration_start(src->migration, uri, &err));
    g_assert_true(channel_accept(listener, &err));
    g_usleep(100 * 1000);
    /* The destination goes away mid-stream. */
    channel_close(listener, false, NULL);
    g_assert_cmpint(wait_done(src->migration), ==, MIGRATION_STATUS_FAILED);
    desc = migration_error_desc(src->migration);
    g_assert_nonnull(strstr(desc, "closed the connection"));
    g_assert_cmpint(runstate_get(src), ==, RUN_STATE_RUNNING);
    fake_machine_free(src);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/precopy/file-live", test_precopy_file_live);
    g_test_add_func("/migration/precopy/paused-guest", test_precopy_paused_guest);
    g_test_add_func("/migration/precopy/switch-over-settles", test_switch_over_settles);
    g_test_add_func("/migration/precopy/pause-before-switchover", test_pause_before_switchover);
    g_test_add_func("/migration/precopy/memfd-holes-not-read", test_precopy_memfd_holes);
    g_test_add_data_func("/migration/precopy/untouched-not-read/live", GINT_TO_POINTER(1),
                         test_precopy_anonymous_untouched);
    g_test_add_data_func("/migration/precopy/untouched-not-read/stopped", GINT_TO_POINTER(0),
                         test_precopy_anonymous_untouched);
    g_test_add_func("/migration/precopy/live-tcp", test_live_tcp);
    g_test_add_func("/migration/precopy/live-unix", test_live_unix);
    g_test_add_func("/migration/cancel/source-keeps-running", test_cancel_keeps_source_running);
    g_test_add_func("/migration/failure/exec-exits-early", test_failed_exec_keeps_source_running);
    g_test_add_func("/migration/failure/exec-status-after-stream",
                    test_failed_exec_status_after_stream);
    g_test_add_func("/migration/failure/destination-disappears", test_destination_disappears);
    g_test_add_func("/migration/capabilities", test_capabilities);
    g_test_add_func("/migration/parameters", test_parameters);
    g_test_add_func("/migration/parameters/throttle", test_throttle_parameters);
    g_test_add_func("/migration/monitor/query-and-info", test_query_and_info);
    g_test_add_func("/migration/incoming/file-runs", test_incoming_file_runs);
    g_test_add_func("/migration/incoming/file-start-paused", test_incoming_file_start_paused);
    g_test_add_func("/migration/incoming/corrupt-refused", test_incoming_corrupt_refused);
    return g_test_run();
}
