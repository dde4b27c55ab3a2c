/* SPDX-License-Identifier: GPL-2.0-or-later */
/* buffer_is_zero(): the zero-page test on the migration hot path, vectorised where the CPU allows. */
#include "util/zero-page.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* Byte-wise tail and head handling; short buffers only. */
static bool zero_bytes(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i]) {
            return false;
        }
    }
    return true;
}

/*
 * Portable path: OR eight words per step so the branch is taken once per
 * 64 bytes; the compiler vectorises this well even without intrinsics.
 */
static bool zero_words(const uint64_t *p, size_t words)
{
    size_t i = 0;

    for (; i + 8 <= words; i += 8) {
        if (p[i] | p[i + 1] | p[i + 2] | p[i + 3] |
            p[i + 4] | p[i + 5] | p[i + 6] | p[i + 7]) {
            return false;
        }
    }
    for (; i < words; i++) {
        if (p[i]) {
            return false;
        }
    }
    return true;
}

#if defined(__x86_64__)
/* @len is a multiple of 64 and @buf 16-byte aligned. */
static bool zero_sse2(const void *buf, size_t len)
{
    const __m128i *p = buf;
    const __m128i *end = (const __m128i *)((const char *)buf + len);

    for (; p < end; p += 4) {
        __m128i t = _mm_or_si128(_mm_or_si128(p[0], p[1]),
                                 _mm_or_si128(p[2], p[3]));
        if (_mm_movemask_epi8(_mm_cmpeq_epi8(t, _mm_setzero_si128())) != 0xFFFF) {
            return false;
        }
    }
    return true;
}

/* @len is a multiple of 128 and @buf 32-byte aligned. */
__attribute__((target("avx2")))
static bool zero_avx2(const void *buf, size_t len)
{
    const __m256i *p = buf;
    const __m256i *end = (const __m256i *)((const char *)buf + len);

    for (; p < end; p += 4) {
        __m256i t = _mm256_or_si256(_mm256_or_si256(p[0], p[1]),
                                    _mm256_or_si256(p[2], p[3]));
        if (!_mm256_testz_si256(t, t)) {
            return false;
        }
    }
    return true;
}

typedef bool (*ZeroFn)(const void *buf, size_t len);

/* 0 not yet decided, 1 SSE2, 2 AVX2. A benign race: every thread picks the same. */
static int zero_impl;

static ZeroFn zero_vector_fn(size_t *align)
{
    int impl = __atomic_load_n(&zero_impl, __ATOMIC_RELAXED);

    if (!impl) {
        __builtin_cpu_init();
        impl = __builtin_cpu_supports("avx2") ? 2 : 1;
        __atomic_store_n(&zero_impl, impl, __ATOMIC_RELAXED);
    }
    if (impl == 2) {
        *align = 128;
        return zero_avx2;
    }
    *align = 64;
    return zero_sse2;
}
#endif

bool buffer_is_zero(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    size_t head;

    if (len < 256) {
        if (len >= 8 && ((uintptr_t)p & 7) == 0) {
            return zero_words((const uint64_t *)p, len / 8) &&
                   zero_bytes(p + (len & ~(size_t)7), len & 7);
        }
        return zero_bytes(p, len);
    }

    /* Check the first bytes early: most non-zero pages differ right away. */
    {
        uint64_t first;
        memcpy(&first, p, sizeof(first));
        if (first) {
            return false;
        }
    }

#if defined(__x86_64__)
    {
        size_t align;
        ZeroFn fn = zero_vector_fn(&align);
        size_t mis = (uintptr_t)p & 31;
        size_t body;

        head = mis ? 32 - mis : 0;
        if (!zero_bytes(p, head)) {
            return false;
        }
        p += head;
        len -= head;
        body = len & ~(align - 1);
        if (!fn(p, body)) {
            return false;
        }
        p += body;
        len -= body;
        return zero_bytes(p, len);
    }
#else
    head = (8 - ((uintptr_t)p & 7)) & 7;
    if (!zero_bytes(p, head)) {
        return false;
    }
    p += head;
    len -= head;
    return zero_words((const uint64_t *)p, len / 8) &&
           zero_bytes(p + (len & ~(size_t)7), len & 7);
#endif
}
