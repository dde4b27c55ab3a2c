/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Bitmap helpers, including the atomic per-bit and per-range claims shared by concurrent threads. */
#include "util/bitmap.h"

#include <string.h>
#include <glib.h>

#define WORD_OF(bit) ((bit) / BITMAP_BITS_PER_WORD)
#define BIT_IN_WORD(bit) ((bit) % BITMAP_BITS_PER_WORD)

/* Mask of bits [@lo, @hi) within one word, 0 <= lo < hi <= BITS_PER_WORD. */
static unsigned long word_mask(size_t lo, size_t hi)
{
    unsigned long upper = hi == BITMAP_BITS_PER_WORD ? ~0UL : (1UL << hi) - 1;
    return upper & ~((1UL << lo) - 1);
}

unsigned long *bitmap_new(size_t nbits)
{
    return g_new0(unsigned long, BITMAP_WORDS(nbits) ? BITMAP_WORDS(nbits) : 1);
}

void bitmap_populate(unsigned long *map, size_t nbits)
{
    size_t words = BITMAP_WORDS(nbits);
    size_t stride = 4096 / sizeof(*map);

    /* Volatile: a plain store of what is there would be optimised away. */
    for (size_t w = 0; w < words; w += stride) {
        volatile unsigned long *p = &map[w];
        *p = *p;
    }
    if (words) {
        volatile unsigned long *p = &map[words - 1];
        *p = *p;
    }
}

void bitmap_free(unsigned long *map)
{
    g_free(map);
}

/*
 * Walk [@start, @start + @n) word by word, calling @fn with each word's index
 * and the mask of the range's bits in it.
 */
#define FOR_EACH_RANGE_WORD(start, n, w, mask, body)                          \
    do {                                                                      \
        size_t pos_ = (start), end_ = (start) + (n);                          \
        while (pos_ < end_) {                                                 \
            size_t w = WORD_OF(pos_);                                         \
            size_t lo_ = BIT_IN_WORD(pos_);                                   \
            size_t hi_ = MIN((size_t)BITMAP_BITS_PER_WORD, lo_ + (end_ - pos_)); \
            unsigned long mask = word_mask(lo_, hi_);                         \
            body;                                                             \
            pos_ += hi_ - lo_;                                                \
        }                                                                     \
    } while (0)

void bitmap_set_range(unsigned long *map, size_t start, size_t n)
{
    FOR_EACH_RANGE_WORD(start, n, w, mask, map[w] |= mask);
}

void bitmap_clear_range(unsigned long *map, size_t start, size_t n)
{
    FOR_EACH_RANGE_WORD(start, n, w, mask, map[w] &= ~mask);
}

size_t bitmap_count_set(const unsigned long *map, size_t nbits)
{
    size_t count = 0;
    size_t full = nbits / BITMAP_BITS_PER_WORD;

    for (size_t w = 0; w < full; w++) {
        count += __builtin_popcountl(map[w]);
    }
    if (BIT_IN_WORD(nbits)) {
        count += __builtin_popcountl(map[full] & word_mask(0, BIT_IN_WORD(nbits)));
    }
    return count;
}

static size_t find_next(const unsigned long *map, size_t nbits, size_t start,
                        unsigned long invert)
{
    while (start < nbits) {
        size_t w = WORD_OF(start);
        unsigned long word = (map[w] ^ invert) & ~((1UL << BIT_IN_WORD(start)) - 1);

        if (word) {
            size_t bit = w * BITMAP_BITS_PER_WORD + __builtin_ctzl(word);
            return MIN(bit, nbits);
        }
        start = (w + 1) * BITMAP_BITS_PER_WORD;
    }
    return nbits;
}

size_t bitmap_find_next_set(const unsigned long *map, size_t nbits, size_t start)
{
    return find_next(map, nbits, start, 0);
}

size_t bitmap_find_next_zero(const unsigned long *map, size_t nbits, size_t start)
{
    return find_next(map, nbits, start, ~0UL);
}

bool bitmap_test_atomic(const unsigned long *map, size_t bit)
{
    return (__atomic_load_n(&map[WORD_OF(bit)], __ATOMIC_ACQUIRE) >> BIT_IN_WORD(bit)) & 1;
}

bool bitmap_test_and_set_atomic(unsigned long *map, size_t bit)
{
    unsigned long mask = 1UL << BIT_IN_WORD(bit);

    /* A relaxed pre-check avoids the locked instruction for bits already won. */
    if (__atomic_load_n(&map[WORD_OF(bit)], __ATOMIC_RELAXED) & mask) {
        return true;
    }
    return __atomic_fetch_or(&map[WORD_OF(bit)], mask, __ATOMIC_ACQ_REL) & mask;
}

bool bitmap_test_and_clear_atomic(unsigned long *map, size_t bit)
{
    unsigned long mask = 1UL << BIT_IN_WORD(bit);

    return __atomic_fetch_and(&map[WORD_OF(bit)], ~mask, __ATOMIC_ACQ_REL) & mask;
}

void bitmap_set_range_atomic(unsigned long *map, size_t start, size_t n)
{
    FOR_EACH_RANGE_WORD(start, n, w, mask,
                        __atomic_fetch_or(&map[w], mask, __ATOMIC_RELEASE));
}

void bitmap_or_atomic(unsigned long *map, const unsigned long *src, size_t nbits)
{
    for (size_t w = 0; w < BITMAP_WORDS(nbits); w++) {
        if (src[w]) {
            __atomic_fetch_or(&map[w], src[w], __ATOMIC_RELEASE);
        }
    }
}

size_t bitmap_take_atomic(unsigned long *map, unsigned long *out, size_t nbits)
{
    size_t count = 0;

    for (size_t w = 0; w < BITMAP_WORDS(nbits); w++) {
        out[w] = __atomic_load_n(&map[w], __ATOMIC_RELAXED)
                 ? __atomic_exchange_n(&map[w], 0, __ATOMIC_ACQ_REL) : 0;
        count += (size_t)__builtin_popcountl(out[w]);
    }
    return count;
}

size_t bitmap_claim_range_atomic(unsigned long *map, size_t start, size_t n,
                                 unsigned long *claimed)
{
    size_t won_total = 0;

    if (claimed) {
        memset(claimed, 0, BITMAP_WORDS(n) * sizeof(unsigned long));
    }
    FOR_EACH_RANGE_WORD(start, n, w, mask, {
        unsigned long old = __atomic_load_n(&map[w], __ATOMIC_RELAXED);
        unsigned long won = 0;

        if ((old & mask) != mask) {
            old = __atomic_fetch_or(&map[w], mask, __ATOMIC_ACQ_REL);
            won = mask & ~old;
        }
        won_total += __builtin_popcountl(won);
        while (claimed && won) {
            size_t bit = w * BITMAP_BITS_PER_WORD + __builtin_ctzl(won);
            bitmap_set_bit(claimed, bit - start);
            won &= won - 1;
        }
    });
    return won_total;
}

bool bitmap_range_is_set_atomic(const unsigned long *map, size_t start, size_t n)
{
    bool all = true;

    FOR_EACH_RANGE_WORD(start, n, w, mask, {
        if ((__atomic_load_n(&map[w], __ATOMIC_ACQUIRE) & mask) != mask) {
            all = false;
            break;
        }
    });
    return all;
}

size_t bitmap_count_set_before_atomic(const unsigned long *map, size_t end, size_t max)
{
    size_t n = 0;

    max = MIN(max, end);
    while (n < max) {
        size_t bit = end - 1 - n;
        size_t avail = bit % BITMAP_BITS_PER_WORD + 1;   /* bits at and below @bit in its word */
        unsigned long w = __atomic_load_n(&map[bit / BITMAP_BITS_PER_WORD], __ATOMIC_ACQUIRE);
        /* @bit to the top: the run is the leading ones. */
        unsigned long v = w << (BITMAP_BITS_PER_WORD - avail);
        size_t ones = ~v ? (size_t)__builtin_clzl(~v) : BITMAP_BITS_PER_WORD;

        if (ones < avail) {
            n += ones;
            break;
        }
        n += avail;
    }
    return MIN(n, max);
}
