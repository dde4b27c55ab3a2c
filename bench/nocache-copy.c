/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Benchmark: how long a write fault's 2 MiB copy into pool buffers takes with
 * memcpy and with nocache_copy() (util/nocache-copy.c), page by page as
 * snapshot_save_claimed() does it. The source is a huge-page region the
 * guest wrote long ago: before each copy 128 MiB of other memory is read, so
 * it is no longer in the cache. Prints p50, p90 and the maximum per method.
 *     build/bench/nocache-copy [regions]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <glib.h>

#include "util/huge-map.h"
#include "util/nocache-copy.h"

#define PAGE 4096u
#define HUGE (2u << 20)
#define EVICT_BYTES (128u << 20)
#define DST_REGIONS 16u

typedef void (*CopyFn)(void *dst, const void *src, size_t len);

static void plain_copy(void *dst, const void *src, size_t len)
{
    memcpy(dst, src, len);
}

static uint8_t *map_touched(size_t len)
{
    uint8_t *p = huge_map_anonymous(len);

    if (!p) {
        perror("mmap");
        exit(1);
    }
    madvise(p, len, MADV_HUGEPAGE);
    memset(p, 0x5a, len);
    return p;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void run(const char *name, CopyFn copy, const uint8_t *src, uint8_t *dst,
                const uint8_t *evict, unsigned regions)
{
    g_autofree uint64_t *us = g_new(uint64_t, regions);

    for (unsigned r = 0; r < regions; r++) {
        volatile uint64_t sum = 0;

        for (size_t off = 0; off < EVICT_BYTES; off += 64) {
            sum += evict[off];
        }
        const uint8_t *s = src + (size_t)r * HUGE;
        uint8_t *d = dst + (size_t)(r % DST_REGIONS) * HUGE;
        gint64 t0 = g_get_monotonic_time();
        for (unsigned p = 0; p < HUGE / PAGE; p++) {
            copy(d + p * PAGE, s + p * PAGE, PAGE);
        }
        nocache_copy_publish();
        us[r] = g_get_monotonic_time() - t0;
        g_assert(memcmp(d, s, HUGE) == 0);
    }
    qsort(us, regions, sizeof(us[0]), cmp_u64);
    printf("%-14s 2 MiB in %3" G_GUINT64_FORMAT " us (p50), %3" G_GUINT64_FORMAT
           " us (p90), %3" G_GUINT64_FORMAT " us (max), %u copies\n", name,
           us[regions / 2], us[regions * 9 / 10], us[regions - 1], regions);
}

int main(int argc, char **argv)
{
    unsigned regions = argc > 1 ? (unsigned)atoi(argv[1]) : 64;

    if (regions < 2) {
        fprintf(stderr, "usage: %s [regions, at least 2]\n", argv[0]);
        return 2;
    }
    uint8_t *src = map_touched((size_t)regions * HUGE);
    uint8_t *dst = map_touched((size_t)DST_REGIONS * HUGE);
    uint8_t *evict = map_touched(EVICT_BYTES);

    for (int round = 0; round < 2; round++) {
        run("memcpy", plain_copy, src, dst, evict, regions);
        run("nocache_copy", nocache_copy, src, dst, evict, regions);
    }
    return 0;
}
