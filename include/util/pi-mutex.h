/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A mutex with priority inheritance, and a condition variable to wait on it. */
#ifndef UTIL_PI_MUTEX_H
#define UTIL_PI_MUTEX_H

#include <pthread.h>

/*
 * For a lock that a real-time thread (a snapshot's fault handler) shares with
 * threads at idle or batch priority: while the real-time thread waits, the
 * holder runs at its priority, so it cannot be kept off its CPU halfway
 * through. GMutex has no such protocol.
 */
typedef struct PiMutex {
    pthread_mutex_t mutex;
} PiMutex;

typedef struct PiCond {
    pthread_cond_t cond;
} PiCond;

void pi_mutex_init(PiMutex *m);
void pi_mutex_lock(PiMutex *m);
void pi_mutex_unlock(PiMutex *m);
void pi_mutex_clear(PiMutex *m);

void pi_cond_init(PiCond *c);
/* Wait until woken (or spuriously): re-check the condition in a loop. */
void pi_cond_wait(PiCond *c, PiMutex *m);
void pi_cond_signal(PiCond *c);
void pi_cond_broadcast(PiCond *c);
void pi_cond_clear(PiCond *c);

#endif
