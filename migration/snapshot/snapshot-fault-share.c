/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A write fault's copy on two CPUs. A fault on a huge page copies 2 MiB
 * before the guest may go on: 100-150 us here, most of its service time.
 * With one vCPU the fault thread runs on the vCPU's CPU, and the scan is
 * usually copying on the other one: it takes 64-page pieces of the fault's
 * block between its own, from one counter the fault thread takes from too.
 * A scan that is not there (waiting for the pool, done) costs the fault
 * nothing: the fault thread takes every piece itself. (A helper woken for
 * each fault gained nothing: build/bench/parallel-copy, the other CPU's
 * wake-up cost what the split saved. The scan needs no wake-up.)
 *
 * The scan runs at idle or batch priority and may be preempted in the
 * middle of a piece: a fault that waited for it took 370 us instead of 130
 * (bpftrace). So a piece the scan has not published 30 us after the fault
 * thread ran out of its own is taken back: the fault thread copies it into
 * buffers of its own, and the scan, when it gets there, finds it taken and
 * gives its buffers back. A late scan still holds the posting's copies of
 * claims and slots, so the next fault does not share until it is out.
 */
#include "migration/snapshot/snapshot-internal.h"

#include <string.h>

#include "util/bitmap.h"
#include "util/nocache-copy.h"

#define PIECE_PAGES BITMAP_BITS_PER_WORD
/* How long the fault thread waits for the scan's piece before taking it back. */
#define TAKE_BACK_AFTER_NS (30 * 1000ULL)

/* A piece the scan took: copying, published by the scan, or taken back by the fault thread. */
enum { PIECE_COPYING, PIECE_PUBLISHED, PIECE_TAKEN_BACK };

/*
 * The counter: generation, pieces and the next piece in one word, so a
 * helper that read an older posting can take nothing from a newer one, and
 * takes only while the fields it then reads stay put.
 */
static uint64_t share_word(uint32_t gen, unsigned nr, unsigned next)
{
    return (uint64_t)gen << 32 | (uint64_t)nr << 16 | next;
}

/* Take a piece of generation @gen, or return false when it has none left (or is over). */
static bool take_piece(SnapshotFaultShare *sh, uint32_t gen, unsigned *k)
{
    uint64_t v = __atomic_load_n(&sh->next, __ATOMIC_ACQUIRE);

    for (;;) {
        unsigned nr = (unsigned)(v >> 16) & 0xffff;
        unsigned next = (unsigned)v & 0xffff;

        if ((uint32_t)(v >> 32) != gen || next >= nr) {
            return false;
        }
        if (__atomic_compare_exchange_n(&sh->next, &v, v + 1, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            *k = next;
            return true;
        }
    }
}

static uint32_t piece_pages(SnapshotFaultShare *sh, unsigned k)
{
    return (uint32_t)__builtin_popcountl(sh->won[k]);
}

/* Save piece @k into @slots and publish it (the fault thread's own pieces, and those it took back). */
static void save_piece(BackgroundSnapshot *bs, SnapshotFaultShare *sh, unsigned k,
                       uint32_t *slots)
{
    uint64_t n = snapshot_save_claimed(bs, sh->block_index, sh->first + (uint64_t)k * PIECE_PAGES,
                                       PIECE_PAGES, &sh->won[k], slots, piece_pages(sh, k), NULL);

    __atomic_fetch_add(&sh->saved, n, __ATOMIC_RELAXED);
    /* Release: the fault thread that sees the count sees the piece saved. */
    __atomic_fetch_add(&sh->done, 1, __ATOMIC_RELEASE);
}

void snapshot_fault_share_help(BackgroundSnapshot *bs)
{
    SnapshotFaultShare *sh = &bs->fault_share;
    uint32_t gen = __atomic_load_n(&sh->posted, __ATOMIC_ACQUIRE);
    unsigned k;

    if (!gen) {
        return;
    }
    /* Before taking: a posting waits for this to drop to zero before it rewrites the fields. */
    __atomic_fetch_add(&sh->in_flight, 1, __ATOMIC_ACQ_REL);
    while (take_piece(sh, gen, &k)) {
        uint64_t first = sh->first + (uint64_t)k * PIECE_PAGES;
        uint32_t *slots = sh->slots + sh->slot_start[k];
        uint32_t pages = piece_pages(sh, k);
        unsigned long zero[BITMAP_WORDS(PIECE_PAGES)];
        uint8_t copying = PIECE_COPYING;

        snapshot_copy_claimed(bs, sh->block_index, first, PIECE_PAGES, &sh->won[k], slots,
                              pages, NULL, zero);
        if (__atomic_compare_exchange_n(&sh->state[k], &copying, PIECE_PUBLISHED, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            uint64_t n = snapshot_publish_claimed(bs, sh->block_index, first, PIECE_PAGES,
                                                  &sh->won[k], slots, pages, zero);

            __atomic_fetch_add(&sh->saved, n, __ATOMIC_RELAXED);
            __atomic_fetch_add(&bs->fig.fault_pages_by_scan, n, __ATOMIC_RELAXED);
            __atomic_fetch_add(&sh->done, 1, __ATOMIC_RELEASE);
        } else {
            /* Taken back: the copy (of memory the guest may be writing by now) is dropped. */
            nocache_copy_publish();
            page_pool_put(bs->pool, slots, pages);
        }
    }
    __atomic_fetch_sub(&sh->in_flight, 1, __ATOMIC_RELEASE);
}

/* Take back the scan's pieces still being copied; false where the pool had no buffers for one. */
static bool take_back(BackgroundSnapshot *bs, SnapshotFaultShare *sh, uint32_t mine)
{
    bool all = true;

    for (unsigned k = 0; k < sh->nr; k++) {
        uint32_t pages = piece_pages(sh, k);
        uint32_t slots[PIECE_PAGES];
        uint8_t copying = PIECE_COPYING;

        if (mine & (1u << k) ||
            __atomic_load_n(&sh->state[k], __ATOMIC_ACQUIRE) != PIECE_COPYING) {
            continue;
        }
        /* Buffers first: a piece taken back must be saved. */
        if (pages && !page_pool_take(bs->pool, pages, PAGE_POOL_USER_FAULT, false, slots)) {
            all = false;
            continue;
        }
        if (__atomic_compare_exchange_n(&sh->state[k], &copying, PIECE_TAKEN_BACK, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            save_piece(bs, sh, k, slots);
            __atomic_fetch_add(&bs->fig.fault_pieces_taken_back, 1, __ATOMIC_RELAXED);
        } else if (pages) {
            page_pool_put(bs->pool, slots, pages);  /* the scan published it meanwhile */
        }
    }
    return all;
}

/* Until every piece is published: the scan's, or taken back from it after a while. */
static void wait_for_pieces(BackgroundSnapshot *bs, SnapshotFaultShare *sh, uint32_t mine)
{
    uint64_t start = write_tracking_now_ns();
    bool tried = false;

    while (__atomic_load_n(&sh->done, __ATOMIC_ACQUIRE) < sh->nr) {
        uint64_t waited = write_tracking_now_ns() - start;

        if (waited >= TAKE_BACK_AFTER_NS && !tried) {
            tried = true;
            if (!take_back(bs, sh, mine)) {
                snapshot_scan_boost(bs);    /* no buffers to take it back: let the scan finish */
            }
        } else if (waited >= 10 * TAKE_BACK_AFTER_NS) {
            g_usleep(20);
        } else {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
    }
}

uint64_t snapshot_fault_save_shared(BackgroundSnapshot *bs, unsigned block_index, uint64_t first,
                                    uint64_t n, const unsigned long *won, uint32_t *slots,
                                    uint32_t nslots)
{
    SnapshotFaultShare *sh = &bs->fault_share;
    unsigned k;

    /*
     * Not in whole pieces, or a late helper still holds the last posting's
     * copies, or the scan is not copying (waiting for the pool, between
     * chunks with nothing to copy, done): one copy as before, without the
     * pieces' own costs (a record and a fence each; without KVM, faults the
     * scan did not help took 180 us instead of 130 when cut in pieces).
     */
    if (first % PIECE_PAGES || n % PIECE_PAGES || n / PIECE_PAGES < 2 ||
        n / PIECE_PAGES > SNAPSHOT_SHARE_PIECES ||
        !__atomic_load_n(&sh->helpers, __ATOMIC_RELAXED) ||
        __atomic_load_n(&sh->in_flight, __ATOMIC_ACQUIRE)) {
        return snapshot_save_claimed(bs, block_index, first, n, won, slots, nslots, NULL);
    }
    sh->block_index = block_index;
    sh->first = first;
    sh->nr = (unsigned)(n / PIECE_PAGES);
    memcpy(sh->won, won, sh->nr * sizeof(*won));
    memcpy(sh->slots, slots, nslots * sizeof(*slots));
    uint32_t used = 0;
    for (k = 0; k < sh->nr; k++) {
        sh->slot_start[k] = used;
        used += piece_pages(sh, k);
        __atomic_store_n(&sh->state[k], PIECE_COPYING, __ATOMIC_RELAXED);
    }
    g_assert(used == nslots);
    sh->generation = sh->generation + 1 ? sh->generation + 1 : 1;
    uint32_t gen = sh->generation;
    __atomic_store_n(&sh->done, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&sh->saved, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&sh->next, share_word(gen, sh->nr, 0), __ATOMIC_RELEASE);
    /* Everything above before the posting: a helper that sees it sees them. */
    __atomic_store_n(&sh->posted, gen, __ATOMIC_RELEASE);

    uint32_t mine = 0;
    while (take_piece(sh, gen, &k)) {
        mine |= 1u << k;
        save_piece(bs, sh, k, sh->slots + sh->slot_start[k]);
    }
    __atomic_store_n(&sh->posted, 0, __ATOMIC_RELAXED);
    wait_for_pieces(bs, sh, mine);
    return __atomic_load_n(&sh->saved, __ATOMIC_RELAXED);
}
