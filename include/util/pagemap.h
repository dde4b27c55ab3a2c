/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Which pages of a mapping are populated, huge or zero: /proc/self/pagemap and its PAGEMAP_SCAN ioctl. */
#ifndef UTIL_PAGEMAP_H
#define UTIL_PAGEMAP_H

#include <stdbool.h>
#include <stdint.h>

#define PAGEMAP_PAGE_SIZE 4096ULL
#define PAGEMAP_HUGE_SIZE (2ULL << 20)
#define PAGEMAP_HUGE_PAGES (PAGEMAP_HUGE_SIZE / PAGEMAP_PAGE_SIZE)

/*
 * What one walk found, one bit per 4 KiB page (bit 0 is the first page of the
 * range) unless said otherwise. The caller owns the bitmaps (util/bitmap.h
 * layout) and sizes them for the range; NULL skips a map.
 */
typedef struct PagemapMaps {
    unsigned long *populated;   /* present in the page table, or swapped out */
    unsigned long *present;     /* present in the page table (no swap entry, no marker) */
    unsigned long *zero;        /* present, mapped to the shared zero page (content zero) */
    unsigned long *huge;        /* one bit per 2 MiB from the start: mapped by one huge PMD */
    /*
     * No data: not @populated (a hole, or a write-protect marker), or @zero.
     * Set over the whole range first, then cleared where data is: the walk
     * of a large, mostly empty range writes this one map once instead of
     * @populated and @zero, and nobody has to invert them after.
     */
    unsigned long *empty;
} PagemapMaps;

/* How a walk was done, for figures and tests. */
typedef struct PagemapWalkInfo {
    bool used_scan;             /* PAGEMAP_SCAN (Linux 6.7+); else pagemap entries were read */
    bool huge_known;            /* @huge is exact (PAGEMAP_SCAN); else a guess, see below */
    uint64_t calls;             /* ioctl or pread calls made */
} PagemapWalkInfo;

/* Open /proc/self/pagemap read-only: a descriptor, or -errno. */
int pagemap_open(void);

/* Whether this kernel answers PAGEMAP_SCAN on @fd (probed once per process). */
bool pagemap_has_scan(int fd);

/*
 * Walk [@start, @start + @len) of this process (page aligned; @start 2 MiB
 * aligned when @maps->huge is wanted) and fill @maps, clearing what it does
 * not set. With PAGEMAP_SCAN the walk costs microseconds per GiB and every
 * map is exact. Without it (older kernels, or @force_entries) the 64-bit
 * pagemap entries are read instead (milliseconds per GiB); then zero pages
 * are not told apart (never set) and a 2 MiB region counts as huge when all
 * its pages are present, which is what a huge PMD looks like there.
 * Returns 0 or -errno (nothing reliable in @maps then).
 */
int pagemap_walk(int fd, const void *start, uint64_t len, const PagemapMaps *maps,
                 bool force_entries, PagemapWalkInfo *info);

#endif
