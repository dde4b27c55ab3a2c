/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Private state of the test accelerator, shared by its two files. */
#ifndef ACCEL_TEST_TEST_ACCEL_H
#define ACCEL_TEST_TEST_ACCEL_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "system/machine.h"
#include "tests/guest/payload-abi.h"

typedef struct TestAccel TestAccel;

/* The payload's command-line keys that the writer threads understand. */
typedef struct TestWorkload {
    uint64_t base;          /* base= */
    uint64_t mem;           /* mem= */
    uint32_t order;         /* order=seq|random */
    uint64_t seed;          /* seed= */
    uint64_t report_ms;     /* report_ms= */
    uint64_t sweeps;        /* sweeps= (0 = forever) */
    bool idle;              /* idle=1 */
    uint64_t rate;          /* rate= page steps per second per thread (0 = unpaced) */
    uint64_t hot;           /* hot= bytes swept after the first sweep (0 = all) */
} TestWorkload;

/*
 * One host thread standing in for a vCPU. Everything a real vCPU would keep
 * in registers lives here and is saved as its device state.
 */
typedef struct TestVcpu {
    TestAccel *accel;
    unsigned index;
    GThread *thread;
    int kernel_tid;         /* gettid() of the thread, 0 until it runs (atomic) */
    /* "registers" */
    uint64_t reg_steps;     /* like the payload's r14 */
    uint64_t reg_csum;      /* like the payload's r15 */
    uint64_t sweep;         /* sweeps completed */
    uint64_t pos;           /* position inside the current sweep */
    uint64_t perm_x;        /* random order: the permutation's state */
    uint64_t elapsed_us;    /* run time before a restore */
    gint64 t_start;         /* monotonic time the run started (not saved) */
    bool stopped;           /* sweeps=N reached */
    bool blocked;           /* under lock: blocked on memory that never comes */
    CpuThrottleVcpu throttle; /* the thread's own: auto-converge's slices */
} TestVcpu;

struct TestAccel {
    Machine *m;
    TestWorkload work;
    PayloadCtl *ctl;        /* host pointer to the control block */
    uint32_t *expected;     /* host pointer to the expected-value array */
    uint8_t *range;         /* host pointer to page 0 of the range */
    bool restored;          /* state came from an image: do not re-initialise */
    bool ready_printed;

    GMutex lock;
    GCond cond;
    int pause_requested;    /* atomic: vCPUs park at the next step */
    unsigned parked;
    unsigned blocked;       /* vCPUs blocked for good (vcpu_blocked); count as parked */
    bool quit;
    unsigned nr_running;    /* threads started */

    int dirty_on;           /* atomic: writers mark pages in @dirty */
    unsigned long *dirty;   /* one bit per page of the RAM block, atomic ops */
    uint64_t dirty_pages;

    TestVcpu vcpus[MACHINE_MAX_VCPUS];
};

/* Parse the -append string; unknown keys are ignored as the payload does. */
bool test_workload_parse(TestWorkload *w, const char *append, GError **errp);

/* The writer thread body (accel/test/test-writer.c). */
gpointer test_vcpu_thread(gpointer opaque);

/* Park here if a pause was requested; returns false when the thread must quit. */
bool test_vcpu_checkpoint(TestVcpu *v);

/*
 * Sleep @us (pacing, or idle), cut short by a pause request or quit, as a
 * KVM vCPU's halt is by the kick that stops it. The caller parks next.
 */
void test_vcpu_sleep(TestVcpu *v, gint64 us);

#endif
