/* SPDX-License-Identifier: GPL-2.0-or-later */
/* unix: and tcp: migration channels: connect, listen, accept (IPv4 and IPv6). */
#include "migration/channel.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "migration/channels/channel-internal.h"
#include "util/error.h"

/*
 * Split "HOST:PORT", "[V6ADDR]:PORT" or ":PORT" (QEMU's forms); options
 * after a comma (",ipv4=on") are ignored.
 */
static bool socket_parse_inet(const char *target, const char *uri, char **host,
                              char **port, GError **errp)
{
    g_autofree char *addr = g_strndup(target, strcspn(target, ","));
    char *colon;

    if (addr[0] == '[') {
        char *close = strchr(addr, ']');
        if (!close || close[1] != ':') {
            error_setg(errp, "%s: expected tcp:[IPV6-ADDRESS]:PORT", uri);
            return false;
        }
        *host = g_strndup(addr + 1, close - addr - 1);
        *port = g_strdup(close + 2);
    } else {
        colon = strrchr(addr, ':');
        if (!colon) {
            error_setg(errp, "%s: expected tcp:HOST:PORT", uri);
            return false;
        }
        *host = g_strndup(addr, colon - addr);
        *port = g_strdup(colon + 1);
    }
    if (!**port) {
        error_setg(errp, "%s: no port given", uri);
        g_clear_pointer(host, g_free);
        g_clear_pointer(port, g_free);
        return false;
    }
    return true;
}

static bool socket_unix_address(MigrationChannel *ch, struct sockaddr_un *sun,
                                GError **errp)
{
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if (strlen(ch->target) >= sizeof(sun->sun_path)) {
        error_setg(errp, "%s: the socket path is longer than %zu bytes", ch->uri,
                   sizeof(sun->sun_path) - 1);
        return false;
    }
    strcpy(sun->sun_path, ch->target);
    return true;
}

/* Connect a non-blocking socket, waiting (cancellably) for the handshake. */
static int socket_connect_one(MigrationChannel *ch, int family,
                              const struct sockaddr *sa, socklen_t len, int *err)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    socklen_t elen = sizeof(*err);

    if (fd < 0) {
        *err = errno;
        return -1;
    }
    if (connect(fd, sa, len) == 0) {
        return fd;
    }
    if (errno != EINPROGRESS && errno != EAGAIN) {
        *err = errno;
        close(fd);
        return -1;
    }
    if (!channel_wait_fd(ch, fd, POLLOUT, NULL)) {
        *err = ECANCELED;
        close(fd);
        return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, err, &elen) < 0) {
        *err = errno;
    }
    if (*err) {
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * A unix socket holds only the sender's buffer (208 KiB by default) in
 * flight, so source and destination took turns every 208 KiB on two cores.
 * Ask for more (the kernel caps it at wmem_max); TCP tunes itself.
 */
#define SOCKET_UNIX_SNDBUF (4 << 20)

bool channel_socket_connect(MigrationChannel *ch, GError **errp)
{
    int err = 0;

    if (ch->kind == MIGRATION_CHANNEL_UNIX) {
        struct sockaddr_un sun;

        if (!socket_unix_address(ch, &sun, errp)) {
            return false;
        }
        ch->fd = socket_connect_one(ch, AF_UNIX, (struct sockaddr *)&sun,
                                    sizeof(sun), &err);
        if (ch->fd >= 0) {
            int size = SOCKET_UNIX_SNDBUF;
            setsockopt(ch->fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
        }
    } else {
        g_autofree char *host = NULL;
        g_autofree char *port = NULL;
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                                  .ai_flags = AI_ADDRCONFIG };
        struct addrinfo *res, *ai;
        int r;

        if (!socket_parse_inet(ch->target, ch->uri, &host, &port, errp)) {
            return false;
        }
        r = getaddrinfo(*host ? host : "localhost", port, &hints, &res);
        if (r == EAI_ADDRFAMILY || r == EAI_NONAME) {
            /* AI_ADDRCONFIG hides ::1 on hosts whose only IPv6 is loopback. */
            hints.ai_flags = 0;
            r = getaddrinfo(*host ? host : "localhost", port, &hints, &res);
        }
        if (r) {
            error_setg(errp, "%s: cannot resolve address: %s", ch->uri,
                       gai_strerror(r));
            return false;
        }
        for (ai = res; ai && ch->fd < 0; ai = ai->ai_next) {
            ch->fd = socket_connect_one(ch, ai->ai_family, ai->ai_addr,
                                        ai->ai_addrlen, &err);
        }
        freeaddrinfo(res);
    }
    if (ch->fd < 0) {
        if (err == ECANCELED) {
            error_setg(errp, "%s: cancelled", ch->uri);
        } else {
            error_setg_errno(errp, err, "%s: cannot connect", ch->uri);
        }
        return false;
    }
    return true;
}

static int socket_listen_one(int family, const struct sockaddr *sa, socklen_t len,
                             int *err)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int on = 1, off = 0;

    if (fd < 0) {
        *err = errno;
        return -1;
    }
    if (family != AF_UNIX) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    }
    if (family == AF_INET6) {
        /* "[::]" also accepts IPv4 sources, as QEMU's listener does. */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    }
    if (bind(fd, sa, len) < 0 || listen(fd, 1) < 0) {
        *err = errno;
        close(fd);
        return -1;
    }
    return fd;
}

bool channel_socket_listen(MigrationChannel *ch, GError **errp)
{
    int err = 0;

    if (ch->kind == MIGRATION_CHANNEL_UNIX) {
        struct sockaddr_un sun;

        if (!socket_unix_address(ch, &sun, errp)) {
            return false;
        }
        /* A stale socket from an earlier run would make bind fail. */
        unlink(ch->target);
        ch->listen_fd = socket_listen_one(AF_UNIX, (struct sockaddr *)&sun,
                                          sizeof(sun), &err);
        if (ch->listen_fd >= 0) {
            ch->unlink_path = g_strdup(ch->target);
        }
    } else {
        g_autofree char *host = NULL;
        g_autofree char *port = NULL;
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
        struct addrinfo *res, *ai;
        int r;

        if (!socket_parse_inet(ch->target, ch->uri, &host, &port, errp)) {
            return false;
        }
        r = getaddrinfo(*host ? host : NULL, port, &hints, &res);
        if (r) {
            error_setg(errp, "%s: cannot resolve address: %s", ch->uri,
                       gai_strerror(r));
            return false;
        }
        /* For the wildcard, prefer the dual-stack IPv6 socket. */
        for (int pass = 0; pass < 2 && ch->listen_fd < 0; pass++) {
            for (ai = res; ai && ch->listen_fd < 0; ai = ai->ai_next) {
                if ((pass == 0) != (ai->ai_family == AF_INET6)) {
                    continue;
                }
                ch->listen_fd = socket_listen_one(ai->ai_family, ai->ai_addr,
                                                  ai->ai_addrlen, &err);
            }
        }
        freeaddrinfo(res);
    }
    if (ch->listen_fd < 0) {
        error_setg_errno(errp, err, "cannot listen on %s", ch->uri);
        return false;
    }
    return true;
}

bool channel_socket_accept(MigrationChannel *ch, GError **errp)
{
    for (;;) {
        int fd;

        if (!channel_wait_fd(ch, ch->listen_fd, POLLIN, errp)) {
            return false;
        }
        fd = accept4(ch->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            ch->fd = fd;
            break;
        }
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
            error_setg_errno(errp, errno, "%s: accept failed", ch->uri);
            return false;
        }
    }
    /* One source per incoming migration: stop listening now. */
    close(ch->listen_fd);
    ch->listen_fd = -1;
    if (ch->unlink_path) {
        unlink(ch->unlink_path);
        g_clear_pointer(&ch->unlink_path, g_free);
    }
    return true;
}

char *channel_socket_listen_uri(const MigrationChannel *ch)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN];
    int fd = ch->listen_fd >= 0 ? ch->listen_fd : ch->fd;

    if (ch->kind == MIGRATION_CHANNEL_UNIX) {
        return g_strdup(ch->uri);
    }
    if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        return NULL;
    }
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
        return g_strdup_printf("tcp:[%s]:%u", host, ntohs(sin6->sin6_port));
    }
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
        return g_strdup_printf("tcp:%s:%u", host, ntohs(sin->sin_port));
    }
    return NULL;
}
