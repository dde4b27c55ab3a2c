/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The monitors (QMP and HMP): command tables, events, servers. */
#ifndef MONITOR_MONITOR_H
#define MONITOR_MONITOR_H

#include <stdbool.h>
#include <glib.h>
#include <json-glib/json-glib.h>

typedef struct Machine Machine;
typedef struct Monitor Monitor;

/*
 * A QMP command. Arguments have been checked against the schema (the qapi/ JSON files)
 * before the handler runs. The handler returns the "return" value (transfer
 * full; NULL means {}), or sets @errp. Runs on the main thread.
 */
typedef JsonNode *(*QmpHandler)(Machine *m, JsonObject *args, GError **errp);

typedef struct QmpCommand {
    const char *name;
    QmpHandler handler;
} QmpCommand;

/*
 * An HMP command. The line has been split into words (double and single
 * quotes group words, as in QEMU's HMP and shells); argv[0] is the command
 * name, and for "info NAME" the dispatcher drops "info" so argv[0] is NAME.
 * Output goes to @out, one '\n' per line. Runs on the main thread.
 */
typedef bool (*HmpHandler)(Machine *m, int argc, char **argv, GString *out,
                           GError **errp);

typedef struct HmpCommand {
    const char *name;      /* "migrate", or "info migrate" for info subcommands */
    const char *params;    /* usage, e.g. "[-d] uri" */
    const char *help;      /* one line */
    HmpHandler handler;
} HmpCommand;

/* Create the monitor context (no servers yet). */
Monitor *monitor_new(Machine *m);

/*
 * Add a table of commands, terminated by an entry with name NULL. Called from
 * main in explicit order. Every QMP command must exist in the schema.
 */
void monitor_register_qmp(Monitor *mon, const QmpCommand *table);
void monitor_register_hmp(Monitor *mon, const HmpCommand *table);

/*
 * Start a QMP server for a QEMU-style spec ("unix:PATH,server=on,wait=off",
 * "tcp:127.0.0.1:4444,server=on,wait=off") or an HMP monitor ("stdio",
 * "unix:PATH,server=on,wait=off").
 */
bool monitor_add_qmp(Monitor *mon, const char *spec, GError **errp);
bool monitor_add_hmp(Monitor *mon, const char *spec, GError **errp);

/*
 * Broadcast an event to every QMP client that finished negotiation, with a
 * timestamp. @data may be NULL (transfer full). Thread-safe: from another
 * thread it is queued to the main loop.
 */
void monitor_emit_event(Monitor *mon, const char *name, JsonObject *data);

/* Run one HMP line as human-monitor-command does; returns its output. */
char *monitor_hmp_run(Monitor *mon, const char *line, GError **errp);

/* Close every server and client. */
void monitor_free(Monitor *mon);

#endif
