/* SPDX-License-Identifier: GPL-2.0-or-later */
/* idle_section_begin()/end(): SCHED_IDLE for a while, with a guard against starvation. */
#include "util/idle-section.h"

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <glib.h>

struct IdleSection {
    pid_t tid;
    int policy;                 /* what to go back to */
    struct sched_param param;
    bool lowered;
    bool done;                  /* under lock: end() came */
    GMutex lock;
    GCond cond;
    GThread *guard;
    gint64 deadline;            /* monotonic us */
};

/* Puts the thread back; under s->lock, so the guard and end() do it once. */
static void idle_section_restore(IdleSection *s)
{
    if (s->lowered) {
        sched_setscheduler(s->tid, s->policy, &s->param);
        s->lowered = false;
    }
}

static gpointer idle_section_guard(gpointer opaque)
{
    IdleSection *s = opaque;

    g_mutex_lock(&s->lock);
    while (!s->done) {
        if (!g_cond_wait_until(&s->cond, &s->lock, s->deadline) && !s->done) {
            /* Starved (or just slow): the rest at its own priority. */
            idle_section_restore(s);
            break;
        }
    }
    g_mutex_unlock(&s->lock);
    return NULL;
}

IdleSection *idle_section_begin(unsigned max_ms)
{
    IdleSection *s = g_new0(IdleSection, 1);
    struct sched_param idle = { 0 };

    g_mutex_init(&s->lock);
    g_cond_init(&s->cond);
    s->tid = (pid_t)syscall(SYS_gettid);
    s->policy = sched_getscheduler(0);
    if (s->policy < 0 || s->policy == SCHED_IDLE || sched_getparam(0, &s->param) != 0) {
        return s;       /* nothing to lower, or not ours to know */
    }
    /* The guard first: a thread inherits its creator's policy, and must not starve. */
    g_mutex_lock(&s->lock);
    s->deadline = g_get_monotonic_time() + (gint64)max_ms * 1000;
    s->guard = g_thread_new("idle-guard", idle_section_guard, s);
    s->lowered = sched_setscheduler(0, SCHED_IDLE, &idle) == 0;
    g_mutex_unlock(&s->lock);
    return s;
}

void idle_section_end(IdleSection *s)
{
    g_mutex_lock(&s->lock);
    s->done = true;
    idle_section_restore(s);
    g_cond_signal(&s->cond);
    g_mutex_unlock(&s->lock);
    if (s->guard) {
        g_thread_join(s->guard);
    }
    g_mutex_clear(&s->lock);
    g_cond_clear(&s->cond);
    g_free(s);
}
