/* SPDX-License-Identifier: GPL-2.0-or-later */
/* An image's identity (UUID, digest) and its base's, in streams and page-aligned images alike. */
#ifndef MIGRATION_IMAGE_IDENTITY_H
#define MIGRATION_IMAGE_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

/*
 * Every image frostvm writes has a random UUID; an incremental image also
 * names its base by the base's UUID and digest, and records where the base
 * was (a path, relative to the image's directory unless absolute). The
 * digest is the image's fingerprint: a stream's footer checksum (over every
 * byte), a page-aligned image's header digest (over its metadata, which
 * carries each page's checksum through the tables' checksums). The byte
 * layouts are in docs/devel/migration-stream.md ("Image identity").
 */
#define IMAGE_UUID_SIZE 16
/* Longest base path an image records (it fits the page-aligned header page). */
#define IMAGE_BASE_PATH_MAX 3900u
/* Longest chain a reader follows: deeper is a loop or a mistake. */
#define IMAGE_CHAIN_MAX 256u

typedef struct ImageIdentity {
    bool page_aligned;          /* a mapped-ram image, not a stream */
    bool has_uuid;              /* false: a stream written before identities existed */
    uint8_t uuid[IMAGE_UUID_SIZE];
    bool has_base;              /* incremental: pages not in it come from the base */
    uint8_t base_uuid[IMAGE_UUID_SIZE];
    uint64_t base_digest;
    char *base_path;            /* as recorded (NULL without a base) */
    uint64_t digest;            /* as the image records it (verified only by a full read) */
    uint64_t length;            /* bytes */
} ImageIdentity;

/* A fresh random (version 4) UUID. */
void image_uuid_generate(uint8_t out[IMAGE_UUID_SIZE]);

/* "1b4e28ba-2fa1-41d2-883f-0016d3cca427"; the caller frees it. */
char *image_uuid_string(const uint8_t uuid[IMAGE_UUID_SIZE]);

/* Free what @id owns and zero it. */
void image_identity_clear(ImageIdentity *id);

/*
 * One link of a chain: is the base the image an increment was taken on
 * (@recorded_uuid), and is it unchanged since (@recorded_digest)? The errors
 * say "it ..."; callers prefix which base of which image.
 */
bool image_link_check_uuid(const uint8_t base_uuid[IMAGE_UUID_SIZE],
                           const uint8_t recorded_uuid[IMAGE_UUID_SIZE], GError **errp);
bool image_link_check_digest(uint64_t base_digest, uint64_t recorded_digest, GError **errp);

/*
 * The payload of a stream's IDNT record for @id (uuid, base, base path),
 * appended to @out.
 */
void image_identity_encode_record(const ImageIdentity *id, GByteArray *out);

/*
 * Decode an IDNT record's payload into @id (uuid, base fields). False with
 * @errp naming what is malformed.
 */
bool image_identity_decode_record(ImageIdentity *id, const uint8_t *payload, size_t len,
                                  GError **errp);

/*
 * Read the identity of the image file @path without reading its pages: a
 * stream's header, its IDNT record and its footer; a page-aligned image's
 * header. The digest is the one the image records; whether the bytes still
 * give it is only known after a full read (image_identity_verify()).
 */
bool image_identity_read(const char *path, ImageIdentity *id, GError **errp);

/*
 * Read all of @path and check it gives the digest it records (a stream's
 * checksum, a page-aligned image's metadata and every page's checksum).
 */
bool image_identity_verify(const char *path, GError **errp);

/*
 * Where the base @recorded of the image @image_path is: @recorded itself
 * when absolute, else relative to @image_path's directory (the current
 * directory when @image_path is NULL). The caller frees it.
 */
char *image_identity_resolve_base(const char *image_path, const char *recorded);

/*
 * The path to record in an image at @image_path for its base at @base_path
 * (both as the user gave them, relative to the current directory): relative
 * to the image's directory when both are relative, so a chain moved as a
 * whole still finds its bases; absolute otherwise. The caller frees it.
 */
char *image_identity_relative_base(const char *image_path, const char *base_path);

#endif
