/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Page-aligned images (the mapped-ram capability): every guest page at a fixed file offset, checked page by page. */
#ifndef MIGRATION_MAPPED_RAM_H
#define MIGRATION_MAPPED_RAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

/*
 * The byte-level specification is the "Page-aligned images" section of
 * docs/devel/migration-stream.md; keep the two in step. An image starts with
 * the ordinary 16-byte stream header whose required flag MAPPED_RAM makes a
 * reader that does not know this layout refuse it, followed by the layout
 * header below; everything else is found through offsets, not by reading in
 * order. All integers are little-endian.
 */

/* Stream flag (a required one, bits 16-31): the image is page-aligned. */
#define MAPPED_RAM_STREAM_FLAG (1u << 16)

#define MAPPED_RAM_PAGE_SIZE 4096u
#define MAPPED_RAM_HEADER_SIZE 4096u       /* the header page */
#define MAPPED_RAM_HEADER_USED 136u        /* bytes of it that carry fields (flat images) */
/* An incremental image's header also carries its base's path: u32 length, then the bytes. */
#define MAPPED_RAM_BASE_PATH_OFFSET 136u
#define MAPPED_RAM_TABLE_OFFSET 4096u      /* the block table: page 1 */
#define MAPPED_RAM_TABLE_ENTRY_SIZE 64u
#define MAPPED_RAM_MAX_BLOCKS 64u          /* 64 entries fill page 1 exactly */
/* Page regions start at this alignment (the THP size): mappings stay huge-page friendly. */
#define MAPPED_RAM_REGION_ALIGN (2u << 20)

/* "MRAM": the layout header's tag. */
#define MAPPED_RAM_TAG 0x4d41524du
#define MAPPED_RAM_LAYOUT_VERSION 1u

/*
 * Layout flags. Bits 0-15 change how the image must be read (a reader
 * refuses one it does not know); bits 16-31 are informational.
 */
#define MAPPED_RAM_LAYOUT_HAS_BASE (1u << 0)   /* incremental: absent pages come from the base */
#define MAPPED_RAM_LAYOUT_REQUIRED_MASK 0x0000ffffu
#define MAPPED_RAM_LAYOUT_KNOWN_REQUIRED MAPPED_RAM_LAYOUT_HAS_BASE

#define MAPPED_RAM_UUID_SIZE 16
/* Longest base path (IMAGE_BASE_PATH_MAX in image-identity.h): it fits the header page. */
#define MAPPED_RAM_BASE_PATH_MAX 3900u

/* One RAM block's place in the image (a block table entry). */
typedef struct MappedRamBlock {
    uint64_t size;             /* bytes of guest RAM */
    uint64_t pages_offset;     /* file offset of page 0 (MAPPED_RAM_REGION_ALIGN aligned) */
    uint64_t bitmap_offset;    /* one bit per page: present (data at its offset) */
    uint64_t csum_offset;      /* one u64 per page: XXH3-64 of the page, seeded (see below) */
    uint64_t present_pages;    /* set bits in the bitmap */
    uint64_t bitmap_csum;      /* XXH3-64 of the bitmap bytes */
    uint64_t table_csum;       /* XXH3-64 of the checksum table bytes */
} MappedRamBlock;

/* The layout header, decoded. */
typedef struct MappedRamHeader {
    uint32_t stream_flags;     /* BACKGROUND_SNAPSHOT or PRECOPY, plus MAPPED_RAM */
    uint32_t layout_flags;
    uint8_t uuid[MAPPED_RAM_UUID_SIZE];        /* this image's identity */
    uint8_t base_uuid[MAPPED_RAM_UUID_SIZE];   /* all zero: no base */
    uint64_t base_digest;                      /* the base's digest; 0 without base */
    char base_path[MAPPED_RAM_BASE_PATH_MAX + 1]; /* HAS_BASE: where the base was ("" else) */
    uint32_t nblocks;
    uint64_t machine_offset, machine_len;      /* the machine description (FDT) */
    uint64_t devices_offset, devices_len;      /* DEVC records, as in a stream */
    uint64_t image_len;                        /* the file's exact length */
    uint64_t created;                          /* unix time */
    uint64_t digest;           /* XXH3-64 of the metadata: see mapped_ram_digest() */
    MappedRamBlock blocks[MAPPED_RAM_MAX_BLOCKS];
} MappedRamHeader;

/* Pages, bitmap words and checksum table entries of a block of @size bytes. */
uint64_t mapped_ram_block_pages(uint64_t size);
uint64_t mapped_ram_bitmap_bytes(uint64_t pages);

/*
 * Lay out @nblocks blocks of @sizes with a machine description of
 * @machine_len bytes: fills the offsets of @h (flags, UUIDs and counts are
 * the caller's). Devices go after the last page region, at
 * mapped_ram_devices_offset().
 */
void mapped_ram_layout(MappedRamHeader *h, uint32_t nblocks, const uint64_t *sizes,
                       uint64_t machine_len);

/* Where the device records start: the end of the last page region. */
uint64_t mapped_ram_devices_offset(const MappedRamHeader *h);

/* The checksum of page @page of block @block: XXH3-64 seeded with its position. */
uint64_t mapped_ram_page_csum(const void *page, uint32_t block, uint64_t index);

/*
 * The image digest: XXH3-64 over the header's bytes before the digest field,
 * the block table, the machine description and the device records. The
 * block table carries each bitmap's and checksum table's own checksum, so
 * the digest covers every page through them: it is the image's fingerprint
 * (an incremental image names its base by UUID and this digest).
 */
uint64_t mapped_ram_digest(const uint8_t *header_page, const uint8_t *table,
                           const void *machine, size_t machine_len,
                           const void *devices, size_t devices_len);

/* Encode @h into the header page and the block table page (MAPPED_RAM_HEADER_SIZE each). */
void mapped_ram_header_encode(const MappedRamHeader *h, uint8_t *header_page,
                              uint8_t *table_page);

/*
 * Decode and check the two pages against the file length @file_len (bounds,
 * alignment, overlaps, flags; not the digest). Errors name the field.
 */
bool mapped_ram_header_decode(MappedRamHeader *h, const uint8_t *header_page,
                              const uint8_t *table_page, uint64_t file_len, GError **errp);

/* "1b4e28ba-2fa1-41d2-883f-0016d3cca427"; the caller frees it. */
char *mapped_ram_uuid_string(const uint8_t uuid[MAPPED_RAM_UUID_SIZE]);

/* True when the first 16 bytes at @stream_header are a page-aligned image's. */
bool mapped_ram_is_image_header(const uint8_t *stream_header, size_t len);

/* ---- Writing: positioned writes into a regular file ---- */

typedef struct MappedRamWriter MappedRamWriter;

/*
 * Start a page-aligned image on @fd (a regular file opened for writing,
 * empty; not owned): lay out @nblocks blocks of @sizes after the machine
 * description @machine (copied), give the image a new UUID. Nothing is
 * written until pages are.
 */
MappedRamWriter *mapped_ram_writer_new(int fd, const char *name, uint32_t stream_flags,
                                       uint32_t nblocks, const uint64_t *sizes,
                                       const void *machine, size_t machine_len,
                                       GError **errp);

/*
 * Write @npages pages of block @block from page @first: @data holds them
 * contiguously. They become present, with their checksums. Thread-safe for
 * distinct pages. False with @errp (the file's error) on failure.
 */
bool mapped_ram_writer_put(MappedRamWriter *w, uint32_t block, uint64_t first,
                           uint32_t npages, const void *data, GError **errp);

/* As mapped_ram_writer_put(), the pages given one pointer each (pool slots). */
bool mapped_ram_writer_putv(MappedRamWriter *w, uint32_t block, uint64_t first,
                            uint32_t npages, void *const *pages, GError **errp);

/*
 * Pages [@first, @first + @npages) of @block are zero: they become absent.
 * A page written earlier (a precopy pass) loses its data too (the range is
 * punched out of the file), so the image stays sparse.
 */
bool mapped_ram_writer_zero(MappedRamWriter *w, uint32_t block, uint64_t first,
                            uint32_t npages, GError **errp);

/* Data bytes written so far (page data only). */
uint64_t mapped_ram_writer_bytes(MappedRamWriter *w);

/*
 * Make the image incremental (HAS_BASE): pages not written are the base's,
 * named by its UUID and digest, and @base_path records where it was (at
 * most MAPPED_RAM_BASE_PATH_MAX bytes). A page written as zero is then
 * present, with zero content, instead of absent. Before any page is written.
 */
void mapped_ram_writer_set_base(MappedRamWriter *w, const uint8_t uuid[MAPPED_RAM_UUID_SIZE],
                                uint64_t digest, const char *base_path);

/*
 * End the image: the device records @devices (as savevm_save_devices() makes
 * them), the bitmaps and checksum tables (only their non-zero pages, so they
 * stay sparse too), the block table and, last, the header with the digest.
 * The file's length is set exactly. The caller then syncs and publishes the
 * file (channel_close()).
 */
bool mapped_ram_writer_finish(MappedRamWriter *w, const void *devices, size_t devices_len,
                              GError **errp);

/* The header as written (valid after mapped_ram_writer_finish()). */
const MappedRamHeader *mapped_ram_writer_header(MappedRamWriter *w);

void mapped_ram_writer_free(MappedRamWriter *w);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(MappedRamWriter, mapped_ram_writer_free)

/* ---- Reading: random access with per-page checks ---- */

typedef struct MappedRamImage MappedRamImage;

struct MappedRamImage {
    int fd;
    char *path;
    MappedRamHeader h;
    uint64_t *bitmaps[MAPPED_RAM_MAX_BLOCKS];   /* loaded whole and verified at open */
    /*
     * An incremental image with its base attached (mapped_ram_image_attach_base()):
     * the base (owned), and per block the pages present in any layer of the
     * chain, which the readers below use; NULL for a flat image.
     */
    MappedRamImage *base;
    uint64_t *composite[MAPPED_RAM_MAX_BLOCKS];
    uint64_t composite_pages[MAPPED_RAM_MAX_BLOCKS];
    uint8_t *machine;                           /* the machine description */
    uint8_t *devices;                           /* the device records */
    /* Checksum tables are read a page at a time, when first needed. */
    uint64_t *csums[MAPPED_RAM_MAX_BLOCKS];
    uint8_t *csum_loaded[MAPPED_RAM_MAX_BLOCKS]; /* per table page: 1 once read (atomic) */
};

/*
 * Open @path (or use @fd if >= 0; then @path is for messages and the
 * descriptor is owned from here). Checks the header, the block table, the
 * file's length, the digest and every bitmap's checksum; page data and
 * checksum tables are checked as they are read. A truncated or corrupt image
 * fails naming what is wrong. An incremental image opens as its own layer:
 * its base is attached with mapped_ram_image_attach_base().
 */
MappedRamImage *mapped_ram_image_open(const char *path, int fd, GError **errp);

/* Close @img and the bases attached to it. */
void mapped_ram_image_close(MappedRamImage *img);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(MappedRamImage, mapped_ram_image_close)

/*
 * Attach @base (taken, whatever the outcome) under the incremental image
 * @img after checking that it is the image @img names (UUID and digest) and
 * has the same RAM blocks. From then on the readers below see the chain's
 * composite: a page comes from the newest layer that holds it.
 */
bool mapped_ram_image_attach_base(MappedRamImage *img, MappedRamImage *base, GError **errp);

/*
 * Whether page @page of block @block is present (has data in the image; in a
 * chain, in any of its layers).
 */
static inline bool mapped_ram_image_present(const MappedRamImage *img, uint32_t block,
                                            uint64_t page)
{
    const uint64_t *map = img->composite[block] ? img->composite[block] : img->bitmaps[block];

    return (map[page / 64] >> (page % 64)) & 1;
}

/* Whether @img's own layer holds page @page of block @block. */
static inline bool mapped_ram_image_has_page(const MappedRamImage *img, uint32_t block,
                                             uint64_t page)
{
    return (img->bitmaps[block][page / 64] >> (page % 64)) & 1;
}

/* Present pages of @block (in a chain: in any layer). */
uint64_t mapped_ram_image_present_pages(const MappedRamImage *img, uint32_t block);

/*
 * Read pages [@first, @first + @npages) of @block into @dst, each checked
 * against its checksum; absent pages become zero without a read (in a chain,
 * each page from the newest layer holding it). A short read (the file was
 * truncated) or a mismatch fails naming the page and its file offset; @dst
 * is then undefined and must not reach the guest.
 */
bool mapped_ram_image_read(MappedRamImage *img, uint32_t block, uint64_t first,
                           uint32_t npages, void *dst, GError **errp);

/*
 * Check pages of @dst (already read from the file by the caller, e.g. through
 * a mapping) against their checksums; absent pages must be zero. Only the
 * image's own layer (the map mode restores flat images only).
 */
bool mapped_ram_image_verify(MappedRamImage *img, uint32_t block, uint64_t first,
                             uint32_t npages, const void *data, GError **errp);

/*
 * Whether page @page of @block, as @data holds it, is what the image has
 * there (in a chain, the newest layer holding it; a page no layer holds is
 * zero), told by its checksum, so that only checksum table pages are read
 * (each once). Two pages with the same XXH3-64 checksum at one position
 * count as the same; a damaged checksum makes its page count as changed.
 * False with @errp set when a checksum table cannot be read.
 */
bool mapped_ram_image_page_unchanged(MappedRamImage *img, uint32_t block, uint64_t page,
                                     const void *data, bool *unchanged, GError **errp);

/*
 * The next run of present pages of @block at or after *@page: its first page
 * in *@page and its length (at most @max), or 0 when none is left.
 */
uint64_t mapped_ram_image_next_run(const MappedRamImage *img, uint32_t block,
                                   uint64_t *page, uint64_t max);

/*
 * Verify the whole image (its own layer): each checksum table against its
 * checksum, then every present page; absent pages must read as zero where
 * the file has data. @progress (may be NULL) gets the pages checked so far.
 */
bool mapped_ram_image_check(MappedRamImage *img,
                            void (*progress)(void *opaque, uint64_t done, uint64_t total),
                            void *opaque, GError **errp);

/* ---- Between the format and a machine (mapped-ram-machine.c) ---- */

typedef struct Machine Machine;
typedef struct MigrationChannel MigrationChannel;
typedef struct SavevmLoadInfo SavevmLoadInfo;

/*
 * A writer for @m's RAM blocks on the file of @ch (a connected outgoing
 * file: channel), with @m's machine description. NULL with @errp set.
 */
MappedRamWriter *mapped_ram_writer_for_machine(Machine *m, MigrationChannel *ch,
                                               uint32_t stream_flags, GError **errp);

/*
 * Check that @img was saved from a machine like @m (as a stream's loader
 * does: RAM blocks, sizes, vCPUs, accelerator; the error lists differences).
 */
bool mapped_ram_image_check_machine(MappedRamImage *img, Machine *m, GError **errp);

/* Load @img's device records into @m (after the machine check). */
bool mapped_ram_image_load_devices(MappedRamImage *img, Machine *m, SavevmLoadInfo *info,
                                   GError **errp);

#endif
