/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests of system/ram-populated.c: known-zero pages of RAM blocks, and collapsing filled regions. */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <glib.h>

#include "kernel-facts.h"
#include "system/machine.h"
#include "system/memory-backend.h"
#include "system/ram-populated.h"
#include "util/bitmap.h"
#include "util/pagemap.h"
#include "util/userfaultfd.h"

#define PAGE 4096ULL
#define HUGE (2ULL << 20)

typedef struct Block {
    RamBlock rb;
    uint8_t *raw;
} Block;

static void block_init(Block *b, uint64_t size, int advice)
{
    b->raw = mmap(NULL, size + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert(b->raw != MAP_FAILED);
    b->rb = (RamBlock){ .name = (char *)"pc.ram", .size = size, .page_size = PAGE };
    b->rb.host = (uint8_t *)(((uintptr_t)b->raw + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
    g_assert_cmpint(madvise(b->rb.host, size, advice), ==, 0);
}

static void block_fini(Block *b)
{
    munmap(b->raw, b->rb.size + HUGE);
}

/* Anonymous RAM: pages never written and zero-page mappings are known zero; data is not. */
static void test_anonymous_zero(void)
{
    Block b;
    int fd = pagemap_open();
    unsigned long *zero;
    RamZeroSource src;
    g_autoptr(GError) err = NULL;

    g_assert_cmpint(fd, >=, 0);
    block_init(&b, 4 * HUGE, MADV_NOHUGEPAGE);
    zero = bitmap_new(4 * HUGE / PAGE);
    memset(b.rb.host, 1, 3 * PAGE);                              /* pages 0-2: data */
    (void)*(volatile uint8_t *)(b.rb.host + 10 * PAGE);          /* page 10: zero page */
    g_assert_true(ram_block_find_zero(&b.rb, fd, NULL, zero, NULL, &src, &err));
    g_assert_no_error(err);
    g_assert_cmpint(src, ==, RAM_ZERO_BY_PAGE_TABLE);
    for (uint64_t p = 0; p < 4 * HUGE / PAGE; p++) {
        /* Where a read gets a page of its own, that page is data like any other. */
        bool data = p < 3 || (p == 10 && !kernel_reads_map_zero_page());
        if (p == 10 && !pagemap_has_scan(fd)) {
            continue;   /* only PAGEMAP_SCAN tells the zero page apart */
        }
        g_assert_cmpint(bitmap_test_bit(zero, p), ==, !data);
    }
    /* Without the page tables nothing is known. */
    g_assert_true(ram_block_find_zero(&b.rb, -1, NULL, zero, NULL, &src, &err));
    g_assert_cmpint(src, ==, RAM_ZERO_BY_NOTHING);
    g_assert_cmpuint(bitmap_count_set(zero, 4 * HUGE / PAGE), ==, 0);
    bitmap_free(zero);
    block_fini(&b);
    close(fd);
}

/*
 * Anonymous RAM write-protected whole with markers in its holes (write
 * tracking of never-touched memory): the markers are no data, though
 * PAGEMAP_SCAN reports them as swapped; the written pages are.
 */
static void test_anonymous_zero_under_markers(void)
{
    Block b;
    int fd = pagemap_open();
    uint64_t pages = 4 * HUGE / PAGE, ioctls = 0;
    g_autofree unsigned long *zero = bitmap_new(4 * HUGE / PAGE);
    g_autoptr(GError) err = NULL;
    int uffd;

    g_assert_cmpint(fd, >=, 0);
    block_init(&b, 4 * HUGE, MADV_NOHUGEPAGE);
    uffd = uffd_open(UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_UNPOPULATED, O_CLOEXEC,
                     NULL);
    if (uffd < 0) {
        g_test_skip("no userfaultfd with WP_UNPOPULATED here");
        block_fini(&b);
        close(fd);
        return;
    }
    memset(b.rb.host + 3 * PAGE, 1, PAGE);
    memset(b.rb.host + 700 * PAGE, 1, 2 * PAGE);
    g_assert_cmpint(uffd_register(uffd, b.rb.host, b.rb.size, UFFDIO_REGISTER_MODE_WP,
                                  &ioctls), ==, 0);
    g_assert_cmpint(uffd_writeprotect(uffd, b.rb.host, b.rb.size, true, false), ==, 0);
    g_assert_true(ram_block_find_zero(&b.rb, fd, NULL, zero, NULL, NULL, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(bitmap_count_set(zero, pages), ==, pages - 3);
    g_assert_false(bitmap_test_bit(zero, 3));
    g_assert_false(bitmap_test_bit(zero, 700));
    g_assert_false(bitmap_test_bit(zero, 701));
    uffd_unregister(uffd, b.rb.host, b.rb.size);
    close(uffd);
    block_fini(&b);
    close(fd);
}

/*
 * A shared block of 4 x 2 MiB of @kind (on hugetlb pages if asked) in @rb,
 * or NULL with the test skipped when this machine cannot make one.
 */
static MemoryBackend *shared_block(MemoryBackendKind kind, bool hugetlb, RamBlock *rb)
{
    g_autoptr(MemoryBackendOptions) opts = memory_backend_options_new(kind);
    g_autoptr(GError) err = NULL;
    MemoryBackend *be;

    opts->size = 4 * HUGE;
    opts->share = true;
    opts->hugetlb = hugetlb;
    be = memory_backend_new(opts, &err);
    if (!be || be->page_size != (hugetlb ? HUGE : PAGE)) {
        g_test_skip(!be && hugetlb ? "needs 4 free 2 MiB huge pages (vm.nr_hugepages)"
                    : !be ? err->message : "the default huge page size is not 2 MiB");
        memory_backend_free(be);
        return NULL;
    }
    *rb = (RamBlock){ .name = (char *)"pc.ram", .backend = be, .host = be->host,
                      .size = be->size, .page_size = be->page_size };
    return be;
}

/*
 * Shared memory (memfd, and memory-backend-ram with share=on, which is one
 * too): the file's holes are the zero pages.
 */
static void test_memfd_holes(gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    RamZeroSource src;
    RamBlock rb;
    MemoryBackend *be = shared_block(GPOINTER_TO_INT(data), false, &rb);

    if (!be) {
        return;
    }
    unsigned long *zero = bitmap_new(rb.size / PAGE);
    memset(rb.host + HUGE, 7, PAGE);
    g_assert_true(ram_block_find_zero(&rb, -1, NULL, zero, NULL, &src, &err));
    g_assert_cmpint(src, ==, RAM_ZERO_BY_FILE_HOLES);
    g_assert_false(bitmap_test_bit(zero, HUGE / PAGE));
    g_assert_true(bitmap_test_bit(zero, 0));
    g_assert_true(bitmap_test_bit(zero, rb.size / PAGE - 1));
    bitmap_free(zero);
    memory_backend_free(be);
}

/*
 * The same for page tables: only the 2 MiB regions holding pages of
 * @was_zero are read again; the others keep their answer, data and huge
 * bit alike. Past 64 separate runs the whole block is read instead.
 */
static void test_page_tables_earlier(void)
{
    g_autoptr(GError) err = NULL;
    uint64_t rp = HUGE / PAGE;
    uint64_t pages = 4 * rp;
    int fd = pagemap_open();
    Block b;

    g_assert_cmpint(fd, >=, 0);
    block_init(&b, 4 * HUGE, MADV_NOHUGEPAGE);
    unsigned long *before = bitmap_new(pages);
    unsigned long *zero = bitmap_new(pages);
    unsigned long *huge = bitmap_new(4);

    b.rb.host[0] = 1;                                           /* page 0: data at the first look */
    g_assert_true(ram_block_find_zero(&b.rb, fd, NULL, before, huge, NULL, &err));
    g_assert_no_error(err);
    g_assert_false(bitmap_test_bit(before, 0));
    g_assert_cmpuint(bitmap_count_set(before, pages), ==, pages - 1);
    b.rb.host[9 * PAGE] = 1;                                    /* page 9: data since */
    bitmap_clear_range(before, 2 * rp, 2 * rp);                /* regions 2, 3: data then */
    bitmap_set_bit(huge, 1);                                    /* stale, region read again */
    bitmap_set_bit(huge, 3);                                    /* an earlier answer, kept */
    bitmap_set_bit(zero, 0);                                    /* stale: must be cleared */
    bitmap_set_bit(zero, 3 * rp + 5);                           /* stale, outside every run */
    g_assert_true(ram_block_find_zero(&b.rb, fd, before, zero, huge, NULL, &err));
    g_assert_no_error(err);
    for (uint64_t p = 0; p < pages; p++) {
        bool expect = p != 0 && p != 9 && p < 2 * rp;
        g_assert_cmpint(bitmap_test_bit(zero, p), ==, expect);
    }
    g_assert_false(bitmap_test_bit(huge, 1));
    g_assert_true(bitmap_test_bit(huge, 3));
    block_fini(&b);

    /* 70 runs, one page each in its own region: one walk of everything. */
    block_init(&b, 140 * HUGE, MADV_NOHUGEPAGE);
    pages = 140 * rp;
    unsigned long *many = bitmap_new(pages);
    unsigned long *zero2 = bitmap_new(pages);
    for (uint64_t r = 0; r < 140; r += 2) {
        bitmap_set_bit(many, r * rp);
    }
    b.rb.host[2 * HUGE] = 1;                                    /* region 2's page 0: data */
    g_assert_true(ram_block_find_zero(&b.rb, fd, many, zero2, NULL, NULL, &err));
    g_assert_no_error(err);
    g_assert_false(bitmap_test_bit(zero2, 2 * rp));
    /* Read whole: holes outside the runs are known too. */
    g_assert_cmpuint(bitmap_count_set(zero2, pages), ==, pages - 1);
    block_fini(&b);
    bitmap_free(many);
    bitmap_free(zero2);
    bitmap_free(before);
    bitmap_free(zero);
    bitmap_free(huge);
    close(fd);
}

/*
 * The pause's second look at a memfd asks only about the pages empty at the
 * first (@was_zero): a page written since is data, one outside them is data
 * even if it is a hole.
 */
static void test_file_holes_in(void)
{
    g_autoptr(GError) err = NULL;
    uint64_t pages = 4 * HUGE / PAGE;
    RamBlock rb;
    MemoryBackend *be = shared_block(MEMORY_BACKEND_MEMFD, false, &rb);

    if (!be) {
        return;
    }
    unsigned long *before = bitmap_new(pages);
    unsigned long *zero = bitmap_new(pages);

    memset(rb.host, 7, PAGE);                                   /* page 0: data at the first look */
    g_assert_true(ram_block_find_zero(&rb, -1, NULL, before, NULL, NULL, &err));
    g_assert_false(bitmap_test_bit(before, 0));
    memset(rb.host + 9 * PAGE, 7, PAGE);                        /* page 9: data since */
    bitmap_clear_range(before, 2 * HUGE / PAGE, HUGE / PAGE);  /* region 2: not asked about */
    bitmap_set_bit(zero, 0);                                    /* stale: must be cleared */
    g_assert_true(ram_block_find_zero(&rb, -1, before, zero, NULL, NULL, &err));
    for (uint64_t p = 0; p < pages; p++) {
        bool expect = p != 0 && p != 9 && p / (HUGE / PAGE) != 2;
        g_assert_cmpint(bitmap_test_bit(zero, p), ==, expect);
    }

    bitmap_free(before);
    bitmap_free(zero);
    memory_backend_free(be);
}

/*
 * Runs inside a shmem file that is data far past them (an increment asking
 * about what the guest rewrote): the holes within each run, exactly, and
 * nothing outside the runs.
 */
static void test_file_holes_in_runs(void)
{
    g_autoptr(GError) err = NULL;
    uint64_t pages = 4 * HUGE / PAGE;
    RamBlock rb;
    MemoryBackend *be = shared_block(MEMORY_BACKEND_MEMFD, false, &rb);
    static const uint64_t punched[] = { 5, 6, 7, 700, 1023, 1500 };

    if (!be) {
        return;
    }
    unsigned long *runs = bitmap_new(pages);
    unsigned long *zero = bitmap_new(pages);

    memset(rb.host, 7, rb.size);
    for (unsigned i = 0; i < G_N_ELEMENTS(punched); i++) {
        g_assert_cmpint(fallocate(be->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                  punched[i] * PAGE, PAGE), ==, 0);
    }
    bitmap_set_range(runs, 0, 1024);
    bitmap_set_range(runs, 1400, 200);
    bitmap_set_range(runs, pages - 3, 3);
    g_assert_true(ram_block_find_zero(&rb, -1, runs, zero, NULL, NULL, &err));
    g_assert_no_error(err);
    for (uint64_t p = 0; p < pages; p++) {
        bool hole = false;

        for (unsigned i = 0; i < G_N_ELEMENTS(punched); i++) {
            hole |= punched[i] == p;
        }
        g_assert_cmpint(bitmap_test_bit(zero, p), ==, hole && bitmap_test_bit(runs, p));
    }
    bitmap_free(runs);
    bitmap_free(zero);
    memory_backend_free(be);
}

/*
 * hugetlbfs says "all data" to SEEK_HOLE: for a file only our mapping
 * touched the page tables tell the holes; for any other file only while
 * they map every page it has.
 */
static void test_hugetlb_holes(void)
{
    g_autoptr(GError) err = NULL;
    RamZeroSource src;
    RamBlock rb;
    MemoryBackend *be = shared_block(MEMORY_BACKEND_MEMFD, true, &rb);

    if (!be) {
        return;
    }
    int fd = pagemap_open();
    unsigned long *zero = bitmap_new(rb.size / PAGE);
    memset(rb.host + HUGE + 5 * PAGE, 7, PAGE);                 /* region 1 gets its huge page */
    g_assert_true(be->fresh);
    g_assert_true(ram_block_find_zero(&rb, fd, NULL, zero, NULL, &src, &err));
    g_assert_no_error(err);
    g_assert_cmpint(src, ==, RAM_ZERO_BY_PAGE_TABLE);
    for (uint64_t p = 0; p < rb.size / PAGE; p++) {
        g_assert_cmpint(bitmap_test_bit(zero, p), ==, p / (HUGE / PAGE) != 1);
    }
    /* Write-protecting it puts a marker in every hole: still no data there. */
    uint64_t ioctls = 0;
    int uffd = uffd_open(UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_HUGETLBFS_SHMEM,
                         O_CLOEXEC, NULL);
    if (uffd >= 0) {
        g_assert_cmpint(uffd_register(uffd, rb.host, rb.size, UFFDIO_REGISTER_MODE_WP, &ioctls),
                        ==, 0);
        g_assert_cmpint(uffd_writeprotect(uffd, rb.host, rb.size, true, false), ==, 0);
        g_assert_true(ram_block_find_zero(&rb, fd, NULL, zero, NULL, &src, &err));
        g_assert_cmpuint(bitmap_count_set(zero, rb.size / PAGE), ==, 3 * HUGE / PAGE);
        g_assert_false(bitmap_test_bit(zero, HUGE / PAGE));
        uffd_unregister(uffd, rb.host, rb.size);
        close(uffd);
    }
    /*
     * A file someone else may have filled (an existing mem-path file): its
     * page tables tell the holes while the file holds no page they do not map...
     */
    be->fresh = false;
    g_assert_true(ram_block_find_zero(&rb, fd, NULL, zero, NULL, &src, &err));
    g_assert_no_error(err);
    g_assert_cmpint(src, ==, RAM_ZERO_BY_PAGE_TABLE);
    g_assert_cmpuint(bitmap_count_set(zero, rb.size / PAGE), ==, 3 * HUGE / PAGE);
    /* ...and nothing once another mapping of it put a page in region 2. */
    uint8_t *other = mmap(NULL, rb.size, PROT_READ | PROT_WRITE, MAP_SHARED, be->fd, 0);
    g_assert_true(other != MAP_FAILED);
    other[2 * HUGE + 9] = 1;
    g_assert_true(ram_block_find_zero(&rb, fd, NULL, zero, NULL, &src, &err));
    g_assert_cmpint(src, ==, RAM_ZERO_BY_FILE_HOLES);
    g_assert_cmpuint(bitmap_count_set(zero, rb.size / PAGE), ==, 0);
    /* Our mapping sees it once it maps it: then the page tables hold again. */
    g_assert_cmpuint(rb.host[2 * HUGE + 9], ==, 1);
    g_assert_true(ram_block_find_zero(&rb, fd, NULL, zero, NULL, &src, &err));
    g_assert_cmpint(src, ==, RAM_ZERO_BY_PAGE_TABLE);
    g_assert_cmpuint(bitmap_count_set(zero, rb.size / PAGE), ==, 2 * HUGE / PAGE);
    munmap(other, rb.size);
    bitmap_free(zero);
    memory_backend_free(be);
    close(fd);
}

/*
 * Regions filled 4 KiB at a time become huge pages; a region with a hole, an
 * untouched one and one of zero pages are left as they are (no memory added).
 * Where reads get pages of their own, the read region is a filled one.
 */
static void test_collapse_filled(void)
{
    g_autofree char *enabled = NULL;
    Block b;
    int fd = pagemap_open();

    if (!g_file_get_contents("/sys/kernel/mm/transparent_hugepage/enabled", &enabled, NULL,
                             NULL) || strstr(enabled, "[never]") || !pagemap_has_scan(fd)) {
        g_test_skip("needs transparent huge pages and PAGEMAP_SCAN");
        close(fd);
        return;
    }
    /* Written as small pages, then allowed to be huge: what a lazy fill leaves. */
    block_init(&b, 4 * HUGE, MADV_NOHUGEPAGE);
    memset(b.rb.host, 1, HUGE);                         /* region 0: full */
    memset(b.rb.host + HUGE, 1, HUGE - PAGE);           /* region 1: one hole */
    for (uint64_t off = 3 * HUGE; off < 4 * HUGE; off += PAGE) {
        (void)*(volatile uint8_t *)(b.rb.host + off);   /* region 3: zero pages */
    }
    g_assert_cmpint(madvise(b.rb.host, 4 * HUGE, MADV_HUGEPAGE), ==, 0);
    uint64_t n = ram_block_collapse_filled(&b.rb, fd);
    if (n == 0) {
        g_test_skip("the kernel collapsed nothing (no MADV_COLLAPSE, or no free huge page)");
    } else {
        PagemapMaps maps = { .populated = bitmap_new(4 * HUGE / PAGE),
                             .huge = bitmap_new(4) };
        /*
         * Only the full region (the holed one would have counted too), and the
         * read one where reads got pages of their own: a region full of data.
         */
        g_assert_cmpuint(n, ==, kernel_reads_map_zero_page() ? 1 : 2);
        g_assert_cmpint(pagemap_walk(fd, b.rb.host, 4 * HUGE, &maps, false, NULL), ==, 0);
        g_assert_true(bitmap_test_bit(maps.huge, 0));
        /*
         * khugepaged may collapse the holed region on its own (it accepts
         * holes; seen under ASan's slower run): then it is huge and its hole
         * populated, which says nothing about the function under test.
         */
        if (!bitmap_test_bit(maps.huge, 1)) {
            g_assert_cmpuint(bitmap_count_set(maps.populated, 4 * HUGE / PAGE), ==,
                             2 * HUGE / PAGE - 1 + HUGE / PAGE);
        }
        g_assert_cmpint(memcmp(b.rb.host, b.rb.host + HUGE, HUGE - PAGE), ==, 0);
        bitmap_free(maps.populated);
        bitmap_free(maps.huge);
    }
    block_fini(&b);
    close(fd);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/ram-populated/anonymous-zero", test_anonymous_zero);
    g_test_add_func("/ram-populated/anonymous-zero-under-markers",
                    test_anonymous_zero_under_markers);
    g_test_add_data_func("/ram-populated/memfd-holes", GINT_TO_POINTER(MEMORY_BACKEND_MEMFD),
                         test_memfd_holes);
    g_test_add_data_func("/ram-populated/shared-ram-holes", GINT_TO_POINTER(MEMORY_BACKEND_RAM),
                         test_memfd_holes);
    g_test_add_func("/ram-populated/file-holes-in", test_file_holes_in);
    g_test_add_func("/ram-populated/file-holes-in-runs", test_file_holes_in_runs);
    g_test_add_func("/ram-populated/page-tables-earlier", test_page_tables_earlier);
    g_test_add_func("/ram-populated/hugetlb-holes", test_hugetlb_holes);
    g_test_add_func("/ram-populated/collapse-filled", test_collapse_filled);
    return g_test_run();
}
