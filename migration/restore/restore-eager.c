/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Eager restore of a page-aligned image: every present page read and checked before the guest runs. */
#include "migration/restore/restore-internal.h"

#include "system/machine.h"
#include "system/ram-prefault.h"

/* Pages per read: large enough for the disk, small enough to stay in the cache. */
#define EAGER_CHUNK_PAGES 512u

bool restore_eager_load(RestoreState *r, GError **errp)
{
    MappedRamImage *img = r->img;
    RamPrefault *pf = ram_prefault_start(RAM_PREFAULT_LEAD);
    bool ok = true;

    for (uint32_t i = 0; ok && i < img->h.nblocks; i++) {
        RamBlock *b = g_ptr_array_index(r->m->ram_blocks, i);
        uint64_t page = 0, run;

        /*
         * Straight into guest RAM: the guest does not run yet, and on a
         * failure it never will. Absent pages stay as discarded: zero. The
         * helper faults in the rest of the run while a chunk is read.
         */
        while (ok && (run = mapped_ram_image_next_run(img, i, &page, UINT64_MAX))) {
            for (uint64_t done = 0; ok && done < run;) {
                uint32_t n = (uint32_t)MIN(run - done, EAGER_CHUNK_PAGES);
                uint8_t *dst = b->host + (page + done) * MAPPED_RAM_PAGE_SIZE;

                ram_prefault_next(pf, dst, (uint64_t)n * MAPPED_RAM_PAGE_SIZE,
                                  (run - done - n) * MAPPED_RAM_PAGE_SIZE);
                ok = mapped_ram_image_read(img, i, page + done, n, dst, errp);
                if (ok) {
                    restore_progress(r, n);
                    done += n;
                }
            }
            page += run;
        }
    }
    ram_prefault_stop(pf);
    return ok;
}
