/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Eager restore of a page-aligned image: every present page read and checked before the guest runs. */
#include "migration/restore/restore-internal.h"

#include "system/machine.h"

/* Pages per read: large enough for the disk, small enough to stay in the cache. */
#define EAGER_CHUNK_PAGES 512u

bool restore_eager_load(RestoreState *r, GError **errp)
{
    MappedRamImage *img = r->img;

    for (uint32_t i = 0; i < img->h.nblocks; i++) {
        RamBlock *b = g_ptr_array_index(r->m->ram_blocks, i);
        uint64_t page = 0, n;

        /*
         * Straight into guest RAM: the guest does not run yet, and on a
         * failure it never will. Absent pages stay as discarded: zero.
         */
        while ((n = mapped_ram_image_next_run(img, i, &page, EAGER_CHUNK_PAGES))) {
            if (!mapped_ram_image_read(img, i, page, (uint32_t)n,
                                       b->host + page * MAPPED_RAM_PAGE_SIZE, errp)) {
                return false;
            }
            restore_progress(r, n);
            page += n;
        }
    }
    return true;
}
