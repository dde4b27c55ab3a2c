/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Where monitors listen: QEMU-style specs (stdio, unix:, tcp:), listening sockets, accepting clients. */
#include "monitor/monitor-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <glib-unix.h>

#include "system/chardev.h"
#include "util/error.h"

struct MonitorListener {
    Monitor *mon;
    MonitorKind kind;
    int fd;
    GSource *source;
    char *unix_path;     /* removed on close */
    bool nodelay;
};

/* Split at ',' where ",," stands for a literal comma, as QEMU's option syntax. */
static GPtrArray *split_options(const char *text)
{
    GPtrArray *parts = g_ptr_array_new_with_free_func(g_free);
    GString *cur = g_string_new(NULL);

    for (const char *p = text; *p; p++) {
        if (*p == ',' && p[1] == ',') {
            g_string_append_c(cur, ',');
            p++;
        } else if (*p == ',') {
            g_ptr_array_add(parts, g_string_free(cur, FALSE));
            cur = g_string_new(NULL);
        } else {
            g_string_append_c(cur, *p);
        }
    }
    g_ptr_array_add(parts, g_string_free(cur, FALSE));
    return parts;
}

/* "on", "off", or a bare flag (NULL value) meaning on. */
static bool parse_switch(const char *spec, const char *key, const char *value, bool *out,
                         GError **errp)
{
    if (!value || !strcmp(value, "on")) {
        *out = true;
    } else if (!strcmp(value, "off")) {
        *out = false;
    } else {
        error_setg(errp, "monitor '%s': option '%s' expects 'on' or 'off', not '%s'",
                   spec, key, value);
        return false;
    }
    return true;
}

static bool parse_address(const char *text, const char *addr, MonitorSpec *spec,
                          GError **errp)
{
    const char *colon;

    if (g_str_has_prefix(addr, "unix:")) {
        spec->kind = MONITOR_SPEC_UNIX;
        spec->path = g_strdup(addr + strlen("unix:"));
        if (!spec->path[0]) {
            error_setg(errp, "monitor '%s': the unix socket path is empty", text);
            return false;
        }
        if (strlen(spec->path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            error_setg(errp, "monitor '%s': the unix socket path is longer than "
                       "%zu bytes", text,
                       sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
            return false;
        }
        return true;
    }
    if (g_str_has_prefix(addr, "tcp:")) {
        const char *hostport = addr + strlen("tcp:");

        spec->kind = MONITOR_SPEC_TCP;
        colon = strrchr(hostport, ':');
        if (!colon || !colon[1]) {
            error_setg(errp, "monitor '%s': expected tcp:HOST:PORT", text);
            return false;
        }
        spec->host = g_strndup(hostport, colon - hostport);
        spec->port = g_strdup(colon + 1);
        /* [::1] for IPv6 literals */
        if (spec->host[0] == '[' && g_str_has_suffix(spec->host, "]")) {
            char *bare = g_strndup(spec->host + 1, strlen(spec->host) - 2);

            g_free(spec->host);
            spec->host = bare;
        }
        return true;
    }
    error_setg(errp, "monitor '%s': unknown kind; expected stdio, "
               "unix:PATH,server=on,wait=off or tcp:HOST:PORT,server=on,wait=off",
               text);
    return false;
}

bool monitor_spec_parse(const char *text, MonitorSpec *spec, GError **errp)
{
    g_autoptr(GPtrArray) parts = NULL;
    bool server = false;

    memset(spec, 0, sizeof(*spec));
    if (!strcmp(text, "stdio")) {
        spec->kind = MONITOR_SPEC_STDIO;
        return true;
    }
    parts = split_options(text);
    if (!parse_address(text, g_ptr_array_index(parts, 0), spec, errp)) {
        monitor_spec_clear(spec);
        return false;
    }
    spec->wait = true;     /* QEMU's default for a server socket */
    for (guint i = 1; i < parts->len; i++) {
        g_autofree char *key = g_strdup(g_ptr_array_index(parts, i));
        char *value = strchr(key, '=');
        bool ok;

        if (value) {
            *value++ = '\0';
        }
        if (!strcmp(key, "server")) {
            ok = parse_switch(text, key, value, &server, errp);
        } else if (!strcmp(key, "wait")) {
            ok = parse_switch(text, key, value, &spec->wait, errp);
        } else if (!strcmp(key, "nowait") && !value) {
            spec->wait = false;
            ok = true;
        } else if (!strcmp(key, "nodelay")) {
            ok = parse_switch(text, key, value, &spec->nodelay, errp);
        } else {
            error_setg(errp, "monitor '%s': unknown option '%s'", text, key);
            ok = false;
        }
        if (!ok) {
            monitor_spec_clear(spec);
            return false;
        }
    }
    if (!server) {
        error_setg(errp, "monitor '%s': frostvm monitors only listen; add "
                   "',server=on,wait=off'", text);
        monitor_spec_clear(spec);
        return false;
    }
    return true;
}

bool monitor_spec_check(const char *text, GError **errp)
{
    MonitorSpec spec;

    if (!monitor_spec_parse(text, &spec, errp)) {
        return false;
    }
    monitor_spec_clear(&spec);
    return true;
}

void monitor_spec_clear(MonitorSpec *spec)
{
    g_clear_pointer(&spec->path, g_free);
    g_clear_pointer(&spec->host, g_free);
    g_clear_pointer(&spec->port, g_free);
}

static int listen_unix(const char *path, GError **errp)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    struct stat st;
    int fd;

    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    /* A socket file left by an earlier run would make bind() fail. */
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(path);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "monitor: cannot create a unix socket");
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 16) < 0) {
        error_setg_errno(errp, errno, "monitor: cannot listen on unix socket '%s'",
                         path);
        close(fd);
        return -1;
    }
    return fd;
}

static int listen_tcp(const char *host, const char *port, GError **errp)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_PASSIVE,
    };
    struct addrinfo *res = NULL;
    int err = 0;
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);

    if (rc != 0) {
        error_setg(errp, "monitor: cannot resolve tcp address '%s:%s': %s", host, port,
                   gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int one = 1;
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);

        if (fd < 0) {
            err = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 16) == 0) {
            freeaddrinfo(res);
            return fd;
        }
        err = errno;
        close(fd);
    }
    freeaddrinfo(res);
    error_setg_errno(errp, err, "monitor: cannot listen on tcp '%s:%s'", host, port);
    return -1;
}

static void listener_start_client(MonitorListener *l, int fd)
{
    if (l->nodelay) {
        int one = 1;

        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    monitor_session_start(l->mon, l->kind, fd, fd, true);
}

static gboolean listener_accept_cb(gint fd, GIOCondition cond, gpointer opaque)
{
    MonitorListener *l = opaque;
    int client = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (client < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
            g_warning("monitor: accept failed: %s", g_strerror(errno));
        }
        return G_SOURCE_CONTINUE;
    }
    listener_start_client(l, client);
    return G_SOURCE_CONTINUE;
}

void monitor_listener_free(gpointer p)
{
    MonitorListener *l = p;

    if (l->source) {
        g_source_destroy(l->source);
        g_source_unref(l->source);
    }
    close(l->fd);
    if (l->unix_path) {
        unlink(l->unix_path);
        g_free(l->unix_path);
    }
    g_free(l);
}

static bool stdio_in_use(Monitor *mon)
{
    for (guint i = 0; i < mon->sessions->len; i++) {
        MonitorSession *sess = g_ptr_array_index(mon->sessions, i);

        if (sess->stdio) {
            return true;
        }
    }
    return false;
}

/*
 * A closed stdin leaves an output-only monitor. If the process was started
 * with fd 0 closed, fd 0 may since have been reused by GLib's own eventfd:
 * reading that would spin on counter values, so such a descriptor counts as
 * closed too.
 */
static bool stdin_usable(void)
{
    char target[64];
    ssize_t n;

    if (fcntl(STDIN_FILENO, F_GETFD) < 0) {
        return false;
    }
    n = readlink("/proc/self/fd/0", target, sizeof(target) - 1);
    if (n > 0) {
        target[n] = '\0';
        if (g_str_has_prefix(target, "anon_inode:")) {
            return false;
        }
    }
    return true;
}

bool monitor_server_add(Monitor *mon, MonitorKind kind, const char *text,
                        GError **errp)
{
    MonitorSpec spec;
    MonitorListener *l;
    int fd;

    if (!monitor_spec_parse(text, &spec, errp)) {
        return false;
    }
    if (spec.kind == MONITOR_SPEC_STDIO) {
        if (stdio_in_use(mon)) {
            error_setg(errp, "monitor 'stdio': stdio is already used by another "
                       "monitor");
            return false;
        }
        monitor_session_start(mon, kind, stdin_usable() ? STDIN_FILENO : -1,
                              STDOUT_FILENO, false);
        return true;
    }
    fd = spec.kind == MONITOR_SPEC_UNIX ? listen_unix(spec.path, errp)
                                        : listen_tcp(spec.host, spec.port, errp);
    if (fd < 0) {
        monitor_spec_clear(&spec);
        return false;
    }
    if (spec.kind == MONITOR_SPEC_TCP) {
        /* As in QEMU, but said: a user who copied tcp::4444 should know. */
        fprintf(stderr, "frostvm: warning: the monitor on %s has no authentication: "
                "anyone who can connect to %s (every address when none is given) "
                "controls the VM, and 'migrate exec:' runs shell commands as this "
                "user; prefer a unix: socket in a private folder\n", text,
                *spec.host ? spec.host : "this port");
    }
    l = g_new0(MonitorListener, 1);
    l->mon = mon;
    l->kind = kind;
    l->fd = fd;
    l->nodelay = spec.nodelay;
    l->unix_path = g_steal_pointer(&spec.path);
    g_ptr_array_add(mon->listeners, l);
    if (spec.wait) {
        /* As QEMU with wait=on: the first client connects before startup goes on. */
        int client;

        fprintf(stderr, "frostvm: waiting for a monitor connection on %s\n", text);
        do {
            client = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        } while (client < 0 && errno == EINTR);
        if (client < 0) {
            error_setg_errno(errp, errno, "monitor '%s': accept failed", text);
            g_ptr_array_remove(mon->listeners, l);
            monitor_spec_clear(&spec);
            return false;
        }
        listener_start_client(l, client);
    }
    g_unix_set_fd_nonblocking(fd, TRUE, NULL);
    l->source = g_unix_fd_source_new(fd, G_IO_IN);
    g_source_set_callback(l->source, G_SOURCE_FUNC(listener_accept_cb), l, NULL);
    g_source_attach(l->source, mon->context);
    monitor_spec_clear(&spec);
    return true;
}

/*
 * A listening socket opened by someone else (libvirt binds monitor.sock and
 * passes the descriptor). It stays open for the life of the process, so a
 * client that went away (a restarted libvirtd) reconnects by the path; the
 * path is not frostvm's to remove.
 */
static bool monitor_listen_on_fd(Monitor *mon, MonitorKind kind, int fd, GError **errp)
{
    MonitorListener *l;
    int listening = 0;
    socklen_t len = sizeof(listening);

    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening) {
        error_setg(errp, "monitor: fd %d is not a listening socket", fd);
        return false;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    g_unix_set_fd_nonblocking(fd, TRUE, NULL);
    l = g_new0(MonitorListener, 1);
    l->mon = mon;
    l->kind = kind;
    l->fd = fd;
    g_ptr_array_add(mon->listeners, l);
    l->source = g_unix_fd_source_new(fd, G_IO_IN);
    g_source_set_callback(l->source, G_SOURCE_FUNC(listener_accept_cb), l, NULL);
    g_source_attach(l->source, mon->context);
    return true;
}

bool monitor_add_chardev(Monitor *mon, const ChardevOptions *o, bool control,
                         GError **errp)
{
    MonitorKind kind = control ? MONITOR_KIND_QMP : MONITOR_KIND_HMP;
    g_autofree char *spec = NULL;
    g_autofree char *path = NULL;
    g_auto(GStrv) parts = NULL;

    if (o->kind == CHARDEV_STDIO) {
        return monitor_server_add(mon, kind, "stdio", errp);
    }
    g_assert(o->kind == CHARDEV_SOCKET);
    if (o->fd >= 0) {
        if (!monitor_listen_on_fd(mon, kind, o->fd, errp)) {
            g_prefix_error(errp, "-chardev socket,id=%s: ", o->id);
            return false;
        }
        return true;
    }
    /* Commas in the path double, as in QEMU's option syntax. */
    parts = g_strsplit(o->path, ",", -1);
    path = g_strjoinv(",,", parts);
    spec = g_strdup_printf("unix:%s,server=on,wait=off", path);
    return monitor_server_add(mon, kind, spec, errp);
}

void monitor_servers_close(Monitor *mon)
{
    g_ptr_array_set_size(mon->listeners, 0);
}
