/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Which pages of a RAM block hold no data yet (and must not be read), and which are mapped huge. */
#ifndef SYSTEM_RAM_POPULATED_H
#define SYSTEM_RAM_POPULATED_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

typedef struct RamBlock RamBlock;

/* How the answer was found, for figures and tests. */
typedef enum {
    RAM_ZERO_BY_NOTHING,      /* every page may hold data (private file mappings) */
    RAM_ZERO_BY_PAGE_TABLE,   /* anonymous memory, a hugetlbfs file of ours: util/pagemap.c */
    RAM_ZERO_BY_FILE_HOLES,   /* shared file or memfd: SEEK_DATA / SEEK_HOLE */
} RamZeroSource;

/*
 * Fill @zero (one bit per 4 KiB page of @rb, util/bitmap.h layout) with the
 * pages whose content is known to be zero without reading them: never
 * populated, or mapped to the shared zero page. Reading such a page would
 * map the zero page (4 KiB at a time once a page table exists), and a later
 * guest write would then get a small page where a huge one could have been,
 * so copies skip them. @huge (one bit per 2 MiB region, may be NULL) gets
 * the regions mapped by one huge PMD (transparent huge pages of anonymous
 * memory; exact with PAGEMAP_SCAN, Linux 6.7+). @pagemap_fd is
 * /proc/self/pagemap (pagemap_open()), or -1 to find nothing in anonymous
 * memory. Shared files answer with their holes, except on hugetlbfs (which
 * says "all data"): there a file frostvm created (MemoryBackend.fresh)
 * answers with its page tables, any other nothing. The answer holds while
 * nothing writes the block (vCPUs paused); with the guest running, a page
 * may get data right after. @was_zero (may be NULL) is an earlier answer for
 * the block, given with @huge as that answer left it: only those pages are
 * asked about again (a shared file's page cache, or the page tables of the
 * 2 MiB regions that hold them), since data turns back into a hole only when
 * someone punches or discards it, which nothing does while a snapshot runs,
 * and a region mapped huge stays so. Asking the page cache about 128 MiB of
 * 4 KiB pages took 1.5-2.2 ms of a snapshot's pause here, reading the page
 * tables of a 2 GiB guest's 1 GiB of data 0.1-0.4 ms. A caller that needs
 * to know only about some pages (an increment: those written since its
 * base) may pass them as @was_zero too: the others come back as data.
 * Returns false with @errp set when the kernel refuses the walk.
 */
bool ram_block_find_zero(RamBlock *rb, int pagemap_fd, const unsigned long *was_zero,
                         unsigned long *zero, unsigned long *huge, RamZeroSource *source,
                         GError **errp);

/*
 * For a block mapped shared from a file or memfd: how many pages from byte
 * @offset (at most @n, at least 1) are all hole (*@hole true) or all data.
 * Other blocks: @n pages of data. Private file mappings count as data: their
 * written pages never reach the file.
 */
uint32_t ram_block_file_extent(RamBlock *rb, uint64_t offset, uint32_t n, bool *hole);

/*
 * Put transparent huge pages back where RAM was filled 4 KiB at a time (a
 * lazy restore's UFFDIO_COPY, which never allocates huge pages): every
 * 2 MiB region of anonymous @rb whose pages are all present, none the zero
 * page, and that is not mapped huge already, is collapsed (MADV_COLLAPSE,
 * Linux 6.1+; it copies 2 MiB, about a millisecond here). Regions with holes
 * are left alone: collapsing would allocate the holes. @rb must not be
 * write-protected (the kernel does not collapse such regions); registered
 * for missing faults it may be, since a region without holes meets none.
 * Returns the regions collapsed; kernels without the advice collapse none.
 */
uint64_t ram_block_collapse_filled(RamBlock *rb, int pagemap_fd);

#endif
