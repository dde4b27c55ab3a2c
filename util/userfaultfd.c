/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The userfaultfd helper layer: descriptor creation, API handshake, ranges, fills and events. */
#include "util/userfaultfd.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

/*
 * UFFDIO_COPY, _ZEROPAGE and _WRITEPROTECT fail with EAGAIN without progress
 * while a non-cooperative event (fork, mremap, munmap, MADV_DONTNEED) is queued
 * and unread. If the caller is the thread that would read it, retrying forever
 * would never end, so give up after a bounded number of attempts.
 */
#define UFFD_EAGAIN_RETRIES 64

static const char *const uffd_feature_names[] = {
    [0] = "PAGEFAULT_FLAG_WP",
    [1] = "EVENT_FORK",
    [2] = "EVENT_REMAP",
    [3] = "EVENT_REMOVE",
    [4] = "MISSING_HUGETLBFS",
    [5] = "MISSING_SHMEM",
    [6] = "EVENT_UNMAP",
    [7] = "SIGBUS",
    [8] = "THREAD_ID",
    [9] = "MINOR_HUGETLBFS",
    [10] = "MINOR_SHMEM",
    [11] = "EXACT_ADDRESS",
    [12] = "WP_HUGETLBFS_SHMEM",
    [13] = "WP_UNPOPULATED",
    [14] = "POISON",
    [15] = "WP_ASYNC",
    [16] = "MOVE",
};

static const char *const uffd_ioctl_names[] = {
    [_UFFDIO_REGISTER] = "REGISTER",
    [_UFFDIO_UNREGISTER] = "UNREGISTER",
    [_UFFDIO_WAKE] = "WAKE",
    [_UFFDIO_COPY] = "COPY",
    [_UFFDIO_ZEROPAGE] = "ZEROPAGE",
    [_UFFDIO_MOVE] = "MOVE",
    [_UFFDIO_WRITEPROTECT] = "WRITEPROTECT",
    [_UFFDIO_CONTINUE] = "CONTINUE",
    [_UFFDIO_POISON] = "POISON",
    [_UFFDIO_API] = "API",
};

const char *uffd_feature_name(uint64_t bit)
{
    if (bit == 0 || (bit & (bit - 1))) {
        return NULL;
    }
    unsigned nr = __builtin_ctzll(bit);
    if (nr >= G_N_ELEMENTS(uffd_feature_names)) {
        return NULL;
    }
    return uffd_feature_names[nr];
}

char *uffd_features_to_string(uint64_t features)
{
    GString *s = g_string_new("");

    for (unsigned nr = 0; nr < 64; nr++) {
        uint64_t bit = 1ULL << nr;
        if (!(features & bit)) {
            continue;
        }
        if (s->len) {
            g_string_append(s, ", ");
        }
        const char *name = uffd_feature_name(bit);
        if (name) {
            g_string_append(s, name);
        } else {
            g_string_append_printf(s, "bit%u", nr);
        }
    }
    return g_string_free(s, FALSE);
}

const char *uffd_ioctl_name(unsigned nr)
{
    if (nr >= G_N_ELEMENTS(uffd_ioctl_names)) {
        return NULL;
    }
    return uffd_ioctl_names[nr];
}

int uffd_create_from_device(int flags)
{
    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev < 0) {
        return -errno;
    }
    /* The new descriptor does not depend on the device one staying open. */
    int fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
    int err = errno;
    close(dev);
    return fd < 0 ? -err : fd;
}

int uffd_create(int flags)
{
    /*
     * UFFD_USER_MODE_ONLY stays clear: guest RAM is also touched by the kernel
     * on the VMM's behalf (KVM, read(2) into RAM), and those faults must be
     * reported, not refused with EFAULT.
     */
    int fd = syscall(__NR_userfaultfd, flags);
    if (fd >= 0) {
        return fd;
    }
    if (errno != EPERM) {
        return -errno;
    }
    /*
     * vm.unprivileged_userfaultfd=0 refuses the system call to processes
     * without CAP_SYS_PTRACE; access to /dev/userfaultfd is decided by its file
     * mode instead, which administrators grant to a group.
     */
    fd = uffd_create_from_device(flags);
    return fd >= 0 ? fd : -EPERM;
}

static int uffd_api(int fd, uint64_t features, uint64_t *out_features, uint64_t *out_ioctls)
{
    struct uffdio_api api = { .api = UFFD_API, .features = features };

    if (ioctl(fd, UFFDIO_API, &api) < 0) {
        return -errno;
    }
    if (out_features) {
        *out_features = api.features;
    }
    if (out_ioctls) {
        *out_ioctls = api.ioctls;
    }
    return 0;
}

int uffd_query_features(uint64_t *features, uint64_t *ioctls)
{
    int fd = uffd_create(O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        return fd;
    }
    /* Features 0 makes the kernel report everything it offers. */
    int ret = uffd_api(fd, 0, features, ioctls);
    close(fd);
    return ret;
}

int uffd_open(uint64_t required_features, int flags, uint64_t *missing)
{
    if (missing) {
        *missing = 0;
    }
    int fd = uffd_create(flags);
    if (fd < 0) {
        return fd;
    }
    int ret = uffd_api(fd, required_features, NULL, NULL);
    if (ret == 0) {
        return fd;
    }
    close(fd);
    if (ret != -EINVAL) {
        return ret;
    }
    /*
     * On refusal the kernel zeroes the reply, so it cannot say which features
     * it lacks, and the handshake cannot be repeated on the same descriptor:
     * ask a fresh one.
     */
    uint64_t available = 0;
    if (uffd_query_features(&available, NULL) < 0) {
        return ret;
    }
    uint64_t lacking = required_features & ~available;
    if (missing) {
        *missing = lacking;
    }
    return lacking ? -EOPNOTSUPP : ret;
}

int uffd_register(int uffd, void *addr, uint64_t len, uint64_t mode, uint64_t *ioctls)
{
    struct uffdio_register reg = {
        .range = { .start = (uintptr_t)addr, .len = len },
        .mode = mode,
    };

    if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
        return -errno;
    }
    if (ioctls) {
        *ioctls = reg.ioctls;
    }
    return 0;
}

int uffd_unregister(int uffd, void *addr, uint64_t len)
{
    struct uffdio_range range = { .start = (uintptr_t)addr, .len = len };

    return ioctl(uffd, UFFDIO_UNREGISTER, &range) < 0 ? -errno : 0;
}

int uffd_writeprotect(int uffd, void *addr, uint64_t len, bool protect, bool dont_wake)
{
    struct uffdio_writeprotect wp = {
        .range = { .start = (uintptr_t)addr, .len = len },
        .mode = (protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0) |
                (dont_wake ? UFFDIO_WRITEPROTECT_MODE_DONTWAKE : 0),
    };

    for (unsigned attempt = 0;; attempt++) {
        if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) == 0) {
            return 0;
        }
        if (errno != EAGAIN || attempt >= UFFD_EAGAIN_RETRIES) {
            return -errno;
        }
        sched_yield();
    }
}

int uffd_wake(int uffd, void *addr, uint64_t len)
{
    struct uffdio_range range = { .start = (uintptr_t)addr, .len = len };

    return ioctl(uffd, UFFDIO_WAKE, &range) < 0 ? -errno : 0;
}

/*
 * One fill ioctl over [dst, dst + len): issue() runs the ioctl for the
 * remaining range and returns its result field (bytes done, or -errno).
 */
typedef int64_t (*UffdFillFn)(int uffd, uint64_t dst, uint64_t src, uint64_t len, uint64_t mode,
                              int *err);

static int64_t uffd_copy_once(int uffd, uint64_t dst, uint64_t src, uint64_t len, uint64_t mode,
                              int *err)
{
    struct uffdio_copy copy = { .dst = dst, .src = src, .len = len, .mode = mode };

    *err = ioctl(uffd, UFFDIO_COPY, &copy) < 0 ? errno : 0;
    return copy.copy;
}

static int64_t uffd_zeropage_once(int uffd, uint64_t dst, uint64_t src, uint64_t len,
                                  uint64_t mode, int *err)
{
    struct uffdio_zeropage zero = { .range = { .start = dst, .len = len }, .mode = mode };

    *err = ioctl(uffd, UFFDIO_ZEROPAGE, &zero) < 0 ? errno : 0;
    return zero.zeropage;
}

static int64_t uffd_move_once(int uffd, uint64_t dst, uint64_t src, uint64_t len, uint64_t mode,
                              int *err)
{
    struct uffdio_move move = { .dst = dst, .src = src, .len = len, .mode = mode };

    *err = ioctl(uffd, UFFDIO_MOVE, &move) < 0 ? errno : 0;
    return move.move;
}

static int uffd_fill(UffdFillFn issue, int uffd, uint64_t dst, uint64_t src, uint64_t len,
                     uint64_t mode, uint64_t *done_out)
{
    uint64_t done = 0;
    unsigned idle_retries = 0;
    int ret = 0;

    while (done < len) {
        int err;
        int64_t result = issue(uffd, dst + done, src ? src + done : 0, len - done, mode, &err);
        if (!err) {
            done = len;
            break;
        }
        /*
         * The kernel reports partial progress as EAGAIN with the bytes done
         * in the result field; an error on the first page (EEXIST included)
         * arrives as the negative errno there.
         */
        if (err == EAGAIN && result > 0) {
            done += result;
            idle_retries = 0;
            continue;
        }
        if (err == EAGAIN && idle_retries++ < UFFD_EAGAIN_RETRIES) {
            sched_yield();
            continue;
        }
        ret = -err;
        break;
    }
    if (done_out) {
        *done_out = done;
    }
    return ret;
}

int uffd_copy(int uffd, void *dst, const void *src, uint64_t len, bool wp, uint64_t *copied)
{
    return uffd_fill(uffd_copy_once, uffd, (uintptr_t)dst, (uintptr_t)src, len,
                     wp ? UFFDIO_COPY_MODE_WP : 0, copied);
}

int uffd_zeropage(int uffd, void *dst, uint64_t len, uint64_t *zeroed)
{
    return uffd_fill(uffd_zeropage_once, uffd, (uintptr_t)dst, 0, len, 0, zeroed);
}

int uffd_move(int uffd, void *dst, void *src, uint64_t len, uint64_t *moved)
{
    return uffd_fill(uffd_move_once, uffd, (uintptr_t)dst, (uintptr_t)src, len, 0, moved);
}

int uffd_read_events(int uffd, struct uffd_msg *msgs, unsigned max, unsigned *n)
{
    *n = 0;
    if (max == 0) {
        return 0;
    }
    int fl = fcntl(uffd, F_GETFL);
    if (fl < 0) {
        return -errno;
    }
    if (!(fl & O_NONBLOCK)) {
        int ready = uffd_wait(uffd, 0);
        if (ready <= 0) {
            return ready;
        }
    }
    for (;;) {
        ssize_t r = read(uffd, msgs, (size_t)max * sizeof(*msgs));
        if (r >= 0) {
            *n = r / sizeof(*msgs);
            return 0;
        }
        if (errno == EINTR) {
            continue;
        }
        return errno == EAGAIN ? 0 : -errno;
    }
}

static int64_t uffd_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* poll() @fds, resuming after signals with the time that is left. */
static int uffd_poll(struct pollfd *fds, nfds_t nfds, int timeout_ms)
{
    int64_t deadline = timeout_ms >= 0 ? uffd_now_ms() + timeout_ms : -1;

    for (;;) {
        int r = poll(fds, nfds, timeout_ms);
        if (r >= 0) {
            return r;
        }
        if (errno != EINTR) {
            return -errno;
        }
        if (deadline >= 0) {
            int64_t left = deadline - uffd_now_ms();
            timeout_ms = left > 0 ? (int)left : 0;
        }
    }
}

int uffd_wait(int uffd, int timeout_ms)
{
    struct pollfd pfd = { .fd = uffd, .events = POLLIN };

    int r = uffd_poll(&pfd, 1, timeout_ms);
    if (r <= 0) {
        return r;
    }
    if (pfd.revents & POLLNVAL) {
        return -EBADF;
    }
    /* POLLERR (a released descriptor) counts as readable: read() reports it. */
    return 1;
}

int uffd_wait2(int uffd, int wake_fd, int timeout_ms)
{
    struct pollfd pfd[2] = {
        { .fd = uffd, .events = POLLIN },
        { .fd = wake_fd, .events = POLLIN },
    };

    int r = uffd_poll(pfd, 2, timeout_ms);
    if (r <= 0) {
        return r;
    }
    if ((pfd[0].revents | pfd[1].revents) & POLLNVAL) {
        return -EBADF;
    }
    return (pfd[0].revents ? UFFD_WAIT_UFFD : 0) | (pfd[1].revents ? UFFD_WAIT_WAKE : 0);
}
