/* SPDX-License-Identifier: GPL-2.0-or-later */
/* One monitor client's byte pipe on the main loop: reads, buffered non-blocking writes, closing. */
#include "monitor/monitor-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib-unix.h>

/* Writes to a pipe of at most this size never block once poll() said POLLOUT. */
#define UNOWNED_WRITE_CHUNK 4096
/* Descriptors one message may carry (libvirt sends one per getfd). */
#define CONN_MAX_FDS_PER_READ 16
/* Received descriptors nobody claimed; more are closed on arrival. */
#define CONN_MAX_QUEUED_FDS 64

struct MonitorConn {
    GMainContext *ctx;
    int in_fd;
    int out_fd;
    bool owned;
    bool out_is_socket;
    bool in_is_socket;       /* read with recvmsg(): it may carry descriptors */
    GQueue fds;              /* descriptors received with SCM_RIGHTS, oldest first */
    GSource *in_source;
    GSource *out_source;
    GSource *close_source;
    GString *out;            /* queued output; bytes before out_off are written */
    gsize out_off;
    bool read_eof;
    bool broken;             /* write failed or client too slow: close */
    MonitorConnInput on_input;
    MonitorConnClosed on_closed;
    void *opaque;
};

static void conn_source_drop(GSource **source)
{
    if (*source) {
        g_source_destroy(*source);
        g_source_unref(*source);
        *source = NULL;
    }
}

gsize monitor_conn_pending(MonitorConn *c)
{
    return c->out->len - c->out_off;
}

/* Finished when broken, or (for sockets) input ended and output drained. */
static bool conn_finished(MonitorConn *c)
{
    return c->broken || (c->owned && c->read_eof && monitor_conn_pending(c) == 0);
}

static gboolean conn_close_cb(gpointer opaque)
{
    MonitorConn *c = opaque;

    conn_source_drop(&c->close_source);
    c->on_closed(c->opaque);
    return G_SOURCE_REMOVE;
}

/*
 * Closing frees the session that owns @c, so it never happens inside a call
 * that came from the session (a write while dispatching); it is deferred to
 * its own main loop callback.
 */
static void conn_schedule_close(MonitorConn *c)
{
    if (c->close_source) {
        return;
    }
    conn_source_drop(&c->in_source);
    conn_source_drop(&c->out_source);
    c->close_source = g_idle_source_new();
    g_source_set_callback(c->close_source, conn_close_cb, c, NULL);
    g_source_attach(c->close_source, c->ctx);
}

static ssize_t conn_write_some(MonitorConn *c, const char *data, size_t len)
{
    if (c->out_is_socket) {
        /* MSG_NOSIGNAL: a client that hung up must not kill us with SIGPIPE. */
        return send(c->out_fd, data, len, MSG_NOSIGNAL);
    }
    return write(c->out_fd, data, len);
}

/* Write as much as possible without blocking; false on a write error. */
static bool conn_try_write(MonitorConn *c)
{
    while (monitor_conn_pending(c) > 0) {
        size_t len = monitor_conn_pending(c);
        ssize_t n;

        if (!c->owned) {
            /* Blocking stdio: write only what poll() promises to take. */
            struct pollfd pfd = { .fd = c->out_fd, .events = POLLOUT };

            if (poll(&pfd, 1, 0) != 1) {
                break;
            }
            if (pfd.revents & (POLLERR | POLLNVAL)) {
                return false;
            }
            if (!(pfd.revents & POLLOUT)) {
                break;
            }
            len = MIN(len, UNOWNED_WRITE_CHUNK);
        }
        n = conn_write_some(c, c->out->str + c->out_off, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            return false;
        }
        c->out_off += n;
    }
    if (monitor_conn_pending(c) == 0) {
        g_string_truncate(c->out, 0);
        c->out_off = 0;
    } else if (c->out_off > 65536 && c->out_off * 2 > c->out->len) {
        g_string_erase(c->out, 0, c->out_off);
        c->out_off = 0;
    }
    return true;
}

static gboolean conn_out_cb(gint fd, GIOCondition cond, gpointer opaque);

static void conn_update_out_watch(MonitorConn *c)
{
    if (monitor_conn_pending(c) == 0 || c->broken) {
        conn_source_drop(&c->out_source);
        return;
    }
    if (!c->out_source) {
        c->out_source = g_unix_fd_source_new(c->out_fd, G_IO_OUT);
        g_source_set_callback(c->out_source, G_SOURCE_FUNC(conn_out_cb), c, NULL);
        g_source_attach(c->out_source, c->ctx);
    }
}

static gboolean conn_out_cb(gint fd, GIOCondition cond, gpointer opaque)
{
    MonitorConn *c = opaque;

    if (!conn_try_write(c)) {
        c->broken = true;
    }
    if (conn_finished(c)) {
        conn_schedule_close(c);
        return G_SOURCE_CONTINUE;   /* the close already destroyed this source */
    }
    if (monitor_conn_pending(c) == 0) {
        g_source_unref(c->out_source);
        c->out_source = NULL;
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

/* Keep the descriptors that came with a message, for getfd. */
static void conn_take_rights(MonitorConn *c, struct msghdr *msg)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
        int n;

        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (int i = 0; i < n; i++) {
            int fd;

            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (g_queue_get_length(&c->fds) >= CONN_MAX_QUEUED_FDS) {
                close(fd);
                continue;
            }
            g_queue_push_tail(&c->fds, GINT_TO_POINTER(fd));
        }
    }
}

/*
 * Read what arrived. On a socket, recvmsg() so that descriptors a client
 * passes (libvirt's getfd) are received with the bytes they came with,
 * close-on-exec so they never leak into a migration's exec: child.
 */
static ssize_t conn_read(MonitorConn *c, int fd, char *buf, size_t len)
{
    union {
        char buf[CMSG_SPACE(CONN_MAX_FDS_PER_READ * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.buf,
        .msg_controllen = sizeof(control.buf),
    };
    ssize_t n;

    if (!c->in_is_socket) {
        return read(fd, buf, len);
    }
    n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (n >= 0) {
        conn_take_rights(c, &msg);
    }
    return n;
}

int monitor_conn_take_fd(MonitorConn *c)
{
    if (g_queue_is_empty(&c->fds)) {
        return -1;
    }
    return GPOINTER_TO_INT(g_queue_pop_head(&c->fds));
}

static gboolean conn_in_cb(gint fd, GIOCondition cond, gpointer opaque)
{
    MonitorConn *c = opaque;
    char buf[65536];
    ssize_t n = conn_read(c, fd, buf, sizeof(buf));

    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
        return G_SOURCE_CONTINUE;
    }
    if (n > 0) {
        c->on_input(c->opaque, buf, n);
        if (conn_finished(c)) {
            conn_schedule_close(c);
        }
        return G_SOURCE_CONTINUE;
    }
    /*
     * End of input. A socket client may have only shut down its sending side
     * (echo '...' | socat): answer what it sent before closing. Stdin at EOF
     * just stops being read; the monitor and the machine carry on.
     */
    c->read_eof = true;
    g_source_unref(c->in_source);
    c->in_source = NULL;
    if (conn_finished(c)) {
        conn_schedule_close(c);
    }
    return G_SOURCE_REMOVE;
}

MonitorConn *monitor_conn_new(GMainContext *ctx, int in_fd, int out_fd, bool owned,
                              MonitorConnInput on_input, MonitorConnClosed on_closed,
                              void *opaque)
{
    MonitorConn *c = g_new0(MonitorConn, 1);
    struct stat st;

    c->ctx = ctx;
    c->in_fd = in_fd;
    c->out_fd = out_fd;
    c->owned = owned;
    c->out = g_string_new(NULL);
    c->on_input = on_input;
    c->on_closed = on_closed;
    c->opaque = opaque;
    c->out_is_socket = fstat(out_fd, &st) == 0 && S_ISSOCK(st.st_mode);
    c->in_is_socket = in_fd >= 0 && fstat(in_fd, &st) == 0 && S_ISSOCK(st.st_mode);
    g_queue_init(&c->fds);
    if (owned) {
        g_unix_set_fd_nonblocking(in_fd, TRUE, NULL);
        if (out_fd != in_fd) {
            g_unix_set_fd_nonblocking(out_fd, TRUE, NULL);
        }
    }
    if (in_fd >= 0) {
        c->in_source = g_unix_fd_source_new(in_fd, G_IO_IN | G_IO_HUP | G_IO_ERR);
        g_source_set_callback(c->in_source, G_SOURCE_FUNC(conn_in_cb), c, NULL);
        g_source_attach(c->in_source, ctx);
    } else {
        c->read_eof = true;
    }
    return c;
}

void monitor_conn_write(MonitorConn *c, const char *data, gsize len)
{
    if (c->broken) {
        return;
    }
    g_string_append_len(c->out, data, len);
    if (monitor_conn_pending(c) > MONITOR_OUTPUT_MAX) {
        g_warning("monitor: a client left more than %d MiB of output unread; "
                  "disconnecting it", MONITOR_OUTPUT_MAX >> 20);
        c->broken = true;
    } else if (!conn_try_write(c)) {
        c->broken = true;
    }
    if (c->broken) {
        conn_schedule_close(c);
        return;
    }
    conn_update_out_watch(c);
}

void monitor_conn_flush(MonitorConn *c, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    while (!c->broken && monitor_conn_pending(c) > 0) {
        gint64 left = (deadline - g_get_monotonic_time()) / 1000;
        struct pollfd pfd = { .fd = c->out_fd, .events = POLLOUT };

        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
            return;
        }
        if (!conn_try_write(c)) {
            return;
        }
    }
}

void monitor_conn_free(MonitorConn *c)
{
    if (!c) {
        return;
    }
    conn_source_drop(&c->in_source);
    conn_source_drop(&c->out_source);
    conn_source_drop(&c->close_source);
    while (!g_queue_is_empty(&c->fds)) {
        close(monitor_conn_take_fd(c));
    }
    if (c->owned) {
        if (c->in_fd >= 0) {
            close(c->in_fd);
        }
        if (c->out_fd != c->in_fd && c->out_fd >= 0) {
            close(c->out_fd);
        }
    }
    g_string_free(c->out, TRUE);
    g_free(c);
}
