/* SPDX-License-Identifier: GPL-2.0-or-later */
/* frostvm-img on chains of incremental images: the chain in info, every link in check, the composite in dump-ram, commit. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <glib.h>

#include "migration/channel.h"
#include "migration/image-identity.h"
#include "migration/mapped-ram.h"
#include "migration/restore-chain.h"
#include "migration/savevm-parse.h"
#include "migration/stream-file.h"
#include "tools/frostvm-img.h"
#include "util/error.h"
#include "util/zero-page.h"

#define PAGE 4096u

/* One image of a chain, newest first in ChainLayers. */
typedef struct ChainLayer {
    char *path;
    ImageIdentity id;
} ChainLayer;

static void chain_layer_free(gpointer p)
{
    ChainLayer *l = p;

    image_identity_clear(&l->id);
    g_free(l->path);
    g_free(l);
}

/*
 * The chain of @top, newest first: each base found where its increment
 * records it, and named by the UUID and digest the increment expects.
 * The digests are the ones the files record; reading them whole (check,
 * chain_load) proves them.
 */
static GPtrArray *chain_walk(const char *top, GError **errp)
{
    g_autoptr(GPtrArray) layers = g_ptr_array_new_with_free_func(chain_layer_free);
    ChainLayer *l = g_new0(ChainLayer, 1);

    l->path = g_strdup(top);
    g_ptr_array_add(layers, l);
    if (!image_identity_read(top, &l->id, errp)) {
        return NULL;
    }
    while (l->id.has_base) {
        ChainLayer *child = l;

        if (layers->len >= IMAGE_CHAIN_MAX) {
            error_setg(errp, "%s: a chain of more than %u images (a loop?)", top,
                       IMAGE_CHAIN_MAX);
            return NULL;
        }
        l = g_new0(ChainLayer, 1);
        l->path = restore_chain_base_path(child->path, child->id.base_path, NULL);
        g_ptr_array_add(layers, l);
        if (!image_identity_read(l->path, &l->id, errp)) {
            error_prefix(errp, "the base of image '%s' (recorded as '%s'): ", child->path,
                         child->id.base_path);
            return NULL;
        }
        /* A base without an identity has a zero UUID: "another image". */
        if (!image_link_check_uuid(l->id.uuid, child->id.base_uuid, errp) ||
            !image_link_check_digest(l->id.digest, child->id.base_digest, errp)) {
            error_prefix(errp, "the base '%s' of image '%s': ", l->path, child->path);
            return NULL;
        }
        if (l->id.page_aligned != child->id.page_aligned) {
            error_setg(errp, "the base '%s' of image '%s' has another layout", l->path,
                       child->path);
            return NULL;
        }
    }
    return g_steal_pointer(&layers);
}

/* Guest RAM as a chain makes it: per block, the content and the pages some layer holds. */
typedef struct Composite {
    uint32_t nblocks;
    uint64_t sizes[MAPPED_RAM_MAX_BLOCKS];
    uint8_t *ram[MAPPED_RAM_MAX_BLOCKS];            /* anonymous: untouched parts cost nothing */
    uint64_t *present[MAPPED_RAM_MAX_BLOCKS];       /* a layer holds the page */
    GBytes *fdt;                                    /* the newest image's */
    GByteArray *devices;                            /* its DEVC records */
    uint64_t checksum;                              /* the last stream parsed */
} Composite;

static void composite_clear(Composite *c)
{
    for (uint32_t i = 0; i < c->nblocks; i++) {
        munmap(c->ram[i], c->sizes[i]);
        g_free(c->present[i]);
    }
    g_clear_pointer(&c->fdt, g_bytes_unref);
    g_clear_pointer(&c->devices, g_byte_array_unref);
    c->nblocks = 0;
}

static bool composite_blocks(Composite *c, uint32_t nblocks, const uint64_t *sizes,
                             GError **errp)
{
    if (c->nblocks) {
        for (uint32_t i = 0; i < nblocks; i++) {
            if (nblocks != c->nblocks || sizes[i] != c->sizes[i]) {
                error_setg(errp, "its RAM blocks differ from the rest of the chain");
                return false;
            }
        }
        return true;
    }
    for (uint32_t i = 0; i < nblocks; i++) {
        c->sizes[i] = sizes[i];
        c->ram[i] = mmap(NULL, sizes[i], PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (c->ram[i] == MAP_FAILED) {
            error_setg_errno(errp, errno, "cannot map %" PRIu64 " bytes", sizes[i]);
            return false;
        }
        c->present[i] = g_new0(uint64_t, mapped_ram_bitmap_bytes(sizes[i] / PAGE) / 8);
        c->nblocks = i + 1;
    }
    return true;
}

static void mark_present(Composite *c, uint32_t block, uint64_t first, uint64_t n)
{
    for (uint64_t p = first; p < first + n; p++) {
        c->present[block][p / 64] |= 1ull << (p % 64);
    }
}

/* Stream layers: pages straight into the composite, newer over older. */
static bool stream_ram_start(void *opaque, uint32_t nblocks, const uint64_t *sizes,
                             GError **errp)
{
    return composite_blocks(opaque, nblocks, sizes, errp);
}

static void *stream_ram_target(void *opaque, const SavevmRamRecord *rec, GError **errp)
{
    Composite *c = opaque;

    return c->ram[rec->block] + rec->offset;
}

static bool stream_ram_record(void *opaque, const SavevmRamRecord *rec, const void *data,
                              GError **errp)
{
    Composite *c = opaque;

    if (!data) {
        memset(c->ram[rec->block] + rec->offset, 0, (size_t)rec->npages * PAGE);
    }
    mark_present(c, rec->block, rec->offset / PAGE, rec->npages);
    return true;
}

static bool stream_machine(void *opaque, const void *fdt, size_t len, GError **errp)
{
    Composite *c = opaque;

    g_clear_pointer(&c->fdt, g_bytes_unref);
    c->fdt = g_bytes_new(fdt, len);
    return true;
}

static bool stream_device(void *opaque, const char *name, uint32_t instance, uint32_t version,
                          const uint8_t *data, size_t len, uint64_t stream_offset, GError **errp)
{
    Composite *c = opaque;

    img_put_device_record(c->devices, name, instance, version, data, len);
    return true;
}

static bool stream_footer(void *opaque, uint64_t length, uint64_t checksum, GError **errp)
{
    Composite *c = opaque;

    c->checksum = checksum;
    return true;
}

static bool load_stream_layer(Composite *c, const ChainLayer *l, GError **errp)
{
    SavevmParseOps ops = {
        .machine = stream_machine,
        .ram_start = stream_ram_start,
        .ram_target = stream_ram_target,
        .ram_record = stream_ram_record,
        .device = stream_device,
        .footer = stream_footer,
    };
    g_autofree char *uri = g_strdup_printf("file:%s", l->path);
    MigrationChannel *ch = channel_open_incoming(uri, errp);
    StreamFile *f;
    bool ok;

    if (!ch) {
        return false;
    }
    g_byte_array_set_size(c->devices, 0);
    f = stream_file_new_input(ch);
    ok = savevm_parse(f, &ops, c, errp);
    stream_file_free(f);
    channel_close(ch, ok, NULL);
    return ok;
}

static bool load_mapped_layer(Composite *c, const ChainLayer *l, GError **errp)
{
    g_autoptr(MappedRamImage) img = mapped_ram_image_open(l->path, -1, errp);
    uint64_t sizes[MAPPED_RAM_MAX_BLOCKS];

    if (!img) {
        return false;
    }
    for (uint32_t i = 0; i < img->h.nblocks; i++) {
        sizes[i] = img->h.blocks[i].size;
    }
    if (!composite_blocks(c, img->h.nblocks, sizes, errp)) {
        return false;
    }
    /* Only this layer's own pages; absent ones keep what older layers put there. */
    for (uint32_t b = 0; b < img->h.nblocks; b++) {
        uint64_t pages = sizes[b] / PAGE;

        for (uint64_t p = 0; p < pages;) {
            uint64_t n = 0;

            while (p + n < pages && n < 256 && mapped_ram_image_has_page(img, b, p + n)) {
                n++;
            }
            if (n && !mapped_ram_image_read(img, b, p, (uint32_t)n, c->ram[b] + p * PAGE,
                                            errp)) {
                return false;
            }
            if (n) {
                mark_present(c, b, p, n);
            }
            p += n ? n : 1;
        }
    }
    g_clear_pointer(&c->fdt, g_bytes_unref);
    c->fdt = g_bytes_new(img->machine, img->h.machine_len);
    g_byte_array_set_size(c->devices, 0);
    g_byte_array_append(c->devices, img->devices, (guint)img->h.devices_len);
    return true;
}

/*
 * Build the composite of layers [0, @count) of @layers (newest first),
 * oldest first, every byte of each verified (streams: the checksum, which
 * must be the digest the newer layer names; page-aligned: every page).
 */
static bool chain_load(GPtrArray *layers, guint count, Composite *c, GError **errp)
{
    c->devices = g_byte_array_new();
    for (guint i = count; i-- > 0;) {
        ChainLayer *l = g_ptr_array_index(layers, i);
        bool ok = l->id.page_aligned ? load_mapped_layer(c, l, errp)
                                     : load_stream_layer(c, l, errp);

        if (ok && !l->id.page_aligned && i > 0) {
            ChainLayer *child = g_ptr_array_index(layers, i - 1);
            if (c->checksum != child->id.base_digest) {
                error_setg(errp, "its checksum %016" PRIx64 " is not the digest %016" PRIx64
                           " that '%s' names", c->checksum, child->id.base_digest,
                           child->path);
                ok = false;
            }
        }
        if (!ok) {
            error_prefix(errp, "%s: ", l->path);
            return false;
        }
    }
    return true;
}

void img_chain_print(const char *path)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) layers = chain_walk(path, &err);

    if (!layers) {
        printf("chain: broken: %s\n", err->message);
        return;
    }
    printf("chain: %u image%s, newest first%s\n", layers->len, layers->len == 1 ? "" : "s",
           layers->len > 1 ? " (each link named by UUID and digest)" : "");
    for (guint i = 0; i < layers->len; i++) {
        ChainLayer *l = g_ptr_array_index(layers, i);
        g_autofree char *uuid = l->id.has_uuid ? image_uuid_string(l->id.uuid)
                                               : g_strdup("(none)");

        printf("  %u: %s  uuid %s  digest %016" PRIx64 "  %s%s\n", i, l->path, uuid,
               l->id.digest, l->id.has_base ? "incremental on " : "flat",
               l->id.has_base ? l->id.base_path : "");
    }
}

int img_chain_check(const char *path)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) layers = chain_walk(path, &err);
    Composite c = { 0 };
    bool ok;

    if (!layers) {
        g_printerr("frostvm-img: %s\n", err->message);
        return EXIT_CORRUPT;
    }
    ok = chain_load(layers, layers->len, &c, &err);
    composite_clear(&c);
    if (!ok) {
        g_printerr("frostvm-img: %s\n", err->message);
        return EXIT_CORRUPT;
    }
    printf("chain of %u images: every image and every link verified\n", layers->len);
    return 0;
}

/* Composite RAM into guest-physical layout, for dump-ram. */
typedef struct ChainDump {
    Composite *c;
    uint8_t *out;
    uint64_t out_size;
    bool collect;
    bool bad;
} ChainDump;

static void chain_dump_range(const void *fdt, const char *path, void *opaque)
{
    ChainDump *d = opaque;
    uint64_t gpa = fdt_u64(fdt, path, "gpa"), size = fdt_u64(fdt, path, "size");
    uint64_t block = fdt_u64(fdt, path, "block"), offset = fdt_u64(fdt, path, "offset");

    if (block >= d->c->nblocks || offset + size > d->c->sizes[block] ||
        gpa + size > (1ull << 46)) {
        d->bad = true;
        return;
    }
    if (d->collect) {
        d->out_size = MAX(d->out_size, gpa + size);
        return;
    }
    for (uint64_t off = 0; off < size; off += PAGE) {
        const uint8_t *src = d->c->ram[block] + offset + off;
        if (!buffer_is_zero(src, PAGE)) {
            memcpy(d->out + gpa + off, src, PAGE);
        }
    }
}

int img_chain_dump_ram(const char *path, const char *out_path)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) layers = chain_walk(path, &err);
    Composite c = { 0 };
    ChainDump d = { .c = &c, .collect = true };
    gsize fdt_len;
    const void *fdt;
    int fd = -1;
    int rc = 0;

    if (!layers || !chain_load(layers, layers->len, &c, &err)) {
        g_printerr("frostvm-img: %s\n", err->message);
        composite_clear(&c);
        return EXIT_CORRUPT;
    }
    fdt = g_bytes_get_data(c.fdt, &fdt_len);
    fdt_each_child(fdt, "/ram-ranges", chain_dump_range, &d);
    g_autofree char *tmp = g_strdup_printf("%s.tmp-XXXXXX", out_path);
    if (d.bad || !d.out_size) {
        g_printerr("frostvm-img: %s: implausible RAM ranges\n", path);
        rc = EXIT_CORRUPT;
    } else if ((fd = g_mkstemp_full(tmp, O_RDWR | O_CLOEXEC, 0600)) < 0 ||
               ftruncate(fd, (off_t)d.out_size) < 0 ||
               (d.out = mmap(NULL, d.out_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) ==
                   MAP_FAILED) {
        g_printerr("frostvm-img: cannot create '%s': %s\n", out_path, g_strerror(errno));
        rc = EXIT_IMAGE_ERROR;
    } else {
        d.collect = false;
        fdt_each_child(fdt, "/ram-ranges", chain_dump_range, &d);
        munmap(d.out, d.out_size);
        if (fsync(fd) < 0 || rename(tmp, out_path) < 0) {
            g_printerr("frostvm-img: cannot write '%s': %s\n", out_path, g_strerror(errno));
            rc = EXIT_IMAGE_ERROR;
        }
    }
    if (fd >= 0) {
        close(fd);
        if (rc) {
            unlink(tmp);
        }
    }
    composite_clear(&c);
    if (!rc) {
        printf("wrote %" PRIu64 " bytes of guest-physical memory (the composite of %u images) "
               "to %s\n", d.out_size, layers->len, out_path);
    }
    return rc;
}

/*
 * Write @c as a page-aligned image on @fd: the pages some layer holds
 * (all of them, zero ones absent, when @base is NULL: a flat image).
 */
static bool write_mapped(Composite *c, int fd, const char *name, const ImageIdentity *base,
                         uint8_t out_uuid[IMAGE_UUID_SIZE], GError **errp)
{
    gsize fdt_len;
    const void *fdt = g_bytes_get_data(c->fdt, &fdt_len);
    g_autoptr(MappedRamWriter) w = mapped_ram_writer_new(fd, name, SAVEVM_STREAM_BACKGROUND_SNAPSHOT,
                                                         c->nblocks, c->sizes, fdt, fdt_len,
                                                         errp);

    if (!w) {
        return false;
    }
    if (base) {
        mapped_ram_writer_set_base(w, base->base_uuid, base->base_digest, base->base_path);
    }
    for (uint32_t b = 0; b < c->nblocks; b++) {
        for (uint64_t p = 0; p < c->sizes[b] / PAGE; p++) {
            const uint8_t *page = c->ram[b] + p * PAGE;
            bool held = (c->present[b][p / 64] >> (p % 64)) & 1;
            bool ok = true;

            if (base && !held) {
                continue;
            }
            if (buffer_is_zero(page, PAGE)) {
                ok = !base || mapped_ram_writer_zero(w, b, p, 1, errp);
            } else {
                ok = mapped_ram_writer_put(w, b, p, 1, page, errp);
            }
            if (!ok) {
                return false;
            }
        }
    }
    memcpy(out_uuid, mapped_ram_writer_header(w)->uuid, IMAGE_UUID_SIZE);
    return mapped_ram_writer_finish(w, c->devices->data, c->devices->len, errp);
}

static void put_record_header(StreamFile *f, uint32_t type, uint32_t flags, uint64_t len)
{
    stream_file_put_u32(f, type);
    stream_file_put_u32(f, flags);
    stream_file_put_u64(f, len);
}

/* Write @c as a stream to @dst (published only when complete). */
static bool write_stream(Composite *c, const char *dst, const ImageIdentity *base,
                         uint8_t out_uuid[IMAGE_UUID_SIZE], GError **errp)
{
    g_autofree char *uri = g_strdup_printf("file:%s", dst);
    ImageIdentity id = { .has_uuid = true };
    g_autoptr(GByteArray) idnt = g_byte_array_new();
    uint8_t hdr[SAVEVM_RAM_RECORD_HEADER_SIZE];
    MigrationChannel *ch = channel_open_outgoing(uri, errp);
    gsize fdt_len;
    const void *fdt = g_bytes_get_data(c->fdt, &fdt_len);
    StreamFile *f;

    if (!ch) {
        return false;
    }
    image_uuid_generate(id.uuid);
    memcpy(out_uuid, id.uuid, IMAGE_UUID_SIZE);
    if (base) {
        id.has_base = true;
        memcpy(id.base_uuid, base->base_uuid, IMAGE_UUID_SIZE);
        id.base_digest = base->base_digest;
        id.base_path = base->base_path;
    }
    image_identity_encode_record(&id, idnt);
    f = stream_file_new_output(ch);
    stream_file_write(f, SAVEVM_MAGIC, SAVEVM_MAGIC_SIZE);
    stream_file_put_u32(f, SAVEVM_VERSION);
    stream_file_put_u32(f, SAVEVM_STREAM_BACKGROUND_SNAPSHOT |
                           (base ? SAVEVM_STREAM_INCREMENTAL : 0));
    put_record_header(f, SAVEVM_REC_MACHINE, 0, fdt_len);
    stream_file_write(f, fdt, fdt_len);
    put_record_header(f, SAVEVM_REC_IDENTITY, SAVEVM_RECORD_OPTIONAL, idnt->len);
    stream_file_write(f, idnt->data, idnt->len);
    put_record_header(f, SAVEVM_REC_RAM_START, 0, 8 + 8ull * c->nblocks);
    stream_file_put_u32(f, c->nblocks);
    stream_file_put_u32(f, SAVEVM_PAGE_SIZE);
    for (uint32_t b = 0; b < c->nblocks; b++) {
        stream_file_put_u64(f, c->sizes[b]);
    }
    for (uint32_t b = 0; b < c->nblocks; b++) {
        for (uint64_t p = 0; p < c->sizes[b] / PAGE; p++) {
            const uint8_t *page = c->ram[b] + p * PAGE;
            bool zero;

            if (base && !((c->present[b][p / 64] >> (p % 64)) & 1)) {
                continue;
            }
            zero = buffer_is_zero(page, PAGE);
            savevm_encode_ram_header(hdr, b, p * PAGE, 1, zero ? SAVEVM_RAM_ZERO
                                                               : SAVEVM_RAM_DATA);
            stream_file_write(f, hdr, sizeof(hdr));
            if (!zero) {
                stream_file_write(f, page, PAGE);
            }
        }
    }
    return img_stream_finish(f, ch, true, c->devices->data, c->devices->len, errp);
}

/* Write @c to @dst in @mapped's layout, atomically (a temporary file renamed). */
static bool write_image(Composite *c, bool mapped, const char *dst, const ImageIdentity *base,
                        uint8_t out_uuid[IMAGE_UUID_SIZE], GError **errp)
{
    g_autofree char *tmp = NULL;
    int fd;
    bool ok;

    if (!mapped) {
        return write_stream(c, dst, base, out_uuid, errp);
    }
    tmp = g_strdup_printf("%s.tmp-XXXXXX", dst);
    fd = g_mkstemp_full(tmp, O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot create a file beside '%s'", dst);
        return false;
    }
    ok = write_mapped(c, fd, dst, base, out_uuid, errp);
    if (ok && (fsync(fd) < 0 || rename(tmp, dst) < 0)) {
        error_setg_errno(errp, errno, "cannot write '%s'", dst);
        ok = false;
    }
    close(fd);
    if (!ok) {
        unlink(tmp);
    }
    return ok;
}

int img_commit(const char *path, const char *out_path)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) layers = chain_walk(path, &err);
    Composite c = { 0 };
    uint8_t uuid[IMAGE_UUID_SIZE];
    ChainLayer *top, *base;
    bool ok;

    if (!layers) {
        g_printerr("frostvm-img: commit %s: %s\n", path, err->message);
        return EXIT_CORRUPT;
    }
    top = g_ptr_array_index(layers, 0);
    if (!out_path && layers->len < 2) {
        g_printerr("frostvm-img: commit %s: a flat image has no base to fold into (give an "
                   "output file to copy it)\n", path);
        return EXIT_IMAGE_ERROR;
    }
    if (out_path) {
        /* The whole chain into one flat image. */
        ok = chain_load(layers, layers->len, &c, &err) &&
             write_image(&c, top->id.page_aligned, out_path, NULL, uuid, &err);
    } else {
        /* The increment and its base become one layer in the base's place, on the base's base. */
        base = g_ptr_array_index(layers, 1);
        ok = chain_load(layers, 2, &c, &err) &&
             write_image(&c, top->id.page_aligned, base->path,
                         base->id.has_base ? &base->id : NULL, uuid, &err);
    }
    composite_clear(&c);
    if (!ok) {
        g_printerr("frostvm-img: commit %s: %s\n", path, err->message);
        return EXIT_CORRUPT;
    }
    g_autofree char *id = image_uuid_string(uuid);
    if (out_path) {
        printf("committed the chain of %u images of %s into the flat image %s (uuid %s)\n",
               layers->len, path, out_path, id);
    } else {
        base = g_ptr_array_index(layers, 1);
        printf("committed %s into its base %s, now image %s at %s's instant; images built "
               "on the old %s or on %s no longer match it\n", path, base->path, id, path,
               base->path, path);
    }
    return 0;
}
