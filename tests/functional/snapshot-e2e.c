/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Helpers of the background snapshot end-to-end test: QMP commands and figures, offline image checks, a unix: socket reader. */
#include "snapshot-e2e.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "vm-helper.h"

static char *img_tool_path(void)
{
    const char *set = g_getenv("FROSTVM_IMG");
    g_autofree char *self = NULL;
    g_autofree char *dir = NULL;

    if (set && *set) {
        return g_strdup(set);
    }
    self = g_file_read_link("/proc/self/exe", NULL);
    dir = g_path_get_dirname(self ? self : ".");
    return g_build_filename(dir, "..", "..", "frostvm-img", NULL);
}

/* Run frostvm-img with @args; returns its exit status, output in *@out (may be NULL). */
int snap_img_tool(char **out, const char *first, ...)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *o = NULL;
    g_autofree char *e = NULL;
    g_autoptr(GError) err = NULL;
    va_list ap;
    int status;

    g_ptr_array_add(argv, img_tool_path());
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        g_ptr_array_add(argv, g_strdup(a));
    }
    va_end(ap);
    g_ptr_array_add(argv, NULL);
    if (!g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL, &o, &e,
                      &status, &err)) {
        g_error("cannot run frostvm-img: %s", err->message);
    }
    if (out) {
        *out = g_strconcat(o, e, NULL);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

SnapImageInfo snap_image_info(const char *path)
{
    g_autofree char *out = NULL;
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) err = NULL;
    int status = snap_img_tool(&out, "info", "--output=json", path, NULL);
    JsonObject *o, *machine;
    SnapImageInfo info;

    if (status != 0 || !json_parser_load_from_data(parser, out, -1, &err)) {
        g_error("frostvm-img info %s: status %d: %s", path, status, out);
    }
    o = json_node_get_object(json_parser_get_root(parser));
    machine = json_object_get_object_member(o, "machine");
    info = (SnapImageInfo) {
        .file_size = json_object_get_int_member(o, "file-size"),
        .stream_length = json_object_get_int_member(o, "stream-length"),
        .ram_size = json_object_get_int_member(machine, "ram-size"),
        .data_pages = json_object_get_int_member(o, "data-pages"),
        .zero_pages = json_object_get_int_member(o, "zero-pages"),
        .repeated_pages = json_object_get_int_member(o, "repeated-pages"),
        .vcpus = json_object_get_int_member(machine, "vcpus"),
        .valid = json_object_get_boolean_member(o, "valid"),
        .background = strstr(json_object_get_string_member(o, "stream-flags"),
                              "background-snapshot") != NULL,
    };
    return info;
}

JsonNode *snap_qmp_ok(QmpClient *c, const char *command, const char *args_json)
{
    g_autoptr(GError) err = NULL;
    JsonNode *ret = qmp_client_execute_json(c, command, args_json, &err);

    if (!ret) {
        g_error("%s %s: %s", command, args_json ? args_json : "", err->message);
    }
    return ret;
}

void snap_qmp_do(QmpClient *c, const char *command, const char *args_json)
{
    json_node_unref(snap_qmp_ok(c, command, args_json));
}

char *snap_hmp(QmpClient *c, const char *line)
{
    g_autoptr(GError) err = NULL;
    char *out = qmp_client_hmp(c, line, &err);

    g_assert_no_error(err);
    return out;
}

void snap_enable(QmpClient *c)
{
    snap_qmp_do(c, "migrate-set-capabilities",
           "{\"capabilities\": [{\"capability\": \"background-snapshot\", \"state\": true}]}");
}

void snap_migrate(QmpClient *c, const char *uri)
{
    g_autofree char *args = g_strdup_printf("{\"uri\": \"%s\"}", uri);

    snap_qmp_do(c, "migrate", args);
}

JsonObject *snap_query_migrate(QmpClient *c)
{
    g_autoptr(JsonNode) r = snap_qmp_ok(c, "query-migrate", NULL);

    return json_object_ref(json_node_get_object(r));
}

char *snap_query_status(QmpClient *c)
{
    g_autoptr(JsonNode) r = snap_qmp_ok(c, "query-status", NULL);

    return g_strdup(json_object_get_string_member(json_node_get_object(r), "status"));
}

/* The final status of the running migration, from its MIGRATION events. */
char *snap_wait_migration_end(QmpClient *c)
{
    for (;;) {
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonObject) ev = qmp_client_wait_event(c, "MIGRATION", SNAP_TIMEOUT_MS, &err);
        const char *status;

        g_assert_no_error(err);
        status = json_object_get_string_member(json_object_get_object_member(ev, "data"),
                                               "status");
        if (!strcmp(status, "completed") || !strcmp(status, "failed") ||
            !strcmp(status, "cancelled")) {
            return g_strdup(status);
        }
    }
}

void snap_wait_completed(QmpClient *c)
{
    g_autofree char *status = snap_wait_migration_end(c);

    if (strcmp(status, "completed")) {
        g_autoptr(JsonObject) info = snap_query_migrate(c);
        g_error("snapshot %s: %s", status,
                json_object_get_string_member_with_default(info, "error-desc", "(no reason)"));
    }
}

/*
 * The figures of a finished snapshot: QEMU's fields agree with the image, and
 * the background-snapshot object is sane. Returns ram.transferred.
 */
uint64_t snap_check_figures(QmpClient *c, const SnapImageInfo *img)
{
    g_autoptr(JsonObject) info = snap_query_migrate(c);
    JsonObject *ram, *bs;
    int64_t p50, p99, p999, max, downtime_us;

    g_assert_cmpstr(json_object_get_string_member(info, "status"), ==, "completed");
    g_assert_true(json_object_has_member(info, "background-snapshot"));
    ram = json_object_get_object_member(info, "ram");
    bs = json_object_get_object_member(info, "background-snapshot");
    if (img) {
        g_assert_cmpint(json_object_get_int_member(ram, "normal"), ==, img->data_pages);
        g_assert_cmpint(json_object_get_int_member(ram, "duplicate"), ==, img->zero_pages);
    }
    g_assert_cmpint(json_object_get_int_member(ram, "remaining"), ==, 0);
    g_assert_cmpint(json_object_get_int_member(bs, "write-faults"), >=, 0);
    g_assert_cmpint(json_object_get_int_member(bs, "pages-out-of-order"), >=, 0);
    g_assert_cmpint(json_object_get_int_member(bs, "pages-saved-ahead"), >=, 0);
    g_assert_cmpint(json_object_get_int_member(bs, "pages-saved-in-pause"), >=, 0);
    g_assert_cmpint(json_object_get_int_member(bs, "pages-unpopulated"), >=, 0);
    p50 = json_object_get_int_member(bs, "fault-service-p50-us");
    p99 = json_object_get_int_member(bs, "fault-service-p99-us");
    p999 = json_object_get_int_member(bs, "fault-service-p999-us");
    max = json_object_get_int_member(bs, "fault-service-max-us");
    g_assert_cmpint(p50, >=, 0);
    g_assert_cmpint(p50, <=, p99);
    g_assert_cmpint(p99, <=, p999);
    g_assert_cmpint(p999, <=, max);
    downtime_us = json_object_get_int_member(bs, "downtime-us");
    g_assert_cmpint(downtime_us, >, 0);
    g_assert_cmpint(downtime_us, <, 10 * G_USEC_PER_SEC);
    /* QEMU's "downtime" is the same pause in milliseconds. */
    g_assert_cmpint(json_object_get_int_member(info, "downtime"), <=, downtime_us / 1000 + 1);
    g_assert_cmpint(json_object_get_int_member(info, "downtime") + 1, >=, downtime_us / 1000);
    g_assert_cmpint(json_object_get_int_member(bs, "write-protect-setup-us"), >=, 0);
    g_assert_cmpint(json_object_get_int_member(bs, "buffer-pool-size"), >, 0);
    g_assert_cmpint(json_object_get_int_member(bs, "buffer-pool-high-water"), <=,
                    json_object_get_int_member(bs, "buffer-pool-size"));
    g_assert_cmpint(json_object_get_int_member(bs, "buffer-pool-populated"), <=,
                    json_object_get_int_member(bs, "buffer-pool-size"));
    g_assert_cmpint(json_object_get_int_member(bs, "buffer-pool-waits"), >=, 0);
    return json_object_get_int_member(ram, "transferred");
}

static uint64_t count_nonzero_pages(const uint8_t *ram, gsize len)
{
    static const uint8_t zero[4096];
    uint64_t n = 0;

    for (gsize off = 0; off + sizeof(zero) <= len; off += sizeof(zero)) {
        n += memcmp(ram + off, zero, sizeof(zero)) != 0;
    }
    return n;
}

SnapImage snap_image_check(const char *path, const char *raw, uint64_t ram_bytes,
                           unsigned vcpus)
{
    g_autofree char *out = NULL;
    g_autoptr(GMappedFile) map = NULL;
    g_autoptr(GError) err = NULL;
    uint64_t nonzero, allowed;
    const uint8_t *ram;
    gsize len;
    struct stat st;
    SnapImage img;

    if (snap_img_tool(&out, "check", path, NULL) != 0) {
        g_error("frostvm-img check %s failed: %s", path, out);
    }
    img.info = snap_image_info(path);
    g_assert_cmpint(stat(path, &st), ==, 0);
    g_assert_true(img.info.valid);
    g_assert_true(img.info.background);
    g_assert_cmpuint(img.info.file_size, ==, (uint64_t)st.st_size);
    g_assert_cmpuint(img.info.stream_length, ==, (uint64_t)st.st_size);
    g_assert_cmpuint(img.info.ram_size, ==, ram_bytes);
    g_assert_cmpuint(img.info.vcpus, ==, vcpus);
    /* Each page exactly once: as data or as a zero flag, never repeated. */
    g_assert_cmpuint(img.info.repeated_pages, ==, 0);
    g_assert_cmpuint(img.info.data_pages + img.info.zero_pages, ==, ram_bytes / 4096);

    g_clear_pointer(&out, g_free);
    if (snap_img_tool(&out, "dump-ram", path, raw, NULL) != 0) {
        g_error("frostvm-img dump-ram %s failed: %s", path, out);
    }
    map = g_mapped_file_new(raw, FALSE, &err);
    g_assert_no_error(err);
    ram = (const uint8_t *)g_mapped_file_get_contents(map);
    len = g_mapped_file_get_length(map);
    g_assert_cmpuint(len, ==, ram_bytes);
    if (!payload_check_memory(ram, len, &img.res, &err)) {
        g_autofree char *why = payload_check_result_describe(&img.res);
        g_error("the image breaks the payload's invariant: %s\n%s", err->message, why);
    }
    /* Taken after READY: every page was written, so every page is checked. */
    g_assert_cmpuint(img.res.pages_untouched, ==, 0);
    g_assert_cmpuint(img.res.pages_bad, ==, 0);
    g_assert_cmpuint(img.res.pages_valid + img.res.pages_in_flight, ==, img.res.npages);
    g_assert_cmpuint(img.res.pages_in_flight, <=, img.res.ncpus);
    g_assert_cmpuint(img.res.guest_errors, ==, 0);
    g_assert_cmpuint(img.res.regs_failures, ==, 0);
    g_assert_cmpuint(img.res.flags & PAYLOAD_FLAG_READY, !=, 0);

    /* Size: the non-zero RAM plus 1% plus the fixed part, zero pages cost a flag. */
    nonzero = count_nonzero_pages(ram, len);
    g_assert_cmpuint(nonzero, >=, img.res.npages);
    allowed = nonzero * 4096 + nonzero * 4096 / 100 + SNAP_FIXED_OVERHEAD;
    g_test_message("image %" G_GUINT64_FORMAT " bytes, non-zero RAM %" G_GUINT64_FORMAT
                   " bytes (%.2f%% over), %" G_GUINT64_FORMAT " data pages, steps %"
                   G_GUINT64_FORMAT, (uint64_t)st.st_size, nonzero * 4096,
                   100.0 * ((double)st.st_size / (double)(nonzero * 4096) - 1),
                   img.info.data_pages, img.res.steps);
    if ((uint64_t)st.st_size > allowed) {
        g_error("image of %" G_GUINT64_FORMAT " bytes exceeds the non-zero RAM (%"
                G_GUINT64_FORMAT " bytes) plus 1%% plus %d", (uint64_t)st.st_size,
                nonzero * 4096, SNAP_FIXED_OVERHEAD);
    }
    g_unlink(raw);
    return img;
}

struct SnapReader {
    GThread *thread;
    int listen_fd;
    char *out_path;
    uint64_t bytes;
    int error;            /* errno of a failure, 0 */
};

static gpointer snap_reader_run(gpointer data)
{
    SnapReader *r = data;
    struct pollfd pfd = { .fd = r->listen_fd, .events = POLLIN };
    int fd, out;
    char buf[65536];
    ssize_t n;

    if (poll(&pfd, 1, SNAP_TIMEOUT_MS) != 1) {
        r->error = ETIMEDOUT;
        return NULL;
    }
    fd = accept4(r->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        r->error = errno;
        return NULL;
    }
    out = open(r->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        r->error = errno;
        close(fd);
        return NULL;
    }
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            r->error = errno;
            break;
        }
        if (write(out, buf, n) != n) {
            r->error = errno ? errno : EIO;
            break;
        }
        r->bytes += n;
    }
    close(out);
    close(fd);
    return NULL;
}

SnapReader *snap_reader_start(const char *sock_path, const char *out_path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    SnapReader *r = g_new0(SnapReader, 1);

    r->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    r->out_path = g_strdup(out_path);
    g_assert_cmpint(r->listen_fd, >=, 0);
    g_assert_cmpuint(strlen(sock_path), <, sizeof(addr.sun_path));
    strcpy(addr.sun_path, sock_path);
    g_assert_cmpint(bind(r->listen_fd, (struct sockaddr *)&addr, sizeof(addr)), ==, 0);
    g_assert_cmpint(listen(r->listen_fd, 1), ==, 0);
    r->thread = g_thread_new("unix-reader", snap_reader_run, r);
    return r;
}

uint64_t snap_reader_finish(SnapReader *r)
{
    uint64_t bytes = r->bytes;
    int error;

    g_thread_join(r->thread);
    bytes = r->bytes;
    error = r->error;
    close(r->listen_fd);
    g_free(r->out_path);
    g_free(r);
    if (error) {
        g_error("unix: reader: %s", g_strerror(error));
    }
    return bytes;
}

PayloadProgress snap_progress_healthy(TestVm *vm, int timeout_ms)
{
    g_autofree char *line = NULL;
    g_autoptr(GError) err = NULL;
    PayloadProgress p;

    test_vm_wait_serial(vm, "PROGRESS ", timeout_ms, &line, &err);
    g_assert_no_error(err);
    g_assert_true(payload_parse_progress(line, &p, &err));
    if (!p.regs_ok || p.errors || !payload_progress_csum_ok(&p)) {
        g_autofree char *log = test_vm_log_read(vm, TEST_VM_LOG_SERIAL);
        g_error("unhealthy PROGRESS line: %s\nserial:\n%s", line, log);
    }
    return p;
}

void snap_assert_serial_clean(TestVm *vm)
{
    g_autofree char *log = test_vm_log_read(vm, TEST_VM_LOG_SERIAL);

    g_assert_null(strstr(log, "MISMATCH"));
    g_assert_null(strstr(log, "FAIL"));
    g_assert_null(strstr(log, "PAYLOAD ERROR"));
}

TestVm *snap_guest_new(const char *accel, const char *ram_mb, const char *append, bool kernel)
{
    TestVm *vm = test_vm_new(TEST_VM_DEFAULT);

    test_vm_add_args(vm, "-accel", accel, "-m", ram_mb, NULL);
    if (kernel && !strcmp(accel, "kvm")) {
        g_autofree char *payload = test_vm_payload_path();
        test_vm_add_args(vm, "-kernel", payload, NULL);
    }
    test_vm_add_args(vm, "-append", append, NULL);
    return vm;
}

void snap_drop_migration_events(QmpClient *qmp)
{
    for (;;) {
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonObject) ev = qmp_client_wait_event(qmp, "MIGRATION", 0, &err);

        if (!ev) {
            return;
        }
    }
}
