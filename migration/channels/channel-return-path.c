/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The return path: on a socket, the destination answers whether it loaded
 * the stream, and the source completes only on a yes (QEMU's return-path
 * capability; frostvm's own message, as its stream is its own).
 */
#include "channel-internal.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "util/error.h"

#define RETURN_PATH_MAGIC "FVRPATH1"

/* Magic, then a little-endian status word (0: loaded), then 4 reserved bytes. */
typedef struct ReturnPathReply {
    char magic[8];
    uint8_t status[4];
    uint8_t reserved[4];
} ReturnPathReply;

bool channel_return_path_possible(MigrationChannel *ch, GError **errp)
{
    struct stat st;

    if (fstat(ch->fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
        return true;
    }
    error_setg(errp, "return-path needs a connection both ways (unix:, tcp:, or fd: of a "
               "socket); %s is not one", ch->uri);
    return false;
}

bool channel_return_path_send(MigrationChannel *ch, bool loaded, GError **errp)
{
    ReturnPathReply r = { .status = { loaded ? 0 : 1, 0, 0, 0 } };

    memcpy(r.magic, RETURN_PATH_MAGIC, sizeof(r.magic));
    if (!channel_write_all(ch, &r, sizeof(r), errp)) {
        error_prefix(errp, "return path: cannot tell the source: ");
        return false;
    }
    return true;
}

bool channel_return_path_wait(MigrationChannel *ch, GError **errp)
{
    ReturnPathReply r;
    size_t got = 0;

    /* The stream ends here: the destination's reader sees its end, our side stays readable. */
    if (shutdown(ch->fd, SHUT_WR) < 0) {
        error_setg_errno(errp, errno, "return path: cannot end the stream to %s", ch->uri);
        return false;
    }
    while (got < sizeof(r)) {
        ssize_t n = channel_read(ch, (uint8_t *)&r + got, sizeof(r) - got, errp);

        if (n < 0) {
            error_prefix(errp, "return path: ");
            return false;
        }
        if (n == 0) {
            error_setg(errp, "return path: the destination closed the connection without "
                       "saying whether it loaded the stream (is return-path on there?)");
            return false;
        }
        got += (size_t)n;
    }
    if (memcmp(r.magic, RETURN_PATH_MAGIC, sizeof(r.magic))) {
        error_setg(errp, "return path: the destination's reply is not one (is it frostvm?)");
        return false;
    }
    if (r.status[0] || r.status[1] || r.status[2] || r.status[3]) {
        error_setg(errp, "return path: the destination could not load the stream");
        return false;
    }
    return true;
}

bool channel_return_path_refused(MigrationChannel *ch)
{
    struct pollfd p = { .fd = ch->fd, .events = POLLIN };
    ReturnPathReply r;

    /* Its reply, if it sent one before it closed, is already here or about to be. */
    if (ch->fd < 0 || poll(&p, 1, 100) <= 0 ||
        recv(ch->fd, &r, sizeof(r), MSG_DONTWAIT) != (ssize_t)sizeof(r)) {
        return false;
    }
    return !memcmp(r.magic, RETURN_PATH_MAGIC, sizeof(r.magic)) &&
           (r.status[0] || r.status[1] || r.status[2] || r.status[3]);
}
