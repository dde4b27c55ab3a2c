/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Write access back for shared guest RAM after userfaultfd write-protection. */
#include "system/shared-write.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#include <glib.h>

#include "system/machine.h"

/*
 * While a shared mapping is registered for write-protect, the kernel maps
 * its pages read-only to see their writes, and neither unprotecting nor
 * unregistering makes them writable again (Linux 6.18): the next write to
 * every page the snapshot touched takes a page fault, 20 us each on a
 * paravirtual host (a guest sweeping shared memory kept a third of its
 * rate). Any protection change recomputes the entries from the mapping's
 * own protection, which is writable once unregistered (the pages the guest
 * wrote, whose entries are dirty; one it only read faults on its first write,
 * as on any shared mapping); adding execute and taking it away again is a
 * change that never takes access away, so a vCPU writing meanwhile never
 * fails. 128 MiB of mapped pages took 33-37 ms
 * here; writing them all afterwards 2 ms without a fault, against 450 ms
 * and 32,768 faults.
 *
 * In pieces: each call holds the mmap lock for writing, and a vCPU that
 * page-faults meanwhile waits for it. A 512 KiB piece (128 entries) held it
 * for 0.1-0.4 ms here. A piece with no page in memory has no entry to
 * change: asking (mincore(), under the lock for reading) costs less than
 * the two calls, which split and merge the mapping even there.
 */
#define SHARED_WRITE_PIECE (512 * 1024ULL)
#define PIECE_PAGES (SHARED_WRITE_PIECE / MACHINE_PAGE_SIZE)

/* Which of the pages of a piece (@n bytes at @host) are in memory, into @vec: their count, or -errno. */
static int64_t piece_in_memory(uint8_t *host, uint64_t n, unsigned char vec[PIECE_PAGES])
{
    int64_t count = 0;

    if (mincore(host, n, vec) != 0) {
        return -errno;
    }
    for (uint64_t i = 0; i < (n + MACHINE_PAGE_SIZE - 1) / MACHINE_PAGE_SIZE; i++) {
        count += vec[i] & 1;
    }
    return count;
}

int shared_write_restore(uint8_t *host, uint64_t len)
{
    for (uint64_t off = 0; off < len; off += SHARED_WRITE_PIECE) {
        uint64_t n = MIN(SHARED_WRITE_PIECE, len - off);
        unsigned char vec[PIECE_PAGES];

        if (piece_in_memory(host + off, n, vec) == 0) {
            continue;   /* (not known: changed all the same) */
        }
        if (mprotect(host + off, n, PROT_READ | PROT_WRITE | PROT_EXEC) != 0) {
            return -errno;      /* refused by policy (no W+X): nothing changed */
        }
        /*
         * Back to read-write. This can fail only for want of memory (a
         * mapping split or merged): try again, and say so if guest RAM stays
         * executable.
         */
        if (mprotect(host + off, n, PROT_READ | PROT_WRITE) != 0 &&
            mprotect(host + off, n, PROT_READ | PROT_WRITE) != 0) {
            int err = errno;

            g_warning("guest RAM at %p (%" G_GUINT64_FORMAT " bytes) stays executable: %s",
                      (void *)(host + off), n, g_strerror(err));
            return -err;
        }
    }
    return 0;
}

int shared_write_populate(uint8_t *host, uint64_t len)
{
    for (uint64_t off = 0; off < len; off += SHARED_WRITE_PIECE) {
        uint64_t n = MIN(SHARED_WRITE_PIECE, len - off);
        unsigned char vec[PIECE_PAGES];
        int64_t in_memory = piece_in_memory(host + off, n, vec);

        if (in_memory < 0) {
            return (int)in_memory;
        }
        /* Runs of pages in memory: a hole stays a hole (populating would allocate it). */
        for (uint64_t i = 0, pages = (n + MACHINE_PAGE_SIZE - 1) / MACHINE_PAGE_SIZE;
             in_memory && i < pages;) {
            while (i < pages && !(vec[i] & 1)) {
                i++;
            }
            uint64_t start = i;
            while (i < pages && (vec[i] & 1)) {
                i++;
            }
            if (i > start &&
                madvise(host + off + start * MACHINE_PAGE_SIZE, (i - start) * MACHINE_PAGE_SIZE,
                        MADV_POPULATE_WRITE) != 0) {
                return -errno;
            }
        }
    }
    return 0;
}
