/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Benchmark: could two threads serve one write fault's 2 MiB copy faster than
 * one? Each region of a THP mapping, written once and then write-protected,
 * is copied (first word read, as the zero test does, then the page) in 256 KiB
 * chunks taken from a shared counter, so a late helper costs nothing. The
 * helper either spins between copies or sleeps on a futex and is woken for
 * each, as a real one would be between faults. docs/background-snapshot.md
 * ("Where the time goes") has the figures: only a spinning helper gains.
 */
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

#include "util/userfaultfd.h"

#define PAGE 4096ULL
#define HUGE (2ULL << 20)
#define REGIONS 32
#define CHUNKS 8

typedef struct Copy {
    uint8_t *dst;
    const uint8_t *src;
    int next_chunk;
    int done_chunks;
    int generation;     /* the futex: bumped for each region; -1 stops the helper */
    bool futex;
} Copy;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void copy_chunks(Copy *c)
{
    int k;

    while ((k = __atomic_fetch_add(&c->next_chunk, 1, __ATOMIC_ACQ_REL)) < CHUNKS) {
        uint64_t size = HUGE / CHUNKS;

        for (uint64_t off = k * size; off < (k + 1) * size; off += PAGE) {
            (void)*(const volatile uint64_t *)(c->src + off);
            memcpy(c->dst + off, c->src + off, PAGE);
        }
        __atomic_fetch_add(&c->done_chunks, 1, __ATOMIC_ACQ_REL);
    }
}

static gpointer helper_main(gpointer opaque)
{
    Copy *c = opaque;
    int seen = 0;

    for (;;) {
        int gen;

        while ((gen = __atomic_load_n(&c->generation, __ATOMIC_ACQUIRE)) == seen) {
            if (c->futex) {
                syscall(SYS_futex, &c->generation, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
            } else {
                __builtin_ia32_pause();
            }
        }
        if (gen < 0) {
            return NULL;
        }
        seen = gen;
        copy_chunks(c);
    }
}

/* A fresh mapping, written, protected; then each region copied by one or two threads. */
static void run(Copy *c, const char *label, bool two)
{
    uint8_t *raw = mmap(NULL, REGIONS * HUGE + HUGE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert(raw != MAP_FAILED);
    uint8_t *mem = (uint8_t *)(((uintptr_t)raw + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
    uint64_t total = 0, worst = 0;
    int uffd;

    madvise(mem, REGIONS * HUGE, MADV_HUGEPAGE);
    memset(mem, 0x5a, REGIONS * HUGE);
    uffd = uffd_open(UFFD_FEATURE_PAGEFAULT_FLAG_WP, 0, NULL);
    g_assert(uffd >= 0);
    g_assert(uffd_register(uffd, mem, REGIONS * HUGE, UFFDIO_REGISTER_MODE_WP, NULL) == 0);
    g_assert(uffd_writeprotect(uffd, mem, REGIONS * HUGE, true, false) == 0);
    for (unsigned r = 0; r < REGIONS; r++) {
        uint64_t t0, ns;

        c->src = mem + r * HUGE;
        __atomic_store_n(&c->next_chunk, 0, __ATOMIC_RELEASE);
        __atomic_store_n(&c->done_chunks, 0, __ATOMIC_RELEASE);
        t0 = now_ns();
        if (two) {
            __atomic_fetch_add(&c->generation, 1, __ATOMIC_ACQ_REL);
            if (c->futex) {
                syscall(SYS_futex, &c->generation, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
            }
        }
        copy_chunks(c);
        while (__atomic_load_n(&c->done_chunks, __ATOMIC_ACQUIRE) < CHUNKS) {
            __builtin_ia32_pause();
        }
        ns = now_ns() - t0;
        total += ns;
        worst = MAX(worst, ns);
        /* Faults come apart: let the CPUs go idle between them, as they would. */
        g_usleep(2000);
    }
    printf("%-32s %8.0f %8.0f\n", label, total / 1e3 / REGIONS, worst / 1e3);
    close(uffd);
    munmap(raw, REGIONS * HUGE + HUGE);
}

int main(int argc, char **argv)
{
    Copy c = { .futex = argc > 1 && !strcmp(argv[1], "--futex") };
    GThread *helper;

    c.dst = mmap(NULL, HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert(c.dst != MAP_FAILED);
    madvise(c.dst, HUGE, MADV_HUGEPAGE);
    memset(c.dst, 1, HUGE);
    helper = g_thread_new("copy-helper", helper_main, &c);
    printf("per 2 MiB region, just write-protected (us)   average    worst  (helper %s)\n",
           c.futex ? "woken by a futex" : "spinning");
    for (unsigned rep = 0; rep < 3; rep++) {
        run(&c, "one thread", false);
        run(&c, "two threads", true);
    }
    __atomic_store_n(&c.generation, -1, __ATOMIC_RELEASE);
    syscall(SYS_futex, &c.generation, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    g_thread_join(helper);
    return 0;
}
