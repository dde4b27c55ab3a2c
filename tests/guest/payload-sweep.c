/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The test payload's work loop: page steps that keep the memory invariant of
 * payload-abi.h, the register checksum chain, and the PROGRESS reports. */
#include "payload.h"

#define MISMATCH_LINES_PER_INTERVAL 8

typedef struct CpuCtx {
    Payload *p;
    volatile PayloadCpuSlot *slot;
    uint32_t index;
    uint64_t prev_tsc;        /* timestamp of the previous step */
    uint64_t maxstall;        /* largest step gap in this interval, TSC ticks */
    uint64_t next_tick;
    uint64_t last_tsc;        /* BSP: time and totals at the previous report */
    uint64_t last_steps;
    uint64_t last_regs_failures;
    bool ready_printed;
} CpuCtx;

/* A permutation of [0, 2^bits): a full-period LCG (c odd, a = 1 mod 4) followed by
 * an xorshift, which is invertible and breaks the alternating low bits of a
 * power-of-two LCG. Values >= n are skipped, which visits every page of [0, n)
 * exactly once. Kept short: every instruction counts under kvm_pvm. */
typedef struct Perm {
    uint64_t mask, a, c, x;
    unsigned half;
} Perm;

static void perm_init(Perm *pm, uint64_t n, uint64_t seed, uint32_t cpu, uint64_t sweep)
{
    unsigned bits = 0;

    while ((1ull << bits) < n) {
        bits++;
    }
    pm->mask = (1ull << bits) - 1;
    pm->half = bits / 2 ? bits / 2 : 1;
    uint64_t h = payload_csum_mix(seed ^ ((uint64_t)cpu << 48), sweep + 1);
    pm->a = ((h << 2) | 1) & pm->mask;
    h = payload_csum_mix(h, 1);
    pm->c = (h | 1) & pm->mask;
    h = payload_csum_mix(h, 2);
    pm->x = h & pm->mask;
}

static inline uint64_t perm_next(Perm *pm)
{
    pm->x = (pm->a * pm->x + pm->c) & pm->mask;
    return pm->x ^ (pm->x >> pm->half);
}

static uint64_t ticks_to_us(const Payload *p, uint64_t ticks)
{
    return ticks * 1000 / p->cfg.tsc_khz;
}

static void report_mismatch(CpuCtx *c, uint64_t i, uint64_t gpa, uint32_t e,
                            uint64_t w0, uint64_t w1, uint64_t wl)
{
    Payload *p = c->p;
    Line l;

    c->slot->errors = c->slot->errors + 1;
    if (__atomic_fetch_sub(&p->mismatch_budget, 1, __ATOMIC_RELAXED) - 1 <
        MISMATCH_LINES_PER_INTERVAL || p->cfg.exit_on_error) {
        line_reset(&l);
        line_str(&l, "MISMATCH");
        line_kv(&l, "page", i);
        line_kx(&l, "gpa", gpa);
        line_kv(&l, "expected", e);
        line_kv(&l, "got", w0);
        line_kx(&l, "addr", w1);
        line_kx(&l, "inv", wl);
        line_kv(&l, "cpu", c->index);
        line_send(&l);
    }
    if (p->cfg.exit_on_error) {
        serial_write_line("PAYLOAD ERROR exit_on_error", 27);
        payload_exit(PAYLOAD_EXIT_ERRORS);
    }
}

/* The hot loop's state, copied out of CpuCtx so that gcc keeps it in registers:
 * under kvm_pvm each guest instruction costs about a microsecond, so the step rate
 * is set by the instruction count of page_step() and step_timing(). */
typedef struct StepLocals {
    volatile uint32_t *expected;
    volatile PayloadCpuSlot *slot;
    uint64_t base;
    uint64_t prev_tsc, maxstall, next_tick;
} StepLocals;

static inline void step_locals_load(StepLocals *s, const CpuCtx *c)
{
    s->expected = c->p->expected;
    s->slot = c->slot;
    s->base = c->p->cfg.base;
    s->prev_tsc = c->prev_tsc;
    s->maxstall = c->maxstall;
    s->next_tick = c->next_tick;
}

/* One page step. The order of the stores is the invariant (docs/test-payload.md):
 * cur, then expected[i], then word 0, word 1, the last word, then the step count.
 * Every access is volatile, so the compiler keeps this order; x86 stores are
 * seen in program order, so a snapshot taken at any instruction boundary sees a
 * prefix of the sequence. */
static inline __attribute__((always_inline)) void page_step(CpuCtx *c, StepLocals *s,
                                                             uint64_t i)
{
    uint64_t gpa = s->base + i * PAYLOAD_PAGE_SIZE;
    volatile uint64_t *page = (volatile uint64_t *)(uintptr_t)gpa;
    volatile uint32_t *exp = &s->expected[i];
    uint32_t e;

    s->slot->cur = i;
    e = *exp;
    /* expected == 0: never written, its content is whatever RAM held. */
    if (e != 0) {
        uint64_t w0 = page[PAYLOAD_WORD_COUNT];
        uint64_t w1 = page[PAYLOAD_WORD_ADDR];
        uint64_t wl = page[PAYLOAD_WORD_INVERSE];

        if (__builtin_expect(((w0 ^ e) | (w1 ^ gpa) | (wl ^ ~(uint64_t)e)) != 0, 0)) {
            report_mismatch(c, i, gpa, e, w0, w1, wl);
        }
    }
    e++;
    *exp = e;
    page[PAYLOAD_WORD_COUNT] = e;
    page[PAYLOAD_WORD_ADDR] = gpa;
    page[PAYLOAD_WORD_INVERSE] = ~(uint64_t)e;
    /* One read-modify-write instruction on memory, independent of r14: the memory
     * count must never be a copy of the register. */
    __asm__ __volatile__("incq %0" : "+m"(s->slot->steps) : : "memory");
    payload_reg_steps++;
    payload_reg_csum = payload_csum_mix(payload_reg_csum, payload_reg_steps);
}

/* Returns true when this CPU's registers agree with its slot. */
static bool regs_check(CpuCtx *c)
{
    if (payload_reg_steps == c->slot->steps) {
        return true;
    }
    c->slot->regs_failures = c->slot->regs_failures + 1;
    return false;
}

static void report_regs_failure(CpuCtx *c)
{
    Line l;

    line_reset(&l);
    line_str(&l, "FAIL regs");
    line_kv(&l, "cpu", c->index);
    line_kv(&l, "r14", payload_reg_steps);
    line_kv(&l, "steps", c->slot->steps);
    line_send(&l);
}

static void bsp_report(CpuCtx *c, uint64_t now)
{
    Payload *p = c->p;
    volatile PayloadCtl *ctl = p->ctl;
    uint64_t steps = 0, errors = 0, regs_failures = 0, sweep = UINT64_MAX;
    uint64_t maxstall = c->maxstall;
    bool all_swept = true;
    bool regs_ok = regs_check(c);
    Line l;

    if (!regs_ok) {
        report_regs_failure(c);
    }
    for (uint32_t k = 0; k < p->ncpus; k++) {
        volatile PayloadCpuSlot *s = &ctl->cpu[k];
        uint64_t sw = s->sweep;

        steps += s->steps;
        errors += s->errors;
        regs_failures += s->regs_failures;
        sweep = sw < sweep ? sw : sweep;
        all_swept &= sw > 0;
        if (k != c->index && s->maxstall_tsc > maxstall) {
            maxstall = s->maxstall_tsc;
        }
    }
    regs_ok &= regs_failures == c->last_regs_failures;
    c->last_regs_failures = regs_failures;

    uint64_t dt = now - c->last_tsc;
    line_reset(&l);
    line_str(&l, "PROGRESS");
    line_kv(&l, "t_us", ticks_to_us(p, now - p->t_start));
    line_kv(&l, "sweep", sweep);
    line_kv(&l, "steps", steps);
    line_kv(&l, "rate", dt ? (steps - c->last_steps) * p->cfg.tsc_khz * 1000 / dt : 0);
    line_kv(&l, "maxstall_us", ticks_to_us(p, maxstall));
    line_kx(&l, "csum", payload_reg_csum);
    if (p->ncpus > 1) {
        line_kv(&l, "csteps", payload_reg_steps);   /* the steps csum covers */
    }
    line_str(&l, regs_ok ? " regs=ok" : " regs=FAIL");
    line_kv(&l, "errors", errors);
    line_send(&l);
    c->last_tsc = now;
    c->last_steps = steps;

    if (all_swept && !c->ready_printed) {
        c->ready_printed = true;
        ctl->flags = ctl->flags | PAYLOAD_FLAG_READY;
        line_reset(&l);
        line_str(&l, "PAYLOAD READY");
        line_kv(&l, "t_us", ticks_to_us(p, rdtsc() - p->t_start));
        line_kv(&l, "steps", steps);
        line_send(&l);
    }
    if (p->cfg.exit_on_error && (errors || !regs_ok)) {
        serial_write_line("PAYLOAD ERROR exit_on_error", 27);
        payload_exit(PAYLOAD_EXIT_ERRORS);
    }
    __atomic_store_n(&p->mismatch_budget, MISMATCH_LINES_PER_INTERVAL, __ATOMIC_RELAXED);
}

/* Report tick: the BSP prints, an AP checks its registers and publishes its stall. */
static __attribute__((noinline)) void cpu_tick(CpuCtx *c, uint64_t now)
{
    if (c->index == 0) {
        bsp_report(c, now);
    } else {
        if (!regs_check(c)) {
            report_regs_failure(c);
        }
        c->slot->maxstall_tsc = c->maxstall;
    }
    c->maxstall = 0;
    c->next_tick = now + c->p->report_ticks;
    /* The report's own serial output is not a stall of the sweep. */
    c->prev_tsc = rdtsc();
}

static inline __attribute__((always_inline)) void step_timing(CpuCtx *c, StepLocals *s)
{
    uint64_t now = rdtsc();
    uint64_t gap = now - s->prev_tsc;

    s->maxstall = gap > s->maxstall ? gap : s->maxstall;
    s->prev_tsc = now;
    if (__builtin_expect(now >= s->next_tick, 0)) {
        c->maxstall = s->maxstall;
        cpu_tick(c, now);
        s->prev_tsc = c->prev_tsc;
        s->maxstall = 0;
        s->next_tick = c->next_tick;
    }
}

static void sweep_once(CpuCtx *c, uint64_t sweep)
{
    Payload *p = c->p;
    uint64_t first = c->slot->first_page;
    uint64_t n = payload_sweep_pages(c->slot->npages, p->cfg.hot, p->ncpus, sweep);
    StepLocals s;

    step_locals_load(&s, c);
    if (p->cfg.order == PAYLOAD_ORDER_SEQ) {
        for (uint64_t i = first; i < first + n; i++) {
            page_step(c, &s, i);
            step_timing(c, &s);
        }
    } else {
        Perm pm;
        perm_init(&pm, n, p->cfg.seed, c->index, sweep);
        for (uint64_t k = 0; k <= pm.mask; k++) {
            uint64_t i = perm_next(&pm);

            if (i < n) {
                page_step(c, &s, first + i);
                step_timing(c, &s);
            }
        }
    }
    c->prev_tsc = s.prev_tsc;
    c->maxstall = s.maxstall;
    c->next_tick = s.next_tick;
}

static bool all_stopped(Payload *p)
{
    for (uint32_t k = 0; k < p->ncpus; k++) {
        if (p->ctl->cpu[k].state != PAYLOAD_CPU_STOPPED) {
            return false;
        }
    }
    return true;
}

void payload_sweep_run(Payload *p, uint32_t index)
{
    CpuCtx c = {
        .p = p,
        .slot = &p->ctl->cpu[index],
        .index = index,
    };
    uint64_t sweep;

    payload_reg_steps = 0;
    payload_reg_csum = payload_csum_seed(index);
    c.prev_tsc = c.last_tsc = rdtsc();
    c.next_tick = c.prev_tsc + p->report_ticks;

    for (sweep = 0; p->cfg.sweeps == 0 || sweep < p->cfg.sweeps; sweep++) {
        sweep_once(&c, sweep);
        c.slot->sweep = sweep + 1;
        if (p->cfg.idle) {
            break;
        }
    }
    c.slot->cur = PAYLOAD_CUR_NONE;
    c.slot->state = PAYLOAD_CPU_STOPPED;

    /* Idle, or done with sweeps=N: keep reporting, write nothing. The BSP ends the
     * run once every CPU has stopped (never in idle mode). */
    for (;;) {
        uint64_t now = rdtsc();

        c.prev_tsc = now;
        if (now >= c.next_tick) {
            cpu_tick(&c, now);
        }
        if (index == 0 && !p->cfg.idle && all_stopped(p)) {
            break;
        }
        cpu_relax();
    }

    cpu_tick(&c, rdtsc());
    uint64_t errors = 0, regs_failures = 0, steps = 0;
    for (uint32_t k = 0; k < p->ncpus; k++) {
        errors += p->ctl->cpu[k].errors;
        regs_failures += p->ctl->cpu[k].regs_failures;
        steps += p->ctl->cpu[k].steps;
    }
    p->ctl->flags = p->ctl->flags | PAYLOAD_FLAG_DONE;
    Line l;
    line_reset(&l);
    line_str(&l, "PAYLOAD DONE");
    line_kv(&l, "t_us", ticks_to_us(p, rdtsc() - p->t_start));
    line_kv(&l, "sweeps", sweep);
    line_kv(&l, "steps", steps);
    line_kv(&l, "errors", errors);
    line_kv(&l, "regs_failures", regs_failures);
    line_send(&l);
    payload_exit(errors || regs_failures ? PAYLOAD_EXIT_ERRORS : PAYLOAD_EXIT_SUCCESS);
}
