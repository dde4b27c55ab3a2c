/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What the files of frostvm-img share: exit codes, printing helpers, the page-aligned commands. */
#ifndef TOOLS_FROSTVM_IMG_H
#define TOOLS_FROSTVM_IMG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

/* qemu-img check's exit codes: 2 means the image is corrupt. */
#define EXIT_IMAGE_ERROR 1
#define EXIT_CORRUPT 2

/* "1.5 MiB"; the caller frees it. */
char *human_size(uint64_t bytes);

/* Machine description properties ("?" / 0 when absent). */
const char *fdt_str(const void *fdt, const char *path, const char *prop);
uint64_t fdt_u64(const void *fdt, const char *path, const char *prop);

/* Call @fn for each child of @parent with its full path. */
void fdt_each_child(const void *fdt, const char *parent,
                    void (*fn)(const void *fdt, const char *path, void *opaque),
                    void *opaque);

/* "background-snapshot precopy" for stream flags, in @buf. */
const char *flag_names(uint32_t flags, char *buf, size_t len);

typedef struct _JsonBuilder JsonBuilder;

/* Members of a JSON object under construction. */
void json_put_u64(JsonBuilder *b, const char *name, uint64_t v);
void json_put_str(JsonBuilder *b, const char *name, const char *v);

/* Print the builder's finished document, pretty, on stdout. */
void img_print_json(JsonBuilder *b);

/* A buffer of at least @need bytes in *@buf (grown, contents dropped). */
void *img_scratch(uint8_t **buf, size_t *size, size_t need);

/* Append a DEVC record (header, instance, version, name, state) to @out. */
void img_put_device_record(GByteArray *out, const char *name, uint32_t instance,
                           uint32_t version, const uint8_t *data, size_t len);

/* The "machine:" lines of info. */
void img_print_machine(const void *fdt);

/* frostvm-img-mapped.c: the commands for page-aligned images */

/* Whether @path starts like a page-aligned image (a file that cannot be read: false). */
bool img_is_mapped(const char *path);
int img_mapped_info(const char *path, const char *output);
int img_mapped_check(const char *path);
int img_mapped_dump_ram(const char *path, const char *out_path);

/* frostvm-img-convert.c: stream to page-aligned, or page-aligned to stream. */
int img_convert(const char *src, const char *dst);

typedef struct StreamFile StreamFile;
typedef struct MigrationChannel MigrationChannel;

/*
 * End a stream written after its RAM records (when @ok): the RAM section
 * end, the device records, the footer; free @f and close @ch, which
 * publishes the file only if all went well. Returns whether it did.
 */
bool img_stream_finish(StreamFile *f, MigrationChannel *ch, bool ok, const void *devices,
                       size_t devices_len, GError **errp);

/* frostvm-img-chain.c: chains of incremental images (either layout) */

/* The "chain:" lines of info: each image from @path down to its flat base. */
void img_chain_print(const char *path);
/* check: every image of the chain read whole, every link verified. */
int img_chain_check(const char *path);
/* dump-ram of the chain's composite memory. */
int img_chain_dump_ram(const char *path, const char *out_path);
/*
 * commit: fold @path into its base (the base's file replaced by one image
 * holding both, on the base's own base), or, with @out_path, write the
 * whole chain as one flat image there.
 */
int img_commit(const char *path, const char *out_path);

#endif
