/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Restoring a chain of incremental images: finding each base, checking each link, loading or attaching the layers. */
#include "migration/restore-chain.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "migration/mapped-ram.h"
#include "migration/savevm.h"
#include "util/error.h"

char *restore_chain_base_path(const char *image_path, const char *recorded, const char *override)
{
    if (override && *override) {
        return g_strdup(override);
    }
    return image_identity_resolve_base(image_path, recorded);
}

/* "(recorded as 'x' in 'y')" or "(given by restore-base)": where a base path came from. */
static char *base_origin(const char *recorded, const char *override)
{
    if (override && *override) {
        return g_strdup("(given by restore-base)");
    }
    if (g_path_is_absolute(recorded)) {
        return g_strdup_printf("(recorded as '%s')", recorded);
    }
    return g_strdup_printf("(recorded as '%s', relative to the image's directory)", recorded);
}

/* The base at @path must be there and be a regular file; the error names both images. */
static bool base_exists(const char *image, const char *path, const char *recorded,
                        const char *override, GError **errp)
{
    struct stat st;
    g_autofree char *origin = base_origin(recorded, override);

    if (stat(path, &st) < 0) {
        error_setg(errp, "the base of image '%s' is missing: '%s' %s: %s", image, path, origin,
                   g_strerror(errno));
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        error_setg(errp, "the base of image '%s' is not an image file: '%s' %s", image, path,
                   origin);
        return false;
    }
    return true;
}

bool restore_chain_open_mapped(MappedRamImage *img, const char *override, GError **errp)
{
    MappedRamImage *layers[IMAGE_CHAIN_MAX];
    unsigned n = 0;

    /* Open downwards until a flat image, then attach upwards (composites build on the base's). */
    layers[n++] = img;
    while (layers[n - 1]->h.layout_flags & MAPPED_RAM_LAYOUT_HAS_BASE) {
        MappedRamImage *top = layers[n - 1];
        const char *ov = n == 1 ? override : NULL;
        g_autofree char *path = restore_chain_base_path(top->path, top->h.base_path, ov);
        MappedRamImage *base;

        if (n == IMAGE_CHAIN_MAX) {
            error_setg(errp, "image '%s' has a chain of more than %u images (a loop?)",
                       img->path, IMAGE_CHAIN_MAX);
            goto fail;
        }
        if (!base_exists(top->path, path, top->h.base_path, ov, errp)) {
            goto fail;
        }
        base = mapped_ram_image_open(path, -1, errp);
        if (!base) {
            error_prefix(errp, "the base '%s' of image '%s' cannot be used: ", path, top->path);
            goto fail;
        }
        layers[n++] = base;
        /* Link check now, so the error names this link and not a later one. */
        if (memcmp(base->h.uuid, top->h.base_uuid, MAPPED_RAM_UUID_SIZE) ||
            base->h.digest != top->h.base_digest) {
            break;
        }
    }
    for (unsigned i = n - 1; i > 0; i--) {
        MappedRamImage *base = layers[i];

        layers[i] = NULL;
        if (!mapped_ram_image_attach_base(layers[i - 1], base, errp)) {
            n = i;
            goto fail;
        }
    }
    return true;

fail:
    for (unsigned i = 1; i < n; i++) {
        mapped_ram_image_close(layers[i]);
    }
    return false;
}

bool restore_chain_load_stream_bases(Machine *m, const char *image_path, const ImageIdentity *id,
                                     const char *override, unsigned depth, GError **errp)
{
    const char *image = image_path ? image_path : "(the incoming stream)";
    g_autofree char *path = restore_chain_base_path(image_path, id->base_path, override);
    uint8_t head[SAVEVM_HEADER_SIZE];
    FILE *fp;
    bool mapped;

    if (depth > IMAGE_CHAIN_MAX) {
        error_setg(errp, "image '%s' has a chain of more than %u images (a loop?)", image,
                   IMAGE_CHAIN_MAX);
        return false;
    }
    if (!base_exists(image, path, id->base_path, override, errp)) {
        return false;
    }
    fp = fopen(path, "rb");
    mapped = fp && fread(head, 1, sizeof(head), fp) == sizeof(head) &&
             mapped_ram_is_image_header(head, sizeof(head));
    if (fp) {
        fclose(fp);
    }
    if (mapped) {
        error_setg(errp, "the base '%s' of stream image '%s' is a page-aligned image: a "
                   "chain keeps one layout (convert the chain's images alike)", path, image);
        return false;
    }
    if (!savevm_load_base(m, path, id, depth, errp)) {
        error_prefix(errp, "the base '%s' of image '%s' cannot be used: ", path, image);
        return false;
    }
    return true;
}
