/* SPDX-License-Identifier: GPL-2.0-or-later */
/* File descriptor sets (-add-fd): descriptors a manager opened and passed in, used by path. */
#ifndef SYSTEM_FDSET_H
#define SYSTEM_FDSET_H

#include <stdbool.h>
#include <glib.h>

/* One -add-fd option. */
typedef struct FdsetEntry {
    unsigned set;
    int fd;           /* frostvm's own duplicate (close-on-exec) */
    char *opaque;
} FdsetEntry;

/*
 * Take descriptor @fd into set @set: checks that it is open and keeps a
 * close-on-exec duplicate (the inherited number is closed, as the set owns it).
 */
bool fdset_add(GArray *fdsets, unsigned set, int fd, const char *opaque, GError **errp);

/*
 * Open @path as QEMU's qemu_open() does for "/dev/fdset/N": a duplicate of a
 * descriptor of set N whose access mode allows @flags (O_RDONLY, O_WRONLY,
 * O_RDWR). Any other path is opened with open(@path, @flags, 0644).
 * Returns the descriptor or -1 with @errp set.
 */
int fdset_open(GArray *fdsets, const char *path, int flags, GError **errp);

/* Close every descriptor and free the array (a GArray of FdsetEntry). */
void fdsets_free(GArray *fdsets);

#endif
