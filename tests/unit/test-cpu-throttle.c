/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The vCPU throttle (system/cpu-throttle.c): its share of sleep, and what ends a sleep early. */
#include "system/cpu-throttle.h"

#include <glib.h>

#include "accel/accel.h"
#include "system/machine.h"

static void test_sleep_share(void)
{
    g_assert_cmpuint(cpu_throttle_sleep_us(0), ==, 0);
    g_assert_cmpuint(cpu_throttle_sleep_us(20), ==, 2500);
    g_assert_cmpuint(cpu_throttle_sleep_us(50), ==, 10000);
    g_assert_cmpuint(cpu_throttle_sleep_us(99), ==, 990000);
    g_assert_cmpuint(cpu_throttle_sleep_us(100), ==, 990000);
}

/* A stand-in vCPU: calls the check between short bursts of "guest code". */
typedef struct FakeVcpu {
    CpuThrottle *t;
    CpuThrottleVcpu v;
    int quit;             /* atomic */
    uint64_t slept_us;    /* atomic */
    uint64_t last_sleep_us; /* atomic: the length of its last sleep */
    int asleep;           /* atomic: inside a check that sleeps */
} FakeVcpu;

static gpointer fake_vcpu_thread(gpointer opaque)
{
    FakeVcpu *f = opaque;

    while (!g_atomic_int_get(&f->quit)) {
        uint64_t slept;

        g_usleep(200);
        g_atomic_int_set(&f->asleep, 1);
        slept = cpu_throttle_vcpu_check(f->t, &f->v);
        g_atomic_int_set(&f->asleep, 0);
        if (slept) {
            __atomic_fetch_add(&f->slept_us, slept, __ATOMIC_RELAXED);
            __atomic_store_n(&f->last_sleep_us, slept, __ATOMIC_RELAXED);
        }
    }
    return NULL;
}

/* At 50% the vCPU sleeps about half the time, and not at all once stopped. */
static void test_half_the_time(void)
{
    CpuThrottle t;
    FakeVcpu f = { .t = &t };
    GThread *th;
    gint64 start;
    uint64_t slept;

    cpu_throttle_init(&t, NULL);
    th = g_thread_new("fake-vcpu", fake_vcpu_thread, &f);
    g_usleep(50 * 1000);
    g_assert_cmpuint(__atomic_load_n(&f.slept_us, __ATOMIC_RELAXED), ==, 0);

    cpu_throttle_set(&t, 50);
    g_assert_cmpint(cpu_throttle_get_percent(&t), ==, 50);
    start = g_get_monotonic_time();
    g_usleep(600 * 1000);
    slept = __atomic_load_n(&f.slept_us, __ATOMIC_RELAXED);
    /* Run slices of 10 ms, sleeps of 10 ms; sleeps come late on a busy host, not early. */
    double share = (double)slept / (double)(g_get_monotonic_time() - start);
    g_test_message("slept %.0f%% of the time at 50%%", share * 100);
    g_assert_cmpfloat(share, >, 0.35);
    g_assert_cmpfloat(share, <, 0.85);
    g_assert_cmpuint(__atomic_load_n(&f.last_sleep_us, __ATOMIC_RELAXED), >=, 9000);

    cpu_throttle_stop(&t);
    g_usleep(30 * 1000);
    slept = __atomic_load_n(&f.slept_us, __ATOMIC_RELAXED);
    g_usleep(100 * 1000);
    g_assert_cmpuint(__atomic_load_n(&f.slept_us, __ATOMIC_RELAXED), ==, slept);
    g_atomic_int_set(&f.quit, 1);
    g_thread_join(th);
    cpu_throttle_destroy(&t);
}

/* Wait until the fake vCPU is in a sleep of the throttle (a 99% one lasts 990 ms). */
static void wait_for_long_sleep(FakeVcpu *f)
{
    gint64 deadline = g_get_monotonic_time() + 2 * G_USEC_PER_SEC;
    uint64_t before = __atomic_load_n(&f->slept_us, __ATOMIC_RELAXED);

    /* The slice is 10 ms: after 50 ms it is asleep, unless it slept already. */
    while (g_get_monotonic_time() < deadline) {
        g_usleep(50 * 1000);
        if (g_atomic_int_get(&f->asleep) &&
            __atomic_load_n(&f->slept_us, __ATOMIC_RELAXED) == before) {
            return;
        }
        before = __atomic_load_n(&f->slept_us, __ATOMIC_RELAXED);
    }
    g_assert_not_reached();
}

/* A pause must not wait for a 99% sleep: holding wakes it, and nobody sleeps while held. */
static void test_hold_wakes(void)
{
    CpuThrottle t;
    FakeVcpu f = { .t = &t };
    GThread *th;
    gint64 start;

    cpu_throttle_init(&t, NULL);
    cpu_throttle_set(&t, 99);
    th = g_thread_new("fake-vcpu", fake_vcpu_thread, &f);
    wait_for_long_sleep(&f);
    start = g_get_monotonic_time();
    cpu_throttle_hold(&t, true);
    while (g_atomic_int_get(&f.asleep) && g_get_monotonic_time() - start < G_USEC_PER_SEC) {
        g_usleep(1000);
    }
    g_assert_cmpint(g_get_monotonic_time() - start, <, 500 * 1000);
    g_assert_cmpuint(__atomic_load_n(&f.last_sleep_us, __ATOMIC_RELAXED), <, 900 * 1000);

    /* Held: still throttled at 99%, but the vCPU keeps running. */
    uint64_t slept = __atomic_load_n(&f.slept_us, __ATOMIC_RELAXED);
    g_usleep(200 * 1000);
    g_assert_cmpuint(__atomic_load_n(&f.slept_us, __ATOMIC_RELAXED) - slept, <, 20 * 1000);
    g_assert_cmpint(cpu_throttle_get_percent(&t), ==, 99);

    /* Released: it sleeps again. */
    cpu_throttle_hold(&t, false);
    wait_for_long_sleep(&f);
    cpu_throttle_stop(&t);
    start = g_get_monotonic_time();
    while (g_atomic_int_get(&f.asleep) && g_get_monotonic_time() - start < G_USEC_PER_SEC) {
        g_usleep(1000);
    }
    g_assert_cmpint(g_get_monotonic_time() - start, <, 500 * 1000);
    g_assert_cmpint(cpu_throttle_get_percent(&t), ==, 0);
    g_atomic_int_set(&f.quit, 1);
    g_thread_join(th);
    cpu_throttle_destroy(&t);
}

/* A stand-in accelerator that only counts kicks and passes them to its vCPU. */
typedef struct FakeKvm {
    GMutex lock;
    GCond kicked;
    int kicks;           /* under lock */
} FakeKvm;

static void fake_kvm_kick(Machine *m)
{
    FakeKvm *k = m->accel_state;

    g_mutex_lock(&k->lock);
    k->kicks++;
    g_cond_broadcast(&k->kicked);
    g_mutex_unlock(&k->lock);
}

static int fake_kvm_kicks(FakeKvm *k)
{
    g_mutex_lock(&k->lock);
    int n = k->kicks;
    g_mutex_unlock(&k->lock);
    return n;
}

/* Where guest code runs in the kernel, the vCPUs are kicked once a slice while throttled. */
static void test_kicker(void)
{
    FakeKvm k = { 0 };
    AccelOps ops = { .name = "kicked", .kick_vcpus = fake_kvm_kick };
    Machine m = { .accel = &ops, .accel_state = &k };
    CpuThrottle t;
    int n;

    g_mutex_init(&k.lock);
    g_cond_init(&k.kicked);
    cpu_throttle_init(&t, &m);
    g_usleep(50 * 1000);
    g_assert_cmpint(fake_kvm_kicks(&k), ==, 0);
    cpu_throttle_set(&t, 30);
    g_usleep(300 * 1000);
    n = fake_kvm_kicks(&k);
    g_test_message("%d kicks in 300 ms", n);
    g_assert_cmpint(n, >=, 5);
    g_assert_cmpint(n, <=, 31);
    cpu_throttle_stop(&t);
    n = fake_kvm_kicks(&k);
    g_usleep(100 * 1000);
    g_assert_cmpint(fake_kvm_kicks(&k), ==, n);
    /* A second start gets a new kicker; 0 stops it again. */
    cpu_throttle_set(&t, 10);
    g_usleep(100 * 1000);
    g_assert_cmpint(fake_kvm_kicks(&k), >, n);
    cpu_throttle_set(&t, 0);
    g_assert_cmpint(cpu_throttle_get_percent(&t), ==, 0);
    g_assert_null(t.kicker);
    cpu_throttle_destroy(&t);

    /* Without kick_vcpus there is no kicker thread at all. */
    ops.kick_vcpus = NULL;
    cpu_throttle_init(&t, &m);
    cpu_throttle_set(&t, 30);
    g_assert_null(t.kicker);
    cpu_throttle_destroy(&t);
    g_mutex_clear(&k.lock);
    g_cond_clear(&k.kicked);
}

/* A vCPU that leaves guest mode only when kicked, as a busy KVM guest does. */
typedef struct KickedVcpu {
    FakeKvm *kvm;
    CpuThrottle *t;
    CpuThrottleVcpu v;
    int quit;            /* atomic */
    uint64_t slept_us;   /* atomic */
} KickedVcpu;

static gpointer kicked_vcpu_thread(gpointer opaque)
{
    KickedVcpu *c = opaque;

    while (!g_atomic_int_get(&c->quit)) {
        g_mutex_lock(&c->kvm->lock);
        int seen = c->kvm->kicks;
        gint64 deadline = g_get_monotonic_time() + 100 * 1000;

        while (c->kvm->kicks == seen && g_cond_wait_until(&c->kvm->kicked, &c->kvm->lock,
                                                          deadline)) {
        }
        g_mutex_unlock(&c->kvm->lock);
        __atomic_fetch_add(&c->slept_us, cpu_throttle_vcpu_check(c->t, &c->v),
                           __ATOMIC_RELAXED);
    }
    return NULL;
}

/*
 * Such a vCPU's slices end between 10 and 20 ms (at the first kick after 10
 * ms): it must still be off the CPU for the share asked, not less.
 */
static void test_kicked_vcpu_share(gconstpointer data)
{
    int percent = GPOINTER_TO_INT(data);
    FakeKvm k = { 0 };
    AccelOps ops = { .name = "kicked", .kick_vcpus = fake_kvm_kick };
    Machine m = { .accel = &ops, .accel_state = &k };
    CpuThrottle t;
    KickedVcpu c = { .kvm = &k, .t = &t };
    GThread *th;
    gint64 start;

    g_mutex_init(&k.lock);
    g_cond_init(&k.kicked);
    cpu_throttle_init(&t, &m);
    th = g_thread_new("kicked-vcpu", kicked_vcpu_thread, &c);
    cpu_throttle_set(&t, percent);
    g_usleep(100 * 1000);
    start = g_get_monotonic_time();
    uint64_t before = __atomic_load_n(&c.slept_us, __ATOMIC_RELAXED);
    g_usleep(1500 * 1000);
    double share = (double)(__atomic_load_n(&c.slept_us, __ATOMIC_RELAXED) - before) /
                   (double)(g_get_monotonic_time() - start);
    g_test_message("off the CPU %.0f%% of the time at %d%%", share * 100, percent);
    g_assert_cmpfloat(share * 100, >, percent - 5);
    g_assert_cmpfloat(share * 100, <, percent + 15);
    cpu_throttle_stop(&t);
    g_atomic_int_set(&c.quit, 1);
    g_thread_join(th);
    cpu_throttle_destroy(&t);
    g_mutex_clear(&k.lock);
    g_cond_clear(&k.kicked);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/cpu-throttle/sleep-share", test_sleep_share);
    g_test_add_func("/cpu-throttle/half-the-time", test_half_the_time);
    g_test_add_func("/cpu-throttle/hold-wakes", test_hold_wakes);
    g_test_add_func("/cpu-throttle/kicker", test_kicker);
    g_test_add_data_func("/cpu-throttle/kicked-vcpu-share/20", GINT_TO_POINTER(20),
                         test_kicked_vcpu_share);
    g_test_add_data_func("/cpu-throttle/kicked-vcpu-share/60", GINT_TO_POINTER(60),
                         test_kicked_vcpu_share);
    return g_test_run();
}
