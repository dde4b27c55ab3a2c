/* SPDX-License-Identifier: GPL-2.0-or-later */
/* When auto-converge raises the throttle (migration/auto-converge.c): QEMU's rule, case by case. */
#include "migration/auto-converge.h"

#include <glib.h>

#define SEC 1000000ULL
#define MiB (1024ULL * 1024ULL)

static const AutoConvergeParams defaults = {
    .initial = 20, .increment = 10, .max = 99, .threshold = 50, .tailslow = false,
};

/* One pass per second: @sent bytes out, @dirtied dirtied; the percentage after each. */
static unsigned run_periods(AutoConverge *ac, const AutoConvergeParams *p, unsigned current,
                            uint64_t *now, unsigned periods, uint64_t sent, uint64_t dirtied)
{
    for (unsigned i = 0; i < periods; i++) {
        *now += SEC;
        current = auto_converge_update(ac, p, current, *now, sent, dirtied);
    }
    return current;
}

/* Too fast twice starts at the initial share, then steps by the increment. */
static void test_starts_then_steps(void)
{
    AutoConverge ac = { 0 };
    uint64_t now = 5 * SEC;
    unsigned pct;

    /* The first call only opens the period. */
    g_assert_cmpuint(auto_converge_update(&ac, &defaults, 0, now, 100 * MiB, 100 * MiB), ==, 0);
    pct = run_periods(&ac, &defaults, 0, &now, 1, 100 * MiB, 100 * MiB);
    g_assert_cmpuint(pct, ==, 0);          /* once is not enough */
    pct = run_periods(&ac, &defaults, pct, &now, 1, 100 * MiB, 100 * MiB);
    g_assert_cmpuint(pct, ==, 20);
    pct = run_periods(&ac, &defaults, pct, &now, 1, 100 * MiB, 100 * MiB);
    g_assert_cmpuint(pct, ==, 20);
    pct = run_periods(&ac, &defaults, pct, &now, 1, 100 * MiB, 100 * MiB);
    g_assert_cmpuint(pct, ==, 30);
    pct = run_periods(&ac, &defaults, pct, &now, 2 * 7, 100 * MiB, 100 * MiB);
    g_assert_cmpuint(pct, ==, 99);         /* 30 + 7 steps of 10, capped */
    pct = run_periods(&ac, &defaults, pct, &now, 4, 100 * MiB, 100 * MiB);
    g_assert_cmpuint(pct, ==, 99);
}

/*
 * At or under the threshold nothing moves; as in QEMU, fast periods count
 * whether or not quiet ones come between, until the throttle rises.
 */
static void test_threshold_and_reset(void)
{
    AutoConverge ac = { 0 };
    uint64_t now = SEC;
    unsigned pct;

    auto_converge_update(&ac, &defaults, 0, now, 0, 0);
    /* Exactly half of what was sent is not above the threshold. */
    pct = run_periods(&ac, &defaults, 0, &now, 6, 100 * MiB, 50 * MiB);
    g_assert_cmpuint(pct, ==, 0);
    /* High, low, high: the second high one starts it. */
    pct = run_periods(&ac, &defaults, pct, &now, 1, 100 * MiB, 60 * MiB);
    pct = run_periods(&ac, &defaults, pct, &now, 3, 100 * MiB, 10 * MiB);
    g_assert_cmpuint(pct, ==, 0);
    pct = run_periods(&ac, &defaults, pct, &now, 1, 100 * MiB, 60 * MiB);
    g_assert_cmpuint(pct, ==, 20);
    /* And the count starts again after a raise: one more high period is not enough. */
    pct = run_periods(&ac, &defaults, pct, &now, 1, 100 * MiB, 60 * MiB);
    pct = run_periods(&ac, &defaults, pct, &now, 2, 100 * MiB, 10 * MiB);
    g_assert_cmpuint(pct, ==, 20);
    pct = run_periods(&ac, &defaults, pct, &now, 1, 100 * MiB, 60 * MiB);
    g_assert_cmpuint(pct, ==, 30);
}

/* Passes shorter than a second are summed into one period before it is judged. */
static void test_short_passes_make_one_period(void)
{
    AutoConverge ac = { 0 };
    uint64_t now = SEC;
    unsigned pct = 0;

    auto_converge_update(&ac, &defaults, 0, now, 0, 0);
    /* Ten passes of 0.1 s each: one period; twenty: two. */
    for (int i = 0; i < 19; i++) {
        now += SEC / 10;
        pct = auto_converge_update(&ac, &defaults, pct, now, 10 * MiB, 10 * MiB);
        g_assert_cmpuint(pct, ==, 0);
    }
    now += SEC / 10;
    pct = auto_converge_update(&ac, &defaults, pct, now, 10 * MiB, 10 * MiB);
    g_assert_cmpuint(pct, ==, 20);

    /* A period is judged on its sums: 9 quiet passes outweigh one busy one. */
    AutoConverge ac2 = { 0 };
    now = SEC;
    pct = 0;
    auto_converge_update(&ac2, &defaults, 0, now, 0, 0);
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 10; i++) {
            now += SEC / 10;
            pct = auto_converge_update(&ac2, &defaults, pct, now, 10 * MiB,
                                       i == 0 ? 40 * MiB : 0);
        }
    }
    g_assert_cmpuint(pct, ==, 0);
}

/* Parameters other than the defaults: a low maximum, an initial share above it. */
static void test_custom_limits(void)
{
    const AutoConvergeParams p = { .initial = 60, .increment = 30, .max = 50, .threshold = 100 };
    AutoConverge ac = { 0 };
    uint64_t now = SEC;
    unsigned pct;

    auto_converge_update(&ac, &p, 0, now, 0, 0);
    /* threshold 100: dirtying all that was sent is not too fast, more is. */
    pct = run_periods(&ac, &p, 0, &now, 4, 100 * MiB, 100 * MiB);
    g_assert_cmpuint(pct, ==, 0);
    pct = run_periods(&ac, &p, pct, &now, 2, 100 * MiB, 101 * MiB);
    g_assert_cmpuint(pct, ==, 50);         /* the initial 60 capped by max */
    pct = run_periods(&ac, &p, pct, &now, 2, 100 * MiB, 101 * MiB);
    g_assert_cmpuint(pct, ==, 50);
}

/*
 * tailslow: the step is what would bring dirtying down to the threshold
 * (if it scales with the guest's CPU share), never more than the increment.
 */
static void test_tailslow(void)
{
    AutoConvergeParams p = defaults;
    AutoConverge ac = { 0 };
    uint64_t now = SEC;
    unsigned pct;

    p.tailslow = true;
    auto_converge_update(&ac, &p, 0, now, 0, 0);
    pct = run_periods(&ac, &p, 0, &now, 2, 100 * MiB, 200 * MiB);
    g_assert_cmpuint(pct, ==, 20);         /* starting is always the initial share */
    /*
     * At 20%, the guest has 80%; allowed 50 of 55 dirtied: ideal share
     * 80 * 50 / 55 = 72.7, so 72: a step of 8, under the increment.
     */
    pct = run_periods(&ac, &p, pct, &now, 2, 100 * MiB, 55 * MiB);
    g_assert_cmpuint(pct, ==, 28);
    /* Far above the threshold: the full increment. */
    pct = run_periods(&ac, &p, pct, &now, 2, 100 * MiB, 400 * MiB);
    g_assert_cmpuint(pct, ==, 38);
    /* Just above: at least one percent. */
    pct = run_periods(&ac, &p, pct, &now, 2, 100 * MiB, 50 * MiB + 1);
    g_assert_cmpuint(pct, ==, 39);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/auto-converge/starts-then-steps", test_starts_then_steps);
    g_test_add_func("/auto-converge/threshold-and-reset", test_threshold_and_reset);
    g_test_add_func("/auto-converge/short-passes-make-one-period",
                    test_short_passes_make_one_period);
    g_test_add_func("/auto-converge/custom-limits", test_custom_limits);
    g_test_add_func("/auto-converge/tailslow", test_tailslow);
    return g_test_run();
}
