/* SPDX-License-Identifier: GPL-2.0-or-later */
/* File descriptor sets (-add-fd) and opening "/dev/fdset/N" paths from them. */
#include "system/fdset.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"

#define FDSET_PREFIX "/dev/fdset/"

bool fdset_add(GArray *fdsets, unsigned set, int fd, const char *opaque, GError **errp)
{
    FdsetEntry e = { .set = set, .opaque = g_strdup(opaque) };

    /* A manager opened it for us; frostvm's own copy must not leak into children. */
    e.fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (e.fd < 0) {
        error_setg_errno(errp, errno, "-add-fd: fd=%d is not an open file descriptor", fd);
        g_free(e.opaque);
        return false;
    }
    close(fd);
    g_array_append_val(fdsets, e);
    return true;
}

/* Whether a descriptor opened with @have (O_ACCMODE bits) can serve @want. */
static bool fdset_mode_fits(int have, int want)
{
    return have == O_RDWR || have == want;
}

int fdset_open(GArray *fdsets, const char *path, int flags, GError **errp)
{
    const char *num;
    char *end;
    unsigned long set;
    int fd;

    if (!g_str_has_prefix(path, FDSET_PREFIX)) {
        fd = open(path, flags | O_CLOEXEC, 0644);
        if (fd < 0) {
            error_setg_errno(errp, errno, "cannot open '%s'", path);
        }
        return fd;
    }
    num = path + strlen(FDSET_PREFIX);
    set = strtoul(num, &end, 10);
    if (!*num || *end) {
        error_setg(errp, "'%s': expected /dev/fdset/N", path);
        return -1;
    }
    for (guint i = 0; fdsets && i < fdsets->len; i++) {
        FdsetEntry *e = &g_array_index(fdsets, FdsetEntry, i);
        int fl;

        if (e->set != set || (fl = fcntl(e->fd, F_GETFL)) < 0 ||
            !fdset_mode_fits(fl & O_ACCMODE, flags & O_ACCMODE)) {
            continue;
        }
        fd = fcntl(e->fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0) {
            error_setg_errno(errp, errno, "'%s': cannot duplicate fd %d", path, e->fd);
        }
        return fd;
    }
    error_setg(errp, "'%s': no descriptor in set %lu opened for %s (pass one with -add-fd)",
               path, set, (flags & O_ACCMODE) == O_RDONLY ? "reading" : "writing");
    return -1;
}

void fdsets_free(GArray *fdsets)
{
    if (!fdsets) {
        return;
    }
    for (guint i = 0; i < fdsets->len; i++) {
        FdsetEntry *e = &g_array_index(fdsets, FdsetEntry, i);

        close(e->fd);
        g_free(e->opaque);
    }
    g_array_unref(fdsets);
}
