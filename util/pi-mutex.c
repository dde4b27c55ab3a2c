/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Mutexes with priority inheritance. A snapshot's fault handler runs at
 * real-time priority while the writer that returns buffers to the pool runs
 * at SCHED_IDLE: with a plain mutex the writer, preempted while it held the
 * pool's lock (by the scan it had just woken), held it for 50-260 us (once
 * 8.4 ms), and the handler, with a faulting vCPU behind it, waited 50-580 us
 * (bpftrace, docs/background-snapshot.md). With PTHREAD_PRIO_INHERIT the
 * kernel runs the holder at the waiter's priority until it unlocks.
 */
#include "util/pi-mutex.h"

#include <glib.h>

static void check(int ret, const char *what)
{
    if (ret != 0) {
        g_error("%s: %s", what, g_strerror(ret));
    }
}

void pi_mutex_init(PiMutex *m)
{
    pthread_mutexattr_t attr;

    check(pthread_mutexattr_init(&attr), "pthread_mutexattr_init");
    check(pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT),
          "pthread_mutexattr_setprotocol");
    check(pthread_mutex_init(&m->mutex, &attr), "pthread_mutex_init");
    pthread_mutexattr_destroy(&attr);
}

void pi_mutex_lock(PiMutex *m)
{
    check(pthread_mutex_lock(&m->mutex), "pthread_mutex_lock");
}

void pi_mutex_unlock(PiMutex *m)
{
    check(pthread_mutex_unlock(&m->mutex), "pthread_mutex_unlock");
}

void pi_mutex_clear(PiMutex *m)
{
    check(pthread_mutex_destroy(&m->mutex), "pthread_mutex_destroy");
}

void pi_cond_init(PiCond *c)
{
    check(pthread_cond_init(&c->cond, NULL), "pthread_cond_init");
}

void pi_cond_wait(PiCond *c, PiMutex *m)
{
    check(pthread_cond_wait(&c->cond, &m->mutex), "pthread_cond_wait");
}

void pi_cond_signal(PiCond *c)
{
    check(pthread_cond_signal(&c->cond), "pthread_cond_signal");
}

void pi_cond_broadcast(PiCond *c)
{
    check(pthread_cond_broadcast(&c->cond), "pthread_cond_broadcast");
}

void pi_cond_clear(PiCond *c)
{
    check(pthread_cond_destroy(&c->cond), "pthread_cond_destroy");
}
