/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Entry of the test payload in C: reads the Multiboot information and command line,
 * checks the requested range against the memory map, sets up the control block,
 * starts the other CPUs and hands every CPU to the sweep. */
#include "payload.h"

#define MB_LOADER_MAGIC   0x2BADB002u
#define MB_INFO_MEM       (1u << 0)
#define MB_INFO_CMDLINE   (1u << 2)
#define MB_INFO_MMAP      (1u << 6)
#define MB_MMAP_RAM       1u
#define CMDLINE_MAX       1024
#define AP_STACK_SIZE     16384
#define AP_START_TIMEOUT_MS 200

typedef struct __attribute__((packed)) MultibootInfo {
    uint32_t flags;
    uint32_t mem_lower;
    uint32_t mem_upper;
    uint32_t boot_device;
    uint32_t cmdline;
    uint32_t mods_count;
    uint32_t mods_addr;
    uint32_t syms[4];
    uint32_t mmap_length;
    uint32_t mmap_addr;
} MultibootInfo;

typedef struct __attribute__((packed)) MultibootMmapEntry {
    uint32_t size;
    uint64_t addr;
    uint64_t len;
    uint32_t type;
} MultibootMmapEntry;

/* The one shared instance (see Payload in payload.h). */
static Payload the_payload;
static char cmdline[CMDLINE_MAX];
static uint8_t ap_stacks[PAYLOAD_MAX_CPUS - 1][AP_STACK_SIZE] __attribute__((aligned(16)));
extern volatile uint64_t payload_ap_stack_top;

static void say(const char *s)
{
    size_t n = 0;

    while (s[n]) {
        n++;
    }
    serial_write_line(s, n);
}

__attribute__((noreturn)) static void config_error(const char *what, const char *tok,
                                                   size_t toklen)
{
    Line l;

    line_reset(&l);
    line_str(&l, "PAYLOAD ERROR ");
    line_str(&l, what);
    if (tok) {
        line_str(&l, ": ");
        for (size_t i = 0; i < toklen && i < 60; i++) {
            char c[2] = { tok[i], 0 };
            line_str(&l, c);
        }
    }
    line_send(&l);
    payload_exit(PAYLOAD_EXIT_CONFIG);
}

static void config_defaults(PayloadConfig *cfg)
{
    *cfg = (PayloadConfig) {
        .base = PAYLOAD_DEFAULT_BASE,
        .mem = PAYLOAD_DEFAULT_MEM,
        .seed = PAYLOAD_DEFAULT_SEED,
        .report_ms = PAYLOAD_DEFAULT_REPORT_MS,
        .order = PAYLOAD_ORDER_SEQ,
        .cpus = 1,
    };
}

static void config_apply(PayloadConfig *cfg, const char *key, size_t klen,
                         const char *val, size_t vlen)
{
    uint64_t v = 0;
    bool numeric = parse_size(val, vlen, &v);

    if (str_eq(key, klen, "order")) {
        if (str_eq(val, vlen, "seq")) {
            cfg->order = PAYLOAD_ORDER_SEQ;
        } else if (str_eq(val, vlen, "random")) {
            cfg->order = PAYLOAD_ORDER_RANDOM;
        } else {
            config_error("order must be seq or random", val, vlen);
        }
        return;
    }
    if (!numeric) {
        config_error("bad number", key, klen + 1 + vlen);
    }
    if (str_eq(key, klen, "mem")) {
        cfg->mem = v;
    } else if (str_eq(key, klen, "base")) {
        cfg->base = v;
    } else if (str_eq(key, klen, "seed")) {
        cfg->seed = v;
    } else if (str_eq(key, klen, "report_ms")) {
        cfg->report_ms = v;
    } else if (str_eq(key, klen, "sweeps")) {
        cfg->sweeps = v;
    } else if (str_eq(key, klen, "tsc_khz")) {
        cfg->tsc_khz = v;
    } else if (str_eq(key, klen, "idle")) {
        cfg->idle = v != 0;
    } else if (str_eq(key, klen, "hot")) {
        cfg->hot = v;
    } else if (str_eq(key, klen, "exit_on_error")) {
        cfg->exit_on_error = v != 0;
    } else if (str_eq(key, klen, "cpus")) {
        cfg->cpus = (uint32_t)v;
    } else {
        Line l;
        line_reset(&l);
        line_str(&l, "PAYLOAD WARN unknown key ");
        for (size_t i = 0; i < klen && i < 40; i++) {
            char c[2] = { key[i], 0 };
            line_str(&l, c);
        }
        line_send(&l);
    }
}

/* Tokens are separated by spaces; tokens without '=' (the kernel path QEMU puts
 * first, a VM name) are ignored. */
static void config_parse(PayloadConfig *cfg, const char *s)
{
    while (*s) {
        while (*s == ' ' || *s == '\t') {
            s++;
        }
        const char *tok = s;
        while (*s && *s != ' ' && *s != '\t') {
            s++;
        }
        const char *eq = tok;
        while (eq < s && *eq != '=') {
            eq++;
        }
        if (eq < s && eq > tok) {
            config_apply(cfg, tok, (size_t)(eq - tok), eq + 1, (size_t)(s - eq - 1));
        }
    }
}

/* True when [start, end) is covered by RAM according to the loader. */
static bool range_is_ram(const MultibootInfo *mbi, uint64_t start, uint64_t end)
{
    if (mbi->flags & MB_INFO_MMAP) {
        uint64_t pos = start;
        bool progress = true;

        /* Entries may be split or unsorted: extend coverage until it stops growing. */
        while (pos < end && progress) {
            progress = false;
            uint64_t a = mbi->mmap_addr;
            while (a < (uint64_t)mbi->mmap_addr + mbi->mmap_length) {
                const MultibootMmapEntry *e = (const void *)(uintptr_t)a;
                if (e->type == MB_MMAP_RAM && e->addr <= pos && e->addr + e->len > pos) {
                    pos = e->addr + e->len;
                    progress = true;
                }
                a += e->size + 4;
            }
        }
        return pos >= end;
    }
    if (mbi->flags & MB_INFO_MEM) {
        return start >= (1ull << 20) && end <= (1ull << 20) + ((uint64_t)mbi->mem_upper << 10);
    }
    return false;
}

static void config_check(const PayloadConfig *cfg, const MultibootInfo *mbi)
{
    uint64_t npages = cfg->mem / PAYLOAD_PAGE_SIZE;
    uint64_t expected_end = PAYLOAD_EXPECTED_GPA + npages * sizeof(uint32_t);

    if (!(mbi->flags & (MB_INFO_MEM | MB_INFO_MMAP))) {
        config_error("the loader gave no memory information (Multiboot flags bit 0 or 6)",
                     NULL, 0);
    }
    if (cfg->mem == 0 || cfg->mem % PAYLOAD_PAGE_SIZE || cfg->base % PAYLOAD_PAGE_SIZE) {
        config_error("base and mem must be non-zero multiples of 4K", NULL, 0);
    }
    if (cfg->base < expected_end) {
        config_error("range overlaps the payload, control block or expected array",
                     NULL, 0);
    }
    if (cfg->base + cfg->mem > PAYLOAD_MAPPED_BYTES || cfg->base + cfg->mem < cfg->base) {
        config_error("range ends above the 16G the page tables map", NULL, 0);
    }
    if (!range_is_ram(mbi, PAYLOAD_CTL_GPA, expected_end) ||
        !range_is_ram(mbi, cfg->base, cfg->base + cfg->mem)) {
        config_error("range is not RAM in the memory map", NULL, 0);
    }
    if (cfg->report_ms == 0) {
        config_error("report_ms must be > 0", NULL, 0);
    }
    if (cfg->cpus == 0 || cfg->cpus > PAYLOAD_MAX_CPUS) {
        config_error("cpus must be 1..8", NULL, 0);
    }
}

static void print_start(const Payload *p)
{
    const PayloadConfig *cfg = &p->cfg;
    Line l;

    line_reset(&l);
    line_str(&l, "PAYLOAD START");
    line_kv(&l, "version", PAYLOAD_ABI_VERSION);
    line_kv(&l, "t_us", (rdtsc() - p->t_start) * 1000 / cfg->tsc_khz);
    line_kx(&l, "base", cfg->base);
    line_kx(&l, "mem", cfg->mem);
    line_str(&l, cfg->order == PAYLOAD_ORDER_SEQ ? " order=seq" : " order=random");
    line_kv(&l, "seed", cfg->seed);
    line_kv(&l, "cpus", p->ncpus);
    line_kv(&l, "sweeps", cfg->sweeps);
    line_kv(&l, "report_ms", cfg->report_ms);
    line_kv(&l, "tsc_khz", cfg->tsc_khz);
    line_str(&l, " tsc_src=");
    line_str(&l, tsc_source_name(cfg->tsc_source));
    line_kx(&l, "ctl", PAYLOAD_CTL_GPA);
    line_send(&l);
}

/* APs come up one at a time: each one takes the stack and index the BSP published,
 * acknowledges, and waits for `go` (the control block is not ready yet). */
__attribute__((used, noreturn)) void payload_ap_main(void);
void payload_ap_main(void)
{
    Payload *p = &the_payload;
    uint32_t index = p->ap_index;

    exceptions_load();
    __atomic_store_n(&p->ap_ack, index, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&p->go, __ATOMIC_ACQUIRE)) {
        cpu_relax();
    }
    if (index >= p->ncpus) {
        for (;;) {
            __asm__ __volatile__("cli; hlt");
        }
    }
    payload_sweep_run(p, index);
}

static uint32_t start_aps(Payload *p)
{
    uint32_t online = 1;

    trampoline_install();
    for (uint32_t k = 1; k < p->cfg.cpus; k++) {
        payload_ap_stack_top = (uint64_t)(uintptr_t)&ap_stacks[k - 1][AP_STACK_SIZE];
        p->ap_index = k;
        p->ap_ack = 0;
        barrier();
        /* QEMU numbers the APIC IDs of a flat -smp N topology 0..N-1. */
        if (lapic_start_ap(k, p->cfg.tsc_khz)) {
            uint64_t limit = rdtsc() + AP_START_TIMEOUT_MS * p->cfg.tsc_khz;
            while (__atomic_load_n(&p->ap_ack, __ATOMIC_ACQUIRE) != k && rdtsc() < limit) {
                cpu_relax();
            }
        }
        if (p->ap_ack != k) {
            Line l;
            line_reset(&l);
            line_str(&l, "PAYLOAD WARN ap did not start");
            line_kv(&l, "apic", k);
            line_send(&l);
            break;
        }
        online++;
    }
    return online;
}

static void ctl_init(Payload *p)
{
    volatile PayloadCtl *ctl = (volatile PayloadCtl *)(uintptr_t)PAYLOAD_CTL_GPA;
    uint64_t npages = p->cfg.mem / PAYLOAD_PAGE_SIZE;

    /* magic first to zero: a half-built block must never look valid. */
    ctl->magic = 0;
    barrier();
    memset((void *)(uintptr_t)PAYLOAD_CTL_GPA, 0, PAYLOAD_PAGE_SIZE);
    memset((void *)(uintptr_t)PAYLOAD_EXPECTED_GPA, 0, npages * sizeof(uint32_t));
    ctl->version = PAYLOAD_ABI_VERSION;
    ctl->size = sizeof(PayloadCtl);
    ctl->base = p->cfg.base;
    ctl->npages = npages;
    ctl->expected_gpa = PAYLOAD_EXPECTED_GPA;
    ctl->order = p->cfg.order;
    ctl->ncpus = p->ncpus;
    ctl->seed = p->cfg.seed;
    ctl->flags = p->cfg.idle ? PAYLOAD_FLAG_IDLE : 0;
    ctl->tsc_khz = p->cfg.tsc_khz;
    ctl->sweeps_target = p->cfg.sweeps;
    for (uint32_t k = 0; k < p->ncpus; k++) {
        volatile PayloadCpuSlot *s = &ctl->cpu[k];
        s->cur = PAYLOAD_CUR_NONE;
        s->first_page = npages * k / p->ncpus;
        s->npages = npages * (k + 1) / p->ncpus - s->first_page;
        s->state = PAYLOAD_CPU_RUNNING;
        s->apic_id = k;
    }
    barrier();
    ctl->magic = PAYLOAD_MAGIC;
    barrier();
    p->ctl = ctl;
    p->expected = (volatile uint32_t *)(uintptr_t)PAYLOAD_EXPECTED_GPA;
}

__attribute__((noreturn)) void payload_main(uint32_t magic, uint32_t info);
void payload_main(uint32_t magic, uint32_t info)
{
    Payload *p = &the_payload;
    const MultibootInfo *mbi = (const MultibootInfo *)(uintptr_t)info;

    p->t_start = rdtsc();
    serial_init();
    exceptions_init();
    exceptions_load();
    if (magic != MB_LOADER_MAGIC) {
        say("PAYLOAD ERROR not started by a Multiboot loader (EAX != 0x2BADB002)");
        payload_exit(PAYLOAD_EXIT_CONFIG);
    }

    config_defaults(&p->cfg);
    if (mbi->flags & MB_INFO_CMDLINE) {
        const char *src = (const char *)(uintptr_t)mbi->cmdline;
        size_t n = 0;
        while (src[n] && n < CMDLINE_MAX - 1) {
            cmdline[n] = src[n];
            n++;
        }
        cmdline[n] = '\0';
        config_parse(&p->cfg, cmdline);
    }
    config_check(&p->cfg, mbi);

    if (p->cfg.tsc_khz) {
        p->cfg.tsc_source = TSC_SOURCE_CMDLINE;
    } else {
        p->cfg.tsc_khz = tsc_calibrate(&p->cfg.tsc_source);
    }
    p->report_ticks = p->cfg.report_ms * p->cfg.tsc_khz;
    p->mismatch_budget = 8;

    /* The Multiboot data is not needed past this point; the range may cover it. */
    p->ncpus = p->cfg.cpus > 1 ? start_aps(p) : 1;
    print_start(p);
    ctl_init(p);
    __atomic_store_n(&p->go, 1, __ATOMIC_RELEASE);
    payload_sweep_run(p, 0);
}
