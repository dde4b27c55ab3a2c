/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests of the stream format on a fake machine: round trips, any page order, and every kind of bad image refused. */
#include "migration/savevm.h"

#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "accel/accel.h"
#include "migration/savevm-parse.h"
#include "migration/stream-file.h"
#include "migration/vmstate.h"
#include "system/machine.h"
#include "util/error.h"

#define MiB (1024ull * 1024)

typedef struct FakeDevice {
    uint64_t regs[4];
    bool loaded;
} FakeDevice;

static bool fake_device_save(void *opaque, GByteArray *buf, GError **errp)
{
    FakeDevice *d = opaque;

    for (int i = 0; i < 4; i++) {
        vmstate_put_u64(buf, d->regs[i]);
    }
    return true;
}

static bool fake_device_load(void *opaque, const uint8_t *data, size_t len,
                             uint32_t version, GError **errp)
{
    FakeDevice *d = opaque;
    VMStateReader r;

    vmstate_reader_init(&r, data, len);
    for (int i = 0; i < 4; i++) {
        d->regs[i] = vmstate_get_u64(&r);
    }
    d->loaded = true;
    return vmstate_reader_finish(&r, "fake-device", errp);
}

static const AccelOps fake_accel = { .name = "test" };

static Machine *fake_machine_new(uint64_t ram_size, unsigned smp, FakeDevice *dev)
{
    Machine *m = g_new0(Machine, 1);
    RamBlock *b = g_new0(RamBlock, 1);

    b->name = g_strdup("pc.ram");
    b->size = ram_size;
    b->page_size = MACHINE_PAGE_SIZE;
    b->host = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    g_assert(b->host != MAP_FAILED);
    m->ram_blocks = g_ptr_array_new();
    g_ptr_array_add(m->ram_blocks, b);
    m->ram_size = ram_size;
    m->smp = smp;
    m->nr_ram_ranges = 1;
    m->ram_ranges[0] = (GuestRamRange){ .gpa = 0, .size = ram_size, .block = b };
    m->accel = &fake_accel;
    m->runstate = RUN_STATE_RUNNING;
    if (dev) {
        VMStateHandler h = {
            .name = "fake-device", .instance = 0, .version = 1,
            .save = fake_device_save, .load = fake_device_load, .opaque = dev,
        };
        vmstate_register(m, &h);
    }
    return m;
}

static void fake_machine_free(Machine *m)
{
    RamBlock *b = g_ptr_array_index(m->ram_blocks, 0);

    munmap(b->host, b->size);
    g_free(b->name);
    g_free(b);
    g_ptr_array_unref(m->ram_blocks);
    if (m->vmstate_handlers) {
        g_array_unref(m->vmstate_handlers);
    }
    g_free(m);
}

static uint8_t *ram_of(Machine *m)
{
    return ((RamBlock *)g_ptr_array_index(m->ram_blocks, 0))->host;
}

/* Every third page is zero, the others carry their index and a pattern. */
static void fill_guest(Machine *m)
{
    uint8_t *ram = ram_of(m);
    uint64_t pages = m->ram_size / SAVEVM_PAGE_SIZE;

    for (uint64_t p = 0; p < pages; p++) {
        uint64_t *w = (uint64_t *)(ram + p * SAVEVM_PAGE_SIZE);
        if (p % 3 == 0) {
            continue;
        }
        for (unsigned i = 0; i < SAVEVM_PAGE_SIZE / 8; i++) {
            w[i] = p * 0x100000001ull + i;
        }
    }
}

typedef enum {
    ORDER_RUNS,        /* runs of up to 8 pages, in address order */
    ORDER_SHUFFLED,    /* one page per record, shuffled, one page sent twice */
    ORDER_MISSING,     /* like RUNS but page 5 never sent */
    ORDER_REZEROED,    /* like RUNS, then page 1 (data) sent again as zero, as precopy may */
} ImageOrder;

static void write_page_record(StreamFile *f, Machine *m, uint64_t first, uint32_t n,
                              bool zero)
{
    uint8_t hdr[SAVEVM_RAM_RECORD_HEADER_SIZE];

    savevm_encode_ram_header(hdr, 0, first * SAVEVM_PAGE_SIZE, n,
                             zero ? SAVEVM_RAM_ZERO : SAVEVM_RAM_DATA);
    g_assert_true(stream_file_write(f, hdr, sizeof(hdr)));
    if (!zero) {
        g_assert_true(stream_file_write(f, ram_of(m) + first * SAVEVM_PAGE_SIZE,
                                        (size_t)n * SAVEVM_PAGE_SIZE));
    }
}

static bool page_is_zero(Machine *m, uint64_t p)
{
    const uint8_t *page = ram_of(m) + p * SAVEVM_PAGE_SIZE;

    for (unsigned i = 0; i < SAVEVM_PAGE_SIZE; i++) {
        if (page[i]) {
            return false;
        }
    }
    return true;
}

/* Build an image of @m in memory, with optional extra records before the footer. */
static GByteArray *build_image(Machine *m, ImageOrder order,
                               void (*extra)(StreamFile *f))
{
    StreamFile *f = stream_file_new_memory_output();
    g_autoptr(GError) err = NULL;
    g_autoptr(GByteArray) devices = NULL;
    uint64_t pages = m->ram_size / SAVEVM_PAGE_SIZE;
    GByteArray *out;

    g_assert_true(savevm_write_header(f, m, SAVEVM_STREAM_BACKGROUND_SNAPSHOT, &err));
    g_assert_no_error(err);
    if (order == ORDER_SHUFFLED) {
        g_autofree uint64_t *perm = g_new(uint64_t, pages);
        GRand *rand = g_rand_new_with_seed(42);

        for (uint64_t p = 0; p < pages; p++) {
            perm[p] = p;
        }
        for (uint64_t p = pages - 1; p > 0; p--) {
            uint64_t j = g_rand_int_range(rand, 0, (gint32)p + 1);
            uint64_t t = perm[p];
            perm[p] = perm[j];
            perm[j] = t;
        }
        /* Page 7 first as stale zeros; its real content comes later and wins. */
        write_page_record(f, m, 7, 1, true);
        for (uint64_t i = 0; i < pages; i++) {
            write_page_record(f, m, perm[i], 1, page_is_zero(m, perm[i]));
        }
        g_rand_free(rand);
    } else {
        uint64_t p = 0;
        while (p < pages) {
            bool zero = page_is_zero(m, p);
            uint32_t n = 1;

            while (p + n < pages && n < 8 && page_is_zero(m, p + n) == zero &&
                   !(order == ORDER_MISSING && p + n == 5)) {
                n++;
            }
            if (!(order == ORDER_MISSING && p == 5)) {
                write_page_record(f, m, p, n, zero);
            }
            p += n;
        }
        if (order == ORDER_REZEROED) {
            write_page_record(f, m, 1, 1, true);
        }
    }
    g_assert_true(savevm_write_ram_end(f, &err));
    devices = savevm_save_devices(m, &err);
    g_assert_no_error(err);
    g_assert_true(savevm_write_devices(f, devices, &err));
    if (extra) {
        extra(f);
    }
    g_assert_true(savevm_write_footer(f, &err));
    g_assert_no_error(err);
    out = g_byte_array_ref(stream_file_memory_output(f));
    stream_file_free(f);
    return out;
}

static bool load_image(GByteArray *img, Machine *m, SavevmLoadInfo *info, GError **errp)
{
    StreamFile *f = stream_file_new_memory_input(img->data, img->len);
    bool ok = savevm_load_full(f, m, info, errp);

    stream_file_free(f);
    return ok;
}

static void assert_error_contains(GError *err, const char *what)
{
    g_assert_nonnull(err);
    if (!strstr(err->message, what)) {
        g_error("error '%s' does not mention '%s'", err->message, what);
    }
}

static void check_roundtrip(ImageOrder order)
{
    FakeDevice src_dev = { .regs = { 1, 2, 0xdeadbeef, UINT64_MAX } };
    FakeDevice dst_dev = { 0 };
    Machine *src = fake_machine_new(4 * MiB, 1, &src_dev);
    Machine *dst = fake_machine_new(4 * MiB, 1, &dst_dev);
    g_autoptr(GByteArray) img = NULL;
    g_autoptr(GError) err = NULL;
    SavevmLoadInfo info;

    fill_guest(src);
    /* Garbage where the image has zero pages: a zero record must clear it. */
    memset(ram_of(dst), 0xaa, 4 * SAVEVM_PAGE_SIZE);
    img = build_image(src, order, NULL);
    g_assert_true(load_image(img, dst, &info, &err));
    g_assert_no_error(err);
    g_assert_cmpint(memcmp(ram_of(src), ram_of(dst), 4 * MiB), ==, 0);
    g_assert_true(dst_dev.loaded);
    g_assert_cmpmem(dst_dev.regs, sizeof(dst_dev.regs), src_dev.regs, sizeof(src_dev.regs));
    g_assert_cmpuint(info.version, ==, SAVEVM_VERSION);
    g_assert_cmphex(info.stream_flags, ==, SAVEVM_STREAM_BACKGROUND_SNAPSHOT);
    g_assert_true(info.source_running);
    g_assert_cmpuint(info.devices, ==, 1);
    g_assert_cmpuint(info.stream_length, ==, img->len);
    g_assert_cmpuint(info.data_pages + info.zero_pages, >=, 1024);
    fake_machine_free(src);
    fake_machine_free(dst);
}

static void test_roundtrip_runs(void)
{
    check_roundtrip(ORDER_RUNS);
}

static void test_roundtrip_out_of_order(void)
{
    check_roundtrip(ORDER_SHUFFLED);
}

/* A page the stream sent with data and later as zero ends zero. */
static void test_rezeroed_page(void)
{
    Machine *src = fake_machine_new(4 * MiB, 1, NULL);
    Machine *dst = fake_machine_new(4 * MiB, 1, NULL);
    g_autoptr(GByteArray) img = NULL;
    g_autoptr(GError) err = NULL;

    fill_guest(src);
    g_assert_false(page_is_zero(src, 1));
    img = build_image(src, ORDER_REZEROED, NULL);
    g_assert_true(load_image(img, dst, NULL, &err));
    g_assert_no_error(err);
    g_assert_true(page_is_zero(dst, 1));
    g_assert_cmpmem(ram_of(dst) + 2 * SAVEVM_PAGE_SIZE, 4 * MiB - 2 * SAVEVM_PAGE_SIZE,
                    ram_of(src) + 2 * SAVEVM_PAGE_SIZE, 4 * MiB - 2 * SAVEVM_PAGE_SIZE);
    fake_machine_free(src);
    fake_machine_free(dst);
}

/* Pages of @m's RAM resident in memory (mincore). */
static uint64_t resident_pages(Machine *m)
{
    uint64_t pages = m->ram_size / SAVEVM_PAGE_SIZE, resident = 0;
    g_autofree unsigned char *vec = g_malloc(pages);

    g_assert_cmpint(mincore(ram_of(m), m->ram_size, vec), ==, 0);
    for (uint64_t p = 0; p < pages; p++) {
        resident += vec[p] & 1;
    }
    return resident;
}

/*
 * Zero records leave never-touched guest RAM alone: reading each page to test
 * it would map the zero page there, a page fault per page (what made an idle
 * 1 GiB guest's restore take up to 1.7 s).
 */
static void test_zero_records_leave_holes(void)
{
    const uint64_t size = 64 * MiB, pages = size / SAVEVM_PAGE_SIZE;
    Machine *src = fake_machine_new(size, 1, NULL);
    Machine *dst = fake_machine_new(size, 1, NULL);
    g_autoptr(GByteArray) img = NULL;
    g_autoptr(GError) err = NULL;
    SavevmLoadInfo info;
    uint64_t resident;

    memset(ram_of(src) + 3 * SAVEVM_PAGE_SIZE, 0x5a, SAVEVM_PAGE_SIZE);
    memset(ram_of(src) + (pages - 2) * SAVEVM_PAGE_SIZE, 0xa5, SAVEVM_PAGE_SIZE);
    /* What -kernel loaded before the restore, where the image has zero. */
    memset(ram_of(dst) + 9 * SAVEVM_PAGE_SIZE, 0xee, SAVEVM_PAGE_SIZE);
    img = build_image(src, ORDER_RUNS, NULL);
    g_assert_true(load_image(img, dst, &info, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(info.data_pages, ==, 2);
    resident = resident_pages(dst);
    /* The three written pages, each possibly in a huge page where THP is always on. */
    g_assert_cmpuint(resident, >=, 3);
    g_assert_cmpuint(resident, <=, 3 * 512);
    g_assert_cmpmem(ram_of(dst), size, ram_of(src), size);
    fake_machine_free(src);
    fake_machine_free(dst);
}

/*
 * The helper that faults RAM in ahead of the stream goes beyond a run of data
 * as far as the run came (up to its lead); where no data followed, those
 * regions are emptied again, so a restore holds no more memory than its data.
 */
static void test_prefault_ahead_given_back(void)
{
    const uint64_t size = 64 * MiB, data = 8 * MiB;
    Machine *src = fake_machine_new(size, 1, NULL);
    Machine *dst = fake_machine_new(size, 1, NULL);
    g_autoptr(GByteArray) img = NULL;
    g_autoptr(GError) err = NULL;
    SavevmLoadInfo info;
    uint64_t resident;

    for (uint64_t p = 0; p < data / SAVEVM_PAGE_SIZE; p++) {
        memset(ram_of(src) + p * SAVEVM_PAGE_SIZE, (int)(p % 251) + 1, SAVEVM_PAGE_SIZE);
    }
    img = build_image(src, ORDER_RUNS, NULL);
    g_assert_true(load_image(img, dst, &info, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(info.data_pages, ==, data / SAVEVM_PAGE_SIZE);
    /*
     * Records of 8 pages: after the last one the run is 8 MiB less one
     * record, so the helper was sent to 16 MiB less a record: the four
     * regions from 8 to 16 MiB, where only zero records came.
     */
    g_assert_cmpuint(info.ahead_returned_bytes, ==, 8 * MiB);
    resident = resident_pages(dst);
    /* The data, and at most one huge page more where the mapping is not aligned. */
    g_assert_cmpuint(resident, >=, data / SAVEVM_PAGE_SIZE);
    g_assert_cmpuint(resident, <=, data / SAVEVM_PAGE_SIZE + 512);
    g_assert_cmpmem(ram_of(dst), size, ram_of(src), size);
    fake_machine_free(src);
    fake_machine_free(dst);
}

/* Load @img into a fresh 4 MiB machine with a device; expect failure mentioning @what. */
static void expect_refused(GByteArray *img, const char *what)
{
    FakeDevice dev = { 0 };
    Machine *dst = fake_machine_new(4 * MiB, 1, &dev);
    g_autoptr(GError) err = NULL;

    g_assert_false(load_image(img, dst, NULL, &err));
    assert_error_contains(err, what);
    /* Device state is loaded only from a verified stream. */
    g_assert_false(dev.loaded);
    fake_machine_free(dst);
}

static GByteArray *source_image(ImageOrder order, void (*extra)(StreamFile *f))
{
    FakeDevice dev = { .regs = { 5, 6, 7, 8 } };
    Machine *src = fake_machine_new(4 * MiB, 1, &dev);
    GByteArray *img;

    fill_guest(src);
    img = build_image(src, order, extra);
    fake_machine_free(src);
    return img;
}

static void test_truncated(void)
{
    g_autoptr(GByteArray) img = source_image(ORDER_RUNS, NULL);
    const guint cuts[] = { 0, 5, 15, 16, 40, 200, img->len / 3, img->len / 2,
                           img->len - 33, img->len - 32, img->len - 9, img->len - 1 };

    for (size_t i = 0; i < G_N_ELEMENTS(cuts); i++) {
        g_autoptr(GByteArray) cut = g_byte_array_new();

        g_byte_array_append(cut, img->data, cuts[i]);
        expect_refused(cut, "truncated at offset");
    }
}

static void test_flipped_byte(void)
{
    static const struct {
        gssize offset;      /* negative: from the end */
        const char *what;
    } cases[] = {
        { 0, "bad magic" },
        { 9, "stream format version" },
        { 33, "device tree" },                /* the FDT header's magic */
        { -40, "checksum mismatch" },          /* inside the device records */
        { -1, "checksum mismatch" },           /* the checksum itself */
        { -12, "stream length" },              /* the footer's length field */
    };
    g_autoptr(GByteArray) img = source_image(ORDER_RUNS, NULL);

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GByteArray) bad = g_byte_array_new();
        gsize off = cases[i].offset >= 0 ? (gsize)cases[i].offset
                                         : img->len - (gsize)-cases[i].offset;

        g_byte_array_append(bad, img->data, img->len);
        bad->data[off] ^= 0x40;
        expect_refused(bad, cases[i].what);
    }
    /* A flipped byte in page data: only the checksum can tell. */
    {
        g_autoptr(GByteArray) bad = g_byte_array_new();
        g_byte_array_append(bad, img->data, img->len);
        bad->data[img->len / 2] ^= 0x01;
        expect_refused(bad, "checksum mismatch");
    }
}

static void test_other_ram_size(void)
{
    g_autoptr(GByteArray) img = source_image(ORDER_RUNS, NULL);
    FakeDevice dev = { 0 };
    Machine *dst = fake_machine_new(8 * MiB, 1, &dev);
    g_autoptr(GError) err = NULL;

    g_assert_false(load_image(img, dst, NULL, &err));
    assert_error_contains(err, "different machine");
    assert_error_contains(err, "RAM size: the image has 4 MiB, this machine 8 MiB");
    g_assert_false(dev.loaded);
    fake_machine_free(dst);
}

static void test_other_vcpus(void)
{
    g_autoptr(GByteArray) img = source_image(ORDER_RUNS, NULL);
    FakeDevice dev = { 0 };
    Machine *dst = fake_machine_new(4 * MiB, 2, &dev);
    g_autoptr(GError) err = NULL;

    g_assert_false(load_image(img, dst, NULL, &err));
    assert_error_contains(err, "vCPUs: the image has 1, this machine 2");
    fake_machine_free(dst);
}

static void test_missing_page(void)
{
    g_autoptr(GByteArray) img = source_image(ORDER_MISSING, NULL);

    expect_refused(img, "1 pages of block 0 never saved (the first at offset 0x5000)");
}

static void test_unknown_device(void)
{
    g_autoptr(GByteArray) img = source_image(ORDER_RUNS, NULL);
    Machine *dst = fake_machine_new(4 * MiB, 1, NULL);
    g_autoptr(GError) err = NULL;

    g_assert_false(load_image(img, dst, NULL, &err));
    assert_error_contains(err, "device 'fake-device' instance 0");
    assert_error_contains(err, "which this machine does not have");
    fake_machine_free(dst);
}

static void test_device_missing_from_image(void)
{
    g_autoptr(GByteArray) img = source_image(ORDER_RUNS, NULL);
    FakeDevice dev = { 0 }, other = { 0 };
    Machine *dst = fake_machine_new(4 * MiB, 1, &dev);
    VMStateHandler h = {
        .name = "fake-device", .instance = 1, .version = 1,
        .save = fake_device_save, .load = fake_device_load, .opaque = &other,
    };
    g_autoptr(GError) err = NULL;

    vmstate_register(dst, &h);
    g_assert_false(load_image(img, dst, NULL, &err));
    assert_error_contains(err, "no state for device 'fake-device' instance 1");
    fake_machine_free(dst);
}

static void add_optional_record(StreamFile *f)
{
    static const uint8_t hdr[] = { 'X', 'T', 'R', 'A', 0, 0, 0, 0x80, 3, 0, 0, 0, 0, 0, 0, 0,
                                   1, 2, 3 };
    stream_file_write(f, hdr, sizeof(hdr));
}

static void add_required_record(StreamFile *f)
{
    static const uint8_t hdr[] = { 'X', 'T', 'R', 'A', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
    stream_file_write(f, hdr, sizeof(hdr));
}

static void test_optional_record_skipped(void)
{
    g_autoptr(GByteArray) img = source_image(ORDER_RUNS, add_optional_record);
    FakeDevice dev = { 0 };
    Machine *dst = fake_machine_new(4 * MiB, 1, &dev);
    g_autoptr(GError) err = NULL;

    g_assert_true(load_image(img, dst, NULL, &err));
    g_assert_no_error(err);
    g_assert_true(dev.loaded);
    fake_machine_free(dst);
}

static void test_unknown_required_record(void)
{
    g_autoptr(GByteArray) img = source_image(ORDER_RUNS, add_required_record);

    expect_refused(img, "unknown record type 'XTRA'");
}

static void test_trailing_data(void)
{
    g_autoptr(GByteArray) img = source_image(ORDER_RUNS, NULL);

    g_byte_array_append(img, (const guint8 *)"junk", 4);
    expect_refused(img, "unexpected data after the footer");
}

/* frostvm-img's view: the parser alone, without a machine, skipping page data. */
typedef struct Counts {
    uint64_t zero, data, devices, records;
} Counts;

static bool count_ram(void *opaque, const SavevmRamRecord *rec, const void *data,
                      GError **errp)
{
    Counts *c = opaque;

    c->records++;
    if (rec->flags & SAVEVM_RAM_ZERO) {
        c->zero += rec->npages;
    } else {
        c->data += rec->npages;
    }
    return true;
}

static bool count_device(void *opaque, const char *name, uint32_t instance,
                         uint32_t version, const uint8_t *data, size_t len,
                         uint64_t offset, GError **errp)
{
    ((Counts *)opaque)->devices++;
    return true;
}

static void test_parse_without_machine(void)
{
    g_autoptr(GByteArray) img = source_image(ORDER_RUNS, NULL);
    SavevmParseOps ops = { .ram_record = count_ram, .device = count_device };
    StreamFile *f = stream_file_new_memory_input(img->data, img->len);
    g_autoptr(GError) err = NULL;
    Counts c = { 0 };

    g_assert_true(savevm_parse(f, &ops, &c, &err));
    g_assert_no_error(err);
    /* 1024 pages, every third zero; plus the run-state record. */
    g_assert_cmpuint(c.zero, ==, 342);
    g_assert_cmpuint(c.data, ==, 682);
    g_assert_cmpuint(c.devices, ==, 2);
    stream_file_free(f);
}


/* frostvm-img, run as a program on images written here (meson sets FROSTVM_IMG). */
static bool img_tool(char **out, char **err_out, int *status, ...)
{
    const char *tool = g_getenv("FROSTVM_IMG");
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(GError) err = NULL;
    va_list ap;
    const char *arg;

    if (!tool) {
        g_test_skip("FROSTVM_IMG is not set (run this test through meson)");
        return false;
    }
    g_ptr_array_add(argv, (gpointer)tool);
    va_start(ap, status);
    while ((arg = va_arg(ap, const char *))) {
        g_ptr_array_add(argv, (gpointer)arg);
    }
    va_end(ap);
    g_ptr_array_add(argv, NULL);
    g_assert_true(g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                               out, err_out, status, &err));
    g_assert_no_error(err);
    return true;
}

static char *save_to_file(GByteArray *img, char **dir)
{
    char *path;

    *dir = g_dir_make_tmp("test-savevm-XXXXXX", NULL);
    path = g_build_filename(*dir, "image", NULL);
    g_assert_true(g_file_set_contents(path, (const char *)img->data, img->len, NULL));
    return path;
}

static void assert_contains(const char *text, const char *what)
{
    if (!strstr(text, what)) {
        g_error("output lacks '%s':\n%s", what, text);
    }
}

static void test_img_info(void)
{
    g_autoptr(GByteArray) img = source_image(ORDER_SHUFFLED, NULL);
    g_autofree char *dir = NULL;
    g_autofree char *path = save_to_file(img, &dir);
    g_autofree char *out = NULL, *err = NULL, *json = NULL, *jerr = NULL;
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonObject *o;
    int status;

    if (!img_tool(&out, &err, &status, "info", path, NULL)) {
        goto done;
    }
    g_assert_true(g_spawn_check_wait_status(status, NULL));
    assert_contains(out, "format: frostvm migration stream, version 1\n");
    assert_contains(out, "stream flags: background-snapshot\n");
    assert_contains(out, "  vcpus: 1\n");
    assert_contains(out, "  ram size: 4.0 MiB\n");
    assert_contains(out, "    pc.ram: 4.0 MiB");
    assert_contains(out, "    data pages: 682 (2.7 MiB)\n");
    assert_contains(out, "    zero pages: 343\n");
    assert_contains(out, "    pages saved more than once: 1\n");
    assert_contains(out, "    fake-device instance 0: version 1, 32 bytes");
    assert_contains(out, "(verified)");

    img_tool(&json, &jerr, &status, "--output=json", "info", path, NULL);
    g_assert_true(json_parser_load_from_data(parser, json, -1, NULL));
    o = json_node_get_object(json_parser_get_root(parser));
    g_assert_cmpint(json_object_get_int_member(o, "data-pages"), ==, 682);
    g_assert_true(json_object_get_boolean_member(o, "valid"));
    g_assert_cmpint(json_object_get_int_member(json_object_get_object_member(o, "machine"),
                                               "ram-size"), ==, 4 * MiB);
done:
    g_unlink(path);
    g_rmdir(dir);
}

static void test_img_check(void)
{
    g_autoptr(GByteArray) img = source_image(ORDER_RUNS, NULL);
    g_autofree char *dir = NULL;
    g_autofree char *path = save_to_file(img, &dir);
    g_autofree char *out = NULL, *err = NULL;
    int status;

    if (!img_tool(&out, &err, &status, "check", path, NULL)) {
        goto done;
    }
    g_assert_true(g_spawn_check_wait_status(status, NULL));
    assert_contains(out, "No errors were found on the image.\n");

    /* A flipped data byte: exit status 2, the nature and offset named. */
    img->data[img->len / 2] ^= 1;
    g_assert_true(g_file_set_contents(path, (const char *)img->data, img->len, NULL));
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    img_tool(&out, &err, &status, "check", path, NULL);
    g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    assert_contains(err, "checksum mismatch: the footer at offset");

    /* Truncated. */
    g_assert_true(g_file_set_contents(path, (const char *)img->data, img->len / 3, NULL));
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    img_tool(&out, &err, &status, "check", path, NULL);
    g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    assert_contains(err, "truncated at offset");
done:
    g_unlink(path);
    g_rmdir(dir);
}

static void test_img_dump_ram(void)
{
    FakeDevice dev = { 0 };
    Machine *src = fake_machine_new(4 * MiB, 1, &dev);
    g_autoptr(GByteArray) img = NULL;
    g_autofree char *dir = NULL;
    g_autofree char *path = NULL;
    g_autofree char *raw = NULL;
    g_autofree char *out = NULL, *err = NULL, *contents = NULL;
    gsize len;
    int status;

    fill_guest(src);
    img = build_image(src, ORDER_SHUFFLED, NULL);
    path = save_to_file(img, &dir);
    raw = g_build_filename(dir, "ram.raw", NULL);
    if (img_tool(&out, &err, &status, "dump-ram", path, raw, NULL)) {
        g_assert_true(g_spawn_check_wait_status(status, NULL));
        g_assert_true(g_file_get_contents(raw, &contents, &len, NULL));
        g_assert_cmpmem(contents, len, ram_of(src), 4 * MiB);
        g_unlink(raw);
    }
    fake_machine_free(src);
    g_unlink(path);
    g_rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/savevm/roundtrip/runs", test_roundtrip_runs);
    g_test_add_func("/savevm/roundtrip/out-of-order", test_roundtrip_out_of_order);
    g_test_add_func("/savevm/load/rezeroed-page", test_rezeroed_page);
    g_test_add_func("/savevm/load/zero-records-leave-holes", test_zero_records_leave_holes);
    g_test_add_func("/savevm/load/prefault-ahead-given-back", test_prefault_ahead_given_back);
    g_test_add_func("/savevm/refuse/truncated", test_truncated);
    g_test_add_func("/savevm/refuse/flipped-byte", test_flipped_byte);
    g_test_add_func("/savevm/refuse/other-ram-size", test_other_ram_size);
    g_test_add_func("/savevm/refuse/other-vcpus", test_other_vcpus);
    g_test_add_func("/savevm/refuse/missing-page", test_missing_page);
    g_test_add_func("/savevm/refuse/unknown-device", test_unknown_device);
    g_test_add_func("/savevm/refuse/device-missing-from-image", test_device_missing_from_image);
    g_test_add_func("/savevm/refuse/unknown-required-record", test_unknown_required_record);
    g_test_add_func("/savevm/refuse/trailing-data", test_trailing_data);
    g_test_add_func("/savevm/records/optional-skipped", test_optional_record_skipped);
    g_test_add_func("/savevm/parse/without-machine", test_parse_without_machine);
    g_test_add_func("/savevm/frostvm-img/info", test_img_info);
    g_test_add_func("/savevm/frostvm-img/check", test_img_check);
    g_test_add_func("/savevm/frostvm-img/dump-ram", test_img_dump_ram);
    return g_test_run();
}
