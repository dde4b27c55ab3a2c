/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Blocking QMP client for tests: line-framed JSON over a unix socket, events kept aside. */
#include "qmp-client.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define QMP_CLIENT_DEFAULT_TIMEOUT_MS 30000

struct QmpClient {
    int fd;
    GString *in;
    JsonObject *greeting;
    GPtrArray *events;          /* JsonObject * */
    int timeout_ms;
    char *last_error_class;
};

G_DEFINE_QUARK(qmp-client-error-quark, qmp_client_error)

static gint64 deadline_after(int timeout_ms)
{
    return g_get_monotonic_time() + (gint64)timeout_ms * 1000;
}

/* Next JSON object from the server, or NULL on timeout, EOF or bad input. */
static JsonObject *read_message(QmpClient *c, gint64 deadline, GError **errp)
{
    for (;;) {
        char *nl = memchr(c->in->str, '\n', c->in->len);

        if (nl) {
            gsize len = nl - c->in->str;
            g_autofree char *line = g_strndup(c->in->str, len);
            g_autoptr(JsonParser) parser = json_parser_new();
            g_autoptr(GError) err = NULL;
            JsonNode *root;

            g_string_erase(c->in, 0, len + 1);
            if (!*g_strstrip(line)) {
                continue;
            }
            if (!json_parser_load_from_data(parser, line, -1, &err)) {
                g_set_error(errp, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_IO,
                            "qmp-client: the server sent bad JSON (%s): %s",
                            err->message, line);
                return NULL;
            }
            root = json_parser_get_root(parser);
            if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
                g_set_error(errp, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_IO,
                            "qmp-client: the server sent a non-object: %s", line);
                return NULL;
            }
            return json_object_ref(json_node_get_object(root));
        }

        gint64 left = (deadline - g_get_monotonic_time()) / 1000;
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        char buf[65536];
        ssize_t n;
        int rc;

        /* Poll once even when the time is up, so a zero timeout still reads. */
        rc = poll(&pfd, 1, (int)CLAMP(left, 0, G_MAXINT));
        if (rc < 0 && errno == EINTR) {
            continue;
        }
        if (rc == 0) {
            if (left > 0) {
                continue;
            }
            g_set_error(errp, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_TIMEOUT,
                        "qmp-client: timed out waiting for the server");
            return NULL;
        }
        n = read(c->fd, buf, sizeof(buf));
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (n <= 0) {
            g_set_error(errp, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_IO,
                        "qmp-client: the server closed the connection%s%s",
                        n < 0 ? ": " : "", n < 0 ? g_strerror(errno) : "");
            return NULL;
        }
        g_string_append_len(c->in, buf, n);
    }
}

static bool is_event(JsonObject *msg)
{
    return json_object_has_member(msg, "event");
}

QmpClient *qmp_client_new_from_fd(int fd, GError **errp)
{
    QmpClient *c = g_new0(QmpClient, 1);
    JsonObject *greeting;

    c->fd = fd;
    c->in = g_string_new(NULL);
    c->events = g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref);
    c->timeout_ms = QMP_CLIENT_DEFAULT_TIMEOUT_MS;
    greeting = read_message(c, deadline_after(c->timeout_ms), errp);
    if (!greeting) {
        qmp_client_free(c);
        return NULL;
    }
    if (!json_object_has_member(greeting, "QMP") ||
        !JSON_NODE_HOLDS_OBJECT(json_object_get_member(greeting, "QMP"))) {
        g_set_error(errp, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_IO,
                    "qmp-client: the first message is not a QMP greeting");
        json_object_unref(greeting);
        qmp_client_free(c);
        return NULL;
    }
    c->greeting = greeting;
    return c;
}

QmpClient *qmp_client_connect(const char *path, int timeout_ms, GError **errp)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    gint64 deadline = deadline_after(timeout_ms);

    if (strlen(path) >= sizeof(addr.sun_path)) {
        g_set_error(errp, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_IO,
                    "qmp-client: socket path too long: %s", path);
        return NULL;
    }
    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int err;

        if (fd < 0) {
            g_set_error(errp, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_IO,
                        "qmp-client: socket: %s", g_strerror(errno));
            return NULL;
        }
        if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
            return qmp_client_new_from_fd(fd, errp);
        }
        err = errno;
        close(fd);
        if (g_get_monotonic_time() >= deadline) {
            g_set_error(errp, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_TIMEOUT,
                        "qmp-client: cannot connect to %s: %s", path, g_strerror(err));
            return NULL;
        }
        g_usleep(10 * 1000);
    }
}

QmpClient *qmp_client_open(const char *path, int timeout_ms, GError **errp)
{
    QmpClient *c = qmp_client_connect(path, timeout_ms, errp);

    if (c && !qmp_client_negotiate(c, errp)) {
        qmp_client_free(c);
        return NULL;
    }
    return c;
}

JsonObject *qmp_client_greeting(QmpClient *c)
{
    return json_object_get_object_member(c->greeting, "QMP");
}

void qmp_client_set_timeout(QmpClient *c, int timeout_ms)
{
    c->timeout_ms = timeout_ms;
}

bool qmp_client_negotiate(QmpClient *c, GError **errp)
{
    g_autoptr(JsonNode) ret = qmp_client_execute(c, "qmp_capabilities", NULL, errp);

    return ret != NULL;
}

bool qmp_client_send_raw(QmpClient *c, const char *text, gsize len, GError **errp)
{
    while (len > 0) {
        ssize_t n = send(c->fd, text, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            g_set_error(errp, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_IO,
                        "qmp-client: send: %s", g_strerror(errno));
            return false;
        }
        text += n;
        len -= n;
    }
    return true;
}

JsonObject *qmp_client_read_reply(QmpClient *c, GError **errp)
{
    gint64 deadline = deadline_after(c->timeout_ms);

    for (;;) {
        JsonObject *msg = read_message(c, deadline, errp);

        if (!msg) {
            return NULL;
        }
        if (!is_event(msg)) {
            return msg;
        }
        g_ptr_array_add(c->events, msg);
    }
}

JsonObject *qmp_client_request(QmpClient *c, const char *command, JsonObject *args,
                               GError **errp)
{
    g_autoptr(JsonObject) req = json_object_new();
    g_autoptr(JsonNode) node = NULL;
    g_autofree char *text = NULL;
    g_autofree char *line = NULL;

    json_object_set_string_member(req, "execute", command);
    if (args) {
        json_object_set_object_member(req, "arguments", json_object_ref(args));
    }
    node = json_node_init_object(json_node_alloc(), req);
    text = json_to_string(node, FALSE);
    line = g_strconcat(text, "\n", NULL);
    if (!qmp_client_send_raw(c, line, strlen(line), errp)) {
        return NULL;
    }
    return qmp_client_read_reply(c, errp);
}

JsonNode *qmp_client_execute(QmpClient *c, const char *command, JsonObject *args,
                             GError **errp)
{
    g_autoptr(JsonObject) reply = qmp_client_request(c, command, args, errp);
    JsonObject *error;

    g_clear_pointer(&c->last_error_class, g_free);
    if (!reply) {
        return NULL;
    }
    if (json_object_has_member(reply, "return")) {
        return json_node_copy(json_object_get_member(reply, "return"));
    }
    error = json_object_get_object_member(reply, "error");
    if (!error) {
        g_set_error(errp, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_IO,
                    "qmp-client: %s: reply has neither return nor error", command);
        return NULL;
    }
    c->last_error_class = g_strdup(json_object_get_string_member(error, "class"));
    g_set_error(errp, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_REPLY, "%s",
                json_object_get_string_member(error, "desc"));
    return NULL;
}

JsonNode *qmp_client_execute_json(QmpClient *c, const char *command,
                                  const char *args_json, GError **errp)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonNode *root;

    if (!args_json) {
        return qmp_client_execute(c, command, NULL, errp);
    }
    if (!json_parser_load_from_data(parser, args_json, -1, errp)) {
        return NULL;
    }
    root = json_parser_get_root(parser);
    if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
        g_set_error(errp, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_IO,
                    "qmp-client: arguments must be a JSON object: %s", args_json);
        return NULL;
    }
    return qmp_client_execute(c, command, json_node_get_object(root), errp);
}

const char *qmp_client_last_error_class(QmpClient *c)
{
    return c->last_error_class;
}

char *qmp_client_hmp(QmpClient *c, const char *line, GError **errp)
{
    g_autoptr(JsonObject) args = json_object_new();
    g_autoptr(JsonNode) ret = NULL;

    json_object_set_string_member(args, "command-line", line);
    ret = qmp_client_execute(c, "human-monitor-command", args, errp);
    if (!ret) {
        return NULL;
    }
    return g_strdup(json_node_get_string(ret));
}

static JsonObject *take_event(QmpClient *c, const char *name)
{
    for (guint i = 0; i < c->events->len; i++) {
        JsonObject *ev = g_ptr_array_index(c->events, i);

        if (!g_strcmp0(json_object_get_string_member(ev, "event"), name)) {
            return g_ptr_array_steal_index(c->events, i);
        }
    }
    return NULL;
}

JsonObject *qmp_client_wait_event(QmpClient *c, const char *name, int timeout_ms,
                                  GError **errp)
{
    gint64 deadline = deadline_after(timeout_ms);
    g_autoptr(GError) err = NULL;
    JsonObject *ev = take_event(c, name);

    while (!ev) {
        JsonObject *msg = read_message(c, deadline, &err);

        if (!msg) {
            g_propagate_prefixed_error(errp, g_steal_pointer(&err),
                                       "qmp-client: waiting for event %s: ", name);
            return NULL;
        }
        if (!is_event(msg)) {
            /* A reply nobody waits for: only a test sending raw text makes one. */
            json_object_unref(msg);
            continue;
        }
        g_ptr_array_add(c->events, msg);
        ev = take_event(c, name);
    }
    return ev;
}

GPtrArray *qmp_client_events(QmpClient *c)
{
    return c->events;
}

bool qmp_client_wait_closed(QmpClient *c, int timeout_ms, GError **errp)
{
    gint64 deadline = deadline_after(timeout_ms);

    for (;;) {
        g_autoptr(GError) err = NULL;
        JsonObject *msg = read_message(c, deadline, &err);

        if (msg) {
            if (is_event(msg)) {
                g_ptr_array_add(c->events, msg);
            } else {
                json_object_unref(msg);
            }
            continue;
        }
        if (g_error_matches(err, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_TIMEOUT)) {
            g_propagate_error(errp, g_steal_pointer(&err));
            return false;
        }
        return true;
    }
}

int qmp_client_fd(QmpClient *c)
{
    return c->fd;
}

void qmp_client_free(QmpClient *c)
{
    if (!c) {
        return;
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    g_string_free(c->in, TRUE);
    if (c->greeting) {
        json_object_unref(c->greeting);
    }
    g_ptr_array_unref(c->events);
    g_free(c->last_error_class);
    g_free(c);
}
