/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Private interface between the test payload's C files (guest side only). */
#ifndef FROSTVM_TESTS_GUEST_PAYLOAD_H
#define FROSTVM_TESTS_GUEST_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payload-abi.h"

/* Register-held state, kept out of memory on purpose: a restore that loses the
 * vCPU registers shows up as r14 != the control block's step count. Every payload
 * file is compiled with -ffixed-r14 -ffixed-r15 so nothing else uses them. */
register uint64_t payload_reg_steps asm("r14");
register uint64_t payload_reg_csum asm("r15");

#define barrier() __asm__ __volatile__("" ::: "memory")

/* ---- payload-hw.c: ports, serial, TSC, exit, exceptions, local APIC ---------- */

static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ __volatile__("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ __volatile__("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline void outl(uint16_t port, uint32_t v)
{
    __asm__ __volatile__("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static inline void cpu_relax(void)
{
    __asm__ __volatile__("pause" ::: "memory");
}

static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    __asm__ __volatile__("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
                         : "a"(leaf), "c"(sub));
}

typedef enum TscSource {
    TSC_SOURCE_CMDLINE,
    TSC_SOURCE_PIT,
    TSC_SOURCE_CPUID,
    TSC_SOURCE_DEFAULT,
} TscSource;

void serial_init(void);
/* Writes a whole line (adds "\n") under the serial lock, so CPUs never interleave. */
void serial_write_line(const char *s, size_t len);
/* Measures the TSC against PIT channel 2, falls back to CPUID; returns kHz. */
uint64_t tsc_calibrate(TscSource *src);
const char *tsc_source_name(TscSource src);
void exceptions_init(void);
void exceptions_load(void);
__attribute__((noreturn)) void payload_exit(uint32_t code);
uint32_t lapic_id(void);
/* Starts the AP with the given APIC ID at the trampoline; true when the IPIs went out. */
bool lapic_start_ap(uint32_t apic_id, uint64_t tsc_khz);
void trampoline_install(void);

/* ---- payload-fmt.c: line building and number parsing ------------------------- */

typedef struct Line {
    char buf[200];
    size_t len;
} Line;

void line_reset(Line *l);
void line_str(Line *l, const char *s);
void line_u64(Line *l, uint64_t v);
void line_hex(Line *l, uint64_t v);
/* Appends " key=<decimal>" / " key=0x<hex>". */
void line_kv(Line *l, const char *key, uint64_t v);
void line_kx(Line *l, const char *key, uint64_t v);
void line_send(Line *l);
/* Parses decimal or 0x-hex with an optional K/M/G suffix (binary units). */
bool parse_size(const char *s, size_t len, uint64_t *out);
bool str_eq(const char *a, size_t alen, const char *b);

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/* ---- payload-sweep.c: the page sweep, its invariant and the reports ----------- */

typedef struct PayloadConfig {
    uint64_t base;
    uint64_t mem;
    uint64_t seed;
    uint64_t sweeps;          /* 0 = forever */
    uint64_t report_ms;
    uint64_t tsc_khz;
    TscSource tsc_source;
    uint32_t order;           /* enum PayloadOrder */
    uint32_t cpus;            /* requested CPUs (cpus=N) */
    bool idle;
    bool exit_on_error;
    uint64_t hot;             /* hot=SIZE: after the first sweep, sweep only this much */
} PayloadConfig;

/* State shared by all CPUs. There is one instance; APs find it through the entry
 * code because a CPU coming out of the trampoline has no arguments to receive. */
typedef struct Payload {
    PayloadConfig cfg;
    volatile PayloadCtl *ctl;
    volatile uint32_t *expected;
    uint64_t report_ticks;
    uint64_t t_start;
    uint32_t ncpus;                   /* CPUs that came up */
    volatile uint32_t go;             /* BSP releases the APs */
    volatile uint32_t ap_ack;         /* AP start-up handshake */
    volatile uint32_t ap_index;
    volatile uint32_t mismatch_budget;/* MISMATCH lines left in this interval */
} Payload;

/* Runs CPU `index`'s share of the sweep until the configured end (BSP: then exits). */
__attribute__((noreturn)) void payload_sweep_run(Payload *p, uint32_t index);

#endif
