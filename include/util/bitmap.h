/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Bitmaps of unsigned long words: plain helpers and the atomic claims that let threads share one. */
#ifndef UTIL_BITMAP_H
#define UTIL_BITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>

#define BITMAP_BITS_PER_WORD (sizeof(unsigned long) * CHAR_BIT)
/* Words needed for @nbits bits. */
#define BITMAP_WORDS(nbits) (((nbits) + BITMAP_BITS_PER_WORD - 1) / BITMAP_BITS_PER_WORD)

/* A zeroed bitmap of @nbits bits; free with bitmap_free(). Never NULL. */
unsigned long *bitmap_new(size_t nbits);

/* Free a bitmap from bitmap_new() (NULL is fine). */
void bitmap_free(unsigned long *map);

/*
 * Write every page of @map's memory now, keeping its bits (not atomic: no
 * other thread may write it meanwhile). The first write to fresh memory is
 * a page fault, 20-30 us each on a paravirtual host: a snapshot's pause
 * that cleared and filled a 2 GiB guest's new maps took 27 of them.
 */
void bitmap_populate(unsigned long *map, size_t nbits);

/* Plain (non-atomic) single-bit access: for a bitmap one thread owns. */
static inline bool bitmap_test_bit(const unsigned long *map, size_t bit)
{
    return (map[bit / BITMAP_BITS_PER_WORD] >> (bit % BITMAP_BITS_PER_WORD)) & 1;
}

static inline void bitmap_set_bit(unsigned long *map, size_t bit)
{
    map[bit / BITMAP_BITS_PER_WORD] |= 1UL << (bit % BITMAP_BITS_PER_WORD);
}

static inline void bitmap_clear_bit(unsigned long *map, size_t bit)
{
    map[bit / BITMAP_BITS_PER_WORD] &= ~(1UL << (bit % BITMAP_BITS_PER_WORD));
}

/* Set / clear bits [@start, @start + @n) (non-atomic). */
void bitmap_set_range(unsigned long *map, size_t start, size_t n);
void bitmap_clear_range(unsigned long *map, size_t start, size_t n);

/* Number of set bits among the first @nbits. */
size_t bitmap_count_set(const unsigned long *map, size_t nbits);

/* Index of the first set (zero) bit at or after @start, or @nbits if none. */
size_t bitmap_find_next_set(const unsigned long *map, size_t nbits, size_t start);
size_t bitmap_find_next_zero(const unsigned long *map, size_t nbits, size_t start);

/*
 * Atomic access, safe while other threads use the same words.
 * Setting has release semantics and testing acquire semantics, so a thread
 * that sees a bit set also sees every store its setter made before setting it
 * (e.g. "page copied" is published only after the copy is complete).
 */

/* True if @bit is set (acquire load). */
bool bitmap_test_atomic(const unsigned long *map, size_t bit);

/*
 * Atomically set @bit; true if it was already set. Exactly one of several
 * racing callers gets false: that caller "claimed" the bit.
 */
bool bitmap_test_and_set_atomic(unsigned long *map, size_t bit);

/* Atomically clear @bit; true if it was set. */
bool bitmap_test_and_clear_atomic(unsigned long *map, size_t bit);

/* Atomically set bits [@start, @start + @n) (release). */
void bitmap_set_range_atomic(unsigned long *map, size_t start, size_t n);

/* Atomically set in @map every bit set in @src (release); zero words of @src cost no write. */
void bitmap_or_atomic(unsigned long *map, const unsigned long *src, size_t nbits);

/*
 * Move @map's bits into @out (which gets every word) and clear them, one
 * word at a time; returns how many were set. A word read as zero is only
 * read: no locked instruction for it. A bit set meanwhile stays for the
 * next call.
 */
size_t bitmap_take_atomic(unsigned long *map, unsigned long *out, size_t nbits);

/*
 * Claim bits [@start, @start + @n) atomically, one word at a time: every bit
 * in the range ends up set, and @claimed (a caller-provided bitmap of at least
 * @n bits, indexed from 0 = @start; may be NULL) gets exactly the bits this
 * call changed from 0 to 1, i.e. the ones this caller won. Returns how many.
 */
size_t bitmap_claim_range_atomic(unsigned long *map, size_t start, size_t n,
                                 unsigned long *claimed);

/* True if every bit in [@start, @start + @n) is set (acquire loads). */
bool bitmap_range_is_set_atomic(const unsigned long *map, size_t start, size_t n);

/* How many bits are set in a row right below @end (acquire loads), counting at most @max. */
size_t bitmap_count_set_before_atomic(const unsigned long *map, size_t end, size_t max);

#endif
