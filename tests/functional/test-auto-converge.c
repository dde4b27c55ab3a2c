/* SPDX-License-Identifier: GPL-2.0-or-later */
/* End-to-end auto-converge: a busy guest that outruns a slow precopy sink is throttled until it converges; cancel while throttled; the throttle's parameters and capability in both monitors. */
#include <signal.h>
#include <string.h>

#include "snapshot-e2e.h"
#include "vm-helper.h"

/* The payload's report interval (report_ms=) of the busy guests. */
#define AC_REPORT_MS 100
/* How often the test polls query-migrate: far more often than the throttle can change. */
#define AC_POLL_US (100 * 1000)
/*
 * The migrations here converge in about 10 s once throttled (test
 * accelerator: 50% after ~3 s, 70% after ~5 s, 90% after ~7 s); the bound
 * leaves room for a loaded machine.
 */
#define AC_CONVERGE_BOUND_MS 60000
/* Long enough for a throttled guest to have been slowed several times over. */
#define AC_THROTTLED_WAIT_MS 30000
/* Without the capability, the same migration is watched this long. */
#define AC_UNTHROTTLED_WINDOW_MS 10000

/* The aggressive throttle of the busy cases. */
#define AC_INITIAL 50
#define AC_INCREMENT 20
#define AC_THRESHOLD 50

/*
 * A busy guest and a sink that is too slow for it: every live pass finds
 * the whole swept range dirty again, so precopy never converges unless the
 * guest is slowed (the case without the capability shows it).
 */
typedef struct {
    const char *accel;        /* "kvm" or "test" */
    const char *ram_mb;
    const char *append;       /* the payload's keys (the test accelerator reads the same) */
    uint64_t sink_mib_s;      /* max-bandwidth */
} AcCase;

typedef struct {
    TestVm *src;
    TestVm *dst;
} AcFixture;

static void ac_setup(AcFixture *f, gconstpointer data)
{
    memset(f, 0, sizeof(*f));
}

static void ac_teardown(AcFixture *f, gconstpointer data)
{
    g_clear_pointer(&f->dst, test_vm_free);
    g_clear_pointer(&f->src, test_vm_free);
}

static bool case_skip(const AcCase *c)
{
    return !strcmp(c->accel, "kvm") && test_vm_skip_without_kvm();
}

/* ---- the guest ---- */

static TestVm *guest_new(const AcCase *c, bool kernel)
{
    TestVm *vm = test_vm_new(TEST_VM_DEFAULT);

    test_vm_add_args(vm, "-accel", c->accel, "-m", c->ram_mb, "-smp", "1", NULL);
    if (kernel && !strcmp(c->accel, "kvm")) {
        g_autofree char *payload = test_vm_payload_path();

        test_vm_add_args(vm, "-kernel", payload, NULL);
    }
    test_vm_add_args(vm, "-append", c->append, NULL);
    return vm;
}

static void assert_healthy(TestVm *vm, const PayloadProgress *p, const char *line)
{
    if (!p->regs_ok || p->errors || !payload_progress_csum_ok(p)) {
        g_autofree char *log = test_vm_log_read(vm, TEST_VM_LOG_SERIAL);

        g_error("unhealthy PROGRESS line (registers, errors or checksum): %s\nserial:\n%s",
                line, log);
    }
}

/* The next PROGRESS line within @timeout_ms; the guest's self-check must pass. */
static PayloadProgress progress(TestVm *vm, int timeout_ms)
{
    g_autofree char *line = NULL;
    g_autoptr(GError) err = NULL;
    PayloadProgress p;

    test_vm_wait_serial(vm, "PROGRESS ", timeout_ms, &line, &err);
    g_assert_no_error(err);
    g_assert_true(payload_parse_progress(line, &p, &err));
    assert_healthy(vm, &p, line);
    return p;
}

static int compare_u64(gconstpointer a, gconstpointer b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* The median of @rates (sorted in place); 0 for none. */
static uint64_t median(GArray *rates)
{
    if (!rates->len) {
        return 0;
    }
    g_array_sort(rates, compare_u64);
    return g_array_index(rates, uint64_t, rates->len / 2);
}

/* The median rate of the next @n PROGRESS lines. */
static uint64_t median_rate(TestVm *vm, unsigned n)
{
    g_autoptr(GArray) rates = g_array_new(FALSE, FALSE, sizeof(uint64_t));

    for (unsigned i = 0; i < n; i++) {
        PayloadProgress p = progress(vm, TEST_VM_TIMEOUT_MS);

        g_array_append_val(rates, p.rate);
    }
    return median(rates);
}

/*
 * The rates of the healthy PROGRESS lines written after byte @from of the
 * serial log, leaving out the first: it may count from before @from's
 * instant. @last (may be NULL) gets the last line.
 */
static GArray *rates_since(TestVm *vm, gsize from, PayloadProgress *last)
{
    g_autofree char *log = test_vm_log_read(vm, TEST_VM_LOG_SERIAL);
    GArray *rates = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    const char *start = log + MIN(from, strlen(log));
    const char *nl = strchr(start, '\n');
    g_auto(GStrv) lines = NULL;
    bool first = true;

    /* @from may fall inside a line. */
    if (!nl) {
        return rates;
    }
    lines = g_strsplit(nl + 1, "\n", -1);
    for (char **l = lines; *l && l[1]; l++) {     /* the last piece is not complete */
        g_autoptr(GError) err = NULL;
        PayloadProgress p;

        if (!strstr(*l, "PROGRESS ")) {
            continue;
        }
        if (!payload_parse_progress(*l, &p, &err)) {
            g_error("cannot parse '%s': %s", *l, err->message);
        }
        assert_healthy(vm, &p, *l);
        if (last) {
            *last = p;
        }
        if (first) {
            first = false;
            continue;
        }
        g_array_append_val(rates, p.rate);
    }
    return rates;
}

/* ---- migration ---- */

static const char *status_of(JsonObject *info)
{
    return json_object_get_string_member_with_default(info, "status", "none");
}

static bool status_is_final(const char *status)
{
    return !strcmp(status, "completed") || !strcmp(status, "failed") ||
           !strcmp(status, "cancelled");
}

/* query-migrate's cpu-throttle-percentage, 0 when absent (not throttling). */
static int64_t throttle_of(JsonObject *info)
{
    return json_object_get_int_member_with_default(info, "cpu-throttle-percentage", 0);
}

/* The sink's bandwidth and the throttle's parameters, through QMP. */
static void set_parameters(QmpClient *qmp, const AcCase *c, unsigned max_throttle)
{
    g_autofree char *args = g_strdup_printf(
        "{\"max-bandwidth\": %" G_GUINT64_FORMAT ", \"cpu-throttle-initial\": %u, "
        "\"cpu-throttle-increment\": %u, \"max-cpu-throttle\": %u, "
        "\"throttle-trigger-threshold\": %u}",
        c->sink_mib_s << 20, AC_INITIAL, AC_INCREMENT, max_throttle, AC_THRESHOLD);

    snap_qmp_do(qmp, "migrate-set-parameters", args);
}

static void enable_auto_converge(QmpClient *qmp)
{
    snap_qmp_do(qmp, "migrate-set-capabilities",
                "{\"capabilities\": [{\"capability\": \"auto-converge\", \"state\": true}]}");
}

/* Launch f->src, wait until every page of its range was written; returns its rate then. */
static uint64_t source_start(AcFixture *f, const AcCase *c)
{
    g_autoptr(GError) err = NULL;

    f->src = guest_new(c, true);
    test_vm_launch_or_fail(f->src);
    test_vm_wait_serial(f->src, "PAYLOAD READY", SNAP_TIMEOUT_MS, NULL, &err);
    g_assert_no_error(err);
    return median_rate(f->src, 5);
}

static void migrate_to_file(TestVm *src, const char *path)
{
    g_autofree char *uri = g_strdup_printf("exec:cat > %s", path);

    snap_migrate(test_vm_qmp(src), uri);
}

/*
 * A throttle percentage seen while active: at least the initial value, at
 * most the maximum, never lower than before, and reached from the initial
 * value by whole increments (or capped at the maximum).
 */
static void assert_throttle_step(int64_t pct, int64_t prev, int64_t max_throttle)
{
    if (pct < AC_INITIAL || pct > max_throttle || pct < prev ||
        ((pct - AC_INITIAL) % AC_INCREMENT && pct != max_throttle)) {
        g_error("cpu-throttle-percentage %" G_GINT64_FORMAT " after %" G_GINT64_FORMAT
                " (initial %d, increment %d, max %" G_GINT64_FORMAT ")", pct, prev,
                AC_INITIAL, AC_INCREMENT, max_throttle);
    }
}

/* HMP info migrate prints the throttle exactly while query-migrate has it. */
static void assert_info_migrate_throttle(QmpClient *qmp, bool throttling)
{
    g_autofree char *out = snap_hmp(qmp, "info migrate");
    const char *line = strstr(out, "cpu throttle percentage: ");

    if (throttling != (line != NULL)) {
        g_error("info migrate %s a throttle line:\n%s", line ? "has" : "lacks", out);
    }
    if (line) {
        int64_t pct = g_ascii_strtoll(line + strlen("cpu throttle percentage: "), NULL, 10);

        g_assert_cmpint(pct, >=, AC_INITIAL);
        g_assert_cmpint(pct, <=, 99);
    }
}

/* After the end of a migration: no throttle in either monitor. */
static void assert_not_throttling(QmpClient *qmp)
{
    g_autoptr(JsonObject) info = snap_query_migrate(qmp);

    g_assert_false(json_object_has_member(info, "cpu-throttle-percentage"));
    assert_info_migrate_throttle(qmp, false);
}

/*
 * Poll query-migrate until the throttle reaches @target percent (checking
 * each value seen), failing after @timeout_ms or if the migration ends.
 * @first_at (may be NULL) gets the serial log's size when throttling was
 * first seen.
 */
static void wait_throttle(TestVm *src, int64_t target, int64_t max_throttle, int timeout_ms,
                          gsize *first_at)
{
    QmpClient *qmp = test_vm_qmp(src);
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    int64_t prev = 0;

    for (;;) {
        g_autoptr(JsonObject) info = snap_query_migrate(qmp);
        int64_t pct = throttle_of(info);

        if (pct) {
            assert_throttle_step(pct, prev, max_throttle);
            if (!prev && first_at) {
                *first_at = test_vm_log_size(src, TEST_VM_LOG_SERIAL);
            }
            prev = pct;
            if (pct >= target) {
                return;
            }
        }
        if (status_is_final(status_of(info))) {
            g_error("the migration ended (%s) before the throttle reached %" G_GINT64_FORMAT
                    "%% (it was at %" G_GINT64_FORMAT "%%)", status_of(info), target, prev);
        }
        if (g_get_monotonic_time() > deadline) {
            g_error("the throttle was at %" G_GINT64_FORMAT "%%, not %" G_GINT64_FORMAT
                    "%%, after %d ms", prev, target, timeout_ms);
        }
        g_usleep(AC_POLL_US);
    }
}

/* migrate_cancel, and wait (polling) until the status is final; returns when it was. */
static gint64 cancel_and_wait(QmpClient *qmp)
{
    gint64 deadline = g_get_monotonic_time() + SNAP_TIMEOUT_MS * (gint64)1000;

    snap_qmp_do(qmp, "migrate_cancel", NULL);
    for (;;) {
        g_autoptr(JsonObject) info = snap_query_migrate(qmp);

        if (status_is_final(status_of(info))) {
            g_assert_cmpstr(status_of(info), ==, "cancelled");
            return g_get_monotonic_time();
        }
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(10 * 1000);
    }
}

/* ---- the busy scenarios ---- */

/*
 * With auto-converge and an aggressive throttle, the migration that cannot
 * converge otherwise completes within the bound; meanwhile query-migrate
 * shows the throttle from its initial value up and the guest's rate falls;
 * at the end the throttle is gone. The image loads in a new frostvm and the
 * guest runs on from it at full speed, its self-check passing.
 */
static void test_converges(AcFixture *f, gconstpointer data)
{
    const AcCase *c = data;
    g_autofree char *img = NULL;
    g_autofree char *load_uri = NULL;
    g_autofree char *out = NULL;
    g_autofree char *status = NULL;
    g_autoptr(GArray) throttled = NULL;
    gint64 start, deadline, elapsed_ms;
    int64_t pct = 0, max_seen = 0;
    gsize throttled_from = 0;
    uint64_t before, during, restored;
    PayloadProgress last = { 0 }, first;
    QmpClient *qmp;

    if (case_skip(c)) {
        return;
    }
    before = source_start(f, c);
    qmp = test_vm_qmp(f->src);
    set_parameters(qmp, c, 99);
    enable_auto_converge(qmp);
    img = test_vm_path(f->src, "vm_state");
    start = g_get_monotonic_time();
    deadline = start + AC_CONVERGE_BOUND_MS * (gint64)1000;
    migrate_to_file(f->src, img);
    for (;;) {
        g_autoptr(JsonObject) info = snap_query_migrate(qmp);

        g_clear_pointer(&status, g_free);
        status = g_strdup(status_of(info));
        if (status_is_final(status)) {
            break;
        }
        pct = throttle_of(info);
        if (pct) {
            assert_throttle_step(pct, max_seen, 99);
            if (!max_seen) {
                throttled_from = test_vm_log_size(f->src, TEST_VM_LOG_SERIAL);
                g_test_message("throttled at %" G_GINT64_FORMAT "%% after %" G_GINT64_FORMAT
                               " ms", pct, (g_get_monotonic_time() - start) / 1000);
                assert_info_migrate_throttle(qmp, true);
            }
            max_seen = pct;
        }
        if (g_get_monotonic_time() > deadline) {
            g_error("still %s after %d ms, throttle %" G_GINT64_FORMAT "%%", status,
                    AC_CONVERGE_BOUND_MS, pct);
        }
        g_usleep(AC_POLL_US);
    }
    elapsed_ms = (g_get_monotonic_time() - start) / 1000;
    if (strcmp(status, "completed")) {
        g_autoptr(JsonObject) info = snap_query_migrate(qmp);

        g_error("migration %s: %s", status,
                json_object_get_string_member_with_default(info, "error-desc", "(no reason)"));
    }
    g_test_message("completed in %" G_GINT64_FORMAT " ms, throttle up to %" G_GINT64_FORMAT
                   "%%", elapsed_ms, max_seen);
    g_assert_cmpint(max_seen, >=, AC_INITIAL);

    /* The guest ran slower while throttled. */
    throttled = rates_since(f->src, throttled_from, &last);
    during = median(throttled);
    g_test_message("rate before %" G_GUINT64_FORMAT ", throttled median %" G_GUINT64_FORMAT
                   " over %u lines", before, during, throttled->len);
    g_assert_cmpuint(throttled->len, >=, 3);
    g_assert_cmpuint(during, <=, before * 60 / 100);

    /* The end stopped the throttle; the source waits for its destination. */
    assert_not_throttling(qmp);
    out = snap_query_status(qmp);
    g_assert_cmpstr(out, ==, "postmigrate");
    g_clear_pointer(&out, g_free);
    if (snap_img_tool(&out, "check", img, NULL) != 0) {
        g_error("frostvm-img check %s failed:\n%s", img, out);
    }

    /* The image loads; the guest continues from the source's last steps at full speed. */
    load_uri = g_strdup_printf("file:%s", img);
    f->dst = guest_new(c, false);
    test_vm_add_args(f->dst, "-incoming", load_uri, NULL);
    test_vm_launch_or_fail(f->dst);
    first = progress(f->dst, SNAP_TIMEOUT_MS);
    g_assert_cmpuint(first.steps, >=, last.steps);
    /* Two whole sweeps: the guest checked every page it had before. */
    for (PayloadProgress p = first; p.sweep < first.sweep + 2; ) {
        p = progress(f->dst, SNAP_TIMEOUT_MS);
    }
    restored = median_rate(f->dst, 5);
    g_test_message("restored guest's rate %" G_GUINT64_FORMAT, restored);
    g_assert_cmpuint(restored, >=, before * 60 / 100);
    g_clear_pointer(&out, g_free);
    out = snap_query_status(test_vm_qmp(f->dst));
    g_assert_cmpstr(out, ==, "running");
    g_clear_pointer(&out, g_free);
    out = test_vm_log_read(f->dst, TEST_VM_LOG_SERIAL);
    g_assert_null(strstr(out, "PAYLOAD START"));
}

/*
 * migrate_cancel while throttled at max-cpu-throttle: the throttle stays at
 * its maximum until then, capabilities cannot change meanwhile; after the
 * cancel query-migrate has no throttle and the guest is back near its own
 * rate within a couple of seconds, and keeps running.
 */
static void test_cancel_while_throttled(AcFixture *f, gconstpointer data)
{
    const AcCase *c = data;
    /* Capped below where the guest would converge: the migration goes on until cancelled. */
    const int64_t max_throttle = AC_INITIAL + AC_INCREMENT / 2;
    g_autofree char *img = NULL;
    g_autofree char *out = NULL;
    g_autoptr(JsonObject) info = NULL;
    g_autoptr(GArray) after = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    uint64_t before, during, back;
    gint64 cancelled_at, hold_until;
    QmpClient *qmp;
    PayloadProgress p, prev;

    if (case_skip(c)) {
        return;
    }
    before = source_start(f, c);
    qmp = test_vm_qmp(f->src);
    set_parameters(qmp, c, (unsigned)max_throttle);
    enable_auto_converge(qmp);
    img = test_vm_path(f->src, "vm_state");
    migrate_to_file(f->src, img);
    wait_throttle(f->src, max_throttle, max_throttle, AC_THROTTLED_WAIT_MS, NULL);

    /* No capability changes while a migration runs (as QEMU). */
    out = snap_hmp(qmp, "migrate_set_capability auto-converge off");
    g_assert_cmpstr(out, ==, "Error: There's a migration process in progress\r\n");

    /* Held at the maximum while the guest runs slower; several raise points pass. */
    test_vm_log_skip(f->src, TEST_VM_LOG_SERIAL);
    during = median_rate(f->src, 30);
    info = snap_query_migrate(qmp);
    g_assert_cmpstr(status_of(info), ==, "active");
    g_assert_cmpint(throttle_of(info), ==, max_throttle);
    g_test_message("rate before %" G_GUINT64_FORMAT ", at %" G_GINT64_FORMAT "%% %"
                   G_GUINT64_FORMAT, before, max_throttle, during);
    g_assert_cmpuint(during, <=, before * 60 / 100);

    cancelled_at = cancel_and_wait(qmp);
    assert_not_throttling(qmp);
    g_clear_pointer(&out, g_free);
    out = snap_query_status(qmp);
    g_assert_cmpstr(out, ==, "running");

    /* Back near the rate before, within a couple of seconds; the first line may straddle. */
    test_vm_log_skip(f->src, TEST_VM_LOG_SERIAL);
    prev = progress(f->src, TEST_VM_TIMEOUT_MS);
    hold_until = cancelled_at + 2500 * (gint64)1000;
    for (unsigned i = 0; i < 5; i++) {
        p = progress(f->src, TEST_VM_TIMEOUT_MS);
        g_assert_cmpuint(p.steps, >, prev.steps);
        g_array_append_val(after, p.rate);
        prev = p;
    }
    g_assert_cmpint(g_get_monotonic_time(), <, hold_until);
    back = median(after);
    g_test_message("rate after the cancel %" G_GUINT64_FORMAT, back);
    g_assert_cmpuint(back, >=, before * 60 / 100);

    /* And it keeps running: a few more seconds of healthy, advancing lines. */
    for (unsigned i = 0; i < 20; i++) {
        p = progress(f->src, TEST_VM_TIMEOUT_MS);
        g_assert_cmpuint(p.steps, >, prev.steps);
        prev = p;
    }
    g_clear_pointer(&out, g_free);
    out = snap_query_status(qmp);
    g_assert_cmpstr(out, ==, "running");
}

/*
 * The control: the same guest, sink and parameters without the capability
 * never throttle and do not converge in a window longer than the throttled
 * case needs to reach 90%.
 */
static void test_off_does_not_converge(AcFixture *f, gconstpointer data)
{
    const AcCase *c = data;
    g_autofree char *img = NULL;
    g_autofree char *out = NULL;
    g_autoptr(GArray) rates = NULL;
    g_autoptr(JsonObject) info = NULL;
    gint64 end;
    gsize from;
    uint64_t before, during;
    QmpClient *qmp;

    if (case_skip(c)) {
        return;
    }
    before = source_start(f, c);
    qmp = test_vm_qmp(f->src);
    set_parameters(qmp, c, 99);
    img = test_vm_path(f->src, "vm_state");
    from = test_vm_log_size(f->src, TEST_VM_LOG_SERIAL);
    migrate_to_file(f->src, img);
    end = g_get_monotonic_time() + AC_UNTHROTTLED_WINDOW_MS * (gint64)1000;
    while (g_get_monotonic_time() < end) {
        g_autoptr(JsonObject) now = snap_query_migrate(qmp);

        if (strcmp(status_of(now), "active") && strcmp(status_of(now), "setup")) {
            g_error("without auto-converge the migration ended (%s): the sink is not slow "
                    "enough for this test", status_of(now));
        }
        g_assert_false(json_object_has_member(now, "cpu-throttle-percentage"));
        g_usleep(AC_POLL_US);
    }
    info = snap_query_migrate(qmp);
    g_assert_cmpstr(status_of(info), ==, "active");
    /* Many passes, each finding the range dirty again. */
    g_assert_cmpint(json_object_get_int_member(json_object_get_object_member(info, "ram"),
                                               "dirty-sync-count"), >=, 4);
    rates = rates_since(f->src, from, NULL);
    during = median(rates);
    g_test_message("rate before %" G_GUINT64_FORMAT ", during %" G_GUINT64_FORMAT, before,
                   during);
    g_assert_cmpuint(during, >=, before * 60 / 100);
    (void)cancel_and_wait(qmp);
    assert_not_throttling(qmp);
    out = snap_query_status(qmp);
    g_assert_cmpstr(out, ==, "running");
}

/* ---- the monitors ---- */

/* A small guest for the monitor cases (the accelerator does not matter). */
static QmpClient *monitor_start(AcFixture *f)
{
    g_autoptr(GError) err = NULL;
    PayloadProgress p;

    f->src = test_vm_new(TEST_VM_DEFAULT);
    test_vm_add_guest(f->src, test_vm_any_accel(), "mem=8M report_ms=50");
    test_vm_launch_or_fail(f->src);
    test_vm_wait_progress(f->src, TEST_VM_TIMEOUT_MS, &p, &err);
    g_assert_no_error(err);
    return test_vm_qmp(f->src);
}

static void hmp_is(QmpClient *qmp, const char *line, const char *expected)
{
    g_autofree char *out = snap_hmp(qmp, line);

    if (strcmp(out, expected)) {
        g_error("HMP '%s' printed '%s', not '%s'", line, out, expected);
    }
}

static void hmp_has(QmpClient *qmp, const char *line, const char *part)
{
    g_autofree char *out = snap_hmp(qmp, line);

    if (!strstr(out, part)) {
        g_error("HMP '%s' printed '%s', which lacks '%s'", line, out, part);
    }
}

/* The five lines of info migrate_parameters, as they should read. */
static void assert_hmp_throttle_parameters(QmpClient *qmp, unsigned initial,
                                           unsigned increment, bool tailslow,
                                           unsigned max_throttle, unsigned threshold)
{
    g_autofree char *want = g_strdup_printf(
        "throttle-trigger-threshold: %u\r\n"
        "cpu-throttle-initial: %u\r\ncpu-throttle-increment: %u\r\n"
        "cpu-throttle-tailslow: %s\r\nmax-cpu-throttle: %u\r\n",
        threshold, initial, increment, tailslow ? "on" : "off", max_throttle);

    hmp_has(qmp, "info migrate_parameters", want);
}

/* query-migrate-parameters agrees. */
static void assert_qmp_throttle_parameters(QmpClient *qmp, unsigned initial,
                                           unsigned increment, bool tailslow,
                                           unsigned max_throttle, unsigned threshold)
{
    g_autoptr(JsonNode) r = snap_qmp_ok(qmp, "query-migrate-parameters", NULL);
    JsonObject *o = json_node_get_object(r);

    g_assert_cmpint(json_object_get_int_member(o, "cpu-throttle-initial"), ==, initial);
    g_assert_cmpint(json_object_get_int_member(o, "cpu-throttle-increment"), ==, increment);
    g_assert_cmpint(json_object_get_boolean_member(o, "cpu-throttle-tailslow"), ==, tailslow);
    g_assert_cmpint(json_object_get_int_member(o, "max-cpu-throttle"), ==, max_throttle);
    g_assert_cmpint(json_object_get_int_member(o, "throttle-trigger-threshold"), ==,
                    threshold);
}

/* A refused HMP line: its error, and info migrate_parameters exactly as before. */
static void hmp_refused(QmpClient *qmp, const char *line, const char *error)
{
    g_autofree char *before = snap_hmp(qmp, "info migrate_parameters");
    g_autofree char *want = g_strdup_printf("Error: %s\r\n", error);
    g_autofree char *after = NULL;

    hmp_is(qmp, line, want);
    after = snap_hmp(qmp, "info migrate_parameters");
    g_assert_cmpstr(after, ==, before);
}

/*
 * HMP migrate_set_parameter for each throttle parameter, read back by info
 * migrate_parameters (and query-migrate-parameters); the range ends; values
 * out of range, not numbers or missing give an error naming the parameter and
 * change nothing.
 */
static void test_hmp_parameters(AcFixture *f, gconstpointer data)
{
    static const struct {
        const char *line;
        const char *error;
    } refused[] = {
        { "migrate_set_parameter cpu-throttle-initial 0",
          "Parameter 'cpu_throttle_initial' expects an integer in the range of 1 to 99" },
        { "migrate_set_parameter cpu-throttle-initial 100",
          "Parameter 'cpu_throttle_initial' expects an integer in the range of 1 to 99" },
        { "migrate_set_parameter cpu-throttle-increment 0",
          "Parameter 'cpu_throttle_increment' expects an integer in the range of 1 to 99" },
        { "migrate_set_parameter cpu-throttle-increment 100",
          "Parameter 'cpu_throttle_increment' expects an integer in the range of 1 to 99" },
        { "migrate_set_parameter max-cpu-throttle 0",
          "Parameter 'max_cpu_throttle' expects an integer in the range of "
          "cpu_throttle_initial to 99" },
        { "migrate_set_parameter max-cpu-throttle 100",
          "Parameter 'max_cpu_throttle' expects an integer in the range of "
          "cpu_throttle_initial to 99" },
        { "migrate_set_parameter cpu-throttle-initial 95",
          "Parameter 'max_cpu_throttle' expects an integer in the range of "
          "cpu_throttle_initial to 99" },
        { "migrate_set_parameter throttle-trigger-threshold 0",
          "Parameter 'throttle_trigger_threshold' expects an integer in the range of 1 to 100" },
        { "migrate_set_parameter throttle-trigger-threshold 101",
          "Parameter 'throttle_trigger_threshold' expects an integer in the range of 1 to 100" },
        { "migrate_set_parameter cpu-throttle-initial 18446744073709551616",
          "Parameter 'cpu_throttle_initial' expects an integer in the range of 1 to 99" },
        { "migrate_set_parameter cpu-throttle-initial abc",
          "Parameter 'cpu-throttle-initial' expects uint8" },
        { "migrate_set_parameter cpu-throttle-increment -5",
          "Parameter 'cpu-throttle-increment' expects uint8" },
        { "migrate_set_parameter max-cpu-throttle 12abc",
          "Parameter 'max-cpu-throttle' expects uint8" },
        { "migrate_set_parameter throttle-trigger-threshold 1.5",
          "Parameter 'throttle-trigger-threshold' expects uint8" },
    };
    QmpClient *qmp = monitor_start(f);
    g_autofree char *out = NULL;

    /* QEMU's defaults. */
    assert_hmp_throttle_parameters(qmp, 20, 10, false, 99, 50);

    hmp_is(qmp, "migrate_set_parameter cpu-throttle-initial 35", "");
    hmp_is(qmp, "migrate_set_parameter cpu-throttle-increment 15", "");
    hmp_is(qmp, "migrate_set_parameter cpu-throttle-tailslow on", "");
    hmp_is(qmp, "migrate_set_parameter max-cpu-throttle 80", "");
    hmp_is(qmp, "migrate_set_parameter throttle-trigger-threshold 40", "");
    assert_hmp_throttle_parameters(qmp, 35, 15, true, 80, 40);
    assert_qmp_throttle_parameters(qmp, 35, 15, true, 80, 40);

    /* The ends of each range. */
    hmp_is(qmp, "migrate_set_parameter cpu-throttle-initial 1", "");
    hmp_is(qmp, "migrate_set_parameter cpu-throttle-increment 99", "");
    hmp_is(qmp, "migrate_set_parameter max-cpu-throttle 99", "");
    hmp_is(qmp, "migrate_set_parameter throttle-trigger-threshold 100", "");
    hmp_is(qmp, "migrate_set_parameter cpu-throttle-tailslow off", "");
    assert_hmp_throttle_parameters(qmp, 1, 99, false, 99, 100);
    hmp_is(qmp, "migrate_set_parameter cpu-throttle-initial 99", "");
    hmp_is(qmp, "migrate_set_parameter cpu-throttle-increment 1", "");
    hmp_is(qmp, "migrate_set_parameter throttle-trigger-threshold 1", "");
    assert_hmp_throttle_parameters(qmp, 99, 1, false, 99, 1);
    assert_qmp_throttle_parameters(qmp, 99, 1, false, 99, 1);
    /* As QEMU: the maximum may not be under the start, checked on the values as they would be. */
    hmp_refused(qmp, "migrate_set_parameter max-cpu-throttle 98",
                "Parameter 'max_cpu_throttle' expects an integer in the range of "
                "cpu_throttle_initial to 99");
    hmp_is(qmp, "migrate_set_parameter cpu-throttle-initial 1", "");
    hmp_is(qmp, "migrate_set_parameter max-cpu-throttle 1", "");
    assert_hmp_throttle_parameters(qmp, 1, 1, false, 1, 1);
    assert_qmp_throttle_parameters(qmp, 1, 1, false, 1, 1);
    hmp_refused(qmp, "migrate_set_parameter cpu-throttle-initial 2",
                "Parameter 'max_cpu_throttle' expects an integer in the range of "
                "cpu_throttle_initial to 99");

    hmp_is(qmp, "migrate_set_parameter max-cpu-throttle 90", "");
    hmp_is(qmp, "migrate_set_parameter cpu-throttle-initial 30", "");
    hmp_is(qmp, "migrate_set_parameter cpu-throttle-increment 25", "");
    hmp_is(qmp, "migrate_set_parameter throttle-trigger-threshold 60", "");
    for (guint i = 0; i < G_N_ELEMENTS(refused); i++) {
        hmp_refused(qmp, refused[i].line, refused[i].error);
    }
    /* QEMU's other words for on and off, and its 0x and 0 prefixes. */
    hmp_is(qmp, "migrate_set_parameter cpu-throttle-tailslow yes", "");
    hmp_is(qmp, "migrate_set_parameter cpu-throttle-initial 0x20", "");
    assert_hmp_throttle_parameters(qmp, 32, 25, true, 90, 60);
    hmp_is(qmp, "migrate_set_parameter cpu-throttle-tailslow false", "");
    hmp_is(qmp, "migrate_set_parameter cpu-throttle-initial 036", "");
    assert_hmp_throttle_parameters(qmp, 30, 25, false, 90, 60);
    /* Not on or off: refused, whatever the wording, and nothing changes. */
    g_clear_pointer(&out, g_free);
    out = snap_hmp(qmp, "migrate_set_parameter cpu-throttle-tailslow maybe");
    if (!g_str_has_prefix(out, "Error: Parameter 'cpu-throttle-tailslow' expects 'on' or 'off'")) {
        g_error("cpu-throttle-tailslow maybe: '%s'", out);
    }
    g_clear_pointer(&out, g_free);
    out = snap_hmp(qmp, "migrate_set_parameter cpu-throttle-initial");
    g_assert_true(g_str_has_prefix(out, "migrate_set_parameter: missing argument 'value'"));
    assert_hmp_throttle_parameters(qmp, 30, 25, false, 90, 60);
    assert_qmp_throttle_parameters(qmp, 30, 25, false, 90, 60);
}

/* An error reply to @command with @args_json, of class GenericError, containing @part. */
static void qmp_refused(QmpClient *qmp, const char *command, const char *args_json,
                        const char *part)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) r = qmp_client_execute_json(qmp, command, args_json, &err);

    if (r) {
        g_error("%s %s was accepted", command, args_json);
    }
    g_assert_error(err, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_REPLY);
    g_assert_cmpstr(qmp_client_last_error_class(qmp), ==, "GenericError");
    if (!strstr(err->message, part)) {
        g_error("%s %s: '%s' lacks '%s'", command, args_json, err->message, part);
    }
}

/*
 * QMP migrate-set-parameters: cpu-throttle-tailslow true and false; several
 * values at once; one bad value refuses them all, with the parameter named.
 */
static void test_qmp_parameters(AcFixture *f, gconstpointer data)
{
    QmpClient *qmp = monitor_start(f);

    snap_qmp_do(qmp, "migrate-set-parameters", "{\"cpu-throttle-tailslow\": true}");
    assert_qmp_throttle_parameters(qmp, 20, 10, true, 99, 50);
    assert_hmp_throttle_parameters(qmp, 20, 10, true, 99, 50);

    snap_qmp_do(qmp, "migrate-set-parameters",
                "{\"cpu-throttle-initial\": 45, \"cpu-throttle-increment\": 5, "
                "\"max-cpu-throttle\": 95, \"throttle-trigger-threshold\": 70, "
                "\"cpu-throttle-tailslow\": false}");
    assert_qmp_throttle_parameters(qmp, 45, 5, false, 95, 70);
    assert_hmp_throttle_parameters(qmp, 45, 5, false, 95, 70);

    /* All or nothing: the good values beside a bad one are not taken either. */
    qmp_refused(qmp, "migrate-set-parameters",
                "{\"cpu-throttle-initial\": 60, \"cpu-throttle-tailslow\": true, "
                "\"max-cpu-throttle\": 100}",
                "Parameter 'max_cpu_throttle' expects an integer in the range of "
                "cpu_throttle_initial to 99");
    qmp_refused(qmp, "migrate-set-parameters", "{\"cpu-throttle-initial\": 96}",
                "Parameter 'max_cpu_throttle' expects an integer in the range of "
                "cpu_throttle_initial to 99");
    qmp_refused(qmp, "migrate-set-parameters",
                "{\"cpu-throttle-increment\": 0}",
                "Parameter 'cpu_throttle_increment' expects an integer in the range of 1 to 99");
    qmp_refused(qmp, "migrate-set-parameters",
                "{\"throttle-trigger-threshold\": 101}",
                "Parameter 'throttle_trigger_threshold' expects an integer in the range of 1 "
                "to 100");
    /* QEMU's uint8: beyond 255 (or negative) the type refuses, before the range. */
    qmp_refused(qmp, "migrate-set-parameters", "{\"cpu-throttle-initial\": 255}",
                "Parameter 'cpu_throttle_initial' expects an integer in the range of 1 to 99");
    qmp_refused(qmp, "migrate-set-parameters", "{\"cpu-throttle-initial\": 256}",
                "Parameter 'cpu-throttle-initial' expects uint8_t");
    qmp_refused(qmp, "migrate-set-parameters", "{\"cpu-throttle-initial\": -1}",
                "Parameter 'cpu-throttle-initial' expects uint8_t");
    qmp_refused(qmp, "migrate-set-parameters", "{\"cpu-throttle-initial\": \"50\"}",
                "Parameter 'cpu-throttle-initial' expects uint64");
    qmp_refused(qmp, "migrate-set-parameters", "{\"cpu-throttle-tailslow\": \"yes\"}",
                "cpu-throttle-tailslow");
    assert_qmp_throttle_parameters(qmp, 45, 5, false, 95, 70);
    assert_hmp_throttle_parameters(qmp, 45, 5, false, 95, 70);
}

/* query-migrate-capabilities' state of @name. */
static bool capability_state(QmpClient *qmp, const char *name)
{
    g_autoptr(JsonNode) r = snap_qmp_ok(qmp, "query-migrate-capabilities", NULL);
    JsonArray *list = json_node_get_array(r);

    for (guint i = 0; i < json_array_get_length(list); i++) {
        JsonObject *o = json_array_get_object_element(list, i);

        if (!strcmp(json_object_get_string_member(o, "capability"), name)) {
            return json_object_get_boolean_member(o, "state");
        }
    }
    g_error("query-migrate-capabilities lacks %s", name);
}

static void set_capabilities(QmpClient *qmp, bool auto_converge, bool background_snapshot)
{
    g_autofree char *args = g_strdup_printf(
        "{\"capabilities\": [{\"capability\": \"auto-converge\", \"state\": %s}, "
        "{\"capability\": \"background-snapshot\", \"state\": %s}]}",
        auto_converge ? "true" : "false", background_snapshot ? "true" : "false");

    snap_qmp_do(qmp, "migrate-set-capabilities", args);
}

static void assert_capabilities(QmpClient *qmp, bool auto_converge, bool background_snapshot)
{
    g_assert_cmpint(capability_state(qmp, "auto-converge"), ==, auto_converge);
    g_assert_cmpint(capability_state(qmp, "background-snapshot"), ==, background_snapshot);
}

/*
 * With one of the two on (auto-converge if @auto_converge_first), turning
 * the other on is refused by both monitors with @conflict, and changes nothing.
 */
static void assert_second_refused(QmpClient *qmp, bool auto_converge_first,
                                  const char *conflict, const char *hmp_error)
{
    const char *second = auto_converge_first ? "background-snapshot" : "auto-converge";
    g_autofree char *args = g_strdup_printf(
        "{\"capabilities\": [{\"capability\": \"%s\", \"state\": true}]}", second);
    g_autofree char *hmp = g_strdup_printf("migrate_set_capability %s on", second);
    g_autofree char *info = g_strdup_printf("%s: off\r\n", second);

    set_capabilities(qmp, auto_converge_first, !auto_converge_first);
    qmp_refused(qmp, "migrate-set-capabilities", args, conflict);
    assert_capabilities(qmp, auto_converge_first, !auto_converge_first);
    hmp_is(qmp, hmp, hmp_error);
    assert_capabilities(qmp, auto_converge_first, !auto_converge_first);
    hmp_has(qmp, "info migrate_capabilities", info);
}

/*
 * auto-converge and background-snapshot exclude each other, whichever comes
 * first, through QMP and HMP, and together in one command; the refused one
 * stays off and the other stays on.
 */
static void test_refused_beside_background_snapshot(AcFixture *f, gconstpointer data)
{
    static const char *const conflict =
        "Background-snapshot is not compatible with auto-converge";
    g_autofree char *hmp_error = g_strdup_printf("Error: %s\r\n", conflict);
    QmpClient *qmp = monitor_start(f);

    assert_second_refused(qmp, false, conflict, hmp_error);
    assert_second_refused(qmp, true, conflict, hmp_error);

    /* Both at once, from both off: neither is taken. */
    set_capabilities(qmp, false, false);
    qmp_refused(qmp, "migrate-set-capabilities",
                "{\"capabilities\": [{\"capability\": \"background-snapshot\", "
                "\"state\": true}, {\"capability\": \"auto-converge\", \"state\": true}]}",
                conflict);
    assert_capabilities(qmp, false, false);

    /* Swapping one for the other in one command is fine. */
    set_capabilities(qmp, true, false);
    set_capabilities(qmp, false, true);
    assert_capabilities(qmp, false, true);
    hmp_is(qmp, "migrate_set_capability background-snapshot off", "");
    hmp_is(qmp, "migrate_set_capability auto-converge on", "");
    assert_capabilities(qmp, true, false);
}

/* ---- the table ---- */

#define AC_APPEND(mem) "mem=" mem " order=seq report_ms=" G_STRINGIFY(AC_REPORT_MS)

/*
 * The test accelerator's writer at its default pace (the benchmarks' guests)
 * dirties about 350 MiB/s; a 64 MiB/s sink takes a second per pass over the
 * 64 MiB range and finds all of it dirty again. Only at 90% does the guest
 * dirty less than the sink drains.
 */
static const AcCase test_seq = { "test", "512", AC_APPEND("64M"), 64 };
/*
 * The payload under KVM makes 20,000-27,000 steps/s (docs/test-payload.md),
 * 80-100 MiB/s: the same proportions with a 16 MiB range and a 16 MiB/s sink.
 */
static const AcCase kvm_seq = { "kvm", "512", AC_APPEND("16M"), 16 };

static void add(const char *path, const AcCase *c, void (*fn)(AcFixture *, gconstpointer))
{
    g_autofree char *full = g_strconcat("/auto-converge/", path, NULL);

    g_test_add(full, AcFixture, c, ac_setup, fn, ac_teardown);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    signal(SIGPIPE, SIG_IGN);

    add("test-accel/converges-and-restores", &test_seq, test_converges);
    add("test-accel/cancel-while-throttled", &test_seq, test_cancel_while_throttled);
    add("test-accel/off-does-not-converge", &test_seq, test_off_does_not_converge);
    add("kvm/converges-and-restores", &kvm_seq, test_converges);
    add("kvm/cancel-while-throttled", &kvm_seq, test_cancel_while_throttled);
    add("kvm/off-does-not-converge", &kvm_seq, test_off_does_not_converge);
    add("monitor/hmp-parameters", NULL, test_hmp_parameters);
    add("monitor/qmp-parameters", NULL, test_qmp_parameters);
    add("monitor/refused-beside-background-snapshot", NULL,
        test_refused_beside_background_snapshot);
    return g_test_run();
}
