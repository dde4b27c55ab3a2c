/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests of what managers ask over QMP: the generated schema, descriptor passing, QOM and devices. */
#include "monitor/monitor-internal.h"

#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <glib-unix.h>

#include "accel/accel.h"
#include "system/chardev.h"
#include "system/cmdline.h"
#include "system/machine.h"
#include "tests/unit/fake-accel.h"
#include "util/error.h"

typedef struct Fixture {
    Machine *m;
    Monitor *mon;
    bool negotiated;
    int client;          /* the test's end of a session's socket, or -1 */
    GString *in;         /* what the session sent, not yet consumed */
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data)
{
    const char *argv[] = { "-nodefaults", "-smp", "2,sockets=1,cores=2,threads=1",
                           "-chardev", "null,id=c", "-device",
                           "isa-serial,chardev=c,id=serial0" };
    g_autoptr(GError) err = NULL;
    bool exit_now;

    f->m = g_new0(Machine, 1);
    f->m->config = cmdline_parse(G_N_ELEMENTS(argv), (char **)argv, &exit_now, &err);
    g_assert_no_error(err);
    f->m->smp = f->m->config->smp;
    f->m->main_context = g_main_context_new();
    f->m->accel = &fake_accel;
    f->m->runstate = RUN_STATE_RUNNING;
    g_mutex_init(&f->m->runstate_lock);
    g_mutex_init(&f->m->transition_lock);
    g_assert_true(chardevs_open(f->m, &err));
    f->mon = monitor_new(f->m);
    monitor_register_qmp(f->mon, monitor_qmp_commands);
    monitor_register_qmp(f->mon, monitor_qmp_machine_commands);
    monitor_register_qmp(f->mon, monitor_qmp_fd_commands);
    monitor_register_qmp(f->mon, monitor_qmp_qom_commands);
    monitor_register_qmp(f->mon, monitor_qmp_introspect_commands);
    monitor_register_qmp(f->mon, monitor_qmp_device_commands);
    f->negotiated = true;
    f->client = -1;
    f->in = g_string_new(NULL);
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    monitor_free(f->mon);
    if (f->client >= 0) {
        close(f->client);
    }
    g_string_free(f->in, TRUE);
    chardevs_close(f->m);
    machine_config_free(f->m->config);
    g_main_context_unref(f->m->main_context);
    g_mutex_clear(&f->m->runstate_lock);
    g_mutex_clear(&f->m->transition_lock);
    g_free(f->m);
}

/* The "return" member of a directly dispatched command, or the error object. */
static JsonNode *call(Fixture *f, const char *text, bool want_error)
{
    g_autoptr(JsonObject) reply = qmp_dispatch(f->mon, &f->negotiated, text, strlen(text));
    const char *key = want_error ? "error" : "return";

    if (!json_object_has_member(reply, key)) {
        g_autofree char *s = qmp_json_object_to_string(reply);
        g_error("%s: expected a reply with '%s', got %s", text, key, s);
    }
    return json_node_copy(json_object_get_member(reply, key));
}

/* ---- query-qmp-schema ---- */

/*
 * Every type a registered command names resolves to an entry, and a command's
 * arg-type holds exactly the arguments the schema checks: what libvirt walks.
 */
static void test_schema_consistent(Fixture *f, gconstpointer data)
{
    g_autoptr(JsonNode) ret = call(f, "{\"execute\": \"query-qmp-schema\"}", false);
    g_autoptr(GHashTable) byname = g_hash_table_new(g_str_hash, g_str_equal);
    JsonArray *entries = json_node_get_array(ret);
    GPtrArray *commands = qapi_schema_commands(f->mon->schema);
    guint listed = 0;

    for (guint i = 0; i < json_array_get_length(entries); i++) {
        JsonObject *e = json_array_get_object_element(entries, i);
        const char *name = json_object_get_string_member(e, "name");

        g_assert_false(g_hash_table_contains(byname, name));
        g_hash_table_insert(byname, (gpointer)name, e);
    }
    for (guint i = 0; i < json_array_get_length(entries); i++) {
        JsonObject *e = json_array_get_object_element(entries, i);
        const char *meta = json_object_get_string_member(e, "meta-type");

        if (!strcmp(meta, "command")) {
            g_assert_true(g_hash_table_contains(byname,
                                                json_object_get_string_member(e, "arg-type")));
            g_assert_true(g_hash_table_contains(byname,
                                                json_object_get_string_member(e, "ret-type")));
            g_assert_true(g_hash_table_contains(f->mon->qmp_commands,
                                                json_object_get_string_member(e, "name")));
            listed++;
        } else if (!strcmp(meta, "object")) {
            JsonArray *members = json_object_get_array_member(e, "members");

            for (guint k = 0; k < json_array_get_length(members); k++) {
                JsonObject *mem = json_array_get_object_element(members, k);

                g_assert_true(g_hash_table_contains(byname,
                                                    json_object_get_string_member(mem, "type")));
            }
        } else if (!strcmp(meta, "array")) {
            g_assert_true(g_hash_table_contains(byname,
                                                json_object_get_string_member(e, "element-type")));
        }
    }
    g_assert_cmpuint(listed, ==, f->mon->qmp_order->len);
    for (guint i = 0; i < commands->len; i++) {
        QapiCommand *cmd = g_ptr_array_index(commands, i);
        JsonObject *e = g_hash_table_lookup(byname, cmd->name);
        JsonObject *args;
        JsonArray *members;

        if (!g_hash_table_contains(f->mon->qmp_commands, cmd->name)) {
            g_assert_null(e);
            continue;
        }
        args = g_hash_table_lookup(byname, json_object_get_string_member(e, "arg-type"));
        members = json_object_get_array_member(args, "members");
        g_assert_cmpuint(json_array_get_length(members), ==, cmd->arguments->len);
        for (guint k = 0; k < cmd->arguments->len; k++) {
            QapiMember *arg = g_ptr_array_index(cmd->arguments, k);
            JsonObject *mem = json_array_get_object_element(members, k);

            g_assert_cmpstr(json_object_get_string_member(mem, "name"), ==, arg->name);
            g_assert_cmpint(json_object_has_member(mem, "default"), ==, arg->optional);
        }
    }
    /* Arguments get QEMU's implicit type names; libvirt walks "getfd/arg-type/fdname". */
    g_assert_nonnull(g_hash_table_lookup(byname, "q_obj_getfd-arg"));
}

/* ---- getfd / closefd over a session's socket ---- */

static void session_open(Fixture *f)
{
    int sv[2];

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
    f->client = sv[0];
    g_unix_set_fd_nonblocking(f->client, TRUE, NULL);
    monitor_session_start(f->mon, MONITOR_KIND_QMP, sv[1], sv[1], true);
}

/* The next line the session sent; every line must end in CR LF. */
static char *session_line(Fixture *f)
{
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

    while (g_get_monotonic_time() < deadline) {
        char buf[4096];
        char *nl = strchr(f->in->str, '\n');
        ssize_t n;

        if (nl) {
            char *line = g_strndup(f->in->str, nl - f->in->str);

            g_string_erase(f->in, 0, nl - f->in->str + 1);
            g_assert_true(g_str_has_suffix(line, "\r"));
            line[strlen(line) - 1] = '\0';
            return line;
        }
        g_main_context_iteration(f->m->main_context, FALSE);
        n = read(f->client, buf, sizeof(buf));
        if (n > 0) {
            g_string_append_len(f->in, buf, n);
        } else {
            g_usleep(1000);
        }
    }
    g_error("the session sent no line");
}

/* Send @text with @fd attached (-1: none) and return the reply line. */
static char *session_send(Fixture *f, const char *text, int fd)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control = { 0 };   /* the padding after the descriptor too: sendmsg() reads it all */
    struct iovec iov = { .iov_base = (void *)text, .iov_len = strlen(text) };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

    if (fd >= 0) {
        struct cmsghdr *cm;

        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof(control.buf);
        cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    }
    g_assert_cmpint(sendmsg(f->client, &msg, 0), ==, (ssize_t)strlen(text));
    return session_line(f);
}

static void test_getfd(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *greeting = NULL;
    g_autofree char *r1 = NULL, *r2 = NULL, *r3 = NULL, *r4 = NULL, *r5 = NULL;
    int pipefd[2];
    int fd;
    char c = 0;

    session_open(f);
    greeting = session_line(f);
    g_assert_nonnull(strstr(greeting, "\"QMP\""));
    r1 = session_send(f, "{\"execute\":\"qmp_capabilities\"}\n", -1);
    g_assert_cmpstr(r1, ==, "{\"return\": {}}");
    r2 = session_send(f, "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"x\"}}\n", -1);
    g_assert_nonnull(strstr(r2, "No file descriptor supplied via SCM_RIGHTS"));
    g_assert_cmpint(pipe(pipefd), ==, 0);
    r3 = session_send(f, "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"migrate\"},"
                         "\"id\":\"libvirt-21\"}\n", pipefd[1]);
    g_assert_cmpstr(r3, ==, "{\"return\": {}, \"id\": \"libvirt-21\"}");
    close(pipefd[1]);
    /* The name is used up by whoever takes it, as fd:migrate does. */
    fd = monitor_fd_take(f->mon, "migrate", &err);
    g_assert_no_error(err);
    g_assert_cmpint(write(fd, "!", 1), ==, 1);
    g_assert_cmpint(read(pipefd[0], &c, 1), ==, 1);
    g_assert_cmpint(c, ==, '!');
    close(fd);
    g_assert_cmpint(monitor_fd_take(f->mon, "migrate", &err), ==, -1);
    g_assert_nonnull(strstr(err->message, "File descriptor named 'migrate' not found"));
    r4 = session_send(f, "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"9x\"}}\n",
                      pipefd[0]);
    g_assert_nonnull(strstr(r4, "may not start with a digit"));
    r5 = session_send(f, "{\"execute\":\"closefd\",\"arguments\":{\"fdname\":\"nope\"}}\n", -1);
    g_assert_nonnull(strstr(r5, "not found"));
    close(pipefd[0]);
}

/* ---- QOM, machines, vCPUs, devices ---- */

static void test_qom(Fixture *f, gconstpointer data)
{
    g_autoptr(JsonNode) types = call(f, "{\"execute\": \"qom-list-types\", \"arguments\": "
                                        "{\"implements\": \"accel\"}}", false);
    g_autoptr(JsonNode) peripheral = call(f, "{\"execute\": \"qom-list\", \"arguments\": "
                                             "{\"path\": \"/machine/peripheral\"}}", false);
    g_autoptr(JsonNode) missing = call(f, "{\"execute\": \"device-list-properties\", "
                                          "\"arguments\": {\"typename\": \"virtio-blk-pci\"}}",
                                       true);
    g_autoptr(JsonNode) props = call(f, "{\"execute\": \"device-list-properties\", "
                                        "\"arguments\": {\"typename\": \"isa-serial\"}}", false);
    g_autoptr(JsonNode) nopath = call(f, "{\"execute\": \"qom-list\", \"arguments\": "
                                         "{\"path\": \"/machine/nothere\"}}", true);
    g_autofree char *types_text = qmp_json_to_string(types);
    g_autofree char *peripheral_text = qmp_json_to_string(peripheral);

    g_assert_cmpstr(types_text, ==, "[{\"name\": \"kvm-accel\", \"parent\": \"accel\"}, "
                    "{\"name\": \"tcg-accel\", \"parent\": \"accel\"}, "
                    "{\"name\": \"test-accel\", \"parent\": \"accel\"}]");
    g_assert_nonnull(strstr(peripheral_text, "{\"name\": \"serial0\", \"type\": "
                                             "\"child<isa-serial>\"}"));
    g_assert_cmpstr(json_object_get_string_member(json_node_get_object(missing), "class"), ==,
                    "DeviceNotFound");
    g_assert_cmpstr(json_object_get_string_member(json_node_get_object(nopath), "class"), ==,
                    "DeviceNotFound");
    g_assert_cmpuint(json_array_get_length(json_node_get_array(props)), ==, 4);
}

static void test_machine_queries(Fixture *f, gconstpointer data)
{
    g_autoptr(JsonNode) machines = call(f, "{\"execute\": \"query-machines\"}", false);
    g_autoptr(JsonNode) cpus = call(f, "{\"execute\": \"query-cpus-fast\"}", false);
    g_autoptr(JsonNode) chardevs = call(f, "{\"execute\": \"query-chardev\"}", false);
    g_autoptr(JsonNode) options = call(f, "{\"execute\": \"query-command-line-options\", "
                                          "\"arguments\": {\"option\": \"sandbox\"}}", true);
    g_autoptr(JsonNode) block = call(f, "{\"execute\": \"query-block\"}", false);
    JsonObject *pc = json_array_get_object_element(json_node_get_array(machines), 0);
    JsonObject *cpu1 = json_array_get_object_element(json_node_get_array(cpus), 1);
    JsonObject *chr = json_array_get_object_element(json_node_get_array(chardevs), 0);

    g_assert_cmpstr(json_object_get_string_member(pc, "name"), ==, "pc-i440fx-7.2");
    g_assert_cmpstr(json_object_get_string_member(pc, "alias"), ==, "pc");
    g_assert_cmpuint(json_array_get_length(json_node_get_array(cpus)), ==, 2);
    g_assert_cmpint(json_object_get_int_member(json_object_get_object_member(cpu1, "props"),
                                               "core-id"), ==, 1);
    /* The fake accelerator has no threads: no thread-id rather than a made-up one. */
    g_assert_false(json_object_has_member(cpu1, "thread-id"));
    g_assert_cmpstr(json_object_get_string_member(chr, "label"), ==, "c");
    g_assert_cmpstr(json_object_get_string_member(chr, "filename"), ==, "null");
    g_assert_true(json_object_get_boolean_member(chr, "frontend-open"));
    g_assert_nonnull(strstr(json_object_get_string_member(json_node_get_object(options),
                                                          "desc"), "invalid option name"));
    g_assert_cmpuint(json_array_get_length(json_node_get_array(block)), ==, 0);
}

#define ADD(path, fn) \
    g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    ADD("/qmp-manager/schema/consistent", test_schema_consistent);
    ADD("/qmp-manager/fds/getfd", test_getfd);
    ADD("/qmp-manager/qom", test_qom);
    ADD("/qmp-manager/machine-queries", test_machine_queries);
    return g_test_run();
}
