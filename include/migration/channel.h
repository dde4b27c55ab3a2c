/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Migration channels: where a stream goes to or comes from (file:, exec:, unix:, tcp:, fd:). */
#ifndef MIGRATION_CHANNEL_H
#define MIGRATION_CHANNEL_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <glib.h>

typedef enum {
    MIGRATION_CHANNEL_FILE,   /* file:PATH */
    MIGRATION_CHANNEL_EXEC,   /* exec:COMMAND, run with /bin/sh -c */
    MIGRATION_CHANNEL_UNIX,   /* unix:PATH */
    MIGRATION_CHANNEL_TCP,    /* tcp:HOST:PORT, tcp:[IPV6]:PORT */
    MIGRATION_CHANNEL_FD,     /* fd:N, an inherited descriptor; fd:NAME, one passed to getfd */
} MigrationChannelKind;

typedef struct MigrationChannel MigrationChannel;
typedef struct Monitor Monitor;

/*
 * Parse @uri and create a channel without any I/O yet (no file opened, no
 * process started, no connection). @outgoing says the direction. Splitting
 * creation from connection lets another thread cancel a slow connect.
 * NULL with @errp set for a malformed URI or an unknown scheme.
 */
MigrationChannel *channel_new(const char *uri, bool outgoing, GError **errp);

/*
 * For fd:NAME (a name, not a number): take the descriptor a QMP client passed
 * with getfd under NAME from @mon, as QEMU does (the name is used up). Other
 * channels: nothing to do. Main thread, right after channel_new().
 */
bool channel_fd_resolve(MigrationChannel *ch, Monitor *mon, GError **errp);

/* Whether @uri parses as channel_new() would take it; nothing is opened. */
bool channel_uri_check(const char *uri, bool outgoing, GError **errp);

/*
 * Make the channel ready for I/O. Outgoing: create the temporary file (file:),
 * start the command (exec:), connect (unix:, tcp:). Incoming: open the file,
 * start the command, or bind and listen (unix:, tcp:; the peer is accepted
 * later by channel_accept()). May block (connect); channel_cancel() aborts it.
 */
bool channel_connect(MigrationChannel *ch, GError **errp);

/*
 * exec: only (others: nothing to do). Whether the command runs at SCHED_IDLE,
 * so a vCPU that wakes takes its CPU at once (a command at normal priority
 * kept a woken vCPU waiting 0.4-2 ms here). Before channel_connect(): the
 * command starts so, and everything it starts inherits it. After: every
 * process of the command's process group is moved (a starved sink is lifted
 * to SCHED_BATCH for a while, then lowered again). Best effort.
 */
void channel_set_child_idle(MigrationChannel *ch, bool idle);
/*
 * Best effort: every thread of an exec: command's pipeline to @cpus (no-op
 * for other kinds). Asked before the command starts, it starts there.
 */
void channel_set_child_cpus(MigrationChannel *ch, const cpu_set_t *cpus);
/* Best effort: every thread of an exec: command's pipeline to nice value @nice. */
void channel_set_child_nice(MigrationChannel *ch, int nice);

/* channel_new() and channel_connect() for the outgoing side; NULL on failure. */
MigrationChannel *channel_open_outgoing(const char *uri, GError **errp);

/*
 * channel_new() and channel_connect() for the incoming side. Sockets are
 * listening when this returns, so a source may connect at once; call
 * channel_accept() (on any thread) to take the connection.
 */
MigrationChannel *channel_open_incoming(const char *uri, GError **errp);

/*
 * Incoming sockets: wait for the source to connect and take that one
 * connection (the listening socket is closed then). Other kinds: nothing to do.
 * Cancellable.
 */
bool channel_accept(MigrationChannel *ch, GError **errp);

/*
 * From any thread: make a blocked or future connect, accept, read, write or
 * wait on a child fail with "cancelled". Idempotent.
 */
void channel_cancel(MigrationChannel *ch);

/* True once channel_cancel() was called. */
bool channel_is_cancelled(MigrationChannel *ch);

/*
 * Write all of @buf. Never raises SIGPIPE: a reader that went away gives a
 * clear error ("exec:CMD exited early (status 1)", "the destination closed
 * the connection").
 */
bool channel_write_all(MigrationChannel *ch, const void *buf, size_t len,
                       GError **errp);

/* Whether @ch (connected or accepted) can carry a return path: a socket. */
bool channel_return_path_possible(MigrationChannel *ch, GError **errp);

/* Destination: tell the source over @ch whether it @loaded the stream. */
bool channel_return_path_send(MigrationChannel *ch, bool loaded, GError **errp);

/*
 * Source, after the whole stream: wait for the destination's word (a cancel
 * ends the wait). True only if it loaded the stream.
 */
bool channel_return_path_wait(MigrationChannel *ch, GError **errp);

/*
 * Source, after writing failed: whether the destination said, before it
 * closed, that it could not load the stream (waits at most 100 ms).
 */
bool channel_return_path_refused(MigrationChannel *ch);

/* Read up to @len bytes: the count, 0 at end of stream, -1 with @errp set. */
ssize_t channel_read(MigrationChannel *ch, void *buf, size_t len, GError **errp);

/*
 * Sleep up to @us microseconds unless the channel is cancelled first.
 * False if cancelled. Used for bandwidth throttling.
 */
bool channel_sleep(MigrationChannel *ch, uint64_t us);

/*
 * Finish and free the channel (NULL is fine: true). @success says whether
 * the stream was complete:
 *   file:  on success fsync, rename the temporary file to PATH and fsync the
 *          folder; otherwise remove the temporary file.
 *   exec:  close the pipe and wait for the command; on success a non-zero
 *          exit status or a signal is an error; on failure the command's
 *          process group is killed if it does not exit by itself.
 * Returns false (with @errp) if finishing failed; with @success false it
 * returns false only if cleanup itself failed, and @errp may be NULL.
 */
bool channel_close(MigrationChannel *ch, bool success, GError **errp);

MigrationChannelKind channel_kind(const MigrationChannel *ch);

/* The URI as given ("exec:cat > x"), for messages. */
const char *channel_uri(const MigrationChannel *ch);

/* The file descriptor carrying data, or -1 before connect/accept. */
int channel_fd(const MigrationChannel *ch);

/* True for file: channels (a regular file: io_uring and pwrite apply). */
bool channel_is_regular_file(const MigrationChannel *ch);

/*
 * An incoming socket's actual address as a URI ("tcp:127.0.0.1:40123",
 * "tcp:[::1]:40123", "unix:PATH"), useful after listening on port 0.
 * NULL for other kinds. The caller frees it.
 */
char *channel_listen_uri(const MigrationChannel *ch);

#endif
