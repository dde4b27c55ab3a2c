/* SPDX-License-Identifier: GPL-2.0-or-later */
/* frostvm-img on page-aligned (mapped-ram) images: info, check and dump-ram. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <glib.h>
#include <json-glib/json-glib.h>

#include "migration/mapped-ram.h"
#include "migration/savevm.h"
#include "tools/frostvm-img.h"
#include "util/error.h"

bool img_is_mapped(const char *path)
{
    uint8_t head[SAVEVM_HEADER_SIZE];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    bool mapped;

    if (fd < 0) {
        return false;
    }
    mapped = pread(fd, head, sizeof(head), 0) == (ssize_t)sizeof(head) &&
             mapped_ram_is_image_header(head, sizeof(head));
    close(fd);
    return mapped;
}

static MappedRamImage *img_open(const char *path)
{
    g_autoptr(GError) err = NULL;
    MappedRamImage *img = mapped_ram_image_open(path, -1, &err);

    if (!img) {
        g_printerr("frostvm-img: %s\n", err->message);
    }
    return img;
}

/* Count the device records (DEVC headers back to back). */
static unsigned img_device_count(const MappedRamImage *img)
{
    unsigned n = 0;

    for (uint64_t off = 0; off + SAVEVM_RECORD_HEADER_SIZE <= img->h.devices_len; n++) {
        uint64_t len;
        memcpy(&len, img->devices + off + 8, sizeof(len));
        off += SAVEVM_RECORD_HEADER_SIZE + GUINT64_FROM_LE(len);
    }
    return n;
}

static uint64_t img_present_pages(const MappedRamImage *img)
{
    uint64_t n = 0;

    for (uint32_t i = 0; i < img->h.nblocks; i++) {
        n += img->h.blocks[i].present_pages;
    }
    return n;
}

static void info_human(const MappedRamImage *img, const struct stat *st)
{
    g_autofree char *uuid = mapped_ram_uuid_string(img->h.uuid);
    g_autofree char *fsize = human_size((uint64_t)st->st_size);
    g_autofree char *alloc = human_size((uint64_t)st->st_blocks * 512);
    uint64_t data = img_present_pages(img) * MAPPED_RAM_PAGE_SIZE;
    g_autofree char *hdata = human_size(data);
    char flags[128];

    printf("image: %s\n", img->path);
    printf("file size: %" PRIu64 " bytes (%s), allocated %s\n", (uint64_t)st->st_size, fsize,
           alloc);
    printf("format: frostvm page-aligned image (mapped-ram), layout version %u\n",
           MAPPED_RAM_LAYOUT_VERSION);
    printf("stream flags: %s\n", flag_names(img->h.stream_flags & ~MAPPED_RAM_STREAM_FLAG,
                                            flags, sizeof(flags)));
    printf("uuid: %s\n", uuid);
    printf("base: none (a flat image)\n");
    img_print_machine(img->machine);
    printf("sections:\n");
    for (uint32_t i = 0; i < img->h.nblocks; i++) {
        const MappedRamBlock *b = &img->h.blocks[i];
        g_autofree char *size = human_size(b->size);
        printf("  ram block %u: %s at offset %" PRIu64 ", %" PRIu64 " pages present, %"
               PRIu64 " absent (zero)\n", i, size, b->pages_offset, b->present_pages,
               mapped_ram_block_pages(b->size) - b->present_pages);
    }
    printf("  data: %s in %" PRIu64 " pages; allocated/data %.4f\n", hdata,
           img_present_pages(img), data ? (double)st->st_blocks * 512 / (double)data : 0.0);
    printf("  devices: %u records, %" PRIu64 " bytes at offset %" PRIu64 "\n",
           img_device_count(img), img->h.devices_len, img->h.devices_offset);
    printf("  digest: %016" PRIx64 " (metadata verified; 'check' verifies every page)\n",
           img->h.digest);
}

static void info_json(const MappedRamImage *img, const struct stat *st)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autofree char *uuid = mapped_ram_uuid_string(img->h.uuid);
    g_autofree char *digest = g_strdup_printf("%016" PRIx64, img->h.digest);

    json_builder_begin_object(b);
    json_put_str(b, "filename", img->path);
    json_put_str(b, "format", "frostvm-mapped-ram");
    json_put_u64(b, "layout-version", MAPPED_RAM_LAYOUT_VERSION);
    json_put_u64(b, "stream-flags", img->h.stream_flags);
    json_put_str(b, "uuid", uuid);
    json_put_str(b, "digest", digest);
    json_put_u64(b, "actual-size", (uint64_t)st->st_size);
    json_put_u64(b, "allocated-size", (uint64_t)st->st_blocks * 512);
    json_put_u64(b, "data-pages", img_present_pages(img));
    json_put_u64(b, "device-records", img_device_count(img));
    json_builder_set_member_name(b, "ram-blocks");
    json_builder_begin_array(b);
    for (uint32_t i = 0; i < img->h.nblocks; i++) {
        const MappedRamBlock *blk = &img->h.blocks[i];
        json_builder_begin_object(b);
        json_put_u64(b, "size", blk->size);
        json_put_u64(b, "pages-offset", blk->pages_offset);
        json_put_u64(b, "present-pages", blk->present_pages);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    json_builder_end_object(b);
    img_print_json(b);
}

int img_mapped_info(const char *path, const char *output)
{
    g_autoptr(MappedRamImage) img = img_open(path);
    struct stat st;

    if (!img) {
        return EXIT_CORRUPT;
    }
    if (fstat(img->fd, &st) < 0) {
        g_printerr("frostvm-img: %s: %s\n", path, g_strerror(errno));
        return EXIT_IMAGE_ERROR;
    }
    if (!strcmp(output, "json")) {
        info_json(img, &st);
    } else {
        info_human(img, &st);
    }
    return 0;
}

int img_mapped_check(const char *path)
{
    g_autoptr(MappedRamImage) img = img_open(path);
    g_autoptr(GError) err = NULL;

    if (!img) {
        return EXIT_CORRUPT;
    }
    if (!mapped_ram_image_check(img, NULL, NULL, &err)) {
        g_printerr("frostvm-img: %s\n", err->message);
        return EXIT_CORRUPT;
    }
    printf("No errors were found on the image.\n");
    printf("%" PRIu64 " data pages (each checked), %u device records, digest %016" PRIx64 "\n",
           img_present_pages(img), img_device_count(img), img->h.digest);
    printf("Image end offset: %" PRIu64 "\n", img->h.image_len);
    return 0;
}

/* One piece of guest-physical memory, as the machine description lays it out. */
typedef struct MappedDump {
    MappedRamImage *img;
    uint8_t *out;
    uint64_t out_size;
    bool collect;             /* first pass: only size the output */
    GError *error;
} MappedDump;

static void dump_range(const void *fdt, const char *path, void *opaque)
{
    MappedDump *d = opaque;
    uint64_t gpa = fdt_u64(fdt, path, "gpa"), size = fdt_u64(fdt, path, "size");
    uint64_t block = fdt_u64(fdt, path, "block"), offset = fdt_u64(fdt, path, "offset");
    const uint32_t chunk = 256;

    if (d->error) {
        return;
    }
    if (block >= d->img->h.nblocks || offset % MAPPED_RAM_PAGE_SIZE || size % MAPPED_RAM_PAGE_SIZE ||
        offset + size > d->img->h.blocks[block].size || gpa + size > (1ull << 46)) {
        error_setg(&d->error, "the machine description has an implausible RAM range %s", path);
        return;
    }
    if (d->collect) {
        d->out_size = MAX(d->out_size, gpa + size);
        return;
    }
    /* Only present pages: the fresh output reads as zero, and stays sparse there. */
    uint64_t page = offset / MAPPED_RAM_PAGE_SIZE, end = (offset + size) / MAPPED_RAM_PAGE_SIZE;
    uint64_t n;

    while ((n = mapped_ram_image_next_run(d->img, (uint32_t)block, &page, chunk)) &&
           page < end) {
        n = MIN(n, end - page);
        if (!mapped_ram_image_read(d->img, (uint32_t)block, page, (uint32_t)n,
                                   d->out + gpa + (page * MAPPED_RAM_PAGE_SIZE - offset),
                                   &d->error)) {
            return;
        }
        page += n;
    }
}

int img_mapped_dump_ram(const char *path, const char *out_path)
{
    g_autoptr(MappedRamImage) img = img_open(path);
    g_autofree char *tmp = g_strdup_printf("%s.tmp-XXXXXX", out_path);
    MappedDump d = { .collect = true };
    int fd;

    if (!img) {
        return EXIT_CORRUPT;
    }
    d.img = img;
    fdt_each_child(img->machine, "/ram-ranges", dump_range, &d);
    if (!d.error && !d.out_size) {
        error_setg(&d.error, "the machine description has no RAM ranges");
    }
    if (d.error) {
        g_printerr("frostvm-img: %s: %s\n", path, d.error->message);
        g_error_free(d.error);
        return EXIT_CORRUPT;
    }
    fd = g_mkstemp_full(tmp, O_RDWR | O_CLOEXEC, 0644);
    if (fd < 0 || ftruncate(fd, (off_t)d.out_size) < 0 ||
        (d.out = mmap(NULL, d.out_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
        g_printerr("frostvm-img: cannot create '%s': %s\n", out_path, g_strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        return EXIT_IMAGE_ERROR;
    }
    d.collect = false;
    fdt_each_child(img->machine, "/ram-ranges", dump_range, &d);
    munmap(d.out, d.out_size);
    if (!d.error && (fsync(fd) < 0 || rename(tmp, out_path) < 0)) {
        error_setg_errno(&d.error, errno, "cannot write '%s'", out_path);
    }
    close(fd);
    if (d.error) {
        unlink(tmp);
        g_printerr("frostvm-img: %s: %s\n", path, d.error->message);
        g_error_free(d.error);
        return EXIT_CORRUPT;
    }
    printf("wrote %" PRIu64 " bytes of guest-physical memory to %s\n", d.out_size, out_path);
    return 0;
}
