/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * restore-mode map: a read lease on the image, so that a process about to
 * truncate or rewrite it waits while guest RAM is copied off it, instead of
 * the guest dying of SIGBUS at its next read of a page it had not written.
 */
#include "migration/restore/restore-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "util/error.h"

/*
 * The kernel tells the lease holder with a signal. A real-time one queued to
 * the lease thread alone (F_OWNER_TID), which blocks it and reads it from a
 * signalfd: no other thread ever sees it.
 */
#define RESTORE_LEASE_SIGNAL (SIGRTMIN + 1)

/*
 * How long the verifier may go on reading the image while the writer waits:
 * the kernel lets the writer through after /proc/sys/fs/lease-break-time
 * (45 s by default), and the copy needs time too.
 */
static gint64 lease_verify_wait_us(void)
{
    g_autofree char *text = NULL;
    gint64 seconds = 45;

    if (g_file_get_contents("/proc/sys/fs/lease-break-time", &text, NULL, NULL)) {
        seconds = g_ascii_strtoll(text, NULL, 10);
    }
    return MAX(seconds - 15, 1) * G_USEC_PER_SEC;
}

static void lease_set_state(RestoreState *r, RestoreLeaseState state)
{
    g_mutex_lock(&r->lock);
    __atomic_store_n(&r->lease_state, (int)state, __ATOMIC_RELEASE);
    r->lease_ready = true;
    g_cond_broadcast(&r->cond);
    g_mutex_unlock(&r->lock);
}

/*
 * Wait until the image is mapped over guest RAM (a change during the set-up)
 * and the verifier has finished while it can still read the image (the writer
 * waits). False if the restore ended instead: nothing to copy.
 */
static bool lease_wait_for_map(RestoreState *r)
{
    gint64 deadline = g_get_monotonic_time() + lease_verify_wait_us();
    bool mapped;

    g_mutex_lock(&r->lock);
    while (!__atomic_load_n(&r->stopping, __ATOMIC_ACQUIRE) &&
           (!r->map_ready ||
            __atomic_load_n(&r->fill_state, __ATOMIC_ACQUIRE) == RESTORE_FILL_RUNNING) &&
           g_cond_wait_until(&r->cond, &r->lock, deadline)) {
    }
    mapped = r->map_ready && !__atomic_load_n(&r->stopping, __ATOMIC_ACQUIRE);
    g_mutex_unlock(&r->lock);
    return mapped;
}

/* The lease was broken: copy guest RAM off the image, then let the writer go. */
static void lease_broken(RestoreState *r)
{
    g_autoptr(GError) err = NULL;
    uint64_t start = migration_now_us();

    g_message("restore-mode map: %s is being opened for writing or truncated; guest RAM "
              "is copied off it first", r->img->path);
    if (!lease_wait_for_map(r)) {
        /* The restore failed or ends: guest RAM never depended on the image. */
        return;
    }
    if (!restore_map_detach(r, &err)) {
        g_warning("%s", err->message);
        lease_set_state(r, RESTORE_LEASE_FAILED);
        return;
    }
    g_message("restore-mode map: guest RAM no longer maps %s (%" G_GUINT64_FORMAT
              " ms, the guest paused %" G_GUINT64_FORMAT " ms)", r->img->path,
              (migration_now_us() - start) / 1000,
              __atomic_load_n(&r->detach_pause_us, __ATOMIC_RELAXED) / 1000);
    lease_set_state(r, RESTORE_LEASE_DETACHED);
}

static gpointer lease_thread(gpointer opaque)
{
    RestoreState *r = opaque;
    int fd = r->img->fd;
    struct f_owner_ex owner = { .type = F_OWNER_TID, .pid = gettid() };
    sigset_t set;
    int sfd;

    sigemptyset(&set);
    sigaddset(&set, RESTORE_LEASE_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0 || fcntl(fd, F_SETOWN_EX, &owner) < 0 ||
        fcntl(fd, F_SETSIG, RESTORE_LEASE_SIGNAL) < 0 ||
        fcntl(fd, F_SETLEASE, F_RDLCK) < 0) {
        /* EAGAIN: someone has it open for writing; EACCES: not our file. */
        g_warning("restore-mode map: cannot take a read lease on %s (%s): a process that "
                  "truncates or rewrites it while this guest maps it makes the guest fail "
                  "(SIGBUS) instead of having its RAM copied off first", r->img->path,
                  g_strerror(errno));
        if (sfd >= 0) {
            close(sfd);
        }
        lease_set_state(r, RESTORE_LEASE_NONE);
        return NULL;
    }
    lease_set_state(r, RESTORE_LEASE_HELD);
    for (;;) {
        struct pollfd p[2] = { { .fd = sfd, .events = POLLIN },
                               { .fd = r->lease_wake_fd, .events = POLLIN } };
        struct signalfd_siginfo si;

        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (p[1].revents) {
            break;
        }
        if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si) &&
            si.ssi_signo == (uint32_t)RESTORE_LEASE_SIGNAL && si.ssi_fd == fd) {
            lease_broken(r);
            break;
        }
    }
    fcntl(fd, F_SETLEASE, F_UNLCK);
    close(sfd);
    return NULL;
}

void restore_lease_start(RestoreState *r)
{
    r->lease_wake_fd = eventfd(0, EFD_CLOEXEC);
    if (r->lease_wake_fd < 0) {
        g_warning("restore-mode map: eventfd: %s; the image is not leased", g_strerror(errno));
        return;
    }
    r->lease_thread = g_thread_new("restore-lease", lease_thread, r);
    /* query-migrate says whether the image is protected as soon as the guest runs. */
    g_mutex_lock(&r->lock);
    while (!r->lease_ready) {
        g_cond_wait(&r->cond, &r->lock);
    }
    g_mutex_unlock(&r->lock);
}

void restore_lease_stop(RestoreState *r)
{
    if (r->lease_thread) {
        uint64_t one = 1;

        if (write(r->lease_wake_fd, &one, sizeof(one)) < 0) {
            g_warning("restore-mode map: cannot wake the lease thread: %s", g_strerror(errno));
        }
        g_thread_join(r->lease_thread);
        r->lease_thread = NULL;
    }
    if (r->lease_wake_fd >= 0) {
        close(r->lease_wake_fd);
        r->lease_wake_fd = -1;
    }
}

const char *restore_lease_state_name(RestoreState *r)
{
    static const char *const names[] = { "none", "held", "detached", "failed" };

    return names[__atomic_load_n(&r->lease_state, __ATOMIC_ACQUIRE)];
}
