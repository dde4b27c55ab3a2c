/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Page-table facts of this process's memory: PAGEMAP_SCAN where the kernel has it, pagemap entries otherwise. */
#include "util/pagemap.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>

#include <glib.h>

#include "util/bitmap.h"

/*
 * PAGEMAP_SCAN (Linux 6.7, Documentation/admin-guide/mm/pagemap.rst): the
 * kernel walks the page tables once and returns ranges of pages that share
 * the categories asked for. The C library's headers may predate it.
 */
struct pagemap_page_region {
    uint64_t start;
    uint64_t end;
    uint64_t categories;
};

struct pagemap_scan_arg {
    uint64_t size;
    uint64_t flags;
    uint64_t start;
    uint64_t end;
    uint64_t walk_end;
    uint64_t vec;
    uint64_t vec_len;
    uint64_t max_pages;
    uint64_t category_inverted;
    uint64_t category_mask;
    uint64_t category_anyof_mask;
    uint64_t return_mask;
};

#define PAGEMAP_IOCTL_SCAN _IOWR('f', 16, struct pagemap_scan_arg)
#define PAGEMAP_CAT_PRESENT (1ULL << 3)
#define PAGEMAP_CAT_SWAPPED (1ULL << 4)
#define PAGEMAP_CAT_PFNZERO (1ULL << 5)
#define PAGEMAP_CAT_HUGE (1ULL << 6)

/* Ranges returned per ioctl: a fragmented guest needs several calls, a tidy one one. */
#define SCAN_VEC_LEN 256

/* Pagemap entry bits (the same document). */
#define ENTRY_PRESENT (1ULL << 63)
#define ENTRY_SWAPPED (1ULL << 62)
#define ENTRY_FRAME_MASK ((1ULL << 55) - 1)
/* Swap entries show "type | offset << 5"; type 31 is the kernel's PTE marker. */
#define ENTRY_SWAP_TYPE(e) ((e) & 0x1f)
#define ENTRY_SWAP_TYPE_MARKER 31

/* Entries read per pread(): 2 MiB worth, so huge regions are judged whole. */
#define ENTRIES_PER_READ PAGEMAP_HUGE_PAGES

int pagemap_open(void)
{
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

bool pagemap_has_scan(int fd)
{
    /* 0 unknown, 1 yes, 2 no: the answer is the kernel's, the same for every descriptor. */
    static int known;
    int k = __atomic_load_n(&known, __ATOMIC_RELAXED);

    if (!k) {
        struct pagemap_page_region r;
        struct pagemap_scan_arg arg = {
            .size = sizeof(arg),
            .start = (uintptr_t)&r & ~(PAGEMAP_PAGE_SIZE - 1),
            .vec = (uintptr_t)&r,
            .vec_len = 1,
            .category_anyof_mask = PAGEMAP_CAT_PRESENT,
            .return_mask = PAGEMAP_CAT_PRESENT,
        };
        arg.end = arg.start + PAGEMAP_PAGE_SIZE;
        /* Older kernels answer ENOTTY (unknown ioctl) or EINVAL. */
        k = ioctl(fd, PAGEMAP_IOCTL_SCAN, &arg) >= 0 ? 1 : 2;
        __atomic_store_n(&known, k, __ATOMIC_RELAXED);
    }
    return k == 1;
}

static void maps_clear(const PagemapMaps *maps, uint64_t pages)
{
    if (maps->populated) {
        bitmap_clear_range(maps->populated, 0, pages);
    }
    if (maps->present) {
        bitmap_clear_range(maps->present, 0, pages);
    }
    if (maps->zero) {
        bitmap_clear_range(maps->zero, 0, pages);
    }
    if (maps->huge) {
        bitmap_clear_range(maps->huge, 0, (pages + PAGEMAP_HUGE_PAGES - 1) / PAGEMAP_HUGE_PAGES);
    }
    if (maps->empty) {
        bitmap_set_range(maps->empty, 0, pages);
    }
}

/* Record one range the kernel reported, [@first, @first + @n) in pages from the start. */
static void scan_record(const PagemapMaps *maps, uint64_t first, uint64_t n, uint64_t categories)
{
    bool zero = categories & PAGEMAP_CAT_PFNZERO;

    if (maps->populated) {
        bitmap_set_range(maps->populated, first, n);
    }
    if (maps->present && (categories & PAGEMAP_CAT_PRESENT)) {
        bitmap_set_range(maps->present, first, n);
    }
    if (zero && maps->zero) {
        bitmap_set_range(maps->zero, first, n);
    }
    if (!zero && maps->empty) {
        bitmap_clear_range(maps->empty, first, n);
    }
    /* The huge zero page is no huge page of the guest's: nothing to keep whole there. */
    if (maps->huge && (categories & PAGEMAP_CAT_HUGE) && !zero &&
        (categories & PAGEMAP_CAT_PRESENT)) {
        for (uint64_t r = first / PAGEMAP_HUGE_PAGES; r * PAGEMAP_HUGE_PAGES < first + n; r++) {
            bitmap_set_bit(maps->huge, r);
        }
    }
}

static int walk_entries(int fd, uint64_t base, uint64_t start, uint64_t end,
                        const PagemapMaps *maps, PagemapWalkInfo *info);

static int walk_scan(int fd, uint64_t start, uint64_t end, const PagemapMaps *maps,
                     PagemapWalkInfo *info)
{
    struct pagemap_page_region vec[SCAN_VEC_LEN];
    uint64_t pos = start;

    while (pos < end) {
        struct pagemap_scan_arg arg = {
            .size = sizeof(arg),
            .start = pos,
            .end = end,
            .vec = (uintptr_t)vec,
            .vec_len = SCAN_VEC_LEN,
            .category_anyof_mask = PAGEMAP_CAT_PRESENT | PAGEMAP_CAT_SWAPPED,
            .return_mask = PAGEMAP_CAT_PRESENT | PAGEMAP_CAT_SWAPPED | PAGEMAP_CAT_PFNZERO |
                           PAGEMAP_CAT_HUGE,
        };
        long n = ioctl(fd, PAGEMAP_IOCTL_SCAN, &arg);

        info->calls++;
        if (n < 0) {
            return -errno;
        }
        for (long i = 0; i < n; i++) {
            uint64_t first = (vec[i].start - start) / PAGEMAP_PAGE_SIZE;

            if (!(vec[i].categories & PAGEMAP_CAT_PRESENT)) {
                /*
                 * Swapped only: PAGEMAP_SCAN reports a write-protect marker
                 * (write tracking of memory never touched) so too, like a
                 * page swapped out with its data. Its entries tell them apart;
                 * nothing present, zero or huge to record.
                 */
                const PagemapMaps swapped = { .populated = maps->populated,
                                              .empty = maps->empty };
                int ret = maps->populated || maps->empty
                          ? walk_entries(fd, start, vec[i].start, vec[i].end, &swapped, info)
                          : 0;
                if (ret < 0) {
                    return ret;
                }
                continue;
            }
            scan_record(maps, first, (vec[i].end - vec[i].start) / PAGEMAP_PAGE_SIZE,
                        vec[i].categories);
        }
        /* The kernel stops early when the vector is full and says where. */
        if (arg.walk_end <= pos) {
            return -EIO;
        }
        pos = arg.walk_end;
    }
    return 0;
}

/* A pagemap entry of a page that holds (or held, swapped out) data. */
static bool entry_populated(uint64_t e)
{
    if (e & ENTRY_PRESENT) {
        return true;
    }
    if (!(e & ENTRY_SWAPPED)) {
        return false;
    }
    /*
     * A write-protect marker on never-touched memory is no page. Without
     * CAP_SYS_ADMIN the swap type reads as 0 and then it counts as data,
     * which only costs reading zeros.
     */
    return (e & ENTRY_FRAME_MASK) == 0 || ENTRY_SWAP_TYPE(e) != ENTRY_SWAP_TYPE_MARKER;
}

/* Pages [@start, @end) from their entries; bit 0 of @maps is the page at @base. */
static int walk_entries(int fd, uint64_t base, uint64_t start, uint64_t end,
                        const PagemapMaps *maps, PagemapWalkInfo *info)
{
    uint64_t entries[ENTRIES_PER_READ];

    for (uint64_t pos = start; pos < end; pos += ENTRIES_PER_READ * PAGEMAP_PAGE_SIZE) {
        uint64_t n = MIN((uint64_t)ENTRIES_PER_READ, (end - pos) / PAGEMAP_PAGE_SIZE);
        uint64_t first = (pos - base) / PAGEMAP_PAGE_SIZE;
        ssize_t got = pread(fd, entries, n * sizeof(entries[0]),
                            (off_t)(pos / PAGEMAP_PAGE_SIZE * sizeof(entries[0])));
        uint64_t present = 0;

        info->calls++;
        if (got < 0) {
            return -errno;
        }
        if (got != (ssize_t)(n * sizeof(entries[0]))) {
            return -EIO;
        }
        for (uint64_t i = 0; i < n; i++) {
            if (entry_populated(entries[i]) && maps->populated) {
                bitmap_set_bit(maps->populated, first + i);
            }
            /* Entries do not tell the zero page apart: present is data here. */
            if (entry_populated(entries[i]) && maps->empty) {
                bitmap_clear_bit(maps->empty, first + i);
            }
            if ((entries[i] & ENTRY_PRESENT) && maps->present) {
                bitmap_set_bit(maps->present, first + i);
            }
            present += (entries[i] & ENTRY_PRESENT) != 0;
        }
        if (maps->huge && n == PAGEMAP_HUGE_PAGES && present == n &&
            first % PAGEMAP_HUGE_PAGES == 0) {
            bitmap_set_bit(maps->huge, first / PAGEMAP_HUGE_PAGES);
        }
    }
    return 0;
}

int pagemap_walk(int fd, const void *start, uint64_t len, const PagemapMaps *maps,
                 bool force_entries, PagemapWalkInfo *info)
{
    PagemapWalkInfo scratch;
    uint64_t s = (uintptr_t)start;

    if (!info) {
        info = &scratch;
    }
    *info = (PagemapWalkInfo){ 0 };
    if (s % PAGEMAP_PAGE_SIZE || len % PAGEMAP_PAGE_SIZE ||
        (maps->huge && s % PAGEMAP_HUGE_SIZE)) {
        return -EINVAL;
    }
    maps_clear(maps, len / PAGEMAP_PAGE_SIZE);
    if (!force_entries && pagemap_has_scan(fd)) {
        info->used_scan = true;
        info->huge_known = true;
        int ret = walk_scan(fd, s, s + len, maps, info);
        if (ret == 0) {
            return 0;
        }
        /* A kernel that has the ioctl but refuses this range: fall back. */
        maps_clear(maps, len / PAGEMAP_PAGE_SIZE);
        info->used_scan = false;
        info->huge_known = false;
    }
    return walk_entries(fd, s, s, s + len, maps, info);
}
