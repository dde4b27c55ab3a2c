/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The test accelerator's writer threads: the test payload's page steps done by
 * host threads on guest RAM, with the same control block, expected-value array,
 * register checksum chain and PROGRESS lines (tests/guest/payload-abi.h), so
 * the same checker verifies images of either.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <x86intrin.h>

#include "accel/test/test-accel.h"
#include "accel/test/test-trace.h"
#include "accel/accel.h"
#include "hw/ioport.h"

#define TEST_SERIAL_PORT 0x3f8
#define TEST_EXIT_PORT 0xf4

typedef struct TestPerm {
    uint64_t mask, a, c, mul;
    unsigned half;
} TestPerm;

/*
 * A permutation of [0, 2^bits) per sweep: a full-period LCG with a scramble,
 * skipping values >= n. The same construction as the payload's, so both visit
 * pages in a comparable random order; its state is one word (perm_x).
 */
static void test_perm_init(TestPerm *pm, uint64_t *x, uint64_t n, uint64_t seed,
                           unsigned cpu, uint64_t sweep)
{
    unsigned bits = 0;
    uint64_t h;

    while ((1ULL << bits) < n) {
        bits++;
    }
    pm->mask = (1ULL << bits) - 1;
    pm->half = bits / 2 ? bits / 2 : 1;
    h = payload_csum_mix(seed ^ ((uint64_t)cpu << 48), sweep + 1);
    pm->a = ((h << 2) | 1) & pm->mask;
    h = payload_csum_mix(h, 1);
    pm->c = (h | 1) & pm->mask;
    h = payload_csum_mix(h, 2);
    if (x) {
        *x = h & pm->mask;
    }
    h = payload_csum_mix(h, 3);
    pm->mul = (h | 1) & pm->mask;
}

static uint64_t test_perm_next(const TestPerm *pm, uint64_t *x)
{
    uint64_t y;

    *x = (pm->a * *x + pm->c) & pm->mask;
    y = *x;
    y ^= y >> pm->half;
    y = (y * pm->mul) & pm->mask;
    y ^= y >> pm->half;
    return y;
}

static void test_serial_line(TestAccel *a, const char *line)
{
    /* Through the UART's port handler, as guest output would go. */
    for (const char *p = line; *p; p++) {
        ioport_write(a->m, TEST_SERIAL_PORT, 1, (uint8_t)*p);
    }
    ioport_write(a->m, TEST_SERIAL_PORT, 1, '\n');
}

static void test_mark_dirty(TestAccel *a, void *host)
{
    RamBlock *b = g_ptr_array_index(a->m->ram_blocks, 0);
    uint64_t page = ((uint8_t *)host - b->host) / MACHINE_PAGE_SIZE;

    __atomic_fetch_or(&a->dirty[page / 64], 1UL << (page % 64), __ATOMIC_RELAXED);
}

/* One page step, in the payload's store order (docs/test-payload.md). */
static void test_page_step(TestVcpu *v, uint64_t i)
{
    TestAccel *a = v->accel;
    volatile PayloadCpuSlot *slot = &a->ctl->cpu[v->index];
    uint64_t gpa = a->work.base + i * PAYLOAD_PAGE_SIZE;
    volatile uint64_t *page = (volatile uint64_t *)(a->range + i * PAYLOAD_PAGE_SIZE);
    volatile uint32_t *exp = &a->expected[i];
    uint32_t e;

    slot->cur = i;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    e = *exp;
    if (e != 0 && (page[PAYLOAD_WORD_COUNT] != e || page[PAYLOAD_WORD_ADDR] != gpa ||
                   page[PAYLOAD_WORD_INVERSE] != ~(uint64_t)e)) {
        char line[160];

        slot->errors = slot->errors + 1;
        snprintf(line, sizeof(line), "MISMATCH page=%" G_GUINT64_FORMAT " gpa=0x%"
                 G_GINT64_MODIFIER "x expected=%u got=%" G_GUINT64_FORMAT " cpu=%u",
                 i, gpa, e, (uint64_t)page[PAYLOAD_WORD_COUNT], v->index);
        test_serial_line(a, line);
    }
    e++;
    *exp = e;
    page[PAYLOAD_WORD_COUNT] = e;
    page[PAYLOAD_WORD_ADDR] = gpa;
    page[PAYLOAD_WORD_INVERSE] = ~(uint64_t)e;
    slot->steps = slot->steps + 1;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (g_atomic_int_get(&a->dirty_on)) {
        test_mark_dirty(a, (void *)page);
        test_mark_dirty(a, (void *)exp);
        test_mark_dirty(a, (void *)slot);
    }
    v->reg_steps++;
    v->reg_csum = payload_csum_mix(v->reg_csum, v->reg_steps);
}

/* First start (not a restore): the control block, written magic last. */
static void test_ctl_init(TestAccel *a)
{
    PayloadCtl *ctl = a->ctl;
    uint64_t npages = a->work.mem / PAYLOAD_PAGE_SIZE;
    unsigned n = a->m->smp;

    memset(ctl, 0, sizeof(*ctl));
    ctl->version = PAYLOAD_ABI_VERSION;
    ctl->size = sizeof(*ctl);
    ctl->base = a->work.base;
    ctl->npages = npages;
    ctl->expected_gpa = PAYLOAD_EXPECTED_GPA;
    ctl->order = a->work.order;
    ctl->ncpus = n;
    ctl->seed = a->work.seed;
    ctl->flags = a->work.idle ? PAYLOAD_FLAG_IDLE : 0;
    ctl->tsc_khz = 1000;
    ctl->sweeps_target = a->work.sweeps;
    for (unsigned c = 0; c < n; c++) {
        ctl->cpu[c].cur = PAYLOAD_CUR_NONE;
        ctl->cpu[c].first_page = npages * c / n;
        ctl->cpu[c].npages = npages * (c + 1) / n - npages * c / n;
        ctl->cpu[c].state = PAYLOAD_CPU_RUNNING;
        ctl->cpu[c].apic_id = c;
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    ctl->magic = PAYLOAD_MAGIC;
}

/*
 * Reporting state of one writer. The stall figure is per step, as the payload
 * defines it: the longest gap between two consecutive page steps (pacing sleeps
 * excluded). It is timed with the TSC, which costs a few nanoseconds where a
 * clock_gettime() per step would slow an unpaced writer by half; cycles turn into
 * microseconds at report time, by the TSC's rate against the monotonic clock
 * over the writer's whole run.
 */
typedef struct TestReport {
    gint64 t_start;        /* monotonic us, adjusted by elapsed_us after a restore */
    gint64 next;
    uint64_t next_tsc;     /* TSC at which the next report is due (0: not known yet) */
    gint64 last_t;
    uint64_t last_steps;
    gint64 clock0;         /* monotonic us and TSC when this thread started timing */
    uint64_t tsc0;
    uint64_t prev_tsc;     /* TSC at the end of the previous step (or pacing sleep) */
    uint64_t maxstall_tsc; /* longest gap since the last report, in TSC cycles */
    uint64_t regs_failures; /* reports whose register count disagreed with memory */
    uint64_t probe_min_tsc; /* gaps this long fire the stall probe (UINT64_MAX: not yet) */
} TestReport;

/* Gaps from this long fire test_vcpu_stall: few enough that a tracer barely slows the guest. */
#define TEST_STALL_PROBE_US 500

/* Cycles to microseconds at the rate the TSC ran since the thread started. */
static gint64 test_tsc_to_us(const TestReport *r, uint64_t cycles, gint64 now)
{
    uint64_t elapsed_tsc = __rdtsc() - r->tsc0;
    gint64 elapsed_us = now - r->clock0;

    if (elapsed_us <= 0 || !elapsed_tsc) {
        return 0;
    }
    return (gint64)((double)cycles * (double)elapsed_us / (double)elapsed_tsc);
}

/*
 * The TSC value @us microseconds from now, at the rate the TSC ran since the
 * thread started; 0 until a millisecond has passed to measure that rate.
 */
static uint64_t test_us_to_tsc_deadline(const TestReport *r, gint64 us, gint64 now)
{
    uint64_t tsc = __rdtsc();
    gint64 elapsed_us = now - r->clock0;

    if (elapsed_us < 1000 || tsc <= r->tsc0) {
        return 0;
    }
    return tsc + (uint64_t)((double)us * (double)(tsc - r->tsc0) / (double)elapsed_us);
}

static void test_report(TestVcpu *v, TestReport *r, gint64 now)
{
    TestAccel *a = v->accel;
    PayloadCtl *ctl = a->ctl;
    uint64_t steps = 0, errors = 0, sweep = UINT64_MAX;
    bool regs_ok = v->reg_steps == ctl->cpu[v->index].steps;
    bool all_swept = true;
    char csteps[40] = "";
    char line[256];

    for (unsigned c = 0; c < ctl->ncpus; c++) {
        steps += ctl->cpu[c].steps;
        errors += ctl->cpu[c].errors;
        sweep = MIN(sweep, ctl->cpu[c].sweep);
        all_swept &= ctl->cpu[c].sweep > 0;
    }
    /* With several CPUs csum covers CPU 0's own steps, given as csteps (as the payload). */
    if (ctl->ncpus > 1) {
        snprintf(csteps, sizeof(csteps), " csteps=%" G_GUINT64_FORMAT, v->reg_steps);
    }
    snprintf(line, sizeof(line), "PROGRESS t_us=%" G_GINT64_FORMAT " sweep=%" G_GUINT64_FORMAT
             " steps=%" G_GUINT64_FORMAT " rate=%" G_GUINT64_FORMAT " maxstall_us=%"
             G_GINT64_FORMAT " csum=0x%" G_GINT64_MODIFIER "x%s regs=%s errors=%"
             G_GUINT64_FORMAT, now - r->t_start, sweep, steps,
             now > r->last_t ? (steps - r->last_steps) * 1000000 / (now - r->last_t) : 0,
             test_tsc_to_us(r, r->maxstall_tsc, now), v->reg_csum, csteps,
             regs_ok ? "ok" : "FAIL", errors);
    test_serial_line(a, line);
    r->regs_failures += !regs_ok;
    if (all_swept && !a->ready_printed) {
        a->ready_printed = true;
        ctl->flags |= PAYLOAD_FLAG_READY;
        snprintf(line, sizeof(line), "PAYLOAD READY t_us=%" G_GINT64_FORMAT " steps=%"
                 G_GUINT64_FORMAT, now - r->t_start, steps);
        test_serial_line(a, line);
    }
    r->last_t = now;
    r->last_steps = steps;
    r->maxstall_tsc = 0;
    r->next = now + a->work.report_ms * 1000;
    r->next_tsc = test_us_to_tsc_deadline(r, a->work.report_ms * 1000, now);
}

/* sweeps=N reached: the payload's last line, then its exit through the debug port. */
static void test_done(TestVcpu *v, const TestReport *r, gint64 now)
{
    TestAccel *a = v->accel;
    uint64_t steps = 0, errors = 0, sweep = UINT64_MAX;
    char line[200];

    for (unsigned c = 0; c < a->ctl->ncpus; c++) {
        steps += a->ctl->cpu[c].steps;
        errors += a->ctl->cpu[c].errors;
        sweep = MIN(sweep, a->ctl->cpu[c].sweep);
    }
    a->ctl->flags |= PAYLOAD_FLAG_DONE;
    snprintf(line, sizeof(line), "PAYLOAD DONE t_us=%" G_GINT64_FORMAT " sweeps=%"
             G_GUINT64_FORMAT " steps=%" G_GUINT64_FORMAT " errors=%" G_GUINT64_FORMAT
             " regs_failures=%" G_GUINT64_FORMAT, now - r->t_start, sweep, steps, errors,
             r->regs_failures);
    test_serial_line(a, line);
    ioport_write(a->m, TEST_EXIT_PORT, 4,
                 errors || r->regs_failures ? PAYLOAD_EXIT_ERRORS : PAYLOAD_EXIT_SUCCESS);
}

/*
 * Per step: timing for the stall figure, pacing, reports and pause points.
 * Like the payload, the report deadline is checked at every step (by TSC,
 * which costs nanoseconds): a guest slowed to a few thousand steps per
 * second by a snapshot still reports on time, so a late report means a
 * stall, not a long batch of slow steps.
 */
static bool test_vcpu_after_step(TestVcpu *v, TestReport *r, uint64_t *budget)
{
    uint64_t tsc = __rdtsc();
    uint64_t gap = tsc - r->prev_tsc;
    gint64 now;

    if (gap > r->maxstall_tsc) {
        r->maxstall_tsc = gap;
    }
    if (G_UNLIKELY(gap >= r->probe_min_tsc)) {
        trace_test_vcpu_stall(v->index, gap);
    }
    r->prev_tsc = tsc;
    if (!test_vcpu_checkpoint(v)) {
        return false;
    }
    if (v->index == 0 && r->next_tsc && tsc >= r->next_tsc) {
        now = g_get_monotonic_time();
        if (now >= r->next) {
            test_report(v, r, now);
            r->prev_tsc = __rdtsc();
        } else {
            r->next_tsc = test_us_to_tsc_deadline(r, r->next - now, now);
        }
    }
    if (*budget && --*budget) {
        return true;
    }
    /* Pace in 1 ms batches: rate= steps per second, like a guest of known speed. */
    if (v->accel->work.rate) {
        *budget = MAX(1, v->accel->work.rate / 1000);
        test_vcpu_sleep(v, 1000);
    } else {
        *budget = 64;
    }
    now = g_get_monotonic_time();
    if (v->index == 0 && now >= r->next) {
        test_report(v, r, now);
    }
    if (r->probe_min_tsc == UINT64_MAX) {
        uint64_t deadline = test_us_to_tsc_deadline(r, TEST_STALL_PROBE_US, now);
        if (deadline) {
            r->probe_min_tsc = deadline - __rdtsc();
        }
    }
    /* A pause, a pacing sleep or a report is not a stall of the guest's steps. */
    r->prev_tsc = __rdtsc();
    /* The throttle's sleep counts as a stall, as a real guest would see it. */
    cpu_throttle_vcpu_check(&v->accel->m->throttle, &v->throttle);
    return true;
}

gpointer test_vcpu_thread(gpointer opaque)
{
    TestVcpu *v = opaque;
    TestAccel *a = v->accel;
    TestReport r = { 0 };
    uint64_t budget = 0;
    char line[200];

    accel_vcpu_thread_start(a->m, v->index, "TEST");
    __atomic_store_n(&v->kernel_tid, (int)gettid(), __ATOMIC_RELEASE);
    if (!test_vcpu_checkpoint(v)) {
        return NULL;
    }
    if (!a->restored) {
        if (v->index == 0) {
            test_ctl_init(a);
            /* The payload's keys and spelling, so one parser reads both. */
            snprintf(line, sizeof(line), "PAYLOAD START version=%u t_us=0 base=0x%"
                     G_GINT64_MODIFIER "x mem=0x%" G_GINT64_MODIFIER "x order=%s seed=%"
                     G_GUINT64_FORMAT " cpus=%u sweeps=%" G_GUINT64_FORMAT " report_ms=%"
                     G_GUINT64_FORMAT " rate=%" G_GUINT64_FORMAT " ctl=0x%x accel=test",
                     PAYLOAD_ABI_VERSION, a->work.base, a->work.mem,
                     a->work.order == PAYLOAD_ORDER_SEQ ? "seq" : "random", a->work.seed,
                     a->m->smp, a->work.sweeps, a->work.report_ms, a->work.rate,
                     (unsigned)PAYLOAD_CTL_GPA);
            test_serial_line(a, line);
        }
        /* Other writers wait for writer 0's control block, still pausable meanwhile. */
        while (__atomic_load_n(&a->ctl->magic, __ATOMIC_ACQUIRE) != PAYLOAD_MAGIC) {
            if (!test_vcpu_checkpoint(v)) {
                return NULL;
            }
            g_usleep(100);
        }
        v->reg_csum = payload_csum_seed(v->index);
    }
    r.t_start = g_get_monotonic_time() - (gint64)v->elapsed_us;
    v->t_start = r.t_start;
    r.last_t = r.clock0 = g_get_monotonic_time();
    r.prev_tsc = r.tsc0 = __rdtsc();
    r.probe_min_tsc = UINT64_MAX;
    r.next = r.last_t + a->work.report_ms * 1000;
    /* After a restore the first rate counts from the restored total, not from 0. */
    for (unsigned c = 0; c < a->ctl->ncpus; c++) {
        r.last_steps += a->ctl->cpu[c].steps;
    }

    while (!v->stopped) {
        volatile PayloadCpuSlot *slot = &a->ctl->cpu[v->index];
        uint64_t first = slot->first_page;
        uint64_t n = payload_sweep_pages(slot->npages, a->work.hot, a->ctl->ncpus, v->sweep);
        TestPerm pm;

        if (a->work.order == PAYLOAD_ORDER_SEQ) {
            while (v->pos < n) {
                /* pos moves before the pause point: a saved state never redoes a step. */
                test_page_step(v, first + v->pos++);
                if (!test_vcpu_after_step(v, &r, &budget)) {
                    goto quit;
                }
            }
        } else {
            /* pos == 0 starts a sweep; a restored thread resumes with its perm_x. */
            test_perm_init(&pm, v->pos ? NULL : &v->perm_x, n, a->work.seed, v->index,
                           v->sweep);
            while (v->pos <= pm.mask) {
                uint64_t i = test_perm_next(&pm, &v->perm_x);

                v->pos++;
                if (i < n) {
                    test_page_step(v, first + i);
                    if (!test_vcpu_after_step(v, &r, &budget)) {
                        goto quit;
                    }
                }
            }
        }
        /*
         * A sweep of no pages (bookkeeping that reads as zero: memory a
         * failed restore could not give) must still reach the pause point.
         */
        if (!n && !test_vcpu_checkpoint(v)) {
            goto quit;
        }
        v->pos = 0;
        v->sweep++;
        slot->sweep = v->sweep;
        if (a->work.idle || (a->work.sweeps && v->sweep >= a->work.sweeps)) {
            v->stopped = true;
            slot->cur = PAYLOAD_CUR_NONE;
            slot->state = PAYLOAD_CPU_STOPPED;
        }
    }
    /*
     * Idle or done: keep reporting, write nothing. After the exit port write the
     * thread stays, like a halted vCPU, so the shutdown it asked for can still
     * pause it.
     */
    for (bool done = false;;) {
        gint64 now;

        if (!test_vcpu_checkpoint(v)) {
            break;
        }
        test_vcpu_sleep(v, 1000);
        now = g_get_monotonic_time();
        if (v->index == 0 && !done && now >= r.next) {
            test_report(v, &r, now);
            if (!a->work.idle && a->work.sweeps) {
                test_done(v, &r, now);
                done = true;
            }
        }
    }
quit:
    return NULL;
}
