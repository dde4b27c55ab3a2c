/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What every accelerator's vCPU threads share: their names in ps and /proc, their time slice. */
#include "accel/accel.h"

#include <errno.h>
#include <stdint.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "system/machine.h"

/*
 * With the default slice a vCPU woken from a fault or a sleep waited
 * 0.3-2 ms for any normal task that held its CPU (the benchmark's own
 * Python, kdamond, the set-up of a snapshot): over nine traced snapshots,
 * 257 waits of over 0.3 ms (178 ms in all) with the default slice, 42
 * (42 ms) with this one. Its share of the CPU stays the same; it runs in
 * shorter turns when CPUs are contended.
 */
#define VCPU_SLICE_NS (100 * 1000)

/* The kernel's struct sched_attr (its header clashes with glibc's <sched.h>). */
struct vcpu_sched_attr {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;
    uint64_t sched_deadline;
    uint64_t sched_period;
    uint32_t sched_util_min;
    uint32_t sched_util_max;
};

bool accel_vcpu_short_slice(uint64_t slice_ns)
{
    struct vcpu_sched_attr attr = {
        .size = sizeof(attr),
        .sched_policy = SCHED_OTHER,
        .sched_runtime = slice_ns,
    };

    errno = 0;
    int nice = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    if ((nice == -1 && errno) || sched_getscheduler(0) != SCHED_OTHER) {
        return false;
    }
    attr.sched_nice = nice;
    return syscall(SYS_sched_setattr, 0, &attr, 0) == 0;
}

void accel_vcpu_thread_start(Machine *m, unsigned index, const char *accel)
{
    uint64_t slice_ns = VCPU_SLICE_NS;
    char name[16];

    if (m->config && m->config->vcpu_slice_set) {
        slice_ns = m->config->vcpu_slice_us * 1000ULL;
    }
    if (slice_ns) {
        accel_vcpu_short_slice(slice_ns);
    }

    if (!m->config || !m->config->debug_threads) {
        return;
    }
    /* The kernel keeps 15 characters; "CPU 7/TEST" fits. */
    g_snprintf(name, sizeof(name), "CPU %u/%s", index, accel);
    pthread_setname_np(pthread_self(), name);
}
