/* SPDX-License-Identifier: GPL-2.0-or-later */
/* proc_stat_field(): numeric fields of /proc stat lines, counted after the command name. */
#include <sched.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "util/proc-stat.h"

/* This process's group and a thread's nice value and CPU, as the kernel reports them. */
static void test_live(void)
{
    g_autofree char *task = g_strdup_printf("/proc/self/task/%d/stat", (int)gettid());
    long long v;
    cpu_set_t one, before;
    int cpu;

    g_assert_true(proc_stat_field("/proc/self/stat", 5, &v));
    g_assert_cmpint(v, ==, getpgrp());

    g_assert_cmpint(setpriority(PRIO_PROCESS, (id_t)gettid(), 7), ==, 0);
    g_assert_true(proc_stat_field(task, 19, &v));
    g_assert_cmpint(v, ==, 7);

    /* Pinned to the CPU it runs on, the thread's last CPU is that one. */
    g_assert_cmpint(sched_getaffinity(0, sizeof(before), &before), ==, 0);
    cpu = sched_getcpu();
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    g_assert_cmpint(sched_setaffinity(0, sizeof(one), &one), ==, 0);
    g_assert_true(proc_stat_field(task, 39, &v));
    g_assert_cmpint(v, ==, cpu);
    sched_setaffinity(0, sizeof(before), &before);
}

/* A command name with spaces and parentheses; fields that are not numbers; the end. */
static void test_odd_lines(void)
{
    g_autofree char *dir = g_dir_make_tmp("proc-stat-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "stat", NULL);
    long long v = -1;

    g_assert_nonnull(dir);
    g_assert_true(g_file_set_contents(path, "123 (a ) b) (c) S 1 77 77 0 -1\n", -1, NULL));
    g_assert_true(proc_stat_field(path, 4, &v));
    g_assert_cmpint(v, ==, 1);
    g_assert_true(proc_stat_field(path, 5, &v));
    g_assert_cmpint(v, ==, 77);
    g_assert_true(proc_stat_field(path, 8, &v));
    g_assert_cmpint(v, ==, -1);
    g_assert_false(proc_stat_field(path, 3, &v));     /* the state letter */
    g_assert_false(proc_stat_field(path, 9, &v));     /* past the end */
    g_assert_false(proc_stat_field(path, 2, &v));     /* the name is no number */
    g_assert_false(proc_stat_field("/nonexistent/stat", 5, &v));
    g_unlink(path);
    g_rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/util/proc-stat/live", test_live);
    g_test_add_func("/util/proc-stat/odd-lines", test_odd_lines);
    return g_test_run();
}
