/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What the files of frostvm-img share: exit codes, printing helpers, the page-aligned commands. */
#ifndef TOOLS_FROSTVM_IMG_H
#define TOOLS_FROSTVM_IMG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

#endif
