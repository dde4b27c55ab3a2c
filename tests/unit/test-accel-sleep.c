/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Tests of the test accelerator's vCPU sleep: a pause request ends it, as a
 * kick ends a KVM vCPU's halt; nothing else does. The bounds are seconds
 * apart from what they check, so a loaded machine cannot flip them. And the
 * pausing thread's spin while vCPUs park (machine_pause_wait_spin()), which
 * both accelerators' pauses use: only when asked, never past its bound.
 */
#include <glib.h>

#include "accel/test/test-accel.h"
#include "system/machine.h"

#define LONG_SLEEP_US (10 * G_USEC_PER_SEC)

typedef struct Sleeper {
    TestVcpu *v;
    gint64 us;
    gint64 slept_us;
} Sleeper;

static gpointer sleeper_main(gpointer opaque)
{
    Sleeper *s = opaque;
    gint64 t0 = g_get_monotonic_time();

    test_vcpu_sleep(s->v, s->us);
    s->slept_us = g_get_monotonic_time() - t0;
    return NULL;
}

static TestAccel *accel_new(void)
{
    TestAccel *a = g_new0(TestAccel, 1);

    g_mutex_init(&a->lock);
    g_cond_init(&a->cond);
    a->vcpus[0].accel = a;
    return a;
}

static void accel_free(TestAccel *a)
{
    g_mutex_clear(&a->lock);
    g_cond_clear(&a->cond);
    g_free(a);
}

/* What pausing the VM does to a sleeping vCPU (test_accel_pause_vcpus()). */
static void request_pause(TestAccel *a)
{
    g_mutex_lock(&a->lock);
    g_atomic_int_set(&a->pause_requested, 1);
    g_cond_broadcast(&a->cond);
    g_mutex_unlock(&a->lock);
}

static void test_pause_ends_sleep(void)
{
    TestAccel *a = accel_new();
    Sleeper s = { .v = &a->vcpus[0], .us = LONG_SLEEP_US };
    GThread *t = g_thread_new("sleeper", sleeper_main, &s);

    g_usleep(20000);
    request_pause(a);
    g_thread_join(t);
    g_test_message("slept %" G_GINT64_FORMAT " us of %" G_GINT64_FORMAT, s.slept_us, s.us);
    g_assert_cmpint(s.slept_us, <, LONG_SLEEP_US / 2);
    accel_free(a);
}

/* Other wake-ups on the same condition (a vCPU parking, a resume) do not end it. */
static void test_other_wakeups_do_not(void)
{
    TestAccel *a = accel_new();
    Sleeper s = { .v = &a->vcpus[0], .us = 200000 };
    GThread *t = g_thread_new("sleeper", sleeper_main, &s);

    for (int i = 0; i < 10; i++) {
        g_usleep(5000);
        g_mutex_lock(&a->lock);
        g_cond_broadcast(&a->cond);
        g_mutex_unlock(&a->lock);
    }
    g_thread_join(t);
    g_assert_cmpint(s.slept_us, >=, s.us);
    accel_free(a);
}

/* Already asked to pause: no sleep at all. */
static void test_pause_pending(void)
{
    TestAccel *a = accel_new();
    Sleeper s = { .v = &a->vcpus[0], .us = LONG_SLEEP_US };

    request_pause(a);
    sleeper_main(&s);
    g_assert_cmpint(s.slept_us, <, LONG_SLEEP_US / 2);
    accel_free(a);
}

/* The least of five runs of machine_pause_wait_spin(), in microseconds. */
static gint64 least_spin_us(Machine *m, const unsigned *parked, unsigned threads)
{
    gint64 least = G_MAXINT64;

    for (int i = 0; i < 5; i++) {
        gint64 t0 = g_get_monotonic_time();

        machine_pause_wait_spin(m, parked, 0, threads);
        least = MIN(least, g_get_monotonic_time() - t0);
    }
    return least;
}

static void test_pause_spin(void)
{
    Machine m = { 0 };
    unsigned parked = 0;

    /* Not asked: no spin, though nothing parked. */
    g_assert_cmpint(least_spin_us(&m, &parked, 1), <, 400);
    machine_set_pause_spin(&m, true);
    /* Asked, and nothing parks: it spins its half millisecond, then gives up. */
    gint64 t0 = g_get_monotonic_time();
    machine_pause_wait_spin(&m, &parked, 0, 1);
    g_assert_cmpint(g_get_monotonic_time() - t0, >=, 500);
    /* Asked, and every vCPU parked already (one counted by the caller itself). */
    parked = 1;
    g_assert_cmpint(least_spin_us(&m, &parked, 1), <, 400);
    g_assert_cmpint(least_spin_us(&m, &(unsigned){ 0 }, 0), <, 400);
    machine_set_pause_spin(&m, false);
    parked = 0;
    g_assert_cmpint(least_spin_us(&m, &parked, 1), <, 400);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/test-accel/sleep/pause-ends-it", test_pause_ends_sleep);
    g_test_add_func("/test-accel/sleep/other-wakeups-do-not", test_other_wakeups_do_not);
    g_test_add_func("/test-accel/sleep/pause-pending", test_pause_pending);
    g_test_add_func("/test-accel/pause/spin", test_pause_spin);
    return g_test_run();
}
