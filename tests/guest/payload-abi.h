/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The contract between the test payload (guest) and the host tools that check it:
 * guest-physical layout, control block, exit codes and the register checksum chain.
 *
 * This header is compiled both freestanding (inside the guest) and hosted (in the
 * checker), so it uses nothing but <stdint.h>. docs/test-payload.md explains the
 * invariant in prose; the comments here are the normative short form.
 */
#ifndef FROSTVM_TESTS_GUEST_PAYLOAD_ABI_H
#define FROSTVM_TESTS_GUEST_PAYLOAD_ABI_H

#include <stdint.h>

/* "FRSTPAYL" read as a little-endian uint64. */
#define PAYLOAD_MAGIC            0x4c59415054535246ull
#define PAYLOAD_ABI_VERSION      1u

/* Fixed guest-physical addresses. The payload image lives in [1 MiB, 2 MiB); the
 * control block sits alone in the page at 2 MiB and the expected-value array starts
 * right after it. The swept range must start at or above the array's end. */
#define PAYLOAD_LOAD_GPA         ((uint64_t)0x100000)
#define PAYLOAD_CTL_GPA          ((uint64_t)0x200000)
#define PAYLOAD_EXPECTED_GPA     ((uint64_t)0x201000)
#define PAYLOAD_PAGE_SIZE        ((uint64_t)4096)
#define PAYLOAD_PAGE_WORDS       (PAYLOAD_PAGE_SIZE / 8)

/* Defaults for the command-line keys. */
#define PAYLOAD_DEFAULT_BASE     ((uint64_t)16 << 20)
#define PAYLOAD_DEFAULT_MEM      ((uint64_t)128 << 20)
#define PAYLOAD_DEFAULT_REPORT_MS 100u
#define PAYLOAD_DEFAULT_SEED     1ull

/* How much guest-physical space the payload's page tables map (2 MiB pages). */
#define PAYLOAD_MAPPED_BYTES     ((uint64_t)16 << 30)

#define PAYLOAD_MAX_CPUS         8u

/* PayloadCpuSlot.cur when the CPU is between steps (or not sweeping at all). */
#define PAYLOAD_CUR_NONE         UINT64_MAX

/* Values the payload writes to the isa-debug-exit port (0xf4). QEMU turns value v
 * into the process exit status (v << 1) | 1: 33, 35, 37, 39. */
#define PAYLOAD_EXIT_SUCCESS     0x10u   /* all requested sweeps done, no error */
#define PAYLOAD_EXIT_ERRORS      0x11u   /* a mismatch or a register check failed */
#define PAYLOAD_EXIT_FAULT       0x12u   /* CPU exception inside the payload */
#define PAYLOAD_EXIT_CONFIG      0x13u   /* bad command line or range not in RAM */

enum PayloadOrder {
    PAYLOAD_ORDER_SEQ = 0,
    PAYLOAD_ORDER_RANDOM = 1,
};

/* PayloadCtl.flags */
#define PAYLOAD_FLAG_READY       (1ull << 0)  /* every CPU finished its first sweep */
#define PAYLOAD_FLAG_IDLE        (1ull << 1)  /* idle=1: no writes after the first sweep */
#define PAYLOAD_FLAG_DONE        (1ull << 2)  /* sweeps=N reached, payload about to exit */

/* PayloadCpuSlot.state */
#define PAYLOAD_CPU_OFFLINE      0u
#define PAYLOAD_CPU_RUNNING      1u
#define PAYLOAD_CPU_STOPPED      2u

/* Per-vCPU bookkeeping. Each CPU owns the pages [first_page, first_page + npages)
 * of the range (indices relative to PayloadCtl.base) and writes only its own slot. */
typedef struct PayloadCpuSlot {
    uint64_t cur;          /* page index being updated, or PAYLOAD_CUR_NONE */
    uint64_t steps;        /* page steps completed by this CPU (memory copy) */
    uint64_t sweep;        /* sweeps completed by this CPU */
    uint64_t first_page;
    uint64_t npages;
    uint64_t errors;       /* mismatches found by this CPU */
    uint64_t regs_failures;/* report ticks where r14 != steps */
    uint32_t state;        /* PAYLOAD_CPU_* */
    uint32_t apic_id;
    uint64_t maxstall_tsc; /* largest gap between two steps in the last interval */
    uint64_t reserved[7];
} PayloadCpuSlot;

/* The control block at PAYLOAD_CTL_GPA. magic is written last at start-up, so an
 * image taken before initialisation finished has no valid control block. */
typedef struct PayloadCtl {
    uint64_t magic;
    uint32_t version;
    uint32_t size;         /* sizeof(PayloadCtl) */
    uint64_t base;         /* GPA of page 0 of the range, 4 KiB aligned */
    uint64_t npages;       /* pages in the range */
    uint64_t expected_gpa; /* uint32_t expected[npages] lives here */
    uint32_t order;        /* enum PayloadOrder */
    uint32_t ncpus;        /* CPUs sweeping (slots 0 .. ncpus-1) */
    uint64_t seed;
    uint64_t flags;        /* PAYLOAD_FLAG_* */
    uint64_t tsc_khz;
    uint64_t sweeps_target;/* sweeps=N, 0 = forever */
    uint64_t reserved[6];
    PayloadCpuSlot cpu[PAYLOAD_MAX_CPUS];
} PayloadCtl;

_Static_assert(sizeof(PayloadCpuSlot) == 128, "PayloadCpuSlot layout is ABI");
_Static_assert(sizeof(PayloadCtl) == 128 + 128 * PAYLOAD_MAX_CPUS, "PayloadCtl layout is ABI");

/* Word offsets inside every page of the range. */
#define PAYLOAD_WORD_COUNT       0u                       /* == expected[i] */
#define PAYLOAD_WORD_ADDR        1u                       /* == the page's GPA */
#define PAYLOAD_WORD_INVERSE     (PAYLOAD_PAGE_WORDS - 1) /* == ~(uint64_t)expected[i] */

/* Register checksum chain. CPU c starts with r15 = payload_csum_seed(c) and after its
 * k-th page step (k = 1, 2, ...) sets r15 = payload_csum_mix(r15, k); r14 holds k.
 * The value after N steps is therefore a pure function of (c, N). */
/*
 * Pages a CPU sweeps in sweep @sweep (0 = the first): all of its @share the
 * first time, then, with hot=SIZE (@hot bytes, 0 = off), only the first
 * SIZE / @ncpus of it: a guest whose memory is in use but mostly cold.
 */
static inline uint64_t payload_sweep_pages(uint64_t share, uint64_t hot, uint32_t ncpus,
                                           uint64_t sweep)
{
    uint64_t hot_pages = hot / PAYLOAD_PAGE_SIZE / (ncpus ? ncpus : 1);

    if (!sweep || !hot) {
        return share;
    }
    return hot_pages < 1 ? 1 : (hot_pages < share ? hot_pages : share);
}

static inline uint64_t payload_csum_seed(uint32_t cpu)
{
    return 0x6a09e667f3bcc908ull ^ ((uint64_t)cpu << 56);
}

static inline uint64_t payload_csum_mix(uint64_t csum, uint64_t step)
{
    /* Kept to a handful of instructions: under kvm_pvm every guest instruction
     * costs on the order of a microsecond. For a fixed step it is a bijection of
     * csum (xor, multiply by an odd constant, xorshift), so a lost or altered
     * register never falls back onto the right chain. */
    uint64_t x = (csum ^ step) * 0x9e3779b97f4a7c15ull;

    return x ^ (x >> 29);
}

#endif
