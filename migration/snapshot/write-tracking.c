/* SPDX-License-Identifier: GPL-2.0-or-later */
/* UFFD-WP write tracking of guest RAM: register, protect, the fault handler thread, and a stop that always unprotects. */
#include "migration/write-tracking.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "migration/snapshot/snapshot-trace.h"
#include "system/machine.h"
#include "system/memory-backend.h"
#include "system/shared-write.h"
#include "util/bitmap.h"
#include "util/error.h"
#include "util/userfaultfd.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

/* Events read per read(2): a sweeping multi-vCPU guest queues several at once. */
#define FAULT_BATCH 64
/* What write_tracking_let_go() lets go of: 2 MiB regions. */
#define LET_GO_REGION (2 * 1024 * 1024ULL)

struct WriteTracking {
    GPtrArray *blocks;          /* RamBlock *, borrowed */
    bool *registered;           /* per block */
    int uffd;
    int stop_fd;                /* eventfd that stops the fault thread */
    uint64_t features;

    GThread *thread;
    WriteTrackingFaultFunc fault_fn;
    void *fault_opaque;
    WriteTrackingReleaseFunc release_fn;    /* epoch tracking's record of released pages */
    void *release_opaque;
    bool raise_priority;
    int fault_tid;              /* atomic: the fault thread's id once it runs */
    bool stopping;              /* atomic */
    bool stopped;

    uint64_t events_read;       /* atomic */
    uint64_t register_ns;
    uint64_t protect_ns;

    /*
     * Per block: its regions that left userfaultfd before the stop (shared
     * memory only; NULL for other blocks). Atomic bits, set before the
     * unregister so that an unprotect refused there can tell why.
     */
    unsigned long **let_go;
    bool restore_write;         /* atomic: false once the kernel refused it */
    uint64_t let_go_bytes;      /* atomic */
    bool let_go_failed;         /* atomic: an unregister failed; no more let-gos */
};

static uint64_t let_go_regions(RamBlock *rb)
{
    return (rb->size + LET_GO_REGION - 1) / LET_GO_REGION;
}

uint64_t write_tracking_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static RamBlock *block_at(WriteTracking *wt, unsigned i)
{
    return g_ptr_array_index(wt->blocks, i);
}

bool write_tracking_check(GPtrArray *blocks, WriteTrackingFeatures *features, GError **errp)
{
    uint64_t kernel = 0, ioctls = 0;
    int ret = uffd_query_features(&kernel, &ioctls);

    if (ret < 0) {
        error_setg_errno(errp, -ret, "background-snapshot: userfaultfd is not available");
        return false;
    }
    if (!(kernel & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
        error_setg(errp, "background-snapshot: this kernel's userfaultfd has no "
                   "write-protect support (UFFD_FEATURE_PAGEFAULT_FLAG_WP)");
        return false;
    }

    uint64_t required = UFFD_FEATURE_PAGEFAULT_FLAG_WP;
    for (unsigned i = 0; i < blocks->len; i++) {
        RamBlock *rb = g_ptr_array_index(blocks, i);
        if (!rb->backend) {
            continue;   /* private anonymous memory: the base feature covers it */
        }
        g_autoptr(GError) why = NULL;
        if (!memory_backend_can_write_protect(rb->backend, kernel, &why)) {
            g_autofree char *desc = memory_backend_describe(rb->backend);
            /* The backend's message names the backend too: keep only its reason. */
            const char *tail = "cannot be write-protected: ";
            const char *reason = strstr(why->message, tail);
            reason = reason ? reason + strlen(tail) : why->message;
            error_setg(errp, "background-snapshot: RAM block '%s' (%s) cannot be "
                       "write-protected: %s", rb->name, desc, reason);
            return false;
        }
        if (rb->backend->backing == MEMORY_BACKING_SHMEM ||
            rb->backend->backing == MEMORY_BACKING_HUGETLBFS) {
            required |= UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
        }
    }
    if ((required & kernel) != required) {
        g_autofree char *names = uffd_features_to_string(required & ~kernel);
        error_setg(errp, "background-snapshot: the kernel lacks userfaultfd features %s",
                   names);
        return false;
    }
    if (features) {
        features->kernel = kernel;
        features->required = required;
        features->wanted = required | (kernel & UFFD_FEATURE_WP_UNPOPULATED);
    }
    return true;
}

/*
 * Make every page present so that write protection sticks to it. Reading
 * maps the shared zero page where nothing was written (no memory is
 * allocated and the guest's view does not change).
 */
static void populate_by_reading(RamBlock *rb)
{
    if (madvise(rb->host, rb->size, MADV_POPULATE_READ) == 0) {
        return;
    }
    uint64_t step = rb->page_size ? rb->page_size : MACHINE_PAGE_SIZE;
    for (uint64_t off = 0; off < rb->size; off += step) {
        (void)*(volatile uint8_t *)(rb->host + off);
    }
}

WriteTracking *write_tracking_new(GPtrArray *blocks, bool protect_unpopulated, GError **errp)
{
    WriteTrackingFeatures feat;
    uint64_t start = write_tracking_now_ns();

    if (!write_tracking_check(blocks, &feat, errp)) {
        return NULL;
    }

    g_autoptr(WriteTracking) wt = g_new0(WriteTracking, 1);
    wt->blocks = g_ptr_array_ref(blocks);
    wt->registered = g_new0(bool, blocks->len);
    wt->let_go = g_new0(unsigned long *, blocks->len);
    wt->restore_write = true;
    wt->uffd = -1;
    wt->stop_fd = -1;

    uint64_t missing = 0;
    uint64_t features = protect_unpopulated ? feat.wanted : feat.required;
    int fd = uffd_open(features, O_CLOEXEC | O_NONBLOCK, &missing);
    if (fd < 0) {
        g_autofree char *names = uffd_features_to_string(missing);
        error_setg_errno(errp, -fd, "background-snapshot: cannot open a userfaultfd with "
                         "features %s", names[0] ? names : "(requested)");
        wt->stopped = true;
        return NULL;
    }
    wt->uffd = fd;
    wt->features = features;

    wt->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wt->stop_fd < 0) {
        error_setg_errno(errp, errno, "background-snapshot: cannot create an eventfd");
        return NULL;
    }

    for (unsigned i = 0; i < blocks->len; i++) {
        RamBlock *rb = block_at(wt, i);
        uint64_t ioctls = 0;

        if (protect_unpopulated && !(wt->features & UFFD_FEATURE_WP_UNPOPULATED)) {
            populate_by_reading(rb);
        }
        int ret = uffd_register(wt->uffd, rb->host, rb->size, UFFDIO_REGISTER_MODE_WP,
                                &ioctls);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "background-snapshot: cannot register RAM block "
                             "'%s' (%" G_GUINT64_FORMAT " bytes) for write-protect",
                             rb->name, rb->size);
            return NULL;
        }
        wt->registered[i] = true;
        /*
         * Only shared mappings of shmem keep pages read-only after an
         * unprotect; a private one (share=off) gets write access back there.
         */
        if (rb->backend && rb->backend->backing == MEMORY_BACKING_SHMEM &&
            rb->backend->opts.share) {
            wt->let_go[i] = bitmap_new(let_go_regions(rb));
        }
        if (!(ioctls & (1ULL << _UFFDIO_WRITEPROTECT))) {
            error_setg(errp, "background-snapshot: the kernel does not allow "
                       "UFFDIO_WRITEPROTECT on RAM block '%s'", rb->name);
            return NULL;
        }
    }
    wt->register_ns = write_tracking_now_ns() - start;
    return g_steal_pointer(&wt);
}

/* Best effort: the fault handler should run as soon as a vCPU blocks. */
static void raise_own_priority(void)
{
    struct sched_param sp = { .sched_priority = 1 };

    if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0) {
        return;
    }
    /* Started from an idle-priority set-up it would inherit SCHED_IDLE, which nice can't lift. */
    sp.sched_priority = 0;
    pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp);
    /* On Linux, PRIO_PROCESS with a thread id sets that thread's nice. */
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), -10);
}

static gpointer fault_thread_main(gpointer opaque)
{
    WriteTracking *wt = opaque;
    struct uffd_msg msgs[FAULT_BATCH];

    if (wt->raise_priority) {
        raise_own_priority();
    }
    __atomic_store_n(&wt->fault_tid, (int)syscall(SYS_gettid), __ATOMIC_RELEASE);
    while (!__atomic_load_n(&wt->stopping, __ATOMIC_ACQUIRE)) {
        int ready = uffd_wait2(wt->uffd, wt->stop_fd, -1);
        if (ready < 0) {
            g_warning("background-snapshot: waiting for write faults failed: %s",
                      g_strerror(-ready));
            break;
        }
        if (ready & UFFD_WAIT_WAKE) {
            break;
        }
        unsigned n = 0;
        int ret = uffd_read_events(wt->uffd, msgs, FAULT_BATCH, &n);
        uint64_t read_ns = write_tracking_now_ns();
        if (ret < 0) {
            g_warning("background-snapshot: reading write faults failed: %s",
                      g_strerror(-ret));
            break;
        }
        __atomic_fetch_add(&wt->events_read, n, __ATOMIC_RELAXED);
        for (unsigned e = 0; e < n; e++) {
            if (!uffd_msg_is_pagefault(&msgs[e])) {
                continue;
            }
            uint64_t addr = uffd_msg_fault_address(&msgs[e]);
            trace_snapshot_fault_read(addr, read_ns);
            for (unsigned i = 0; i < wt->blocks->len; i++) {
                RamBlock *rb = block_at(wt, i);
                uint64_t base = (uint64_t)(uintptr_t)rb->host;
                if (addr >= base && addr < base + rb->size) {
                    uint64_t offset = (addr - base) & ~(MACHINE_PAGE_SIZE - 1);
                    wt->fault_fn(wt->fault_opaque, i, offset, read_ns);
                    break;
                }
            }
        }
    }
    return NULL;
}

bool write_tracking_start_fault_thread(WriteTracking *wt, WriteTrackingFaultFunc fn,
                                       void *opaque, bool raise_priority, GError **errp)
{
    g_assert(!wt->thread);
    wt->fault_fn = fn;
    wt->fault_opaque = opaque;
    wt->raise_priority = raise_priority;
    wt->thread = g_thread_try_new("snapshot-faults", fault_thread_main, wt, errp);
    if (!wt->thread) {
        error_prefix(errp, "background-snapshot: cannot start the fault handler: ");
        return false;
    }
    return true;
}

bool write_tracking_fault_thread_cpus(WriteTracking *wt, const cpu_set_t *cpus)
{
    int tid;

    if (!wt->thread) {
        return false;
    }
    /* It names itself at its first instruction; a second at most. */
    for (int i = 0; !(tid = __atomic_load_n(&wt->fault_tid, __ATOMIC_ACQUIRE)); i++) {
        if (i == 10000) {
            return false;
        }
        g_usleep(100);
    }
    return sched_setaffinity(tid, sizeof(*cpus), cpus) == 0;
}

bool write_tracking_protect_all(WriteTracking *wt, GError **errp)
{
    uint64_t start = write_tracking_now_ns();

    for (unsigned i = 0; i < wt->blocks->len; i++) {
        RamBlock *rb = block_at(wt, i);
        int ret = uffd_writeprotect(wt->uffd, rb->host, rb->size, true, false);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "background-snapshot: cannot write-protect RAM "
                             "block '%s'", rb->name);
            return false;
        }
    }
    wt->protect_ns = write_tracking_now_ns() - start;
    return true;
}

void write_tracking_set_release_hook(WriteTracking *wt, WriteTrackingReleaseFunc fn,
                                     void *opaque)
{
    wt->release_fn = fn;
    wt->release_opaque = opaque;
}

/*
 * Call @fn on each run of [@offset, @offset + @len) of block @b that is
 * still registered (not let go); stops at and returns the first error.
 */
static int for_registered(WriteTracking *wt, unsigned b, uint64_t offset, uint64_t len,
                          int (*fn)(WriteTracking *wt, uint8_t *host, uint64_t len))
{
    RamBlock *rb = block_at(wt, b);
    uint64_t end = offset + len;

    if (!wt->let_go[b]) {
        return fn(wt, rb->host + offset, len);
    }
    while (offset < end) {
        uint64_t r = offset / LET_GO_REGION;

        if (bitmap_test_atomic(wt->let_go[b], r)) {
            offset = MIN((r + 1) * LET_GO_REGION, end);
            continue;
        }
        uint64_t run_end = offset;
        while (run_end < end && !bitmap_test_atomic(wt->let_go[b], run_end / LET_GO_REGION)) {
            run_end = MIN((run_end / LET_GO_REGION + 1) * LET_GO_REGION, end);
        }
        int ret = fn(wt, rb->host + offset, run_end - offset);
        if (ret < 0) {
            return ret;
        }
        offset = run_end;
    }
    return 0;
}

static int unprotect_run(WriteTracking *wt, uint8_t *host, uint64_t len)
{
    return uffd_writeprotect(wt->uffd, host, len, false, false);
}

int write_tracking_unprotect(WriteTracking *wt, unsigned block_index, uint64_t offset,
                             uint64_t len)
{
    RamBlock *rb = block_at(wt, block_index);
    g_assert(offset + len <= rb->size);
    if (wt->release_fn) {
        wt->release_fn(wt->release_opaque, block_index, offset, len, false);
    }
    int ret = uffd_writeprotect(wt->uffd, rb->host + offset, len, false, false);
    if (ret == -ENOENT && wt->let_go[block_index]) {
        /*
         * Part of the range left userfaultfd (write_tracking_let_go()). The
         * kernel stopped there without waking anyone: do the rest, then wake
         * the whole range (a thread that faulted before the unregister may
         * still wait: unregistering wakes only missing-page faults).
         */
        ret = for_registered(wt, block_index, offset, len, unprotect_run);
        uffd_wake(wt->uffd, rb->host + offset, len);
    }
    if (wt->release_fn) {
        wt->release_fn(wt->release_opaque, block_index, offset, len, true);
    }
    return ret;
}

/*
 * Give shared pages write access back (shared-write.c); once refused (a
 * policy against mapping memory writable and executable, or no room for
 * another mapping), never again: the pages stay read-only, which is only
 * slower.
 */
static int restore_write(WriteTracking *wt, uint8_t *host, uint64_t len)
{
    if (!__atomic_load_n(&wt->restore_write, __ATOMIC_RELAXED)) {
        return 0;
    }
    int ret = shared_write_restore(host, len);
    if (ret < 0 && __atomic_exchange_n(&wt->restore_write, false, __ATOMIC_RELAXED)) {
        g_message("background-snapshot: cannot give shared guest RAM write access back "
                  "(%s); the guest's first write to each page after the snapshot saved "
                  "it takes a page fault", g_strerror(-ret));
    }
    return ret;
}

bool write_tracking_can_let_go(WriteTracking *wt, unsigned block_index)
{
    return wt->let_go[block_index] && !wt->release_fn &&
           !__atomic_load_n(&wt->let_go_failed, __ATOMIC_RELAXED);
}

int write_tracking_let_go(WriteTracking *wt, unsigned block_index, uint64_t offset,
                          uint64_t len)
{
    RamBlock *rb = block_at(wt, block_index);
    uint64_t r0 = offset / LET_GO_REGION;
    uint64_t nr = (len + LET_GO_REGION - 1) / LET_GO_REGION;

    g_assert(wt->let_go[block_index] && !wt->release_fn);
    if (__atomic_load_n(&wt->let_go_failed, __ATOMIC_RELAXED)) {
        return -EAGAIN;     /* an earlier unregister failed: leave the rest to the stop */
    }
    g_assert(offset % LET_GO_REGION == 0 && offset + len <= rb->size);
    g_assert(len % LET_GO_REGION == 0 || offset + len == rb->size);
    if (bitmap_range_is_set_atomic(wt->let_go[block_index], r0, nr)) {
        return 0;
    }
    bitmap_set_range_atomic(wt->let_go[block_index], r0, nr);
    /* The bits before the unregister: an unprotect refused there sees them. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    int ret = uffd_unregister(wt->uffd, rb->host + offset, len);
    if (ret < 0) {
        /*
         * Still registered. An unprotect that saw the bits may have skipped
         * the range; the caller saved all of it, so unprotect (and wake) it
         * here before anyone else counts on the bits.
         */
        uffd_writeprotect(wt->uffd, rb->host + offset, len, false, false);
        for (uint64_t r = r0; r < r0 + nr; r++) {
            bitmap_test_and_clear_atomic(wt->let_go[block_index], r);
        }
        /* Likely out of mappings (vm.max_map_count): no more splits. */
        __atomic_store_n(&wt->let_go_failed, true, __ATOMIC_RELAXED);
        return ret;
    }
    /*
     * Unregistering clears the protection but wakes only missing-page faults:
     * a thread that faulted here before and waits for its page (saved by now)
     * is woken here, or it would wait until the stop.
     */
    uffd_wake(wt->uffd, rb->host + offset, len);
    __atomic_fetch_add(&wt->let_go_bytes, len, __ATOMIC_RELAXED);
    restore_write(wt, rb->host + offset, len);
    return 0;
}

uint64_t write_tracking_let_go_bytes(WriteTracking *wt)
{
    return __atomic_load_n(&wt->let_go_bytes, __ATOMIC_RELAXED);
}

int write_tracking_protect(WriteTracking *wt, unsigned block_index, uint64_t offset,
                           uint64_t len)
{
    RamBlock *rb = block_at(wt, block_index);
    g_assert(offset + len <= rb->size);
    /* The kernel refuses DONTWAKE together with protecting (EINVAL). */
    return uffd_writeprotect(wt->uffd, rb->host + offset, len, true, false);
}

int write_tracking_wake(WriteTracking *wt, unsigned block_index, uint64_t offset,
                        uint64_t len)
{
    RamBlock *rb = block_at(wt, block_index);
    g_assert(offset + len <= rb->size);
    return uffd_wake(wt->uffd, rb->host + offset, len);
}

static int unregister_run(WriteTracking *wt, uint8_t *host, uint64_t len)
{
    return uffd_unregister(wt->uffd, host, len);
}

void write_tracking_stop(WriteTracking *wt)
{
    if (wt->stopped) {
        return;
    }
    __atomic_store_n(&wt->stopping, true, __ATOMIC_RELEASE);
    if (wt->thread) {
        uint64_t one = 1;
        if (write(wt->stop_fd, &one, sizeof(one)) != sizeof(one)) {
            /* Cannot happen with a fresh eventfd; the flag still stops the loop. */
        }
        g_thread_join(wt->thread);
        wt->thread = NULL;
    }
    /*
     * The guest must never stay protected: unprotect (which wakes), then
     * unregister (which wakes anything left), each block even if another
     * failed. Closing the descriptor would also release the ranges, but doing
     * it explicitly keeps the order obvious and reports failures.
     */
    for (unsigned i = 0; i < wt->blocks->len; i++) {
        RamBlock *rb = block_at(wt, i);
        if (!wt->registered[i]) {
            continue;
        }
        int ret = for_registered(wt, i, 0, rb->size, unprotect_run);
        if (ret < 0) {
            g_warning("background-snapshot: unprotecting RAM block '%s' failed: %s",
                      rb->name, g_strerror(-ret));
        }
        ret = for_registered(wt, i, 0, rb->size, unregister_run);
        if (ret < 0) {
            g_warning("background-snapshot: unregistering RAM block '%s' failed: %s",
                      rb->name, g_strerror(-ret));
        }
        wt->registered[i] = false;
        /*
         * Shared memory: write access back where the snapshot took it (see
         * shared-write.c). Not when epoch tracking ends (the capability
         * turned off, from the monitor's thread): that would cost it about
         * 0.3-0.5 s per GiB in memory here, where each page's next write costs
         * one fault, once.
         */
        if (ret == 0 && wt->let_go[i] && !wt->release_fn) {
            for_registered(wt, i, 0, rb->size, restore_write);
        }
    }
    if (wt->uffd >= 0) {
        close(wt->uffd);
        wt->uffd = -1;
    }
    if (wt->stop_fd >= 0) {
        close(wt->stop_fd);
        wt->stop_fd = -1;
    }
    wt->stopped = true;
}

void write_tracking_free(WriteTracking *wt)
{
    if (!wt) {
        return;
    }
    write_tracking_stop(wt);
    for (unsigned i = 0; wt->let_go && i < wt->blocks->len; i++) {
        bitmap_free(wt->let_go[i]);
    }
    g_free(wt->let_go);
    g_ptr_array_unref(wt->blocks);
    g_free(wt->registered);
    g_free(wt);
}

bool write_tracking_is_stopping(WriteTracking *wt)
{
    return __atomic_load_n(&wt->stopping, __ATOMIC_ACQUIRE);
}

uint64_t write_tracking_features(WriteTracking *wt)
{
    return wt->features;
}

bool write_tracking_has_wp_unpopulated(WriteTracking *wt)
{
    return wt->features & UFFD_FEATURE_WP_UNPOPULATED;
}

uint64_t write_tracking_events_read(WriteTracking *wt)
{
    return __atomic_load_n(&wt->events_read, __ATOMIC_RELAXED);
}

uint64_t write_tracking_register_ns(WriteTracking *wt)
{
    return wt->register_ns;
}

uint64_t write_tracking_protect_ns(WriteTracking *wt)
{
    return wt->protect_ns;
}
