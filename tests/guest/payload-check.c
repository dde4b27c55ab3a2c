/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Verifies the test payload's memory invariant in a guest memory image, and parses
 * and verifies its PROGRESS lines. The rules are the ones docs/test-payload.md states. */
#include "payload-check.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

G_DEFINE_QUARK(payload-check-error-quark, payload_check_error)

typedef struct RamView {
    const PayloadRamRegion *regions;
    size_t nregions;
} RamView;

/* Host address of [gpa, gpa + len) when one region holds all of it, else NULL. */
static const uint8_t *ram_view_get(const RamView *v, uint64_t gpa, uint64_t len)
{
    for (size_t i = 0; i < v->nregions; i++) {
        const PayloadRamRegion *r = &v->regions[i];

        if (gpa >= r->gpa && len <= r->size && gpa - r->gpa <= r->size - len) {
            return r->host + (gpa - r->gpa);
        }
    }
    return NULL;
}

static uint64_t load64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static void add_problem(PayloadCheckResult *res, const PayloadProblem *p)
{
    res->problems_total++;
    if (res->nproblems < PAYLOAD_CHECK_MAX_PROBLEMS) {
        res->problems[res->nproblems++] = *p;
    }
}

static bool ctl_validate(const RamView *v, const PayloadCtl *ctl, GError **errp)
{
    if (ctl->version != PAYLOAD_ABI_VERSION || ctl->size != sizeof(PayloadCtl)) {
        g_set_error(errp, PAYLOAD_CHECK_ERROR, PAYLOAD_CHECK_ERROR_BAD_CONTROL_BLOCK,
                    "payload control block at 0x%" PRIx64 ": version %u size %u, this checker "
                    "knows version %u size %zu", PAYLOAD_CTL_GPA, ctl->version,
                    ctl->size, PAYLOAD_ABI_VERSION, sizeof(PayloadCtl));
        return false;
    }
    if (ctl->ncpus == 0 || ctl->ncpus > PAYLOAD_MAX_CPUS || ctl->npages == 0 ||
        ctl->npages > (UINT64_MAX / PAYLOAD_PAGE_SIZE) ||
        ctl->base % PAYLOAD_PAGE_SIZE || ctl->order > PAYLOAD_ORDER_RANDOM) {
        g_set_error(errp, PAYLOAD_CHECK_ERROR, PAYLOAD_CHECK_ERROR_BAD_CONTROL_BLOCK,
                    "payload control block at 0x%" PRIx64 " is corrupt: ncpus %u, npages "
                    "%" PRIu64 ", base 0x%" PRIx64 ", order %u", PAYLOAD_CTL_GPA,
                    ctl->ncpus, ctl->npages, ctl->base, ctl->order);
        return false;
    }
    uint64_t exp_end = ctl->expected_gpa + ctl->npages * sizeof(uint32_t);
    if (ctl->expected_gpa < PAYLOAD_CTL_GPA + PAYLOAD_PAGE_SIZE || exp_end > ctl->base) {
        g_set_error(errp, PAYLOAD_CHECK_ERROR, PAYLOAD_CHECK_ERROR_BAD_CONTROL_BLOCK,
                    "payload expected[] array [0x%" PRIx64 ", 0x%" PRIx64 ") overlaps "
                    "the control block or the range at 0x%" PRIx64,
                    ctl->expected_gpa, exp_end, ctl->base);
        return false;
    }
    if (!ram_view_get(v, ctl->expected_gpa, exp_end - ctl->expected_gpa)) {
        g_set_error(errp, PAYLOAD_CHECK_ERROR, PAYLOAD_CHECK_ERROR_BAD_CONTROL_BLOCK,
                    "payload expected[] array [0x%" PRIx64 ", 0x%" PRIx64 ") is not "
                    "inside the memory image", ctl->expected_gpa, exp_end);
        return false;
    }
    /* Shares must tile the range in CPU order; cur must lie in its own share. */
    uint64_t next = 0;
    for (uint32_t c = 0; c < ctl->ncpus; c++) {
        const PayloadCpuSlot *s = &ctl->cpu[c];

        if (s->first_page != next || s->npages > ctl->npages - next ||
            (s->cur != PAYLOAD_CUR_NONE &&
             (s->cur < s->first_page || s->cur - s->first_page >= s->npages))) {
            g_set_error(errp, PAYLOAD_CHECK_ERROR, PAYLOAD_CHECK_ERROR_BAD_CONTROL_BLOCK,
                        "payload CPU %u slot is corrupt: pages %" PRIu64 "+%" PRIu64
                        " (expected to start at %" PRIu64 "), cur %" PRIu64,
                        c, s->first_page, s->npages, next, s->cur);
            return false;
        }
        next += s->npages;
    }
    if (next != ctl->npages) {
        g_set_error(errp, PAYLOAD_CHECK_ERROR, PAYLOAD_CHECK_ERROR_BAD_CONTROL_BLOCK,
                    "payload CPU shares cover %" PRIu64 " of %" PRIu64 " pages",
                    next, ctl->npages);
        return false;
    }
    return true;
}

/* The tolerance for the page a CPU is updating (docs/test-payload.md): with E the
 * expected value in memory, the CPU's stores are expected[i] = E, word 0 = E,
 * word 1 = GPA, last = ~E, so a snapshot sees the page before them (at E - 1),
 * after word 0, or after all of them. Before the first write (E == 1) the old
 * content is arbitrary RAM. */
static bool cur_page_in_flight(uint64_t e, uint64_t gpa, uint64_t w0, uint64_t w1,
                               uint64_t wl)
{
    if (e == 1) {
        return true;
    }
    if (w1 != gpa) {
        return false;
    }
    return (w0 == e - 1 && wl == ~(e - 1)) || (w0 == e && wl == ~(e - 1));
}

static void check_cpu_share(const RamView *v, const PayloadCtl *ctl, uint32_t c,
                            const uint32_t *expected, PayloadCheckResult *res)
{
    const PayloadCpuSlot *s = &ctl->cpu[c];
    uint64_t sum = 0;

    for (uint64_t i = s->first_page; i < s->first_page + s->npages; i++) {
        uint64_t e = expected[i];
        uint64_t gpa = ctl->base + i * PAYLOAD_PAGE_SIZE;
        const uint8_t *page = ram_view_get(v, gpa, PAYLOAD_PAGE_SIZE);
        PayloadProblem p = { .kind = PAYLOAD_PROBLEM_PAGE, .cpu = c, .page = i,
                             .gpa = gpa, .expected = e };

        res->pages_checked++;
        sum += e;
        if (e == 0) {
            res->pages_untouched++;
            if (s->sweep > 0) {
                p.kind = PAYLOAD_PROBLEM_UNTOUCHED;
                res->pages_bad++;
                add_problem(res, &p);
            }
            continue;
        }
        p.word0 = load64(page + PAYLOAD_WORD_COUNT * 8);
        p.word1 = load64(page + PAYLOAD_WORD_ADDR * 8);
        p.last = load64(page + PAYLOAD_WORD_INVERSE * 8);
        if (p.word0 == e && p.word1 == gpa && p.last == ~e) {
            res->pages_valid++;
        } else if (i == s->cur && cur_page_in_flight(e, gpa, p.word0, p.word1, p.last)) {
            res->pages_in_flight++;
        } else {
            res->pages_bad++;
            add_problem(res, &p);
        }
    }
    /* Each step adds one to one expected[] entry, then one to the step count. */
    if (sum != s->steps && !(sum == s->steps + 1 && s->cur != PAYLOAD_CUR_NONE)) {
        PayloadProblem p = { .kind = PAYLOAD_PROBLEM_SUM, .cpu = c,
                             .expected = s->steps, .word0 = sum };
        add_problem(res, &p);
    }
}

bool payload_check_regions(const PayloadRamRegion *regions, size_t nregions,
                           PayloadCheckResult *res, GError **errp)
{
    RamView v = { regions, nregions };
    const uint8_t *ctl_host = ram_view_get(&v, PAYLOAD_CTL_GPA, sizeof(PayloadCtl));
    PayloadCtl ctl;

    memset(res, 0, sizeof(*res));
    if (!ctl_host) {
        g_set_error(errp, PAYLOAD_CHECK_ERROR, PAYLOAD_CHECK_ERROR_NO_CONTROL_BLOCK,
                    "payload control block at GPA 0x%" PRIx64 " is outside the memory image",
                    PAYLOAD_CTL_GPA);
        return false;
    }
    memcpy(&ctl, ctl_host, sizeof(ctl));
    if (ctl.magic != PAYLOAD_MAGIC) {
        g_set_error(errp, PAYLOAD_CHECK_ERROR, PAYLOAD_CHECK_ERROR_NO_CONTROL_BLOCK,
                    "no payload control block at GPA 0x%" PRIx64 " (magic 0x%016" PRIx64
                    "): the payload was not running or had not finished starting",
                    PAYLOAD_CTL_GPA, ctl.magic);
        return false;
    }
    if (!ctl_validate(&v, &ctl, errp)) {
        return false;
    }
    if (!ram_view_get(&v, ctl.base, ctl.npages * PAYLOAD_PAGE_SIZE)) {
        /* Ranges crossing a region boundary are fine, as long as each page is in. */
        for (uint64_t i = 0; i < ctl.npages; i++) {
            if (!ram_view_get(&v, ctl.base + i * PAYLOAD_PAGE_SIZE, PAYLOAD_PAGE_SIZE)) {
                g_set_error(errp, PAYLOAD_CHECK_ERROR,
                            PAYLOAD_CHECK_ERROR_BAD_CONTROL_BLOCK,
                            "payload page %" PRIu64 " (GPA 0x%" PRIx64 ") is not inside "
                            "the memory image", i, ctl.base + i * PAYLOAD_PAGE_SIZE);
                return false;
            }
        }
    }

    res->base = ctl.base;
    res->npages = ctl.npages;
    res->expected_gpa = ctl.expected_gpa;
    res->ncpus = ctl.ncpus;
    res->order = ctl.order;
    res->flags = ctl.flags;
    res->sweep = UINT64_MAX;
    for (uint32_t c = 0; c < ctl.ncpus; c++) {
        res->steps += ctl.cpu[c].steps;
        res->sweep = MIN(res->sweep, ctl.cpu[c].sweep);
        res->guest_errors += ctl.cpu[c].errors;
        res->regs_failures += ctl.cpu[c].regs_failures;
    }

    /* Copy the array: the image may be unaligned (a file mapped at any offset). */
    g_autofree uint32_t *expected = g_new(uint32_t, ctl.npages);
    memcpy(expected, ram_view_get(&v, ctl.expected_gpa, ctl.npages * sizeof(uint32_t)),
           ctl.npages * sizeof(uint32_t));
    for (uint32_t c = 0; c < ctl.ncpus; c++) {
        check_cpu_share(&v, &ctl, c, expected, res);
    }

    if (res->problems_total) {
        const PayloadProblem *p = &res->problems[0];
        g_set_error(errp, PAYLOAD_CHECK_ERROR, PAYLOAD_CHECK_ERROR_INVARIANT,
                    "payload memory invariant broken: %" PRIu64 " problem(s), %" PRIu64
                    " of %" PRIu64 " pages bad; first: %s cpu %u page %" PRIu64
                    " (GPA 0x%" PRIx64 ") expected %" PRIu64 " got 0x%" PRIx64,
                    res->problems_total, res->pages_bad, res->npages,
                    p->kind == PAYLOAD_PROBLEM_PAGE ? "page" :
                    p->kind == PAYLOAD_PROBLEM_UNTOUCHED ? "untouched" : "sum",
                    p->cpu, p->page, p->gpa, p->expected, p->word0);
        return false;
    }
    return true;
}

bool payload_check_memory(const uint8_t *ram, uint64_t ram_size,
                          PayloadCheckResult *res, GError **errp)
{
    PayloadRamRegion r = { .gpa = 0, .size = ram_size, .host = ram };

    return payload_check_regions(&r, 1, res, errp);
}

char *payload_check_result_describe(const PayloadCheckResult *res)
{
    GString *s = g_string_new(NULL);

    g_string_append_printf(s, "control block: base=0x%" PRIx64 " pages=%" PRIu64
                           " expected=0x%" PRIx64 " cpus=%u order=%s flags=0x%" PRIx64
                           "%s%s%s\n", res->base, res->npages, res->expected_gpa,
                           res->ncpus, res->order == PAYLOAD_ORDER_SEQ ? "seq" : "random",
                           res->flags,
                           res->flags & PAYLOAD_FLAG_READY ? " ready" : "",
                           res->flags & PAYLOAD_FLAG_IDLE ? " idle" : "",
                           res->flags & PAYLOAD_FLAG_DONE ? " done" : "");
    g_string_append_printf(s, "guest: steps=%" PRIu64 " sweep=%" PRIu64 " errors=%" PRIu64
                           " regs_failures=%" PRIu64 "\n", res->steps, res->sweep,
                           res->guest_errors, res->regs_failures);
    g_string_append_printf(s, "pages: checked=%" PRIu64 " valid=%" PRIu64
                           " in_flight=%" PRIu64 " untouched=%" PRIu64 " bad=%" PRIu64
                           " problems=%" PRIu64 "\n", res->pages_checked, res->pages_valid,
                           res->pages_in_flight, res->pages_untouched, res->pages_bad,
                           res->problems_total);
    for (unsigned i = 0; i < res->nproblems; i++) {
        const PayloadProblem *p = &res->problems[i];

        switch (p->kind) {
        case PAYLOAD_PROBLEM_PAGE:
            g_string_append_printf(s, "bad page: cpu=%u page=%" PRIu64 " gpa=0x%" PRIx64
                                   " expected=%" PRIu64 " word0=0x%" PRIx64 " word1=0x%"
                                   PRIx64 " last=0x%" PRIx64 "\n", p->cpu, p->page,
                                   p->gpa, p->expected, p->word0, p->word1, p->last);
            break;
        case PAYLOAD_PROBLEM_UNTOUCHED:
            g_string_append_printf(s, "untouched page after a full sweep: cpu=%u page=%"
                                   PRIu64 " gpa=0x%" PRIx64 "\n", p->cpu, p->page, p->gpa);
            break;
        case PAYLOAD_PROBLEM_SUM:
            g_string_append_printf(s, "step count mismatch: cpu=%u steps=%" PRIu64
                                   " sum(expected)=%" PRIu64 "\n", p->cpu, p->expected,
                                   p->word0);
            break;
        }
    }
    return g_string_free(s, FALSE);
}

uint64_t payload_csum_compute(uint32_t cpu, uint64_t steps)
{
    uint64_t csum = payload_csum_seed(cpu);

    for (uint64_t k = 1; k <= steps; k++) {
        csum = payload_csum_mix(csum, k);
    }
    return csum;
}

static bool parse_u64(const char *val, int base, uint64_t *out)
{
    char *end;

    if (!*val || *val == '-') {
        return false;
    }
    errno = 0;
    *out = g_ascii_strtoull(val, &end, base);
    return errno == 0 && *end == '\0';
}

bool payload_parse_progress(const char *line, PayloadProgress *out, GError **errp)
{
    static const char *const required[] = {
        "t_us", "sweep", "steps", "rate", "maxstall_us", "csum", "regs", "errors",
    };
    const char *start = strstr(line, "PROGRESS ");
    guint seen = 0;
    bool has_csteps = false;

    if (!start) {
        g_set_error(errp, PAYLOAD_CHECK_ERROR, PAYLOAD_CHECK_ERROR_PARSE,
                    "not a payload PROGRESS line: '%s'", line);
        return false;
    }
    memset(out, 0, sizeof(*out));
    g_auto(GStrv) tokens = g_strsplit_set(start + strlen("PROGRESS "), " \r\n", -1);
    for (char **t = tokens; *t; t++) {
        char *eq = strchr(*t, '=');
        bool ok = true;
        int idx = -1;

        if (!eq) {
            continue;
        }
        *eq = '\0';
        const char *key = *t, *val = eq + 1;
        for (guint i = 0; i < G_N_ELEMENTS(required); i++) {
            if (strcmp(key, required[i]) == 0) {
                idx = (int)i;
            }
        }
        switch (idx) {
        case 0: ok = parse_u64(val, 10, &out->t_us); break;
        case 1: ok = parse_u64(val, 10, &out->sweep); break;
        case 2: ok = parse_u64(val, 10, &out->steps); break;
        case 3: ok = parse_u64(val, 10, &out->rate); break;
        case 4: ok = parse_u64(val, 10, &out->maxstall_us); break;
        case 5: ok = g_str_has_prefix(val, "0x") && parse_u64(val + 2, 16, &out->csum); break;
        case 6:
            ok = strcmp(val, "ok") == 0 || strcmp(val, "FAIL") == 0;
            out->regs_ok = strcmp(val, "ok") == 0;
            break;
        case 7: ok = parse_u64(val, 10, &out->errors); break;
        default:
            if (strcmp(key, "csteps") == 0) {
                ok = parse_u64(val, 10, &out->csteps);
                has_csteps = true;
            }
            break;
        }
        if (!ok) {
            g_set_error(errp, PAYLOAD_CHECK_ERROR, PAYLOAD_CHECK_ERROR_PARSE,
                        "payload PROGRESS line: bad value '%s' for '%s'", val, key);
            return false;
        }
        if (idx >= 0) {
            seen |= 1u << idx;
        }
    }
    for (guint i = 0; i < G_N_ELEMENTS(required); i++) {
        if (!(seen & (1u << i))) {
            g_set_error(errp, PAYLOAD_CHECK_ERROR, PAYLOAD_CHECK_ERROR_PARSE,
                        "payload PROGRESS line lacks '%s': '%s'", required[i], line);
            return false;
        }
    }
    if (!has_csteps) {
        out->csteps = out->steps;
    }
    return true;
}

bool payload_progress_csum_ok(const PayloadProgress *p)
{
    return payload_csum_compute(0, p->csteps) == p->csum;
}
