/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests of the payload memory checker on synthetic guest memory images built
 * by a model of the payload's page step, including snapshots taken mid-step. */
#include "payload-check.h"

#include <string.h>

#define TEST_NPAGES 64
#define TEST_BASE   (PAYLOAD_EXPECTED_GPA + PAYLOAD_PAGE_SIZE)

typedef struct Image {
    uint8_t *ram;
    uint64_t size;
    PayloadCtl *ctl;
    uint32_t *expected;
} Image;

static uint64_t *page_word(Image *im, uint64_t i, unsigned w)
{
    return (uint64_t *)(im->ram + im->ctl->base + i * PAYLOAD_PAGE_SIZE + w * 8);
}

static void image_init(Image *im, uint64_t npages, uint32_t ncpus)
{
    im->size = TEST_BASE + npages * PAYLOAD_PAGE_SIZE;
    im->ram = g_malloc0(im->size);
    im->ctl = (PayloadCtl *)(im->ram + PAYLOAD_CTL_GPA);
    im->expected = (uint32_t *)(im->ram + PAYLOAD_EXPECTED_GPA);
    *im->ctl = (PayloadCtl) {
        .magic = PAYLOAD_MAGIC,
        .version = PAYLOAD_ABI_VERSION,
        .size = sizeof(PayloadCtl),
        .base = TEST_BASE,
        .npages = npages,
        .expected_gpa = PAYLOAD_EXPECTED_GPA,
        .ncpus = ncpus,
        .seed = 1,
    };
    for (uint32_t c = 0; c < ncpus; c++) {
        PayloadCpuSlot *s = &im->ctl->cpu[c];
        s->cur = PAYLOAD_CUR_NONE;
        s->first_page = npages * c / ncpus;
        s->npages = npages * (c + 1) / ncpus - s->first_page;
        s->state = PAYLOAD_CPU_RUNNING;
    }
}

static void image_free(Image *im)
{
    g_free(im->ram);
}

/* The payload's step, in its store order, stopping after `stores` of the six
 * stores (cur, expected, word 0, word 1, last word, steps); 6 = the whole step. */
static void image_step(Image *im, uint32_t cpu, uint64_t i, int stores)
{
    PayloadCpuSlot *s = &im->ctl->cpu[cpu];
    uint32_t e = im->expected[i] + 1;
    uint64_t gpa = im->ctl->base + i * PAYLOAD_PAGE_SIZE;

    if (stores-- <= 0) return;
    s->cur = i;
    if (stores-- <= 0) return;
    im->expected[i] = e;
    if (stores-- <= 0) return;
    *page_word(im, i, PAYLOAD_WORD_COUNT) = e;
    if (stores-- <= 0) return;
    *page_word(im, i, PAYLOAD_WORD_ADDR) = gpa;
    if (stores-- <= 0) return;
    *page_word(im, i, PAYLOAD_WORD_INVERSE) = ~(uint64_t)e;
    if (stores-- <= 0) return;
    s->steps++;
}

static void image_sweep(Image *im)
{
    for (uint32_t c = 0; c < im->ctl->ncpus; c++) {
        PayloadCpuSlot *s = &im->ctl->cpu[c];
        for (uint64_t i = s->first_page; i < s->first_page + s->npages; i++) {
            image_step(im, c, i, 6);
        }
        s->sweep++;
    }
}

static bool image_check(Image *im, PayloadCheckResult *res, GError **errp)
{
    return payload_check_memory(im->ram, im->size, res, errp);
}

static void expect_invariant_error(Image *im, PayloadProblemKind kind, uint64_t page)
{
    g_autoptr(GError) err = NULL;
    PayloadCheckResult res;

    g_assert_false(image_check(im, &res, &err));
    g_assert_error(err, PAYLOAD_CHECK_ERROR, PAYLOAD_CHECK_ERROR_INVARIANT);
    g_assert_cmpuint(res.nproblems, >=, 1);
    g_assert_cmpint(res.problems[0].kind, ==, kind);
    g_assert_cmpuint(res.problems[0].page, ==, page);
}

static void test_fresh(void)
{
    g_autoptr(GError) err = NULL;
    PayloadCheckResult res;
    Image im;

    image_init(&im, TEST_NPAGES, 1);
    /* Never-written pages may hold anything. */
    *page_word(&im, 3, 0) = 0xdeadbeef;
    g_assert_true(image_check(&im, &res, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(res.pages_checked, ==, TEST_NPAGES);
    g_assert_cmpuint(res.pages_untouched, ==, TEST_NPAGES);
    g_assert_cmpuint(res.steps, ==, 0);
    image_free(&im);
}

static void test_valid_sweeps(void)
{
    for (uint32_t ncpus = 1; ncpus <= 3; ncpus++) {
        g_autoptr(GError) err = NULL;
        PayloadCheckResult res;
        Image im;

        image_init(&im, TEST_NPAGES, ncpus);
        for (int k = 0; k < 3; k++) {
            image_sweep(&im);
        }
        /* A fourth sweep half done on CPU 0. */
        for (uint64_t i = 0; i < 5; i++) {
            image_step(&im, 0, i, 6);
        }
        g_assert_true(image_check(&im, &res, &err));
        g_assert_no_error(err);
        g_assert_cmpuint(res.pages_valid, ==, TEST_NPAGES);
        g_assert_cmpuint(res.steps, ==, 3 * TEST_NPAGES + 5);
        g_assert_cmpuint(res.sweep, ==, 3);
        g_assert_cmpuint(res.ncpus, ==, ncpus);
        image_free(&im);
    }
}

/* A snapshot may land between any two stores of a step: all must pass, on the
 * first write of a page (over garbage) and on later ones. */
static void test_mid_step(void)
{
    for (int sweeps = 0; sweeps <= 2; sweeps++) {
        for (int stores = 0; stores <= 6; stores++) {
            g_autoptr(GError) err = NULL;
            PayloadCheckResult res;
            Image im;

            image_init(&im, TEST_NPAGES, 1);
            for (int k = 0; k < sweeps; k++) {
                image_sweep(&im);
            }
            if (sweeps == 0) {
                memset(im.ram + TEST_BASE, 0x5a, PAYLOAD_PAGE_SIZE);
            }
            image_step(&im, 0, 0, 6);
            image_step(&im, 0, 0, stores);
            if (!image_check(&im, &res, &err)) {
                g_autofree char *d = payload_check_result_describe(&res);
                g_test_message("sweeps %d stores %d: %s\n%s", sweeps, stores,
                               err->message, d);
            }
            g_assert_no_error(err);
            g_assert_cmpuint(res.pages_in_flight, <=, 1);
            image_free(&im);
        }
    }
}

static void test_bad_counter(void)
{
    Image im;

    image_init(&im, TEST_NPAGES, 1);
    image_sweep(&im);
    image_sweep(&im);
    *page_word(&im, 17, PAYLOAD_WORD_COUNT) += 1;
    expect_invariant_error(&im, PAYLOAD_PROBLEM_PAGE, 17);
    image_free(&im);
}

static void test_bad_address_word(void)
{
    Image im;

    image_init(&im, TEST_NPAGES, 2);
    image_sweep(&im);
    *page_word(&im, 40, PAYLOAD_WORD_ADDR) ^= 0x1000;
    expect_invariant_error(&im, PAYLOAD_PROBLEM_PAGE, 40);
    image_free(&im);
}

static void test_bad_inverse_word(void)
{
    Image im;

    image_init(&im, TEST_NPAGES, 1);
    image_sweep(&im);
    *page_word(&im, 60, PAYLOAD_WORD_INVERSE) = 0;
    expect_invariant_error(&im, PAYLOAD_PROBLEM_PAGE, 60);
    image_free(&im);
}

/* The cur tolerance covers exactly one step: two behind, or word 0 old with the
 * last word new (a store order the payload never produces), are errors. */
static void test_cur_tolerance_limits(void)
{
    Image im;

    image_init(&im, TEST_NPAGES, 1);
    for (int k = 0; k < 3; k++) {
        image_sweep(&im);
    }
    image_step(&im, 0, 9, 2);            /* expected[9] = 4, page at 3 */
    *page_word(&im, 9, PAYLOAD_WORD_COUNT) = 2;
    *page_word(&im, 9, PAYLOAD_WORD_INVERSE) = ~2ull;
    expect_invariant_error(&im, PAYLOAD_PROBLEM_PAGE, 9);
    *page_word(&im, 9, PAYLOAD_WORD_COUNT) = 3;
    *page_word(&im, 9, PAYLOAD_WORD_INVERSE) = ~4ull;
    expect_invariant_error(&im, PAYLOAD_PROBLEM_PAGE, 9);
    /* The same mid-step state on a page that is not cur is an error too. */
    *page_word(&im, 9, PAYLOAD_WORD_INVERSE) = ~3ull;
    im.ctl->cpu[0].cur = 10;
    im.ctl->cpu[0].steps++;              /* keep the sum rule out of the way */
    expect_invariant_error(&im, PAYLOAD_PROBLEM_PAGE, 9);
    image_free(&im);
}

static void test_untouched_after_sweep(void)
{
    Image im;

    image_init(&im, TEST_NPAGES, 1);
    image_sweep(&im);
    im.expected[5] = 0;
    im.ctl->cpu[0].steps--;
    expect_invariant_error(&im, PAYLOAD_PROBLEM_UNTOUCHED, 5);
    image_free(&im);
}

static void test_step_sum(void)
{
    Image im;

    image_init(&im, TEST_NPAGES, 1);
    image_sweep(&im);
    im.ctl->cpu[0].steps += 2;
    expect_invariant_error(&im, PAYLOAD_PROBLEM_SUM, 0);
    image_free(&im);
}

static void test_no_control_block(void)
{
    g_autoptr(GError) err = NULL;
    PayloadCheckResult res;
    Image im;

    image_init(&im, TEST_NPAGES, 1);
    im.ctl->magic = 0;
    g_assert_false(image_check(&im, &res, &err));
    g_assert_error(err, PAYLOAD_CHECK_ERROR, PAYLOAD_CHECK_ERROR_NO_CONTROL_BLOCK);
    g_clear_error(&err);
    g_assert_false(payload_check_memory(im.ram, PAYLOAD_CTL_GPA, &res, &err));
    g_assert_error(err, PAYLOAD_CHECK_ERROR, PAYLOAD_CHECK_ERROR_NO_CONTROL_BLOCK);
    image_free(&im);
}

static void test_bad_control_block(void)
{
    Image im;

    image_init(&im, TEST_NPAGES, 1);
    PayloadCtl saved = *im.ctl;
    PayloadCtl *c = im.ctl;
    for (int k = 0; k < 6; k++) {
        g_autoptr(GError) err = NULL;
        PayloadCheckResult res;

        *c = saved;
        switch (k) {
        case 0: c->version = 99; break;
        case 1: c->npages = 1u << 30; c->cpu[0].npages = 1u << 30; break;  /* past the image */
        case 2: c->ncpus = 0; break;
        case 3: c->cpu[0].cur = TEST_NPAGES; break;                         /* outside share */
        case 4: c->base = PAYLOAD_EXPECTED_GPA; break;                      /* overlaps array */
        case 5: c->cpu[0].npages = TEST_NPAGES - 1; break;                  /* hole in shares */
        }
        g_assert_false(image_check(&im, &res, &err));
        g_assert_error(err, PAYLOAD_CHECK_ERROR, PAYLOAD_CHECK_ERROR_BAD_CONTROL_BLOCK);
    }
    image_free(&im);
}

/* The same image split in two regions (as around a PCI hole) checks the same. */
static void test_regions(void)
{
    g_autoptr(GError) err = NULL;
    PayloadCheckResult res;
    Image im;

    image_init(&im, TEST_NPAGES, 1);
    image_sweep(&im);
    uint64_t split = TEST_BASE + 10 * PAYLOAD_PAGE_SIZE;
    g_autofree uint8_t *high = g_malloc(im.size - split);
    memcpy(high, im.ram + split, im.size - split);
    PayloadRamRegion regions[] = {
        { .gpa = split, .size = im.size - split, .host = high },
        { .gpa = 0, .size = split, .host = im.ram },
    };
    g_assert_true(payload_check_regions(regions, 2, &res, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(res.pages_valid, ==, TEST_NPAGES);
    high[PAYLOAD_PAGE_SIZE * 3] ^= 1;
    g_assert_false(payload_check_regions(regions, 2, &res, &err));
    g_assert_error(err, PAYLOAD_CHECK_ERROR, PAYLOAD_CHECK_ERROR_INVARIANT);
    g_assert_cmpuint(res.problems[0].page, ==, 13);
    image_free(&im);
}

static void test_csum_chain(void)
{
    uint64_t c = payload_csum_seed(0);

    g_assert_cmphex(payload_csum_compute(0, 0), ==, c);
    for (uint64_t k = 1; k <= 1000; k++) {
        c = payload_csum_mix(c, k);
    }
    g_assert_cmphex(payload_csum_compute(0, 1000), ==, c);
    g_assert_cmphex(payload_csum_compute(0, 999), !=, c);
    g_assert_cmphex(payload_csum_compute(1, 1000), !=, c);
}

static void test_progress_parse(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *line = g_strdup_printf(
        "PROGRESS t_us=123456 sweep=3 steps=1000 rate=29000 maxstall_us=12 "
        "csum=0x%" G_GINT64_MODIFIER "x regs=ok errors=0\r\n",
        payload_csum_compute(0, 1000));
    PayloadProgress p;

    g_assert_true(payload_parse_progress(line, &p, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(p.t_us, ==, 123456);
    g_assert_cmpuint(p.sweep, ==, 3);
    g_assert_cmpuint(p.steps, ==, 1000);
    g_assert_cmpuint(p.csteps, ==, 1000);
    g_assert_cmpuint(p.rate, ==, 29000);
    g_assert_cmpuint(p.maxstall_us, ==, 12);
    g_assert_true(p.regs_ok);
    g_assert_cmpuint(p.errors, ==, 0);
    g_assert_true(payload_progress_csum_ok(&p));

    g_assert_true(payload_parse_progress(
        "serial: PROGRESS t_us=1 sweep=0 steps=9 rate=1 maxstall_us=1 csum=0x1 "
        "csteps=4 regs=FAIL errors=2 extra=7", &p, &err));
    g_assert_false(p.regs_ok);
    g_assert_cmpuint(p.csteps, ==, 4);
    g_assert_cmpuint(p.errors, ==, 2);
    g_assert_false(payload_progress_csum_ok(&p));

    const char *bad[] = {
        "PAYLOAD READY t_us=1",
        "PROGRESS t_us=1 sweep=0 steps=9 rate=1 maxstall_us=1 csum=0x1 regs=ok",
        "PROGRESS t_us=x sweep=0 steps=9 rate=1 maxstall_us=1 csum=0x1 regs=ok errors=0",
        "PROGRESS t_us=1 sweep=0 steps=9 rate=1 maxstall_us=1 csum=1 regs=ok errors=0",
        "PROGRESS t_us=1 sweep=0 steps=9 rate=1 maxstall_us=1 csum=0x1 regs=? errors=0",
    };
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) e = NULL;
        g_assert_false(payload_parse_progress(bad[i], &p, &e));
        g_assert_error(e, PAYLOAD_CHECK_ERROR, PAYLOAD_CHECK_ERROR_PARSE);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/payload-check/valid/fresh", test_fresh);
    g_test_add_func("/payload-check/valid/sweeps", test_valid_sweeps);
    g_test_add_func("/payload-check/valid/mid-step", test_mid_step);
    g_test_add_func("/payload-check/invalid/counter", test_bad_counter);
    g_test_add_func("/payload-check/invalid/address-word", test_bad_address_word);
    g_test_add_func("/payload-check/invalid/inverse-word", test_bad_inverse_word);
    g_test_add_func("/payload-check/invalid/cur-tolerance-limits", test_cur_tolerance_limits);
    g_test_add_func("/payload-check/invalid/untouched-after-sweep", test_untouched_after_sweep);
    g_test_add_func("/payload-check/invalid/step-sum", test_step_sum);
    g_test_add_func("/payload-check/control-block/missing", test_no_control_block);
    g_test_add_func("/payload-check/control-block/corrupt", test_bad_control_block);
    g_test_add_func("/payload-check/regions", test_regions);
    g_test_add_func("/payload-check/csum/chain", test_csum_chain);
    g_test_add_func("/payload-check/progress/parse", test_progress_parse);
    return g_test_run();
}
