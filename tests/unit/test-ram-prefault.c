/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for system/ram-prefault.c: a second thread faulting RAM in ahead of a writer. */
#include "system/ram-prefault.h"

#include <glib.h>
#include <stdint.h>
#include <sys/mman.h>

#define MiB ((uint64_t)1 << 20)
#define PAGE 4096u
#define AREA (64 * MiB)

typedef struct Area {
    uint8_t *map;
    uint8_t *base;  /* 2 MiB aligned */
} Area;

static void area_init(Area *a, int prot)
{
    a->map = mmap(NULL, AREA + 2 * MiB, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    g_assert(a->map != MAP_FAILED);
    a->base = (uint8_t *)(((uintptr_t)a->map + 2 * MiB - 1) & ~(uintptr_t)(2 * MiB - 1));
}

static void area_free(Area *a)
{
    munmap(a->map, AREA + 2 * MiB);
}

/* Resident pages of [@from, @to) MiB of the area. */
static uint64_t resident(Area *a, uint64_t from, uint64_t to)
{
    uint64_t n = (to - from) * MiB / PAGE, count = 0;
    g_autofree unsigned char *vec = g_malloc(n);

    g_assert_cmpint(mincore(a->base + from * MiB, (to - from) * MiB, vec), ==, 0);
    for (uint64_t i = 0; i < n; i++) {
        count += vec[i] & 1;
    }
    return count;
}

/* Wait (up to 10 s) until the helper has populated @bytes in all. */
static void wait_populated(RamPrefault *pf, uint64_t bytes)
{
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

    while (ram_prefault_populated(pf) < bytes && g_get_monotonic_time() < deadline) {
        g_usleep(1000);
    }
    g_assert_cmpuint(ram_prefault_populated(pf), ==, bytes);
}

#define PAGES(mib) ((mib) * MiB / PAGE)

/*
 * The helper leaves the writer's own 2 MiB region to it, goes on to the lead,
 * follows the writer within its window and starts anew elsewhere.
 */
static void test_ahead_of_the_writer(void)
{
    Area a;
    RamPrefault *pf;

    area_init(&a, PROT_READ | PROT_WRITE);
    pf = ram_prefault_start(16 * MiB);
    g_assert_nonnull(pf);

    /* Writing the first page, maybe 32 MiB more: the lead stops it at 16. */
    ram_prefault_next(pf, a.base, PAGE, 32 * MiB);
    wait_populated(pf, 14 * MiB);
    g_assert_cmpuint(resident(&a, 0, 2), ==, 0);
    g_assert_cmpuint(resident(&a, 2, 16), ==, PAGES(14));
    g_assert_cmpuint(resident(&a, 16, 64), ==, 0);

    /* Further on in the same window: nothing done twice, the lead moves with it. */
    ram_prefault_next(pf, a.base + 8 * MiB, PAGE, 40 * MiB);
    wait_populated(pf, 22 * MiB);
    g_assert_cmpuint(resident(&a, 16, 24), ==, PAGES(8));
    g_assert_cmpuint(resident(&a, 24, 64), ==, 0);

    /* Elsewhere, with nothing expected beyond the 4 MiB being written. */
    ram_prefault_next(pf, a.base + 40 * MiB, 4 * MiB, 0);
    wait_populated(pf, 24 * MiB);
    g_assert_cmpuint(resident(&a, 24, 42), ==, 0);
    g_assert_cmpuint(resident(&a, 42, 44), ==, PAGES(2));
    g_assert_cmpuint(resident(&a, 44, 64), ==, 0);

    ram_prefault_stop(pf);
    area_free(&a);
}

/* Memory it cannot populate: it gives up, and stopping it still returns. */
static void test_populate_refused(void)
{
    Area a;
    RamPrefault *pf;

    area_init(&a, PROT_READ);
    pf = ram_prefault_start(16 * MiB);
    g_assert_nonnull(pf);
    ram_prefault_next(pf, a.base, PAGE, 8 * MiB);
    g_usleep(20 * 1000);
    g_assert_cmpuint(ram_prefault_populated(pf), ==, 0);
    ram_prefault_next(pf, a.base + 8 * MiB, PAGE, 8 * MiB);
    ram_prefault_stop(pf);
    g_assert_cmpuint(resident(&a, 0, 64), ==, 0);
    area_free(&a);
}

/* A helper that never got a window, and a missing one, are fine to stop. */
static void test_stop_idle(void)
{
    RamPrefault *pf = ram_prefault_start(16 * MiB);

    g_assert_nonnull(pf);
    ram_prefault_stop(pf);
    ram_prefault_next(NULL, NULL, 0, 0);
    g_assert_cmpuint(ram_prefault_populated(NULL), ==, 0);
    ram_prefault_stop(NULL);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/ram-prefault/ahead-of-the-writer", test_ahead_of_the_writer);
    g_test_add_func("/ram-prefault/populate-refused", test_populate_refused);
    g_test_add_func("/ram-prefault/stop-idle", test_stop_idle);
    return g_test_run();
}
