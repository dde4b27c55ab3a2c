/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Page-aligned images and the machine: a writer for its RAM blocks, the machine check and device load on restore. */
#include "migration/mapped-ram.h"

#include <inttypes.h>
#include <libfdt.h>
#include <string.h>

#include "migration/channel.h"
#include "migration/savevm.h"
#include "migration/stream/savevm-internal.h"
#include "system/machine.h"
#include "util/error.h"

MappedRamWriter *mapped_ram_writer_for_machine(Machine *m, MigrationChannel *ch,
                                               uint32_t stream_flags, GError **errp)
{
    g_autoptr(GByteArray) desc = savevm_machine_describe(m, errp);
    uint64_t sizes[MAPPED_RAM_MAX_BLOCKS];

    if (!desc) {
        return NULL;
    }
    if (m->ram_blocks->len > MAPPED_RAM_MAX_BLOCKS) {
        error_setg(errp, "mapped-ram: the machine has %u RAM blocks, at most %u fit",
                   m->ram_blocks->len, MAPPED_RAM_MAX_BLOCKS);
        return NULL;
    }
    for (guint i = 0; i < m->ram_blocks->len; i++) {
        RamBlock *b = g_ptr_array_index(m->ram_blocks, i);
        sizes[i] = b->size;
    }
    return mapped_ram_writer_new(channel_fd(ch), channel_uri(ch), stream_flags,
                                 m->ram_blocks->len, sizes, desc->data, desc->len, errp);
}

bool mapped_ram_image_check_machine(MappedRamImage *img, Machine *m, GError **errp)
{
    if (img->h.nblocks != m->ram_blocks->len) {
        error_setg(errp, "the image has %u RAM blocks, this machine %u", img->h.nblocks,
                   m->ram_blocks->len);
        return false;
    }
    /* The digest catches accidents; the tree is still checked before anyone walks it. */
    if (fdt_check_header(img->machine) || fdt_totalsize(img->machine) != img->h.machine_len ||
        fdt_check_full(img->machine, img->h.machine_len)) {
        error_setg(errp, "corrupt page-aligned image %s: the machine description is not a "
                   "valid device tree", img->path);
        return false;
    }
    if (!savevm_machine_check(m, img->machine, errp)) {
        return false;
    }
    for (guint i = 0; i < m->ram_blocks->len; i++) {
        RamBlock *b = g_ptr_array_index(m->ram_blocks, i);
        if (b->size != img->h.blocks[i].size) {
            error_setg(errp, "the image's RAM block %u has %" PRIu64 " bytes, this "
                       "machine's '%s' %" PRIu64, i, img->h.blocks[i].size, b->name, b->size);
            return false;
        }
    }
    return true;
}

bool mapped_ram_image_load_devices(MappedRamImage *img, Machine *m, SavevmLoadInfo *info,
                                   GError **errp)
{
    info->version = SAVEVM_VERSION;
    info->stream_flags = img->h.stream_flags;
    info->stream_length = img->h.image_len;
    info->has_uuid = true;
    info->page_aligned = true;
    memcpy(info->uuid, img->h.uuid, IMAGE_UUID_SIZE);
    /* Checked at the open; each page against its checksum as it is read. */
    info->digest = img->h.digest;
    return savevm_load_devices(m, img->devices, img->h.devices_len, info, errp);
}
