/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Epoch tracking: a long-lived synchronous userfaultfd that records every page written since each snapshot's instant. */
#include "migration/epoch-tracking.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "migration/snapshot/snapshot-internal.h"
#include "migration/write-tracking.h"
#include "system/machine.h"
#include "system/memory-backend.h"
#include "system/shared-write.h"
#include "util/bitmap.h"
#include "util/error.h"
#include "util/pagemap.h"

/*
 * A fault right after pages the guest wrote in this epoch (a sequential
 * writer) releases as many pages again ahead of it, recorded as written: on
 * this machine a synchronous fault costs about 50 us, so a writer sweeping
 * memory pays it once per run instead of once per page (measured 5 us per
 * page with 32-page runs), and the run doubles while the writer keeps
 * running off its end. Sized by what the writer released in a row, a run
 * shorter than 256 pages never holds more unwritten pages than the written
 * ones before it: a writer of a few pages (a record, a control block) costs
 * the next increment a few pages, not a fixed run. From 256 pages on, a run
 * ends at the next 2 MiB boundary, so that a long sweep releases whole huge
 * pages: a partial release splits a transparent huge page for good
 * (tracking protects it again at every instant), and a guest sweeping 4
 * KiB-mapped memory ran 25% slower here than on huge pages. At most 511
 * unwritten pages at the end of such a run are then saved by the next
 * increment: a bounded excess, never a miss.
 */
#define EPOCH_RELEASE_AHEAD_ALIGNED 256u
#define EPOCH_RELEASE_REGION_PAGES 512u     /* 2 MiB: a transparent huge page */
/*
 * Removing protection from 4 KiB mappings makes each entry writable again:
 * about 1.7 us a page here, 0.9 ms for a 2 MiB run, all of it the faulting
 * vCPU's wait when done in one call. A long run is released in pieces
 * instead, the first this long and each next one twice the last: the vCPU
 * goes on after the first, and writes through it slower than the rest is
 * released. A run that is a huge page mapped whole is released in one call
 * (cheap, one entry; a piece would split it).
 */
#define EPOCH_RELEASE_FIRST_PIECE 32u
/* The chain keeps this many images; older ones can no longer be bases. */
#define EPOCH_CHAIN_MAX 64u

typedef struct EpochBlock {
    RamBlock *rb;
    uint64_t pages;
    uint32_t group_pages;       /* backing page in 4 KiB pages: protection changes in these */
    unsigned long *written;     /* atomic: written (released) in the current epoch */
    unsigned long *open;        /* atomic: released since the last protect pass */
    bool shared;                /* shmem mapped shared: releases populate for writing */
} EpochBlock;

typedef struct EpochImage {
    uint8_t uuid[IMAGE_UUID_SIZE];
    uint64_t digest;
    bool page_aligned;
    bool have_file;             /* the file below is known to hold this image */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    unsigned long **since;      /* per block: written since this image's instant */
} EpochImage;

struct EpochTracking {
    GPtrArray *blocks;
    unsigned nr_blocks;
    EpochBlock *eb;
    WriteTracking *wt;
    /*
     * Held while a fault is served (record, unprotect, mark open) and across
     * the instant: a release is either wholly before the instant (then the
     * instant protects the page again, or copies it and counts it written in
     * the new epoch) or wholly after (then it counts in the new epoch). Also
     * guards @snapshot.
     */
    GMutex lock;
    BackgroundSnapshot *snapshot;
    GPtrArray *images;          /* EpochImage *, oldest first */
    bool started;
    int pagemap_fd;             /* asks whether a run is a huge mapping; negative: no pieces */
    char *lost;                 /* under lock */
    uint64_t faults;            /* atomic */
    /*
     * Shared memory: a release populates its pages for writing
     * (epoch_release_hook()); populating a page a prearm protects meanwhile
     * would wait for the fault thread, which is the one populating. Each
     * side sets its flag, then reads the other's: a populate goes ahead only
     * while no prearm runs, and a prearm waits for one under way.
     */
    int populating;             /* atomic */
    int prearm_active;          /* atomic */
    bool populate;              /* under lock: false once populating failed, or tracking is lost */
};

static void epoch_image_free(gpointer p)
{
    EpochImage *img = p;

    for (unsigned i = 0; img->since && img->since[i]; i++) {
        bitmap_free(img->since[i]);
    }
    g_free(img->since);
    g_free(img);
}

/*
 * Tracked shared memory stays registered, so the kernel keeps its pages
 * read-only after a release, and the guest's next write to each would take a
 * page fault in the kernel after the userfaultfd one: resolve those faults
 * now (shared_write_populate(), pages in memory only). Called under the
 * lock (no instant meanwhile), unless a prearm runs (it could protect a
 * page of the range: see the flags).
 */
static void epoch_populate(EpochTracking *et, EpochBlock *eb, uint64_t offset, uint64_t len)
{
    __atomic_store_n(&et->populating, 1, __ATOMIC_SEQ_CST);
    if (!__atomic_load_n(&et->prearm_active, __ATOMIC_SEQ_CST) &&
        shared_write_populate(eb->rb->host + offset, len) < 0) {
        et->populate = false;
    }
    __atomic_store_n(&et->populating, 0, __ATOMIC_RELEASE);
}

/* Record pages of a range as written before protection leaves them, and as open after. */
static void epoch_release_hook(void *opaque, unsigned block_index, uint64_t offset,
                               uint64_t len, bool done)
{
    EpochTracking *et = opaque;
    EpochBlock *eb = &et->eb[block_index];
    uint64_t first = offset / SNAPSHOT_PAGE_SIZE;
    uint64_t n = len / SNAPSHOT_PAGE_SIZE;

    if (!done) {
        bitmap_set_range_atomic(eb->written, first, n);
        /* Visible before the page is writable. */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
    } else {
        if (eb->shared && et->populate) {
            epoch_populate(et, eb, offset, len);
        }
        /*
         * Only now: a prearm takes open pages without the lock, then
         * protects them; a bit it could take before the unprotect would
         * have it protect the page first, then see it released for good.
         */
        bitmap_set_range_atomic(eb->open, first, n);
    }
}

/* Pages of @map (block @block_index) left writable: written in this epoch, open, as released. */
static void epoch_release_hook_maps(EpochTracking *et, unsigned block_index,
                                    const unsigned long *map)
{
    EpochBlock *eb = &et->eb[block_index];

    bitmap_or_atomic(eb->written, map, eb->pages);
    bitmap_or_atomic(eb->open, map, eb->pages);
    /* As in epoch_release_hook(): visible before the guest runs on. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/*
 * Pages to release for a write fault in the backing page at @first: that
 * one, or as many as were released in a row right before it since the last
 * protect pass (a sequential writer), to the next huge-page boundary once
 * that is long.
 */
static uint64_t epoch_release_len(EpochBlock *eb, uint64_t first)
{
    uint64_t g = eb->group_pages;
    /*
     * Counted in the open set, not the written one: a snapshot's early
     * protection takes it, so right after that only what the writer
     * released since counts, not pages it wrote earlier in the epoch (a
     * run sized by those went to the next 2 MiB boundary at once, and the
     * pause copied it: 117-466 pages where 65 had been).
     */
    uint64_t before = bitmap_count_set_before_atomic(eb->open, first,
                                                     EPOCH_RELEASE_AHEAD_ALIGNED);
    uint64_t n;

    if (before >= EPOCH_RELEASE_AHEAD_ALIGNED) {
        uint64_t region = MAX((uint64_t)EPOCH_RELEASE_REGION_PAGES, g);
        n = ((first / region) + 1) * region - first;
    } else {
        n = MAX(g, before / g * g);
    }
    return MIN(n, eb->pages - first);
}

/*
 * The first piece to release of a run of @n pages at @first: all of it,
 * or EPOCH_RELEASE_FIRST_PIECE pages when the run is long and on 4 KiB
 * mappings (then each next piece doubles).
 */
static uint64_t epoch_first_piece(EpochTracking *et, EpochBlock *eb, uint64_t first, uint64_t n)
{
    if (n <= EPOCH_RELEASE_FIRST_PIECE || eb->group_pages != 1 || et->pagemap_fd < 0) {
        return n;
    }
    if (first % EPOCH_RELEASE_REGION_PAGES == 0 && n >= EPOCH_RELEASE_REGION_PAGES) {
        unsigned long huge = 0;
        PagemapMaps maps = { .huge = &huge };

        /* Not known: one call, as a huge page needs. */
        if (pagemap_walk(et->pagemap_fd, eb->rb->host + first * SNAPSHOT_PAGE_SIZE,
                         EPOCH_RELEASE_REGION_PAGES * SNAPSHOT_PAGE_SIZE, &maps, false,
                         NULL) < 0 || (huge & 1)) {
            return n;
        }
    }
    return EPOCH_RELEASE_FIRST_PIECE;
}

/* Between snapshots: record and release the faulting page, or a run ahead of a sequential writer. */
static void epoch_release(EpochTracking *et, unsigned block_index, uint64_t page)
{
    EpochBlock *eb = &et->eb[block_index];
    uint64_t first = page & ~((uint64_t)eb->group_pages - 1);
    uint64_t n = epoch_release_len(eb, first);
    int ret = 0;

    for (uint64_t done = 0, piece = epoch_first_piece(et, eb, first, n); done < n && ret >= 0;
         done += piece, piece *= 2) {
        piece = MIN(piece, n - done);
        ret = write_tracking_unprotect(et->wt, block_index, (first + done) * SNAPSHOT_PAGE_SIZE,
                                       piece * SNAPSHOT_PAGE_SIZE);
    }
    if (ret < 0) {
        epoch_tracking_lose_locked(et, block_index, ret);
    }
}

void epoch_tracking_lose_locked(EpochTracking *et, unsigned block_index, int err)
{
    const char *name = et->eb[block_index].rb->name;

    /* The guest would stay blocked: let everything go, and say tracking is lost. */
    g_warning("incremental-snapshot: unprotecting RAM block '%s' failed: %s; "
              "write tracking is lost", name, g_strerror(-err));
    g_free(et->lost);
    et->lost = g_strdup_printf("unprotecting RAM block '%s' failed (%s)", name,
                               g_strerror(-err));
    et->populate = false;      /* not all of RAM now */
    for (unsigned i = 0; i < et->nr_blocks; i++) {
        write_tracking_unprotect(et->wt, i, 0, et->eb[i].rb->size);
    }
}

static void epoch_fault(void *opaque, unsigned block_index, uint64_t offset, uint64_t read_ns)
{
    EpochTracking *et = opaque;

    g_mutex_lock(&et->lock);
    if (et->snapshot) {
        /* The snapshot saves the page if it needs it; its unprotect records it. */
        snapshot_fault_handle(et->snapshot, block_index, offset, read_ns);
    } else {
        __atomic_fetch_add(&et->faults, 1, __ATOMIC_RELAXED);
        epoch_release(et, block_index, offset / SNAPSHOT_PAGE_SIZE);
    }
    g_mutex_unlock(&et->lock);
}

EpochTracking *epoch_tracking_new(GPtrArray *blocks, GError **errp)
{
    EpochTracking *et = g_new0(EpochTracking, 1);

    et->blocks = g_ptr_array_ref(blocks);
    et->nr_blocks = blocks->len;
    et->eb = g_new0(EpochBlock, blocks->len);
    et->images = g_ptr_array_new_with_free_func(epoch_image_free);
    g_mutex_init(&et->lock);
    et->populate = true;
    et->pagemap_fd = pagemap_open();
    if (et->pagemap_fd >= 0 && !pagemap_has_scan(et->pagemap_fd)) {
        /* Reading entries to ask about one region costs more than the pieces save. */
        close(et->pagemap_fd);
        et->pagemap_fd = -1;
    }
    for (unsigned i = 0; i < blocks->len; i++) {
        EpochBlock *eb = &et->eb[i];

        eb->rb = g_ptr_array_index(blocks, i);
        eb->pages = eb->rb->size / SNAPSHOT_PAGE_SIZE;
        eb->group_pages = MAX(eb->rb->page_size, SNAPSHOT_PAGE_SIZE) / SNAPSHOT_PAGE_SIZE;
        eb->written = bitmap_new(eb->pages);
        eb->open = bitmap_new(eb->pages);
        eb->shared = eb->rb->backend && eb->rb->backend->backing == MEMORY_BACKING_SHMEM &&
                     eb->rb->backend->opts.share;
        /* Nothing is protected yet: everything is open for the first prearm. */
        bitmap_set_range(eb->open, 0, eb->pages);
    }
    /* Never-touched pages too: their first write changes them (zero to data). */
    et->wt = write_tracking_new(blocks, true, errp);
    if (!et->wt) {
        error_prefix(errp, "incremental-snapshot: ");
        epoch_tracking_free(et);
        return NULL;
    }
    write_tracking_set_release_hook(et->wt, epoch_release_hook, et);
    if (!write_tracking_start_fault_thread(et->wt, epoch_fault, et, true, errp)) {
        epoch_tracking_free(et);
        return NULL;
    }
    return et;
}

void epoch_tracking_free(EpochTracking *et)
{
    if (!et) {
        return;
    }
    /* Unprotects everything and wakes any blocked writer. */
    write_tracking_free(et->wt);
    if (et->pagemap_fd >= 0) {
        close(et->pagemap_fd);
    }
    for (unsigned i = 0; i < et->nr_blocks; i++) {
        bitmap_free(et->eb[i].written);
        bitmap_free(et->eb[i].open);
    }
    g_free(et->eb);
    g_ptr_array_unref(et->images);
    g_ptr_array_unref(et->blocks);
    g_mutex_clear(&et->lock);
    g_free(et->lost);
    g_free(et);
}

WriteTracking *epoch_tracking_write_tracking(EpochTracking *et)
{
    return et->wt;
}

/*
 * Take the open set of block @b (clearing it) into @map; returns how many
 * pages. A bit is only ever set once its page is writable
 * (epoch_release_hook()), so protecting what was taken, after, leaves none
 * of it writable unseen, with or without et->lock (the prearm runs without
 * it, so faults are served meanwhile). bitmap_take_atomic() only reads the
 * many zero words (in the instant this is part of a snapshot's pause).
 */
static uint64_t epoch_take_open(EpochTracking *et, unsigned b, unsigned long *map)
{
    return bitmap_take_atomic(et->eb[b].open, map, et->eb[b].pages);
}

/* Protect again the pages set in @map (block @b), in runs of whole backing pages. */
static bool epoch_protect_taken(EpochTracking *et, unsigned b, const unsigned long *map,
                                GError **errp)
{
    EpochBlock *eb = &et->eb[b];
    uint64_t g = eb->group_pages;
    uint64_t page = 0;

    while ((page = bitmap_find_next_set(map, eb->pages, page)) < eb->pages) {
        uint64_t end = bitmap_find_next_zero(map, eb->pages, page);
        uint64_t first = page & ~(g - 1);
        uint64_t last = MIN(eb->pages, (end + g - 1) & ~(g - 1));
        int ret = write_tracking_protect(et->wt, b, first * SNAPSHOT_PAGE_SIZE,
                                         (last - first) * SNAPSHOT_PAGE_SIZE);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "incremental-snapshot: cannot write-protect "
                             "RAM block '%s' again", eb->rb->name);
            return false;
        }
        page = last;
    }
    return true;
}

/* Per block: @bs's opened maps, or (@bs NULL) new ones; free with epoch_maps_free(). */
static unsigned long **epoch_maps_new(EpochTracking *et, BackgroundSnapshot *bs)
{
    unsigned long **maps = g_new0(unsigned long *, et->nr_blocks);

    for (unsigned b = 0; b < et->nr_blocks; b++) {
        maps[b] = bs ? bs->blocks[b].opened : bitmap_new(et->eb[b].pages);
    }
    return maps;
}

static void epoch_maps_free(EpochTracking *et, BackgroundSnapshot *bs, unsigned long **maps)
{
    for (unsigned b = 0; !bs && b < et->nr_blocks; b++) {
        bitmap_free(maps[b]);
    }
    g_free(maps);
}

/*
 * Give back pages taken that a failed protect may have left writable: open
 * again, the next pass protects them (protecting a page twice is harmless).
 */
static void epoch_give_back(EpochTracking *et, unsigned b, const unsigned long *map)
{
    bitmap_or_atomic(et->eb[b].open, map, et->eb[b].pages);
}

bool epoch_tracking_prearm(EpochTracking *et, GError **errp)
{
    bool ok = true;

    /* No populate may be under way while pages get protected (see epoch_populate()). */
    __atomic_store_n(&et->prearm_active, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&et->populating, __ATOMIC_SEQ_CST)) {
        g_usleep(10);
    }

    for (unsigned b = 0; ok && b < et->nr_blocks; b++) {
        g_autofree unsigned long *map = bitmap_new(et->eb[b].pages);

        epoch_take_open(et, b, map);
        ok = epoch_protect_taken(et, b, map, errp);
        if (!ok) {
            epoch_give_back(et, b, map);
        }
    }
    __atomic_store_n(&et->prearm_active, 0, __ATOMIC_RELEASE);
    return ok;
}

static EpochImage *epoch_find(EpochTracking *et, const uint8_t *uuid)
{
    for (guint i = 0; i < et->images->len; i++) {
        EpochImage *img = g_ptr_array_index(et->images, i);
        if (!memcmp(img->uuid, uuid, IMAGE_UUID_SIZE)) {
            return img;
        }
    }
    return NULL;
}

bool epoch_tracking_instant(EpochTracking *et, BackgroundSnapshot *bs,
                            const uint8_t *base_uuid, GError **errp)
{
    EpochImage *base = NULL;
    bool ok = true;

    g_mutex_lock(&et->lock);
    /* The epoch that ends here goes into every image's record; the new one starts empty. */
    for (unsigned b = 0; b < et->nr_blocks; b++) {
        EpochBlock *eb = &et->eb[b];

        for (uint64_t w = 0; w < BITMAP_WORDS(eb->pages); w++) {
            /* Read first, as bitmap_take_atomic() does: most words are zero. */
            unsigned long bits = __atomic_load_n(&eb->written[w], __ATOMIC_RELAXED)
                                 ? __atomic_exchange_n(&eb->written[w], 0, __ATOMIC_ACQ_REL) : 0;

            for (guint i = 0; bits && i < et->images->len; i++) {
                EpochImage *img = g_ptr_array_index(et->images, i);
                img->since[b][w] |= bits;
            }
        }
    }
    et->started = true;
    if (base_uuid) {
        base = epoch_find(et, base_uuid);
        if (!base) {
            /* Checked before the pause; only a bug gets here. */
            error_setg(errp, "incremental-snapshot: the base left the epoch chain");
            ok = false;
        }
    }
    /*
     * What was released since the prearm (the guest writes there now) is
     * protected again, or, when @bs can copy it in the pause, left writable
     * and counted as written in the new epoch (the next prearm protects it).
     */
    unsigned long **open = epoch_maps_new(et, bs);
    g_autofree uint64_t *taken = g_new(uint64_t, et->nr_blocks);
    for (unsigned b = 0; b < et->nr_blocks; b++) {
        taken[b] = epoch_take_open(et, b, open[b]);
    }
    bool hot = ok && bs && snapshot_tracked_hot_fits(bs, taken);
    bool protected = true;
    for (unsigned b = 0; b < et->nr_blocks; b++) {
        if (hot) {
            epoch_release_hook_maps(et, b, open[b]);
        } else if (!protected) {
            epoch_give_back(et, b, open[b]);
        } else if (!epoch_protect_taken(et, b, open[b], ok ? errp : NULL)) {
            epoch_give_back(et, b, open[b]);
            g_free(et->lost);
            et->lost = g_strdup("write-protecting guest RAM at a snapshot's instant failed");
            protected = ok = false;
        }
    }
    epoch_maps_free(et, bs, open);
    if (ok && bs) {
        ok = snapshot_arm_tracked(bs, base ? base->since : NULL, hot, errp);
        if (ok) {
            et->snapshot = bs;
        }
    }
    g_mutex_unlock(&et->lock);
    return ok;
}

void epoch_tracking_detach(EpochTracking *et)
{
    g_mutex_lock(&et->lock);
    et->snapshot = NULL;
    g_mutex_unlock(&et->lock);
}

static bool stat_matches(const EpochImage *img, const struct stat *st)
{
    return img->have_file && img->dev == st->st_dev && img->ino == st->st_ino &&
           img->size == st->st_size && img->mtime.tv_sec == st->st_mtim.tv_sec &&
           img->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* @expect, when given: the file as it was when its bytes were read; another one is unknown. */
static void remember_file(EpochImage *img, const char *path, const struct stat *expect)
{
    struct stat st;

    img->have_file = path && stat(path, &st) == 0 && (!expect || same_file(&st, expect));
    if (img->have_file) {
        img->dev = st.st_dev;
        img->ino = st.st_ino;
        img->size = st.st_size;
        img->mtime = st.st_mtim;
    }
}

bool epoch_tracking_check_base(EpochTracking *et, const char *path, ImageIdentity *id,
                               bool *needs_verify, GError **errp)
{
    g_autofree char *uuid = NULL;
    EpochImage *img;
    struct stat st;
    bool ok = false;

    if (!image_identity_read(path, id, errp)) {
        error_prefix(errp, "snapshot-base: ");
        return false;
    }
    uuid = id->has_uuid ? image_uuid_string(id->uuid) : NULL;
    g_mutex_lock(&et->lock);
    if (et->lost) {
        error_setg(errp, "snapshot-base: write tracking was lost (%s): take a full snapshot "
                   "(snapshot-base \"\") to start a new epoch chain", et->lost);
    } else if (!et->started || !et->images->len) {
        error_setg(errp, "snapshot-base: no snapshot was taken since incremental-snapshot "
                   "was turned on: take a full snapshot first (snapshot-base \"\")");
    } else if (!id->has_uuid || !(img = epoch_find(et, id->uuid))) {
        error_setg(errp, "snapshot-base: '%s' (image %s) was not taken by this frostvm in "
                   "its current epoch chain (%u images since incremental-snapshot was "
                   "turned on); take a full snapshot or name one of them", path,
                   uuid ? uuid : "without a UUID", et->images->len);
    } else if (img->digest != id->digest) {
        error_setg(errp, "snapshot-base: '%s' (image %s) no longer matches the image "
                   "frostvm took: its digest is %016" G_GINT64_MODIFIER "x, it was %016"
                   G_GINT64_MODIFIER "x", path, uuid, id->digest, img->digest);
    } else if (img->page_aligned != id->page_aligned) {
        error_setg(errp, "snapshot-base: '%s' is a %s image but frostvm took it as a %s one",
                   path, id->page_aligned ? "page-aligned" : "stream",
                   img->page_aligned ? "page-aligned" : "stream");
    } else {
        *needs_verify = stat(path, &st) != 0 || !stat_matches(img, &st);
        ok = true;
    }
    g_mutex_unlock(&et->lock);
    if (!ok) {
        image_identity_clear(id);
    }
    return ok;
}

void epoch_tracking_base_verified(EpochTracking *et, const uint8_t uuid[IMAGE_UUID_SIZE],
                                  const char *path)
{
    g_mutex_lock(&et->lock);
    EpochImage *img = epoch_find(et, uuid);
    if (img) {
        remember_file(img, path, NULL);
    }
    g_mutex_unlock(&et->lock);
}

void epoch_tracking_add_image(EpochTracking *et, const ImageIdentity *id, const char *path,
                              const struct stat *expect)
{
    EpochImage *img = g_new0(EpochImage, 1);

    memcpy(img->uuid, id->uuid, IMAGE_UUID_SIZE);
    img->digest = id->digest;
    img->page_aligned = id->page_aligned;
    remember_file(img, path, expect);
    img->since = g_new0(unsigned long *, et->nr_blocks + 1);
    for (unsigned b = 0; b < et->nr_blocks; b++) {
        img->since[b] = bitmap_new(et->eb[b].pages);
    }
    g_mutex_lock(&et->lock);
    if (et->images->len >= EPOCH_CHAIN_MAX) {
        g_ptr_array_remove_index(et->images, 0);
    }
    g_ptr_array_add(et->images, img);
    g_mutex_unlock(&et->lock);
}

void epoch_tracking_mark_written(EpochTracking *et, unsigned block, uint64_t first, uint64_t n)
{
    EpochBlock *eb = &et->eb[block];

    g_mutex_lock(&et->lock);
    bitmap_set_range_atomic(eb->written, first, MIN(n, eb->pages - MIN(first, eb->pages)));
    g_mutex_unlock(&et->lock);
}

void epoch_tracking_set_lost(EpochTracking *et, const char *why)
{
    g_mutex_lock(&et->lock);
    if (!et->lost) {
        et->lost = g_strdup(why);
    }
    g_mutex_unlock(&et->lock);
}

void epoch_tracking_get_stats(EpochTracking *et, EpochTrackingStats *st)
{
    memset(st, 0, sizeof(*st));
    st->faults = __atomic_load_n(&et->faults, __ATOMIC_RELAXED);
    for (unsigned b = 0; b < et->nr_blocks; b++) {
        st->epoch_pages += bitmap_count_set(et->eb[b].written, et->eb[b].pages);
    }
    g_mutex_lock(&et->lock);
    st->started = et->started;
    st->images = et->images->len;
    st->lost = g_strdup(et->lost);
    g_mutex_unlock(&et->lock);
}

bool epoch_tracking_copy_since(EpochTracking *et, const uint8_t uuid[IMAGE_UUID_SIZE],
                               unsigned block, unsigned long *out)
{
    g_mutex_lock(&et->lock);
    EpochImage *img = epoch_find(et, uuid);
    for (uint64_t w = 0; img && w < BITMAP_WORDS(et->eb[block].pages); w++) {
        out[w] = img->since[block][w] | __atomic_load_n(&et->eb[block].written[w],
                                                        __ATOMIC_RELAXED);
    }
    g_mutex_unlock(&et->lock);
    return img != NULL;
}

void epoch_tracking_release_saved(EpochTracking *et, BackgroundSnapshot *bs,
                                  unsigned block_index, uint64_t group)
{
    SnapshotBlock *sb = &bs->blocks[block_index];
    uint64_t n = epoch_release_len(&et->eb[block_index], group);

    /* Ahead only over pages already saved (or unchanged): the others are the scan's. */
    while (n > sb->group_pages && !bitmap_range_is_set_atomic(sb->saved, group, n)) {
        n = MAX((uint64_t)sb->group_pages, n / 2 / sb->group_pages * sb->group_pages);
    }
    /*
     * In one call, not in pieces as between snapshots: the scan and the
     * writer hold the other CPU now, and the fault thread's later pieces
     * would compete with the vCPU it had let go (tried: the guest's stalls
     * were no shorter).
     */
    snapshot_unprotect_saved(bs, block_index, group, n, true);
}

uint64_t epoch_tracking_pages_since_count(EpochTracking *et, const uint8_t uuid[IMAGE_UUID_SIZE])
{
    uint64_t n = 0;

    g_mutex_lock(&et->lock);
    EpochImage *img = epoch_find(et, uuid);
    for (unsigned b = 0; img && b < et->nr_blocks; b++) {
        for (uint64_t w = 0; w < BITMAP_WORDS(et->eb[b].pages); w++) {
            unsigned long bits = img->since[b][w] |
                                 __atomic_load_n(&et->eb[b].written[w], __ATOMIC_RELAXED);
            n += (uint64_t)__builtin_popcountl(bits);
        }
    }
    g_mutex_unlock(&et->lock);
    return n;
}
