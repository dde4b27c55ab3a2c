/* SPDX-License-Identifier: GPL-2.0-or-later */
/* vCPU threads: the KVM_RUN loop, parking, and pausing every vCPU in bounded time. */
#define G_LOG_DOMAIN "frostvm-kvm"
#include "kvm-internal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>

#include "accel/accel.h"
#include "system/runstate.h"
#include "util/error.h"

static void kvm_kick_handler(int sig)
{
    /* Only here so that the kick interrupts KVM_RUN instead of killing us. */
}

/*
 * The kick signal is blocked on the vCPU thread except inside KVM_RUN (the
 * kernel applies the mask we give with KVM_SET_SIGNAL_MASK for the duration
 * of the ioctl). So it never interrupts a device's write() or a lock, and a
 * kick sent while the thread is outside KVM_RUN stays pending and makes the
 * next KVM_RUN return at once. immediate_exit closes the same window without
 * depending on signal timing.
 */
static bool kvm_vcpu_thread_setup_signals(KvmVcpu *v, GError **errp)
{
    sigset_t block, run_mask;
    struct {
        struct kvm_signal_mask head;
        uint8_t bytes[8];     /* the kernel's sigset_t is 64 bits on x86-64 */
    } kmask;

    sigemptyset(&block);
    sigaddset(&block, KVM_KICK_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &block, &run_mask);
    sigdelset(&run_mask, KVM_KICK_SIGNAL);

    kmask.head.len = 8;
    memcpy(kmask.head.sigset, &run_mask, 8);
    if (ioctl(v->fd, KVM_SET_SIGNAL_MASK, &kmask) < 0) {
        error_setg_errno(errp, errno, "KVM_SET_SIGNAL_MASK on vCPU %u", v->index);
        return false;
    }
    return true;
}

/* Drop kicks that arrived while we were not in KVM_RUN. */
static void kvm_vcpu_eat_kicks(void)
{
    sigset_t set;
    struct timespec zero = { 0, 0 };

    sigemptyset(&set);
    sigaddset(&set, KVM_KICK_SIGNAL);
    while (sigtimedwait(&set, NULL, &zero) == KVM_KICK_SIGNAL) {
    }
}

/*
 * Park while a pause is requested or the vCPU is stopped. Returns false when
 * the thread must end. Called and returns with s->lock held.
 *
 * KVM completes a port or MMIO exit (an IN's value into RAX, RIP past the
 * instruction, a string operation's next step) only when KVM_RUN is entered
 * again; until then the registers read back are from before the instruction,
 * and a state loaded meanwhile would be overwritten by the completion. So a
 * vCPU about to park after such an exit first re-enters once with
 * immediate_exit set, which finishes the exit without running the guest.
 */
static bool kvm_vcpu_wait_until_runnable(KvmVcpu *v)
{
    KvmState *s = v->kvm;

    while ((s->pause_requested || v->stopped) && !s->quit) {
        if (v->exit_unfinished) {
            __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_RELEASE);
            return true;
        }
        if (!v->parked) {
            v->parked = true;
            __atomic_store_n(&s->nr_parked, s->nr_parked + 1, __ATOMIC_RELEASE);
            g_cond_broadcast(&s->parked_cond);
        }
        g_cond_wait(&s->vcpu_cond, &s->lock);
    }
    if (s->quit) {
        return false;
    }
    if (v->parked) {
        v->parked = false;
        __atomic_store_n(&s->nr_parked, s->nr_parked - 1, __ATOMIC_RELEASE);
    }
    /*
     * Only now, under the lock with no pause pending, may the flag be cleared:
     * a pauser sets it under the same lock before kicking.
     */
    __atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_RELEASE);
    return true;
}

static gpointer kvm_vcpu_thread(gpointer opaque)
{
    KvmVcpu *v = opaque;
    KvmState *s = v->kvm;
    g_autoptr(GError) err = NULL;

    if (!kvm_vcpu_thread_setup_signals(v, &err)) {
        g_warning("%s", err->message);
        v->stopped = true;
        runstate_request_shutdown(s->m, "host-error", 1);
    }

    accel_vcpu_thread_start(s->m, v->index, "KVM");
    __atomic_store_n(&v->kernel_tid, (int)gettid(), __ATOMIC_RELEASE);
    g_mutex_lock(&s->lock);
    v->tid = pthread_self();
    v->thread_ready = true;
    while (kvm_vcpu_wait_until_runnable(v)) {
        int ret;

        g_mutex_unlock(&s->lock);
        ret = ioctl(v->fd, KVM_RUN, 0);
        v->exit_unfinished = ret >= 0 && (v->run->exit_reason == KVM_EXIT_IO ||
                                          v->run->exit_reason == KVM_EXIT_MMIO);
        if (ret < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                kvm_vcpu_eat_kicks();
            } else {
                g_warning("KVM_RUN on vCPU %u: %s", v->index, g_strerror(errno));
                v->stopped = true;
                runstate_request_shutdown(s->m, "host-error", 1);
            }
        } else {
            kvm_vcpu_handle_exit(v);
        }
        /* Auto-converge: a kick ends the slice; sleep the throttle's share. */
        cpu_throttle_vcpu_check(&s->m->throttle, &v->throttle);
        g_mutex_lock(&s->lock);
    }
    if (v->parked) {
        v->parked = false;
        s->nr_parked--;
    }
    v->thread_ready = false;
    g_mutex_unlock(&s->lock);
    return NULL;
}

static void kvm_install_kick_handler(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = kvm_kick_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;    /* no SA_RESTART: KVM_RUN must come back with EINTR */
    sigaction(KVM_KICK_SIGNAL, &sa, NULL);
}

bool kvm_vcpus_start(KvmState *s, GError **errp)
{
    g_assert(s->nr_threads == 0);
    kvm_install_kick_handler();

    g_mutex_lock(&s->lock);
    s->pause_requested = true;
    g_mutex_unlock(&s->lock);

    for (unsigned i = 0; i < s->nr_vcpus; i++) {
        g_autofree char *name = g_strdup_printf("vcpu%u", i);
        KvmVcpu *v = &s->vcpus[i];

        v->thread = g_thread_try_new(name, kvm_vcpu_thread, v, errp);
        if (!v->thread) {
            error_prefix(errp, "cannot start the thread of vCPU %u: ", i);
            kvm_vcpus_join(s);
            return false;
        }
        g_mutex_lock(&s->lock);
        s->nr_threads++;
        g_mutex_unlock(&s->lock);
    }
    /* Return with every thread parked, so a pause right after is exact. */
    kvm_vcpus_pause(s);
    return true;
}

/* True when the caller is one of our vCPU threads (it parks on its return). */
static bool kvm_on_vcpu_thread(KvmState *s)
{
    for (unsigned i = 0; i < s->nr_vcpus; i++) {
        if (s->vcpus[i].thread_ready && pthread_equal(s->vcpus[i].tid, pthread_self())) {
            return true;
        }
    }
    return false;
}

/* Take every vCPU out of guest mode. Called with s->lock held. */
static void kvm_vcpus_kick_locked(KvmState *s)
{
    for (unsigned i = 0; i < s->nr_vcpus; i++) {
        KvmVcpu *v = &s->vcpus[i];
        if (!v->run) {
            continue;
        }
        __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_RELEASE);
        if (v->thread_ready && !v->parked && !pthread_equal(v->tid, pthread_self())) {
            pthread_kill(v->tid, KVM_KICK_SIGNAL);
        }
    }
}

void kvm_vcpus_pause(KvmState *s)
{
    unsigned self;

    g_mutex_lock(&s->lock);
    self = kvm_on_vcpu_thread(s) ? 1 : 0;
    s->pause_requested = true;
    kvm_vcpus_kick_locked(s);
    if (machine_pause_may_spin(s->m)) {
        unsigned threads = s->nr_threads;

        g_mutex_unlock(&s->lock);
        machine_pause_wait_spin(s->m, &s->nr_parked, self, threads);
        g_mutex_lock(&s->lock);
    }
    while (s->nr_parked + self < s->nr_threads) {
        g_cond_wait(&s->parked_cond, &s->lock);
    }
    g_mutex_unlock(&s->lock);
}

void kvm_vcpus_kick(KvmState *s)
{
    g_mutex_lock(&s->lock);
    for (unsigned i = 0; i < s->nr_vcpus; i++) {
        KvmVcpu *v = &s->vcpus[i];

        /* No immediate_exit: only a pause sets it, and clears it on resume. */
        if (v->thread_ready && !v->parked) {
            pthread_kill(v->tid, KVM_KICK_SIGNAL);
        }
    }
    g_mutex_unlock(&s->lock);
}

void kvm_vcpus_resume(KvmState *s)
{
    g_mutex_lock(&s->lock);
    s->pause_requested = false;
    g_cond_broadcast(&s->vcpu_cond);
    g_mutex_unlock(&s->lock);
}

void kvm_vcpus_join(KvmState *s)
{
    g_mutex_lock(&s->lock);
    s->quit = true;
    kvm_vcpus_kick_locked(s);
    g_cond_broadcast(&s->vcpu_cond);
    g_mutex_unlock(&s->lock);

    for (unsigned i = 0; i < s->nr_vcpus; i++) {
        if (s->vcpus[i].thread) {
            g_thread_join(s->vcpus[i].thread);
            s->vcpus[i].thread = NULL;
        }
    }
    s->nr_threads = 0;
}
