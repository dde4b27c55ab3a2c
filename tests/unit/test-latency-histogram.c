/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests of util/latency-histogram: percentiles within the bucket resolution, concurrent recording, merge. */
#include <glib.h>

#include "util/latency-histogram.h"

static void assert_near(uint64_t got, uint64_t want)
{
    /* Bucket resolution is 1/16 of the value's power of two: within 7%. */
    g_assert_cmpfloat(got, >=, want * 0.93);
    g_assert_cmpfloat(got, <=, want * 1.07);
}

static void test_empty(void)
{
    LatencyHistogram h;

    latency_histogram_init(&h);
    g_assert_cmpuint(latency_histogram_count(&h), ==, 0);
    g_assert_cmpuint(latency_histogram_percentile_ns(&h, 50), ==, 0);
    g_assert_cmpuint(latency_histogram_max_ns(&h), ==, 0);
    g_assert_cmpuint(latency_histogram_mean_ns(&h), ==, 0);
}

static void test_percentiles(void)
{
    LatencyHistogram h;

    latency_histogram_init(&h);
    /* 1..10000 us: p50 = 5000 us, p99 = 9900 us, p99.9 = 9990 us. */
    for (uint64_t us = 1; us <= 10000; us++) {
        latency_histogram_record(&h, us * 1000);
    }
    g_assert_cmpuint(latency_histogram_count(&h), ==, 10000);
    assert_near(latency_histogram_percentile_us(&h, 50), 5000);
    assert_near(latency_histogram_percentile_us(&h, 99), 9900);
    assert_near(latency_histogram_percentile_us(&h, 99.9), 9990);
    g_assert_cmpuint(latency_histogram_max_ns(&h), ==, 10000 * 1000);
    g_assert_cmpuint(latency_histogram_percentile_ns(&h, 100), <=, 10000 * 1000);
    assert_near(latency_histogram_mean_ns(&h), 5000500);
}

static void test_small_values_exact(void)
{
    LatencyHistogram h;

    latency_histogram_init(&h);
    for (uint64_t v = 0; v < 16; v++) {
        latency_histogram_record(&h, v);
    }
    g_assert_cmpuint(latency_histogram_percentile_ns(&h, 50), ==, 7);
    g_assert_cmpuint(latency_histogram_percentile_ns(&h, 100), ==, 15);
}

static void test_tail(void)
{
    LatencyHistogram h;

    latency_histogram_init(&h);
    /* 999 fast faults at 5 us and one 3 ms stall: p99 stays fast, max shows the stall. */
    for (int i = 0; i < 999; i++) {
        latency_histogram_record(&h, 5000);
    }
    latency_histogram_record(&h, 3000000);
    assert_near(latency_histogram_percentile_us(&h, 50), 5);
    assert_near(latency_histogram_percentile_us(&h, 99), 5);
    g_assert_cmpuint(latency_histogram_percentile_us(&h, 100), ==, 3000);
    g_assert_cmpuint(latency_histogram_max_ns(&h), ==, 3000000);
}

#define THREADS 4
#define PER_THREAD 100000

static gpointer record_thread(gpointer opaque)
{
    for (uint64_t i = 0; i < PER_THREAD; i++) {
        latency_histogram_record(opaque, 1000 + i % 1000);
    }
    return NULL;
}

static void test_concurrent(void)
{
    LatencyHistogram *h = g_new(LatencyHistogram, 1);
    GThread *t[THREADS];

    latency_histogram_init(h);
    for (int i = 0; i < THREADS; i++) {
        t[i] = g_thread_new("rec", record_thread, h);
    }
    for (int i = 0; i < THREADS; i++) {
        g_thread_join(t[i]);
    }
    g_assert_cmpuint(latency_histogram_count(h), ==, THREADS * PER_THREAD);
    g_assert_cmpuint(latency_histogram_max_ns(h), ==, 1999);
    assert_near(latency_histogram_percentile_ns(h, 50), 1500);
    g_free(h);
}

static void test_merge(void)
{
    LatencyHistogram a, b;

    latency_histogram_init(&a);
    latency_histogram_init(&b);
    latency_histogram_record(&a, 10000);
    latency_histogram_record(&b, 20000);
    latency_histogram_record(&b, 30000);
    latency_histogram_merge(&a, &b);
    g_assert_cmpuint(latency_histogram_count(&a), ==, 3);
    g_assert_cmpuint(latency_histogram_max_ns(&a), ==, 30000);
    assert_near(latency_histogram_percentile_ns(&a, 50), 20000);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/latency-histogram/empty", test_empty);
    g_test_add_func("/latency-histogram/percentiles", test_percentiles);
    g_test_add_func("/latency-histogram/small-values-exact", test_small_values_exact);
    g_test_add_func("/latency-histogram/tail", test_tail);
    g_test_add_func("/latency-histogram/concurrent", test_concurrent);
    g_test_add_func("/latency-histogram/merge", test_merge);
    return g_test_run();
}
