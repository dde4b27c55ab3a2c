/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Benchmark: what reading guest-like memory costs right after its first
 * userfaultfd write protection, through our own mapping and through the
 * kernel's (process_vm_readv), against later protections. Why a block whose
 * first pages read slowly is copied through the kernel (snapshot-read.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

#include "util/userfaultfd.h"

#define PAGE 4096ULL
#define HUGE (2ULL << 20)
#define REGIONS 32          /* 64 MiB, written once like a guest's memory */

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* The first word of every page of one 2 MiB region, as the zero test reads it. */
static uint64_t touch_region(const uint8_t *p)
{
    volatile uint64_t sum = 0;
    uint64_t t0 = now_ns();

    for (uint64_t off = 0; off < HUGE; off += PAGE) {
        sum += *(const volatile uint64_t *)(p + off);
    }
    (void)sum;
    return now_ns() - t0;
}

static uint64_t kernel_copy_region(const uint8_t *p, uint8_t *dst)
{
    struct iovec local = { dst, HUGE };
    struct iovec remote = { (void *)p, HUGE };
    uint64_t t0 = now_ns();

    if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != (ssize_t)HUGE) {
        g_printerr("process_vm_readv: %s\n", g_strerror(errno));
    }
    return now_ns() - t0;
}

/* One fresh mapping: write it, register it, protect it @protects times, then read it. */
static void run(const char *label, unsigned protects, bool via_kernel, uint8_t *dst)
{
    uint8_t *raw = mmap(NULL, REGIONS * HUGE + HUGE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert(raw != MAP_FAILED);
    uint8_t *mem = (uint8_t *)(((uintptr_t)raw + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
    madvise(mem, REGIONS * HUGE, MADV_HUGEPAGE);
    memset(mem, 0x5a, REGIONS * HUGE);

    int uffd = uffd_open(UFFD_FEATURE_PAGEFAULT_FLAG_WP, 0, NULL);
    g_assert(uffd >= 0);
    g_assert(uffd_register(uffd, mem, REGIONS * HUGE, UFFDIO_REGISTER_MODE_WP, NULL) == 0);
    for (unsigned i = 0; i < protects; i++) {
        if (i) {
            /* Released and read once, as a snapshot's scan leaves it. */
            g_assert(uffd_writeprotect(uffd, mem, REGIONS * HUGE, false, false) == 0);
            for (unsigned r = 0; r < REGIONS; r++) {
                touch_region(mem + r * HUGE);
            }
        }
        g_assert(uffd_writeprotect(uffd, mem, REGIONS * HUGE, true, false) == 0);
    }

    uint64_t total = 0;
    uint64_t worst = 0;
    for (unsigned r = 0; r < REGIONS; r++) {
        uint64_t ns = via_kernel ? kernel_copy_region(mem + r * HUGE, dst)
                                 : touch_region(mem + r * HUGE);
        total += ns;
        worst = MAX(worst, ns);
    }
    printf("%-58s %8.0f %8.0f\n", label, total / 1e3 / REGIONS, worst / 1e3);
    close(uffd);
    munmap(raw, REGIONS * HUGE + HUGE);
}

int main(void)
{
    uint8_t *dst = mmap(NULL, HUGE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    g_assert(dst != MAP_FAILED);
    memset(dst, 1, HUGE);

    printf("per 2 MiB region of a %llu MiB THP mapping written once (us)  average    worst\n",
           REGIONS * HUGE >> 20);
    /*
     * On the paravirtual host where this was found, reads after the first
     * protection in a process's life were often slow (repetition 1: 0.6-0.9
     * ms a region in most invocations, fast in some), later ones fast though
     * each run maps fresh memory: a VMM's first snapshot. Why is the host's.
     */
    for (unsigned rep = 0; rep < 3; rep++) {
        printf("repetition %u\n", rep + 1);
        run("first word of each page, never protected", 0, false, dst);
        run("first word of each page, after the first protection", 1, false, dst);
        run("first word of each page, after a second protection", 2, false, dst);
        run("whole 2 MiB via process_vm_readv, after the first protection", 1, true, dst);
    }
    return 0;
}
