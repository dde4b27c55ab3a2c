/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fd: channels: a descriptor the process inherited (fd:N, as libvirt passes
 * the saved image on restore) or one a QMP client passed over the monitor
 * socket and named with getfd (fd:NAME, as libvirt's save does).
 */
#include "migration/channels/channel-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>

#include "monitor/monitor.h"
#include "util/error.h"

/* A number names an inherited descriptor; anything else is a getfd name. */
static bool channel_fd_target_is_number(const char *target)
{
    return g_ascii_isdigit(target[0]);
}

bool channel_fd_resolve(MigrationChannel *ch, Monitor *mon, GError **errp)
{
    if (ch->kind != MIGRATION_CHANNEL_FD || channel_fd_target_is_number(ch->target)) {
        return true;
    }
    if (!mon) {
        error_setg(errp, "%s: no monitor holds a descriptor named '%s'", ch->uri,
                   ch->target);
        return false;
    }
    ch->named_fd = monitor_fd_take(mon, ch->target, errp);
    if (ch->named_fd < 0) {
        g_prefix_error(errp, "%s: ", ch->uri);
        return false;
    }
    return true;
}

bool channel_fd_open(MigrationChannel *ch, GError **errp)
{
    int flags;

    if (ch->named_fd >= 0) {
        ch->fd = ch->named_fd;
        ch->named_fd = -1;
    } else {
        char *end;
        long n = strtol(ch->target, &end, 10);

        if (!channel_fd_target_is_number(ch->target) || *end || n > INT32_MAX) {
            error_setg(errp, "fd: needs a file descriptor number or a name given to "
                       "getfd, not '%s'", ch->target);
            return false;
        }
        /* Our own copy: closing the channel must not close the caller's number. */
        ch->fd = fcntl((int)n, F_DUPFD_CLOEXEC, 3);
        if (ch->fd < 0) {
            error_setg_errno(errp, errno, "%s is not an open file descriptor", ch->uri);
            return false;
        }
    }
    /*
     * Writes and reads go from the current position on, never from 0: a
     * manager's descriptor may already be past its own header (libvirt's
     * save image puts its header and the domain XML before the stream).
     */
    flags = fcntl(ch->fd, F_GETFL);
    if (flags >= 0) {
        fcntl(ch->fd, F_SETFL, flags | O_NONBLOCK);
    }
    return true;
}
