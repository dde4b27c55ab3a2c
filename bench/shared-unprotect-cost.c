/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Benchmark: what a guest's writes cost after a write-protect cycle, on
 * private anonymous memory against shared memory (memfd). The kernel maps
 * registered shared pages read-only to see their writes, and neither
 * UFFDIO_WRITEPROTECT's unprotect nor UFFDIO_UNREGISTER makes them writable
 * again: each page's next write faults. Also what MADV_POPULATE_WRITE (the
 * kernel resolving those faults ahead) leaves for the writer, and what
 * shared_write_restore() (a protection change once unregistered) does.
 * docs/background-snapshot.md ("Where the time goes") has a run.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

#include "system/shared-write.h"
#include "util/userfaultfd.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define PAGE 4096ULL
#define SIZE (128ULL << 20)

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long minor_faults(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

/* One write per page, as a sweeping guest does: its time and the page faults it took. */
static void write_pass(uint8_t *mem, const char *what, const char *after)
{
    long f0 = minor_faults();
    double t0 = now_ms();

    for (uint64_t off = 0; off < SIZE; off += PAGE) {
        mem[off + 8]++;
    }
    printf("| %s | %s | %.1f | %ld |\n", what, after, now_ms() - t0, minor_faults() - f0);
}

static uint8_t *map_memory(bool shared)
{
    void *p;

    if (shared) {
        int fd = memfd_create("shared-unprotect-cost", MFD_CLOEXEC);
        if (fd < 0 || ftruncate(fd, SIZE) != 0) {
            return NULL;
        }
        p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
    } else {
        p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    }
    return p == MAP_FAILED ? NULL : p;
}

/*
 * @populate: MADV_POPULATE_WRITE after the unprotect and after the
 * unregister; @restore: shared_write_restore() after the unregister.
 */
static int run(bool shared, bool populate, bool restore)
{
    const char *what = shared ? (populate ? "memfd, MADV_POPULATE_WRITE after each"
                                 : restore ? "memfd, shared_write_restore() after unregistering"
                                 : "memfd")
                              : "anonymous";
    uint8_t *mem = map_memory(shared);
    uint64_t ioctls = 0;
    double t0;

    if (!mem) {
        fprintf(stderr, "cannot map %s memory: %s\n", what, strerror(errno));
        return 1;
    }
    /* 4 KiB pages both ways: the shared side has no huge pages by default either. */
    madvise(mem, SIZE, MADV_NOHUGEPAGE);
    write_pass(mem, what, "first write (populating)");
    write_pass(mem, what, "second write");

    int uffd = uffd_open(UFFD_FEATURE_PAGEFAULT_FLAG_WP |
                         (shared ? UFFD_FEATURE_WP_HUGETLBFS_SHMEM : 0), O_CLOEXEC, NULL);
    if (uffd < 0 || uffd_register(uffd, mem, SIZE, UFFDIO_REGISTER_MODE_WP, &ioctls) < 0) {
        fprintf(stderr, "cannot register %s memory for write-protect\n", what);
        return 1;
    }
    t0 = now_ms();
    uffd_writeprotect(uffd, mem, SIZE, true, false);
    double protect = now_ms() - t0;
    t0 = now_ms();
    uffd_writeprotect(uffd, mem, SIZE, false, false);
    double unprotect = now_ms() - t0;
    printf("| %s | protect / unprotect itself | %.1f / %.1f | - |\n", what, protect, unprotect);
    if (populate) {
        t0 = now_ms();
        madvise(mem, SIZE, MADV_POPULATE_WRITE);
        printf("| %s | MADV_POPULATE_WRITE itself | %.1f | - |\n", what, now_ms() - t0);
    }
    write_pass(mem, what, "write after protect and unprotect");
    write_pass(mem, what, "write again");

    uffd_writeprotect(uffd, mem, SIZE, true, false);
    uffd_writeprotect(uffd, mem, SIZE, false, false);
    write_pass(mem, what, "write after protecting and unprotecting writable pages");
    uffd_unregister(uffd, mem, SIZE);
    close(uffd);
    if (populate) {
        madvise(mem, SIZE, MADV_POPULATE_WRITE);
    }
    if (restore) {
        t0 = now_ms();
        int ret = shared_write_restore(mem, SIZE);
        printf("| %s | shared_write_restore() itself (%s) | %.1f | - |\n", what,
               ret < 0 ? strerror(-ret) : "done", now_ms() - t0);
    }
    write_pass(mem, what, "write after unregistering");
    munmap(mem, SIZE);
    return 0;
}

int main(void)
{
    printf("128 MiB of 4 KiB pages, one write per page per pass; ms and minor page faults.\n\n");
    printf("| memory | pass | ms | page faults |\n|---|---|---|---|\n");
    return run(false, false, false) | run(true, false, false) | run(true, true, false) |
           run(true, false, true);
}
