/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Thin wrappers of the kernel's userfaultfd interface: they return 0 or -errno, print nothing. */
#ifndef UTIL_USERFAULTFD_H
#define UTIL_USERFAULTFD_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/userfaultfd.h>

/*
 * Older system headers (Debian 12 ships the 6.1 UAPI) lack what newer kernels
 * offer. The values below are the kernel's own UAPI values, so a binary built
 * against old headers still asks a new kernel for the new features.
 */
#ifndef USERFAULTFD_IOC
#define USERFAULTFD_IOC 0xAA
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(USERFAULTFD_IOC, 0x00)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
#endif

#ifndef UFFD_PAGEFAULT_FLAG_WRITE
#define UFFD_PAGEFAULT_FLAG_WRITE (1 << 0)
#endif
#ifndef UFFD_PAGEFAULT_FLAG_WP
#define UFFD_PAGEFAULT_FLAG_WP (1 << 1)
#endif
#ifndef UFFD_PAGEFAULT_FLAG_MINOR
#define UFFD_PAGEFAULT_FLAG_MINOR (1 << 2)
#endif

#ifndef UFFDIO_REGISTER_MODE_MINOR
#define UFFDIO_REGISTER_MODE_MINOR ((__u64)1 << 2)
#endif
#ifndef UFFDIO_COPY_MODE_WP
#define UFFDIO_COPY_MODE_WP ((__u64)1 << 1)
#endif
#ifndef UFFDIO_WRITEPROTECT_MODE_WP
#define UFFDIO_WRITEPROTECT_MODE_WP ((__u64)1 << 0)
#endif
#ifndef UFFDIO_WRITEPROTECT_MODE_DONTWAKE
#define UFFDIO_WRITEPROTECT_MODE_DONTWAKE ((__u64)1 << 1)
#endif
#ifndef UFFDIO_CONTINUE_MODE_DONTWAKE
#define UFFDIO_CONTINUE_MODE_DONTWAKE ((__u64)1 << 0)
#endif
#ifndef UFFDIO_CONTINUE_MODE_WP
#define UFFDIO_CONTINUE_MODE_WP ((__u64)1 << 1)
#endif

/* ioctl numbers (bit positions in the masks UFFDIO_API and UFFDIO_REGISTER return). */
#ifndef _UFFDIO_MOVE
#define _UFFDIO_MOVE (0x05)
#endif
#ifndef _UFFDIO_WRITEPROTECT
#define _UFFDIO_WRITEPROTECT (0x06)
#endif
#ifndef _UFFDIO_CONTINUE
#define _UFFDIO_CONTINUE (0x07)
#endif
#ifndef _UFFDIO_POISON
#define _UFFDIO_POISON (0x08)
#endif

#ifndef UFFDIO_WRITEPROTECT
struct uffdio_writeprotect {
    struct uffdio_range range;
    __u64 mode;
};
#define UFFDIO_WRITEPROTECT _IOWR(UFFDIO, _UFFDIO_WRITEPROTECT, struct uffdio_writeprotect)
#endif

#ifndef UFFDIO_POISON
struct uffdio_poison {
    struct uffdio_range range;
#define UFFDIO_POISON_MODE_DONTWAKE ((__u64)1 << 0)
    __u64 mode;
    __s64 updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif

#ifndef UFFDIO_MOVE
struct uffdio_move {
    __u64 dst;
    __u64 src;
    __u64 len;
#define UFFDIO_MOVE_MODE_DONTWAKE ((__u64)1 << 0)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES ((__u64)1 << 1)
    __u64 mode;
    __s64 move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif

/* Bits of the mask uffd_wait2() returns. */
#define UFFD_WAIT_UFFD 1   /* the userfaultfd has events (or an error to read) */
#define UFFD_WAIT_WAKE 2   /* the extra wake descriptor is readable */

/*
 * Ask the kernel which userfaultfd features (UFFD_FEATURE_*) and ioctls
 * (bit positions _UFFDIO_*) it offers, on a throw-away descriptor.
 * Either output may be NULL. Returns 0 or -errno.
 */
int uffd_query_features(uint64_t *features, uint64_t *ioctls);

/*
 * Create a userfaultfd descriptor (user and kernel faults) with @flags
 * (O_CLOEXEC, O_NONBLOCK), falling back to /dev/userfaultfd when the system
 * call is refused (vm.unprivileged_userfaultfd=0 for a process without
 * CAP_SYS_PTRACE), and complete the UFFDIO_API handshake with
 * @required_features. Returns the descriptor, or -errno:
 * -EOPNOTSUPP when the kernel lacks some required feature (their bits are
 * stored in *@missing, which may be NULL), -EINVAL when the kernel refused the
 * handshake for another reason, -EPERM when a feature needs a capability
 * (UFFD_FEATURE_EVENT_FORK needs CAP_SYS_PTRACE).
 */
int uffd_open(uint64_t required_features, int flags, uint64_t *missing);

/*
 * Create a userfaultfd descriptor, without the API handshake, through the
 * system call or, if it is refused with EPERM, /dev/userfaultfd.
 * Returns the descriptor or -errno.
 */
int uffd_create(int flags);

/*
 * Create a userfaultfd descriptor through /dev/userfaultfd only
 * (USERFAULTFD_IOC_NEW). Returns the descriptor or -errno.
 */
int uffd_create_from_device(int flags);

/*
 * The kernel's name of one feature bit without its prefix
 * ("WP_UNPOPULATED" for UFFD_FEATURE_WP_UNPOPULATED), or NULL when @bit is
 * not exactly one known feature bit.
 */
const char *uffd_feature_name(uint64_t bit);

/*
 * Format a feature mask as comma-separated names ("WP_UNPOPULATED, MOVE");
 * unknown bits appear as "bit17". Returns "" for 0. The caller frees the
 * string with g_free().
 */
char *uffd_features_to_string(uint64_t features);

/*
 * The name of one ioctl bit position as reported in the UFFDIO_API and
 * UFFDIO_REGISTER masks ("WRITEPROTECT" for _UFFDIO_WRITEPROTECT), or NULL.
 */
const char *uffd_ioctl_name(unsigned nr);

/*
 * Register [@addr, @addr + @len) for @mode (UFFDIO_REGISTER_MODE_MISSING,
 * _WP, _MINOR). Both must be page aligned (huge-page aligned on hugetlbfs).
 * *@ioctls (may be NULL) receives the range ioctls the kernel allows there.
 * Returns 0 or -errno (-EINVAL when the memory type does not support @mode).
 */
int uffd_register(int uffd, void *addr, uint64_t len, uint64_t mode, uint64_t *ioctls);

/*
 * Unregister a range; also wakes any thread still blocked in it.
 * Returns 0 or -errno.
 */
int uffd_unregister(int uffd, void *addr, uint64_t len);

/*
 * Write-protect (@protect) or unprotect a registered range. Unprotecting wakes
 * the threads blocked on it unless @dont_wake. Retries while the kernel says
 * EAGAIN because the address space is changing. Returns 0 or -errno
 * (-ENOENT when the range is not registered for write-protect).
 */
int uffd_writeprotect(int uffd, void *addr, uint64_t len, bool protect, bool dont_wake);

/* Wake the threads blocked on faults in a range. Returns 0 or -errno. */
int uffd_wake(int uffd, void *addr, uint64_t len);

/*
 * Atomically fill missing pages at @dst from @src (UFFDIO_COPY) and wake the
 * threads waiting for them; with @wp the pages are mapped write-protected.
 * Partial progress (EAGAIN) is retried for the remainder. *@copied (may be
 * NULL) receives the bytes filled by this call.
 * Returns 0, -EEXIST when the page at @dst + *@copied is already present
 * (a caller resolving a fault may treat that page as done), or -errno.
 */
int uffd_copy(int uffd, void *dst, const void *src, uint64_t len, bool wp, uint64_t *copied);

/*
 * Fill missing pages with zeros (UFFDIO_ZEROPAGE; anonymous and shmem only).
 * Same progress and -EEXIST rules as uffd_copy().
 */
int uffd_zeropage(int uffd, void *dst, uint64_t len, uint64_t *zeroed);

/*
 * Move the pages at @src to the missing pages at @dst (UFFDIO_MOVE, Linux
 * 6.8, UFFD_FEATURE_MOVE; private anonymous memory) and wake the threads
 * waiting for them: no copy, and a transparent huge page moves whole when
 * both ranges are 2 MiB aligned. @src is left empty. Same progress and
 * -EEXIST rules as uffd_copy(); -EBUSY when a source page is shared.
 */
int uffd_move(int uffd, void *dst, void *src, uint64_t len, uint64_t *moved);

/*
 * Read up to @max pending events without blocking (a blocking descriptor is
 * polled first). *@n receives how many were read, 0 when none are pending.
 * Returns 0 or -errno.
 */
int uffd_read_events(int uffd, struct uffd_msg *msgs, unsigned max, unsigned *n);

/*
 * Wait until @uffd is readable, at most @timeout_ms (-1: forever).
 * Returns 1 when readable, 0 on timeout, -errno on failure. Interrupted waits
 * resume with the remaining time.
 */
int uffd_wait(int uffd, int timeout_ms);

/*
 * Like uffd_wait(), but also wakes when @wake_fd (an eventfd or pipe, so
 * another thread can stop the waiter) is readable. Returns a mask of
 * UFFD_WAIT_UFFD and UFFD_WAIT_WAKE, 0 on timeout, -errno on failure.
 */
int uffd_wait2(int uffd, int wake_fd, int timeout_ms);

/* True when @msg reports a page fault (as opposed to fork, remap, ... events). */
static inline bool uffd_msg_is_pagefault(const struct uffd_msg *msg)
{
    return msg->event == UFFD_EVENT_PAGEFAULT;
}

/* The faulting address of a page-fault message. */
static inline uint64_t uffd_msg_fault_address(const struct uffd_msg *msg)
{
    return msg->arg.pagefault.address;
}

/* The UFFD_PAGEFAULT_FLAG_* bits of a page-fault message. */
static inline uint64_t uffd_msg_fault_flags(const struct uffd_msg *msg)
{
    return msg->arg.pagefault.flags;
}

/* True when the fault is a write to a write-protected page. */
static inline bool uffd_msg_is_wp_fault(const struct uffd_msg *msg)
{
    return uffd_msg_is_pagefault(msg) &&
           (msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP);
}

/* True when the faulting access was a write. */
static inline bool uffd_msg_is_write_fault(const struct uffd_msg *msg)
{
    return uffd_msg_is_pagefault(msg) &&
           (msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE);
}

/* The faulting thread's id (only with UFFD_FEATURE_THREAD_ID, else 0). */
static inline uint32_t uffd_msg_fault_thread(const struct uffd_msg *msg)
{
    return msg->arg.pagefault.feat.ptid;
}

#endif
