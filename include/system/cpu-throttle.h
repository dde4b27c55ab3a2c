/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Keeping every vCPU off its CPU for a share of the time (auto-converge's throttle). */
#ifndef SYSTEM_CPU_THROTTLE_H
#define SYSTEM_CPU_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

typedef struct Machine Machine;

/*
 * A throttled vCPU runs one timeslice, then sleeps so that it is off the CPU
 * for the throttle's share of the time: at P%, P / (100 - P) of what it ran.
 * QEMU uses the same 10 ms slice, so a guest sees the same rhythm under both.
 */
#define CPU_THROTTLE_TIMESLICE_US 10000
#define CPU_THROTTLE_PERCENT_MIN 1
#define CPU_THROTTLE_PERCENT_MAX 99

typedef struct CpuThrottle {
    Machine *machine;
    int percent;          /* atomic: 0 off, else 1..99 */
    GMutex lock;
    GCond cond;           /* wakes sleeping vCPUs and the kicker */
    bool held;            /* under lock: the vCPUs are being paused; nobody sleeps */
    GThread *kicker;      /* under lock: takes KVM vCPUs out of guest mode each slice */
    unsigned kicker_generation; /* under lock: a stop moves it on, which ends the kicker */
} CpuThrottle;

/* One vCPU thread's own bookkeeping; zero-initialised. */
typedef struct CpuThrottleVcpu {
    int64_t run_start_us; /* monotonic: when its current slice began; 0 none yet */
} CpuThrottleVcpu;

/* Off, for machine @m (NULL: no kicker; else its accelerator's kick_vcpus, if any). */
void cpu_throttle_init(CpuThrottle *t, Machine *m);

/* Stop throttling (see cpu_throttle_stop()) and free what init made. */
void cpu_throttle_destroy(CpuThrottle *t);

/*
 * Throttle every vCPU to @percent (at most 99; 0 or less stops) from its
 * next slice on. Starts the kicker thread where the accelerator runs guest
 * code in the kernel (KVM): a vCPU that never exits would never sleep.
 */
void cpu_throttle_set(CpuThrottle *t, int percent);

/* Throttling off; sleeping vCPUs wake now. The kicker thread ends. */
void cpu_throttle_stop(CpuThrottle *t);

/* The current percentage, 0 when off. Any thread. */
int cpu_throttle_get_percent(CpuThrottle *t);

/*
 * While @held (set before the vCPUs are paused, cleared before they resume),
 * no vCPU sleeps and those asleep wake now: a pause must not wait up to a
 * second (99%) for a vCPU's sleep to end.
 */
void cpu_throttle_hold(CpuThrottle *t, bool held);

/* Microseconds a vCPU sleeps after a timeslice of exactly 10 ms at @percent (0 for 0). */
uint64_t cpu_throttle_sleep_us(int percent);

/*
 * Called by a vCPU thread between runs of guest code: once its timeslice is
 * used up, it sleeps its share (woken early by cpu_throttle_stop() and
 * cpu_throttle_hold()). Costs one atomic load while throttling is off.
 * Returns the microseconds slept.
 */
uint64_t cpu_throttle_vcpu_check(CpuThrottle *t, CpuThrottleVcpu *v);

#endif
