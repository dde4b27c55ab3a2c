/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Map-mode restore: the image's page regions mapped privately over guest RAM,
 * so the guest runs at once and clones of one image share its page cache
 * (copy-on-write); a verifier then checks every present page in the background.
 */
#include "migration/restore/restore-internal.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "system/machine.h"
#include "system/memory-backend.h"
#include "system/runstate.h"
#include "util/bitmap.h"
#include "util/error.h"
#include "util/huge-map.h"
#include "util/pagemap.h"
#include "util/zero-page.h"

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
                if (__atomic_load_n(&r->lease_state, __ATOMIC_ACQUIRE) ==
                    RESTORE_LEASE_DETACHED) {
                    /* The image changed after RAM was copied off it: nothing left to check. */
                    g_warning("restore-mode map: %s changed before it was verified; guest "
                              "RAM holds its pages as they were, unverified from block %u "
                              "page %" G_GUINT64_FORMAT " on", img->path, bi, page);
                    g_clear_error(&err);
                    restore_fill_done(r);
                    return NULL;
                }
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
    /* A lease broken meanwhile may detach guest RAM now. */
    g_mutex_lock(&r->lock);
    r->map_ready = true;
    g_cond_broadcast(&r->cond);
    g_mutex_unlock(&r->lock);
    r->fill_thread = g_thread_new("restore-verify", map_verify_thread, r);
    return true;
}

/*
 * Block @bi: copy what holds data into @copy, then move @copy over guest
 * RAM. A page holds data if the image has it (whether or not the guest
 * touched it yet) or the guest's mapping has it populated (read from the
 * file, or written: then it is the guest's own copy); zero pages stay
 * unpopulated. The vCPUs are parked.
 */
static bool map_detach_block(RestoreState *r, uint32_t bi, int pagemap_fd, GError **errp)
{
    RamBlock *b = g_ptr_array_index(r->m->ram_blocks, bi);
    uint64_t npages = b->size / MAPPED_RAM_PAGE_SIZE;
    g_autofree unsigned long *populated = bitmap_new(npages);
    PagemapMaps maps = { .populated = populated };
    uint8_t *copy;
    int ret;

    ret = pagemap_walk(pagemap_fd, b->host, b->size, &maps, false, NULL);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "reading the page table of RAM block '%s'", b->name);
        return false;
    }
    /* At a 2 MiB boundary, so that mremap() moves its huge pages whole. */
    copy = huge_map_anonymous(b->size);
    if (!copy) {
        error_setg_errno(errp, errno, "no memory for a copy of RAM block '%s'", b->name);
        return false;
    }
    if (b->backend) {
        memory_backend_advise(b->backend, copy, b->size);
    }
    for (uint64_t p = 0; p < npages; p++) {
        const uint8_t *src = b->host + p * MAPPED_RAM_PAGE_SIZE;

        if ((bitmap_test_bit(populated, p) || mapped_ram_image_present(r->img, bi, p)) &&
            !buffer_is_zero(src, MAPPED_RAM_PAGE_SIZE)) {
            memcpy(copy + p * MAPPED_RAM_PAGE_SIZE, src, MAPPED_RAM_PAGE_SIZE);
        }
    }
    /* Same address: the accelerator's memory slots and every pointer stay valid. */
    if (mremap(copy, b->size, b->size, MREMAP_MAYMOVE | MREMAP_FIXED, b->host) == MAP_FAILED) {
        error_setg_errno(errp, errno, "cannot move the copy of RAM block '%s' in place",
                         b->name);
        munmap(copy, b->size);
        return false;
    }
    return true;
}

typedef struct MapDetach {
    RestoreState *r;
    int pagemap_fd;
    GError *err;
} MapDetach;

static void map_detach_parked(void *opaque)
{
    MapDetach *d = opaque;
    uint64_t start = migration_now_us();

    for (uint32_t bi = 0; bi < d->r->img->h.nblocks && !d->err; bi++) {
        map_detach_block(d->r, bi, d->pagemap_fd, &d->err);
    }
    __atomic_store_n(&d->r->detach_pause_us, migration_now_us() - start, __ATOMIC_RELAXED);
}

bool restore_map_detach(RestoreState *r, GError **errp)
{
    MapDetach d = { .r = r, .pagemap_fd = pagemap_open() };

    if (d.pagemap_fd < 0) {
        error_setg_errno(errp, -d.pagemap_fd, "restore-mode map: cannot detach guest RAM "
                         "from %s: /proc/self/pagemap", r->img->path);
        return false;
    }
    /* The guest must not write a page between its copy and the swap: it would be lost. */
    runstate_with_vcpus_parked(r->m, map_detach_parked, &d);
    close(d.pagemap_fd);
    if (d.err) {
        g_propagate_prefixed_error(errp, d.err, "restore-mode map: cannot detach guest RAM "
                                   "from %s: ", r->img->path);
        return false;
    }
    return true;
}
