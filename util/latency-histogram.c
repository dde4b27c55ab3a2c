/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Log-linear latency histogram with atomic counters and percentile queries. */
#include "util/latency-histogram.h"

#include <stdbool.h>
#include <string.h>

#define SUB_BITS LATENCY_HISTOGRAM_SUB_BITS
#define SUB_COUNT (1u << SUB_BITS)

static unsigned bucket_of(uint64_t v)
{
    if (v < SUB_COUNT) {
        return (unsigned)v;
    }
    unsigned exp = 63 - __builtin_clzll(v);          /* >= SUB_BITS */
    unsigned mantissa = (v >> (exp - SUB_BITS)) & (SUB_COUNT - 1);
    return SUB_COUNT + (exp - SUB_BITS) * SUB_COUNT + mantissa;
}

/* Lowest value of bucket @b, and its width. */
static void bucket_range(unsigned b, uint64_t *low, uint64_t *width)
{
    if (b < SUB_COUNT) {
        *low = b;
        *width = 1;
        return;
    }
    unsigned exp = (b - SUB_COUNT) / SUB_COUNT + SUB_BITS;
    uint64_t mantissa = (b - SUB_COUNT) % SUB_COUNT;
    *width = 1ULL << (exp - SUB_BITS);
    *low = (1ULL << exp) + mantissa * *width;
}

void latency_histogram_init(LatencyHistogram *h)
{
    memset(h, 0, sizeof(*h));
    h->min_ns = UINT64_MAX;
}

void latency_histogram_record(LatencyHistogram *h, uint64_t ns)
{
    __atomic_fetch_add(&h->buckets[bucket_of(ns)], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->sum_ns, ns, __ATOMIC_RELAXED);

    uint64_t cur = __atomic_load_n(&h->max_ns, __ATOMIC_RELAXED);
    while (ns > cur && !__atomic_compare_exchange_n(&h->max_ns, &cur, ns, true,
                                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    cur = __atomic_load_n(&h->min_ns, __ATOMIC_RELAXED);
    while (ns < cur && !__atomic_compare_exchange_n(&h->min_ns, &cur, ns, true,
                                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    /* Count last: a reader that sees the count also finds the sample's bucket. */
    __atomic_fetch_add(&h->count, 1, __ATOMIC_RELEASE);
}

uint64_t latency_histogram_count(const LatencyHistogram *h)
{
    return __atomic_load_n(&h->count, __ATOMIC_ACQUIRE);
}

uint64_t latency_histogram_max_ns(const LatencyHistogram *h)
{
    return __atomic_load_n(&h->max_ns, __ATOMIC_RELAXED);
}

uint64_t latency_histogram_mean_ns(const LatencyHistogram *h)
{
    uint64_t n = latency_histogram_count(h);
    return n ? __atomic_load_n(&h->sum_ns, __ATOMIC_RELAXED) / n : 0;
}

uint64_t latency_histogram_percentile_ns(const LatencyHistogram *h, double percent)
{
    uint64_t total = 0;
    uint64_t counts[LATENCY_HISTOGRAM_BUCKETS];

    /* Snapshot the buckets once so the rank and the walk agree. */
    for (unsigned b = 0; b < LATENCY_HISTOGRAM_BUCKETS; b++) {
        counts[b] = __atomic_load_n(&h->buckets[b], __ATOMIC_RELAXED);
        total += counts[b];
    }
    if (!total) {
        return 0;
    }
    if (percent > 100) {
        percent = 100;
    }
    /* Rank of the sample wanted, 1-based, rounded up ("nearest rank"). */
    uint64_t rank = (uint64_t)(percent / 100.0 * (double)total + 0.999999);
    if (rank < 1) {
        rank = 1;
    }
    if (rank > total) {
        rank = total;
    }

    uint64_t max = latency_histogram_max_ns(h);
    if (rank == total) {
        return max;     /* the top sample is known exactly */
    }
    uint64_t min = __atomic_load_n(&h->min_ns, __ATOMIC_RELAXED);
    uint64_t seen = 0;
    for (unsigned b = 0; b < LATENCY_HISTOGRAM_BUCKETS; b++) {
        seen += counts[b];
        if (seen >= rank) {
            uint64_t low, width, v;
            bucket_range(b, &low, &width);
            v = low + width / 2;
            if (v > max) {
                v = max;
            }
            if (v < min) {
                v = min;
            }
            return v;
        }
    }
    return max;
}

uint64_t latency_histogram_percentile_us(const LatencyHistogram *h, double percent)
{
    return (latency_histogram_percentile_ns(h, percent) + 500) / 1000;
}

void latency_histogram_merge(LatencyHistogram *dst, const LatencyHistogram *src)
{
    for (unsigned b = 0; b < LATENCY_HISTOGRAM_BUCKETS; b++) {
        uint64_t c = __atomic_load_n(&src->buckets[b], __ATOMIC_RELAXED);
        if (c) {
            __atomic_fetch_add(&dst->buckets[b], c, __ATOMIC_RELAXED);
        }
    }
    __atomic_fetch_add(&dst->sum_ns, __atomic_load_n(&src->sum_ns, __ATOMIC_RELAXED),
                       __ATOMIC_RELAXED);
    uint64_t smax = latency_histogram_max_ns(src);
    if (smax > dst->max_ns) {
        dst->max_ns = smax;
    }
    uint64_t smin = __atomic_load_n(&src->min_ns, __ATOMIC_RELAXED);
    if (smin < dst->min_ns) {
        dst->min_ns = smin;
    }
    __atomic_fetch_add(&dst->count, latency_histogram_count(src), __ATOMIC_RELEASE);
}
