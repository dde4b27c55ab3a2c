/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Loading a migration stream into a stopped machine: RAM straight into guest memory, devices after the checksum. */
#include "migration/savevm.h"

#include <inttypes.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "migration/channel.h"
#include "migration/image-identity.h"
#include "migration/restore-chain.h"
#include "migration/stream/savevm-internal.h"
#include "migration/savevm-parse.h"
#include "migration/stream-file.h"
#include "migration/vmstate.h"
#include "system/machine.h"
#include "system/memory-backend.h"
#include "system/ram-populated.h"
#include "system/ram-prefault.h"
#include "util/bitmap.h"
#include "util/error.h"
#include "util/pagemap.h"
#include "util/zero-page.h"

typedef struct PendingDevice {
    char *name;
    uint32_t instance;
    uint32_t version;
    GBytes *data;
    uint64_t offset;
} PendingDevice;

typedef struct LoadContext {
    Machine *m;
    SavevmLoadInfo *info;
    GPtrArray *devices;       /* PendingDevice *, in stream order */
    /* Chains: where the image is, and its base when the user names it. */
    const char *image_path;
    const char *base_override;
    unsigned depth;           /* 0: the image being restored; n: its n-th base */
    const ImageIdentity *expect;  /* a base: the increment that names it */
    bool identified;          /* the stream's IDNT record was seen */
    uint64_t checksum;        /* the footer's, once verified */
    /*
     * Per RAM block, the pages known to hold zero without reading them (never
     * populated), as the page tables said when the RAM section began, less
     * those the stream has written since; NULL where nothing is known.
     */
    unsigned long **known_zero;
    /*
     * Faulting guest RAM in ahead of the stream (system/ram-prefault.c). A
     * stream says nothing of the pages to come, so the helper goes as far
     * beyond a record as the run of contiguous data before it (up to its
     * lead): per block, the 2 MiB regions it may have populated that way,
     * emptied again at the end if no data came.
     */
    RamPrefault *prefault;
    unsigned long **ahead_regions;
    uint32_t run_block;
    uint64_t run_end;         /* byte offset where the current run of data ends */
    uint64_t run_bytes;
} LoadContext;

#define LOAD_REGION_SIZE ((uint64_t)2 << 20)

static void load_context_release(LoadContext *c)
{
    ram_prefault_stop(c->prefault);
    c->prefault = NULL;
    for (guint i = 0; c->known_zero && i < c->m->ram_blocks->len; i++) {
        bitmap_free(c->known_zero[i]);
        bitmap_free(c->ahead_regions[i]);
    }
    g_free(c->known_zero);
    g_free(c->ahead_regions);
    c->known_zero = NULL;
    c->ahead_regions = NULL;
}

static void pending_device_free(gpointer p)
{
    PendingDevice *d = p;

    g_free(d->name);
    g_bytes_unref(d->data);
    g_free(d);
}

static bool load_header(void *opaque, uint32_t version, uint32_t flags, GError **errp)
{
    LoadContext *c = opaque;

    c->info->version = version;
    c->info->stream_flags = flags;
    return true;
}

static bool load_machine(void *opaque, const void *fdt, size_t len, GError **errp)
{
    LoadContext *c = opaque;

    return savevm_machine_check(c->m, fdt, errp);
}

static bool load_identity(void *opaque, const ImageIdentity *id, GError **errp)
{
    LoadContext *c = opaque;

    c->identified = true;
    if (!c->depth) {
        c->info->has_uuid = true;
        memcpy(c->info->uuid, id->uuid, IMAGE_UUID_SIZE);
    }
    if (c->expect && !image_link_check_uuid(id->uuid, c->expect->base_uuid, errp)) {
        return false;
    }
    if (!id->has_base) {
        return true;
    }
    /* Before any page of this stream: the older layers go into RAM first. */
    return restore_chain_load_stream_bases(c->m, c->image_path, id,
                                           c->depth ? NULL : c->base_override, c->depth + 1,
                                           errp);
}

/*
 * Which pages a zero record may leave alone. Reading a never-touched page to
 * see that it is zero costs a page fault that maps the zero page: 5 us each
 * on a paravirtual host, so the 262,000 zero pages of an idle 1 GiB guest
 * took 0.1-1.7 s of its restore. Where the kernel cannot say, every page is
 * read as before.
 */
static void load_find_known_zero(LoadContext *c)
{
    int fd = pagemap_open();

    /* The parser takes one RAM section per stream: this runs once. */
    c->known_zero = g_new0(unsigned long *, c->m->ram_blocks->len);
    c->ahead_regions = g_new0(unsigned long *, c->m->ram_blocks->len);
    for (guint i = 0; i < c->m->ram_blocks->len; i++) {
        RamBlock *b = g_ptr_array_index(c->m->ram_blocks, i);
        g_autoptr(GError) err = NULL;

        c->known_zero[i] = bitmap_new(b->size / MACHINE_PAGE_SIZE);
        if (!ram_block_find_zero(b, fd, NULL, c->known_zero[i], NULL, NULL, &err)) {
            bitmap_free(c->known_zero[i]);
            c->known_zero[i] = NULL;
        }
    }
    if (fd >= 0) {
        close(fd);
    }
}

/* Clear the pages of [@page, @end) that may hold data, reading only those. */
static void load_zero_pages(RamBlock *b, const unsigned long *known_zero, uint64_t page,
                            uint64_t end)
{
    while (page < end) {
        if (known_zero) {
            page = bitmap_find_next_zero(known_zero, end, page);
            if (page >= end) {
                break;
            }
        }
        uint8_t *host = b->host + page * SAVEVM_PAGE_SIZE;
        if (!buffer_is_zero(host, SAVEVM_PAGE_SIZE)) {
            memset(host, 0, SAVEVM_PAGE_SIZE);
        }
        page++;
    }
}

static bool load_ram_start(void *opaque, uint32_t nblocks, const uint64_t *sizes,
                           GError **errp)
{
    LoadContext *c = opaque;

    if (nblocks != c->m->ram_blocks->len) {
        error_setg(errp, "the stream's RAM section has %u blocks, this machine %u",
                   nblocks, c->m->ram_blocks->len);
        return false;
    }
    for (uint32_t i = 0; i < nblocks; i++) {
        RamBlock *b = g_ptr_array_index(c->m->ram_blocks, i);
        if (sizes[i] != b->size) {
            error_setg(errp, "the stream's RAM block %u has %" PRIu64 " bytes, "
                       "this machine's '%s' %" PRIu64, i, sizes[i], b->name, b->size);
            return false;
        }
    }
    load_find_known_zero(c);
    c->prefault = ram_prefault_start(RAM_PREFAULT_LEAD);
    return true;
}

/*
 * Whether the helper may populate beyond the data it has seen in @block:
 * only where what it populated in vain can be found (known zero) and given
 * back with MADV_DONTNEED (private anonymous memory; a shared file would keep
 * the pages, and a private file mapping would show the file again).
 */
static bool load_may_go_ahead(LoadContext *c, uint32_t block)
{
    RamBlock *b = g_ptr_array_index(c->m->ram_blocks, block);

    return c->known_zero[block] && (!b->backend ||
                                    b->backend->backing == MEMORY_BACKING_ANONYMOUS);
}

static void load_prefault_record(LoadContext *c, const SavevmRamRecord *rec)
{
    RamBlock *b = g_ptr_array_index(c->m->ram_blocks, rec->block);
    uint64_t len = (uint64_t)rec->npages * SAVEVM_PAGE_SIZE;
    uint64_t end = rec->offset + len;
    uint64_t before = rec->block == c->run_block && rec->offset == c->run_end ? c->run_bytes : 0;
    uint64_t ahead = 0;

    if (!c->prefault) {
        return;
    }
    if (load_may_go_ahead(c, rec->block)) {
        ahead = MIN(before, b->size - end);
        ahead = MIN(ahead, RAM_PREFAULT_LEAD > len ? RAM_PREFAULT_LEAD - len : 0);
    }
    if (ahead) {
        uint64_t first = end / LOAD_REGION_SIZE;
        uint64_t last = (end + ahead - 1) / LOAD_REGION_SIZE;

        if (!c->ahead_regions[rec->block]) {
            c->ahead_regions[rec->block] =
                bitmap_new((b->size + LOAD_REGION_SIZE - 1) / LOAD_REGION_SIZE);
        }
        bitmap_set_range(c->ahead_regions[rec->block], first, last - first + 1);
    }
    ram_prefault_next(c->prefault, b->host + rec->offset, len, ahead);
    c->run_block = rec->block;
    c->run_end = end;
    c->run_bytes = before + len;
}

static void *load_ram_target(void *opaque, const SavevmRamRecord *rec, GError **errp)
{
    LoadContext *c = opaque;
    RamBlock *b = g_ptr_array_index(c->m->ram_blocks, rec->block);

    /* The parser has checked the record against the block's size. */
    load_prefault_record(c, rec);
    return b->host + rec->offset;
}

/* Give back the regions the helper populated ahead that no data reached. */
static void load_prefault_finish(LoadContext *c)
{
    c->info->prefaulted_bytes += ram_prefault_populated(c->prefault);
    ram_prefault_stop(c->prefault);
    c->prefault = NULL;
    for (guint i = 0; c->ahead_regions && i < c->m->ram_blocks->len; i++) {
        RamBlock *b = g_ptr_array_index(c->m->ram_blocks, i);
        uint64_t pages = b->size / SAVEVM_PAGE_SIZE;
        uint64_t regions = (b->size + LOAD_REGION_SIZE - 1) / LOAD_REGION_SIZE;
        uint64_t per_region = LOAD_REGION_SIZE / SAVEVM_PAGE_SIZE;

        for (uint64_t r = 0; c->ahead_regions[i] && r < regions; r++) {
            r = bitmap_find_next_set(c->ahead_regions[i], regions, r);
            if (r >= regions) {
                break;
            }
            uint64_t first = r * per_region, end = MIN(first + per_region, pages);

            if (bitmap_find_next_zero(c->known_zero[i], end, first) >= end) {
                /* Zero either way; only where it is counted changes. */
                if (madvise(b->host + first * SAVEVM_PAGE_SIZE,
                            (end - first) * SAVEVM_PAGE_SIZE, MADV_DONTNEED) == 0) {
                    c->info->ahead_returned_bytes += (end - first) * SAVEVM_PAGE_SIZE;
                }
            }
        }
    }
}

static bool load_ram_record(void *opaque, const SavevmRamRecord *rec, const void *data,
                            GError **errp)
{
    LoadContext *c = opaque;
    RamBlock *b = g_ptr_array_index(c->m->ram_blocks, rec->block);
    unsigned long *known_zero = c->known_zero ? c->known_zero[rec->block] : NULL;
    uint64_t first = rec->offset / SAVEVM_PAGE_SIZE;

    if (rec->flags & SAVEVM_RAM_DATA) {
        if (known_zero) {
            bitmap_clear_range(known_zero, first, rec->npages);
        }
        c->info->data_pages += rec->npages;
        return true;
    }
    /*
     * Fresh guest RAM is already zero; testing first avoids writing (and so
     * populating) pages that were never touched. A precopy stream can turn a
     * page it sent earlier into zero, and -kernel may have loaded into a
     * page the image has as zero, so a non-zero page is cleared.
     */
    load_zero_pages(b, known_zero, first, first + rec->npages);
    c->info->zero_pages += rec->npages;
    return true;
}

static bool load_ram_end(void *opaque, GError **errp)
{
    load_prefault_finish(opaque);
    return true;
}

static bool load_device(void *opaque, const char *name, uint32_t instance,
                        uint32_t version, const uint8_t *data, size_t len,
                        uint64_t stream_offset, GError **errp)
{
    LoadContext *c = opaque;
    PendingDevice *d = g_new0(PendingDevice, 1);

    for (guint i = 0; i < c->devices->len; i++) {
        PendingDevice *o = g_ptr_array_index(c->devices, i);
        if (o->instance == instance && !strcmp(o->name, name)) {
            g_free(d);
            error_setg(errp, "corrupt stream at offset %" PRIu64 ": a second record "
                       "for device '%s' instance %u", stream_offset, name, instance);
            return false;
        }
    }
    d->name = g_strdup(name);
    d->instance = instance;
    d->version = version;
    d->data = g_bytes_new(data, len);
    d->offset = stream_offset;
    g_ptr_array_add(c->devices, d);
    return true;
}

static bool load_footer(void *opaque, uint64_t stream_length, uint64_t checksum,
                        GError **errp)
{
    LoadContext *c = opaque;

    c->info->stream_length = stream_length;
    c->info->digest = checksum;
    c->checksum = checksum;
    return true;
}

static const SavevmParseOps load_ops = {
    .header = load_header,
    .machine = load_machine,
    .identity = load_identity,
    .ram_start = load_ram_start,
    .ram_target = load_ram_target,
    .ram_record = load_ram_record,
    .ram_end = load_ram_end,
    .device = load_device,
    .footer = load_footer,
};

static VMStateHandler *load_find_handler(Machine *m, const char *name, uint32_t instance)
{
    for (guint i = 0; m->vmstate_handlers && i < m->vmstate_handlers->len; i++) {
        VMStateHandler *h = &g_array_index(m->vmstate_handlers, VMStateHandler, i);
        if (h->instance == instance && !strcmp(h->name, name)) {
            return h;
        }
    }
    return NULL;
}

static bool load_runstate_record(LoadContext *c, PendingDevice *d, GError **errp)
{
    gsize len;
    const uint8_t *p = g_bytes_get_data(d->data, &len);
    VMStateReader r;
    uint32_t running;

    vmstate_reader_init(&r, p, len);
    running = vmstate_get_u32(&r);
    if (!vmstate_reader_finish(&r, SAVEVM_RUNSTATE_RECORD, errp)) {
        return false;
    }
    c->info->source_running = running != 0;
    return true;
}

/* Apply the device records (the stream is verified by now), in stream order. */
static bool load_apply_devices(LoadContext *c, GError **errp)
{
    Machine *m = c->m;
    guint nhandlers = m->vmstate_handlers ? m->vmstate_handlers->len : 0;
    g_autofree bool *loaded = g_new0(bool, nhandlers + 1);

    for (guint i = 0; i < c->devices->len; i++) {
        PendingDevice *d = g_ptr_array_index(c->devices, i);
        VMStateHandler *h;
        const uint8_t *data;
        gsize len;

        if (!strcmp(d->name, SAVEVM_RUNSTATE_RECORD)) {
            if (!load_runstate_record(c, d, errp)) {
                return false;
            }
            continue;
        }
        h = load_find_handler(m, d->name, d->instance);
        if (!h) {
            error_setg(errp, "the image has state for device '%s' instance %u "
                       "(offset %" PRIu64 "), which this machine does not have",
                       d->name, d->instance, d->offset);
            return false;
        }
        if (d->version > h->version || d->version == 0) {
            error_setg(errp, "device '%s' instance %u: the image has state version %u, "
                       "this build reads versions 1 to %u", d->name, d->instance,
                       d->version, h->version);
            return false;
        }
        data = g_bytes_get_data(d->data, &len);
        if (!h->load(h->opaque, data, len, d->version, errp)) {
            error_prefix(errp, "loading device '%s' instance %u: ", d->name, d->instance);
            return false;
        }
        loaded[h - &g_array_index(m->vmstate_handlers, VMStateHandler, 0)] = true;
        c->info->devices++;
    }
    for (guint i = 0; i < nhandlers; i++) {
        if (!loaded[i]) {
            VMStateHandler *h = &g_array_index(m->vmstate_handlers, VMStateHandler, i);
            error_setg(errp, "the image has no state for device '%s' instance %u",
                       h->name, h->instance);
            return false;
        }
    }
    return true;
}

bool savevm_load_full(StreamFile *f, Machine *m, SavevmLoadInfo *info, GError **errp)
{
    return savevm_load_image(f, m, NULL, NULL, info, errp);
}

bool savevm_load_base(Machine *m, const char *path, const ImageIdentity *expect,
                      unsigned depth, GError **errp)
{
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    SavevmLoadInfo info = { 0 };
    LoadContext c = {
        .m = m,
        .info = &info,
        .image_path = path,
        .depth = depth,
        .expect = expect,
    };
    /* RAM only: the device state is the newest image's. */
    SavevmParseOps ops = load_ops;
    MigrationChannel *ch = channel_open_incoming(uri, errp);
    StreamFile *f;
    bool ok;

    if (!ch) {
        return false;
    }
    ops.device = NULL;
    f = stream_file_new_input(ch);
    ok = savevm_parse(f, &ops, &c, errp);
    load_context_release(&c);
    stream_file_free(f);
    channel_close(ch, ok, NULL);
    if (ok && !c.identified) {
        error_setg(errp, "it has no identity (written before frostvm recorded them)");
        ok = false;
    } else if (ok && !image_link_check_digest(c.checksum, expect->base_digest, errp)) {
        ok = false;
    }
    return ok;
}

bool savevm_load_image(StreamFile *f, Machine *m, const char *image_path,
                       const char *base_override, SavevmLoadInfo *info, GError **errp)
{
    SavevmLoadInfo local = { 0 };
    LoadContext c = {
        .m = m,
        .info = info ? info : &local,
        .devices = g_ptr_array_new_with_free_func(pending_device_free),
        .image_path = image_path,
        .base_override = base_override,
    };
    bool ok;

    memset(c.info, 0, sizeof(*c.info));
    /* An image without the run-state record came from a running guest. */
    c.info->source_running = true;
    ok = savevm_parse(f, &load_ops, &c, errp) && load_apply_devices(&c, errp);
    load_context_release(&c);
    g_ptr_array_unref(c.devices);
    return ok;
}

bool savevm_load_devices(Machine *m, const void *records, size_t len, SavevmLoadInfo *info,
                         GError **errp)
{
    LoadContext c = {
        .m = m,
        .info = info,
        .devices = g_ptr_array_new_with_free_func(pending_device_free),
    };
    StreamFile *f = stream_file_new_memory_input(records, len);
    bool ok;

    c.info->source_running = true;
    ok = savevm_parse_devices(f, &load_ops, &c, errp) && load_apply_devices(&c, errp);
    stream_file_free(f);
    g_ptr_array_unref(c.devices);
    return ok;
}

bool savevm_load(StreamFile *f, Machine *m, GError **errp)
{
    return savevm_load_full(f, m, NULL, errp);
}
