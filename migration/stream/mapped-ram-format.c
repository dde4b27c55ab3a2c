/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The page-aligned image layout: where everything goes, the header's encoding and checks, checksums. */
#include "migration/mapped-ram.h"

#include "migration/image-identity.h"

#include <inttypes.h>
#include <string.h>
#include <xxhash.h>

#include "migration/savevm.h"
#include "util/error.h"
#include "util/le-bytes.h"

/* Sanity bounds, as the stream parser's: anything larger is corruption. */
#define MAPPED_RAM_MAX_BLOCK_SIZE (1ull << 42)
#define MAPPED_RAM_MAX_MACHINE_LEN (1ull << 20)
#define MAPPED_RAM_MAX_DEVICES_LEN (64ull << 20)

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

uint64_t mapped_ram_block_pages(uint64_t size)
{
    return size / MAPPED_RAM_PAGE_SIZE;
}

uint64_t mapped_ram_bitmap_bytes(uint64_t pages)
{
    return (pages + 63) / 64 * 8;
}

void mapped_ram_layout(MappedRamHeader *h, uint32_t nblocks, const uint64_t *sizes,
                       uint64_t machine_len)
{
    uint64_t off = MAPPED_RAM_TABLE_OFFSET + MAPPED_RAM_HEADER_SIZE;

    h->nblocks = nblocks;
    /* Metadata first, each piece page-aligned so that its empty pages stay holes. */
    for (uint32_t i = 0; i < nblocks; i++) {
        h->blocks[i].size = sizes[i];
        h->blocks[i].bitmap_offset = off;
        off += align_up(mapped_ram_bitmap_bytes(mapped_ram_block_pages(sizes[i])),
                        MAPPED_RAM_PAGE_SIZE);
    }
    for (uint32_t i = 0; i < nblocks; i++) {
        h->blocks[i].csum_offset = off;
        off += align_up(mapped_ram_block_pages(sizes[i]) * 8, MAPPED_RAM_PAGE_SIZE);
    }
    h->machine_offset = off;
    h->machine_len = machine_len;
    off = align_up(off + machine_len, MAPPED_RAM_REGION_ALIGN);
    for (uint32_t i = 0; i < nblocks; i++) {
        h->blocks[i].pages_offset = off;
        off = align_up(off + sizes[i], MAPPED_RAM_REGION_ALIGN);
    }
    h->devices_offset = mapped_ram_devices_offset(h);
}

uint64_t mapped_ram_devices_offset(const MappedRamHeader *h)
{
    const MappedRamBlock *last = &h->blocks[h->nblocks - 1];

    return last->pages_offset + last->size;
}

uint64_t mapped_ram_page_csum(const void *page, uint32_t block, uint64_t index)
{
    /* The seed binds a page to its place: data written at a wrong offset fails too. */
    return XXH3_64bits_withSeed(page, MAPPED_RAM_PAGE_SIZE, ((uint64_t)block << 56) ^ index);
}

uint64_t mapped_ram_digest(const uint8_t *header_page, const uint8_t *table,
                           const void *machine, size_t machine_len,
                           const void *devices, size_t devices_len)
{
    XXH3_state_t *st = XXH3_createState();
    uint64_t digest;

    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, header_page, MAPPED_RAM_HEADER_USED - 8);
    XXH3_64bits_update(st, table, MAPPED_RAM_HEADER_SIZE);
    XXH3_64bits_update(st, machine, machine_len);
    XXH3_64bits_update(st, devices, devices_len);
    digest = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return digest;
}

void mapped_ram_header_encode(const MappedRamHeader *h, uint8_t *p, uint8_t *t)
{
    memset(p, 0, MAPPED_RAM_HEADER_SIZE);
    memset(t, 0, MAPPED_RAM_HEADER_SIZE);
    memcpy(p, SAVEVM_MAGIC, SAVEVM_MAGIC_SIZE);
    le_put32(p + 8, SAVEVM_VERSION);
    le_put32(p + 12, h->stream_flags | MAPPED_RAM_STREAM_FLAG);
    le_put32(p + 16, MAPPED_RAM_TAG);
    le_put32(p + 20, MAPPED_RAM_LAYOUT_VERSION);
    le_put32(p + 24, h->layout_flags);
    le_put32(p + 28, MAPPED_RAM_PAGE_SIZE);
    memcpy(p + 32, h->uuid, MAPPED_RAM_UUID_SIZE);
    memcpy(p + 48, h->base_uuid, MAPPED_RAM_UUID_SIZE);
    le_put64(p + 64, h->base_digest);
    le_put32(p + 72, h->nblocks);
    if (h->layout_flags & MAPPED_RAM_LAYOUT_HAS_BASE) {
        uint32_t n = (uint32_t)strnlen(h->base_path, MAPPED_RAM_BASE_PATH_MAX);

        le_put32(p + 76, MAPPED_RAM_BASE_PATH_OFFSET + 4 + n);
        le_put32(p + MAPPED_RAM_BASE_PATH_OFFSET, n);
        memcpy(p + MAPPED_RAM_BASE_PATH_OFFSET + 4, h->base_path, n);
    } else {
        le_put32(p + 76, MAPPED_RAM_HEADER_USED);
    }
    le_put64(p + 80, h->machine_offset);
    le_put64(p + 88, h->machine_len);
    le_put64(p + 96, h->devices_offset);
    le_put64(p + 104, h->devices_len);
    le_put64(p + 112, h->image_len);
    le_put64(p + 120, h->created);
    le_put64(p + 128, h->digest);
    for (uint32_t i = 0; i < h->nblocks; i++) {
        const MappedRamBlock *b = &h->blocks[i];
        uint8_t *e = t + (size_t)i * MAPPED_RAM_TABLE_ENTRY_SIZE;

        le_put64(e, b->size);
        le_put64(e + 8, b->pages_offset);
        le_put64(e + 16, b->bitmap_offset);
        le_put64(e + 24, b->csum_offset);
        le_put64(e + 32, b->present_pages);
        le_put64(e + 40, b->bitmap_csum);
        le_put64(e + 48, b->table_csum);
    }
}

G_GNUC_PRINTF(2, 3)
static bool header_fail(GError **errp, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_setg(errp, "corrupt page-aligned image: %s", msg);
    return false;
}

static bool header_decode_blocks(MappedRamHeader *h, const uint8_t *t, GError **errp)
{
    uint64_t sizes[MAPPED_RAM_MAX_BLOCKS];
    MappedRamHeader expect = { 0 };

    for (uint32_t i = 0; i < h->nblocks; i++) {
        const uint8_t *e = t + (size_t)i * MAPPED_RAM_TABLE_ENTRY_SIZE;
        MappedRamBlock *b = &h->blocks[i];

        b->size = le_get64(e);
        b->pages_offset = le_get64(e + 8);
        b->bitmap_offset = le_get64(e + 16);
        b->csum_offset = le_get64(e + 24);
        b->present_pages = le_get64(e + 32);
        b->bitmap_csum = le_get64(e + 40);
        b->table_csum = le_get64(e + 48);
        if (!b->size || b->size % MAPPED_RAM_PAGE_SIZE || b->size > MAPPED_RAM_MAX_BLOCK_SIZE) {
            return header_fail(errp, "RAM block %u has size %" PRIu64, i, b->size);
        }
        if (b->present_pages > mapped_ram_block_pages(b->size)) {
            return header_fail(errp, "RAM block %u claims %" PRIu64 " present pages of %"
                               PRIu64, i, b->present_pages, mapped_ram_block_pages(b->size));
        }
        sizes[i] = b->size;
    }
    /* The layout is a function of the sizes: anything else is corruption. */
    mapped_ram_layout(&expect, h->nblocks, sizes, h->machine_len);
    if (expect.machine_offset != h->machine_offset) {
        return header_fail(errp, "the machine description is at offset %" PRIu64
                           ", expected %" PRIu64, h->machine_offset, expect.machine_offset);
    }
    for (uint32_t i = 0; i < h->nblocks; i++) {
        const MappedRamBlock *a = &h->blocks[i], *x = &expect.blocks[i];

        if (a->pages_offset != x->pages_offset || a->bitmap_offset != x->bitmap_offset ||
            a->csum_offset != x->csum_offset) {
            return header_fail(errp, "RAM block %u's regions are misplaced (pages at %" PRIu64
                               ", expected %" PRIu64 ")", i, a->pages_offset, x->pages_offset);
        }
    }
    if (h->devices_offset != expect.devices_offset) {
        return header_fail(errp, "the device state is at offset %" PRIu64 ", expected %"
                           PRIu64, h->devices_offset, expect.devices_offset);
    }
    return true;
}

/* The header's size and, for an incremental image, its base's path. */
static bool header_decode_base(MappedRamHeader *h, const uint8_t *p, GError **errp)
{
    static const uint8_t none[MAPPED_RAM_UUID_SIZE];
    uint32_t used = le_get32(p + 76);
    bool has_base = h->layout_flags & MAPPED_RAM_LAYOUT_HAS_BASE;
    uint32_t n;

    if (le_get32(p + 28) != MAPPED_RAM_PAGE_SIZE) {
        return header_fail(errp, "page size %u", le_get32(p + 28));
    }
    if (!has_base) {
        if (used != MAPPED_RAM_HEADER_USED) {
            return header_fail(errp, "header size %u", used);
        }
        return true;
    }
    n = le_get32(p + MAPPED_RAM_BASE_PATH_OFFSET);
    if (n == 0 || n > MAPPED_RAM_BASE_PATH_MAX || used != MAPPED_RAM_BASE_PATH_OFFSET + 4 + n) {
        return header_fail(errp, "incremental image with a base path of %u bytes (header "
                           "size %u)", n, used);
    }
    memcpy(h->base_path, p + MAPPED_RAM_BASE_PATH_OFFSET + 4, n);
    h->base_path[n] = '\0';
    if (strlen(h->base_path) != n || !g_utf8_validate(h->base_path, n, NULL)) {
        return header_fail(errp, "the base path is not UTF-8 text");
    }
    if (!memcmp(h->base_uuid, none, MAPPED_RAM_UUID_SIZE)) {
        return header_fail(errp, "incremental image without a base UUID");
    }
    return true;
}

bool mapped_ram_header_decode(MappedRamHeader *h, const uint8_t *p, const uint8_t *t,
                              uint64_t file_len, GError **errp)
{
    uint32_t version, flags, required;

    memset(h, 0, sizeof(*h));
    if (memcmp(p, SAVEVM_MAGIC, SAVEVM_MAGIC_SIZE)) {
        return header_fail(errp, "not a frostvm image (bad magic)");
    }
    version = le_get32(p + 8);
    flags = le_get32(p + 12);
    if (version == 0 || version > SAVEVM_VERSION) {
        return header_fail(errp, "stream format version %u; this build reads 1 to %u",
                           version, SAVEVM_VERSION);
    }
    if (!(flags & MAPPED_RAM_STREAM_FLAG)) {
        return header_fail(errp, "not page-aligned (a stream image)");
    }
    required = flags & SAVEVM_STREAM_FLAGS_REQUIRED_MASK & ~MAPPED_RAM_STREAM_FLAG;
    if (required) {
        return header_fail(errp, "unknown required stream flags 0x%08x", required);
    }
    if (le_get32(p + 16) != MAPPED_RAM_TAG || le_get32(p + 20) != MAPPED_RAM_LAYOUT_VERSION) {
        return header_fail(errp, "layout header tag 0x%08x version %u (this build reads "
                           "version %u)", le_get32(p + 16), le_get32(p + 20),
                           MAPPED_RAM_LAYOUT_VERSION);
    }
    h->stream_flags = flags;
    h->layout_flags = le_get32(p + 24);
    memcpy(h->uuid, p + 32, MAPPED_RAM_UUID_SIZE);
    memcpy(h->base_uuid, p + 48, MAPPED_RAM_UUID_SIZE);
    h->base_digest = le_get64(p + 64);
    if (h->layout_flags & MAPPED_RAM_LAYOUT_REQUIRED_MASK & ~MAPPED_RAM_LAYOUT_KNOWN_REQUIRED) {
        return header_fail(errp, "unknown required layout flags 0x%08x", h->layout_flags);
    }
    if (!header_decode_base(h, p, errp)) {
        return false;
    }
    h->nblocks = le_get32(p + 72);
    h->machine_offset = le_get64(p + 80);
    h->machine_len = le_get64(p + 88);
    h->devices_offset = le_get64(p + 96);
    h->devices_len = le_get64(p + 104);
    h->image_len = le_get64(p + 112);
    h->created = le_get64(p + 120);
    h->digest = le_get64(p + 128);
    if (h->nblocks == 0 || h->nblocks > MAPPED_RAM_MAX_BLOCKS) {
        return header_fail(errp, "%u RAM blocks", h->nblocks);
    }
    if (h->machine_len < 40 || h->machine_len > MAPPED_RAM_MAX_MACHINE_LEN ||
        h->devices_len > MAPPED_RAM_MAX_DEVICES_LEN) {
        return header_fail(errp, "machine description of %" PRIu64 " bytes, device state "
                           "of %" PRIu64, h->machine_len, h->devices_len);
    }
    if (!header_decode_blocks(h, t, errp)) {
        return false;
    }
    if (h->image_len != h->devices_offset + h->devices_len) {
        return header_fail(errp, "image length %" PRIu64 " does not end at the device "
                           "state's end (%" PRIu64 ")", h->image_len,
                           h->devices_offset + h->devices_len);
    }
    if (file_len < h->image_len) {
        error_setg(errp, "page-aligned image truncated: it has %" PRIu64 " bytes, its "
                   "header says %" PRIu64, file_len, h->image_len);
        return false;
    }
    if (file_len > h->image_len) {
        return header_fail(errp, "%" PRIu64 " bytes after its end (offset %" PRIu64 ")",
                           file_len - h->image_len, h->image_len);
    }
    return true;
}

char *mapped_ram_uuid_string(const uint8_t u[MAPPED_RAM_UUID_SIZE])
{
    return image_uuid_string(u);
}

bool mapped_ram_is_image_header(const uint8_t *p, size_t len)
{
    return len >= SAVEVM_HEADER_SIZE && !memcmp(p, SAVEVM_MAGIC, SAVEVM_MAGIC_SIZE) &&
           (le_get32(p + 12) & MAPPED_RAM_STREAM_FLAG);
}
