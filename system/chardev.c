/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Opening the -chardev backends devices use: pseudo-terminals, files, stdio, null. */
#include "system/chardev.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "system/fdset.h"
#include "system/machine.h"
#include "util/error.h"

void chardev_options_free(gpointer p)
{
    ChardevOptions *o = p;

    g_free(o->id);
    g_free(o->path);
    g_free(o);
}

void mon_options_free(gpointer p)
{
    MonOptions *o = p;

    g_free(o->chardev);
    g_free(o);
}

ChardevOptions *chardev_options_find(GPtrArray *chardevs, const char *id)
{
    for (guint i = 0; chardevs && i < chardevs->len; i++) {
        ChardevOptions *o = g_ptr_array_index(chardevs, i);

        if (!g_strcmp0(o->id, id)) {
            return o;
        }
    }
    return NULL;
}

static void chardev_free(gpointer p)
{
    Chardev *chr = p;

    if (chr->fd >= 0) {
        close(chr->fd);
    }
    g_free(chr->filename);
    g_free(chr);
}

/*
 * A pseudo-terminal in raw mode. The master stays non-blocking: nobody may be
 * reading the slave, and a full terminal must drop output, not stall the vCPU.
 */
static bool chardev_open_pty(Chardev *chr, GError **errp)
{
    struct termios tio;
    const char *name;
    int fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);

    if (fd < 0 || grantpt(fd) < 0 || unlockpt(fd) < 0 || !(name = ptsname(fd))) {
        error_setg_errno(errp, errno, "-chardev pty,id=%s: cannot create a pseudo-terminal",
                         chr->opts->id);
        if (fd >= 0) {
            close(fd);
        }
        return false;
    }
    if (tcgetattr(fd, &tio) == 0) {
        cfmakeraw(&tio);
        tcsetattr(fd, TCSANOW, &tio);
    }
    chr->fd = fd;
    chr->filename = g_strdup_printf("pty:%s", name);
    return true;
}

static bool chardev_open_one(Machine *m, Chardev *chr, GError **errp)
{
    const ChardevOptions *o = chr->opts;

    switch (o->kind) {
    case CHARDEV_PTY:
        return chardev_open_pty(chr, errp);
    case CHARDEV_FILE:
        chr->fd = fdset_open(m->config->fdsets, o->path,
                             O_WRONLY | O_CREAT | (o->append ? O_APPEND : O_TRUNC), errp);
        if (chr->fd < 0) {
            g_prefix_error(errp, "-chardev file,id=%s: ", o->id);
            return false;
        }
        chr->filename = g_strdup_printf("file:%s", o->path);
        return true;
    case CHARDEV_STDIO:
        chr->fd = -1;
        chr->filename = g_strdup("stdio");
        return true;
    case CHARDEV_NULL:
        chr->fd = -1;
        chr->filename = g_strdup("null");
        return true;
    case CHARDEV_SOCKET:
        chr->fd = -1;
        chr->filename = chardev_socket_filename(o);
        return true;
    }
    g_assert_not_reached();
}

bool chardevs_open(Machine *m, GError **errp)
{
    GPtrArray *opts = m->config->chardevs;

    m->chardevs = g_ptr_array_new_with_free_func(chardev_free);
    for (guint i = 0; opts && i < opts->len; i++) {
        Chardev *chr = g_new0(Chardev, 1);

        chr->opts = g_ptr_array_index(opts, i);
        chr->fd = -1;
        g_ptr_array_add(m->chardevs, chr);
        if (!chardev_open_one(m, chr, errp)) {
            return false;
        }
    }
    return true;
}

Chardev *chardev_find(Machine *m, const char *id)
{
    for (guint i = 0; m->chardevs && i < m->chardevs->len; i++) {
        Chardev *chr = g_ptr_array_index(m->chardevs, i);

        if (!g_strcmp0(chr->opts->id, id)) {
            return chr;
        }
    }
    return NULL;
}

void chardevs_close(Machine *m)
{
    g_clear_pointer(&m->chardevs, g_ptr_array_unref);
}

char *chardev_socket_filename(const ChardevOptions *o)
{
    struct sockaddr_un addr;
    socklen_t len = sizeof(addr);

    if (o->path) {
        return g_strdup_printf("unix:%s,server=on", o->path);
    }
    memset(&addr, 0, sizeof(addr));
    if (getsockname(o->fd, (struct sockaddr *)&addr, &len) == 0 &&
        addr.sun_family == AF_UNIX && addr.sun_path[0]) {
        return g_strdup_printf("unix:%s,server=on", addr.sun_path);
    }
    return g_strdup_printf("fd:%d,server=on", o->fd);
}
