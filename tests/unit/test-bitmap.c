/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests of util/bitmap: plain helpers, and atomic claims racing between threads. */
#include <glib.h>

#include "util/bitmap.h"

static void test_plain(void)
{
    unsigned long *map = bitmap_new(200);

    g_assert_cmpuint(bitmap_count_set(map, 200), ==, 0);
    bitmap_set_range(map, 60, 10);          /* crosses a word boundary */
    g_assert_cmpuint(bitmap_count_set(map, 200), ==, 10);
    g_assert_true(bitmap_test_bit(map, 60));
    g_assert_true(bitmap_test_bit(map, 69));
    g_assert_false(bitmap_test_bit(map, 70));
    g_assert_cmpuint(bitmap_find_next_set(map, 200, 0), ==, 60);
    g_assert_cmpuint(bitmap_find_next_zero(map, 200, 60), ==, 70);
    g_assert_cmpuint(bitmap_find_next_set(map, 200, 70), ==, 200);
    bitmap_clear_range(map, 62, 3);
    g_assert_cmpuint(bitmap_count_set(map, 200), ==, 7);
    g_assert_cmpuint(bitmap_find_next_zero(map, 200, 60), ==, 62);
    bitmap_set_range(map, 0, 200);
    g_assert_cmpuint(bitmap_count_set(map, 200), ==, 200);
    g_assert_cmpuint(bitmap_find_next_zero(map, 200, 0), ==, 200);
    bitmap_free(map);
}

/* Populating a map's memory keeps every bit, on page boundaries and at the end. */
static void test_populate(void)
{
    size_t nbits = 3 * 4096 * 8 + 77;
    unsigned long *map = bitmap_new(nbits);
    size_t bits[] = { 0, 4096 * 8 - 1, 4096 * 8, 2 * 4096 * 8 + 5, nbits - 1 };

    for (size_t i = 0; i < G_N_ELEMENTS(bits); i++) {
        bitmap_set_bit(map, bits[i]);
    }
    bitmap_populate(map, nbits);
    g_assert_cmpuint(bitmap_count_set(map, nbits), ==, G_N_ELEMENTS(bits));
    for (size_t i = 0; i < G_N_ELEMENTS(bits); i++) {
        g_assert_true(bitmap_test_bit(map, bits[i]));
    }
    bitmap_populate(map, 0);
    bitmap_free(map);
}

static void test_atomic_single(void)
{
    unsigned long *map = bitmap_new(130);

    g_assert_false(bitmap_test_and_set_atomic(map, 129));
    g_assert_true(bitmap_test_and_set_atomic(map, 129));
    g_assert_true(bitmap_test_atomic(map, 129));
    g_assert_true(bitmap_test_and_clear_atomic(map, 129));
    g_assert_false(bitmap_test_atomic(map, 129));
    bitmap_free(map);
}

/* OR a map in, and take one out: every bit moves once, zero words included. */
static void test_or_take(void)
{
    unsigned long *map = bitmap_new(300);
    unsigned long *src = bitmap_new(300);
    unsigned long *out = bitmap_new(300);

    bitmap_set_range(map, 5, 3);
    bitmap_set_range(src, 6, 70);                   /* crosses a word, overlaps map */
    bitmap_set_bit(src, 299);                       /* the last, partial word */
    bitmap_or_atomic(map, src, 300);
    g_assert_cmpuint(bitmap_count_set(map, 300), ==, 72);
    g_assert_true(bitmap_test_bit(map, 5) && bitmap_test_bit(map, 75) &&
                  bitmap_test_bit(map, 299));
    bitmap_set_range(out, 0, 300);                  /* stale: every word is written */
    g_assert_cmpuint(bitmap_take_atomic(map, out, 300), ==, 72);
    g_assert_cmpuint(bitmap_count_set(map, 300), ==, 0);
    g_assert_cmpuint(bitmap_count_set(out, 300), ==, 72);
    g_assert_false(bitmap_test_bit(out, 4) || bitmap_test_bit(out, 200));
    g_assert_cmpuint(bitmap_take_atomic(map, out, 300), ==, 0);
    g_assert_cmpuint(bitmap_count_set(out, 300), ==, 0);
    bitmap_free(map);
    bitmap_free(src);
    bitmap_free(out);
}

/* Set bits in a row below an end: within a word, across words, up to a cap, at bit 0. */
static void test_count_set_before(void)
{
    unsigned long *map = bitmap_new(400);

    g_assert_cmpuint(bitmap_count_set_before_atomic(map, 10, 100), ==, 0);
    bitmap_set_range(map, 3, 5);                    /* 3..7 */
    g_assert_cmpuint(bitmap_count_set_before_atomic(map, 8, 100), ==, 5);
    g_assert_cmpuint(bitmap_count_set_before_atomic(map, 6, 100), ==, 3);
    g_assert_cmpuint(bitmap_count_set_before_atomic(map, 9, 100), ==, 0);
    g_assert_cmpuint(bitmap_count_set_before_atomic(map, 8, 2), ==, 2);
    bitmap_set_range(map, 0, 3);                    /* 0..7: down to the first bit */
    g_assert_cmpuint(bitmap_count_set_before_atomic(map, 8, 100), ==, 8);
    bitmap_set_range(map, 40, 300);                 /* 40..339: five words */
    g_assert_cmpuint(bitmap_count_set_before_atomic(map, 340, 1000), ==, 300);
    g_assert_cmpuint(bitmap_count_set_before_atomic(map, 340, 256), ==, 256);
    g_assert_cmpuint(bitmap_count_set_before_atomic(map, 128, 1000), ==, 88);
    g_assert_cmpuint(bitmap_count_set_before_atomic(map, 64, 1000), ==, 24);
    g_assert_cmpuint(bitmap_count_set_before_atomic(map, 0, 1000), ==, 0);
    bitmap_free(map);
}

static void test_claim_range(void)
{
    unsigned long *map = bitmap_new(512);
    unsigned long claimed[BITMAP_WORDS(200)];

    bitmap_set_bit(map, 100);
    bitmap_set_bit(map, 150);
    /* Claim [50, 250): everything but the two bits already taken. */
    g_assert_cmpuint(bitmap_claim_range_atomic(map, 50, 200, claimed), ==, 198);
    g_assert_false(bitmap_test_bit(claimed, 50));   /* bit 100 */
    g_assert_false(bitmap_test_bit(claimed, 100));  /* bit 150 */
    g_assert_true(bitmap_test_bit(claimed, 0));
    g_assert_true(bitmap_test_bit(claimed, 199));
    g_assert_true(bitmap_range_is_set_atomic(map, 50, 200));
    g_assert_false(bitmap_range_is_set_atomic(map, 49, 2));
    /* A second claim wins nothing. */
    g_assert_cmpuint(bitmap_claim_range_atomic(map, 50, 200, claimed), ==, 0);
    g_assert_cmpuint(bitmap_count_set(claimed, 200), ==, 0);
    bitmap_set_range_atomic(map, 0, 50);
    g_assert_true(bitmap_range_is_set_atomic(map, 0, 250));
    bitmap_free(map);
}

#define RACE_BITS (64 * 1024)
#define RACE_THREADS 4

typedef struct Race {
    unsigned long *map;
    unsigned index;
    size_t won;
} Race;

/* Half the threads claim single bits, half claim ranges; in opposite directions. */
static gpointer race_thread(gpointer opaque)
{
    Race *r = opaque;
    unsigned long claimed[BITMAP_WORDS(100)];

    if (r->index % 2) {
        for (size_t bit = 0; bit < RACE_BITS; bit++) {
            r->won += !bitmap_test_and_set_atomic(r->map, RACE_BITS - 1 - bit);
        }
    } else {
        for (size_t start = 0; start < RACE_BITS; start += 100) {
            size_t n = MIN(100, RACE_BITS - start);
            size_t won = bitmap_claim_range_atomic(r->map, start, n, claimed);
            g_assert_cmpuint(bitmap_count_set(claimed, n), ==, won);
            r->won += won;
        }
    }
    return NULL;
}

static void test_claim_race(void)
{
    Race races[RACE_THREADS];
    GThread *threads[RACE_THREADS];
    unsigned long *map = bitmap_new(RACE_BITS);
    size_t total = 0;

    for (unsigned i = 0; i < RACE_THREADS; i++) {
        races[i] = (Race){ .map = map, .index = i };
        threads[i] = g_thread_new("race", race_thread, &races[i]);
    }
    for (unsigned i = 0; i < RACE_THREADS; i++) {
        g_thread_join(threads[i]);
        total += races[i].won;
    }
    /* Every bit won exactly once. */
    g_assert_cmpuint(total, ==, RACE_BITS);
    g_assert_cmpuint(bitmap_count_set(map, RACE_BITS), ==, RACE_BITS);
    bitmap_free(map);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/bitmap/plain", test_plain);
    g_test_add_func("/bitmap/populate", test_populate);
    g_test_add_func("/bitmap/atomic/single", test_atomic_single);
    g_test_add_func("/bitmap/atomic/or-take", test_or_take);
    g_test_add_func("/bitmap/atomic/count-set-before", test_count_set_before);
    g_test_add_func("/bitmap/atomic/claim-range", test_claim_range);
    g_test_add_func("/bitmap/atomic/claim-race", test_claim_race);
    return g_test_run();
}
