/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A stretch of a thread's work at SCHED_IDLE, lifted back if it starves. */
#ifndef UTIL_IDLE_SECTION_H
#define UTIL_IDLE_SECTION_H

typedef struct IdleSection IdleSection;

/*
 * Moves the calling thread to SCHED_IDLE, so that any thread of normal
 * priority that wakes takes its CPU at once (even inside this thread's
 * system calls, at their next preemption point), until idle_section_end().
 * If that has not come after @max_ms, a guard thread puts the caller back to
 * its own policy: busy CPUs cannot starve it for longer. Best effort: where
 * the policy cannot be changed, nothing changes. Never NULL.
 */
IdleSection *idle_section_begin(unsigned max_ms);

/* Back to the policy the thread had before; frees @s. Same thread as begin. */
void idle_section_end(IdleSection *s);

#endif
