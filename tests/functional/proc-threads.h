/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What /proc tells about a process's threads: names, CPUs, nice values, children. */
#ifndef TESTS_PROC_THREADS_H
#define TESTS_PROC_THREADS_H

#include <stdbool.h>
#include <sys/types.h>
#include <glib.h>

/* CPUs in "Cpus_allowed_list:" of /proc/PID[/task/TID]/status, as a mask (CPUs below 64); 0 if unknown. */
guint64 proc_allowed_cpus(pid_t pid, const char *tid);
/* The nice value of /proc/PID[/task/TID], or 100 if unknown. */
int proc_nice(pid_t pid, const char *tid);
/* The id of @pid's first thread named @prefix..., or NULL (g_free). */
char *proc_thread_named(pid_t pid, const char *prefix);
/* How many of @pid's threads are named exactly @name. */
unsigned proc_threads_named(pid_t pid, const char *name);
/* A child process of @pid, or 0. */
pid_t proc_child_of(pid_t pid);
/* Whether a process started by this one may lower its nice value back to 0 (CAP_SYS_NICE, RLIMIT_NICE). */
bool proc_may_lower_nice(void);

#endif
