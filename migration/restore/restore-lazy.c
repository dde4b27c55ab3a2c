/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Lazy restore: guest RAM registered for userfaultfd missing-page faults, each
 * fault served from the image (checked first), and a fill thread that copies
 * the rest; once everything is in, RAM is unregistered and ordinary memory.
 */
#include "migration/restore/restore-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "accel/accel.h"
#include "migration/epoch-tracking.h"
#include "migration/incremental-snapshot.h"
#include "migration/savevm.h"
#include "system/machine.h"
#include "system/memory-backend.h"
#include "system/ram-populated.h"
#include "util/bitmap.h"
#include "util/error.h"
#include "util/huge-map.h"
#include "util/pagemap.h"
#include "util/userfaultfd.h"
#include "util/zero-page.h"

/*
 * A fault brings in the aligned 64 KiB around it: one read and one copy
 * instead of sixteen round trips when the guest walks memory, while the
 * faulting vCPU waits for little more than one page (DESIGN.md: 256 KiB
 * copies cost about 0.2 ms here, a fault round trip 5-10 us).
 */
#define LAZY_FAULT_PAGES 16u
/* The fill reads and copies 1 MiB at a time. */
#define LAZY_FILL_PAGES 256u
#define LAZY_EVENTS 32u
/* A transparent huge page: what the fill moves in whole where it can. */
#define LAZY_REGION_PAGES 512u
#define LAZY_REGION_SIZE ((uint64_t)LAZY_REGION_PAGES * MAPPED_RAM_PAGE_SIZE)
/* The fill yields to vCPUs and to the fault handler, without SCHED_IDLE's starvation. */
#define LAZY_FILL_NICE 10
#define LAZY_FAULT_NICE (-10)

static void set_own_nice(int nice)
{
    /* On Linux, PRIO_PROCESS with a thread id sets that thread's nice; best effort. */
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice);
}

/*
 * The fault thread runs whenever a vCPU waits on it: real-time priority where
 * allowed (its work per fault is bounded: one 64 KiB read and copy), else a
 * raised nice. On two busy cores this is what keeps the tail of fault service
 * short.
 */
static void raise_fault_thread(void)
{
    struct sched_param sp = { .sched_priority = 1 };

    if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) != 0) {
        set_own_nice(LAZY_FAULT_NICE);
    }
}

static RamBlock *lazy_block(RestoreState *r, uint32_t bi)
{
    return g_ptr_array_index(r->m->ram_blocks, bi);
}

static bool lazy_find(RestoreState *r, uint64_t addr, uint32_t *bi, uint64_t *page)
{
    for (uint32_t i = 0; i < r->m->ram_blocks->len; i++) {
        RamBlock *b = lazy_block(r, i);
        if (addr >= (uint64_t)(uintptr_t)b->host &&
            addr < (uint64_t)(uintptr_t)b->host + b->size) {
            *bi = i;
            *page = (addr - (uint64_t)(uintptr_t)b->host) / MAPPED_RAM_PAGE_SIZE;
            return true;
        }
    }
    return false;
}

/* Count pages [first, first + n) of block @bi as in guest RAM (once each). */
static void lazy_mark_placed(RestoreState *r, uint32_t bi, uint64_t first, uint64_t n,
                             bool by_fault)
{
    uint64_t newly = 0;

    for (uint64_t i = 0; i < n; i++) {
        newly += !bitmap_test_and_set_atomic(r->resolved[bi], first + i);
    }
    restore_progress(r, newly);
    if (by_fault) {
        __atomic_fetch_add(&r->fault_pages, newly, __ATOMIC_RELAXED);
    }
}

/*
 * Place pages [first, first + n) of block @bi from @buf (zero pages by
 * UFFDIO_ZEROPAGE when @zero). A page already there (the other thread, or
 * an earlier fault, was first) is skipped: UFFDIO_COPY never overwrites, so
 * a page the guest has written since stays as it is. Returns 0 or -errno.
 */
static int lazy_place(RestoreState *r, uint32_t bi, uint64_t first, uint32_t n,
                      const uint8_t *buf, bool zero, bool by_fault)
{
    RamBlock *b = lazy_block(r, bi);
    uint64_t done = 0, len = (uint64_t)n * MAPPED_RAM_PAGE_SIZE;

    while (done < len) {
        uint64_t moved = 0;
        uint8_t *dst = b->host + first * MAPPED_RAM_PAGE_SIZE + done;
        int ret = zero ? uffd_zeropage(r->uffd, dst, len - done, &moved)
                       : uffd_copy(r->uffd, dst, buf + done, len - done, false, &moved);

        done += moved;
        if (ret == -EEXIST) {
            done += MAPPED_RAM_PAGE_SIZE;
        } else if (ret < 0) {
            return ret;
        }
    }
    if (!zero) {
        lazy_mark_placed(r, bi, first, n, by_fault);
    }
    return 0;
}

/*
 * Where the fill reads a region before moving it in: 2 MiB, aligned, on a
 * transparent huge page; NULL when no block can take moves.
 */
static uint8_t *lazy_stage_new(RestoreState *r)
{
    bool any = false;
    uint8_t *stage;

    for (uint32_t i = 0; i < r->m->ram_blocks->len; i++) {
        any |= r->can_move[i];
    }
    stage = any ? huge_map_anonymous(LAZY_REGION_SIZE) : NULL;
    if (stage) {
        madvise(stage, LAZY_REGION_SIZE, MADV_HUGEPAGE);
    }
    return stage;
}

/* Region @first of block @bi: whole in the image, and untouched by faults so far. */
static bool lazy_region_whole(RestoreState *r, uint32_t bi, uint64_t first)
{
    uint64_t page = first;

    if (first % LAZY_REGION_PAGES ||
        mapped_ram_image_next_run(r->img, bi, &page, LAZY_REGION_PAGES) != LAZY_REGION_PAGES ||
        page != first) {
        return false;
    }
    for (uint64_t i = first; i < first + LAZY_REGION_PAGES; i++) {
        if (bitmap_test_atomic(r->resolved[bi], i)) {
            return false;
        }
    }
    return true;
}

/*
 * Bring such a region in as one huge page: read and check it in the stage,
 * then move it into place (no copy, no MADV_COLLAPSE after the fill: copying
 * 4 KiB pages in and collapsing them allocated the memory twice, and a
 * collapse holds the mmap lock). A fault that placed pages meanwhile makes
 * the move fail (-EEXIST) or stop short; the rest is then copied from the
 * stage, skipping what is there, as everywhere else.
 */
static bool lazy_move_region(RestoreState *r, uint32_t bi, uint64_t first, uint8_t *stage,
                             GError **errp)
{
    uint8_t *dst = lazy_block(r, bi)->host + first * MAPPED_RAM_PAGE_SIZE;
    uint64_t moved = 0;
    int ret;

    if (!mapped_ram_image_read(r->img, bi, first, LAZY_REGION_PAGES, stage, errp)) {
        return false;
    }
    ret = uffd_move(r->uffd, dst, stage, LAZY_REGION_SIZE, &moved);
    if (ret < 0 && ret != -EEXIST) {
        /* Refused for another reason (a page of the stage shared): copy from now on. */
        r->can_move[bi] = false;
    }
    if (moved == LAZY_REGION_SIZE) {
        __atomic_fetch_add(&r->huge_moved, 1, __ATOMIC_RELAXED);
    }
    lazy_mark_placed(r, bi, first, moved / MAPPED_RAM_PAGE_SIZE, false);
    if (moved < LAZY_REGION_SIZE) {
        ret = lazy_place(r, bi, first + moved / MAPPED_RAM_PAGE_SIZE,
                         (uint32_t)((LAZY_REGION_SIZE - moved) / MAPPED_RAM_PAGE_SIZE),
                         stage + moved, false, false);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "restore: cannot place pages at 0x%" PRIx64
                             " of RAM block '%s'", first * MAPPED_RAM_PAGE_SIZE,
                             lazy_block(r, bi)->name);
            return false;
        }
    }
    return true;
}

/*
 * Read, check and place pages [first, first + n) of block @bi: present runs
 * copied, absent runs (zero pages) mapped as zero only when @with_zero (a
 * fault needs its page; the fill leaves zero pages to the kernel, which
 * gives fresh memory once RAM is unregistered).
 */
static bool lazy_fill_range(RestoreState *r, uint32_t bi, uint64_t first, uint32_t n,
                            uint8_t *buf, bool with_zero, bool by_fault, GError **errp)
{
    MappedRamImage *img = r->img;
    uint32_t i = 0;

    if (!mapped_ram_image_read(img, bi, first, n, buf, errp)) {
        return false;
    }
    while (i < n) {
        uint32_t start = i;
        bool present = mapped_ram_image_present(img, bi, first + i);
        int ret = 0;

        while (i < n && mapped_ram_image_present(img, bi, first + i) == present) {
            i++;
        }
        if (present || with_zero) {
            ret = lazy_place(r, bi, first + start, i - start,
                             buf + (size_t)start * MAPPED_RAM_PAGE_SIZE, !present, by_fault);
        }
        if (ret < 0) {
            error_setg_errno(errp, -ret, "restore: cannot place pages at 0x%" PRIx64
                             " of RAM block '%s'", (first + start) * MAPPED_RAM_PAGE_SIZE,
                             lazy_block(r, bi)->name);
            return false;
        }
    }
    return true;
}

/* A vCPU that will never get its page: let the accelerator count it as stopped. */
static void lazy_note_blocked(RestoreState *r, const struct uffd_msg *msg)
{
    const AccelOps *ops = r->m->accel;

    if (ops && ops->vcpu_blocked) {
        ops->vcpu_blocked(r->m, (int)uffd_msg_fault_thread(msg));
    }
}

static void lazy_serve_fault(RestoreState *r, const struct uffd_msg *msg, uint8_t *buf)
{
    uint64_t read_ns = g_get_monotonic_time() * 1000;
    g_autoptr(GError) err = NULL;
    uint32_t bi;
    uint64_t page, first, n;

    if (restore_should_stop(r) ||
        !lazy_find(r, uffd_msg_fault_address(msg), &bi, &page)) {
        lazy_note_blocked(r, msg);
        return;
    }
    first = page / LAZY_FAULT_PAGES * LAZY_FAULT_PAGES;
    n = MIN(LAZY_FAULT_PAGES, mapped_ram_block_pages(lazy_block(r, bi)->size) - first);
    if (!lazy_fill_range(r, bi, first, (uint32_t)n, buf, true, true, &err)) {
        /* The faulting thread stays blocked: garbage never reaches the guest. */
        restore_fill_failed(r, g_steal_pointer(&err));
        lazy_note_blocked(r, msg);
        return;
    }
    __atomic_fetch_add(&r->faults, 1, __ATOMIC_RELAXED);
    latency_histogram_record(&r->fault_latency, g_get_monotonic_time() * 1000 - read_ns);
}

static gpointer lazy_fault_thread(gpointer opaque)
{
    RestoreState *r = opaque;
    g_autofree uint8_t *buf = g_malloc((size_t)LAZY_FAULT_PAGES * MAPPED_RAM_PAGE_SIZE);
    struct uffd_msg msgs[LAZY_EVENTS];

    raise_fault_thread();
    while (!__atomic_load_n(&r->stopping, __ATOMIC_ACQUIRE)) {
        unsigned n = 0;
        int w = uffd_wait2(r->uffd, r->wake_fd, -1);

        if (w < 0 || (w & UFFD_WAIT_WAKE)) {
            break;
        }
        if (uffd_read_events(r->uffd, msgs, LAZY_EVENTS, &n) < 0) {
            break;
        }
        for (unsigned i = 0; i < n; i++) {
            if (uffd_msg_is_pagefault(&msgs[i])) {
                lazy_serve_fault(r, &msgs[i], buf);
            }
        }
    }
    return NULL;
}

/* Unregister guest RAM and close the userfaultfd: threads still blocked wake. */
static void lazy_release(RestoreState *r)
{
    if (r->uffd < 0) {
        return;
    }
    for (uint32_t i = 0; i < r->m->ram_blocks->len; i++) {
        RamBlock *b = lazy_block(r, i);
        uffd_unregister(r->uffd, b->host, b->size);
    }
    close(r->uffd);
    r->uffd = -1;
}

/*
 * UFFDIO_COPY fills 4 KiB pages only: without this a lazily restored guest
 * runs on small pages for good (TLB misses; on a paravirtual host each
 * first touch of a small page costs the hypervisor a fault too). Once the
 * fill is over, regions it filled completely become huge pages again.
 */
static void lazy_collapse_huge(RestoreState *r)
{
    int fd = pagemap_open();

    if (fd < 0) {
        return;
    }
    for (uint32_t i = 0; i < r->m->ram_blocks->len && !restore_should_stop(r); i++) {
        uint64_t n = ram_block_collapse_filled(lazy_block(r, i), fd);
        if (n) {
            g_debug("restore: %" G_GUINT64_FORMAT " huge pages of RAM block '%s' collapsed "
                    "after the fill", n, lazy_block(r, i)->name);
        }
    }
    close(fd);
}

static void lazy_stop_fault_thread(RestoreState *r)
{
    uint64_t one = 1;
    GThread *t = __atomic_exchange_n(&r->fault_thread, NULL, __ATOMIC_ACQ_REL);

    if (!t) {
        return;
    }
    if (write(r->wake_fd, &one, sizeof(one)) < 0) {
        /* Only a saturated counter fails, and then the thread is woken already. */
    }
    g_thread_join(t);
}

/*
 * Pages the guest changed before tracking began (@et protects everything by
 * now, so any later write faults and is recorded): present pages that differ
 * from the image, and absent pages that hold data. Present pages are told by
 * their checksums, which the fill has read already, not by reading the image
 * again. The guest runs meanwhile; a page it writes during the search is
 * found either way.
 */
static bool lazy_find_changed(RestoreState *r, EpochTracking *et, GError **errp)
{
    MappedRamImage *img = r->img;
    int pagemap_fd = pagemap_open();
    bool ok = true;

    for (uint32_t bi = 0; ok && bi < img->h.nblocks; bi++) {
        RamBlock *b = lazy_block(r, bi);
        uint64_t pages = mapped_ram_block_pages(b->size);
        g_autofree unsigned long *zero = bitmap_new(pages);
        uint64_t page = 0, n;

        while (ok && (n = mapped_ram_image_next_run(img, bi, &page, LAZY_FILL_PAGES))) {
            if (restore_should_stop(r)) {
                error_setg(errp, "the restore is stopping");
                ok = false;
                break;
            }
            for (uint64_t end = page + n; ok && page < end; page++) {
                bool unchanged;

                ok = mapped_ram_image_page_unchanged(img, bi, page,
                                                     b->host + page * MAPPED_RAM_PAGE_SIZE,
                                                     &unchanged, errp);
                if (ok && !unchanged) {
                    epoch_tracking_mark_written(et, bi, page, 1);
                }
            }
        }
        /*
         * Absent pages are zero in the image. Asked after the protection, the
         * page tables (or a shared file's holes) show every one written
         * before it; only those are read, so untouched memory stays so.
         */
        ok = ok && ram_block_find_zero(b, pagemap_fd, NULL, zero, NULL, NULL, errp);
        for (page = 0; ok && (page = bitmap_find_next_zero(zero, pages, page)) < pages; page++) {
            if (!mapped_ram_image_present(img, bi, page) &&
                !buffer_is_zero(b->host + page * MAPPED_RAM_PAGE_SIZE, MAPPED_RAM_PAGE_SIZE)) {
                epoch_tracking_mark_written(et, bi, page, 1);
            }
        }
    }
    if (pagemap_fd >= 0) {
        close(pagemap_fd);
    }
    return ok;
}

/*
 * The fill's end with incremental-snapshot on: the image becomes the first
 * of the epoch chain, and the guest keeps running. Huge pages are put back
 * first (a write-protected region does not collapse; a region the fill
 * populated whole collapses while registered for missing faults). RAM then
 * goes from the fill's userfaultfd to tracking's, which protects all of it;
 * a write in between is in RAM's content, so the pages changed before the
 * protection are found by content, before the fill counts as done (a
 * snapshot waits for it).
 */
static void lazy_end_tracked(RestoreState *r)
{
    g_autoptr(GError) err = NULL;
    EpochTracking *et;

    lazy_collapse_huge(r);
    lazy_stop_fault_thread(r);
    if (restore_should_stop(r)) {
        /* A fault failed meanwhile: its vCPU must stay blocked, RAM stays registered. */
        return;
    }
    lazy_release(r);
    et = incremental_snapshot_restored_begin(r->s, r->img->path, &r->info,
                                             r->have_image_st ? &r->image_st : NULL, &err);
    if (et) {
        /* Private until published: nobody else can free it meanwhile. */
        if (lazy_find_changed(r, et, &err)) {
            incremental_snapshot_restored_publish(r->s, et);
        } else {
            epoch_tracking_free(et);
        }
    }
    if (err && !restore_should_stop(r)) {
        g_printerr("frostvm: warning: the restored image %s cannot be a snapshot-base: %s\n",
                   r->img->path, err->message);
    }
    if (!restore_should_stop(r)) {
        restore_fill_done(r);
    }
}

/* Copy (or move) every present page no fault brought in; false if the fill must end here. */
static bool lazy_fill_all(RestoreState *r, uint8_t *buf, uint8_t *stage)
{
    MappedRamImage *img = r->img;
    GError *err = NULL;

    for (uint32_t bi = 0; bi < img->h.nblocks; bi++) {
        uint64_t page = 0, n;

        while ((n = mapped_ram_image_next_run(img, bi, &page, LAZY_FILL_PAGES))) {
            uint64_t end;

            if (restore_should_stop(r)) {
                return false;
            }
            if (stage && r->can_move[bi]) {
                if (lazy_region_whole(r, bi, page)) {
                    if (!lazy_move_region(r, bi, page, stage, &err)) {
                        restore_fill_failed(r, err);
                        return false;
                    }
                    restore_throttle(r, LAZY_REGION_SIZE);
                    page += LAZY_REGION_PAGES;
                    continue;
                }
                /* Up to the next region, which may go in whole. */
                n = MIN(n, LAZY_REGION_PAGES - page % LAZY_REGION_PAGES);
            }
            end = page + n;
            /* Only what no fault brought in yet. */
            while (page < end) {
                uint64_t start = page;
                while (start < end && bitmap_test_atomic(r->resolved[bi], start)) {
                    start++;
                }
                page = start;
                while (page < end && !bitmap_test_atomic(r->resolved[bi], page)) {
                    page++;
                }
                if (page > start &&
                    !lazy_fill_range(r, bi, start, (uint32_t)(page - start), buf, false,
                                     false, &err)) {
                    restore_fill_failed(r, err);
                    return false;
                }
                restore_throttle(r, (page - start) * MAPPED_RAM_PAGE_SIZE);
            }
        }
    }
    return true;
}

static gpointer lazy_fill_thread(gpointer opaque)
{
    RestoreState *r = opaque;
    g_autofree uint8_t *buf = g_malloc((size_t)LAZY_FILL_PAGES * MAPPED_RAM_PAGE_SIZE);
    uint8_t *stage = lazy_stage_new(r);
    bool filled;

    set_own_nice(LAZY_FILL_NICE);
    filled = lazy_fill_all(r, buf, stage);
    if (stage) {
        munmap(stage, LAZY_REGION_SIZE);
    }
    if (!filled) {
        return NULL;
    }
    /*
     * Every present page is in: absent pages are zero, which fresh memory
     * is. Unregistering turns RAM into ordinary memory (snapshots, precopy
     * and the dirty log work on it as on any guest).
     */
    if (migration_capability_enabled(r->s, MIGRATION_CAPABILITY_INCREMENTAL_SNAPSHOT)) {
        lazy_end_tracked(r);
        return NULL;
    }
    lazy_stop_fault_thread(r);
    if (restore_should_stop(r)) {
        /* A fault failed meanwhile: its vCPU must stay blocked, RAM stays registered. */
        return NULL;
    }
    lazy_release(r);
    lazy_collapse_huge(r);
    restore_fill_done(r);
    return NULL;
}

/*
 * Whether the fill may move whole regions into block @i: UFFDIO_MOVE offered
 * for it, private anonymous memory on transparent huge pages, 2 MiB aligned.
 */
static bool lazy_block_can_move(RestoreState *r, uint32_t i, uint64_t ioctls)
{
    RamBlock *b = lazy_block(r, i);
    MemoryBackend *be = b->backend;

    return (ioctls & (1ull << _UFFDIO_MOVE)) &&
           (!be || (be->backing == MEMORY_BACKING_ANONYMOUS && be->thp)) &&
           (uintptr_t)b->host % LAZY_REGION_SIZE == 0;
}

bool restore_lazy_start(RestoreState *r, GError **errp)
{
    uint64_t missing = 0, features = 0;
    int fd;

    for (uint32_t i = 0; i < r->m->ram_blocks->len; i++) {
        RamBlock *b = lazy_block(r, i);
        if (b->page_size > MAPPED_RAM_PAGE_SIZE) {
            error_setg(errp, "restore-mode lazy: RAM block '%s' is backed by %" PRIu64
                       " KiB pages; lazy restore serves 4 KiB pages (use restore-mode eager)",
                       b->name, b->page_size >> 10);
            return false;
        }
        r->resolved[i] = bitmap_new(mapped_ram_block_pages(b->size));
    }
    /* Moves (Linux 6.8) where the kernel has them; copies do everything otherwise. */
    if (uffd_query_features(&features, NULL) < 0) {
        features = 0;
    }
    fd = uffd_open(UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_MISSING_SHMEM |
                   (features & UFFD_FEATURE_MOVE), O_CLOEXEC | O_NONBLOCK, &missing);
    if (fd < 0) {
        error_setg_errno(errp, -fd, "restore-mode lazy: cannot open a userfaultfd%s",
                         fd == -EOPNOTSUPP ? " with missing-page faults on shmem" : "");
        return false;
    }
    r->uffd = fd;
    for (uint32_t i = 0; i < r->m->ram_blocks->len; i++) {
        RamBlock *b = lazy_block(r, i);
        uint64_t ioctls = 0;
        int ret = uffd_register(fd, b->host, b->size, UFFDIO_REGISTER_MODE_MISSING, &ioctls);

        if (ret == 0 && !(ioctls & (1ull << _UFFDIO_COPY))) {
            ret = -EOPNOTSUPP;
        }
        if (ret < 0) {
            error_setg_errno(errp, -ret, "restore-mode lazy: cannot register RAM block '%s' "
                             "for missing-page faults (use restore-mode eager)", b->name);
            lazy_release(r);
            return false;
        }
        r->can_move[i] = (features & UFFD_FEATURE_MOVE) && lazy_block_can_move(r, i, ioctls);
    }
    r->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (r->wake_fd < 0) {
        error_setg_errno(errp, errno, "restore-mode lazy: eventfd");
        lazy_release(r);
        return false;
    }
    r->fault_thread = g_thread_new("restore-fault", lazy_fault_thread, r);
    r->fill_thread = g_thread_new("restore-fill", lazy_fill_thread, r);
    return true;
}

void restore_lazy_stop(RestoreState *r)
{
    __atomic_store_n(&r->stopping, true, __ATOMIC_RELEASE);
    if (r->fill_thread) {
        g_thread_join(r->fill_thread);
        r->fill_thread = NULL;
    }
    if (r->wake_fd >= 0) {
        lazy_stop_fault_thread(r);
        close(r->wake_fd);
        r->wake_fd = -1;
    }
    lazy_release(r);
    for (uint32_t i = 0; i < MAPPED_RAM_MAX_BLOCKS; i++) {
        g_clear_pointer(&r->resolved[i], bitmap_free);
    }
}
