/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Benchmark: how long one write() into a pipe takes, by size. The kernel does
 * not preempt that copy (PREEMPT_NONE), so it bounds how long a woken vCPU
 * can wait behind an idle-priority writer (migration/channels/channel.c).
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SAMPLES 64

static int pipe_fds[2];

/* A reader that always keeps the pipe empty, as a sink that keeps up. */
static void *drain(void *opaque)
{
    static char buf[1 << 17];

    (void)opaque;
    while (read(pipe_fds[0], buf, sizeof(buf)) > 0) {
    }
    return NULL;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(void)
{
    static const size_t sizes[] = { 64 << 10, 128 << 10, 256 << 10, 1 << 20 };
    char *data = malloc(1 << 20);
    pthread_t reader;

    if (!data || pipe(pipe_fds) != 0) {
        perror("pipe-write-cost");
        return 1;
    }
    memset(data, 0x5a, 1 << 20);
    /* The size frostvm asks for exec: pipes (channel-exec.c). */
    fcntl(pipe_fds[1], F_SETPIPE_SZ, 1 << 20);
    pthread_create(&reader, NULL, drain, NULL);
    printf("| write() into a pipe | median us | p90 us | max us |\n|---|---|---|---|\n");
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        uint64_t ns[SAMPLES];

        for (int i = 0; i < SAMPLES; i++) {
            usleep(5000);   /* the reader has emptied the pipe */
            uint64_t t = now_ns();
            if (write(pipe_fds[1], data, sizes[s]) < 0) {
                perror("pipe-write-cost: write");
                return 1;
            }
            ns[i] = now_ns() - t;
        }
        qsort(ns, SAMPLES, sizeof(ns[0]), cmp_u64);
        printf("| %zu KiB | %.0f | %.0f | %.0f |\n", sizes[s] >> 10, ns[SAMPLES / 2] / 1e3,
               ns[SAMPLES * 9 / 10] / 1e3, ns[SAMPLES - 1] / 1e3);
    }
    close(pipe_fds[1]);
    pthread_join(reader, NULL);
    free(data);
    return 0;
}
