/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Keeping every vCPU off its CPU for a share of the time (auto-converge's throttle). */
#include "system/cpu-throttle.h"

#include "accel/accel.h"
#include "system/machine.h"

void cpu_throttle_init(CpuThrottle *t, Machine *m)
{
    t->machine = m;
    t->percent = 0;
    g_mutex_init(&t->lock);
    g_cond_init(&t->cond);
    t->held = false;
    t->kicker = NULL;
    t->kicker_generation = 0;
}

void cpu_throttle_destroy(CpuThrottle *t)
{
    cpu_throttle_stop(t);
    g_mutex_clear(&t->lock);
    g_cond_clear(&t->cond);
}

uint64_t cpu_throttle_sleep_us(int percent)
{
    if (percent <= 0) {
        return 0;
    }
    percent = MIN(percent, CPU_THROTTLE_PERCENT_MAX);
    return (uint64_t)CPU_THROTTLE_TIMESLICE_US * (uint64_t)percent / (uint64_t)(100 - percent);
}

/* What a kicker thread needs: its own generation, so that a stop ends exactly it. */
typedef struct CpuThrottleKicker {
    CpuThrottle *throttle;
    unsigned generation;
} CpuThrottleKicker;

/*
 * A KVM vCPU runs guest code inside KVM_RUN until the guest exits, which a
 * guest busy writing memory may not do for a long time: once per slice it is
 * kicked out so that it checks its throttle (QEMU does the same with a timer).
 */
static gpointer cpu_throttle_kicker(gpointer opaque)
{
    CpuThrottleKicker *k = opaque;
    CpuThrottle *t = k->throttle;
    Machine *m = t->machine;

    g_mutex_lock(&t->lock);
    while (t->kicker_generation == k->generation) {
        gint64 deadline = g_get_monotonic_time() + CPU_THROTTLE_TIMESLICE_US;

        while (t->kicker_generation == k->generation &&
               g_cond_wait_until(&t->cond, &t->lock, deadline)) {
        }
        if (t->kicker_generation != k->generation) {
            break;
        }
        if (!t->held && g_atomic_int_get(&t->percent) > 0) {
            g_mutex_unlock(&t->lock);
            m->accel->kick_vcpus(m);
            g_mutex_lock(&t->lock);
        }
    }
    g_mutex_unlock(&t->lock);
    g_free(k);
    return NULL;
}

void cpu_throttle_set(CpuThrottle *t, int percent)
{
    Machine *m = t->machine;

    if (percent <= 0) {
        cpu_throttle_stop(t);
        return;
    }
    percent = MIN(percent, CPU_THROTTLE_PERCENT_MAX);
    g_mutex_lock(&t->lock);
    g_atomic_int_set(&t->percent, percent);
    if (!t->kicker && m && m->accel && m->accel->kick_vcpus) {
        CpuThrottleKicker *k = g_new0(CpuThrottleKicker, 1);

        k->throttle = t;
        k->generation = t->kicker_generation;
        t->kicker = g_thread_new("cpu-throttle", cpu_throttle_kicker, k);
    }
    g_mutex_unlock(&t->lock);
}

void cpu_throttle_stop(CpuThrottle *t)
{
    GThread *kicker;

    g_mutex_lock(&t->lock);
    g_atomic_int_set(&t->percent, 0);
    kicker = t->kicker;
    t->kicker = NULL;
    /* Ends the running kicker, whatever set() starts after this. */
    t->kicker_generation++;
    g_cond_broadcast(&t->cond);
    g_mutex_unlock(&t->lock);
    if (kicker) {
        g_thread_join(kicker);
    }
}

int cpu_throttle_get_percent(CpuThrottle *t)
{
    return g_atomic_int_get(&t->percent);
}

void cpu_throttle_hold(CpuThrottle *t, bool held)
{
    g_mutex_lock(&t->lock);
    t->held = held;
    g_cond_broadcast(&t->cond);
    g_mutex_unlock(&t->lock);
}

uint64_t cpu_throttle_vcpu_check(CpuThrottle *t, CpuThrottleVcpu *v)
{
    int percent = g_atomic_int_get(&t->percent);
    gint64 now, ran, deadline;

    if (G_LIKELY(percent == 0)) {
        v->run_start_us = 0;
        return 0;
    }
    now = g_get_monotonic_time();
    if (!v->run_start_us) {
        v->run_start_us = now;
        return 0;
    }
    ran = now - v->run_start_us;
    if (ran < CPU_THROTTLE_TIMESLICE_US) {
        return 0;
    }
    /*
     * Sleep in proportion to what the vCPU ran: a KVM vCPU that does not exit
     * by itself sees a kick only every 10 ms, so its slice ends anywhere
     * between 10 and 20 ms, and a fixed sleep would throttle it less than
     * asked (13% off the CPU at 20%). Capped so that a vCPU that sat parked
     * does not pay for it.
     */
    ran = MIN(ran, 2 * CPU_THROTTLE_TIMESLICE_US);
    deadline = now + ran * percent / (100 - percent);
    g_mutex_lock(&t->lock);
    /* A stop or a pause ends the sleep at once (checked under the lock they take). */
    while (!t->held && g_atomic_int_get(&t->percent) > 0 &&
           g_cond_wait_until(&t->cond, &t->lock, deadline)) {
    }
    g_mutex_unlock(&t->lock);
    v->run_start_us = g_get_monotonic_time();
    return (uint64_t)(v->run_start_us - now);
}
