/* SPDX-License-Identifier: GPL-2.0-or-later */
/* frostvm-img convert: a stream image to a page-aligned one, and a page-aligned image back to a stream. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>

#include "migration/channel.h"
#include "migration/mapped-ram.h"
#include "migration/savevm-parse.h"
#include "migration/stream-file.h"
#include "migration/vmstate.h"
#include "tools/frostvm-img.h"
#include "util/error.h"
#include "util/zero-page.h"

/* ---- stream -> page-aligned ---- */

typedef struct ToMapped {
    int fd;
    const char *dst;
    uint32_t stream_flags;
    GBytes *fdt;
    MappedRamWriter *w;
    GByteArray *devices;      /* DEVC records, re-encoded as the stream had them */
    uint8_t *scratch;
    size_t scratch_size;
} ToMapped;

static bool to_mapped_header(void *opaque, uint32_t version, uint32_t flags, GError **errp)
{
    ToMapped *c = opaque;

    c->stream_flags = flags;
    return true;
}

static bool to_mapped_machine(void *opaque, const void *fdt, size_t len, GError **errp)
{
    ToMapped *c = opaque;

    c->fdt = g_bytes_new(fdt, len);
    return true;
}

static bool to_mapped_ram_start(void *opaque, uint32_t nblocks, const uint64_t *sizes,
                                GError **errp)
{
    ToMapped *c = opaque;
    gsize len;
    const void *fdt = g_bytes_get_data(c->fdt, &len);

    c->w = mapped_ram_writer_new(c->fd, c->dst, c->stream_flags, nblocks, sizes, fdt, len,
                                 errp);
    return c->w != NULL;
}

static void *to_mapped_target(void *opaque, const SavevmRamRecord *rec, GError **errp)
{
    ToMapped *c = opaque;

    return img_scratch(&c->scratch, &c->scratch_size, (size_t)rec->npages * SAVEVM_PAGE_SIZE);
}

/* Data pages that are zero become absent (holes), as a snapshot would leave them. */
static bool to_mapped_record(void *opaque, const SavevmRamRecord *rec, const void *data,
                             GError **errp)
{
    ToMapped *c = opaque;
    uint64_t first = rec->offset / SAVEVM_PAGE_SIZE;
    uint32_t i = 0;

    if (!data) {
        return mapped_ram_writer_zero(c->w, rec->block, first, rec->npages, errp);
    }
    while (i < rec->npages) {
        uint32_t start = i;
        const uint8_t *p = (const uint8_t *)data + (size_t)i * SAVEVM_PAGE_SIZE;
        bool zero = buffer_is_zero(p, SAVEVM_PAGE_SIZE);
        bool ok;

        while (i < rec->npages &&
               buffer_is_zero((const uint8_t *)data + (size_t)i * SAVEVM_PAGE_SIZE,
                              SAVEVM_PAGE_SIZE) == zero) {
            i++;
        }
        ok = zero ? mapped_ram_writer_zero(c->w, rec->block, first + start, i - start, errp)
                  : mapped_ram_writer_put(c->w, rec->block, first + start, i - start, p, errp);
        if (!ok) {
            return false;
        }
    }
    return true;
}

static bool to_mapped_device(void *opaque, const char *name, uint32_t instance,
                             uint32_t version, const uint8_t *data, size_t len,
                             uint64_t stream_offset, GError **errp)
{
    ToMapped *c = opaque;
    size_t name_len = strlen(name);

    vmstate_put_u32(c->devices, SAVEVM_REC_DEVICE);
    vmstate_put_u32(c->devices, 0);
    vmstate_put_u64(c->devices, 12 + name_len + len);
    vmstate_put_u32(c->devices, instance);
    vmstate_put_u32(c->devices, version);
    vmstate_put_u32(c->devices, (uint32_t)name_len);
    vmstate_put_bytes(c->devices, name, name_len);
    vmstate_put_bytes(c->devices, data, len);
    return true;
}

static bool convert_to_mapped(const char *src, const char *dst, int fd, GError **errp)
{
    ToMapped c = { .fd = fd, .dst = dst, .devices = g_byte_array_new() };
    SavevmParseOps ops = {
        .header = to_mapped_header,
        .machine = to_mapped_machine,
        .ram_start = to_mapped_ram_start,
        .ram_target = to_mapped_target,
        .ram_record = to_mapped_record,
        .device = to_mapped_device,
    };
    g_autofree char *uri = g_strdup_printf("file:%s", src);
    MigrationChannel *ch = channel_open_incoming(uri, errp);
    StreamFile *f;
    bool ok;

    if (!ch) {
        g_byte_array_unref(c.devices);
        return false;
    }
    f = stream_file_new_input(ch);
    ok = savevm_parse(f, &ops, &c, errp) &&
         mapped_ram_writer_finish(c.w, c.devices->data, c.devices->len, errp);
    stream_file_free(f);
    channel_close(ch, false, NULL);
    mapped_ram_writer_free(c.w);
    g_clear_pointer(&c.fdt, g_bytes_unref);
    g_byte_array_unref(c.devices);
    g_free(c.scratch);
    return ok;
}

/* ---- page-aligned -> stream ---- */

static void put_record_header(StreamFile *f, uint32_t type, uint64_t len)
{
    stream_file_put_u32(f, type);
    stream_file_put_u32(f, 0);
    stream_file_put_u64(f, len);
}

/* Pages of a block as records: runs of present pages with data, runs of absent ones as zero. */
static bool write_block_records(StreamFile *f, MappedRamImage *img, uint32_t bi, uint8_t *buf,
                                GError **errp)
{
    const uint32_t max = 64;
    uint64_t pages = mapped_ram_block_pages(img->h.blocks[bi].size);
    uint64_t page = 0;
    uint8_t hdr[SAVEVM_RAM_RECORD_HEADER_SIZE];

    while (page < pages) {
        bool present = mapped_ram_image_present(img, bi, page);
        uint64_t end = page;

        while (end < pages && end - page < (present ? max : UINT32_MAX) &&
               mapped_ram_image_present(img, bi, end) == present) {
            end++;
        }
        savevm_encode_ram_header(hdr, bi, page * SAVEVM_PAGE_SIZE, (uint32_t)(end - page),
                                 present ? SAVEVM_RAM_DATA : SAVEVM_RAM_ZERO);
        stream_file_write(f, hdr, sizeof(hdr));
        if (present) {
            if (!mapped_ram_image_read(img, bi, page, (uint32_t)(end - page), buf, errp)) {
                return false;
            }
            stream_file_write(f, buf, (end - page) * SAVEVM_PAGE_SIZE);
        }
        page = end;
    }
    return stream_file_check(f, errp);
}

static bool convert_to_stream(const char *src, const char *dst, GError **errp)
{
    g_autoptr(MappedRamImage) img = mapped_ram_image_open(src, -1, errp);
    g_autofree char *uri = g_strdup_printf("file:%s", dst);
    g_autofree uint8_t *buf = g_malloc(64 * SAVEVM_PAGE_SIZE);
    MigrationChannel *ch;
    StreamFile *f;
    bool ok = true;

    if (!img) {
        return false;
    }
    ch = channel_open_outgoing(uri, errp);
    if (!ch) {
        return false;
    }
    f = stream_file_new_output(ch);
    stream_file_write(f, SAVEVM_MAGIC, SAVEVM_MAGIC_SIZE);
    stream_file_put_u32(f, SAVEVM_VERSION);
    stream_file_put_u32(f, img->h.stream_flags & ~MAPPED_RAM_STREAM_FLAG);
    put_record_header(f, SAVEVM_REC_MACHINE, img->h.machine_len);
    stream_file_write(f, img->machine, img->h.machine_len);
    put_record_header(f, SAVEVM_REC_RAM_START, 8 + 8ull * img->h.nblocks);
    stream_file_put_u32(f, img->h.nblocks);
    stream_file_put_u32(f, SAVEVM_PAGE_SIZE);
    for (uint32_t i = 0; i < img->h.nblocks; i++) {
        stream_file_put_u64(f, img->h.blocks[i].size);
    }
    for (uint32_t i = 0; ok && i < img->h.nblocks; i++) {
        ok = write_block_records(f, img, i, buf, errp);
    }
    ok = ok && savevm_write_ram_end(f, errp);
    if (ok) {
        stream_file_write(f, img->devices, img->h.devices_len);
    }
    ok = ok && savevm_write_footer(f, errp) && stream_file_flush(f) &&
         stream_file_check(f, errp);
    stream_file_free(f);
    /* The channel publishes dst only when complete, as a migration's file: does. */
    if (!channel_close(ch, ok, ok ? errp : NULL)) {
        ok = false;
    }
    return ok;
}

int img_convert(const char *src, const char *dst)
{
    g_autoptr(GError) err = NULL;
    bool to_mapped = !img_is_mapped(src);
    bool ok;

    if (to_mapped) {
        g_autofree char *tmp = g_strdup_printf("%s.tmp-XXXXXX", dst);
        int fd = g_mkstemp_full(tmp, O_RDWR | O_CLOEXEC, 0600);

        if (fd < 0) {
            g_printerr("frostvm-img: cannot create a file beside '%s': %s\n", dst,
                       g_strerror(errno));
            return EXIT_IMAGE_ERROR;
        }
        ok = convert_to_mapped(src, dst, fd, &err);
        if (ok && (fsync(fd) < 0 || rename(tmp, dst) < 0)) {
            error_setg_errno(&err, errno, "cannot write '%s'", dst);
            ok = false;
        }
        close(fd);
        if (!ok) {
            unlink(tmp);
        }
    } else {
        ok = convert_to_stream(src, dst, &err);
    }
    if (!ok) {
        g_printerr("frostvm-img: convert %s: %s\n", src, err->message);
        return EXIT_CORRUPT;
    }
    printf("converted %s (%s) to %s (%s)\n", src, to_mapped ? "stream" : "page-aligned", dst,
           to_mapped ? "page-aligned" : "stream");
    return 0;
}
