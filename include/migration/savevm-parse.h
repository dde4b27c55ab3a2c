/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The one parser of migration streams, shared by the loader, frostvm-img and the fuzzer. */
#ifndef MIGRATION_SAVEVM_PARSE_H
#define MIGRATION_SAVEVM_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

#include "migration/savevm.h"

typedef struct StreamFile StreamFile;

/* One RAM record, as the parser checked it. */
typedef struct SavevmRamRecord {
    uint32_t block;           /* index into the RAM section's blocks */
    uint32_t npages;
    uint64_t offset;          /* bytes into the block, page-aligned */
    uint32_t flags;           /* SAVEVM_RAM_ZERO or SAVEVM_RAM_DATA */
    uint64_t stream_offset;   /* where the record starts in the stream */
} SavevmRamRecord;

/*
 * What the parser reports, in stream order. Every callback may be NULL and
 * may fail (return false with @errp set), which ends the parse with that
 * error. The parser itself checks the structure: magic, version, flags,
 * record order and lengths, that RAM records stay inside their block, that
 * every page of every block was saved at least once, the footer's length and
 * checksum, and that nothing follows the footer.
 */
typedef struct SavevmParseOps {
    bool (*header)(void *opaque, uint32_t version, uint32_t stream_flags,
                   GError **errp);
    /* The machine description: a flattened device tree, structurally checked. */
    bool (*machine)(void *opaque, const void *fdt, size_t len, GError **errp);
    /* The RAM section's blocks, by index: their sizes in bytes. */
    bool (*ram_start)(void *opaque, uint32_t nblocks, const uint64_t *sizes,
                      GError **errp);
    /*
     * For a data record: where to put its npages * 4096 bytes (read there
     * directly). NULL with no error set: the parser skips the data.
     */
    void *(*ram_target)(void *opaque, const SavevmRamRecord *rec, GError **errp);
    /* After each RAM record; @data is the target, or NULL (zero or skipped). */
    bool (*ram_record)(void *opaque, const SavevmRamRecord *rec, const void *data,
                       GError **errp);
    bool (*ram_end)(void *opaque, GError **errp);
    /* A device record; @data is valid during the call only. */
    bool (*device)(void *opaque, const char *name, uint32_t instance,
                   uint32_t version, const uint8_t *data, size_t len,
                   uint64_t stream_offset, GError **errp);
    /* A record skipped because it is optional and unknown (or padding). */
    void (*skipped)(void *opaque, uint32_t type, uint32_t flags, uint64_t len,
                    uint64_t stream_offset);
    /* The footer, after its checksum and length were verified. */
    bool (*footer)(void *opaque, uint64_t stream_length, uint64_t checksum,
                   GError **errp);
} SavevmParseOps;

/*
 * Parse a whole stream from @f. Errors name the offset and the nature of the
 * first problem ("corrupt stream at offset 4128: RAM record reaches past the
 * end of block 0 'pc.ram'", "stream truncated at offset ...", "checksum
 * mismatch: ...").
 */
bool savevm_parse(StreamFile *f, const SavevmParseOps *ops, void *opaque,
                  GError **errp);

/*
 * Parse device records (DEVC, and padding or optional records) until the end
 * of @f: the device section of a page-aligned image, which keeps it apart
 * from the pages. Only @ops->device and @ops->skipped are called.
 */
bool savevm_parse_devices(StreamFile *f, const SavevmParseOps *ops, void *opaque,
                          GError **errp);

/* "MACH" for a record type; the caller frees it. Non-printable bytes as \xNN. */
char *savevm_record_type_name(uint32_t type);

/* Machine description accessors (for frostvm-img and the loader). */

/* A string property of node @path, or NULL. */
const char *savevm_fdt_get_string(const void *fdt, const char *path,
                                  const char *prop);
/* A u32 (4-byte) or u64 (8-byte) property of node @path; false if absent or malformed. */
bool savevm_fdt_get_u64(const void *fdt, const char *path, const char *prop,
                        uint64_t *value);

#endif
