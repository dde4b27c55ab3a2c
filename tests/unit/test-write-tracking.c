/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests of migration/write-tracking: faults reach the handler, unprotect releases, stop always frees the guest. */
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <glib.h>

#include "migration/write-tracking.h"
#include "system/machine.h"
#include "system/memory-backend.h"

#define RAM_SIZE (4 * 1024 * 1024)
#define PAGE 4096

typedef struct Fixture {
    RamBlock rb;
    GPtrArray *blocks;
    WriteTracking *wt;
    GMutex lock;
    GArray *faults;         /* uint64_t offsets */
    bool release;           /* the handler unprotects what faulted */
} Fixture;

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

/* One block at @host (@size bytes, backed by @be or anonymous), tracked; the handler releases. */
static WriteTracking *fixture_track(Fixture *fx, uint8_t *host, uint64_t size,
                                    MemoryBackend *be, GError **errp)
{
    memset(fx, 0, sizeof(*fx));
    fx->rb.name = (char *)"pc.ram";
    fx->rb.backend = be;
    fx->rb.host = host;
    fx->rb.size = size;
    fx->rb.page_size = PAGE;
    fx->blocks = g_ptr_array_new();
    g_ptr_array_add(fx->blocks, &fx->rb);
    g_mutex_init(&fx->lock);
    fx->faults = g_array_new(false, false, sizeof(uint64_t));
    fx->release = true;
    fx->wt = write_tracking_new(fx->blocks, true, errp);
    return fx->wt;
}

static void fixture_init(Fixture *fx, bool touch)
{
    g_autoptr(GError) err = NULL;
    uint8_t *host = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    g_assert(host != MAP_FAILED);
    if (touch) {
        memset(host, 0x5a, RAM_SIZE);
    }
    fixture_track(fx, host, RAM_SIZE, NULL, &err);
    g_assert_no_error(err);
}

static void fixture_free(Fixture *fx)
{
    write_tracking_free(fx->wt);
    g_ptr_array_unref(fx->blocks);
    g_array_unref(fx->faults);
    munmap(fx->rb.host, RAM_SIZE);
}

static void on_fault(void *opaque, unsigned block_index, uint64_t offset, uint64_t read_ns)
{
    Fixture *fx = opaque;

    g_assert_cmpuint(block_index, ==, 0);
    g_assert_cmpuint(offset % PAGE, ==, 0);
    g_assert_cmpuint(read_ns, <=, write_tracking_now_ns());
    g_mutex_lock(&fx->lock);
    g_array_append_val(fx->faults, offset);
    g_mutex_unlock(&fx->lock);
    if (fx->release) {
        g_assert_cmpint(write_tracking_unprotect(fx->wt, 0, offset, PAGE), ==, 0);
    }
}

typedef struct Writer {
    uint8_t *addr;
    size_t len;
    gint done;
} Writer;

static gpointer writer_thread(gpointer opaque)
{
    Writer *w = opaque;
    for (size_t off = 0; off < w->len; off += PAGE) {
        w->addr[off] = 0xa5;
    }
    g_atomic_int_set(&w->done, 1);
    return NULL;
}

/* Run a writer over [addr, addr + len); true if it finished within @ms. */
static bool write_within(uint8_t *addr, size_t len, unsigned ms, GThread **thread, Writer *w)
{
    *w = (Writer){ .addr = addr, .len = len };
    *thread = g_thread_new("guest", writer_thread, w);
    for (unsigned i = 0; i < ms && !g_atomic_int_get(&w->done); i++) {
        g_usleep(1000);
    }
    return g_atomic_int_get(&w->done);
}

static void test_fault_roundtrip(void)
{
    Fixture fx;
    g_autoptr(GError) err = NULL;
    GThread *t;
    Writer w;

    if (!wp_available()) {
        return;
    }
    fixture_init(&fx, true);
    g_assert_true(write_tracking_start_fault_thread(fx.wt, on_fault, &fx, false, &err));
    g_assert_true(write_tracking_protect_all(fx.wt, &err));
    /* Eight pages, each faults once and is released by the handler. */
    g_assert_true(write_within(fx.rb.host, 8 * PAGE, 5000, &t, &w));
    g_thread_join(t);
    g_assert_cmpuint(fx.faults->len, ==, 8);
    for (unsigned i = 0; i < 8; i++) {
        g_assert_cmpuint(g_array_index(fx.faults, uint64_t, i), ==, i * PAGE);
    }
    /* Released pages no longer fault. */
    g_assert_true(write_within(fx.rb.host, 8 * PAGE, 5000, &t, &w));
    g_thread_join(t);
    g_assert_cmpuint(fx.faults->len, ==, 8);
    g_assert_cmpuint(write_tracking_events_read(fx.wt), ==, 8);
    fixture_free(&fx);
}

static void test_unpopulated(void)
{
    Fixture fx;
    g_autoptr(GError) err = NULL;
    GThread *t;
    Writer w;

    if (!wp_available()) {
        return;
    }
    /* Never touched: protection must still catch the first write. */
    fixture_init(&fx, false);
    g_assert_true(write_tracking_start_fault_thread(fx.wt, on_fault, &fx, true, &err));
    g_assert_true(write_tracking_protect_all(fx.wt, &err));
    g_assert_true(write_within(fx.rb.host + RAM_SIZE / 2, 4 * PAGE, 5000, &t, &w));
    g_thread_join(t);
    g_assert_cmpuint(fx.faults->len, ==, 4);
    fixture_free(&fx);
}

static void test_stop_releases_blocked_writer(void)
{
    Fixture fx;
    g_autoptr(GError) err = NULL;
    GThread *t;
    Writer w;

    if (!wp_available()) {
        return;
    }
    fixture_init(&fx, true);
    fx.release = false;     /* a handler that never releases: the writer blocks */
    g_assert_true(write_tracking_start_fault_thread(fx.wt, on_fault, &fx, false, &err));
    g_assert_true(write_tracking_protect_all(fx.wt, &err));
    g_assert_false(write_within(fx.rb.host, RAM_SIZE, 50, &t, &w));
    /* Stop must unprotect and wake it; the rest of RAM is writable again. */
    write_tracking_stop(fx.wt);
    g_thread_join(t);
    g_assert_true(g_atomic_int_get(&w.done));
    g_assert_cmpuint(fx.rb.host[RAM_SIZE - PAGE], ==, 0xa5);
    write_tracking_stop(fx.wt);     /* idempotent */
    fixture_free(&fx);
}

static void test_stop_without_thread(void)
{
    Fixture fx;
    g_autoptr(GError) err = NULL;

    if (!wp_available()) {
        return;
    }
    fixture_init(&fx, true);
    g_assert_true(write_tracking_protect_all(fx.wt, &err));
    write_tracking_stop(fx.wt);
    /* Writable at once, from this thread: nothing is left protected. */
    memset(fx.rb.host, 1, RAM_SIZE);
    fixture_free(&fx);
}

/* ---- shared memory: regions let go early, write access back ---- */

#define SHARED_SIZE (8 * 1024 * 1024)
#define REGION (2 * 1024 * 1024)

/* Page faults this thread takes writing one byte in each page of [addr, addr + len). */
static long faults_writing(uint8_t *addr, size_t len)
{
    struct rusage before, after;

    getrusage(RUSAGE_THREAD, &before);
    for (size_t off = 0; off < len; off += PAGE) {
        addr[off]++;
    }
    getrusage(RUSAGE_THREAD, &after);
    return (after.ru_minflt - before.ru_minflt) + (after.ru_majflt - before.ru_majflt);
}

typedef struct SharedFixture {
    Fixture fx;
    MemoryBackend *be;
} SharedFixture;

/* Four 2 MiB regions of a memfd, every page written, tracked with a handler that releases. */
static bool shared_init(SharedFixture *sf)
{
    g_autoptr(GError) err = NULL;
    MemoryBackendOptions *opts = memory_backend_options_new(MEMORY_BACKEND_MEMFD);
    Fixture *fx = &sf->fx;

    opts->size = SHARED_SIZE;
    sf->be = memory_backend_new(opts, &err);
    memory_backend_options_free(opts);
    g_assert_no_error(err);
    memset(sf->be->host, 0x5a, SHARED_SIZE);
    if (!fixture_track(fx, sf->be->host, SHARED_SIZE, sf->be, &err)) {
        /* A kernel without write-protect on shmem. */
        g_test_skip(err->message);
        g_ptr_array_unref(fx->blocks);
        g_array_unref(fx->faults);
        memory_backend_free(sf->be);
        return false;
    }
    g_assert_true(write_tracking_start_fault_thread(fx->wt, on_fault, fx, false, &err));
    g_assert_no_error(err);
    g_assert_true(write_tracking_can_let_go(fx->wt, 0));
    return true;
}

static void shared_free(SharedFixture *sf)
{
    write_tracking_free(sf->fx.wt);
    g_ptr_array_unref(sf->fx.blocks);
    g_array_unref(sf->fx.faults);
    memory_backend_free(sf->be);
}

/* shared_init(), a handler that releases what faulted when @release, all of it protected. */
static bool shared_protected(SharedFixture *sf, bool release)
{
    g_autoptr(GError) err = NULL;

    if (!wp_available() || !shared_init(sf)) {
        return false;
    }
    sf->fx.release = release;
    g_assert_true(write_tracking_protect_all(sf->fx.wt, &err));
    g_assert_no_error(err);
    return true;
}

static void test_shared_let_go(void)
{
    SharedFixture sf;
    Fixture *fx = &sf.fx;
    GThread *t;
    Writer w;

    if (!shared_protected(&sf, true)) {
        return;
    }
    /* Region 1 is "saved": it leaves userfaultfd with its pages writable. */
    g_assert_cmpint(write_tracking_let_go(fx->wt, 0, REGION, REGION), ==, 0);
    g_assert_cmpint(write_tracking_let_go(fx->wt, 0, REGION, REGION), ==, 0);    /* no-op */
    g_assert_cmpuint(write_tracking_let_go_bytes(fx->wt), ==, REGION);
    g_assert_cmpint(faults_writing(fx->rb.host + REGION, REGION), ==, 0);
    g_assert_cmpuint(fx->faults->len, ==, 0);
    /* Region 0 is still tracked: its first write reaches the handler. */
    g_assert_true(write_within(fx->rb.host, PAGE, 5000, &t, &w));
    g_thread_join(t);
    g_assert_cmpuint(fx->faults->len, ==, 1);
    /* An unprotect across the hole the let-go left covers the rest. */
    g_assert_cmpint(write_tracking_unprotect(fx->wt, 0, 0, SHARED_SIZE), ==, 0);
    g_assert_true(write_within(fx->rb.host + 2 * REGION, 2 * REGION, 5000, &t, &w));
    g_thread_join(t);
    g_assert_cmpuint(fx->faults->len, ==, 1);
    /*
     * The stop leaves region 1 alone (a warning here would fail the test)
     * and gives write access back everywhere.
     */
    write_tracking_stop(fx->wt);
    g_assert_cmpint(faults_writing(fx->rb.host, SHARED_SIZE), ==, 0);
    g_assert_cmpuint(fx->rb.host[REGION], ==, 0x5a + 2);    /* written twice, both kept */
    shared_free(&sf);
}

/* A write that faulted before its region was let go finishes then, not at the stop. */
static void test_shared_let_go_wakes(void)
{
    SharedFixture sf;
    Fixture *fx = &sf.fx;
    GThread *t;
    Writer w;

    if (!shared_protected(&sf, false)) {    /* the handler leaves the writer blocked */
        return;
    }
    g_assert_false(write_within(fx->rb.host + REGION + 3 * PAGE, PAGE, 50, &t, &w));
    g_assert_cmpint(write_tracking_let_go(fx->wt, 0, REGION, REGION), ==, 0);
    for (unsigned i = 0; i < 5000 && !g_atomic_int_get(&w.done); i++) {
        g_usleep(1000);
    }
    g_assert_true(g_atomic_int_get(&w.done));
    g_thread_join(t);
    g_assert_cmpuint(fx->faults->len, ==, 1);
    shared_free(&sf);
}

static void test_shared_stop_restores_write(void)
{
    SharedFixture sf;
    Fixture *fx = &sf.fx;

    if (!shared_protected(&sf, true)) {
        return;
    }
    g_assert_cmpint(write_tracking_unprotect(fx->wt, 0, 0, SHARED_SIZE), ==, 0);
    write_tracking_stop(fx->wt);
    /* Without the stop's repair each page's next write would fault in the kernel. */
    g_assert_cmpint(faults_writing(fx->rb.host, SHARED_SIZE), ==, 0);
    g_assert_cmpuint(fx->faults->len, ==, 0);
    shared_free(&sf);
}

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#define PR_GET_MDWE 66
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

/*
 * Where policy forbids memory that is writable and executable (here
 * PR_SET_MDWE, as systemd's MemoryDenyWriteExecute or SELinux can), write
 * access is not given back: the pages stay read-only, every write still
 * lands, and it says so once.
 */
static void test_shared_exec_refused(void)
{
    SharedFixture sf;
    Fixture *fx = &sf.fx;
    g_autoptr(GError) err = NULL;

    if (!g_test_subprocess()) {
        if (!wp_available() || !shared_init(&sf)) {
            return;
        }
        shared_free(&sf);
        if (prctl(PR_GET_MDWE, 0, 0, 0, 0) < 0) {
            g_test_skip("this kernel has no PR_SET_MDWE to refuse executable memory with");
            return;
        }
        /* In a child: the policy cannot be taken back. */
        g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
        g_test_trap_assert_passed();
        g_test_trap_assert_stderr("*cannot give shared guest RAM write access back*");
        return;
    }
    g_assert_cmpint(prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0), ==, 0);
    g_assert_true(shared_init(&sf));
    g_assert_true(write_tracking_protect_all(fx->wt, &err));
    g_assert_cmpint(write_tracking_let_go(fx->wt, 0, REGION, REGION), ==, 0);
    /* Read-only left, so the kernel faults once per page; nothing reaches userfaultfd. */
    g_assert_cmpint(faults_writing(fx->rb.host + REGION, REGION), ==, REGION / PAGE);
    g_assert_cmpuint(fx->faults->len, ==, 0);
    write_tracking_stop(fx->wt);
    g_assert_cmpint(faults_writing(fx->rb.host, SHARED_SIZE), >, 0);
    g_assert_cmpuint(fx->rb.host[REGION], ==, 0x5a + 2);
    shared_free(&sf);
}

static void test_private_not_let_go(void)
{
    Fixture fx;

    if (!wp_available()) {
        return;
    }
    fixture_init(&fx, true);
    /* Private anonymous memory gets its write access back on unprotect already. */
    g_assert_false(write_tracking_can_let_go(fx.wt, 0));
    fixture_free(&fx);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/write-tracking/fault-roundtrip", test_fault_roundtrip);
    g_test_add_func("/write-tracking/unpopulated", test_unpopulated);
    g_test_add_func("/write-tracking/stop-releases-blocked-writer",
                    test_stop_releases_blocked_writer);
    g_test_add_func("/write-tracking/stop-without-thread", test_stop_without_thread);
    g_test_add_func("/write-tracking/shared/let-go", test_shared_let_go);
    g_test_add_func("/write-tracking/shared/let-go-wakes", test_shared_let_go_wakes);
    g_test_add_func("/write-tracking/shared/stop-restores-write", test_shared_stop_restores_write);
    g_test_add_func("/write-tracking/shared/exec-refused", test_shared_exec_refused);
    g_test_add_func("/write-tracking/private-not-let-go", test_private_not_let_go);
    return g_test_run();
}
