/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Benchmark: userfaultfd write-protect fault round trip and UFFDIO_WRITEPROTECT cost. */
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "system/cmdline.h"
#include "system/memory-backend.h"
#include "util/error.h"
#include "util/userfaultfd.h"

#define PAGE 4096ULL
#define GIB (1ULL << 30)
#define WP_REPEATS 5
#define EVENT_BATCH 64

typedef struct {
    const char *name;
    const char *label;
    MemoryBackendKind kind;
    bool thp;
} BenchBackend;

static const BenchBackend bench_backends[] = {
    { "anon-4k", "anonymous, 4 KiB pages (MADV_NOHUGEPAGE)", MEMORY_BACKEND_RAM, false },
    { "anon-thp", "anonymous, THP (MADV_HUGEPAGE)", MEMORY_BACKEND_RAM, true },
    { "memfd", "memfd (shmem)", MEMORY_BACKEND_MEMFD, false },
};

/*
 * Where the faulting writer and the handler run. On a VM, waking a thread on
 * an idle other vCPU costs an IPI through the hypervisor, which dominates the
 * round trip; on one CPU the blocked writer hands the CPU straight over.
 */
typedef struct {
    const char *name;
    const char *label;
    int writer_cpu;   /* -1: let the scheduler place the threads */
    int handler_cpu;
} BenchPlacement;

static const BenchPlacement bench_placements[] = {
    { "none", "scheduler", -1, -1 },
    { "same", "same CPU", 0, 0 },
    { "split", "two CPUs", 0, 1 },
};

typedef struct {
    const BenchBackend *backend;
    const BenchPlacement *placement;
    bool skipped;
    char *skip_reason;
    uint64_t huge_kb;          /* AnonHugePages/ShmemPmdMapped after populating */
    double protect_ms;         /* median time to write-protect the whole populated range */
    double unprotect_ms;       /* median time to remove it again */
    uint64_t samples;
    uint64_t p50_ns, p90_ns, p99_ns, p999_ns, max_ns, min_ns;
    double mean_ns;
} BenchResult;

/* The fault handler thread's context. */
typedef struct {
    int uffd;
    void *mem;          /* the registered range */
    uint64_t len;
    int stop_fd;
    int cpu;            /* pin to this CPU, or -1 */
    uint64_t spin_ns;   /* keep polling this long after the last event before sleeping */
    gint stop;
    uint64_t faults;
    gint error;         /* -errno of the first failure */
} FaultHandler;

/*
 * Record the handler's failure and unregister the range, which wakes a
 * blocked writer: without a handler it would otherwise wait forever.
 */
static gpointer fault_handler_fail(FaultHandler *h, int err)
{
    g_atomic_int_set(&h->error, err);
    uffd_unregister(h->uffd, h->mem, h->len);
    return NULL;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int pin_to_cpu(int cpu)
{
    cpu_set_t set;

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set);
}

/* Read pending events; unprotect exactly each faulting 4 KiB page, as a snapshot handler does. */
static int fault_handler_drain(FaultHandler *h, unsigned *handled)
{
    struct uffd_msg msgs[EVENT_BATCH];
    unsigned n;

    int ret = uffd_read_events(h->uffd, msgs, EVENT_BATCH, &n);
    if (ret < 0) {
        return ret;
    }
    for (unsigned i = 0; i < n; i++) {
        if (!uffd_msg_is_wp_fault(&msgs[i])) {
            continue;
        }
        uint64_t page = uffd_msg_fault_address(&msgs[i]) & ~(PAGE - 1);
        ret = uffd_writeprotect(h->uffd, (void *)(uintptr_t)page, PAGE, false, false);
        if (ret < 0) {
            return ret;
        }
        h->faults++;
    }
    *handled = n;
    return 0;
}

static gpointer fault_handler_run(gpointer opaque)
{
    FaultHandler *h = opaque;
    unsigned n;

    if (h->cpu >= 0 && pin_to_cpu(h->cpu) < 0) {
        return fault_handler_fail(h, -errno);
    }
    for (;;) {
        int ready = uffd_wait2(h->uffd, h->stop_fd, -1);
        if (ready < 0) {
            return fault_handler_fail(h, ready);
        }
        if (ready & UFFD_WAIT_WAKE) {
            return NULL;
        }
        /*
         * Optionally stay awake for a while: the next fault then finds the
         * handler running instead of asleep on an idle (halted) CPU.
         */
        uint64_t deadline = now_ns() + h->spin_ns;
        do {
            int ret = fault_handler_drain(h, &n);
            if (ret < 0) {
                return fault_handler_fail(h, ret);
            }
            if (n) {
                deadline = now_ns() + h->spin_ns;
            }
        } while (h->spin_ns && !g_atomic_int_get(&h->stop) && now_ns() < deadline);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples. */
static uint64_t percentile(const uint64_t *sorted, uint64_t n, double percent)
{
    uint64_t rank = (uint64_t)((percent / 100.0) * n + 0.999999);

    rank = CLAMP(rank, 1, n);
    return sorted[rank - 1];
}

/* How much of the mapping at @addr is backed by PMD-sized pages, in kB. */
static uint64_t huge_kb_of(const void *addr)
{
    g_autofree char *text = NULL;
    bool inside = false;
    uint64_t kb = 0;

    if (!g_file_get_contents("/proc/self/smaps", &text, NULL, NULL)) {
        return 0;
    }
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (char **line = lines; *line; line++) {
        unsigned long start, end;
        char perms[5];
        if (sscanf(*line, "%lx-%lx %4s", &start, &end, perms) == 3) {
            inside = (uintptr_t)addr >= start && (uintptr_t)addr < end;
            continue;
        }
        if (inside && (g_str_has_prefix(*line, "AnonHugePages:") ||
                       g_str_has_prefix(*line, "ShmemPmdMapped:"))) {
            kb += g_ascii_strtoull(strchr(*line, ':') + 1, NULL, 10);
        }
    }
    return kb;
}

/* What every backend run shares. */
typedef struct {
    uint64_t size;
    uint64_t samples;
    uint64_t features;   /* what the kernel offers */
    uint64_t spin_ns;    /* handler busy-polls this long before sleeping */
} BenchConfig;

static bool bench_one(const BenchBackend *bb, const BenchPlacement *pl, const BenchConfig *cfg,
                      BenchResult *r, GError **errp)
{
    uint64_t size = cfg->size;
    uint64_t nsamples = cfg->samples;
    uint64_t features = cfg->features;
    g_autoptr(MemoryBackendOptions) opts = memory_backend_options_new(bb->kind);
    g_autoptr(GError) local_err = NULL;

    r->backend = bb;
    r->placement = pl;
    opts->id = g_strdup(bb->name);
    opts->size = size;
    opts->thp = bb->thp;
    g_autoptr(MemoryBackend) b = memory_backend_new(opts, errp);
    if (!b) {
        return false;
    }
    if (!memory_backend_can_write_protect(b, features, &local_err)) {
        r->skipped = true;
        r->skip_reason = g_strdup(local_err->message);
        return true;
    }

    /* Write protection only covers populated pages (without WP_UNPOPULATED): populate all. */
    uint8_t *mem = b->host;
    for (uint64_t off = 0; off < size; off += PAGE) {
        mem[off] = 1;
    }
    r->huge_kb = huge_kb_of(mem);

    uint64_t missing = 0;
    uint64_t needed = b->backing == MEMORY_BACKING_ANONYMOUS ? UFFD_FEATURE_PAGEFAULT_FLAG_WP
                                                              : UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
    int uffd = uffd_open(needed, O_CLOEXEC | O_NONBLOCK, &missing);
    if (uffd < 0) {
        error_setg(errp, "%s: cannot open a userfaultfd: %s", bb->name, g_strerror(-uffd));
        return false;
    }
    int ret = uffd_register(uffd, mem, size, UFFDIO_REGISTER_MODE_WP, NULL);
    if (ret < 0) {
        error_setg(errp, "%s: cannot register for write-protect: %s", bb->name, g_strerror(-ret));
        close(uffd);
        return false;
    }

    /*
     * Protect cost first, while THP mappings are still whole: the latency
     * phase below splits every huge page it unprotects 4 KiB of.
     */
    double protect[WP_REPEATS], unprotect[WP_REPEATS];
    for (unsigned i = 0; i < WP_REPEATS; i++) {
        uint64_t t0 = now_ns();
        ret = uffd_writeprotect(uffd, mem, size, true, false);
        uint64_t t1 = now_ns();
        if (ret == 0) {
            ret = uffd_writeprotect(uffd, mem, size, false, false);
        }
        uint64_t t2 = now_ns();
        if (ret < 0) {
            error_setg(errp, "%s: UFFDIO_WRITEPROTECT failed: %s", bb->name, g_strerror(-ret));
            close(uffd);
            return false;
        }
        protect[i] = (t1 - t0) / 1e6;
        unprotect[i] = (t2 - t1) / 1e6;
    }
    qsort(protect, WP_REPEATS, sizeof(double), cmp_double);
    qsort(unprotect, WP_REPEATS, sizeof(double), cmp_double);
    r->protect_ms = protect[WP_REPEATS / 2];
    r->unprotect_ms = unprotect[WP_REPEATS / 2];

    FaultHandler handler = {
        .uffd = uffd,
        .mem = mem,
        .len = size,
        .stop_fd = eventfd(0, EFD_CLOEXEC),
        .cpu = pl->handler_cpu,
        .spin_ns = cfg->spin_ns,
    };
    if (handler.stop_fd < 0) {
        error_setg(errp, "cannot create an eventfd: %s", g_strerror(errno));
        close(uffd);
        return false;
    }
    cpu_set_t saved_affinity;
    sched_getaffinity(0, sizeof(saved_affinity), &saved_affinity);
    if (pl->writer_cpu >= 0 && pin_to_cpu(pl->writer_cpu) < 0) {
        error_setg(errp, "cannot pin the writer to CPU %d: %s", pl->writer_cpu,
                   g_strerror(errno));
        close(handler.stop_fd);
        close(uffd);
        return false;
    }
    g_autofree uint64_t *lat = g_new(uint64_t, nsamples);
    uint64_t pages = size / PAGE;
    GThread *thread = g_thread_new("uffd-handler", fault_handler_run, &handler);

    for (uint64_t i = 0; i < nsamples && !g_atomic_int_get(&handler.error); i++) {
        uint64_t page = i % pages;
        if (page == 0) {
            /* Every page served once: protect the whole range again (not timed). */
            ret = uffd_writeprotect(uffd, mem, size, true, false);
            if (ret < 0) {
                g_atomic_int_set(&handler.error, ret);
                break;
            }
        }
        volatile uint8_t *p = mem + page * PAGE;
        uint64_t t0 = now_ns();
        *p = (uint8_t)i;
        lat[i] = now_ns() - t0;
    }
    uint64_t one = 1;
    g_atomic_int_set(&handler.stop, 1);
    if (write(handler.stop_fd, &one, sizeof(one)) != sizeof(one)) {
        /* Cannot stop the handler: leaving it blocked would hang the join. */
        g_error("uffd-latency: cannot signal the handler thread: %s", g_strerror(errno));
    }
    g_thread_join(thread);
    sched_setaffinity(0, sizeof(saved_affinity), &saved_affinity);
    close(handler.stop_fd);
    close(uffd);
    if (handler.error) {
        error_setg(errp, "%s: fault handling failed: %s", bb->name, g_strerror(-handler.error));
        return false;
    }

    qsort(lat, nsamples, sizeof(uint64_t), cmp_u64);
    double sum = 0;
    for (uint64_t i = 0; i < nsamples; i++) {
        sum += lat[i];
    }
    r->samples = nsamples;
    r->mean_ns = sum / nsamples;
    r->min_ns = lat[0];
    r->p50_ns = percentile(lat, nsamples, 50);
    r->p90_ns = percentile(lat, nsamples, 90);
    r->p99_ns = percentile(lat, nsamples, 99);
    r->p999_ns = percentile(lat, nsamples, 99.9);
    r->max_ns = lat[nsamples - 1];
    if (handler.faults < nsamples) {
        error_setg(errp, "%s: only %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
                   " writes faulted; write protection did not hold", bb->name, handler.faults,
                   nsamples);
        return false;
    }
    return true;
}

static char *machine_description(void)
{
    struct utsname u;
    g_autofree char *os = NULL;
    g_autofree char *cpuinfo = NULL;
    g_autofree char *pretty = NULL;
    g_autofree char *cpu = NULL;

    uname(&u);
    if (g_file_get_contents("/etc/os-release", &os, NULL, NULL)) {
        const char *p = strstr(os, "PRETTY_NAME=\"");
        if (p) {
            p += strlen("PRETTY_NAME=\"");
            pretty = g_strndup(p, strcspn(p, "\""));
        }
    }
    if (g_file_get_contents("/proc/cpuinfo", &cpuinfo, NULL, NULL)) {
        const char *p = strstr(cpuinfo, "model name");
        if (p && (p = strchr(p, ':'))) {
            p += 2;
            cpu = g_strndup(p, strcspn(p, "\n"));
        }
    }
    return g_strdup_printf("%s, %ld cores (%s), kernel %s", pretty ? pretty : "Linux",
                           sysconf(_SC_NPROCESSORS_ONLN), cpu ? cpu : "unknown CPU", u.release);
}

static double us(uint64_t ns)
{
    return ns / 1000.0;
}

static double per_gib(double ms, uint64_t size)
{
    return ms * GIB / size;
}

static void print_markdown(const BenchResult *res, unsigned n, const BenchConfig *cfg,
                           const char *machine)
{
    uint64_t size = cfg->size;

    printf("Machine: %s\n", machine);
    printf("Range %" G_GUINT64_FORMAT " MiB, populated; %" G_GUINT64_FORMAT
           " write faults per backend (writer thread -> handler thread reads the event -> "
           "unprotects 4 KiB -> writer continues); write-protect cost is the median of %d.\n\n",
           size >> 20, cfg->samples, WP_REPEATS);
    if (cfg->spin_ns) {
        printf("The handler busy-polls %" G_GUINT64_FORMAT " us after each event.\n\n",
               cfg->spin_ns / 1000);
    }
    printf("| backend | threads | huge pages | fault p50 | p90 | p99 | p99.9 | max | "
           "protect per GiB | unprotect per GiB |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    for (unsigned i = 0; i < n; i++) {
        const BenchResult *r = &res[i];
        if (r->skipped) {
            printf("| %s | %s | skipped: %s ||||||||\n", r->backend->label, r->placement->label,
                   r->skip_reason);
            continue;
        }
        printf("| %s | %s | %.0f%% | %.1f us | %.1f us | %.1f us | %.1f us | %.1f us | "
               "%.3f ms | %.3f ms |\n",
               r->backend->label, r->placement->label, 100.0 * r->huge_kb * 1024 / size,
               us(r->p50_ns),
               us(r->p90_ns), us(r->p99_ns), us(r->p999_ns), us(r->max_ns),
               per_gib(r->protect_ms, size), per_gib(r->unprotect_ms, size));
    }
}

static void print_json(const BenchResult *res, unsigned n, const BenchConfig *cfg,
                       const char *machine)
{
    uint64_t size = cfg->size;

    g_autoptr(JsonBuilder) jb = json_builder_new();

    json_builder_begin_object(jb);
    json_builder_set_member_name(jb, "benchmark");
    json_builder_add_string_value(jb, "uffd-latency");
    json_builder_set_member_name(jb, "machine");
    json_builder_add_string_value(jb, machine);
    json_builder_set_member_name(jb, "size_bytes");
    json_builder_add_int_value(jb, size);
    json_builder_set_member_name(jb, "samples");
    json_builder_add_int_value(jb, cfg->samples);
    json_builder_set_member_name(jb, "handler_spin_ns");
    json_builder_add_int_value(jb, cfg->spin_ns);
    json_builder_set_member_name(jb, "results");
    json_builder_begin_array(jb);
    for (unsigned i = 0; i < n; i++) {
        const BenchResult *r = &res[i];
        json_builder_begin_object(jb);
        json_builder_set_member_name(jb, "backend");
        json_builder_add_string_value(jb, r->backend->name);
        json_builder_set_member_name(jb, "threads");
        json_builder_add_string_value(jb, r->placement->name);
        if (r->skipped) {
            json_builder_set_member_name(jb, "skipped");
            json_builder_add_string_value(jb, r->skip_reason);
            json_builder_end_object(jb);
            continue;
        }
#define MEMBER_INT(key, v) \
    (json_builder_set_member_name(jb, key), json_builder_add_int_value(jb, v))
#define MEMBER_DBL(key, v) \
    (json_builder_set_member_name(jb, key), json_builder_add_double_value(jb, v))
        MEMBER_INT("huge_page_bytes", r->huge_kb * 1024);
        MEMBER_INT("fault_min_ns", r->min_ns);
        MEMBER_DBL("fault_mean_ns", r->mean_ns);
        MEMBER_INT("fault_p50_ns", r->p50_ns);
        MEMBER_INT("fault_p90_ns", r->p90_ns);
        MEMBER_INT("fault_p99_ns", r->p99_ns);
        MEMBER_INT("fault_p999_ns", r->p999_ns);
        MEMBER_INT("fault_max_ns", r->max_ns);
        MEMBER_DBL("protect_ms", r->protect_ms);
        MEMBER_DBL("unprotect_ms", r->unprotect_ms);
        MEMBER_DBL("protect_ms_per_gib", per_gib(r->protect_ms, size));
        MEMBER_DBL("unprotect_ms_per_gib", per_gib(r->unprotect_ms, size));
#undef MEMBER_INT
#undef MEMBER_DBL
        json_builder_end_object(jb);
    }
    json_builder_end_array(jb);
    json_builder_end_object(jb);

    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autoptr(JsonNode) root = json_builder_get_root(jb);
    json_generator_set_root(gen, root);
    json_generator_set_pretty(gen, TRUE);
    g_autofree char *text = json_generator_to_data(gen, NULL);
    printf("%s\n", text);
}

int main(int argc, char **argv)
{
    g_autofree char *size_arg = NULL;
    g_autofree char *backends_arg = NULL;
    gint64 samples = 20000;
    gint64 spin_us = 0;
    gboolean json = FALSE;
    g_autofree char *pin = NULL;
    g_autoptr(GError) err = NULL;
    GOptionEntry entries[] = {
        { "size", 's', 0, G_OPTION_ARG_STRING, &size_arg,
          "Memory per backend (bytes, or K/M/G suffix; a bare number is MiB; default 1G)",
          "SIZE" },
        { "samples", 'n', 0, G_OPTION_ARG_INT64, &samples,
          "Write faults to time per backend (default 20000)", "N" },
        { "backends", 'b', 0, G_OPTION_ARG_STRING, &backends_arg,
          "Comma-separated subset of anon-4k,anon-thp,memfd (default all)", "LIST" },
        { "pin", 'p', 0, G_OPTION_ARG_STRING, &pin,
          "Thread placement, comma-separated: none (the scheduler's choice, default), "
          "same (both on CPU 0), split (writer on CPU 0, handler on CPU 1)", "LIST" },
        { "spin-us", 0, 0, G_OPTION_ARG_INT64, &spin_us,
          "Handler busy-polls this long after an event before sleeping (default 0)", "US" },
        { "json", 'j', 0, G_OPTION_ARG_NONE, &json, "Print machine-readable JSON", NULL },
        { NULL },
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new(
        "- userfaultfd write-protect fault latency and protect cost");

    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        fprintf(stderr, "uffd-latency: %s\n", err->message);
        return 2;
    }
    uint64_t size = GIB;
    if (size_arg && !cmdline_parse_size(size_arg, 1ULL << 20, &size, &err)) {
        fprintf(stderr, "uffd-latency: --size: %s\n", err->message);
        return 2;
    }
    if (size < 2 * (1ULL << 20) || size % (2 * (1ULL << 20))) {
        fprintf(stderr, "uffd-latency: --size must be a multiple of 2 MiB\n");
        return 2;
    }
    if (samples < 1) {
        fprintf(stderr, "uffd-latency: --samples must be at least 1\n");
        return 2;
    }

    if (spin_us < 0) {
        fprintf(stderr, "uffd-latency: --spin-us must not be negative\n");
        return 2;
    }
    BenchConfig cfg = { .size = size, .samples = samples, .spin_ns = spin_us * 1000 };
    int ret = uffd_query_features(&cfg.features, NULL);
    if (ret < 0) {
        fprintf(stderr, "uffd-latency: userfaultfd unavailable: %s\n", g_strerror(-ret));
        return 1;
    }

    g_auto(GStrv) wanted = backends_arg ? g_strsplit(backends_arg, ",", -1) : NULL;
    g_auto(GStrv) pins = g_strsplit(pin ? pin : "none", ",", -1);
    for (char **p = pins; *p; p++) {
        bool known = false;
        for (unsigned j = 0; j < G_N_ELEMENTS(bench_placements); j++) {
            known |= g_str_equal(*p, bench_placements[j].name);
        }
        if (!known) {
            fprintf(stderr, "uffd-latency: --pin takes none, same or split, not '%s'\n", *p);
            return 2;
        }
    }
    g_autofree BenchResult *results =
        g_new0(BenchResult, G_N_ELEMENTS(bench_backends) * G_N_ELEMENTS(bench_placements));
    unsigned n = 0;
    for (unsigned i = 0; i < G_N_ELEMENTS(bench_backends); i++) {
        const BenchBackend *bb = &bench_backends[i];
        if (wanted && !g_strv_contains((const char *const *)wanted, bb->name)) {
            continue;
        }
        for (unsigned j = 0; j < G_N_ELEMENTS(bench_placements); j++) {
            const BenchPlacement *pl = &bench_placements[j];
            if (!g_strv_contains((const char *const *)pins, pl->name)) {
                continue;
            }
            if (!json) {
                fprintf(stderr, "uffd-latency: %s, threads: %s\n", bb->name, pl->label);
            }
            if (!bench_one(bb, pl, &cfg, &results[n], &err)) {
                fprintf(stderr, "uffd-latency: %s\n", err->message);
                return 1;
            }
            n++;
        }
    }
    if (n == 0) {
        fprintf(stderr, "uffd-latency: --backends selects none of anon-4k,anon-thp,memfd\n");
        return 2;
    }

    g_autofree char *machine = machine_description();
    if (json) {
        print_json(results, n, &cfg, machine);
    } else {
        print_markdown(results, n, &cfg, machine);
    }
    for (unsigned i = 0; i < n; i++) {
        g_free(results[i].skip_reason);
    }
    return 0;
}
