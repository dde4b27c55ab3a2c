/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Known-zero and huge-mapped pages of RAM blocks, from the page tables or the backing file's holes. */
#include "system/ram-populated.h"

#include <errno.h>
#include <unistd.h>
#include <sys/mman.h>

#include "system/machine.h"
#include "system/memory-backend.h"
#include "util/bitmap.h"
#include "util/error.h"
#include "util/pagemap.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

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

/* Set in @zero the holes among pages [@p, @end) of a shared file. */
static void find_file_holes(RamBlock *rb, unsigned long *zero, uint64_t p, uint64_t end)
{
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

bool ram_block_find_zero(RamBlock *rb, int pagemap_fd, const unsigned long *was_zero,
                         unsigned long *zero, unsigned long *huge, RamZeroSource *source,
                         GError **errp)
{
    uint64_t pages = rb->size / MACHINE_PAGE_SIZE;
    RamZeroSource src = RAM_ZERO_BY_NOTHING;

    bitmap_clear_range(zero, 0, pages);
    if (huge) {
        bitmap_clear_range(huge, 0, (rb->size + PAGEMAP_HUGE_SIZE - 1) / PAGEMAP_HUGE_SIZE);
    }
    bool page_tables = pagemap_fd >= 0 && (ram_block_is_anonymous(rb) ||
                                            ram_block_holes_in_page_tables(rb));
    if (ram_block_is_shared_file(rb) && !page_tables) {
        if (!was_zero) {
            find_file_holes(rb, zero, 0, pages);
        } else {
            for (uint64_t p = bitmap_find_next_set(was_zero, pages, 0); p < pages;) {
                uint64_t end = bitmap_find_next_zero(was_zero, pages, p);
                find_file_holes(rb, zero, p, end);
                p = end < pages ? bitmap_find_next_set(was_zero, pages, end) : pages;
            }
        }
        src = RAM_ZERO_BY_FILE_HOLES;
    } else if (page_tables) {
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
        unsigned long *data = bitmap_new(pages);
        PagemapMaps maps = {
            .populated = hugetlb ? NULL : data,
            .present = hugetlb ? data : NULL,
            .zero = zero,
            .huge = want_huge ? huge : NULL,
        };
        int ret = pagemap_walk(pagemap_fd, rb->host, rb->size, &maps, false, NULL);

        if (ret < 0) {
            bitmap_free(data);
            error_setg_errno(errp, -ret, "cannot read the page tables of RAM block '%s'",
                             rb->name);
            return false;
        }
        /* Zero-page mappings are in @zero already; add what holds no data. */
        for (uint64_t p = bitmap_find_next_zero(data, pages, 0); p < pages;) {
            uint64_t end = bitmap_find_next_set(data, pages, p);
            bitmap_set_range(zero, p, end - p);
            p = end < pages ? bitmap_find_next_zero(data, pages, end) : pages;
        }
        bitmap_free(data);
        src = RAM_ZERO_BY_PAGE_TABLE;
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
