/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Reading a page-aligned image: open and verify its metadata, read pages with their checksums checked. */
#include "migration/mapped-ram.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "migration/image-identity.h"
#include "util/error.h"

/* Entries in one page of a checksum table. */
#define CSUMS_PER_PAGE (MAPPED_RAM_PAGE_SIZE / 8)

static uint64_t image_file_size(MappedRamImage *img)
{
    struct stat st;

    return fstat(img->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Read exactly @len bytes at @offset; a short read means the file shrank. */
static bool image_pread(MappedRamImage *img, void *buf, uint64_t len, uint64_t offset,
                        const char *what, GError **errp)
{
    uint8_t *p = buf;

    while (len) {
        ssize_t r = pread(img->fd, p, len, (off_t)offset);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            error_setg_errno(errp, errno, "cannot read %s of %s at offset %" PRIu64, what,
                             img->path, offset);
            return false;
        }
        if (r == 0) {
            error_setg(errp, "page-aligned image %s truncated: %s at offset %" PRIu64
                       " is past its end (the file now has %" PRIu64 " bytes, the image %"
                       PRIu64 ")", img->path, what, offset, image_file_size(img),
                       img->h.image_len);
            return false;
        }
        p += r;
        len -= (uint64_t)r;
        offset += (uint64_t)r;
    }
    return true;
}

static bool image_load_bitmaps(MappedRamImage *img, GError **errp)
{
    for (uint32_t i = 0; i < img->h.nblocks; i++) {
        const MappedRamBlock *b = &img->h.blocks[i];
        uint64_t pages = mapped_ram_block_pages(b->size);
        uint64_t len = mapped_ram_bitmap_bytes(pages);
        uint64_t present = 0;

        img->bitmaps[i] = g_malloc0(len);
        img->csums[i] = g_malloc0(pages * 8);
        img->csum_loaded[i] = g_malloc0((pages + CSUMS_PER_PAGE - 1) / CSUMS_PER_PAGE);
        if (!image_pread(img, img->bitmaps[i], len, b->bitmap_offset, "the page bitmap",
                         errp)) {
            return false;
        }
        if (XXH3_64bits(img->bitmaps[i], len) != b->bitmap_csum) {
            error_setg(errp, "corrupt page-aligned image %s: the page bitmap of RAM block %u "
                       "(offset %" PRIu64 ") does not match its checksum", img->path, i,
                       b->bitmap_offset);
            return false;
        }
        for (uint64_t w = 0; w < len / 8; w++) {
            present += (uint64_t)__builtin_popcountll(img->bitmaps[i][w]);
        }
        /* Bits past the block's end must be clear: they would name pages that do not exist. */
        if (pages % 64 && img->bitmaps[i][pages / 64] >> (pages % 64)) {
            present = UINT64_MAX;
        }
        if (present != b->present_pages) {
            error_setg(errp, "corrupt page-aligned image %s: RAM block %u's bitmap marks "
                       "%" PRIu64 " pages present, its table entry %" PRIu64, img->path, i,
                       present, b->present_pages);
            return false;
        }
    }
    return true;
}

MappedRamImage *mapped_ram_image_open(const char *path, int fd, GError **errp)
{
    g_autoptr(MappedRamImage) img = g_new0(MappedRamImage, 1);
    g_autofree uint8_t *header = g_malloc(MAPPED_RAM_HEADER_SIZE);
    g_autofree uint8_t *table = g_malloc(MAPPED_RAM_HEADER_SIZE);
    uint64_t digest;

    img->path = g_strdup(path);
    img->fd = fd >= 0 ? fd : open(path, O_RDONLY | O_CLOEXEC);
    if (img->fd < 0) {
        error_setg_errno(errp, errno, "cannot open image '%s'", path);
        return NULL;
    }
    /*
     * The header's reads go through image_pread(), whose truncation message
     * needs img->h.image_len: until decoded it is 0.
     */
    if (!image_pread(img, header, MAPPED_RAM_HEADER_SIZE, 0, "the header", errp) ||
        !image_pread(img, table, MAPPED_RAM_HEADER_SIZE, MAPPED_RAM_TABLE_OFFSET,
                     "the block table", errp)) {
        return NULL;
    }
    if (!mapped_ram_header_decode(&img->h, header, table, image_file_size(img), errp)) {
        error_prefix(errp, "%s: ", path);
        return NULL;
    }
    img->machine = g_malloc(img->h.machine_len);
    img->devices = g_malloc(img->h.devices_len ? img->h.devices_len : 1);
    if (!image_pread(img, img->machine, img->h.machine_len, img->h.machine_offset,
                     "the machine description", errp) ||
        !image_pread(img, img->devices, img->h.devices_len, img->h.devices_offset,
                     "the device state", errp)) {
        return NULL;
    }
    digest = mapped_ram_digest(header, table, img->machine, img->h.machine_len,
                               img->devices, img->h.devices_len);
    if (digest != img->h.digest) {
        error_setg(errp, "corrupt page-aligned image %s: the header records digest %016"
                   PRIx64 " but its metadata gives %016" PRIx64, path, img->h.digest, digest);
        return NULL;
    }
    if (!image_load_bitmaps(img, errp)) {
        return NULL;
    }
    return g_steal_pointer(&img);
}

void mapped_ram_image_close(MappedRamImage *img)
{
    if (!img) {
        return;
    }
    mapped_ram_image_close(img->base);
    for (uint32_t i = 0; i < MAPPED_RAM_MAX_BLOCKS; i++) {
        g_free(img->composite[i]);
        g_free(img->bitmaps[i]);
        g_free(img->csums[i]);
        g_free(img->csum_loaded[i]);
    }
    if (img->fd >= 0) {
        close(img->fd);
    }
    g_free(img->machine);
    g_free(img->devices);
    g_free(img->path);
    g_free(img);
}

bool mapped_ram_image_attach_base(MappedRamImage *img, MappedRamImage *base, GError **errp)
{
    g_autoptr(MappedRamImage) owned = base;

    g_assert(!img->base && (img->h.layout_flags & MAPPED_RAM_LAYOUT_HAS_BASE));
    G_STATIC_ASSERT(MAPPED_RAM_UUID_SIZE == IMAGE_UUID_SIZE);
    if (!image_link_check_uuid(base->h.uuid, img->h.base_uuid, errp) ||
        !image_link_check_digest(base->h.digest, img->h.base_digest, errp)) {
        error_prefix(errp, "the base '%s' of image %s: ", base->path, img->path);
        return false;
    }
    if (base->h.nblocks != img->h.nblocks) {
        error_setg(errp, "the base '%s' of image %s has %u RAM blocks, the increment %u",
                   base->path, img->path, base->h.nblocks, img->h.nblocks);
        return false;
    }
    for (uint32_t i = 0; i < img->h.nblocks; i++) {
        uint64_t pages = mapped_ram_block_pages(img->h.blocks[i].size);
        uint64_t words = mapped_ram_bitmap_bytes(pages) / 8;
        const uint64_t *below = base->composite[i] ? base->composite[i] : base->bitmaps[i];

        if (base->h.blocks[i].size != img->h.blocks[i].size) {
            error_setg(errp, "RAM block %u of the base '%s' has %" PRIu64 " bytes, of the "
                       "increment %s %" PRIu64, i, base->path, base->h.blocks[i].size,
                       img->path, img->h.blocks[i].size);
            return false;
        }
        img->composite[i] = g_new(uint64_t, words);
        img->composite_pages[i] = 0;
        for (uint64_t w = 0; w < words; w++) {
            img->composite[i][w] = img->bitmaps[i][w] | below[w];
            img->composite_pages[i] += (uint64_t)__builtin_popcountll(img->composite[i][w]);
        }
    }
    img->base = g_steal_pointer(&owned);
    return true;
}

uint64_t mapped_ram_image_present_pages(const MappedRamImage *img, uint32_t block)
{
    return img->composite[block] ? img->composite_pages[block]
                                 : img->h.blocks[block].present_pages;
}

/* Make sure the checksum table pages covering [first, first + n) are in memory. */
static bool image_load_csums(MappedRamImage *img, uint32_t block, uint64_t first, uint64_t n,
                             GError **errp)
{
    const MappedRamBlock *b = &img->h.blocks[block];
    uint64_t pages = mapped_ram_block_pages(b->size);

    for (uint64_t tp = first / CSUMS_PER_PAGE; tp <= (first + n - 1) / CSUMS_PER_PAGE; tp++) {
        uint64_t entries = MIN(CSUMS_PER_PAGE, pages - tp * CSUMS_PER_PAGE);

        if (__atomic_load_n(&img->csum_loaded[block][tp], __ATOMIC_ACQUIRE)) {
            continue;
        }
        /* Two threads may load the same page: both write the same bytes. */
        if (!image_pread(img, img->csums[block] + tp * CSUMS_PER_PAGE, entries * 8,
                         b->csum_offset + tp * MAPPED_RAM_PAGE_SIZE, "a checksum table",
                         errp)) {
            return false;
        }
        __atomic_store_n(&img->csum_loaded[block][tp], 1, __ATOMIC_RELEASE);
    }
    return true;
}

static bool page_is_zero(const uint8_t *p)
{
    static const uint8_t zero[MAPPED_RAM_PAGE_SIZE];

    return !memcmp(p, zero, MAPPED_RAM_PAGE_SIZE);
}

bool mapped_ram_image_verify(MappedRamImage *img, uint32_t block, uint64_t first,
                             uint32_t npages, const void *data, GError **errp)
{
    const MappedRamBlock *b = &img->h.blocks[block];

    if (!image_load_csums(img, block, first, npages, errp)) {
        return false;
    }
    for (uint32_t i = 0; i < npages; i++) {
        uint64_t page = first + i;
        const uint8_t *p = (const uint8_t *)data + (size_t)i * MAPPED_RAM_PAGE_SIZE;
        uint64_t offset = b->pages_offset + page * MAPPED_RAM_PAGE_SIZE;

        if (!mapped_ram_image_has_page(img, block, page)) {
            if (!page_is_zero(p)) {
                error_setg(errp, "corrupt page-aligned image %s: page 0x%" PRIx64 " of RAM "
                           "block %u is absent but reads as non-zero (file offset %" PRIu64 ")",
                           img->path, page * MAPPED_RAM_PAGE_SIZE, block, offset);
                return false;
            }
            continue;
        }
        if (mapped_ram_page_csum(p, block, page) != img->csums[block][page]) {
            error_setg(errp, "corrupt page-aligned image %s: page 0x%" PRIx64 " of RAM block "
                       "%u (file offset %" PRIu64 ") does not match its checksum", img->path,
                       page * MAPPED_RAM_PAGE_SIZE, block, offset);
            return false;
        }
    }
    return true;
}

bool mapped_ram_image_page_unchanged(MappedRamImage *img, uint32_t block, uint64_t page,
                                     const void *data, bool *unchanged, GError **errp)
{
    MappedRamImage *layer = img;

    /* In a chain, the newest layer that holds the page; none: zero. */
    while (layer && !mapped_ram_image_has_page(layer, block, page)) {
        layer = layer->base;
    }
    if (!layer) {
        *unchanged = page_is_zero(data);
        return true;
    }
    if (!image_load_csums(layer, block, page, 1, errp)) {
        return false;
    }
    *unchanged = mapped_ram_page_csum(data, block, page) == layer->csums[block][page];
    return true;
}

bool mapped_ram_image_read(MappedRamImage *img, uint32_t block, uint64_t first,
                           uint32_t npages, void *dst, GError **errp)
{
    const MappedRamBlock *b = &img->h.blocks[block];
    uint8_t *out = dst;
    uint32_t i = 0;

    if (block >= img->h.nblocks || first + npages > mapped_ram_block_pages(b->size)) {
        error_setg(errp, "%s: pages %" PRIu64 "+%u are outside RAM block %u", img->path,
                   first, npages, block);
        return false;
    }
    while (i < npages) {
        uint32_t start = i;
        bool own = mapped_ram_image_has_page(img, block, first + i);
        uint8_t *run = out + (size_t)start * MAPPED_RAM_PAGE_SIZE;

        while (i < npages && mapped_ram_image_has_page(img, block, first + i) == own) {
            i++;
        }
        if (own) {
            if (!image_pread(img, run, (uint64_t)(i - start) * MAPPED_RAM_PAGE_SIZE,
                             b->pages_offset + (first + start) * MAPPED_RAM_PAGE_SIZE,
                             "guest RAM", errp) ||
                !mapped_ram_image_verify(img, block, first + start, i - start, run, errp)) {
                return false;
            }
        } else if (img->base) {
            /* Not written since the base: the newest older layer that has it. */
            if (!mapped_ram_image_read(img->base, block, first + start, i - start, run, errp)) {
                return false;
            }
        } else {
            memset(run, 0, (size_t)(i - start) * MAPPED_RAM_PAGE_SIZE);
        }
    }
    return true;
}

/* The next run of pages set in @map (a present bitmap of @block), as next_run() says. */
static uint64_t bitmap_next_run(const MappedRamImage *img, const uint64_t *map, uint32_t block,
                                uint64_t *page, uint64_t max)
{
    uint64_t pages = mapped_ram_block_pages(img->h.blocks[block].size);
    uint64_t p = *page, end;

    while (p < pages) {
        uint64_t word = map[p / 64] >> (p % 64);
        if (word) {
            p += (uint64_t)__builtin_ctzll(word);
            break;
        }
        p = (p / 64 + 1) * 64;
    }
    if (p >= pages) {
        *page = pages;
        return 0;
    }
    end = p;
    while (end < pages && end - p < max && ((map[end / 64] >> (end % 64)) & 1)) {
        end++;
    }
    *page = p;
    return end - p;
}

uint64_t mapped_ram_image_next_run(const MappedRamImage *img, uint32_t block, uint64_t *page,
                                   uint64_t max)
{
    const uint64_t *map = img->composite[block] ? img->composite[block] : img->bitmaps[block];

    return bitmap_next_run(img, map, block, page, max);
}

bool mapped_ram_image_check(MappedRamImage *img,
                            void (*progress)(void *opaque, uint64_t done, uint64_t total),
                            void *opaque, GError **errp)
{
    const uint32_t chunk = 256;     /* 1 MiB reads */
    g_autofree uint8_t *buf = g_malloc((size_t)chunk * MAPPED_RAM_PAGE_SIZE);
    uint64_t total = 0, done = 0;

    for (uint32_t i = 0; i < img->h.nblocks; i++) {
        total += img->h.blocks[i].present_pages;
    }
    for (uint32_t i = 0; i < img->h.nblocks; i++) {
        const MappedRamBlock *b = &img->h.blocks[i];
        uint64_t pages = mapped_ram_block_pages(b->size);
        uint64_t page = 0, n;

        if (!image_load_csums(img, i, 0, pages, errp)) {
            return false;
        }
        if (XXH3_64bits(img->csums[i], pages * 8) != b->table_csum) {
            error_setg(errp, "corrupt page-aligned image %s: the checksum table of RAM block "
                       "%u (offset %" PRIu64 ") does not match its checksum", img->path, i,
                       b->csum_offset);
            return false;
        }
        while ((n = bitmap_next_run(img, img->bitmaps[i], i, &page, chunk))) {
            if (!image_pread(img, buf, n * MAPPED_RAM_PAGE_SIZE,
                             b->pages_offset + page * MAPPED_RAM_PAGE_SIZE, "guest RAM", errp) ||
                !mapped_ram_image_verify(img, i, page, (uint32_t)n, buf, errp)) {
                return false;
            }
            page += n;
            done += n;
            if (progress) {
                progress(opaque, done, total);
            }
        }
    }
    return true;
}
