/* SPDX-License-Identifier: GPL-2.0-or-later */
/* util/pi-mutex.c: mutual exclusion, waits on a condition, and a holder lifted to its waiter's priority. */
#include "util/pi-mutex.h"

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <glib.h>

#define ROUNDS 200000

typedef struct Shared {
    PiMutex lock;
    PiCond cond;
    uint64_t counter;
    int turn;
    int holder_tid;
    bool holding;       /* atomic */
    bool waiter_ready;  /* atomic */
    bool release;       /* atomic */
    int waiter_error;
} Shared;

static gpointer count_main(gpointer opaque)
{
    Shared *s = opaque;

    for (int i = 0; i < ROUNDS; i++) {
        pi_mutex_lock(&s->lock);
        s->counter++;
        pi_mutex_unlock(&s->lock);
    }
    return NULL;
}

static void test_excludes(void)
{
    Shared s = { 0 };
    GThread *a, *b;

    pi_mutex_init(&s.lock);
    a = g_thread_new("count-a", count_main, &s);
    b = g_thread_new("count-b", count_main, &s);
    g_thread_join(a);
    g_thread_join(b);
    g_assert_cmpuint(s.counter, ==, 2 * ROUNDS);
    pi_mutex_clear(&s.lock);
}

/* Two threads take turns, each waiting on the condition for the other's move. */
static gpointer turn_main(gpointer opaque)
{
    Shared *s = opaque;

    for (int i = 0; i < 1000; i++) {
        pi_mutex_lock(&s->lock);
        while (s->turn != 1) {
            pi_cond_wait(&s->cond, &s->lock);
        }
        s->turn = 0;
        s->counter++;
        pi_cond_broadcast(&s->cond);
        pi_mutex_unlock(&s->lock);
    }
    return NULL;
}

static void test_cond_turns(void)
{
    Shared s = { 0 };

    pi_mutex_init(&s.lock);
    pi_cond_init(&s.cond);
    GThread *t = g_thread_new("turns", turn_main, &s);
    for (int i = 0; i < 1000; i++) {
        pi_mutex_lock(&s.lock);
        while (s.turn != 0) {
            pi_cond_wait(&s.cond, &s.lock);
        }
        s.turn = 1;
        pi_cond_signal(&s.cond);
        pi_mutex_unlock(&s.lock);
    }
    g_thread_join(t);
    g_assert_cmpuint(s.counter, ==, 1000);
    pi_cond_clear(&s.cond);
    pi_mutex_clear(&s.lock);
}

/* The kernel's priority of a thread (the 18th field of its stat): 20 + nice, or -1 - rt priority. */
static long thread_priority(int tid)
{
    g_autofree char *path = g_strdup_printf("/proc/self/task/%d/stat", tid);
    g_autofree char *text = NULL;
    long prio;

    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    /* Fields after the command, which may hold spaces, start past its ')'. */
    const char *p = strrchr(text, ')');
    g_assert_nonnull(p);
    g_auto(GStrv) fields = g_strsplit(p + 2, " ", 0);
    g_assert_cmpuint(g_strv_length(fields), >, 15);
    prio = strtol(fields[15], NULL, 10);    /* field 18: state is field 3 */
    return prio;
}

static gpointer waiter_main(gpointer opaque)
{
    Shared *s = opaque;
    struct sched_param sp = { .sched_priority = 1 };

    s->waiter_error = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
    __atomic_store_n(&s->waiter_ready, true, __ATOMIC_RELEASE);
    if (s->waiter_error) {
        return NULL;
    }
    pi_mutex_lock(&s->lock);    /* blocks: the holder has it */
    pi_mutex_unlock(&s->lock);
    return NULL;
}

static gpointer holder_main(gpointer opaque)
{
    Shared *s = opaque;

    pi_mutex_lock(&s->lock);
    __atomic_store_n(&s->holder_tid, (int)syscall(SYS_gettid), __ATOMIC_RELEASE);
    __atomic_store_n(&s->holding, true, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&s->release, __ATOMIC_ACQUIRE)) {
        g_usleep(1000);
    }
    pi_mutex_unlock(&s->lock);
    return NULL;
}

static void test_holder_lifted(void)
{
    Shared s = { 0 };

    pi_mutex_init(&s.lock);
    GThread *holder = g_thread_new("holder", holder_main, &s);
    while (!__atomic_load_n(&s.holding, __ATOMIC_ACQUIRE)) {
        g_usleep(100);
    }
    int tid = __atomic_load_n(&s.holder_tid, __ATOMIC_ACQUIRE);
    long before = thread_priority(tid);
    GThread *waiter = g_thread_new("waiter", waiter_main, &s);
    while (!__atomic_load_n(&s.waiter_ready, __ATOMIC_ACQUIRE)) {
        g_usleep(100);
    }
    if (s.waiter_error) {
        __atomic_store_n(&s.release, true, __ATOMIC_RELEASE);
        g_thread_join(waiter);
        g_thread_join(holder);
        pi_mutex_clear(&s.lock);
        g_autofree char *why = g_strdup_printf("no real-time priority for the waiter here: %s",
                                               g_strerror(s.waiter_error));
        g_test_skip(why);
        return;
    }
    /* Lifted to SCHED_FIFO 1 (kernel priority -2) once the waiter blocks. */
    long during = before;
    for (int i = 0; i < 5000 && during >= 0; i++) {
        g_usleep(1000);
        during = thread_priority(tid);
    }
    __atomic_store_n(&s.release, true, __ATOMIC_RELEASE);
    g_thread_join(waiter);
    g_thread_join(holder);
    pi_mutex_clear(&s.lock);
    g_assert_cmpint(before, >=, 0);
    g_assert_cmpint(during, ==, -2);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pi-mutex/excludes", test_excludes);
    g_test_add_func("/pi-mutex/cond-turns", test_cond_turns);
    g_test_add_func("/pi-mutex/holder-lifted", test_holder_lifted);
    return g_test_run();
}
