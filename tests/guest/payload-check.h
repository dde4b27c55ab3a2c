/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Host-side checks of the test payload: its memory invariant in a guest memory
 * image, its PROGRESS lines, and its register checksum chain. */
#ifndef FROSTVM_TESTS_GUEST_PAYLOAD_CHECK_H
#define FROSTVM_TESTS_GUEST_PAYLOAD_CHECK_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "payload-abi.h"

#define PAYLOAD_CHECK_ERROR payload_check_error_quark()
GQuark payload_check_error_quark(void);

typedef enum PayloadCheckErrorCode {
    PAYLOAD_CHECK_ERROR_NO_CONTROL_BLOCK,   /* magic missing: payload not (yet) running */
    PAYLOAD_CHECK_ERROR_BAD_CONTROL_BLOCK,  /* control block inconsistent or outside RAM */
    PAYLOAD_CHECK_ERROR_INVARIANT,          /* some page or count breaks the invariant */
    PAYLOAD_CHECK_ERROR_PARSE,              /* a PROGRESS line could not be parsed */
} PayloadCheckErrorCode;

typedef enum PayloadProblemKind {
    PAYLOAD_PROBLEM_PAGE,        /* a page's words disagree with expected[page] */
    PAYLOAD_PROBLEM_UNTOUCHED,   /* expected[page] == 0 although its CPU finished a sweep */
    PAYLOAD_PROBLEM_SUM,         /* sum of a CPU's expected[] is not its step count */
} PayloadProblemKind;

typedef struct PayloadProblem {
    PayloadProblemKind kind;
    uint32_t cpu;
    uint64_t page;               /* index in the range; 0 for PAYLOAD_PROBLEM_SUM */
    uint64_t gpa;                /* the page's GPA; 0 for PAYLOAD_PROBLEM_SUM */
    uint64_t expected;           /* expected[page], or the CPU's step count */
    uint64_t word0, word1, last; /* the page's words; word0 = the sum for SUM */
} PayloadProblem;

#define PAYLOAD_CHECK_MAX_PROBLEMS 8

typedef struct PayloadCheckResult {
    /* From the control block. */
    uint64_t base;
    uint64_t npages;
    uint64_t expected_gpa;
    uint32_t ncpus;
    uint32_t order;
    uint64_t flags;
    uint64_t steps;              /* sum over CPUs */
    uint64_t sweep;              /* sweeps completed by every CPU (minimum) */
    uint64_t guest_errors;       /* mismatches the payload itself reported */
    uint64_t regs_failures;      /* register checks the payload itself failed */
    /* What the check found. */
    uint64_t pages_checked;
    uint64_t pages_valid;        /* words agree exactly with expected[] */
    uint64_t pages_untouched;    /* expected == 0, content not checked */
    uint64_t pages_in_flight;    /* a cur page caught between its stores */
    uint64_t pages_bad;
    uint64_t problems_total;     /* every problem, including those not stored */
    unsigned nproblems;
    PayloadProblem problems[PAYLOAD_CHECK_MAX_PROBLEMS];
} PayloadCheckResult;

/* A piece of guest-physical memory mapped into this process. */
typedef struct PayloadRamRegion {
    uint64_t gpa;
    uint64_t size;
    const uint8_t *host;
} PayloadRamRegion;

/* Checks the payload's memory invariant (docs/test-payload.md) over guest memory
 * given as regions (e.g. below and above the PCI hole). Finds the control block at
 * PAYLOAD_CTL_GPA. Fills @res whenever the control block was found (also when the
 * invariant fails). Returns true iff the invariant holds. */
bool payload_check_regions(const PayloadRamRegion *regions, size_t nregions,
                           PayloadCheckResult *res, GError **errp);

/* payload_check_regions() for one flat image: @ram holds GPA 0 .. @ram_size. */
bool payload_check_memory(const uint8_t *ram, uint64_t ram_size,
                          PayloadCheckResult *res, GError **errp);

/* A multi-line human summary of @res, one line per stored problem. Free with g_free. */
char *payload_check_result_describe(const PayloadCheckResult *res);

/* The register checksum CPU @cpu holds after @steps page steps. */
uint64_t payload_csum_compute(uint32_t cpu, uint64_t steps);

/* One PROGRESS line of the payload's serial output. */
typedef struct PayloadProgress {
    uint64_t t_us;
    uint64_t sweep;
    uint64_t steps;
    uint64_t rate;               /* page steps per second in the interval */
    uint64_t maxstall_us;
    uint64_t csum;
    uint64_t csteps;             /* steps of CPU 0 (== steps on one CPU) */
    uint64_t errors;
    bool regs_ok;
} PayloadProgress;

/* Parses a line such as "PROGRESS t_us=.. sweep=.. steps=.. rate=.. maxstall_us=..
 * csum=0x.. regs=ok errors=0" (a trailing newline or carriage return is fine, as
 * is text before "PROGRESS"). Unknown keys are ignored; the listed ones are required
 * except csteps. Returns false with PAYLOAD_CHECK_ERROR_PARSE otherwise. */
bool payload_parse_progress(const char *line, PayloadProgress *out, GError **errp);

/* True when @p's csum is what CPU 0 holds after p->csteps steps. */
bool payload_progress_csum_ok(const PayloadProgress *p);

#endif
