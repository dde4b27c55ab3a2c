/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Chains of incremental images: finding each base, verifying each link, reading the composite. */
#ifndef MIGRATION_RESTORE_CHAIN_H
#define MIGRATION_RESTORE_CHAIN_H

#include <stdbool.h>
#include <glib.h>

#include "migration/image-identity.h"

typedef struct Machine Machine;
typedef struct MappedRamImage MappedRamImage;

/*
 * Where the base of the image at @image_path is: @override when it is not
 * NULL or "" (relative to the current directory), else the path the image
 * recorded (@recorded), relative to the image's directory unless absolute.
 * The caller frees it.
 */
char *restore_chain_base_path(const char *image_path, const char *recorded, const char *override);

/*
 * Open the bases of the incremental page-aligned image @img, oldest last,
 * and attach them (mapped_ram_image_attach_base()), checking every link:
 * each base must exist, be page-aligned, carry the UUID and digest its
 * increment names and have the same RAM blocks. @override (may be NULL)
 * replaces the path @img records for its own base. Errors name the image
 * and the base at fault ("the base 'a.img' of image 'b.img' is missing:
 * ...").
 */
bool restore_chain_open_mapped(MappedRamImage *img, const char *override, GError **errp);

/*
 * Load into @m's RAM the base chain of the incremental stream @id read from
 * @image_path (NULL: a pipe or socket; relative paths are then taken from
 * the current directory): each base's pages, oldest first, each base
 * parsed whole (its checksum is its digest) and checked against what its
 * increment names. @depth counts the links so far.
 */
bool restore_chain_load_stream_bases(Machine *m, const char *image_path, const ImageIdentity *id,
                                   const char *override, unsigned depth, GError **errp);

#endif
