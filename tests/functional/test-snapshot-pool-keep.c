/* SPDX-License-Identifier: GPL-2.0-or-later */
/* End-to-end: a snapshot's buffer pool kept for the next one (background-snapshot-buffer-keep), on KVM and -accel test. */
#include <string.h>

#include "snapshot-e2e.h"
#include "vm-helper.h"

#define K_TIMEOUT_MS 30000
#define K_RAM_MB "256"
#define K_RAM_BYTES (256ull << 20)

typedef struct {
    const char *accel;     /* "kvm" or "test" */
    const char *append;
} KeepCase;

typedef struct {
    TestVm *vm;
} KeepFixture;

static void k_setup(KeepFixture *f, gconstpointer data)
{
    memset(f, 0, sizeof(*f));
}

static void k_teardown(KeepFixture *f, gconstpointer data)
{
    g_clear_pointer(&f->vm, test_vm_free);
}

/* The guest booted, past its first report; its QMP client. */
static QmpClient *guest_start(KeepFixture *f, const KeepCase *c)
{
    g_autoptr(GError) err = NULL;

    f->vm = snap_guest_new(c->accel, K_RAM_MB, c->append, true);
    test_vm_launch_or_fail(f->vm);
    test_vm_wait_serial(f->vm, "PAYLOAD READY", K_TIMEOUT_MS, NULL, &err);
    g_assert_no_error(err);
    (void)snap_progress_healthy(f->vm, K_TIMEOUT_MS);
    return test_vm_qmp(f->vm);
}

static JsonObject *parameters(QmpClient *qmp)
{
    g_autoptr(JsonNode) node = snap_qmp_ok(qmp, "query-migrate-parameters", NULL);

    return json_object_ref(json_node_get_object(node));
}

/*
 * One snapshot to @name, checked offline (the payload at one instant);
 * returns buffer-pool-reused, which must be within the pool.
 */
static gint64 snapshot(TestVm *vm, const char *name)
{
    QmpClient *qmp = test_vm_qmp(vm);
    g_autofree char *path = test_vm_path(vm, name);
    g_autofree char *raw = g_strconcat(path, ".raw", NULL);
    g_autofree char *uri = g_strconcat("file:", path, NULL);
    g_autoptr(JsonObject) info = NULL;
    JsonObject *bg;

    snap_drop_migration_events(qmp);
    snap_migrate(qmp, uri);
    snap_wait_completed(qmp);
    SnapImage img = snap_image_check(path, raw, K_RAM_BYTES, 1);
    snap_check_figures(qmp, &img.info);
    info = snap_query_migrate(qmp);
    bg = json_object_get_object_member(info, "background-snapshot");
    g_assert_true(json_object_has_member(bg, "buffer-pool-reused"));
    gint64 reused = json_object_get_int_member(bg, "buffer-pool-reused");
    g_assert_cmpint(reused, >=, 0);
    g_assert_cmpint(reused, <=, json_object_get_int_member(bg, "buffer-pool-size"));
    (void)snap_progress_healthy(vm, K_TIMEOUT_MS);
    return reused;
}

/*
 * The first snapshot populates its pool; the next one, within the keep,
 * finds it resident; with the keep set to 0 the pool is given back at once
 * and the next snapshot populates anew. Every image is exact.
 */
static void test_kept_between_snapshots(KeepFixture *f, gconstpointer data)
{
    const KeepCase *c = data;
    g_autoptr(JsonObject) params = NULL;
    QmpClient *qmp;

    if (!strcmp(c->accel, "kvm") && test_vm_skip_without_kvm()) {
        return;
    }
    qmp = guest_start(f, c);
    snap_enable(qmp);

    params = parameters(qmp);
    g_assert_cmpint(json_object_get_int_member(params, "background-snapshot-buffer-keep"), ==,
                    30000);
    g_assert_cmpint(snapshot(f->vm, "first"), ==, 0);
    /* The payload has written its 64 MiB: the pool was populated and is kept. */
    g_assert_cmpint(snapshot(f->vm, "second"), >, 0);

    snap_qmp_do(qmp, "migrate-set-parameters", "{\"background-snapshot-buffer-keep\": 0}");
    g_clear_pointer(&params, json_object_unref);
    params = parameters(qmp);
    g_assert_cmpint(json_object_get_int_member(params, "background-snapshot-buffer-keep"), ==, 0);
    g_assert_cmpint(snapshot(f->vm, "third"), ==, 0);
    g_assert_cmpint(snapshot(f->vm, "fourth"), ==, 0);

    /* HMP sets and shows it too. */
    g_autofree char *set = snap_hmp(qmp,
                                    "migrate_set_parameter background-snapshot-buffer-keep 5000");
    g_assert_cmpstr(set, ==, "");
    g_autofree char *shown = snap_hmp(qmp, "info migrate_parameters");
    g_assert_nonnull(strstr(shown, "background-snapshot-buffer-keep: 5000 ms"));
    g_assert_cmpint(snapshot(f->vm, "fifth"), ==, 0);
    g_assert_cmpint(snapshot(f->vm, "sixth"), >, 0);
    snap_assert_serial_clean(f->vm);
}

/* Out of range: refused with the range, the value unchanged. */
static void test_keep_bounds(KeepFixture *f, gconstpointer data)
{
    const KeepCase *c = data;
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) params = NULL;
    QmpClient *qmp;

    qmp = guest_start(f, c);
    g_autoptr(JsonNode) reply = NULL;
    reply = qmp_client_execute_json(qmp, "migrate-set-parameters",
                                    "{\"background-snapshot-buffer-keep\": 86400001}", &err);
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err->message, "0 to 86400000 milliseconds"));
    params = parameters(qmp);
    g_assert_cmpint(json_object_get_int_member(params, "background-snapshot-buffer-keep"), ==,
                    30000);
}

static const KeepCase keep_test = { "test", "mem=64M" };
static const KeepCase keep_kvm = { "kvm", "mem=64M" };

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add("/snapshot-pool-keep/test/kept", KeepFixture, &keep_test, k_setup,
               test_kept_between_snapshots, k_teardown);
    g_test_add("/snapshot-pool-keep/kvm/kept", KeepFixture, &keep_kvm, k_setup,
               test_kept_between_snapshots, k_teardown);
    g_test_add("/snapshot-pool-keep/test/bounds", KeepFixture, &keep_test, k_setup,
               test_keep_bounds, k_teardown);
    return g_test_run();
}
