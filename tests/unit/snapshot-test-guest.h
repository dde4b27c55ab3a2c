/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A test guest for the background snapshot engine: RAM blocks, writer threads, a pause, and the image check. */
#ifndef TESTS_UNIT_SNAPSHOT_TEST_GUEST_H
#define TESTS_UNIT_SNAPSHOT_TEST_GUEST_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "migration/background-snapshot.h"
#include "migration/stream-file.h"
#include "system/machine.h"
#include "system/memory-backend.h"

#define MIB (1024 * 1024ULL)
#define PAGE 4096ULL
#define NR_WRITERS 2

/*
 * Two RAM blocks. In the first, the writers sweep the hot part; the cold part
 * is written once at start; the rest is never touched (unpopulated), unless
 * a grower fills the second half of block 1 while the snapshot starts.
 */
#define BLOCK0_SIZE (48 * MIB)
#define BLOCK1_SIZE (16 * MIB)
#define HOT_SIZE (16 * MIB)
#define COLD_SIZE (8 * MIB)

typedef struct TestGuestOptions {
    bool writers;                       /* NR_WRITERS threads sweep the hot part */
    const MemoryBackendOptions *backend; /* NULL: private anonymous mappings */
    bool thp;                           /* anonymous, 2 MiB aligned, MADV_HUGEPAGE */
    bool grower;                        /* a thread populates block 1's second half, slowly */
} TestGuestOptions;

typedef struct TestGuest {
    RamBlock rb[2];
    MemoryBackend *backend[2];  /* or NULL: private anonymous mappings */
    uint8_t *raw[2];            /* anonymous mappings as mapped (before alignment) */
    uint64_t raw_len[2];
    GPtrArray *blocks;
    GThread *writers[NR_WRITERS + 1];
    GMutex lock;
    GCond cond;
    bool pause_requested;       /* atomic read by writers */
    unsigned parked;
    unsigned nr_writers;
    bool quit;
    bool all_touched;           /* every page was written at least once */
    bool grower;
    uint64_t steps;             /* atomic: page writes done */
    uint64_t grown_pages;       /* atomic: pages the grower populated */
} TestGuest;

TestGuest *guest_new_with(const TestGuestOptions *opts);
TestGuest *guest_new_backed(bool start_writers, const MemoryBackendOptions *opts);
TestGuest *guest_new(bool start_writers);
void guest_free(TestGuest *g);
void guest_pause(TestGuest *g);
void guest_resume(TestGuest *g);

/* Userfaultfd write-protect works here; else marks the test skipped (false). */
bool wp_available(void);

/* Pages of [@start, @start + @len) the page tables show populated (or zero-page mapped). */
uint64_t populated_pages(const uint8_t *start, uint64_t len);

/* 2 MiB regions of [@start, @start + @len) (2 MiB aligned) mapped huge; -1 without PAGEMAP_SCAN. */
int64_t huge_regions(const uint8_t *start, uint64_t len);

/* What one snapshot produced. */
typedef struct SnapshotResult {
    bool ok;
    GError *error;
    BackgroundSnapshotStats stats;
    uint64_t zero_pages;
    uint64_t data_pages;
    uint8_t *at_pause[2];       /* RAM copied inside the pause */
} SnapshotResult;

typedef struct TickCtx {
    unsigned ticks;
    unsigned cancel_after;      /* 0: never */
    /* Called in the scan thread before each chunk it saves, after counting (may be NULL). */
    void (*on_tick)(struct TickCtx *t);
    /* Called by run_snapshot() between the early protect and the pause (may be NULL). */
    void (*before_pause)(struct TickCtx *t);
    void *opaque;
    struct BackgroundSnapshot *bs;      /* set by run_snapshot() before before_pause */
} TickCtx;

/* The scan's progress callback: counts, runs on_tick, and cancels after cancel_after ticks. */
bool tick(void *opaque);

/* Run the engine as background_snapshot_run() does, with the test guest's pause. */
void run_snapshot(TestGuest *g, StreamFile *f, uint64_t pool_bytes, TickCtx *t,
                  SnapshotResult *res);
/* run_snapshot(), then: no error, and the image, flushed, equal to RAM at the pause (check_image()). */
void run_snapshot_checked(TestGuest *g, StreamFile *f, uint64_t pool_bytes, TickCtx *t,
                          SnapshotResult *res);
void result_clear(SnapshotResult *res);

/*
 * Read the RAM records back (the engine writes nothing else) and compare with
 * RAM at the pause: every page present exactly once, every byte equal.
 */
void check_image(TestGuest *g, const GByteArray *out, const SnapshotResult *res);

/* The figures as `info migrate` prints them, as a test message. */
void print_stats(const char *what, const SnapshotResult *res, TestGuest *g);

#endif
