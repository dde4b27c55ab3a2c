/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A lock-free log-linear latency histogram: record from any thread, read percentiles in microseconds. */
#ifndef UTIL_LATENCY_HISTOGRAM_H
#define UTIL_LATENCY_HISTOGRAM_H

#include <stdint.h>

/*
 * Values are nanoseconds. Below 2^LATENCY_HISTOGRAM_SUB_BITS they are exact;
 * above, each power of two is split into 2^SUB_BITS buckets, so a percentile
 * is within about 3% of the true value (bucket midpoint) - enough to tell
 * 5 us from 8 us and 1 ms from 1.1 ms, in 8 KiB of counters.
 */
#define LATENCY_HISTOGRAM_SUB_BITS 4
#define LATENCY_HISTOGRAM_BUCKETS \
    ((1u << LATENCY_HISTOGRAM_SUB_BITS) * (64 - LATENCY_HISTOGRAM_SUB_BITS + 1))

typedef struct LatencyHistogram {
    uint64_t buckets[LATENCY_HISTOGRAM_BUCKETS];
    uint64_t count;
    uint64_t sum_ns;
    uint64_t max_ns;
    uint64_t min_ns;   /* UINT64_MAX while empty */
} LatencyHistogram;

/* Empty @h (also valid for a zero-filled struct, except min). */
void latency_histogram_init(LatencyHistogram *h);

/* Add one sample. Lock-free (relaxed atomics): any number of threads may record at once. */
void latency_histogram_record(LatencyHistogram *h, uint64_t ns);

/* Samples recorded so far. */
uint64_t latency_histogram_count(const LatencyHistogram *h);

/*
 * The value at or below which @percent (0-100] of the samples lie, in
 * nanoseconds, within the bucket resolution and never above the true
 * maximum. 0 when empty. Readers may run while writers record; the answer
 * then reflects some recent state.
 */
uint64_t latency_histogram_percentile_ns(const LatencyHistogram *h, double percent);

/* Same in microseconds, rounded to nearest (a 2.6 us sample reads 3). */
uint64_t latency_histogram_percentile_us(const LatencyHistogram *h, double percent);

/* Largest sample, nanoseconds (exact); 0 when empty. */
uint64_t latency_histogram_max_ns(const LatencyHistogram *h);

/* Mean sample, nanoseconds; 0 when empty. */
uint64_t latency_histogram_mean_ns(const LatencyHistogram *h);

/* Add @src's samples into @dst (e.g. per-thread histograms into a total). */
void latency_histogram_merge(LatencyHistogram *dst, const LatencyHistogram *src);

#endif
