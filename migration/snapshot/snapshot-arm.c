/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Arming a background snapshot: protect RAM early, then in the pause protect what changed and save never-populated pages as zero. */
#include "migration/snapshot/snapshot-internal.h"

#include "migration/epoch-tracking.h"
#include "system/machine.h"
#include "system/memory-backend.h"
#include "system/ram-populated.h"
#include "util/bitmap.h"
#include "util/error.h"

#define MIB (1024ULL * 1024)
/* Before the pause a fault releases a whole THP-sized block: it is protected again in the pause. */
#define PREARM_RELEASE_BYTES (2 * MIB)
/*
 * Each ioctl flushes TLBs (costly in a VM): past this many ranges, one pass
 * over all of a block is cheaper than many small ones.
 */
#define PROTECT_MAX_RANGES 8
/*
 * What faults released between the early protect and the pause is what the
 * guest writes all the time (its stack, its counters, where it is writing
 * now): protected again, it faulted at once after the pause, one whole
 * 2 MiB copy per region on the first step's wait, read after a protection
 * change (0.3-1.4 ms each here). Up to this much (and an eighth of the
 * pool) is copied in the pause instead, before any protection change
 * (0.15-0.3 ms per 2 MiB), and left writable.
 */
#define HOT_SAVE_MAX_BYTES (8 * MIB)

/*
 * Anonymous memory can be protected whole: the kernel only touches the
 * pages that exist. Shared memory gets a marker in every hole (and page
 * tables for them), so there only the populated regions are protected.
 */
static bool block_protects_holes(SnapshotBlock *sb)
{
    return sb->rb->backend && sb->rb->backend->backing != MEMORY_BACKING_ANONYMOUS;
}

/*
 * Fill the zero maps (zero_before, or zero_at_pause) and huge of every block;
 * false with @errp set if the kernel refuses.
 */
static bool find_zero_pages(BackgroundSnapshot *bs, bool at_pause, GError **errp)
{
    /* In the pause only what was empty at the early protect can still be. */
    bool earlier = at_pause && bs->zero_before_known;

    for (unsigned i = 0; i < bs->nr_blocks; i++) {
        SnapshotBlock *sb = &bs->blocks[i];

        if (!ram_block_find_zero(sb->rb, bs->pagemap_fd, earlier ? sb->zero_before : NULL,
                                 at_pause ? sb->zero_at_pause : sb->zero_before, sb->huge,
                                 NULL, errp)) {
            error_prefix(errp, "background-snapshot: ");
            return false;
        }
    }
    bs->zero_before_known |= !at_pause;
    return true;
}

static void range_add(GArray *ranges, unsigned block_index, uint64_t first_page, uint64_t npages)
{
    SnapshotRange r = {
        .block_index = block_index,
        .offset = first_page * SNAPSHOT_PAGE_SIZE,
        .len = npages * SNAPSHOT_PAGE_SIZE,
    };
    g_array_append_val(ranges, r);
}

/*
 * The 2 MiB regions of @sb that hold a page set in @map (@invert: a page
 * clear in it), as ranges; with @and_not (may be NULL) only pages also
 * clear there.
 */
static void regions_with(GArray *ranges, unsigned block_index, SnapshotBlock *sb,
                         const unsigned long *map, bool invert, const unsigned long *and_not)
{
    for (uint64_t r = 0; r < sb->regions; r++) {
        uint64_t first = r * SNAPSHOT_HUGE_PAGES;
        uint64_t n = MIN((uint64_t)SNAPSHOT_HUGE_PAGES, sb->pages - first);

        for (uint64_t w = first / BITMAP_BITS_PER_WORD;
             w < (first + n + BITMAP_BITS_PER_WORD - 1) / BITMAP_BITS_PER_WORD; w++) {
            unsigned long bits = invert ? ~map[w] : map[w];
            if (and_not) {
                bits &= ~and_not[w];
            }
            if (bits) {
                range_add(ranges, block_index, first, n);
                break;
            }
        }
    }
}

static gint range_compare(gconstpointer a, gconstpointer b)
{
    const SnapshotRange *x = a, *y = b;

    if (x->block_index != y->block_index) {
        return x->block_index < y->block_index ? -1 : 1;
    }
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Sort and merge overlapping or touching ranges in place. */
static void ranges_merge(GArray *ranges)
{
    guint out = 0;

    g_array_sort(ranges, range_compare);
    for (guint i = 0; i < ranges->len; i++) {
        SnapshotRange *r = &g_array_index(ranges, SnapshotRange, i);
        SnapshotRange *last = out ? &g_array_index(ranges, SnapshotRange, out - 1) : NULL;
        if (last && last->block_index == r->block_index &&
            r->offset <= last->offset + last->len) {
            last->len = MAX(last->len, r->offset + r->len - last->offset);
        } else {
            g_array_index(ranges, SnapshotRange, out++) = *r;
        }
    }
    g_array_set_size(ranges, out);
}

static bool protect_ranges(BackgroundSnapshot *bs, GArray *ranges, GError **errp)
{
    ranges_merge(ranges);
    for (guint i = 0; i < ranges->len; i++) {
        SnapshotRange *r = &g_array_index(ranges, SnapshotRange, i);
        int ret = write_tracking_protect(bs->wt, r->block_index, r->offset, r->len);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "background-snapshot: cannot write-protect RAM "
                             "block '%s'", bs->blocks[r->block_index].rb->name);
            return false;
        }
    }
    return true;
}

/* Protect every block: whole, or (shared memory) the regions that hold data per @zero. */
static bool protect_populated(BackgroundSnapshot *bs, bool at_pause, GError **errp)
{
    g_autoptr(GArray) ranges = g_array_new(false, false, sizeof(SnapshotRange));

    for (unsigned i = 0; i < bs->nr_blocks; i++) {
        SnapshotBlock *sb = &bs->blocks[i];
        guint before = ranges->len;

        if (block_protects_holes(sb)) {
            regions_with(ranges, i, sb, at_pause ? sb->zero_at_pause : sb->zero_before, true,
                         NULL);
        }
        if (!block_protects_holes(sb) || ranges->len - before > PROTECT_MAX_RANGES) {
            g_array_set_size(ranges, before);
            range_add(ranges, i, 0, sb->pages);
        }
    }
    return protect_ranges(bs, ranges, errp);
}

/*
 * The pause runs deeper in this thread's stack than anything before it did
 * (a page-table walk keeps 6 KiB of results there), and each new stack page
 * is a page fault, 20-30 us on a paravirtual host: write them now, from the
 * same depth, while the guest runs.
 */
#define PAUSE_STACK_BYTES (64 * 1024)

static void __attribute__((noinline)) prefault_pause_stack(void)
{
    volatile uint8_t stack[PAUSE_STACK_BYTES];

    for (size_t i = 0; i < sizeof(stack); i += 4096) {
        stack[i] = 0;
    }
}

/*
 * Under epoch tracking, guest running: the zero map of every block. An
 * increment asks only about the pages written since its base so far: any
 * other it saves is released (written) after this, so is no longer zero
 * (the instant takes those out). The whole walk, through never-touched
 * memory under tracking's markers, took 26-29 ms of each 1 MiB increment
 * of an 8 GiB guest here.
 */
static bool tracked_find_zero(BackgroundSnapshot *bs, GError **errp)
{
    for (unsigned i = 0; i < bs->nr_blocks; i++) {
        SnapshotBlock *sb = &bs->blocks[i];
        g_autofree unsigned long *since = bs->has_base ? bitmap_new(sb->pages) : NULL;

        /* False: the base left the chain meanwhile (the instant fails then); walk all. */
        if (since && !epoch_tracking_copy_since(bs->epoch, bs->base_uuid, i, since)) {
            g_clear_pointer(&since, g_free);
        }
        if (!ram_block_find_zero(sb->rb, bs->pagemap_fd, since, sb->zero_before, NULL, NULL,
                                 errp)) {
            return false;
        }
    }
    return true;
}

bool snapshot_engine_prearm(BackgroundSnapshot *bs, GError **errp)
{
    uint64_t start = write_tracking_now_ns();

    prefault_pause_stack();
    if (bs->epoch) {
        /*
         * Epoch tracking protects what was written since its last instant;
         * then what is zero is found here, outside the pause, and the pause
         * only takes out what tracking released meanwhile.
         */
        bool ok = epoch_tracking_prearm(bs->epoch, errp) && tracked_find_zero(bs, errp);
        bs->zero_before_known = ok;
        bs->prearm_ns = write_tracking_now_ns() - start;
        return ok;
    }

    /*
     * What holds data now is protected now. Pages that get data after this
     * walk were not, and the pause protects them (see snapshot_engine_arm()).
     */
    if (!find_zero_pages(bs, false, errp)) {
        return false;
    }
    g_mutex_lock(&bs->arm_lock);
    __atomic_store_n(&bs->prearmed, true, __ATOMIC_RELEASE);
    g_mutex_unlock(&bs->arm_lock);
    if (!protect_populated(bs, false, errp)) {
        g_mutex_lock(&bs->arm_lock);
        __atomic_store_n(&bs->prearmed, false, __ATOMIC_RELEASE);
        g_mutex_unlock(&bs->arm_lock);
        return false;
    }
    bs->prearm_ns = write_tracking_now_ns() - start;
    return true;
}

/*
 * How long the guest may run between the early protect and the pause. It
 * finds the blocks it writes one fault at a time: a step of the test payload
 * writes three pages, and a pause right after the protect (0.1-0.2 ms) had
 * often seen only the first; where the guest went next faulted 60-160 us
 * after the pause, a whole 2 MiB copy, in 10 of 39 snapshots with KVM
 * (bpftrace on the claim probe; 0 of 15 after). Waiting until
 * no new block is released for a while (each release costs the guest an
 * unprotect, not a copy) lets the pause save them all. The vCPU is held on
 * its CPU meanwhile (snapshot_placement_hold_vcpu()).
 */
#define PREARM_SETTLE_QUIET_NS (300 * 1000ULL)
#define PREARM_SETTLE_MAX_NS (2 * 1000 * 1000ULL)
#define PREARM_SETTLE_POLL_US 50

/* What the pause may copy of what the guest writes (see HOT_SAVE_MAX_BYTES). */
static uint64_t hot_save_budget(BackgroundSnapshot *bs)
{
    uint64_t pool_bytes = (uint64_t)page_pool_capacity(bs->pool) * SNAPSHOT_PAGE_SIZE;

    return MIN(HOT_SAVE_MAX_BYTES, pool_bytes / 8);
}

void snapshot_engine_prearm_settle(BackgroundSnapshot *bs)
{
    snapshot_engine_prearm_settle_for(bs, PREARM_SETTLE_QUIET_NS, PREARM_SETTLE_MAX_NS);
}

void snapshot_engine_prearm_settle_for(BackgroundSnapshot *bs, uint64_t quiet_ns,
                                       uint64_t max_ns)
{
    if (bs->epoch || !__atomic_load_n(&bs->prearmed, __ATOMIC_ACQUIRE)) {
        return;
    }
    uint64_t start = write_tracking_now_ns();
    uint64_t changed = start;
    uint64_t budget = hot_save_budget(bs);
    unsigned seen = 0;

    for (;;) {
        uint64_t now = write_tracking_now_ns();

        /*
         * Not under arm_lock: this thread runs at SCHED_IDLE here, and a
         * release, which a vCPU waits for, must never wait for a lock held
         * by a thread anything may preempt.
         */
        unsigned n = __atomic_load_n(&bs->prearm_releases, __ATOMIC_ACQUIRE);
        if (n != seen) {
            seen = n;
            changed = now;
        }
        /* Past the budget the pause protects it all again: no use waiting. */
        if (now - changed >= quiet_ns || now - start >= max_ns ||
            (uint64_t)n * PREARM_RELEASE_BYTES > budget) {
            break;
        }
        g_usleep(PREARM_SETTLE_POLL_US);
    }
}

void snapshot_prearm_release(BackgroundSnapshot *bs, unsigned block_index, uint64_t offset)
{
    SnapshotBlock *sb = &bs->blocks[block_index];
    uint64_t len = PREARM_RELEASE_BYTES;
    uint64_t start = offset & ~(len - 1);

    len = MIN(len, sb->rb->size - start);
    /*
     * Holding arm_lock orders this against the pause: either the release is
     * recorded before arm() protects again, or it happens after and the
     * fault is served as a real one.
     */
    g_mutex_lock(&bs->arm_lock);
    if (!bs->prearmed) {
        g_mutex_unlock(&bs->arm_lock);
        snapshot_fault_handle(bs, block_index, offset, write_tracking_now_ns());
        return;
    }
    SnapshotRange r = { .block_index = block_index, .offset = start, .len = len };
    g_array_append_val(bs->prearm_released, r);
    __atomic_store_n(&bs->prearm_releases, bs->prearm_released->len, __ATOMIC_RELEASE);
    write_tracking_unprotect(bs->wt, block_index, start, len);
    g_mutex_unlock(&bs->arm_lock);
}

/*
 * In the pause: pages known zero now are saved (claimed, saved, counted;
 * the scan writes their records) and need no protection. They hold no data,
 * so the guest may write them from now on without a fault; the image has
 * them as they were, zero.
 */
static void save_zero_pages(BackgroundSnapshot *bs)
{
    for (unsigned i = 0; i < bs->nr_blocks; i++) {
        SnapshotBlock *sb = &bs->blocks[i];
        uint64_t zero = 0;

        /* One pass (the maps of a 16 GiB guest are 512 KiB each); no bit past the end is set. */
        for (size_t w = 0; w < BITMAP_WORDS(sb->pages); w++) {
            sb->claimed[w] |= sb->zero_at_pause[w];
            sb->saved[w] |= sb->zero_at_pause[w];
            zero += (uint64_t)__builtin_popcountl(sb->zero_at_pause[w]);
        }
        bs->fig.pages_unpopulated += zero;
        __atomic_fetch_add(&bs->fig.saved_pages, zero, __ATOMIC_RELAXED);
        if (sb->huge) {
            bs->fig.huge_in_pause += bitmap_count_set(sb->huge, sb->regions);
        }
    }
    /* The fault and scan threads read the maps from now on. */
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

bool snapshot_tracked_hot_fits(BackgroundSnapshot *bs, const uint64_t *opened_pages)
{
    uint64_t bytes = 0;

    for (unsigned i = 0; i < bs->nr_blocks; i++) {
        /* Pages larger than 2 MiB (hugetlbfs) change protection whole: protect them. */
        if (opened_pages[i] && bs->blocks[i].group_pages > SNAPSHOT_HUGE_PAGES) {
            return false;
        }
        bytes += opened_pages[i] * SNAPSHOT_PAGE_SIZE;
    }
    return bytes && bytes <= hot_save_budget(bs);
}

/* @ranges cut into the 2 MiB pieces the pause copies (snapshot-pause-copy.c), in order. */
static GArray *pause_pieces(const GArray *ranges)
{
    GArray *pieces = g_array_new(false, false, sizeof(SnapshotRange));
    uint64_t piece = (uint64_t)SNAPSHOT_HUGE_PAGES * SNAPSHOT_PAGE_SIZE;

    for (guint i = 0; ranges && i < ranges->len; i++) {
        const SnapshotRange *r = &g_array_index(ranges, SnapshotRange, i);

        for (uint64_t off = r->offset; off < r->offset + r->len; off += piece) {
            SnapshotRange p = { .block_index = r->block_index, .offset = off,
                                .len = MIN(piece, r->offset + r->len - off) };
            g_array_append_val(pieces, p);
        }
    }
    return pieces;
}

/*
 * Copy the opened pages in the pause (left writable: tracking counts them as
 * written in the new epoch); a piece the pool has no room for is protected
 * instead. The scan then goes on after each run.
 */
static bool save_opened(BackgroundSnapshot *bs, GError **errp)
{
    g_autoptr(GArray) runs = g_array_new(false, false, sizeof(SnapshotRange));

    for (unsigned i = 0; i < bs->nr_blocks; i++) {
        SnapshotBlock *sb = &bs->blocks[i];
        uint64_t p = 0;

        while ((p = bitmap_find_next_set(sb->opened, sb->pages, p)) < sb->pages) {
            uint64_t end = bitmap_find_next_zero(sb->opened, sb->pages, p);

            range_add(runs, i, p, end - p);
            p = end;
        }
    }
    g_autoptr(GArray) pieces = pause_pieces(runs);
    if (!snapshot_pause_copy_run(bs, (const SnapshotRange *)pieces->data, pieces->len, errp)) {
        return false;
    }
    for (guint i = 0; i < runs->len; i++) {
        snapshot_scan_after_pause_save(bs, &g_array_index(runs, SnapshotRange, i));
    }
    return true;
}

bool snapshot_arm_tracked(BackgroundSnapshot *bs, unsigned long *const *needed, bool hot,
                          GError **errp)
{
    uint64_t unchanged = 0, zero = 0;

    /*
     * Tracking protected every page but the @opened ones when @hot (and
     * keeps them protected: a write after the instant must fault, zero page
     * or not; the hot ones count as written instead). Only learn which pages to
     * save are zero now, to save them without reading, and which need no
     * saving at all (unchanged since the base): both count as saved for the
     * scan and faults. Huge-page care stays off: tracking releases pages in
     * its own runs. One pass over the maps, with plain stores: nothing else
     * reads or writes them yet (the scan starts after the pause, and
     * tracking's fault thread waits for the instant's lock), and the pause
     * is no place for three passes, or a locked instruction on each of the
     * 65,536 words of a 16 GiB guest (the three passes this replaces took
     * 0.2-0.3 ms of an 8 GiB guest's pause here, the one 42-83 us).
     */
    for (unsigned i = 0; i < bs->nr_blocks; i++) {
        SnapshotBlock *sb = &bs->blocks[i];
        uint64_t words = BITMAP_WORDS(sb->pages);

        /*
         * Known: zero at the prearm's walk and not released since is still
         * zero (a write faults first). No walk in the pause then: holes under
         * tracking's markers cost a read of their pagemap entries.
         */
        if (!bs->zero_before_known &&
            !ram_block_find_zero(sb->rb, bs->pagemap_fd, NULL, sb->zero_at_pause, NULL, NULL,
                                 errp)) {
            error_prefix(errp, "background-snapshot: ");
            return false;
        }
        for (uint64_t w = 0; w < words; w++) {
            unsigned long valid = w == words - 1 && sb->pages % BITMAP_BITS_PER_WORD
                                  ? (1UL << (sb->pages % BITMAP_BITS_PER_WORD)) - 1 : ~0UL;
            unsigned long z = bs->zero_before_known ? sb->zero_before[w] & ~sb->opened[w]
                                                    : sb->zero_at_pause[w];
            /* Not written since the base: not in this image at all. */
            unsigned long skip = needed ? ~needed[i][w] & valid : 0;

            z &= needed ? needed[i][w] & valid : valid;
            sb->zero_at_pause[w] = z;
            sb->claimed[w] |= skip | z;
            sb->saved[w] |= skip | z;
            unchanged += (uint64_t)__builtin_popcountl(skip);
            zero += (uint64_t)__builtin_popcountl(z);
        }
    }
    bs->fig.pages_unchanged = unchanged;
    bs->fig.pages_unpopulated += zero;
    /* The fault and scan threads read the maps from now on. */
    __atomic_fetch_add(&bs->fig.saved_pages, unchanged + zero, __ATOMIC_RELEASE);
    return !hot || save_opened(bs, errp);
}

/* True if [@r->offset, +len) of its block overlaps a range of @hot. */
static bool overlaps_any(const GArray *hot, const SnapshotRange *r)
{
    for (guint i = 0; hot && i < hot->len; i++) {
        const SnapshotRange *h = &g_array_index(hot, SnapshotRange, i);
        if (h->block_index == r->block_index && h->offset < r->offset + r->len &&
            r->offset < h->offset + h->len) {
            return true;
        }
    }
    return false;
}

/*
 * Under arm_lock, in the pause: what faults released before it is returned
 * to be saved here (hot), or added to @protect, to be protected again; so is
 * what got data since the early protect (it held none then, so nothing
 * protected it), unless it is hot. @protect comes back merged.
 */
static GArray *split_hot_ranges(BackgroundSnapshot *bs, GArray *protect)
{
    GArray *hot = g_array_new(false, false, sizeof(SnapshotRange));
    g_autoptr(GArray) fresh = g_array_new(false, false, sizeof(SnapshotRange));
    uint64_t hot_bytes = 0;

    for (guint i = 0; i < bs->prearm_released->len; i++) {
        SnapshotRange *r = &g_array_index(bs->prearm_released, SnapshotRange, i);
        /* Pages larger than 2 MiB (hugetlbfs) change protection whole: protect them. */
        g_array_append_val(bs->blocks[r->block_index].group_pages > SNAPSHOT_HUGE_PAGES
                           ? protect : hot, *r);
    }
    ranges_merge(hot);
    for (guint i = 0; i < hot->len; i++) {
        hot_bytes += g_array_index(hot, SnapshotRange, i).len;
    }
    if (hot_bytes > hot_save_budget(bs)) {
        /* A guest writing this much: too long a pause, or too much of a small pool. */
        g_array_append_vals(protect, hot->data, hot->len);
        g_array_set_size(hot, 0);
    }
    for (unsigned i = 0; i < bs->nr_blocks; i++) {
        SnapshotBlock *sb = &bs->blocks[i];
        regions_with(fresh, i, sb, sb->zero_before, false, sb->zero_at_pause);
    }
    for (guint i = 0; i < fresh->len; i++) {
        SnapshotRange *r = &g_array_index(fresh, SnapshotRange, i);
        if (!overlaps_any(hot, r)) {
            g_array_append_val(protect, *r);
        }
    }
    ranges_merge(protect);
    if (protect->len > PROTECT_MAX_RANGES) {
        /* Then all of RAM is protected, hot ranges included: nothing to save early. */
        g_array_set_size(hot, 0);
    }
    return hot;
}

bool snapshot_engine_arm(BackgroundSnapshot *bs, GError **errp)
{
    uint64_t start = write_tracking_now_ns();

    if (bs->epoch) {
        bool tracked = epoch_tracking_instant(bs->epoch, bs, bs->has_base ? bs->base_uuid : NULL,
                                              errp);
        bs->arm_ns = write_tracking_now_ns() - start;
        return tracked;
    }
    g_autoptr(GArray) ranges = g_array_new(false, false, sizeof(SnapshotRange));
    g_autoptr(GArray) hot = NULL;

    /* Its wake-up overlaps the search and the protect below. */
    snapshot_pause_copy_wake(bs);
    bool ok = find_zero_pages(bs, true, errp);

    g_mutex_lock(&bs->arm_lock);
    if (ok && bs->prearmed) {
        hot = split_hot_ranges(bs, ranges);
    }
    if (ok) {
        ok = (bs->prearmed && ranges->len <= PROTECT_MAX_RANGES)
             ? protect_ranges(bs, ranges, errp) : protect_populated(bs, true, errp);
    }
    if (ok) {
        save_zero_pages(bs);
    }
    /* Hot ranges are saved in 2 MiB pieces, on two CPUs (snapshot-pause-copy.c). */
    g_autoptr(GArray) pieces = pause_pieces(ok ? hot : NULL);
    /* Always: the helper waits for this, even for nothing. */
    bool saved = snapshot_pause_copy_run(bs, (const SnapshotRange *)pieces->data, pieces->len,
                                         ok ? errp : NULL);
    ok = ok && saved;
    for (guint i = 0; ok && hot && i < hot->len; i++) {
        snapshot_scan_after_pause_save(bs, &g_array_index(hot, SnapshotRange, i));
    }
    g_array_set_size(bs->prearm_released, 0);
    __atomic_store_n(&bs->prearm_releases, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&bs->prearmed, false, __ATOMIC_RELEASE);
    g_mutex_unlock(&bs->arm_lock);
    bs->arm_ns = write_tracking_now_ns() - start;
    return ok;
}
