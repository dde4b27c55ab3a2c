/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests of util/pagemap.c: populated, zero and huge pages as the page tables show them. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <glib.h>

#include "kernel-facts.h"
#include "util/bitmap.h"
#include "util/pagemap.h"
#include "util/userfaultfd.h"

#define PAGE PAGEMAP_PAGE_SIZE
#define HUGE PAGEMAP_HUGE_SIZE

typedef struct Fixture {
    uint8_t *raw;
    uint8_t *mem;       /* 2 MiB aligned */
    uint64_t len;
    int fd;
    PagemapMaps maps;
} Fixture;

static void fixture_init(Fixture *f, uint64_t len, int advice)
{
    f->len = len;
    f->raw = mmap(NULL, len + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert(f->raw != MAP_FAILED);
    f->mem = (uint8_t *)(((uintptr_t)f->raw + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
    g_assert_cmpint(madvise(f->mem, len, advice), ==, 0);
    f->fd = pagemap_open();
    g_assert_cmpint(f->fd, >=, 0);
    f->maps = (PagemapMaps){ 0 };
    f->maps.populated = bitmap_new(len / PAGE);
    f->maps.zero = bitmap_new(len / PAGE);
    f->maps.huge = bitmap_new(len / HUGE);
    f->maps.empty = bitmap_new(len / PAGE);
    /* Set where the walk must clear it: it sets the whole range first. */
    bitmap_set_range(f->maps.empty, 0, len / PAGE);
    bitmap_clear_range(f->maps.empty, 0, 7);
}

static void fixture_fini(Fixture *f)
{
    munmap(f->raw, f->len + HUGE);
    close(f->fd);
    bitmap_free(f->maps.populated);
    bitmap_free(f->maps.zero);
    bitmap_free(f->maps.huge);
    bitmap_free(f->maps.empty);
}

static bool want_entries(gconstpointer data)
{
    return GPOINTER_TO_INT(data);
}

/* Both ways (PAGEMAP_SCAN and entries) find exactly the pages written, read or not touched. */
static void test_populated(gconstpointer data)
{
    Fixture f;
    PagemapWalkInfo info;
    static const uint64_t written[] = { 0, 5, 1000, 1001, 1002, 2047 };

    fixture_init(&f, 8 * (1ULL << 20), MADV_NOHUGEPAGE);
    if (!want_entries(data) && !pagemap_has_scan(f.fd)) {
        g_test_skip("the kernel has no PAGEMAP_SCAN (Linux 6.7)");
        fixture_fini(&f);
        return;
    }
    for (unsigned i = 0; i < G_N_ELEMENTS(written); i++) {
        f.mem[written[i] * PAGE] = 1;
    }
    /* Reading maps the shared zero page (on most kernels): populated, content zero. */
    for (uint64_t p = 20; p < 30; p++) {
        (void)*(volatile uint8_t *)(f.mem + p * PAGE);
    }
    g_assert_cmpint(pagemap_walk(f.fd, f.mem, f.len, &f.maps, want_entries(data), &info), ==, 0);
    g_assert_cmpint(info.used_scan, ==, !want_entries(data));
    g_assert_cmpuint(info.calls, >, 0);
    for (uint64_t p = 0; p < f.len / PAGE; p++) {
        bool w = false;
        for (unsigned i = 0; i < G_N_ELEMENTS(written); i++) {
            w |= written[i] == p;
        }
        bool r = p >= 20 && p < 30;
        if (bitmap_test_bit(f.maps.populated, p) != (w || r)) {
            g_error("page %" G_GUINT64_FORMAT ": populated %d, expected %d", p,
                    bitmap_test_bit(f.maps.populated, p), w || r);
        }
        /* Only the scan tells zero pages apart; entries never claim one. */
        bool zero_expected = r && info.used_scan && kernel_reads_map_zero_page();
        g_assert_cmpint(bitmap_test_bit(f.maps.zero, p), ==, zero_expected);
        /* No data: never populated, or the zero page. */
        g_assert_cmpint(bitmap_test_bit(f.maps.empty, p), ==, !(w || r) || zero_expected);
    }
    /* 4 KiB pages only: nothing is huge, even where every page is present. */
    g_assert_cmpuint(bitmap_count_set(f.maps.huge, f.len / HUGE), ==, 0);
    fixture_fini(&f);
}

/*
 * A write-protect marker in a hole (what protecting shmem or hugetlbfs puts
 * there) is no page: @present has only the pages written, both ways.
 */
static void test_present_not_marker(gconstpointer data)
{
    Fixture f;
    PagemapWalkInfo info;
    uint64_t ioctls = 0;

    fixture_init(&f, 4 * HUGE, MADV_NOHUGEPAGE);
    int uffd = uffd_open(UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_UNPOPULATED,
                         O_CLOEXEC, NULL);
    if ((!want_entries(data) && !pagemap_has_scan(f.fd)) || uffd < 0) {
        g_test_skip("needs PAGEMAP_SCAN and userfaultfd's WP_UNPOPULATED (Linux 6.7)");
        fixture_fini(&f);
        return;
    }
    f.mem[3 * PAGE] = 1;
    f.mem[HUGE + 7 * PAGE] = 1;
    g_assert_cmpint(uffd_register(uffd, f.mem, f.len, UFFDIO_REGISTER_MODE_WP, &ioctls), ==, 0);
    g_assert_cmpint(uffd_writeprotect(uffd, f.mem, f.len, true, false), ==, 0);
    f.maps.present = bitmap_new(f.len / PAGE);
    g_assert_cmpint(pagemap_walk(f.fd, f.mem, f.len, &f.maps, want_entries(data), &info), ==, 0);
    g_assert_cmpuint(bitmap_count_set(f.maps.present, f.len / PAGE), ==, 2);
    g_assert_true(bitmap_test_bit(f.maps.present, 3));
    g_assert_true(bitmap_test_bit(f.maps.present, HUGE / PAGE + 7));
    /*
     * The scan reports markers as swapped; the walk asks the entries about
     * such ranges, which show the marker's swap type to CAP_SYS_ADMIN
     * (without it a marker counts as data: reading zeros, never a miss).
     */
    if (geteuid() == 0) {
        g_assert_cmpuint(bitmap_count_set(f.maps.populated, f.len / PAGE), ==, 2);
        /* ...and the markers' holes are empty, the two pages written not. */
        g_assert_cmpuint(bitmap_count_set(f.maps.empty, f.len / PAGE), ==, f.len / PAGE - 2);
        g_assert_false(bitmap_test_bit(f.maps.empty, 3));
        g_assert_false(bitmap_test_bit(f.maps.empty, HUGE / PAGE + 7));
    } else {
        g_assert_cmpuint(bitmap_count_set(f.maps.populated, f.len / PAGE), >=, 2);
    }
    uffd_unregister(uffd, f.mem, f.len);
    close(uffd);
    bitmap_free(f.maps.present);
    fixture_fini(&f);
}

/* More ranges than one ioctl returns: the walk goes on where the kernel stopped. */
static void test_fragmented(void)
{
    Fixture f;
    PagemapWalkInfo info;

    fixture_init(&f, 8 * (1ULL << 20), MADV_NOHUGEPAGE);
    if (!pagemap_has_scan(f.fd)) {
        g_test_skip("the kernel has no PAGEMAP_SCAN (Linux 6.7)");
        fixture_fini(&f);
        return;
    }
    for (uint64_t p = 0; p < f.len / PAGE; p += 2) {
        f.mem[p * PAGE] = 1;
    }
    g_assert_cmpint(pagemap_walk(f.fd, f.mem, f.len, &f.maps, false, &info), ==, 0);
    g_assert_cmpuint(info.calls, >, 1);
    for (uint64_t p = 0; p < f.len / PAGE; p++) {
        g_assert_cmpint(bitmap_test_bit(f.maps.populated, p), ==, p % 2 == 0);
    }
    fixture_fini(&f);
}

/* A 2 MiB region the kernel mapped huge is reported huge, and it alone. */
static void test_huge(void)
{
    Fixture f;
    PagemapWalkInfo info;
    g_autofree char *enabled = NULL;

    if (!g_file_get_contents("/sys/kernel/mm/transparent_hugepage/enabled", &enabled, NULL,
                             NULL) || strstr(enabled, "[never]")) {
        g_test_skip("transparent huge pages are off");
        return;
    }
    fixture_init(&f, 3 * HUGE, MADV_HUGEPAGE);
    memset(f.mem, 1, HUGE);                 /* one whole region */
    memset(f.mem + 2 * HUGE, 1, PAGE);      /* one page of another */
    uint64_t huge_kb = smaps_field_kb(f.mem, "AnonHugePages");
    g_assert_cmpint(pagemap_walk(f.fd, f.mem, f.len, &f.maps, false, &info), ==, 0);
    if (huge_kb == 0) {
        g_test_skip("the kernel gave no huge page (fragmented memory?)");
        fixture_fini(&f);
        return;
    }
    g_assert_cmpuint(bitmap_count_set(f.maps.huge, 3) * (HUGE >> 10), ==, huge_kb);
    g_assert_true(bitmap_test_bit(f.maps.huge, 0));
    g_assert_false(bitmap_test_bit(f.maps.huge, 1));
    g_assert_true(bitmap_test_bit(f.maps.populated, 0));
    g_assert_true(bitmap_test_bit(f.maps.populated, HUGE / PAGE - 1));
    g_assert_false(bitmap_test_bit(f.maps.populated, HUGE / PAGE));
    fixture_fini(&f);
}

static void test_bad_range(void)
{
    Fixture f;

    fixture_init(&f, HUGE, MADV_NOHUGEPAGE);
    g_assert_cmpint(pagemap_walk(f.fd, f.mem + 1, PAGE, &f.maps, false, NULL), ==, -EINVAL);
    g_assert_cmpint(pagemap_walk(f.fd, f.mem, PAGE + 1, &f.maps, false, NULL), ==, -EINVAL);
    /* Huge bits need a 2 MiB aligned start. */
    g_assert_cmpint(pagemap_walk(f.fd, f.mem + PAGE, PAGE, &f.maps, false, NULL), ==, -EINVAL);
    PagemapMaps only_populated = { .populated = f.maps.populated };
    g_assert_cmpint(pagemap_walk(f.fd, f.mem + PAGE, PAGE, &only_populated, false, NULL), ==, 0);
    fixture_fini(&f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_data_func("/pagemap/populated/scan", GINT_TO_POINTER(0), test_populated);
    g_test_add_data_func("/pagemap/populated/entries", GINT_TO_POINTER(1), test_populated);
    g_test_add_data_func("/pagemap/present-not-marker/scan", GINT_TO_POINTER(0),
                         test_present_not_marker);
    g_test_add_data_func("/pagemap/present-not-marker/entries", GINT_TO_POINTER(1),
                         test_present_not_marker);
    g_test_add_func("/pagemap/fragmented", test_fragmented);
    g_test_add_func("/pagemap/huge", test_huge);
    g_test_add_func("/pagemap/bad-range", test_bad_range);
    return g_test_run();
}
