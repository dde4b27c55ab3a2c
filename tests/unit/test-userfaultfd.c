/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests of the userfaultfd helper layer against the running kernel. */
#include "util/userfaultfd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>

#include <glib.h>

#define PAGE 4096u
#define EVENT_TIMEOUT_MS 5000

/* One userfaultfd and one anonymous mapping per test; nothing global. */
typedef struct {
    int uffd;
    uint8_t *mem;
    size_t len;
    uint64_t features;
} UffdFixture;

static bool fixture_open(UffdFixture *f, uint64_t features, size_t pages, bool populate,
                         uint64_t mode)
{
    uint64_t missing = 0;

    f->uffd = uffd_open(features, O_CLOEXEC | O_NONBLOCK, &missing);
    if (f->uffd == -EOPNOTSUPP) {
        g_autofree char *names = uffd_features_to_string(missing);
        g_autofree char *why = g_strdup_printf("kernel lacks userfaultfd features: %s", names);
        g_test_skip(why);
        return false;
    }
    g_assert_cmpint(f->uffd, >=, 0);
    f->features = features;
    f->len = (size_t)pages * PAGE;
    f->mem = mmap(NULL, f->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert_true(f->mem != MAP_FAILED);
    /* Keep every page a separate 4 KiB PTE so each fault concerns exactly one page. */
    g_assert_cmpint(madvise(f->mem, f->len, MADV_NOHUGEPAGE), ==, 0);
    if (populate) {
        memset(f->mem, 0xAA, f->len);
    }
    if (mode) {
        g_assert_cmpint(uffd_register(f->uffd, f->mem, f->len, mode, NULL), ==, 0);
    }
    return true;
}

static void fixture_close(UffdFixture *f)
{
    if (f->mem) {
        munmap(f->mem, f->len);
    }
    if (f->uffd >= 0) {
        close(f->uffd);
    }
}

/* A thread that writes (or reads) one byte and records that it finished. */
typedef struct {
    volatile uint8_t *addr;
    uint8_t value;
    bool read;
    gint tid;
    gint done;
    GThread *thread;
} Toucher;

static gpointer toucher_run(gpointer opaque)
{
    Toucher *t = opaque;

    g_atomic_int_set(&t->tid, gettid());
    if (t->read) {
        t->value = *t->addr;
    } else {
        *t->addr = t->value;
    }
    g_atomic_int_set(&t->done, 1);
    return NULL;
}

static void toucher_start(Toucher *t, void *addr, uint8_t value, bool read)
{
    t->addr = addr;
    t->value = value;
    t->read = read;
    t->tid = 0;
    t->done = 0;
    t->thread = g_thread_new("toucher", toucher_run, t);
}

/* Whether thread @tid sleeps; a toucher only sleeps while its fault is queued. */
static bool thread_is_sleeping(int tid)
{
    g_autofree char *path = g_strdup_printf("/proc/self/task/%d/stat", tid);
    g_autofree char *stat = NULL;

    if (!g_file_get_contents(path, &stat, NULL, NULL)) {
        return false;
    }
    const char *paren = strrchr(stat, ')');
    return paren && paren[1] == ' ' && paren[2] == 'S';
}

static void wait_until_blocked(Toucher *t, unsigned n)
{
    gint64 deadline = g_get_monotonic_time() + EVENT_TIMEOUT_MS * 1000;

    for (unsigned i = 0; i < n; i++) {
        while (!g_atomic_int_get(&t[i].tid) || !thread_is_sleeping(t[i].tid)) {
            g_assert_false(g_atomic_int_get(&t[i].done));
            g_assert_cmpint(g_get_monotonic_time(), <, deadline);
            g_usleep(1000);
        }
    }
}

/* Wait for and read exactly one event. */
static struct uffd_msg read_one_event(int uffd)
{
    struct uffd_msg msg;
    unsigned n = 0;

    g_assert_cmpint(uffd_wait(uffd, EVENT_TIMEOUT_MS), ==, 1);
    g_assert_cmpint(uffd_read_events(uffd, &msg, 1, &n), ==, 0);
    g_assert_cmpuint(n, ==, 1);
    return msg;
}

static void test_features_probe(void)
{
    uint64_t features = 0, ioctls = 0;

    g_assert_cmpint(uffd_query_features(&features, &ioctls), ==, 0);
    g_assert_true(ioctls & (1ULL << _UFFDIO_API));
    g_assert_true(ioctls & (1ULL << _UFFDIO_REGISTER));
    g_assert_true(ioctls & (1ULL << _UFFDIO_UNREGISTER));
    g_autofree char *names = uffd_features_to_string(features);
    g_test_message("kernel userfaultfd features 0x%" G_GINT64_MODIFIER "x: %s",
                   features, names);
    if (!(features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
        g_test_skip("kernel lacks UFFD_FEATURE_PAGEFAULT_FLAG_WP");
        return;
    }
    g_assert_nonnull(strstr(names, "PAGEFAULT_FLAG_WP"));
}

static void test_features_names(void)
{
    g_assert_cmpstr(uffd_feature_name(UFFD_FEATURE_WP_UNPOPULATED), ==, "WP_UNPOPULATED");
    g_assert_cmpstr(uffd_feature_name(UFFD_FEATURE_WP_HUGETLBFS_SHMEM), ==,
                    "WP_HUGETLBFS_SHMEM");
    g_assert_cmpstr(uffd_feature_name(UFFD_FEATURE_MOVE), ==, "MOVE");
    g_assert_null(uffd_feature_name(0));
    g_assert_null(uffd_feature_name(3));
    g_assert_null(uffd_feature_name(1ULL << 40));

    g_autofree char *none = uffd_features_to_string(0);
    g_assert_cmpstr(none, ==, "");
    g_autofree char *some = uffd_features_to_string(UFFD_FEATURE_PAGEFAULT_FLAG_WP |
                                                    UFFD_FEATURE_MOVE | (1ULL << 40));
    g_assert_cmpstr(some, ==, "PAGEFAULT_FLAG_WP, MOVE, bit40");
    g_assert_cmpstr(uffd_ioctl_name(_UFFDIO_WRITEPROTECT), ==, "WRITEPROTECT");
    g_assert_null(uffd_ioctl_name(0x20));
}

static void test_open_missing_feature(void)
{
    uint64_t missing = 0;
    uint64_t bogus = 1ULL << 62;

    int fd = uffd_open(UFFD_FEATURE_PAGEFAULT_FLAG_WP | bogus, O_CLOEXEC, &missing);
    g_assert_cmpint(fd, ==, -EOPNOTSUPP);
    g_assert_cmphex(missing, ==, bogus);
}

static void test_open_device(void)
{
    int fd = uffd_create_from_device(O_CLOEXEC | O_NONBLOCK);

    if (fd == -ENOENT || fd == -EACCES || fd == -EPERM) {
        g_autofree char *why = g_strdup_printf("/dev/userfaultfd unusable here: %s",
                                               g_strerror(-fd));
        g_test_skip(why);
        return;
    }
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(fcntl(fd, F_GETFL) & O_NONBLOCK, !=, 0);
    g_assert_cmpint(fcntl(fd, F_GETFD) & FD_CLOEXEC, !=, 0);
    close(fd);
}

/* Drop CAP_SYS_PTRACE from this process's effective and permitted sets. */
static void drop_cap_sys_ptrace(void)
{
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

    g_assert_cmpint(syscall(SYS_capget, &header, data), ==, 0);
    data[CAP_TO_INDEX(CAP_SYS_PTRACE)].effective &= ~CAP_TO_MASK(CAP_SYS_PTRACE);
    data[CAP_TO_INDEX(CAP_SYS_PTRACE)].permitted &= ~CAP_TO_MASK(CAP_SYS_PTRACE);
    g_assert_cmpint(syscall(SYS_capset, &header, data), ==, 0);
}

/*
 * With vm.unprivileged_userfaultfd=0, a process without CAP_SYS_PTRACE is
 * refused the system call but may still use /dev/userfaultfd.
 */
static void test_open_fallback_to_device(void)
{
    g_autofree char *sysctl = NULL;

    if (g_test_subprocess()) {
        drop_cap_sys_ptrace();
        g_assert_cmpint(syscall(__NR_userfaultfd, O_CLOEXEC), ==, -1);
        g_assert_cmpint(errno, ==, EPERM);
        int fd = uffd_open(UFFD_FEATURE_PAGEFAULT_FLAG_WP, O_CLOEXEC | O_NONBLOCK, NULL);
        g_assert_cmpint(fd, >=, 0);
        close(fd);
        return;
    }
    if (geteuid() != 0) {
        g_test_skip("needs root: /dev/userfaultfd is usually root's only");
        return;
    }
    if (!g_file_get_contents("/proc/sys/vm/unprivileged_userfaultfd", &sysctl, NULL, NULL) ||
        atoi(sysctl) != 0) {
        g_test_skip("vm.unprivileged_userfaultfd is not 0: the system call is never refused");
        return;
    }
    if (access("/dev/userfaultfd", R_OK | W_OK) != 0) {
        g_test_skip("/dev/userfaultfd is missing");
        return;
    }
    g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDERR);
    g_test_trap_assert_passed();
}

static void test_register_unregister(void)
{
    UffdFixture f = { .uffd = -1 };
    uint64_t ioctls = 0;

    if (!fixture_open(&f, UFFD_FEATURE_PAGEFAULT_FLAG_WP, 4, true, 0)) {
        return;
    }
    g_assert_cmpint(uffd_register(f.uffd, f.mem, f.len,
                                  UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
                                  &ioctls), ==, 0);
    g_assert_true(ioctls & (1ULL << _UFFDIO_WRITEPROTECT));
    g_assert_true(ioctls & (1ULL << _UFFDIO_COPY));
    g_assert_true(ioctls & (1ULL << _UFFDIO_ZEROPAGE));
    g_assert_true(ioctls & (1ULL << _UFFDIO_WAKE));
    g_assert_cmpint(uffd_unregister(f.uffd, f.mem, f.len), ==, 0);
    /* Unregistered: protecting it now is refused. */
    g_assert_cmpint(uffd_writeprotect(f.uffd, f.mem, f.len, true, false), ==, -ENOENT);
    /* A sub-range can be registered again and released on its own. */
    g_assert_cmpint(uffd_register(f.uffd, f.mem + PAGE, 2 * PAGE, UFFDIO_REGISTER_MODE_WP,
                                  NULL), ==, 0);
    g_assert_cmpint(uffd_writeprotect(f.uffd, f.mem + PAGE, 2 * PAGE, true, false), ==, 0);
    g_assert_cmpint(uffd_writeprotect(f.uffd, f.mem + PAGE, 2 * PAGE, false, false), ==, 0);
    g_assert_cmpint(uffd_unregister(f.uffd, f.mem + PAGE, 2 * PAGE), ==, 0);
    fixture_close(&f);
}

static void test_wp_fault_roundtrip(void)
{
    UffdFixture f = { .uffd = -1 };
    Toucher writer;

    if (!fixture_open(&f, UFFD_FEATURE_PAGEFAULT_FLAG_WP, 4, true, UFFDIO_REGISTER_MODE_WP)) {
        return;
    }
    g_assert_cmpint(uffd_writeprotect(f.uffd, f.mem, f.len, true, false), ==, 0);
    /* Reads of protected pages never fault. */
    g_assert_cmpuint(f.mem[2 * PAGE + 17], ==, 0xAA);

    toucher_start(&writer, f.mem + 2 * PAGE + 17, 0x55, false);
    struct uffd_msg msg = read_one_event(f.uffd);
    g_assert_true(uffd_msg_is_pagefault(&msg));
    g_assert_true(uffd_msg_is_wp_fault(&msg));
    g_assert_true(uffd_msg_is_write_fault(&msg));
    /* Without UFFD_FEATURE_EXACT_ADDRESS the kernel reports the page, not the byte. */
    g_assert_cmphex(uffd_msg_fault_address(&msg), ==, (uintptr_t)(f.mem + 2 * PAGE));

    /* The writer waits: the page still holds what the snapshot must save. */
    wait_until_blocked(&writer, 1);
    g_assert_cmpuint(f.mem[2 * PAGE + 17], ==, 0xAA);

    g_assert_cmpint(uffd_writeprotect(f.uffd, f.mem + 2 * PAGE, PAGE, false, false), ==, 0);
    g_thread_join(writer.thread);
    g_assert_cmpuint(f.mem[2 * PAGE + 17], ==, 0x55);
    /* The other pages are still protected, so nothing else is pending. */
    unsigned n = 1;
    struct uffd_msg more;
    g_assert_cmpint(uffd_read_events(f.uffd, &more, 1, &n), ==, 0);
    g_assert_cmpuint(n, ==, 0);
    fixture_close(&f);
}

#define NR_WRITERS 4

static void test_wp_release_all_writers(void)
{
    UffdFixture f = { .uffd = -1 };
    Toucher writers[NR_WRITERS];
    unsigned seen = 0;

    if (!fixture_open(&f, UFFD_FEATURE_PAGEFAULT_FLAG_WP, 8, true, UFFDIO_REGISTER_MODE_WP)) {
        return;
    }
    g_assert_cmpint(uffd_writeprotect(f.uffd, f.mem, f.len, true, false), ==, 0);
    for (unsigned i = 0; i < NR_WRITERS; i++) {
        toucher_start(&writers[i], f.mem + (2 * i + 1) * PAGE, 0x10 + i, false);
    }
    while (seen < NR_WRITERS) {
        struct uffd_msg msgs[NR_WRITERS];
        unsigned n;
        g_assert_cmpint(uffd_wait(f.uffd, EVENT_TIMEOUT_MS), ==, 1);
        g_assert_cmpint(uffd_read_events(f.uffd, msgs, NR_WRITERS, &n), ==, 0);
        for (unsigned i = 0; i < n; i++) {
            g_assert_true(uffd_msg_is_wp_fault(&msgs[i]));
        }
        seen += n;
    }
    g_assert_cmpuint(seen, ==, NR_WRITERS);
    wait_until_blocked(writers, NR_WRITERS);
    for (unsigned i = 0; i < NR_WRITERS; i++) {
        g_assert_cmpuint(f.mem[(2 * i + 1) * PAGE], ==, 0xAA);
    }

    /* One unprotect of the whole range wakes every blocked writer. */
    g_assert_cmpint(uffd_writeprotect(f.uffd, f.mem, f.len, false, false), ==, 0);
    for (unsigned i = 0; i < NR_WRITERS; i++) {
        g_thread_join(writers[i].thread);
        g_assert_cmpuint(f.mem[(2 * i + 1) * PAGE], ==, 0x10 + i);
    }
    fixture_close(&f);
}

static void test_wp_unpopulated(void)
{
    UffdFixture f = { .uffd = -1 };
    Toucher writer;

    if (!fixture_open(&f, UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_UNPOPULATED, 4,
                      false, UFFDIO_REGISTER_MODE_WP)) {
        return;
    }
    g_assert_cmpint(uffd_writeprotect(f.uffd, f.mem, f.len, true, false), ==, 0);
    toucher_start(&writer, f.mem + 3 * PAGE, 0x77, false);
    struct uffd_msg msg = read_one_event(f.uffd);
    g_assert_true(uffd_msg_is_wp_fault(&msg));
    g_assert_cmphex(uffd_msg_fault_address(&msg), ==, (uintptr_t)(f.mem + 3 * PAGE));
    g_assert_cmpint(uffd_writeprotect(f.uffd, f.mem + 3 * PAGE, PAGE, false, false), ==, 0);
    g_thread_join(writer.thread);
    g_assert_cmpuint(f.mem[3 * PAGE], ==, 0x77);
    fixture_close(&f);
}

/*
 * Why WP_UNPOPULATED matters: without it, write-protect skips pages that were
 * never touched, and the first write to them does not fault.
 */
static void test_wp_unpopulated_without_feature(void)
{
    UffdFixture f = { .uffd = -1 };

    if (!fixture_open(&f, UFFD_FEATURE_PAGEFAULT_FLAG_WP, 4, false, UFFDIO_REGISTER_MODE_WP)) {
        return;
    }
    g_assert_cmpint(uffd_writeprotect(f.uffd, f.mem, f.len, true, false), ==, 0);
    f.mem[PAGE] = 0x42;
    g_assert_cmpuint(f.mem[PAGE], ==, 0x42);
    g_assert_cmpint(uffd_wait(f.uffd, 0), ==, 0);
    fixture_close(&f);
}

static void test_missing_copy_zero(void)
{
    UffdFixture f = { .uffd = -1 };
    uint8_t src[3 * PAGE];
    uint64_t done = 99;
    Toucher reader;

    if (!fixture_open(&f, 0, 6, false, UFFDIO_REGISTER_MODE_MISSING)) {
        return;
    }
    memset(src, 0x3C, sizeof(src));

    g_assert_cmpint(uffd_copy(f.uffd, f.mem, src, PAGE, false, &done), ==, 0);
    g_assert_cmpuint(done, ==, PAGE);
    g_assert_cmpmem(f.mem, PAGE, src, PAGE);

    g_assert_cmpint(uffd_zeropage(f.uffd, f.mem + PAGE, PAGE, &done), ==, 0);
    g_assert_cmpuint(done, ==, PAGE);
    g_assert_cmpuint(f.mem[PAGE + 100], ==, 0);

    /* Page already present: reported distinctly, nothing filled. */
    g_assert_cmpint(uffd_copy(f.uffd, f.mem, src, PAGE, false, &done), ==, -EEXIST);
    g_assert_cmpuint(done, ==, 0);
    g_assert_cmpint(uffd_zeropage(f.uffd, f.mem, PAGE, &done), ==, -EEXIST);
    g_assert_cmpuint(done, ==, 0);

    /* A range ending on a present page: the pages before it are filled. */
    g_assert_cmpint(uffd_zeropage(f.uffd, f.mem + 4 * PAGE, PAGE, NULL), ==, 0);
    g_assert_cmpint(uffd_copy(f.uffd, f.mem + 2 * PAGE, src, 2 * PAGE + PAGE, false, &done),
                    ==, -EEXIST);
    g_assert_cmpuint(done, ==, 2 * PAGE);
    g_assert_cmpmem(f.mem + 2 * PAGE, 2 * PAGE, src, 2 * PAGE);

    /* A reader of a missing page blocks until the page is filled. */
    toucher_start(&reader, f.mem + 5 * PAGE + 9, 0, true);
    struct uffd_msg msg = read_one_event(f.uffd);
    g_assert_true(uffd_msg_is_pagefault(&msg));
    g_assert_false(uffd_msg_is_wp_fault(&msg));
    g_assert_false(uffd_msg_is_write_fault(&msg));
    g_assert_cmphex(uffd_msg_fault_address(&msg), ==, (uintptr_t)(f.mem + 5 * PAGE));
    src[9] = 0x5A;
    g_assert_cmpint(uffd_copy(f.uffd, f.mem + 5 * PAGE, src, PAGE, false, NULL), ==, 0);
    g_thread_join(reader.thread);
    g_assert_cmpuint(reader.value, ==, 0x5A);
    fixture_close(&f);
}

static void test_missing_copy_wp(void)
{
    UffdFixture f = { .uffd = -1 };
    uint8_t src[PAGE];
    Toucher writer;

    if (!fixture_open(&f, UFFD_FEATURE_PAGEFAULT_FLAG_WP, 2, false,
                      UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP)) {
        return;
    }
    memset(src, 0x11, sizeof(src));
    /* Filled write-protected: the first write to it faults. */
    g_assert_cmpint(uffd_copy(f.uffd, f.mem, src, PAGE, true, NULL), ==, 0);
    toucher_start(&writer, f.mem, 0x22, false);
    struct uffd_msg msg = read_one_event(f.uffd);
    g_assert_true(uffd_msg_is_wp_fault(&msg));
    g_assert_cmpuint(f.mem[0], ==, 0x11);
    g_assert_cmpint(uffd_writeprotect(f.uffd, f.mem, PAGE, false, false), ==, 0);
    g_thread_join(writer.thread);
    g_assert_cmpuint(f.mem[0], ==, 0x22);
    fixture_close(&f);
}

/* UFFDIO_MOVE (Linux 6.8): pages change places, the source is left empty. */
static void test_missing_move(void)
{
    UffdFixture f = { .uffd = -1 };
    const size_t src_len = 3 * PAGE;
    uint8_t *src;
    unsigned char vec[3];
    uint64_t done = 99;

    if (!fixture_open(&f, UFFD_FEATURE_MOVE, 4, false, UFFDIO_REGISTER_MODE_MISSING)) {
        return;
    }
    src = mmap(NULL, src_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert_true(src != MAP_FAILED);
    memset(src, 0x6D, src_len);

    g_assert_cmpint(uffd_move(f.uffd, f.mem, src, 2 * PAGE, &done), ==, 0);
    g_assert_cmpuint(done, ==, 2 * PAGE);
    g_assert_cmpuint(f.mem[0], ==, 0x6D);
    g_assert_cmpuint(f.mem[2 * PAGE - 1], ==, 0x6D);
    g_assert_cmpint(mincore(src, src_len, vec), ==, 0);
    g_assert_cmpuint(vec[0] & 1, ==, 0);
    g_assert_cmpuint(vec[1] & 1, ==, 0);

    /* Onto a present page: reported distinctly, nothing moved. */
    g_assert_cmpint(uffd_move(f.uffd, f.mem, src + 2 * PAGE, PAGE, &done), ==, -EEXIST);
    g_assert_cmpuint(done, ==, 0);
    g_assert_cmpuint(src[2 * PAGE], ==, 0x6D);

    /* A range ending on a present page: the pages before it are moved. */
    memset(src, 0x4B, 2 * PAGE);
    g_assert_cmpint(uffd_zeropage(f.uffd, f.mem + 3 * PAGE, PAGE, NULL), ==, 0);
    g_assert_cmpint(uffd_move(f.uffd, f.mem + 2 * PAGE, src, 2 * PAGE, &done), ==, -EEXIST);
    g_assert_cmpuint(done, ==, PAGE);
    g_assert_cmpuint(f.mem[2 * PAGE], ==, 0x4B);
    g_assert_cmpuint(f.mem[3 * PAGE], ==, 0);
    munmap(src, src_len);
    fixture_close(&f);
}

#define NR_BATCH 3

static void test_events_batch(void)
{
    UffdFixture f = { .uffd = -1 };
    Toucher writers[NR_BATCH];
    struct uffd_msg msgs[8];
    unsigned n = 0;
    uint64_t seen_pages = 0;

    if (!fixture_open(&f, UFFD_FEATURE_PAGEFAULT_FLAG_WP, NR_BATCH, true,
                      UFFDIO_REGISTER_MODE_WP)) {
        return;
    }
    g_assert_cmpint(uffd_writeprotect(f.uffd, f.mem, f.len, true, false), ==, 0);
    for (unsigned i = 0; i < NR_BATCH; i++) {
        toucher_start(&writers[i], f.mem + i * PAGE, i, false);
    }
    /* Once all writers sleep in the fault, all their events are queued. */
    wait_until_blocked(writers, NR_BATCH);
    g_assert_cmpint(uffd_read_events(f.uffd, msgs, G_N_ELEMENTS(msgs), &n), ==, 0);
    g_assert_cmpuint(n, ==, NR_BATCH);
    for (unsigned i = 0; i < n; i++) {
        g_assert_true(uffd_msg_is_wp_fault(&msgs[i]));
        uint64_t page = (uffd_msg_fault_address(&msgs[i]) - (uintptr_t)f.mem) / PAGE;
        g_assert_cmpuint(page, <, NR_BATCH);
        seen_pages |= 1ULL << page;
    }
    g_assert_cmphex(seen_pages, ==, (1u << NR_BATCH) - 1);
    g_assert_cmpint(uffd_read_events(f.uffd, msgs, G_N_ELEMENTS(msgs), &n), ==, 0);
    g_assert_cmpuint(n, ==, 0);

    g_assert_cmpint(uffd_writeprotect(f.uffd, f.mem, f.len, false, false), ==, 0);
    for (unsigned i = 0; i < NR_BATCH; i++) {
        g_thread_join(writers[i].thread);
    }
    fixture_close(&f);
}

static void test_events_batch_limit(void)
{
    UffdFixture f = { .uffd = -1 };
    Toucher writers[NR_BATCH];
    struct uffd_msg msgs[NR_BATCH];
    unsigned n = 0;

    if (!fixture_open(&f, UFFD_FEATURE_PAGEFAULT_FLAG_WP, NR_BATCH, true,
                      UFFDIO_REGISTER_MODE_WP)) {
        return;
    }
    g_assert_cmpint(uffd_writeprotect(f.uffd, f.mem, f.len, true, false), ==, 0);
    for (unsigned i = 0; i < NR_BATCH; i++) {
        toucher_start(&writers[i], f.mem + i * PAGE, i, false);
    }
    wait_until_blocked(writers, NR_BATCH);
    g_assert_cmpint(uffd_read_events(f.uffd, msgs, 2, &n), ==, 0);
    g_assert_cmpuint(n, ==, 2);
    g_assert_cmpint(uffd_read_events(f.uffd, msgs, 2, &n), ==, 0);
    g_assert_cmpuint(n, ==, 1);
    g_assert_cmpint(uffd_writeprotect(f.uffd, f.mem, f.len, false, false), ==, 0);
    for (unsigned i = 0; i < NR_BATCH; i++) {
        g_thread_join(writers[i].thread);
    }
    fixture_close(&f);
}

static void test_wait_timeout_and_wake(void)
{
    UffdFixture f = { .uffd = -1 };
    struct uffd_msg msg;
    unsigned n = 7;

    if (!fixture_open(&f, 0, 1, true, UFFDIO_REGISTER_MODE_MISSING)) {
        return;
    }
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    g_assert_cmpint(efd, >=, 0);

    gint64 start = g_get_monotonic_time();
    g_assert_cmpint(uffd_wait(f.uffd, 20), ==, 0);
    g_assert_cmpint(g_get_monotonic_time() - start, >=, 15000);
    g_assert_cmpint(uffd_wait2(f.uffd, efd, 0), ==, 0);
    g_assert_cmpint(uffd_read_events(f.uffd, &msg, 1, &n), ==, 0);
    g_assert_cmpuint(n, ==, 0);

    uint64_t one = 1;
    g_assert_cmpint(write(efd, &one, sizeof(one)), ==, sizeof(one));
    g_assert_cmpint(uffd_wait2(f.uffd, efd, EVENT_TIMEOUT_MS), ==, UFFD_WAIT_WAKE);
    close(efd);
    fixture_close(&f);
}

/* Calls the kernel must refuse, and the errno each must give. */
typedef enum {
    BAD_REGISTER_UNALIGNED,
    BAD_REGISTER_ZERO_LENGTH,
    BAD_REGISTER_UNMAPPED,
    BAD_WRITEPROTECT_UNALIGNED,
    BAD_WRITEPROTECT_UNREGISTERED,
    BAD_COPY_UNREGISTERED,
    BAD_COPY_UNALIGNED,
    BAD_COPY_WP_NOT_REGISTERED,
    BAD_CLOSED_DESCRIPTOR,
    BAD_READ_CLOSED_DESCRIPTOR,
    BAD_WAIT_CLOSED_DESCRIPTOR,
} BadCall;

typedef struct {
    const char *path;
    BadCall call;
    int expected_errno;
} BadCallCase;

static const BadCallCase bad_calls[] = {
    { "/uffd/errors/register-unaligned", BAD_REGISTER_UNALIGNED, EINVAL },
    { "/uffd/errors/register-zero-length", BAD_REGISTER_ZERO_LENGTH, EINVAL },
    { "/uffd/errors/register-unmapped", BAD_REGISTER_UNMAPPED, EINVAL },
    { "/uffd/errors/writeprotect-unaligned", BAD_WRITEPROTECT_UNALIGNED, EINVAL },
    { "/uffd/errors/writeprotect-unregistered", BAD_WRITEPROTECT_UNREGISTERED, ENOENT },
    { "/uffd/errors/copy-unregistered", BAD_COPY_UNREGISTERED, ENOENT },
    { "/uffd/errors/copy-unaligned", BAD_COPY_UNALIGNED, EINVAL },
    { "/uffd/errors/copy-wp-not-registered", BAD_COPY_WP_NOT_REGISTERED, EINVAL },
    { "/uffd/errors/closed-descriptor", BAD_CLOSED_DESCRIPTOR, EBADF },
    { "/uffd/errors/read-closed-descriptor", BAD_READ_CLOSED_DESCRIPTOR, EBADF },
    { "/uffd/errors/wait-closed-descriptor", BAD_WAIT_CLOSED_DESCRIPTOR, EBADF },
};

static void test_bad_call(gconstpointer data)
{
    const BadCallCase *c = data;
    UffdFixture f = { .uffd = -1 };
    uint8_t src[PAGE] = { 0 };
    struct uffd_msg msg;
    unsigned n;
    int ret = 0;

    if (!fixture_open(&f, UFFD_FEATURE_PAGEFAULT_FLAG_WP, 4, true, 0)) {
        return;
    }
    switch (c->call) {
    case BAD_REGISTER_UNALIGNED:
        ret = uffd_register(f.uffd, f.mem + 1, PAGE, UFFDIO_REGISTER_MODE_WP, NULL);
        break;
    case BAD_REGISTER_ZERO_LENGTH:
        ret = uffd_register(f.uffd, f.mem, 0, UFFDIO_REGISTER_MODE_WP, NULL);
        break;
    case BAD_REGISTER_UNMAPPED:
        /* Holes inside a range are skipped, but a range with no mapping at all is refused. */
        g_assert_cmpint(munmap(f.mem + 3 * PAGE, PAGE), ==, 0);
        ret = uffd_register(f.uffd, f.mem + 3 * PAGE, PAGE, UFFDIO_REGISTER_MODE_WP, NULL);
        f.len = 3 * PAGE;
        break;
    case BAD_WRITEPROTECT_UNALIGNED:
        g_assert_cmpint(uffd_register(f.uffd, f.mem, f.len, UFFDIO_REGISTER_MODE_WP, NULL), ==,
                        0);
        ret = uffd_writeprotect(f.uffd, f.mem, PAGE + 1, true, false);
        break;
    case BAD_WRITEPROTECT_UNREGISTERED:
        ret = uffd_writeprotect(f.uffd, f.mem, PAGE, true, false);
        break;
    case BAD_COPY_UNREGISTERED:
        ret = uffd_copy(f.uffd, f.mem, src, PAGE, false, NULL);
        break;
    case BAD_COPY_UNALIGNED:
        g_assert_cmpint(uffd_register(f.uffd, f.mem, f.len, UFFDIO_REGISTER_MODE_MISSING, NULL),
                        ==, 0);
        ret = uffd_copy(f.uffd, f.mem + 8, src, PAGE, false, NULL);
        break;
    case BAD_COPY_WP_NOT_REGISTERED:
        /* Filling write-protected needs the range registered for write-protect too. */
        g_assert_cmpint(munmap(f.mem, f.len), ==, 0);
        g_assert_true(mmap(f.mem, f.len, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == f.mem);
        g_assert_cmpint(uffd_register(f.uffd, f.mem, f.len, UFFDIO_REGISTER_MODE_MISSING, NULL),
                        ==, 0);
        ret = uffd_copy(f.uffd, f.mem, src, PAGE, true, NULL);
        break;
    case BAD_CLOSED_DESCRIPTOR:
        close(f.uffd);
        ret = uffd_register(f.uffd, f.mem, f.len, UFFDIO_REGISTER_MODE_WP, NULL);
        f.uffd = -1;
        break;
    case BAD_READ_CLOSED_DESCRIPTOR:
        close(f.uffd);
        ret = uffd_read_events(f.uffd, &msg, 1, &n);
        f.uffd = -1;
        break;
    case BAD_WAIT_CLOSED_DESCRIPTOR:
        close(f.uffd);
        ret = uffd_wait(f.uffd, 0);
        f.uffd = -1;
        break;
    }
    g_assert_cmpint(ret, ==, -c->expected_errno);
    fixture_close(&f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    g_test_add_func("/uffd/features/probe", test_features_probe);
    g_test_add_func("/uffd/features/names", test_features_names);
    g_test_add_func("/uffd/open/missing-feature", test_open_missing_feature);
    g_test_add_func("/uffd/open/device", test_open_device);
    g_test_add_func("/uffd/open/fallback-to-device", test_open_fallback_to_device);
    g_test_add_func("/uffd/register/unregister", test_register_unregister);
    g_test_add_func("/uffd/writeprotect/fault-roundtrip", test_wp_fault_roundtrip);
    g_test_add_func("/uffd/writeprotect/release-all-writers", test_wp_release_all_writers);
    g_test_add_func("/uffd/writeprotect/unpopulated", test_wp_unpopulated);
    g_test_add_func("/uffd/writeprotect/unpopulated-without-feature",
                    test_wp_unpopulated_without_feature);
    g_test_add_func("/uffd/missing/copy-zero", test_missing_copy_zero);
    g_test_add_func("/uffd/missing/copy-wp", test_missing_copy_wp);
    g_test_add_func("/uffd/missing/move", test_missing_move);
    g_test_add_func("/uffd/events/batch", test_events_batch);
    g_test_add_func("/uffd/events/batch-limit", test_events_batch_limit);
    g_test_add_func("/uffd/events/wait-timeout-and-wake", test_wait_timeout_and_wake);
    for (unsigned i = 0; i < G_N_ELEMENTS(bad_calls); i++) {
        g_test_add_data_func(bad_calls[i].path, &bad_calls[i], test_bad_call);
    }
    return g_test_run();
}
