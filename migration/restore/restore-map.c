/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Map-mode restore: the image's page regions mapped privately over guest RAM,
 * so the guest runs at once and clones of one image share its page cache
 * (copy-on-write); a verifier then checks every present page in the background.
 */
#include "migration/restore/restore-internal.h"

#include <errno.h>
#include <sys/mman.h>

#include "system/machine.h"
#include "system/memory-backend.h"
#include "util/error.h"

#define MAP_VERIFY_PAGES 256u

bool restore_map_check(RestoreState *r, GError **errp)
{
    for (guint i = 0; i < r->m->ram_blocks->len; i++) {
        RamBlock *b = g_ptr_array_index(r->m->ram_blocks, i);
        MemoryBackend *be = b->backend;

        if (be && (be->backing != MEMORY_BACKING_ANONYMOUS || be->opts.share)) {
            g_autofree char *desc = memory_backend_describe(be);
            error_setg(errp, "restore-mode map: RAM block '%s' (%s) is not private anonymous "
                       "memory; only that can be replaced by a private mapping of the image "
                       "(use restore-mode lazy or eager)", b->name, desc);
            return false;
        }
    }
    return true;
}

/*
 * The guest may already run on the mapped pages: a bad page found here was
 * perhaps read. The VM stops all the same, and the error says so.
 */
static gpointer map_verify_thread(gpointer opaque)
{
    RestoreState *r = opaque;
    MappedRamImage *img = r->img;
    g_autofree uint8_t *buf = g_malloc((size_t)MAP_VERIFY_PAGES * MAPPED_RAM_PAGE_SIZE);
    GError *err = NULL;

    for (uint32_t bi = 0; bi < img->h.nblocks; bi++) {
        uint64_t page = 0, n;

        while ((n = mapped_ram_image_next_run(img, bi, &page, MAP_VERIFY_PAGES))) {
            if (restore_should_stop(r)) {
                return NULL;
            }
            if (!mapped_ram_image_read(img, bi, page, (uint32_t)n, buf, &err)) {
                error_prefix(&err, "restore-mode map: the guest maps this image and may "
                             "have read the page: ");
                restore_fill_failed(r, err);
                return NULL;
            }
            restore_progress(r, n);
            page += n;
        }
    }
    restore_fill_done(r);
    return NULL;
}

bool restore_map_start(RestoreState *r, GError **errp)
{
    MappedRamImage *img = r->img;

    for (uint32_t i = 0; i < img->h.nblocks; i++) {
        RamBlock *b = g_ptr_array_index(r->m->ram_blocks, i);
        /* Same address: the accelerator's memory slots keep pointing at it. */
        void *p = mmap(b->host, b->size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, img->fd,
                       (off_t)img->h.blocks[i].pages_offset);

        if (p == MAP_FAILED) {
            error_setg_errno(errp, errno, "restore-mode map: cannot map %s over RAM block '%s'",
                             img->path, b->name);
            return false;
        }
    }
    r->fill_thread = g_thread_new("restore-verify", map_verify_thread, r);
    return true;
}
