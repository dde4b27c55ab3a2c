/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Benchmark: what each write tracker costs a writer and an epoch change (the measurements behind docs/incremental.md). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

#include "util/userfaultfd.h"

/*
 * The candidates for tracking guest writes between snapshots, measured on
 * an anonymous region written one byte per page (a guest sweeping memory):
 * a synchronous userfaultfd releasing each faulting page (or a 32-page run,
 * as epoch tracking does for sequential writers), an asynchronous one
 * (UFFD_FEATURE_WP_ASYNC) harvested and re-armed with PAGEMAP_SCAN, and
 * soft-dirty bits where the kernel has them. Then what changing between a
 * synchronous and an asynchronous userfaultfd at a snapshot would cost (a
 * VMA takes only one): unregistering clears every protection bit.
 */

#define PAGE 4096ull
#define MIB ((uint64_t)1 << 20)

/* PAGEMAP_SCAN (Linux 6.7) for older UAPI headers: the kernel's own values. */
#ifndef PAGEMAP_SCAN
struct page_region {
    uint64_t start, end, categories;
};
struct pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
    uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
#define PAGE_IS_WRITTEN (1 << 1)
#endif

typedef struct Region {
    uint8_t *p;
    uint64_t len;
    int uffd;
    int run;                /* pages the handler releases per fault */
    volatile bool stop;
} Region;

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static Region region_new(uint64_t len, bool thp)
{
    Region r = { .len = len, .uffd = -1, .run = 1 };
    uint8_t *p = mmap(NULL, len + 2 * MIB, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    g_assert(p != MAP_FAILED);
    r.p = (uint8_t *)(((uintptr_t)p + 2 * MIB - 1) & ~(uintptr_t)(2 * MIB - 1));
    madvise(r.p, len, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    for (uint64_t off = 0; off < len; off += PAGE) {
        r.p[off] = 1;
    }
    return r;
}

/* One write per page; microseconds per page. */
static double sweep_us(Region *r, uint8_t v)
{
    double t = now_ms();

    for (uint64_t off = 0; off < r->len; off += PAGE) {
        r->p[off] = v;
    }
    return (now_ms() - t) * 1e3 / (double)(r->len / PAGE);
}

static gpointer handler_main(gpointer opaque)
{
    Region *r = opaque;
    struct uffd_msg msgs[64];
    struct sched_param sp = { .sched_priority = 1 };

    pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
    while (!r->stop) {
        unsigned n = 0;

        if (uffd_wait(r->uffd, 50) <= 0 || uffd_read_events(r->uffd, msgs, 64, &n) < 0) {
            continue;
        }
        for (unsigned i = 0; i < n; i++) {
            uint64_t a = uffd_msg_fault_address(&msgs[i]) & ~(PAGE - 1);
            uint64_t end = MIN(a + r->run * PAGE, (uint64_t)(uintptr_t)(r->p + r->len));
            uffd_writeprotect(r->uffd, (void *)(uintptr_t)a, end - a, false, false);
        }
    }
    return NULL;
}

static int open_registered(Region *r, uint64_t features)
{
    uint64_t ioctls;
    int fd = uffd_open(features | UFFD_FEATURE_WP_UNPOPULATED, O_CLOEXEC | O_NONBLOCK, NULL);

    if (fd < 0 || uffd_register(fd, r->p, r->len, UFFDIO_REGISTER_MODE_WP, &ioctls) < 0) {
        return -1;
    }
    return fd;
}

/* PAGEMAP_SCAN over @r: pages written since the last re-arm (re-arming them if @rearm). */
static uint64_t scan_written(int pagemap, Region *r, bool rearm)
{
    static struct page_region vec[4096];
    uint64_t start = (uintptr_t)r->p, end = start + r->len, pages = 0;

    while (start < end) {
        struct pm_scan_arg a = {
            .size = sizeof(a), .start = start, .end = end,
            .flags = PM_SCAN_CHECK_WPASYNC | (rearm ? PM_SCAN_WP_MATCHING : 0),
            .vec = (uintptr_t)vec, .vec_len = G_N_ELEMENTS(vec),
            .category_mask = PAGE_IS_WRITTEN, .return_mask = PAGE_IS_WRITTEN,
        };
        long n = ioctl(pagemap, PAGEMAP_SCAN, &a);
        if (n < 0) {
            return UINT64_MAX;
        }
        for (long i = 0; i < n; i++) {
            pages += (vec[i].end - vec[i].start) / PAGE;
        }
        start = a.walk_end;
    }
    return pages;
}

static bool soft_dirty_works(void)
{
    Region r = region_new(PAGE * 4, false);
    int pm = open("/proc/self/pagemap", O_RDONLY);
    int cr = open("/proc/self/clear_refs", O_WRONLY);
    uint64_t e = 0;
    bool ok = false;

    if (pm >= 0 && cr >= 0 && write(cr, "4", 1) == 1) {
        r.p[0] = 2;
        ok = pread(pm, &e, 8, (off_t)((uintptr_t)r.p / PAGE * 8)) == 8 && ((e >> 55) & 1);
    }
    if (pm >= 0) {
        close(pm);
    }
    if (cr >= 0) {
        close(cr);
    }
    return ok;
}

static void measure(uint64_t len, bool thp)
{
    const char *kind = thp ? "anon-thp" : "anon-4k";
    int pagemap = open("/proc/self/pagemap", O_RDONLY);
    double t;

    /* Untracked: the reference. */
    Region r = region_new(len, thp);
    printf("%s %4" G_GUINT64_FORMAT " MiB  untracked write           %8.3f us/page\n", kind,
           len / MIB, sweep_us(&r, 2));

    /* Synchronous, releasing one page, then 32-page runs. */
    for (int run = 1; run <= 32; run *= 32) {
        r.uffd = open_registered(&r, 0);
        r.run = run;
        r.stop = false;
        GThread *th = g_thread_new("handler", handler_main, &r);
        uffd_writeprotect(r.uffd, r.p, len, true, false);
        printf("%s %4" G_GUINT64_FORMAT " MiB  sync WP, %2d-page release  %8.3f us/page\n",
               kind, len / MIB, run, sweep_us(&r, 3));
        r.stop = true;
        g_thread_join(th);
        t = now_ms();
        uffd_unregister(r.uffd, r.p, len);
        printf("%s %4" G_GUINT64_FORMAT " MiB  unregister (sync)         %8.2f ms\n", kind,
               len / MIB, now_ms() - t);
        close(r.uffd);
    }

    /* Asynchronous: the kernel resolves faults; PAGEMAP_SCAN harvests and re-arms. */
    r.uffd = open_registered(&r, UFFD_FEATURE_WP_ASYNC);
    if (r.uffd < 0) {
        printf("%s: no UFFD_FEATURE_WP_ASYNC on this kernel\n", kind);
        return;
    }
    t = now_ms();
    uffd_writeprotect(r.uffd, r.p, len, true, false);
    printf("%s %4" G_GUINT64_FORMAT " MiB  protect all (async)       %8.2f ms\n", kind,
           len / MIB, now_ms() - t);
    printf("%s %4" G_GUINT64_FORMAT " MiB  async WP first write      %8.3f us/page\n", kind,
           len / MIB, sweep_us(&r, 4));
    t = now_ms();
    uint64_t pages = scan_written(pagemap, &r, true);
    printf("%s %4" G_GUINT64_FORMAT " MiB  PAGEMAP_SCAN harvest+rearm %7.2f ms (%" G_GUINT64_FORMAT
           " pages written)\n", kind, len / MIB, now_ms() - t, pages);
    t = now_ms();
    pages = scan_written(pagemap, &r, true);
    printf("%s %4" G_GUINT64_FORMAT " MiB  PAGEMAP_SCAN, none written %7.2f ms (%" G_GUINT64_FORMAT
           ")\n", kind, len / MIB, now_ms() - t, pages);
    t = now_ms();
    uffd_unregister(r.uffd, r.p, len);
    printf("%s %4" G_GUINT64_FORMAT " MiB  unregister (async)        %8.2f ms  <- a switch to "
           "synchronous WP at each snapshot pays this in the pause\n", kind, len / MIB,
           now_ms() - t);
    close(r.uffd);
    close(pagemap);
    munmap(r.p, len);
}

int main(int argc, char **argv)
{
    uint64_t len = (argc > 1 ? g_ascii_strtoull(argv[1], NULL, 10) : 256) * MIB;

    printf("soft-dirty bits (clear_refs 4, pagemap bit 55): %s\n",
           soft_dirty_works() ? "work" : "not available (CONFIG_MEM_SOFT_DIRTY off?)");
    measure(len, false);
    measure(len, true);
    return 0;
}
