/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The migration stream format: writing its sections, parsing and loading them. */
#ifndef MIGRATION_SAVEVM_H
#define MIGRATION_SAVEVM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

#include "migration/image-identity.h"

typedef struct Machine Machine;
typedef struct RamBlock RamBlock;
typedef struct StreamFile StreamFile;

/*
 * The byte-level specification is docs/devel/migration-stream.md; keep the
 * two in step. Everything is little-endian (inside the machine description,
 * FDT's own big-endian rules apply).
 */

/* "\x89FROSTVM": the first 8 bytes of every stream. */
#define SAVEVM_MAGIC "\x89" "FROSTVM"
#define SAVEVM_MAGIC_SIZE 8
/* The format this build writes; it reads every version up to this one. */
#define SAVEVM_VERSION 1
#define SAVEVM_HEADER_SIZE 16

/*
 * Stream flags (header bytes 12-15). Bits 0-15 describe the stream and a
 * reader may ignore the ones it does not know; bits 16-31 change how it must
 * be read and a reader refuses any it does not know.
 */
#define SAVEVM_STREAM_BACKGROUND_SNAPSHOT (1u << 0) /* each page once, any order */
#define SAVEVM_STREAM_PRECOPY             (1u << 1) /* live passes: later records win */
/*
 * Required: an incremental image. Pages it does not hold come from its base,
 * which its IDNT record names; old readers refuse it.
 */
#define SAVEVM_STREAM_INCREMENTAL         (1u << 17)
#define SAVEVM_STREAM_FLAGS_REQUIRED_MASK 0xffff0000u

/* Every record starts with: u32 type, u32 flags, u64 payload length. */
#define SAVEVM_RECORD_HEADER_SIZE 16
/* Record flag: a reader that does not know the type may skip the record. */
#define SAVEVM_RECORD_OPTIONAL (1u << 31)

/* Record types: four ASCII characters, stored in this byte order. */
#define SAVEVM_FOURCC(a, b, c, d) \
    ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define SAVEVM_REC_MACHINE   SAVEVM_FOURCC('M', 'A', 'C', 'H')
#define SAVEVM_REC_RAM_START SAVEVM_FOURCC('R', 'A', 'M', 'S')
#define SAVEVM_REC_RAM       SAVEVM_FOURCC('P', 'A', 'G', 'E')
#define SAVEVM_REC_RAM_END   SAVEVM_FOURCC('R', 'A', 'M', 'E')
#define SAVEVM_REC_DEVICE    SAVEVM_FOURCC('D', 'E', 'V', 'C')
#define SAVEVM_REC_PADDING   SAVEVM_FOURCC('P', 'A', 'D', 'D')
#define SAVEVM_REC_FOOTER    SAVEVM_FOURCC('F', 'O', 'O', 'T')
/* The image's identity (optional record, right after MACH): see image-identity.h. */
#define SAVEVM_REC_IDENTITY  SAVEVM_FOURCC('I', 'D', 'N', 'T')

/*
 * A RAM record: the record header, then u32 block index, u32 page count,
 * u64 byte offset in the block; then, for data records, the pages.
 */
#define SAVEVM_RAM_RECORD_HEADER_SIZE 32
#define SAVEVM_RAM_ZERO (1u << 0)   /* npages zero pages; no data follows */
#define SAVEVM_RAM_DATA (1u << 1)   /* npages * 4096 bytes follow */
#define SAVEVM_PAGE_SIZE 4096u

/* The footer record's size, header included: u64 stream length, u64 checksum. */
#define SAVEVM_FOOTER_SIZE 32

/*
 * Write a RAM record header into @dst (SAVEVM_RAM_RECORD_HEADER_SIZE bytes).
 * @offset is in bytes from the start of block @block_index and page-aligned;
 * @flags is SAVEVM_RAM_ZERO or SAVEVM_RAM_DATA. For data records the caller
 * writes the @npages pages right after. Thread-safe (touches only @dst), so
 * several producers can build records in their own buffers.
 */
void savevm_encode_ram_header(uint8_t *dst, uint32_t block_index, uint64_t offset,
                              uint32_t npages, uint32_t flags);

/* The index of @block in the stream (its position in m->ram_blocks), or -1. */
int savevm_ram_block_index(Machine *m, RamBlock *block);

/*
 * Start a stream: the header with @stream_flags, the machine description and
 * the RAM section start. RAM records may follow at once.
 */
bool savevm_write_header(StreamFile *f, Machine *m, uint32_t stream_flags,
                         GError **errp);

typedef struct ImageIdentity ImageIdentity;

/*
 * savevm_write_header() with the identity @id (its UUID and, for an
 * incremental image, its base) in an IDNT record after the machine
 * description. savevm_write_header() gives the stream a fresh UUID.
 */
bool savevm_write_header_identity(StreamFile *f, Machine *m, uint32_t stream_flags,
                                  const ImageIdentity *id, GError **errp);

/* End the RAM section (after the last RAM record). */
bool savevm_write_ram_end(StreamFile *f, GError **errp);

/*
 * Save every device (m->vmstate_handlers, in registration order, plus the
 * run state the machine had before migration stopped it) into records in
 * memory, ready for savevm_write_devices(). Call with the vCPUs stopped.
 * The caller frees the array.
 */
GByteArray *savevm_save_devices(Machine *m, GError **errp);

/* Write device records made by savevm_save_devices(). */
bool savevm_write_devices(StreamFile *f, GByteArray *devices, GError **errp);

/*
 * End the stream: the footer with the total length and the checksum of
 * everything before the checksum field. Flush afterwards.
 */
bool savevm_write_footer(StreamFile *f, GError **errp);

/* savevm_write_footer(), also giving the checksum it wrote (the stream's digest). */
bool savevm_write_footer_digest(StreamFile *f, uint64_t *digest, GError **errp);

/* What a load found, for the caller deciding what to do next. */
typedef struct SavevmLoadInfo {
    uint32_t version;
    uint32_t stream_flags;
    bool source_running;      /* the source guest was running when saved */
    uint64_t zero_pages;      /* pages in zero records */
    uint64_t data_pages;      /* pages in data records */
    uint64_t devices;         /* device records applied */
    uint64_t stream_length;
    /* The restored image's own identity (not its bases'): an increment may build on it. */
    bool has_uuid;            /* false: written before identities existed */
    bool page_aligned;
    uint8_t uuid[IMAGE_UUID_SIZE];
    uint64_t digest;          /* verified: the stream's footer checksum, the header digest */
    /* The second thread that faults RAM in ahead of the stream (system/ram-prefault.h). */
    uint64_t prefaulted_bytes;     /* it populated */
    uint64_t ahead_returned_bytes; /* of regions it was sent ahead into and no data reached */
} SavevmLoadInfo;

/*
 * Load a whole stream into @m (guest stopped): check that the image was made
 * on the same machine (RAM blocks, RAM size, vCPU count, accelerator; the
 * error says what differs), read RAM records in any order straight into
 * guest RAM, verify the footer's length and checksum, and only then load the
 * device records into their handlers (by name and instance; an unknown
 * record, or a handler left without a record, is an error). A truncated or
 * corrupt stream fails naming the offset and what is wrong. After a failure
 * guest RAM is undefined and the guest must not run.
 */
bool savevm_load(StreamFile *f, Machine *m, GError **errp);

/* savevm_load(), also reporting what was loaded in @info (may be NULL). */
bool savevm_load_full(StreamFile *f, Machine *m, SavevmLoadInfo *info,
                      GError **errp);

/*
 * savevm_load_full() of an image read from @image_path (NULL for a pipe or a
 * socket): an incremental stream's bases are found from there (or at
 * @base_override, when not NULL or "") and loaded first, every link checked.
 */
bool savevm_load_image(StreamFile *f, Machine *m, const char *image_path,
                       const char *base_override, SavevmLoadInfo *info, GError **errp);

typedef struct ImageIdentity ImageIdentity;

/*
 * Load only the RAM of the stream image at @path into @m (a base of a
 * chain, loaded below its increment): it must be the image @expect names
 * (its base UUID and base digest); its own bases are loaded first. @depth
 * counts the links so far.
 */
bool savevm_load_base(Machine *m, const char *path, const ImageIdentity *expect,
                      unsigned depth, GError **errp);

/*
 * Load the device records @records (DEVC records back to back, as
 * savevm_save_devices() makes them; verified by the caller) into @m's
 * handlers, with the same checks as a stream's; the source's run state goes
 * into @info.
 */
bool savevm_load_devices(Machine *m, const void *records, size_t len, SavevmLoadInfo *info,
                         GError **errp);

#endif
