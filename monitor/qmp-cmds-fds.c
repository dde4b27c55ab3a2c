/* SPDX-License-Identifier: GPL-2.0-or-later */
/* getfd and closefd: descriptors QMP clients pass over the socket, kept by name for fd: URIs. */
#include "monitor/monitor-internal.h"

#include <unistd.h>

#include "system/machine.h"
#include "util/error.h"

static JsonNode *qmp_getfd(Machine *m, JsonObject *args, GError **errp)
{
    Monitor *mon = m->monitor;
    const char *name = json_object_get_string_member(args, "fdname");
    gpointer old;
    int fd;

    /* fd:N means descriptor number N, so a name may not look like one. */
    if (g_ascii_isdigit(name[0])) {
        error_setg(errp, "Parameter 'fdname' may not start with a digit");
        return NULL;
    }
    fd = mon->dispatching ? monitor_conn_take_fd(mon->dispatching->conn) : -1;
    if (fd < 0) {
        error_setg(errp, "No file descriptor supplied via SCM_RIGHTS");
        return NULL;
    }
    if (g_hash_table_lookup_extended(mon->named_fds, name, NULL, &old)) {
        close(GPOINTER_TO_INT(old));
    }
    g_hash_table_insert(mon->named_fds, g_strdup(name), GINT_TO_POINTER(fd));
    return NULL;
}

static JsonNode *qmp_closefd(Machine *m, JsonObject *args, GError **errp)
{
    int fd = monitor_fd_take(m->monitor, json_object_get_string_member(args, "fdname"),
                             errp);

    if (fd >= 0) {
        close(fd);
    }
    return NULL;
}

int monitor_fd_take(Monitor *mon, const char *name, GError **errp)
{
    gpointer key, fd;

    if (!g_hash_table_steal_extended(mon->named_fds, name, &key, &fd)) {
        error_setg(errp, "File descriptor named '%s' not found", name);
        return -1;
    }
    g_free(key);
    return GPOINTER_TO_INT(fd);
}

void monitor_fds_close(Monitor *mon)
{
    GHashTableIter it;
    gpointer fd;

    g_hash_table_iter_init(&it, mon->named_fds);
    while (g_hash_table_iter_next(&it, NULL, &fd)) {
        close(GPOINTER_TO_INT(fd));
    }
    g_hash_table_unref(mon->named_fds);
}

const QmpCommand monitor_qmp_fd_commands[] = {
    { "getfd", qmp_getfd },
    { "closefd", qmp_closefd },
    { NULL, NULL },
};
