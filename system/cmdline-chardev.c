/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Character devices and what uses them: -chardev, -mon, -add-fd, -serial, -device. */
#include "system/cmdline-internal.h"

#include <string.h>

#include "system/chardev.h"
#include "system/fdset.h"
#include "util/error.h"

const char *const cmdline_keys_chardev_socket[] = {
    "backend", "id", "path", "fd", "server", "wait", "nowait", NULL
};
const char *const cmdline_keys_chardev_file[] = {
    "backend", "id", "path", "append", NULL
};
const char *const cmdline_keys_chardev_plain[] = {
    "backend", "id", "signal", NULL
};
const char *const cmdline_keys_mon[] = {
    "chardev", "id", "mode", "pretty", NULL
};
const char *const cmdline_keys_add_fd[] = {
    "fd", "set", "opaque", NULL
};
const char *const cmdline_keys_isa_serial[] = {
    "driver", "chardev", "id", "index", "iobase", "irq", NULL
};
const char *const cmdline_keys_isa_debug_exit[] = {
    "driver", "iobase", "iosize", "id", NULL
};

static bool parse_fd_number(const char *opt, const char *key, const char *v, int *out,
                            GError **errp)
{
    char *end;
    long n = strtol(v, &end, 10);

    if (!*v || *end || n < 0 || n > G_MAXINT) {
        error_setg(errp, "%s: %s='%s' is not a file descriptor number", opt, key, v);
        return false;
    }
    *out = (int)n;
    return true;
}

/* socket: a listening unix socket, by path= or an inherited fd=; only server mode. */
static bool parse_chardev_socket(ChardevOptions *o, GHashTable *h, GError **errp)
{
    const char *v;
    bool server = false, wait = true;

    if (!cmdline_check_keys("-chardev socket", h, cmdline_keys_chardev_socket, errp)) {
        return false;
    }
    if ((v = g_hash_table_lookup(h, "server")) &&
        !cmdline_parse_bool("server", v, &server, errp)) {
        return false;
    }
    if ((v = g_hash_table_lookup(h, "wait")) && !cmdline_parse_bool("wait", v, &wait, errp)) {
        return false;
    }
    if (g_hash_table_contains(h, "nowait")) {
        wait = false;
    }
    if (!server || wait) {
        error_setg(errp, "-chardev socket,id=%s: frostvm's sockets only listen without "
                   "waiting; add server=on,wait=off", o->id);
        return false;
    }
    o->path = g_strdup(g_hash_table_lookup(h, "path"));
    if ((v = g_hash_table_lookup(h, "fd")) && !parse_fd_number("-chardev", "fd", v, &o->fd,
                                                               errp)) {
        return false;
    }
    if (!o->path == (o->fd < 0)) {
        error_setg(errp, "-chardev socket,id=%s: give exactly one of path= and fd=", o->id);
        return false;
    }
    return true;
}

bool cmdline_parse_chardev(MachineConfig *c, const char *arg, GError **errp)
{
    g_autoptr(GHashTable) h = cmdline_parse_keyval(arg, "backend", errp);
    ChardevOptions *o;
    const char *backend, *v;

    if (!h) {
        return false;
    }
    backend = g_hash_table_lookup(h, "backend");
    o = g_new0(ChardevOptions, 1);
    o->fd = -1;
    g_ptr_array_add(c->chardevs, o);
    o->id = g_strdup(g_hash_table_lookup(h, "id"));
    if (!o->id) {
        error_setg(errp, "-chardev %s: parameter 'id' is missing", backend);
        return false;
    }
    for (unsigned i = 0; i + 1 < c->chardevs->len; i++) {
        if (!strcmp(((ChardevOptions *)g_ptr_array_index(c->chardevs, i))->id, o->id)) {
            error_setg(errp, "-chardev: duplicate id '%s'", o->id);
            return false;
        }
    }
    if (!strcmp(backend, "socket")) {
        o->kind = CHARDEV_SOCKET;
        return parse_chardev_socket(o, h, errp);
    }
    if (!strcmp(backend, "file")) {
        o->kind = CHARDEV_FILE;
        if (!cmdline_check_keys("-chardev file", h, cmdline_keys_chardev_file, errp)) {
            return false;
        }
        o->path = g_strdup(g_hash_table_lookup(h, "path"));
        if (!o->path) {
            error_setg(errp, "-chardev file,id=%s: parameter 'path' is missing", o->id);
            return false;
        }
        return !(v = g_hash_table_lookup(h, "append")) ||
               cmdline_parse_bool("append", v, &o->append, errp);
    }
    if (!strcmp(backend, "pty") || !strcmp(backend, "stdio") || !strcmp(backend, "null")) {
        o->kind = !strcmp(backend, "pty") ? CHARDEV_PTY :
                  !strcmp(backend, "stdio") ? CHARDEV_STDIO : CHARDEV_NULL;
        return cmdline_check_keys("-chardev", h, cmdline_keys_chardev_plain, errp);
    }
    error_setg(errp, "-chardev: backend '%s' is not supported (frostvm knows socket, "
               "pty, file, stdio and null)", backend);
    return false;
}

bool cmdline_parse_mon(MachineConfig *c, const char *arg, GError **errp)
{
    g_autoptr(GHashTable) h = cmdline_parse_keyval(arg, "chardev", errp);
    MonOptions *o;
    const char *mode;

    if (!h || !cmdline_check_keys("-mon", h, cmdline_keys_mon, errp)) {
        return false;
    }
    o = g_new0(MonOptions, 1);
    g_ptr_array_add(c->mons, o);
    o->chardev = g_strdup(g_hash_table_lookup(h, "chardev"));
    if (!o->chardev) {
        error_setg(errp, "-mon: parameter 'chardev' is missing");
        return false;
    }
    mode = g_hash_table_lookup(h, "mode");
    if (mode && strcmp(mode, "control") && strcmp(mode, "readline")) {
        error_setg(errp, "-mon: mode '%s' is not control or readline", mode);
        return false;
    }
    o->control = !g_strcmp0(mode, "control");
    return true;
}

bool cmdline_parse_add_fd(MachineConfig *c, const char *arg, GError **errp)
{
    g_autoptr(GHashTable) h = cmdline_parse_keyval(arg, NULL, errp);
    const char *fd_text, *set_text;
    int fd, set;

    if (!h || !cmdline_check_keys("-add-fd", h, cmdline_keys_add_fd, errp)) {
        return false;
    }
    fd_text = g_hash_table_lookup(h, "fd");
    set_text = g_hash_table_lookup(h, "set");
    if (!fd_text || !set_text) {
        error_setg(errp, "-add-fd: both fd= and set= are required");
        return false;
    }
    if (!parse_fd_number("-add-fd", "fd", fd_text, &fd, errp) ||
        !parse_fd_number("-add-fd", "set", set_text, &set, errp)) {
        return false;
    }
    if (fd <= 2) {
        error_setg(errp, "-add-fd: fd=%d is standard input, output or error", fd);
        return false;
    }
    return fdset_add(c->fdsets, (unsigned)set, fd, g_hash_table_lookup(h, "opaque"), errp);
}

bool cmdline_parse_serial(MachineConfig *c, const char *arg, GError **errp)
{
    if (strcmp(arg, "stdio") && strcmp(arg, "null") && strcmp(arg, "none") &&
        !g_str_has_prefix(arg, "file:")) {
        error_setg(errp, "-serial: '%s' is not supported (use stdio, file:PATH, null "
                   "or none)", arg);
        return false;
    }
    g_free(c->serial);
    c->serial = g_strdup(arg);
    return true;
}

/* isa-serial: frostvm's one 16550A (COM1), connected to a -chardev. */
static bool parse_isa_serial(MachineConfig *c, GHashTable *h, GError **errp)
{
    const char *v;

    if (!cmdline_check_keys("-device isa-serial", h, cmdline_keys_isa_serial, errp)) {
        return false;
    }
    if (((v = g_hash_table_lookup(h, "index")) && strcmp(v, "0")) ||
        ((v = g_hash_table_lookup(h, "iobase")) && g_ascii_strtoull(v, NULL, 0) != 0x3f8) ||
        ((v = g_hash_table_lookup(h, "irq")) && strcmp(v, "4"))) {
        error_setg(errp, "-device isa-serial: frostvm has one serial port, COM1 "
                   "(index=0, iobase=0x3f8, irq=4)");
        return false;
    }
    if (c->serial_chardev) {
        error_setg(errp, "-device isa-serial: COM1 is already connected to chardev '%s'",
                   c->serial_chardev);
        return false;
    }
    if (!(v = g_hash_table_lookup(h, "chardev"))) {
        error_setg(errp, "-device isa-serial: parameter 'chardev' is missing");
        return false;
    }
    c->serial_chardev = g_strdup(v);
    c->serial_device_id = g_strdup(g_hash_table_lookup(h, "id"));
    return true;
}

/* isa-debug-exit: the one frostvm always has, at QEMU's usual port. */
static bool parse_isa_debug_exit(GHashTable *h, GError **errp)
{
    const char *v;

    if (!cmdline_check_keys("-device isa-debug-exit", h, cmdline_keys_isa_debug_exit, errp)) {
        return false;
    }
    if ((v = g_hash_table_lookup(h, "iobase")) && g_ascii_strtoull(v, NULL, 0) != 0xf4) {
        error_setg(errp, "-device isa-debug-exit: only iobase=0xf4 is supported");
        return false;
    }
    return true;
}

bool cmdline_parse_device(MachineConfig *c, const char *arg, GError **errp)
{
    g_autoptr(GHashTable) h = cmdline_parse_opts("-device", arg, "driver", errp);
    const char *driver;

    if (!h) {
        return false;
    }
    driver = g_hash_table_lookup(h, "driver");
    if (!g_strcmp0(driver, "isa-serial")) {
        return parse_isa_serial(c, h, errp);
    }
    if (!g_strcmp0(driver, "isa-debug-exit")) {
        return parse_isa_debug_exit(h, errp);
    }
    error_setg(errp, "-device: '%s' is not supported (frostvm has a built-in "
               "isa-debug-exit at 0xf4 and a 16550A on COM1: isa-serial)",
               driver ? driver : "");
    return false;
}

bool cmdline_check_chardevs(MachineConfig *c, GError **errp)
{
    ChardevOptions *o;

    for (unsigned i = 0; i < c->mons->len; i++) {
        MonOptions *mon = g_ptr_array_index(c->mons, i);

        o = chardev_options_find(c->chardevs, mon->chardev);
        if (!o) {
            error_setg(errp, "-mon: chardev '%s' not found", mon->chardev);
            return false;
        }
        if (o->kind != CHARDEV_SOCKET && o->kind != CHARDEV_STDIO) {
            error_setg(errp, "-mon chardev=%s: a monitor needs a socket or stdio chardev",
                       mon->chardev);
            return false;
        }
    }
    if (!c->serial_chardev) {
        return true;
    }
    if (c->serial) {
        error_setg(errp, "-device isa-serial: COM1 is already given by -serial %s",
                   c->serial);
        return false;
    }
    o = chardev_options_find(c->chardevs, c->serial_chardev);
    if (!o) {
        error_setg(errp, "-device isa-serial: chardev '%s' not found", c->serial_chardev);
        return false;
    }
    if (o->kind == CHARDEV_SOCKET) {
        error_setg(errp, "-device isa-serial: chardev '%s' is a socket; frostvm connects "
                   "the serial port to pty, file, stdio or null", c->serial_chardev);
        return false;
    }
    return true;
}
