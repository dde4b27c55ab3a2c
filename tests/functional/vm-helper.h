/* SPDX-License-Identifier: GPL-2.0-or-later */
/* End-to-end test helper: run the frostvm binary in a private directory, talk QMP, read its logs, always kill it. */
#ifndef TESTS_FUNCTIONAL_VM_HELPER_H
#define TESTS_FUNCTIONAL_VM_HELPER_H

#include <stdbool.h>
#include <sys/types.h>
#include <glib.h>

#include "qmp-client.h"
#include "payload-check.h"

/*
 * Typical use, one VM per test case, torn down by the fixture even when the
 * test fails:
 *
 *   static void test_foo(TestVmFixture *f, gconstpointer data)
 *   {
 *       g_autoptr(GError) err = NULL;
 *       PayloadProgress p;
 *
 *       if (test_vm_skip_without_kvm()) {
 *           return;
 *       }
 *       f->vm = test_vm_new(TEST_VM_DEFAULT);
 *       test_vm_add_guest(f->vm, "kvm", "mem=8M");
 *       test_vm_launch_or_fail(f->vm);           // QMP connected and negotiated
 *       test_vm_wait_progress(f->vm, TEST_VM_TIMEOUT_MS, &p, &err);
 *       g_assert_no_error(err);
 *       ... qmp_client_execute(test_vm_qmp(f->vm), "stop", NULL, &err) ...
 *   }
 *   g_test_add("/area/foo", TestVmFixture, NULL, test_vm_fixture_setup, test_foo,
 *              test_vm_fixture_teardown);
 *
 * The binary and the payload come from $FROSTVM and $FROSTVM_PAYLOAD (set by
 * tests/functional/meson.build), else from the build tree next to the test.
 */
typedef struct TestVm TestVm;

/* Error domain of the helper's own failures (the VM exited, a wait timed out). */
#define TEST_VM_ERROR (test_vm_error_quark())
GQuark test_vm_error_quark(void);

/* What test_vm_launch() adds to the command line, and how it starts the VM. */
typedef enum {
    TEST_VM_DEFAULT = 0,
    TEST_VM_NO_QMP = 1 << 0,      /* no -qmp socket, no client */
    TEST_VM_NO_SERIAL = 1 << 1,   /* no -serial file:serial.log (the test gives its own) */
    TEST_VM_NO_CONNECT = 1 << 2,  /* create the QMP socket but do not connect to it */
    TEST_VM_STDIN_PIPE = 1 << 3,  /* stdin is a pipe the test writes (test_vm_stdin_fd) */
} TestVmFlags;

/* The output files a test can wait on. */
typedef enum {
    TEST_VM_LOG_SERIAL,   /* serial.log (-serial file:) */
    TEST_VM_LOG_STDOUT,
    TEST_VM_LOG_STDERR,
    TEST_VM_LOG__MAX,
} TestVmLog;

/* How long a test waits for the VM by default: generous, for a loaded machine. */
#define TEST_VM_TIMEOUT_MS 15000

/*
 * The frostvm binary under test: $FROSTVM, else ../../frostvm next to the test
 * program (the build tree's layout). Owned by the caller.
 */
char *test_vm_frostvm_path(void);

/* The test payload: $FROSTVM_PAYLOAD, else ../guest/payload.elf next to the test. */
char *test_vm_payload_path(void);

/*
 * Whether /dev/kvm can create a VM. On false, @reason (if not NULL) gets why
 * (caller frees).
 */
bool test_vm_kvm_usable(char **reason);

/* g_test_skip("no /dev/kvm: ...") and return true when KVM is not usable. */
bool test_vm_skip_without_kvm(void);

/*
 * g_test_skip() saying so and return true when fewer than @n 2 MiB huge pages
 * are free (HugePages_Free; `make check` reserves some as root).
 */
bool test_vm_skip_without_huge_pages(uint64_t n);

/*
 * A VM not started yet, with its private temporary directory (the VM's working
 * directory). A guardian process kills the VM if the test program dies (a failed
 * assertion aborts it, so fixtures' teardown would not run).
 */
TestVm *test_vm_new(TestVmFlags flags);

/* Append arguments to the command line (NULL-terminated; copied). */
void test_vm_add_args(TestVm *vm, const char *first, ...) G_GNUC_NULL_TERMINATED;

/*
 * Append a small guest: "-accel kvm -m 64 -kernel PAYLOAD -append @append", or
 * for @accel "test" "-accel test -m 64 -append @append" (host threads play the
 * payload). @append: the payload's keys, "mem=8M" keeps the first sweep short.
 */
void test_vm_add_guest(TestVm *vm, const char *accel, const char *append);

/* "kvm" when /dev/kvm is usable, else "test": for tests of the monitor, not the accelerator. */
const char *test_vm_any_accel(void);

/* The private directory, and a path inside it (caller frees). */
const char *test_vm_dir(TestVm *vm);
char *test_vm_path(TestVm *vm, const char *name);

/*
 * Start frostvm (with "-display none", and unless the flags say otherwise
 * "-qmp unix:DIR/qmp.sock,server=on,wait=off -serial file:DIR/serial.log" before
 * the test's own arguments; stdout and stderr go to files in DIR), then wait for
 * the QMP socket and negotiate. Fails if the VM exits meanwhile, with its stderr.
 */
bool test_vm_launch(TestVm *vm, GError **errp);

/* test_vm_launch() or fail the test with the error. */
void test_vm_launch_or_fail(TestVm *vm);

/* The client connected at launch (owned by the VM), or NULL. */
QmpClient *test_vm_qmp(TestVm *vm);

/* Another client on the VM's QMP socket, negotiated if @negotiate (caller frees). */
QmpClient *test_vm_qmp_connect(TestVm *vm, bool negotiate, GError **errp);

/* The process id of the frostvm started by test_vm_launch(). */
pid_t test_vm_pid(TestVm *vm);

/* The write end of stdin (TEST_VM_STDIN_PIPE), or -1. test_vm_close_stdin() closes it. */
int test_vm_stdin_fd(TestVm *vm);
void test_vm_close_stdin(TestVm *vm);

/*
 * Wait until a complete line of @log after the log's cursor contains @needle,
 * at most @timeout_ms; the cursor moves past that line. @line_out (may be NULL)
 * gets the line without its end (caller frees). Fails with the log's tail if
 * the VM exits or the time is up.
 */
bool test_vm_wait_log(TestVm *vm, TestVmLog log, const char *needle, int timeout_ms,
                      char **line_out, GError **errp);

/* test_vm_wait_log() on the serial log. */
bool test_vm_wait_serial(TestVm *vm, const char *needle, int timeout_ms,
                         char **line_out, GError **errp);

/* Move @log's cursor to its end: later waits see only new lines. */
void test_vm_log_skip(TestVm *vm, TestVmLog log);

/* The whole of @log so far (caller frees; "" when it does not exist). */
char *test_vm_log_read(TestVm *vm, TestVmLog log);

/* Bytes in @log so far. */
gsize test_vm_log_size(TestVm *vm, TestVmLog log);

/* Wait for the next PROGRESS line on the serial log and parse it. */
bool test_vm_wait_progress(TestVm *vm, int timeout_ms, PayloadProgress *out,
                           GError **errp);

/*
 * Assert that @event is a QMP event named @name with a timestamp of now (within
 * a minute; microseconds below a million).
 */
void test_vm_assert_event(JsonObject *event, const char *name);

/*
 * Split "WORD key=value key2=value2 ..." into a table of keys to values
 * (words without '=' are left out; caller unrefs).
 */
GHashTable *test_vm_parse_keyvals(const char *line);

/*
 * Wait for the frostvm process to exit (at most @timeout_ms) and reap it.
 * @status gets the exit status, or 128 + the signal number.
 */
bool test_vm_wait_exit(TestVm *vm, int timeout_ms, int *status, GError **errp);

/* True while the frostvm process has not exited. */
bool test_vm_is_running(TestVm *vm);

/*
 * Kill @pid too when the VM is torn down or the test program dies (for a
 * -daemonize'd frostvm, which is not our child).
 */
void test_vm_guard_pid(TestVm *vm, pid_t pid);

/* Stop guarding @pid (it has exited): its number may be reused. */
void test_vm_unguard_pid(TestVm *vm, pid_t pid);

/*
 * Tear down: SIGTERM to every process still running, SIGKILL after a grace
 * period, close the clients, remove the directory.
 */
void test_vm_free(TestVm *vm);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TestVm, test_vm_free)

/* Fixture for g_test_add(): the teardown frees whatever VM the test made. */
typedef struct {
    TestVm *vm;
} TestVmFixture;

void test_vm_fixture_setup(TestVmFixture *f, gconstpointer data);
void test_vm_fixture_teardown(TestVmFixture *f, gconstpointer data);

#endif
