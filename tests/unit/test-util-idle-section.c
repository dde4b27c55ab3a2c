/* SPDX-License-Identifier: GPL-2.0-or-later */
/* util/idle-section.c: SCHED_IDLE for a stretch of work, lifted back when it lasts too long. */
#include "util/idle-section.h"

#include <sched.h>

#include <glib.h>

/* Inside: idle; after end(): the policy from before, whatever it was. */
static void test_lowered_and_restored(void)
{
    struct sched_param batch = { 0 }, normal = { 0 };
    IdleSection *s;

    s = idle_section_begin(10000);
    g_assert_cmpint(sched_getscheduler(0), ==, SCHED_IDLE);
    idle_section_end(s);
    g_assert_cmpint(sched_getscheduler(0), ==, SCHED_OTHER);

    /* A batch thread goes back to batch, not to normal. */
    g_assert_cmpint(sched_setscheduler(0, SCHED_BATCH, &batch), ==, 0);
    s = idle_section_begin(10000);
    g_assert_cmpint(sched_getscheduler(0), ==, SCHED_IDLE);
    idle_section_end(s);
    g_assert_cmpint(sched_getscheduler(0), ==, SCHED_BATCH);
    g_assert_cmpint(sched_setscheduler(0, SCHED_OTHER, &normal), ==, 0);
}

/* Past max_ms the guard puts the thread back on its own, before end(). */
static void test_guard_lifts(void)
{
    IdleSection *s = idle_section_begin(20);
    gint64 until = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;

    g_assert_cmpint(sched_getscheduler(0), ==, SCHED_IDLE);
    while (sched_getscheduler(0) == SCHED_IDLE && g_get_monotonic_time() < until) {
        g_usleep(1000);
    }
    g_assert_cmpint(sched_getscheduler(0), ==, SCHED_OTHER);
    idle_section_end(s);
    g_assert_cmpint(sched_getscheduler(0), ==, SCHED_OTHER);
}

/* A thread already idle stays so, and end() does not lift it. */
static void test_already_idle(void)
{
    struct sched_param p = { 0 };
    IdleSection *s;

    g_assert_cmpint(sched_setscheduler(0, SCHED_IDLE, &p), ==, 0);
    s = idle_section_begin(20);
    g_usleep(50 * 1000);
    g_assert_cmpint(sched_getscheduler(0), ==, SCHED_IDLE);
    idle_section_end(s);
    g_assert_cmpint(sched_getscheduler(0), ==, SCHED_IDLE);
    g_assert_cmpint(sched_setscheduler(0, SCHED_OTHER, &p), ==, 0);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/util/idle-section/lowered-and-restored", test_lowered_and_restored);
    g_test_add_func("/util/idle-section/guard-lifts", test_guard_lifts);
    g_test_add_func("/util/idle-section/already-idle", test_already_idle);
    return g_test_run();
}
