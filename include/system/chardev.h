/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Character devices (-chardev): what the command line asks for and the opened backends. */
#ifndef SYSTEM_CHARDEV_H
#define SYSTEM_CHARDEV_H

#include <stdbool.h>
#include <glib.h>

typedef struct Machine Machine;

typedef enum {
    CHARDEV_SOCKET,   /* a listening unix socket: path=, or an inherited fd= */
    CHARDEV_PTY,      /* a new pseudo-terminal; its slave's name is in query-chardev */
    CHARDEV_FILE,     /* output to path= (or /dev/fdset/N) */
    CHARDEV_STDIO,
    CHARDEV_NULL,
} ChardevKind;

/* One -chardev option, as parsed. */
typedef struct ChardevOptions {
    char *id;
    ChardevKind kind;
    char *path;       /* socket: path=; file: path= */
    int fd;           /* socket: an inherited listening socket (fd=), or -1 */
    bool append;      /* file: append=on */
} ChardevOptions;

/* One -mon option: a monitor on a chardev. */
typedef struct MonOptions {
    char *chardev;
    bool control;     /* mode=control (QMP) rather than readline (HMP) */
} MonOptions;

/* An opened backend for a device (pty, file, null, stdio). */
typedef struct Chardev {
    const ChardevOptions *opts;
    int fd;           /* read/write end for the device, or -1 (null) */
    char *filename;   /* QEMU's description: "pty:/dev/pts/3", "file:/x", "null" */
} Chardev;

void chardev_options_free(gpointer opts);
void mon_options_free(gpointer opts);

/* The -chardev options named @id, or NULL. */
ChardevOptions *chardev_options_find(GPtrArray *chardevs, const char *id);

/*
 * Open the backends devices use (pty, file, null, stdio) into m->chardevs.
 * Sockets are opened by the monitor that uses them. A file path of the form
 * /dev/fdset/N takes a descriptor of the -add-fd set N.
 */
bool chardevs_open(Machine *m, GError **errp);

/* The opened backend @id, or NULL. */
Chardev *chardev_find(Machine *m, const char *id);

/* Close every backend and free m->chardevs. */
void chardevs_close(Machine *m);

/*
 * QEMU's filename of a socket chardev for query-chardev:
 * "unix:PATH,server=on" (for an inherited fd, from the socket's own address).
 */
char *chardev_socket_filename(const ChardevOptions *opts);

#endif
