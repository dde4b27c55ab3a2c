/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Known-zero and huge-mapped pages of RAM blocks, from the page tables or the backing file's holes. */
#include "system/ram-populated.h"

#include <errno.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "system/machine.h"
#include "system/memory-backend.h"
#include "util/bitmap.h"
#include "util/error.h"
#include "util/pagemap.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef __NR_cachestat
#define __NR_cachestat 451     /* Linux 6.5 (x86-64, arm64 and most others; not alpha) */
#endif

/* cachestat(2)'s range and answer (linux/mman.h from 6.5 on). */
typedef struct FileCacheRange {
    uint64_t off;
    uint64_t len;
} FileCacheRange;

typedef struct FileCacheStat {
    uint64_t nr_cache;
    uint64_t nr_dirty;
    uint64_t nr_writeback;
    uint64_t nr_evicted;
    uint64_t nr_recently_evicted;
} FileCacheStat;

/* Shared mappings of the backend's own file: their holes are the unpopulated pages. */
static bool ram_block_is_shared_file(RamBlock *rb)
{
    MemoryBackend *be = rb->backend;

    return be && be->fd >= 0 && be->opts.share && (void *)rb->host == be->host;
}

/* Private anonymous memory: what the page tables say is all there is. */
static bool ram_block_is_anonymous(RamBlock *rb)
{
    MemoryBackend *be = rb->backend;

    return !be || (be->fd < 0 && be->backing == MEMORY_BACKING_ANONYMOUS);
}

/*
 * hugetlbfs answers SEEK_HOLE with "all data" (Linux 6.18), and reading a
 * hole through the mapping allocates and clears a huge page (a snapshot of a
 * 512 MiB guest using 128 MiB spent two thirds of its CPU clearing the rest).
 * A file that only this mapping ever touched holds data only where the page
 * tables say so.
 */
static bool ram_block_holes_in_page_tables(RamBlock *rb)
{
    MemoryBackend *be = rb->backend;

    return be && be->fd >= 0 && be->fresh && be->backing == MEMORY_BACKING_HUGETLBFS &&
           (void *)rb->host == be->host;
}

/*
 * Another hugetlbfs file (an existing mem-path file) may hold pages that no
 * mapping of ours touched, so its page tables prove something only once
 * checked against the file: see hugetlb_file_all_mapped().
 */
static bool ram_block_hugetlb_unproven(RamBlock *rb)
{
    MemoryBackend *be = rb->backend;

    return be && be->fd >= 0 && !be->fresh && be->opts.share &&
           be->backing == MEMORY_BACKING_HUGETLBFS && (void *)rb->host == be->host;
}

/*
 * Whether every page of @rb's hugetlbfs file is one our page tables map
 * (@zero: what a walk of them found empty), so that they tell its holes.
 * hugetlbfs counts each page it allocates in the file's blocks; when those
 * come to what the walk found mapped, the file has no page we do not map.
 * The walk comes first: a page added after it makes the file larger than
 * the walk, never smaller.
 */
static bool hugetlb_file_all_mapped(RamBlock *rb, const unsigned long *zero)
{
    uint64_t pages = rb->size / MACHINE_PAGE_SIZE;
    uint64_t mapped = (pages - bitmap_count_set(zero, pages)) * MACHINE_PAGE_SIZE;
    struct stat st;

    return fstat(rb->backend->fd, &st) == 0 && (uint64_t)st.st_size == rb->size &&
           (uint64_t)st.st_blocks * 512 == mapped;
}

uint32_t ram_block_file_extent(RamBlock *rb, uint64_t offset, uint32_t n, bool *hole)
{
    MemoryBackend *be = rb->backend;
    off_t next;

    *hole = false;
    if (!ram_block_is_shared_file(rb)) {
        return n;
    }
    next = lseek(be->fd, (off_t)offset, SEEK_DATA);
    if (next < 0) {
        /* ENXIO: only holes from @offset to the end of the file. */
        *hole = errno == ENXIO;
        return n;
    }
    if ((uint64_t)next > offset) {
        *hole = true;
    } else {
        next = lseek(be->fd, (off_t)offset, SEEK_HOLE);
        if (next < 0) {
            return n;
        }
    }
    /* Holes and data are page-granular in the page cache; never return 0. */
    return (uint32_t)MAX(1, MIN((uint64_t)n, ((uint64_t)next - offset) / MACHINE_PAGE_SIZE));
}

/*
 * Pages of [@p, @end) of a shmem file that hold data, in memory or swapped
 * out (cachestat() counts those as evicted); negative when not known.
 */
static int64_t shmem_data_pages(RamBlock *rb, uint64_t p, uint64_t end)
{
    FileCacheRange range = { p * MACHINE_PAGE_SIZE, (end - p) * MACHINE_PAGE_SIZE };
    FileCacheStat cs;

    if (syscall(__NR_cachestat, rb->backend->fd, &range, &cs, 0) != 0) {
        return -1;
    }
    return (int64_t)(cs.nr_cache + cs.nr_evicted);
}

/* Below this many pages a mixed piece is asked page by page (SEEK_DATA, which stops at once on data). */
#define SHMEM_PROBE_PAGES 64u

/* The holes of [@p, @end) with SEEK_DATA alone: each call skips a hole or confirms a page. */
static bool probe_shmem_holes(RamBlock *rb, unsigned long *zero, uint64_t p, uint64_t end)
{
    while (p < end) {
        off_t next = lseek(rb->backend->fd, (off_t)(p * MACHINE_PAGE_SIZE), SEEK_DATA);
        uint64_t d;

        if (next < 0 && errno != ENXIO) {
            return false;
        }
        d = next < 0 ? end : MIN(end, (uint64_t)next / MACHINE_PAGE_SIZE);
        bitmap_set_range(zero, p, d - p);
        p = d + 1;
    }
    return true;
}

/*
 * The holes of [@p, @end) by halving until each piece is all data or all
 * holes. A piece counted empty is confirmed with SEEK_DATA before it is
 * called zero: a wrong count (cachestat() read folios unpinned before Linux
 * 6.8) must never turn data into a hole in an image.
 */
static bool find_shmem_holes(RamBlock *rb, unsigned long *zero, uint64_t p, uint64_t end)
{
    int64_t data = shmem_data_pages(rb, p, end);

    if (data < 0) {
        return false;
    }
    if ((uint64_t)data >= end - p) {
        return true;
    }
    if (data == 0 || end - p <= SHMEM_PROBE_PAGES) {
        return probe_shmem_holes(rb, zero, p, end);
    }
    uint64_t mid = p + (end - p) / 2;
    return find_shmem_holes(rb, zero, p, mid) && find_shmem_holes(rb, zero, mid, end);
}

/* Set in @zero the holes among pages [@p, @end) of a shared file. */
static void find_file_holes(RamBlock *rb, unsigned long *zero, uint64_t p, uint64_t end)
{
    /*
     * A part of a shmem file: SEEK_HOLE from inside data walks the page
     * cache up to the next hole, wherever that is. An increment asking about
     * the 16 MiB a guest rewrote, in a memfd holding 1 GiB in one piece,
     * took 6.5-9 ms so, and the guest stalled up to 10 ms meanwhile.
     * cachestat() walks only the range asked about.
     */
    bool part = p || end < rb->size / MACHINE_PAGE_SIZE;

    if (part && rb->backend->backing == MEMORY_BACKING_SHMEM &&
        find_shmem_holes(rb, zero, p, end)) {
        return;
    }
    while (p < end) {
        bool hole;
        uint32_t n = ram_block_file_extent(rb, p * MACHINE_PAGE_SIZE,
                                           (uint32_t)MIN(end - p, (uint64_t)UINT32_MAX),
                                           &hole);
        if (hole) {
            bitmap_set_range(zero, p, n);
        }
        p += n;
    }
}

/* The next run of set bits of @map at or after *@p: [*@p, *@end), or false past the end. */
static bool next_set_run(const unsigned long *map, uint64_t nbits, uint64_t *p, uint64_t *end)
{
    *p = bitmap_find_next_set(map, nbits, *p);
    if (*p >= nbits) {
        return false;
    }
    *end = bitmap_find_next_zero(map, nbits, *p);
    return true;
}

/* 2 MiB regions of @pages pages (the last may be partial). */
static uint64_t huge_regions(uint64_t pages)
{
    return (pages + PAGEMAP_HUGE_PAGES - 1) / PAGEMAP_HUGE_PAGES;
}

/*
 * A map of @nbits bits for one walk, kept per thread and grown as needed: a
 * snapshot's early protect reads the whole block, so the pause's walk (same
 * thread) writes memory that is already there. A fresh map's first writes
 * in the pause were page faults, 20-30 us each on a paravirtual host.
 */
typedef struct ScratchMap {
    unsigned long *map;
    size_t nbits;
} ScratchMap;

static void scratch_map_free(gpointer p)
{
    ScratchMap *s = p;

    bitmap_free(s->map);
    g_free(s);
}

static GPrivate scratch_key = G_PRIVATE_INIT(scratch_map_free);

static unsigned long *scratch_map(size_t nbits)
{
    ScratchMap *s = g_private_get(&scratch_key);

    if (!s) {
        s = g_new0(ScratchMap, 1);
        g_private_set(&scratch_key, s);
    }
    if (s->nbits < nbits) {
        bitmap_free(s->map);
        s->map = bitmap_new(nbits);
        s->nbits = nbits;
    }
    return s->map;
}

/*
 * Read the page tables of pages [@first, @end) of @rb (@first on a 2 MiB
 * boundary, so on a word of the page maps) into @zero, and into @huge
 * (whole-block maps) the regions they cover.
 */
static bool walk_page_tables(RamBlock *rb, int pagemap_fd, uint64_t first, uint64_t end,
                             unsigned long *zero, unsigned long *huge, GError **errp)
{
    uint64_t n = end - first;
    /*
     * Huge bits (transparent huge pages only) need a 2 MiB aligned start;
     * backends align their mappings so.
     */
    bool want_huge = huge && ram_block_is_anonymous(rb) &&
                     (uintptr_t)rb->host % PAGEMAP_HUGE_SIZE == 0;
    /*
     * hugetlb pages are never swapped: an entry that is not present is a
     * hole, or the write-protect marker a snapshot put in one.
     */
    bool hugetlb = !ram_block_is_anonymous(rb);
    /*
     * Anonymous memory: the walk writes what holds no data straight into
     * @zero (its empty map), one pass over the range; for 16 GiB mostly never
     * touched, clearing a populated map and a zero map and then inverting the
     * first took 0.5 ms of a snapshot's pause here.
     */
    unsigned long *data = hugetlb ? scratch_map(n) : NULL;
    unsigned long *part_huge = want_huge ? bitmap_new(n / PAGEMAP_HUGE_PAGES + 1) : NULL;
    PagemapMaps maps = {
        .present = data,
        .zero = hugetlb ? zero + first / BITMAP_BITS_PER_WORD : NULL,
        .empty = hugetlb ? NULL : zero + first / BITMAP_BITS_PER_WORD,
        .huge = part_huge,
    };

    g_assert(first % PAGEMAP_HUGE_PAGES == 0);
    int ret = pagemap_walk(pagemap_fd, rb->host + first * MACHINE_PAGE_SIZE,
                           n * MACHINE_PAGE_SIZE, &maps, false, NULL);
    if (ret < 0) {
        /* The empty map was set over the range first: nothing there may read as zero now. */
        bitmap_clear_range(zero, first, n);
        bitmap_free(part_huge);
        error_setg_errno(errp, -ret, "cannot read the page tables of RAM block '%s'", rb->name);
        return false;
    }
    /* hugetlbfs: zero-page mappings are in @zero already; add what is not present. */
    for (uint64_t p = data ? bitmap_find_next_zero(data, n, 0) : n; p < n;) {
        uint64_t e = bitmap_find_next_set(data, n, p);
        bitmap_set_range(zero, first + p, e - p);
        p = e < n ? bitmap_find_next_zero(data, n, e) : n;
    }
    for (uint64_t r = 0; want_huge && r < huge_regions(n); r++) {
        uint64_t region = first / PAGEMAP_HUGE_PAGES + r;
        if (bitmap_test_bit(part_huge, r)) {
            bitmap_set_bit(huge, region);
        } else {
            bitmap_clear_bit(huge, region);
        }
    }
    bitmap_free(part_huge);
    return true;
}

/*
 * Past this many runs of earlier-zero pages, one walk of the whole block
 * costs less than a walk per run.
 */
#define WALK_MAX_RUNS 64

/*
 * The page tables of the 2 MiB regions that hold pages of @was_zero, the
 * rest keeping their earlier answer: data stays data, and a region mapped
 * huge stays so (a snapshot changes protection of such a region only
 * whole). The populated part is what costs in a walk (0.1-0.4 ms of a 2 GiB
 * guest's pause here, when its pages are mapped small), and it is the part
 * that was not zero.
 */
static bool walk_earlier_zero(RamBlock *rb, int pagemap_fd, const unsigned long *was_zero,
                              unsigned long *zero, unsigned long *huge, GError **errp)
{
    uint64_t pages = rb->size / MACHINE_PAGE_SIZE;
    uint64_t runs[WALK_MAX_RUNS][2];
    unsigned nr = 0;

    for (uint64_t p = 0, run_end; next_set_run(was_zero, pages, &p, &run_end); p = run_end) {
        /* Whole regions: the walk's huge bits and page maps start on one. */
        uint64_t first = p / PAGEMAP_HUGE_PAGES * PAGEMAP_HUGE_PAGES;
        uint64_t end = MIN(pages, huge_regions(run_end) * PAGEMAP_HUGE_PAGES);

        if (nr && runs[nr - 1][1] >= first) {
            runs[nr - 1][1] = end;
        } else if (nr == WALK_MAX_RUNS) {
            if (huge) {
                bitmap_clear_range(huge, 0, huge_regions(pages));
            }
            return walk_page_tables(rb, pagemap_fd, 0, pages, zero, huge, errp);
        } else {
            runs[nr][0] = first;
            runs[nr++][1] = end;
        }
    }
    /* A walk writes all of @zero in its range; what lies between is data. */
    uint64_t done = 0;
    for (unsigned i = 0; i < nr; i++) {
        bitmap_clear_range(zero, done, runs[i][0] - done);
        if (!walk_page_tables(rb, pagemap_fd, runs[i][0], runs[i][1], zero, huge, errp)) {
            return false;
        }
        done = runs[i][1];
    }
    bitmap_clear_range(zero, done, pages - done);
    return true;
}

bool ram_block_find_zero(RamBlock *rb, int pagemap_fd, const unsigned long *was_zero,
                         unsigned long *zero, unsigned long *huge, RamZeroSource *source,
                         GError **errp)
{
    uint64_t pages = rb->size / MACHINE_PAGE_SIZE;
    RamZeroSource src = RAM_ZERO_BY_NOTHING;

    if (huge && !was_zero) {
        bitmap_clear_range(huge, 0, huge_regions(pages));
    }
    bool unproven = pagemap_fd >= 0 && ram_block_hugetlb_unproven(rb);
    bool page_tables = pagemap_fd >= 0 && (ram_block_is_anonymous(rb) ||
                                            ram_block_holes_in_page_tables(rb) || unproven);
    /* A walk of the page tables writes every bit of @zero it covers; the others start clear. */
    if (!page_tables) {
        bitmap_clear_range(zero, 0, pages);
    }
    if (ram_block_is_shared_file(rb) && !page_tables) {
        if (!was_zero) {
            find_file_holes(rb, zero, 0, pages);
        } else {
            for (uint64_t p = 0, end; next_set_run(was_zero, pages, &p, &end); p = end) {
                find_file_holes(rb, zero, p, end);
            }
        }
        src = RAM_ZERO_BY_FILE_HOLES;
    } else if (page_tables) {
        if (!(was_zero ? walk_earlier_zero(rb, pagemap_fd, was_zero, zero, huge, errp)
                       : walk_page_tables(rb, pagemap_fd, 0, pages, zero, huge, errp))) {
            return false;
        }
        src = RAM_ZERO_BY_PAGE_TABLE;
        if (unproven && !hugetlb_file_all_mapped(rb, zero)) {
            /* Pages we do not map: what they hold is known only by reading them. */
            bitmap_clear_range(zero, 0, pages);
            find_file_holes(rb, zero, 0, pages);
            src = RAM_ZERO_BY_FILE_HOLES;
        }
    }
    if (source) {
        *source = src;
    }
    return true;
}

uint64_t ram_block_collapse_filled(RamBlock *rb, int pagemap_fd)
{
    uint64_t pages = rb->size / MACHINE_PAGE_SIZE;
    uint64_t regions = pages / PAGEMAP_HUGE_PAGES;
    uint64_t collapsed = 0;

    if (!ram_block_is_anonymous(rb) || pagemap_fd < 0 ||
        (uintptr_t)rb->host % PAGEMAP_HUGE_SIZE || !regions) {
        return 0;
    }
    PagemapMaps maps = {
        .populated = bitmap_new(pages),
        .zero = bitmap_new(pages),
        .huge = bitmap_new(regions),
    };
    PagemapWalkInfo info;
    if (pagemap_walk(pagemap_fd, rb->host, regions * PAGEMAP_HUGE_SIZE, &maps, false,
                     &info) == 0 && info.huge_known) {
        for (uint64_t r = 0; r < regions; r++) {
            uint64_t first = r * PAGEMAP_HUGE_PAGES;
            if (bitmap_test_bit(maps.huge, r) ||
                !bitmap_range_is_set_atomic(maps.populated, first, PAGEMAP_HUGE_PAGES) ||
                bitmap_find_next_set(maps.zero, first + PAGEMAP_HUGE_PAGES, first) <
                first + PAGEMAP_HUGE_PAGES) {
                continue;
            }
            if (madvise(rb->host + r * PAGEMAP_HUGE_SIZE, PAGEMAP_HUGE_SIZE,
                        MADV_COLLAPSE) == 0) {
                collapsed++;
            } else if (errno == EINVAL) {
                break;      /* no such advice here (before Linux 6.1) */
            }
        }
    }
    bitmap_free(maps.populated);
    bitmap_free(maps.zero);
    bitmap_free(maps.huge);
    return collapsed;
}
