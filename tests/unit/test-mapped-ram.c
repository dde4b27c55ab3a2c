/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Page-aligned images: the writer and reader round trip, sparseness, and every kind of damage caught. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "migration/mapped-ram.h"
#include "migration/savevm.h"

#define PAGE MAPPED_RAM_PAGE_SIZE
/* Two blocks: 8 MiB and 2 MiB + 4 KiB (an odd page count, a partial bitmap word). */
#define BLOCK0_PAGES 2048u
#define BLOCK1_PAGES 513u

typedef struct {
    char *dir;
    char *path;
    uint64_t sizes[2];
    uint8_t fdt[64];
    uint8_t devices[40];
} Fixture;

/* A page's content: non-zero and distinct per (block, page), or zero. */
static void fill_page(uint8_t *p, uint32_t block, uint64_t page)
{
    for (unsigned i = 0; i < PAGE; i += 8) {
        uint64_t v = (block + 1) * 0x9e3779b97f4a7c15ull ^ (page << 16) ^ i;
        memcpy(p + i, &v, 8);
    }
}

/* Which pages the test image holds: every third page of block 0, a run in block 1. */
static bool page_present(uint32_t block, uint64_t page)
{
    return block == 0 ? page % 3 == 0 : (page >= 100 && page < 300);
}

static void write_image(Fixture *f, uint32_t stream_flags)
{
    g_autoptr(GError) err = NULL;
    g_autofree uint8_t *buf = g_malloc(PAGE);
    int fd = open(f->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    MappedRamWriter *w;

    g_assert_cmpint(fd, >=, 0);
    w = mapped_ram_writer_new(fd, f->path, stream_flags, 2, f->sizes, f->fdt, sizeof(f->fdt),
                              &err);
    g_assert_no_error(err);
    /* Backwards, to show order does not matter; zero runs explicitly too. */
    for (int b = 1; b >= 0; b--) {
        uint64_t pages = f->sizes[b] / PAGE;
        for (uint64_t p = pages; p-- > 0;) {
            if (page_present((uint32_t)b, p)) {
                fill_page(buf, (uint32_t)b, p);
                g_assert_true(mapped_ram_writer_put(w, (uint32_t)b, p, 1, buf, &err));
            } else {
                g_assert_true(mapped_ram_writer_zero(w, (uint32_t)b, p, 1, &err));
            }
            g_assert_no_error(err);
        }
    }
    g_assert_true(mapped_ram_writer_finish(w, f->devices, sizeof(f->devices), &err));
    g_assert_no_error(err);
    mapped_ram_writer_free(w);
    close(fd);
}

static void fixture_setup(Fixture *f, gconstpointer data)
{
    f->dir = g_dir_make_tmp("test-mapped-ram-XXXXXX", NULL);
    f->path = g_build_filename(f->dir, "img", NULL);
    f->sizes[0] = (uint64_t)BLOCK0_PAGES * PAGE;
    f->sizes[1] = (uint64_t)BLOCK1_PAGES * PAGE;
    memset(f->fdt, 0xd0, sizeof(f->fdt));
    memset(f->devices, 0xde, sizeof(f->devices));
    write_image(f, SAVEVM_STREAM_BACKGROUND_SNAPSHOT);
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    g_unlink(f->path);
    g_rmdir(f->dir);
    g_free(f->path);
    g_free(f->dir);
}

static MappedRamImage *open_ok(Fixture *f)
{
    g_autoptr(GError) err = NULL;
    MappedRamImage *img = mapped_ram_image_open(f->path, -1, &err);

    g_assert_no_error(err);
    return img;
}

/* Open must fail, with a message containing @needle. */
static void open_fails(Fixture *f, const char *needle)
{
    g_autoptr(GError) err = NULL;
    MappedRamImage *img = mapped_ram_image_open(f->path, -1, &err);

    g_assert_null(img);
    g_assert_nonnull(err);
    g_test_message("refused: %s", err->message);
    g_assert_nonnull(strstr(err->message, needle));
}

static void poke(Fixture *f, uint64_t offset, uint8_t xor)
{
    int fd = open(f->path, O_RDWR | O_CLOEXEC);
    uint8_t b;

    g_assert_cmpint(pread(fd, &b, 1, (off_t)offset), ==, 1);
    b ^= xor;
    g_assert_cmpint(pwrite(fd, &b, 1, (off_t)offset), ==, 1);
    close(fd);
}

static void test_round_trip(Fixture *f, gconstpointer data)
{
    g_autoptr(MappedRamImage) img = open_ok(f);
    g_autoptr(GError) err = NULL;
    g_autofree uint8_t *got = g_malloc(PAGE * 16);
    g_autofree uint8_t *want = g_malloc(PAGE);

    g_assert_cmpuint(img->h.nblocks, ==, 2);
    g_assert_cmpuint(img->h.blocks[0].present_pages, ==, (BLOCK0_PAGES + 2) / 3);
    g_assert_cmpuint(img->h.blocks[1].present_pages, ==, 200);
    g_assert_cmpmem(img->machine, img->h.machine_len, f->fdt, sizeof(f->fdt));
    g_assert_cmpmem(img->devices, img->h.devices_len, f->devices, sizeof(f->devices));
    g_assert_cmpuint(img->h.blocks[0].pages_offset % MAPPED_RAM_REGION_ALIGN, ==, 0);
    for (uint32_t b = 0; b < 2; b++) {
        uint64_t pages = f->sizes[b] / PAGE;
        for (uint64_t p = 0; p + 16 <= pages; p += 16) {
            g_assert_true(mapped_ram_image_read(img, b, p, 16, got, &err));
            g_assert_no_error(err);
            for (uint64_t i = 0; i < 16; i++) {
                if (page_present(b, p + i)) {
                    fill_page(want, b, p + i);
                } else {
                    memset(want, 0, PAGE);
                }
                g_assert_cmpmem(got + i * PAGE, PAGE, want, PAGE);
                g_assert_cmpint(mapped_ram_image_present(img, b, p + i), ==,
                                page_present(b, p + i));
            }
        }
    }
    g_assert_true(mapped_ram_image_check(img, NULL, NULL, &err));
    g_assert_no_error(err);
}

static void test_runs(Fixture *f, gconstpointer data)
{
    g_autoptr(MappedRamImage) img = open_ok(f);
    uint64_t page = 0, n, total = 0;

    n = mapped_ram_image_next_run(img, 1, &page, 1000);
    g_assert_cmpuint(page, ==, 100);
    g_assert_cmpuint(n, ==, 200);
    page = 0;
    while ((n = mapped_ram_image_next_run(img, 1, &page, 64))) {
        g_assert_cmpuint(n, <=, 64);
        total += n;
        page += n;
    }
    g_assert_cmpuint(total, ==, 200);
}

/* Page @page of @block, holding @data, must be told unchanged (@want) or changed. */
static void assert_unchanged(MappedRamImage *img, uint32_t block, uint64_t page,
                             const uint8_t *data, bool want)
{
    g_autoptr(GError) err = NULL;
    bool same;

    g_assert_true(mapped_ram_image_page_unchanged(img, block, page, data, &same, &err));
    g_assert_no_error(err);
    g_assert_cmpint(same, ==, want);
}

/* A page as RAM holds it, told same or changed against the image by its checksum. */
static void test_page_unchanged(Fixture *f, gconstpointer data)
{
    g_autoptr(MappedRamImage) img = open_ok(f);
    g_autofree uint8_t *page = g_malloc(PAGE);

    /* Present, as saved; then one byte changed. */
    fill_page(page, 1, 150);
    assert_unchanged(img, 1, 150, page, true);
    page[100] ^= 1;
    assert_unchanged(img, 1, 150, page, false);
    /* Another page's content at this position is a change too (checksums are seeded with it). */
    fill_page(page, 1, 151);
    assert_unchanged(img, 1, 150, page, false);
    /* Absent: zero is unchanged, anything else changed. */
    memset(page, 0, PAGE);
    assert_unchanged(img, 0, 1, page, true);
    page[PAGE - 1] = 7;
    assert_unchanged(img, 0, 1, page, false);
}

/* In a chain, each page is compared with the newest layer that holds it. */
static void test_page_unchanged_chain(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autofree uint8_t *page = g_malloc0(PAGE);
    g_autofree char *inc_path = g_build_filename(f->dir, "inc", NULL);
    MappedRamImage *base = open_ok(f);
    int fd = open(inc_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    MappedRamWriter *w;

    g_assert_cmpint(fd, >=, 0);
    w = mapped_ram_writer_new(fd, inc_path, SAVEVM_STREAM_BACKGROUND_SNAPSHOT, 2, f->sizes,
                              f->fdt, sizeof(f->fdt), &err);
    g_assert_no_error(err);
    mapped_ram_writer_set_base(w, base->h.uuid, base->h.digest, f->path);
    /* The increment: block 1 page 150 rewritten, block 0 page 3 (data in the base) zeroed. */
    fill_page(page, 1, 999);
    g_assert_true(mapped_ram_writer_put(w, 1, 150, 1, page, &err));
    g_assert_true(mapped_ram_writer_zero(w, 0, 3, 1, &err));
    g_assert_true(mapped_ram_writer_finish(w, f->devices, sizeof(f->devices), &err));
    g_assert_no_error(err);
    mapped_ram_writer_free(w);
    close(fd);

    g_autoptr(MappedRamImage) inc = mapped_ram_image_open(inc_path, -1, &err);
    g_assert_no_error(err);
    g_assert_true(mapped_ram_image_attach_base(inc, base, &err));
    g_assert_no_error(err);
    /* The increment's page, not the base's. */
    assert_unchanged(inc, 1, 150, page, true);
    fill_page(page, 1, 150);
    assert_unchanged(inc, 1, 150, page, false);
    /* Zeroed in the increment. */
    memset(page, 0, PAGE);
    assert_unchanged(inc, 0, 3, page, true);
    /* Not in the increment: the base's. */
    fill_page(page, 0, 6);
    assert_unchanged(inc, 0, 6, page, true);
    page[0] ^= 1;
    assert_unchanged(inc, 0, 6, page, false);
    /* In no layer: zero. */
    memset(page, 0, PAGE);
    assert_unchanged(inc, 0, 7, page, true);
    g_unlink(inc_path);
}

/* A damaged checksum makes its page count as changed: saved again, never lost. */
static void test_page_unchanged_bad_checksum(Fixture *f, gconstpointer data)
{
    g_autofree uint8_t *page = g_malloc(PAGE);

    {
        g_autoptr(MappedRamImage) img = open_ok(f);
        poke(f, img->h.blocks[1].csum_offset + 150 * 8, 0x40);
    }
    g_autoptr(MappedRamImage) img = open_ok(f);
    fill_page(page, 1, 150);
    assert_unchanged(img, 1, 150, page, false);
}

/* Zero pages are holes: the allocation is the data plus little metadata. */
static void test_sparse(Fixture *f, gconstpointer data)
{
    struct stat st;
    uint64_t data_bytes = ((BLOCK0_PAGES + 2) / 3 + 200) * (uint64_t)PAGE;

    g_assert_cmpint(stat(f->path, &st), ==, 0);
    g_test_message("allocated %" G_GUINT64_FORMAT " for %" G_GUINT64_FORMAT " of data, file %"
                   G_GUINT64_FORMAT, (uint64_t)st.st_blocks * 512, data_bytes,
                   (uint64_t)st.st_size);
    /* Header, table, a bitmap page and checksum pages per block, the machine, devices. */
    g_assert_cmpuint((uint64_t)st.st_blocks * 512, <=, data_bytes + 16 * PAGE);
    g_assert_cmpuint((uint64_t)st.st_size, >, f->sizes[0] + f->sizes[1]);
}

/* A precopy pass that sends a page, then sends it as zero: the data goes again. */
static void test_zero_after_data(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autofree uint8_t *buf = g_malloc0(PAGE);
    int fd = open(f->path, O_RDWR | O_TRUNC | O_CLOEXEC);
    MappedRamWriter *w = mapped_ram_writer_new(fd, f->path, SAVEVM_STREAM_PRECOPY, 2, f->sizes,
                                               f->fdt, sizeof(f->fdt), &err);
    MappedRamImage *img;

    fill_page(buf, 0, 5);
    g_assert_true(mapped_ram_writer_put(w, 0, 5, 1, buf, &err));
    g_assert_true(mapped_ram_writer_zero(w, 0, 4, 3, &err));
    g_assert_true(mapped_ram_writer_finish(w, f->devices, sizeof(f->devices), &err));
    g_assert_no_error(err);
    mapped_ram_writer_free(w);
    close(fd);
    img = open_ok(f);
    g_assert_cmpuint(img->h.blocks[0].present_pages, ==, 0);
    g_assert_true(mapped_ram_image_read(img, 0, 5, 1, buf, &err));
    g_assert_no_error(err);
    g_assert_true(buf[0] == 0 && !memcmp(buf, buf + 1, PAGE - 1));
    mapped_ram_image_close(img);
}

static void test_corrupt_page(Fixture *f, gconstpointer data)
{
    g_autoptr(MappedRamImage) img = NULL;
    g_autoptr(GError) err = NULL;
    g_autofree uint8_t *buf = g_malloc(PAGE * 4);

    {
        g_autoptr(MappedRamImage) probe = open_ok(f);
        poke(f, probe->h.blocks[0].pages_offset + 3 * PAGE + 77, 0x40);
    }
    img = open_ok(f);          /* metadata is fine: pages are checked as they are read */
    g_assert_true(mapped_ram_image_read(img, 0, 0, 3, buf, &err));
    g_assert_false(mapped_ram_image_read(img, 0, 2, 4, buf, &err));
    g_assert_nonnull(strstr(err->message, "page 0x3000 of RAM block 0"));
    g_assert_nonnull(strstr(err->message, "checksum"));
    g_clear_error(&err);
    g_assert_false(mapped_ram_image_check(img, NULL, NULL, &err));
    g_assert_nonnull(strstr(err->message, "checksum"));
}

/* Data where a page is absent (zero) is refused too: a bit lost in the bitmap. */
static void test_absent_page_not_zero(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autofree uint8_t *buf = g_malloc(PAGE);
    g_autoptr(MappedRamImage) img = open_ok(f);

    fill_page(buf, 0, 1);
    g_assert_false(mapped_ram_image_verify(img, 0, 1, 1, buf, &err));
    g_assert_nonnull(strstr(err->message, "absent"));
}

static void test_corrupt_metadata(Fixture *f, gconstpointer data)
{
    uint64_t bitmap_offset, csum_offset, devices_offset;

    {
        g_autoptr(MappedRamImage) probe = open_ok(f);
        bitmap_offset = probe->h.blocks[1].bitmap_offset;
        csum_offset = probe->h.blocks[0].csum_offset;
        devices_offset = probe->h.devices_offset;
    }
    poke(f, 120, 0x01);                  /* "created": covered by the digest */
    open_fails(f, "digest");
    poke(f, 120, 0x01);
    poke(f, devices_offset + 3, 0x10);   /* device state */
    open_fails(f, "digest");
    poke(f, devices_offset + 3, 0x10);
    poke(f, bitmap_offset + 12, 0x04);   /* a page bit flipped */
    open_fails(f, "bitmap");
    poke(f, bitmap_offset + 12, 0x04);
    poke(f, 0, 0xff);                    /* magic */
    open_fails(f, "bad magic");
    poke(f, 0, 0xff);
    {
        g_autoptr(MappedRamImage) img = open_ok(f);
        g_autoptr(GError) err = NULL;

        /* A checksum table entry: the page it covers fails, and check names the table. */
        poke(f, csum_offset + 8 * 3 + 1, 0x20);
        g_assert_false(mapped_ram_image_check(img, NULL, NULL, &err));
        g_assert_nonnull(strstr(err->message, "checksum table"));
    }
}

static void test_truncated(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autofree uint8_t *buf = g_malloc(PAGE);
    MappedRamImage *img = open_ok(f);
    uint64_t pages_offset = img->h.blocks[0].pages_offset;

    /* Under a reader that already opened it: the next read fails, naming the end. */
    g_assert_cmpint(truncate(f->path, (off_t)(pages_offset + 1000 * PAGE)), ==, 0);
    g_assert_true(mapped_ram_image_read(img, 0, 999, 1, buf, &err));
    g_assert_false(mapped_ram_image_read(img, 0, 1002, 1, buf, &err));
    g_assert_nonnull(strstr(err->message, "truncated"));
    mapped_ram_image_close(img);
    /* And at open. */
    open_fails(f, "truncated");
}

static void test_incremental_refused(Fixture *f, gconstpointer data)
{
    poke(f, 24, MAPPED_RAM_LAYOUT_HAS_BASE);
    open_fails(f, "incremental");
}

/* The layout is a function of the sizes: readers recompute it to check offsets. */
static void test_layout_is_deterministic(Fixture *f, gconstpointer data)
{
    MappedRamHeader a = { 0 }, b = { 0 };
    uint64_t sizes[2] = { 1ull << 30, 4096 };

    mapped_ram_layout(&a, 2, sizes, 5000);
    mapped_ram_layout(&b, 2, sizes, 5000);
    g_assert_cmpmem(&a, sizeof(a), &b, sizeof(b));
    g_assert_cmpuint(a.blocks[0].pages_offset % MAPPED_RAM_REGION_ALIGN, ==, 0);
    g_assert_cmpuint(a.blocks[1].pages_offset, >=, a.blocks[0].pages_offset + sizes[0]);
    g_assert_cmpuint(a.machine_offset, >=, a.blocks[1].csum_offset + 8);
    g_assert_cmpuint(mapped_ram_devices_offset(&a), ==, a.blocks[1].pages_offset + 4096);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) \
    g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
    ADD("/mapped-ram/round-trip", test_round_trip);
    ADD("/mapped-ram/runs", test_runs);
    ADD("/mapped-ram/sparse", test_sparse);
    ADD("/mapped-ram/page-unchanged", test_page_unchanged);
    ADD("/mapped-ram/page-unchanged-bad-checksum", test_page_unchanged_bad_checksum);
    ADD("/mapped-ram/page-unchanged-chain", test_page_unchanged_chain);
    ADD("/mapped-ram/zero-after-data", test_zero_after_data);
    ADD("/mapped-ram/corrupt/page", test_corrupt_page);
    ADD("/mapped-ram/corrupt/absent-page-not-zero", test_absent_page_not_zero);
    ADD("/mapped-ram/corrupt/metadata", test_corrupt_metadata);
    ADD("/mapped-ram/truncated", test_truncated);
    ADD("/mapped-ram/incremental-refused", test_incremental_refused);
    ADD("/mapped-ram/layout", test_layout_is_deterministic);
#undef ADD
    return g_test_run();
}
