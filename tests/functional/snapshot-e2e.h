/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Helpers of the background snapshot end-to-end test: QMP commands and figures, offline image checks, a unix: socket reader. */
#ifndef TESTS_FUNCTIONAL_SNAPSHOT_E2E_H
#define TESTS_FUNCTIONAL_SNAPSHOT_E2E_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "qmp-client.h"
#include "payload-check.h"

typedef struct TestVm TestVm;

/* Waits that cover a guest's first sweep or a whole snapshot on a loaded machine. */
#define SNAP_TIMEOUT_MS 30000

/* Stream bytes that do not grow with RAM: header, machine description, devices, footer. */
#define SNAP_FIXED_OVERHEAD (64 * 1024)

/* ---- QMP (each fails the test on an error reply) ---- */

/* Run @command with @args_json (may be NULL); returns the "return" value (transfer full). */
JsonNode *snap_qmp_ok(QmpClient *c, const char *command, const char *args_json);

/* snap_qmp_ok() dropping the value. */
void snap_qmp_do(QmpClient *c, const char *command, const char *args_json);

/* An HMP line through human-monitor-command; returns its output (caller frees). */
char *snap_hmp(QmpClient *c, const char *line);

/* migrate-set-capabilities background-snapshot on. */
void snap_enable(QmpClient *c);

/* migrate to @uri (returns at once, as QEMU's). */
void snap_migrate(QmpClient *c, const char *uri);

/* Forget the MIGRATION events received so far (an earlier migration's). */
void snap_drop_migration_events(QmpClient *c);

/* query-migrate's object (caller unrefs). */
JsonObject *snap_query_migrate(QmpClient *c);

/* query-status's "status" (caller frees). */
char *snap_query_status(QmpClient *c);

/* The final status (completed, failed, cancelled) from the MIGRATION events (caller frees). */
char *snap_wait_migration_end(QmpClient *c);

/* Wait for the end of the migration and fail the test unless it completed, with the reason. */
void snap_wait_completed(QmpClient *c);

/* ---- the guest ---- */

/*
 * A frostvm with @ram_mb MiB on @accel ("kvm" or "test") and the payload's
 * @append; with @kernel, KVM boots the payload (a restored guest needs none).
 * Not launched yet.
 */
TestVm *snap_guest_new(const char *accel, const char *ram_mb, const char *append, bool kernel);

/*
 * The next PROGRESS line of @vm's serial log within @timeout_ms, which must
 * be healthy (registers agree with memory, no mismatch, checksum right):
 * fails the test with the serial log otherwise.
 */
PayloadProgress snap_progress_healthy(TestVm *vm, int timeout_ms);

/* The serial log has no MISMATCH, FAIL or PAYLOAD ERROR line. */
void snap_assert_serial_clean(TestVm *vm);

/* ---- images ---- */

/* An image's own account of itself (frostvm-img info --output=json). */
typedef struct {
    uint64_t file_size;
    uint64_t stream_length;
    uint64_t ram_size;
    uint64_t data_pages;
    uint64_t zero_pages;
    uint64_t repeated_pages;
    uint64_t vcpus;
    bool valid;
    bool background;     /* the stream flags say background-snapshot */
} SnapImageInfo;

/* What the offline check found: the image's figures and the payload in it. */
typedef struct {
    SnapImageInfo info;
    PayloadCheckResult res;
} SnapImage;

/*
 * Run frostvm-img ($FROSTVM_IMG, else the build tree's) with the arguments
 * (NULL-terminated); returns its exit status, stdout and stderr in *@out
 * (may be NULL; caller frees).
 */
int snap_img_tool(char **out, const char *first, ...) G_GNUC_NULL_TERMINATED;

/* frostvm-img info of @path, parsed; fails the test if the tool fails. */
SnapImageInfo snap_image_info(const char *path);

/*
 * Check the image at @path offline, failing the test otherwise: frostvm-img
 * check passes; it is a background snapshot of a machine with @ram_bytes of RAM
 * and @vcpus vCPUs; it holds each page once; it is no larger than the non-zero
 * RAM plus 1% plus SNAP_FIXED_OVERHEAD; and its memory (dumped to @raw_path,
 * removed afterwards) is the test payload at one instant, taken after its
 * first sweep: every page settled or in flight, step counts consistent.
 */
SnapImage snap_image_check(const char *path, const char *raw_path, uint64_t ram_bytes,
                           unsigned vcpus);

/*
 * query-migrate after a completed snapshot: QEMU's figures agree with @img (may
 * be NULL when there is no image file) and the background-snapshot object is
 * sane (percentiles ordered, downtime > 0, high water within the pool).
 * Returns ram.transferred.
 */
uint64_t snap_check_figures(QmpClient *c, const SnapImageInfo *img);

/* ---- a unix: sink read by the test ---- */

typedef struct SnapReader SnapReader;

/*
 * Listen on @sock_path and copy the first connection to @out_path until EOF, in
 * a thread.
 */
SnapReader *snap_reader_start(const char *sock_path, const char *out_path);

/* Wait for the copy to end and free @r; fails the test on an error. Returns the bytes read. */
uint64_t snap_reader_finish(SnapReader *r);

#endif
