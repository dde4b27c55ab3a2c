/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Benchmark: what keeping a huge page whole costs a fault, against splitting it and collapsing it later. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

#include "util/pagemap.h"
#include "util/userfaultfd.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define PAGE 4096ULL
#define HUGE (2ULL << 20)
#define REGIONS 64          /* 128 MiB of guest-like memory */
#define REPEATS 16

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* An aligned anonymous mapping, advised huge (or not) and populated. */
static uint8_t *map_aligned(uint64_t len, bool huge)
{
    uint8_t *raw = mmap(NULL, len + HUGE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) {
        return NULL;
    }
    uint8_t *p = (uint8_t *)(((uintptr_t)raw + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
    madvise(p, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    madvise(p, len, MADV_POPULATE_WRITE);
    return p;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double median_us(uint64_t *ns, unsigned n)
{
    qsort(ns, n, sizeof(*ns), cmp_u64);
    return ns[n / 2] / 1000.0;
}

/*
 * A fault's service for a block of @len bytes at @off of a protected region: copy
 * each page into @pool (page by page, as the snapshot does), then unprotect.
 */
static uint64_t serve(int uffd, uint8_t *mem, uint64_t off, uint64_t len, uint8_t *pool)
{
    uint64_t t = now_ns();

    for (uint64_t p = 0; p < len; p += PAGE) {
        memcpy(pool + p, mem + off + p, PAGE);
    }
    uffd_writeprotect(uffd, mem + off, len, false, false);
    return now_ns() - t;
}

int main(int argc, char **argv)
{
    uint64_t len = REGIONS * HUGE;
    uint8_t *mem = map_aligned(len, true);
    uint8_t *pool_huge = map_aligned(8 * HUGE, true);
    uint8_t *pool_small = map_aligned(8 * HUGE, false);
    uint64_t whole[REPEATS], block[REPEATS], small[REPEATS], collapse[REPEATS];
    uint64_t copy_small_pool[REPEATS];
    int pm = pagemap_open();

    if (!mem || !pool_huge || !pool_small || pm < 0) {
        fprintf(stderr, "thp-cost: cannot map memory or open pagemap\n");
        return 1;
    }
    memset(mem, 1, len);
    PagemapMaps maps = { .huge = g_new0(unsigned long, 2) };
    PagemapWalkInfo info;
    pagemap_walk(pm, mem, len, &maps, false, &info);
    unsigned huge_regions = __builtin_popcountl(maps.huge[0]);
    if (!info.huge_known || huge_regions < REGIONS / 2) {
        printf("thp-cost: %u of %u regions are huge (THP off or memory fragmented); "
               "nothing to measure\n", huge_regions, REGIONS);
        return 0;
    }

    int uffd = uffd_open(UFFD_FEATURE_PAGEFAULT_FLAG_WP, O_CLOEXEC | O_NONBLOCK, NULL);
    uint64_t ioctls = 0;
    if (uffd < 0 || uffd_register(uffd, mem, len, UFFDIO_REGISTER_MODE_WP, &ioctls) < 0 ||
        uffd_writeprotect(uffd, mem, len, true, false) < 0) {
        fprintf(stderr, "thp-cost: userfaultfd write-protect is not available: %s\n",
                g_strerror(uffd < 0 ? -uffd : errno));
        return 1;
    }
    for (unsigned i = 0; i < REPEATS; i++) {
        /* Whole: region i, copy all 2 MiB, one unprotect; the mapping stays huge. */
        whole[i] = serve(uffd, mem, i * HUGE, HUGE, pool_huge);
        /* Small: a 256 KiB block and a 4 KiB page of other regions (each split). */
        block[i] = serve(uffd, mem, (REPEATS + i) * HUGE, 64 * PAGE, pool_huge);
        small[i] = serve(uffd, mem, (2 * REPEATS + i) * HUGE, PAGE, pool_huge);
        /* The 2 MiB copy again, into 4 KiB buffers nobody has touched since populating. */
        copy_small_pool[i] = serve(uffd, mem, (3 * REPEATS + i) * HUGE, HUGE,
                                   pool_small + (i % 8) * HUGE);
    }
    /* Release the split regions whole, then collapse them (as the collapse thread does). */
    for (unsigned i = 0; i < REPEATS; i++) {
        uffd_writeprotect(uffd, mem + (REPEATS + i) * HUGE, HUGE, false, false);
        uint64_t t = now_ns();
        int ret = madvise(mem + (REPEATS + i) * HUGE, HUGE, MADV_COLLAPSE);
        collapse[i] = ret == 0 ? now_ns() - t : 0;
    }
    pagemap_walk(pm, mem, len, &maps, false, &info);
    unsigned after = __builtin_popcountl(maps.huge[0]);

    printf("| what (median of %u, on 2 MiB regions of THP-backed memory) | us |\n", REPEATS);
    printf("|---|---|\n");
    printf("| fault served whole: copy 2 MiB into huge pool buffers, one unprotect (stays huge) | %.0f |\n",
           median_us(whole, REPEATS));
    printf("| fault served small: copy 256 KiB, unprotect it (splits the huge page) | %.0f |\n",
           median_us(block, REPEATS));
    printf("| fault served small: copy 4 KiB, unprotect it (splits the huge page) | %.0f |\n",
           median_us(small, REPEATS));
    printf("| whole, into 4 KiB pool buffers touched for the first time | %.0f |\n",
           median_us(copy_small_pool, REPEATS));
    printf("| MADV_COLLAPSE of a split region, once saved and released | %.0f |\n",
           median_us(collapse, REPEATS));
    printf("\nHuge regions: %u of %u before, %u after (the small cases split %u; the %u of the "
           "256 KiB case were collapsed again, the 4 KiB ones left split).\n", huge_regions,
           REGIONS, after, 2 * REPEATS, REPEATS);
    return 0;
}
