/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Migration channels: URI parsing, file: channels, cancellable I/O and closing. */
#include "migration/channel.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "migration/channels/channel-internal.h"
#include "util/atomic-file.h"
#include "util/error.h"

static const struct {
    const char *prefix;
    MigrationChannelKind kind;
} channel_schemes[] = {
    { "file:", MIGRATION_CHANNEL_FILE },
    { "exec:", MIGRATION_CHANNEL_EXEC },
    { "unix:", MIGRATION_CHANNEL_UNIX },
    { "tcp:", MIGRATION_CHANNEL_TCP },
    { "fd:", MIGRATION_CHANNEL_FD },
};

MigrationChannel *channel_new(const char *uri, bool outgoing, GError **errp)
{
    MigrationChannel *ch;
    const char *target = NULL;
    MigrationChannelKind kind = MIGRATION_CHANNEL_FILE;

    for (size_t i = 0; i < G_N_ELEMENTS(channel_schemes); i++) {
        if (g_str_has_prefix(uri, channel_schemes[i].prefix)) {
            kind = channel_schemes[i].kind;
            target = uri + strlen(channel_schemes[i].prefix);
            break;
        }
    }
    if (!target) {
        error_setg(errp, "unknown migration protocol: %s "
                   "(use file:, exec:, unix:, tcp: or fd:)", uri);
        return NULL;
    }
    if (!*target) {
        error_setg(errp, "migration URI '%s' names no %s", uri,
                   kind == MIGRATION_CHANNEL_EXEC ? "command" :
                   kind == MIGRATION_CHANNEL_TCP ? "address" :
                   kind == MIGRATION_CHANNEL_FD ? "file descriptor" : "path");
        return NULL;
    }

    ch = g_new0(MigrationChannel, 1);
    ch->kind = kind;
    ch->outgoing = outgoing;
    ch->uri = g_strdup(uri);
    ch->target = g_strdup(target);
    ch->fd = -1;
    ch->listen_fd = -1;
    ch->named_fd = -1;
    ch->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ch->cancel_fd < 0) {
        error_setg_errno(errp, errno, "cannot create the cancel event of %s", uri);
        channel_close(ch, false, NULL);
        return NULL;
    }
    return ch;
}

bool channel_uri_check(const char *uri, bool outgoing, GError **errp)
{
    MigrationChannel *ch = channel_new(uri, outgoing, errp);

    channel_close(ch, false, NULL);
    return ch != NULL;
}

static bool channel_file_open(MigrationChannel *ch, GError **errp)
{
    if (!ch->outgoing) {
        ch->fd = open(ch->target, O_RDONLY | O_CLOEXEC);
        if (ch->fd < 0) {
            error_setg_errno(errp, errno, "cannot open migration file '%s'",
                             ch->target);
            return false;
        }
        posix_fadvise(ch->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        return true;
    }

    /*
     * An image appears at PATH complete or not at all, and a crash leaves
     * nothing behind (util/atomic-file.h); 0600 as QEMU creates file: images,
     * since it holds the guest's memory.
     */
    ch->file = atomic_file_create(ch->target, false, false, errp);
    if (!ch->file) {
        g_prefix_error(errp, "%s: ", ch->uri);
        return false;
    }
    ch->fd = ch->file->fd;
    return true;
}

bool channel_connect(MigrationChannel *ch, GError **errp)
{
    if (channel_is_cancelled(ch)) {
        error_setg(errp, "%s: cancelled", ch->uri);
        return false;
    }
    switch (ch->kind) {
    case MIGRATION_CHANNEL_FILE:
        return channel_file_open(ch, errp);
    case MIGRATION_CHANNEL_EXEC:
        return channel_exec_start(ch, errp);
    case MIGRATION_CHANNEL_UNIX:
    case MIGRATION_CHANNEL_TCP:
        return ch->outgoing ? channel_socket_connect(ch, errp)
                            : channel_socket_listen(ch, errp);
    case MIGRATION_CHANNEL_FD:
        return channel_fd_open(ch, errp);
    }
    g_assert_not_reached();
}

static MigrationChannel *channel_open(const char *uri, bool outgoing, GError **errp)
{
    MigrationChannel *ch = channel_new(uri, outgoing, errp);

    if (ch && !channel_connect(ch, errp)) {
        channel_close(ch, false, NULL);
        return NULL;
    }
    return ch;
}

MigrationChannel *channel_open_outgoing(const char *uri, GError **errp)
{
    return channel_open(uri, true, errp);
}

MigrationChannel *channel_open_incoming(const char *uri, GError **errp)
{
    return channel_open(uri, false, errp);
}

bool channel_accept(MigrationChannel *ch, GError **errp)
{
    if (ch->listen_fd < 0) {
        return true;
    }
    return channel_socket_accept(ch, errp);
}

void channel_cancel(MigrationChannel *ch)
{
    uint64_t one = 1;

    if (write(ch->cancel_fd, &one, sizeof(one)) < 0) {
        /* Only EAGAIN (counter saturated) is possible: already cancelled. */
    }
}

bool channel_is_cancelled(MigrationChannel *ch)
{
    struct pollfd p = { .fd = ch->cancel_fd, .events = POLLIN };

    return poll(&p, 1, 0) > 0;
}

bool channel_wait_fd(MigrationChannel *ch, int fd, short events, GError **errp)
{
    struct pollfd p[2] = {
        { .fd = fd, .events = events },
        { .fd = ch->cancel_fd, .events = POLLIN },
    };

    for (;;) {
        int r = poll(p, 2, -1);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            error_setg_errno(errp, errno, "%s: poll failed", ch->uri);
            return false;
        }
        if (p[1].revents) {
            error_setg(errp, "%s: cancelled", ch->uri);
            return false;
        }
        /* Errors and hang-ups are reported by the read or write that follows. */
        return true;
    }
}

bool channel_sleep(MigrationChannel *ch, uint64_t us)
{
    struct pollfd p = { .fd = ch->cancel_fd, .events = POLLIN };
    struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };

    return ppoll(&p, 1, &ts, NULL) == 0;
}

/* Turn a failed write into a message that says who went away. */
static void channel_write_error(MigrationChannel *ch, int err, GError **errp)
{
    if (err == EPIPE && ch->kind == MIGRATION_CHANNEL_EXEC) {
        /* The reader closed its end; it usually exits right after. */
        if (channel_exec_wait(ch, 2000)) {
            if (WIFSIGNALED(ch->child_status)) {
                error_setg(errp, "%s exited early (killed by signal %d)", ch->uri,
                           WTERMSIG(ch->child_status));
            } else {
                error_setg(errp, "%s exited early (status %d)", ch->uri,
                           WEXITSTATUS(ch->child_status));
            }
        } else {
            error_setg(errp, "%s closed its input early", ch->uri);
        }
        return;
    }
    if (err == EPIPE || err == ECONNRESET) {
        error_setg_errno(errp, err, "%s: the destination closed the connection",
                         ch->uri);
        return;
    }
    if (err == ENOSPC || err == EDQUOT) {
        error_setg_errno(errp, err, "cannot write %s", ch->uri);
        return;
    }
    error_setg_errno(errp, err, "write to %s failed", ch->uri);
}

/*
 * A write to a pipe whose reader is gone raises SIGPIPE in the writing
 * thread, which would kill the whole VM. Block it around the write and
 * consume the pending signal afterwards, so this works whether or not main
 * ignores SIGPIPE. Sockets use MSG_NOSIGNAL instead.
 */
static ssize_t channel_write_nosignal(MigrationChannel *ch, const void *buf, size_t len)
{
    sigset_t pipe_set, old;
    ssize_t r;
    int err;

    if (ch->kind == MIGRATION_CHANNEL_UNIX || ch->kind == MIGRATION_CHANNEL_TCP) {
        return send(ch->fd, buf, len, MSG_NOSIGNAL);
    }
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    r = write(ch->fd, buf, len);
    err = errno;
    if (r < 0 && err == EPIPE && !sigismember(&old, SIGPIPE)) {
        struct timespec zero = { 0, 0 };
        sigtimedwait(&pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = err;
    return r;
}

/*
 * Start writeback of what a file: channel has written, every few megabytes,
 * so the fsync at the end finds little left to do (it was 60 ms per 140 MiB
 * on ext4 when all of it waited for the end).
 */
#define CHANNEL_WRITEBACK_CHUNK (8ull << 20)

static void channel_file_writeback(MigrationChannel *ch)
{
    if (ch->written - ch->synced >= CHANNEL_WRITEBACK_CHUNK) {
        /* Best effort: only starts I/O, never waits for it. */
        sync_file_range(ch->fd, (off64_t)ch->synced, (off64_t)(ch->written - ch->synced),
                        SYNC_FILE_RANGE_WRITE);
        ch->synced = ch->written;
    }
}

/*
 * The most one write() to a pipe or socket copies. This kernel does not
 * preempt a copy into a pipe: a vCPU woken while the snapshot's writer (at
 * idle priority) copied 1 MiB waited 0.4-0.5 ms for it. One write() into a
 * pipe took 71-185 us (p90 100-260 us) for 1 MiB here, 15-34 us (p90
 * 25-43 us) for 128 KiB (build/bench/pipe-write-cost); the price is 7 more
 * calls per megabyte.
 */
#define CHANNEL_WRITE_MAX (128u << 10)

static size_t channel_write_max(const MigrationChannel *ch)
{
    return ch->kind == MIGRATION_CHANNEL_FILE ? SIZE_MAX : CHANNEL_WRITE_MAX;
}

bool channel_write_all(MigrationChannel *ch, const void *buf, size_t len,
                       GError **errp)
{
    const char *p = buf;

    while (len) {
        ssize_t r;

        if (ch->kind != MIGRATION_CHANNEL_FILE && channel_is_cancelled(ch)) {
            error_setg(errp, "%s: cancelled", ch->uri);
            return false;
        }
        r = channel_write_nosignal(ch, p, MIN(len, channel_write_max(ch)));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                if (!channel_wait_fd(ch, ch->fd, POLLOUT, errp)) {
                    return false;
                }
                continue;
            }
            channel_write_error(ch, errno, errp);
            return false;
        }
        p += r;
        len -= (size_t)r;
        ch->written += (uint64_t)r;
    }
    if (ch->kind == MIGRATION_CHANNEL_FILE && ch->outgoing) {
        channel_file_writeback(ch);
    }
    return true;
}

ssize_t channel_read(MigrationChannel *ch, void *buf, size_t len, GError **errp)
{
    for (;;) {
        ssize_t r = read(ch->fd, buf, len);

        if (r >= 0) {
            return r;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN) {
            if (!channel_wait_fd(ch, ch->fd, POLLIN, errp)) {
                return -1;
            }
            continue;
        }
        if (errno == ECONNRESET) {
            error_setg_errno(errp, errno, "%s: the source closed the connection",
                             ch->uri);
        } else {
            error_setg_errno(errp, errno, "read from %s failed", ch->uri);
        }
        return -1;
    }
}

static bool channel_file_finish(MigrationChannel *ch, bool success, GError **errp)
{
    AtomicFile *file = g_steal_pointer(&ch->file);

    if (!file) {
        return true;
    }
    /* The file owns the descriptor from here on. */
    ch->fd = -1;
    if (!success) {
        atomic_file_abort(file);
        return true;
    }
    return atomic_file_commit(file, errp);
}

static bool channel_exec_finish(MigrationChannel *ch, bool success, GError **errp)
{
    g_autofree char *how = NULL;

    if (ch->fd >= 0) {
        /* EOF tells the command the stream is over. */
        close(ch->fd);
        ch->fd = -1;
    }
    if (!ch->pid) {
        return true;
    }
    if (!success) {
        /* Give it a moment to exit on EOF; a command that hangs is killed. */
        if (!channel_exec_wait(ch, 500)) {
            channel_exec_kill(ch);
        }
        return true;
    }
    if (!channel_exec_wait(ch, -1)) {
        channel_exec_kill(ch);
        error_setg(errp, "%s: cancelled while waiting for the command to exit",
                   ch->uri);
        return false;
    }
    if (WIFEXITED(ch->child_status) && WEXITSTATUS(ch->child_status) == 0) {
        return true;
    }
    how = channel_exec_describe_status(ch->child_status);
    error_setg(errp, "%s %s", ch->uri, how);
    return false;
}

bool channel_close(MigrationChannel *ch, bool success, GError **errp)
{
    bool ok = true;

    if (!ch) {
        return true;
    }
    switch (ch->kind) {
    case MIGRATION_CHANNEL_FILE:
        ok = channel_file_finish(ch, success, errp);
        break;
    case MIGRATION_CHANNEL_EXEC:
        ok = channel_exec_finish(ch, success, errp);
        break;
    default:
        break;
    }
    if (ch->fd >= 0) {
        close(ch->fd);
    }
    if (ch->listen_fd >= 0) {
        close(ch->listen_fd);
    }
    if (ch->named_fd >= 0) {
        close(ch->named_fd);
    }
    if (ch->unlink_path) {
        unlink(ch->unlink_path);
        g_free(ch->unlink_path);
    }
    if (ch->pid && !ch->child_exited) {
        channel_exec_kill(ch);
    }
    if (ch->cancel_fd >= 0) {
        close(ch->cancel_fd);
    }
    g_free(ch->target);
    g_free(ch->uri);
    g_free(ch);
    return ok;
}

MigrationChannelKind channel_kind(const MigrationChannel *ch)
{
    return ch->kind;
}

const char *channel_uri(const MigrationChannel *ch)
{
    return ch->uri;
}

int channel_fd(const MigrationChannel *ch)
{
    return ch->fd;
}

bool channel_is_regular_file(const MigrationChannel *ch)
{
    return ch->kind == MIGRATION_CHANNEL_FILE;
}

char *channel_listen_uri(const MigrationChannel *ch)
{
    if (ch->outgoing ||
        (ch->kind != MIGRATION_CHANNEL_UNIX && ch->kind != MIGRATION_CHANNEL_TCP)) {
        return NULL;
    }
    return channel_socket_listen_uri(ch);
}
