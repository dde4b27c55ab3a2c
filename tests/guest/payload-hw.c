/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Hardware the test payload touches: COM1, the PIT for TSC calibration, the
 * isa-debug-exit port, the exception table and the local APIC for AP start-up. */
#include "payload.h"

#define COM1            0x3F8
#define UART_THR        0
#define UART_IER        1
#define UART_IIR_FCR    2
#define UART_LCR        3
#define UART_MCR        4
#define UART_LSR        5
#define UART_LSR_THRE   0x20
#define UART_FIFO_DEPTH 16

#define PIT_CH2         0x42
#define PIT_CMD         0x43
#define PIT_GATE_PORT   0x61
#define PIT_HZ          1193182u
#define PIT_CAL_COUNT   59659u         /* 50 ms */

#define DEBUG_EXIT_PORT 0xF4

#define LAPIC_BASE      0xFEE00000ull
#define LAPIC_ID        0x020
#define LAPIC_SVR       0x0F0
#define LAPIC_ICR_LO    0x300
#define LAPIC_ICR_HI    0x310
#define ICR_PENDING     (1u << 12)

#define TRAMPOLINE_GPA  0x8000ull

extern const uint64_t payload_isr_table[32];
extern char payload_trampoline_start[], payload_trampoline_end[];

/* Serial state is shared by all CPUs; the lock keeps lines whole. */
static volatile uint32_t serial_lock;
static unsigned serial_burst = 1;

typedef struct __attribute__((packed)) IdtEntry {
    uint16_t offset_lo;
    uint16_t selector;
    uint8_t ist;
    uint8_t type;
    uint16_t offset_mid;
    uint32_t offset_hi;
    uint32_t reserved;
} IdtEntry;

static IdtEntry idt[32] __attribute__((aligned(16)));

void serial_init(void)
{
    outb(COM1 + UART_IER, 0x00);
    outb(COM1 + UART_LCR, 0x80);           /* divisor latch: 115200 baud */
    outb(COM1 + UART_THR, 0x01);
    outb(COM1 + UART_IER, 0x00);
    outb(COM1 + UART_LCR, 0x03);           /* 8N1 */
    outb(COM1 + UART_IIR_FCR, 0xC7);       /* enable and clear FIFOs */
    outb(COM1 + UART_MCR, 0x03);
    /* With a working FIFO, one THRE poll admits 16 bytes: half the port exits. */
    if ((inb(COM1 + UART_IIR_FCR) & 0xC0) == 0xC0) {
        serial_burst = UART_FIFO_DEPTH;
    }
}

static void serial_lock_take(void)
{
    while (__atomic_exchange_n(&serial_lock, 1, __ATOMIC_ACQUIRE)) {
        cpu_relax();
    }
}

static void serial_lock_drop(void)
{
    __atomic_store_n(&serial_lock, 0, __ATOMIC_RELEASE);
}

void serial_write_line(const char *s, size_t len)
{
    unsigned room = 0;

    serial_lock_take();
    for (size_t i = 0; i <= len; i++) {
        while (room == 0) {
            if (inb(COM1 + UART_LSR) & UART_LSR_THRE) {
                room = serial_burst;
            } else {
                cpu_relax();
            }
        }
        outb(COM1 + UART_THR, i < len ? (uint8_t)s[i] : '\n');
        room--;
    }
    serial_lock_drop();
}

const char *tsc_source_name(TscSource src)
{
    switch (src) {
    case TSC_SOURCE_CMDLINE:
        return "cmdline";
    case TSC_SOURCE_PIT:
        return "pit";
    case TSC_SOURCE_CPUID:
        return "cpuid";
    default:
        return "default";
    }
}

/* PIT channel 2 in mode 0: OUT2 (port 0x61 bit 5) goes high at terminal count.
 * Returns 0 when the PIT is missing or the result is implausible. */
static uint64_t tsc_calibrate_pit(void)
{
    uint8_t gate = inb(PIT_GATE_PORT);
    uint64_t t0, t1;

    outb(PIT_GATE_PORT, (gate & ~0x02) | 0x01);   /* gate on, speaker off */
    outb(PIT_CMD, 0xB0);                          /* ch 2, lo/hi, mode 0, binary */
    outb(PIT_CH2, PIT_CAL_COUNT & 0xFF);
    outb(PIT_CH2, PIT_CAL_COUNT >> 8);
    t0 = rdtsc();
    if (inb(PIT_GATE_PORT) & 0x20) {
        return 0;                                 /* output already high: no PIT */
    }
    /* Give up after 1e9 cycles: no PIT answers, or the port reads back zero. */
    do {
        t1 = rdtsc();
        if (t1 - t0 > 1000000000ull) {
            return 0;
        }
    } while (!(inb(PIT_GATE_PORT) & 0x20));
    outb(PIT_GATE_PORT, gate);

    uint64_t khz = (t1 - t0) * PIT_HZ / PIT_CAL_COUNT / 1000;
    if (khz < 100000 || khz > 20000000) {
        return 0;
    }
    return khz;
}

static uint64_t tsc_from_cpuid(void)
{
    uint32_t r[4];

    cpuid(0x40000000, 0, r);
    if (r[0] >= 0x40000010 && r[0] < 0x40000100) {
        cpuid(0x40000010, 0, r);
        if (r[0]) {
            return r[0];
        }
    }
    cpuid(0, 0, r);
    if (r[0] >= 0x15) {
        cpuid(0x15, 0, r);
        if (r[0] && r[1] && r[2]) {
            return (uint64_t)r[2] * r[1] / r[0] / 1000;
        }
    }
    if (r[0] >= 0x16) {
        cpuid(0x16, 0, r);
        if (r[0] & 0xFFFF) {
            return (uint64_t)(r[0] & 0xFFFF) * 1000;
        }
    }
    return 0;
}

uint64_t tsc_calibrate(TscSource *src)
{
    uint64_t khz = tsc_calibrate_pit();

    if (khz) {
        *src = TSC_SOURCE_PIT;
        return khz;
    }
    khz = tsc_from_cpuid();
    if (khz) {
        *src = TSC_SOURCE_CPUID;
        return khz;
    }
    *src = TSC_SOURCE_DEFAULT;
    return 2000000;
}

void payload_exit(uint32_t code)
{
    outl(DEBUG_EXIT_PORT, code);
    /* No exit device: park the CPU; the host sees the DONE/ERROR line. */
    for (;;) {
        __asm__ __volatile__("cli; hlt");
    }
}

void exceptions_init(void)
{
    for (unsigned v = 0; v < 32; v++) {
        uint64_t a = payload_isr_table[v];
        idt[v] = (IdtEntry) {
            .offset_lo = (uint16_t)a,
            .selector = 0x08,
            .type = 0x8E,                         /* present, interrupt gate */
            .offset_mid = (uint16_t)(a >> 16),
            .offset_hi = (uint32_t)(a >> 32),
        };
    }
}

void exceptions_load(void)
{
    struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } idtr = { sizeof(idt) - 1, (uint64_t)idt };

    __asm__ __volatile__("lidt %0" : : "m"(idtr));
}

/* Called from the exception stubs with a pointer to vector, error code and the
 * CPU's frame. Prints one line and exits: nothing can be trusted afterwards. */
__attribute__((noreturn, used)) void payload_fault(const uint64_t *frame);
void payload_fault(const uint64_t *frame)
{
    uint64_t cr2;
    Line l;

    __asm__ __volatile__("mov %%cr2, %0" : "=r"(cr2));
    line_reset(&l);
    line_str(&l, "FAULT");
    line_kv(&l, "vec", frame[0]);
    line_kx(&l, "err", frame[1]);
    line_kx(&l, "rip", frame[2]);
    line_kx(&l, "cr2", cr2);
    line_kv(&l, "apic", lapic_id());
    line_send(&l);
    payload_exit(PAYLOAD_EXIT_FAULT);
}

static inline volatile uint32_t *lapic_reg(uint32_t off)
{
    return (volatile uint32_t *)(uintptr_t)(LAPIC_BASE + off);
}

uint32_t lapic_id(void)
{
    return *lapic_reg(LAPIC_ID) >> 24;
}

static void tsc_delay_us(uint64_t us, uint64_t tsc_khz)
{
    uint64_t end = rdtsc() + us * tsc_khz / 1000;

    while (rdtsc() < end) {
        cpu_relax();
    }
}

static bool lapic_send_ipi(uint32_t apic_id, uint32_t low, uint64_t tsc_khz)
{
    uint64_t limit = rdtsc() + 100 * tsc_khz;     /* 100 ms */

    *lapic_reg(LAPIC_ICR_HI) = apic_id << 24;
    *lapic_reg(LAPIC_ICR_LO) = low;
    while (*lapic_reg(LAPIC_ICR_LO) & ICR_PENDING) {
        if (rdtsc() > limit) {
            return false;
        }
        cpu_relax();
    }
    return true;
}

void trampoline_install(void)
{
    memcpy((void *)(uintptr_t)TRAMPOLINE_GPA, payload_trampoline_start,
           (size_t)(payload_trampoline_end - payload_trampoline_start));
}

bool lapic_start_ap(uint32_t apic_id, uint64_t tsc_khz)
{
    uint32_t vector = (uint32_t)(TRAMPOLINE_GPA >> 12);

    *lapic_reg(LAPIC_SVR) |= 0x100;               /* software-enable the APIC */
    if (!lapic_send_ipi(apic_id, 0x4500, tsc_khz)) {   /* INIT, level assert */
        return false;
    }
    tsc_delay_us(10000, tsc_khz);
    for (int i = 0; i < 2; i++) {
        if (!lapic_send_ipi(apic_id, 0x4600 | vector, tsc_khz)) {   /* SIPI */
            return false;
        }
        tsc_delay_us(200, tsc_khz);
    }
    return true;
}
