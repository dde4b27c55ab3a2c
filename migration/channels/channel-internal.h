/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The channel object shared by channel.c, channel-socket.c and channel-exec.c. */
#ifndef MIGRATION_CHANNEL_INTERNAL_H
#define MIGRATION_CHANNEL_INTERNAL_H

#include "migration/channel.h"

#include <stdint.h>

struct MigrationChannel {
    MigrationChannelKind kind;
    bool outgoing;
    char *uri;            /* as given, for messages */
    char *target;         /* after the scheme: PATH, COMMAND, HOST:PORT or N */
    int fd;               /* data descriptor, non-blocking except for files */
    int listen_fd;        /* incoming sockets until accepted */
    int cancel_fd;        /* eventfd: readable once cancelled */

    /* file: */
    struct AtomicFile *file;  /* outgoing: the image until it gets its name */
    uint64_t written;     /* outgoing: bytes written so far */
    uint64_t synced;      /* outgoing: bytes already handed to writeback */

    /* exec: */
    pid_t pid;            /* 0 when there is no child (or it was reaped) */
    bool child_exited;
    int child_status;     /* waitpid() status once reaped */
    bool child_idle;      /* the command runs at SCHED_IDLE (channel_set_child_idle()) */
    bool has_child_cpus;  /* the command runs on child_cpus (channel_set_child_cpus()) */
    cpu_set_t child_cpus;

    /* unix: incoming, the path to unlink when done */
    char *unlink_path;

    /* fd:NAME: the descriptor getfd kept under NAME, taken at creation; else -1 */
    int named_fd;
};

/* Block until @fd is ready for @events or the channel is cancelled (false, errp set). */
bool channel_wait_fd(MigrationChannel *ch, int fd, short events, GError **errp);

/* channel-socket.c */
bool channel_socket_connect(MigrationChannel *ch, GError **errp);
bool channel_socket_listen(MigrationChannel *ch, GError **errp);
bool channel_socket_accept(MigrationChannel *ch, GError **errp);
char *channel_socket_listen_uri(const MigrationChannel *ch);

/* channel-fd.c: fd:N (a number) or fd:NAME (taken by channel_fd_resolve()). */
bool channel_fd_open(MigrationChannel *ch, GError **errp);

/* channel-exec.c */
bool channel_exec_start(MigrationChannel *ch, GError **errp);
/*
 * Wait for the command to exit, up to @timeout_ms (-1: until cancelled).
 * True once reaped (status in ch->child_status).
 */
bool channel_exec_wait(MigrationChannel *ch, int timeout_ms);
/* Kill the command's process group and reap it. */
void channel_exec_kill(MigrationChannel *ch);
/* "exited with status 1", "was killed by signal 9"; the caller frees it. */
char *channel_exec_describe_status(int status);

#endif
