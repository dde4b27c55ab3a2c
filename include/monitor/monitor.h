/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The monitors (QMP and HMP): command tables, events, servers. */
#ifndef MONITOR_MONITOR_H
#define MONITOR_MONITOR_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include <json-glib/json-glib.h>

typedef struct Machine Machine;
typedef struct Monitor Monitor;
typedef struct ChardevOptions ChardevOptions;

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

/*
 * Wrap @obj in a new node, taking the caller's reference (transfer full):
 * json_node_init_object() would add a reference and leak the caller's.
 */
static inline JsonNode *qmp_object_node(JsonObject *obj)
{
    JsonNode *node = json_node_init_object(json_node_alloc(), obj);

    json_object_unref(obj);
    return node;
}

/* The same for @array: json_node_init_array() also adds a reference. */
static inline JsonNode *qmp_array_node(JsonArray *array)
{
    JsonNode *node = json_node_init_array(json_node_alloc(), array);

    json_array_unref(array);
    return node;
}

/*
 * Create the monitor context (no servers yet) on @m's main context, load the
 * built-in schema and register the protocol's own commands (qmp_capabilities,
 * query-version, query-commands, human-monitor-command; HMP help and
 * info version). Sets m->monitor when it is NULL. @m must not be NULL.
 */
Monitor *monitor_new(Machine *m);

/*
 * The core tables (monitor/qmp-cmds.c, monitor/hmp-cmds.c): quit,
 * query-status, stop, cont; HMP info status, stop, cont, quit. main registers
 * them, then migration's.
 */
extern const QmpCommand monitor_qmp_commands[];
extern const HmpCommand monitor_hmp_commands[];

/*
 * machine.json (monitor/qmp-cmds-machine.c): query-kvm, query-target,
 * query-machines, query-cpus-fast; HMP info kvm.
 */
extern const QmpCommand monitor_qmp_machine_commands[];
extern const HmpCommand monitor_hmp_machine_commands[];

/* getfd, closefd (monitor/qmp-cmds-fds.c). */
extern const QmpCommand monitor_qmp_fd_commands[];
/* qom.json (monitor/qmp-cmds-qom.c): qom-list-types, qom-list, *-list-properties. */
extern const QmpCommand monitor_qmp_qom_commands[];
/* introspect.json (monitor/qmp-cmds-introspect.c): query-qmp-schema, query-command-line-options. */
extern const QmpCommand monitor_qmp_introspect_commands[];
/* devices.json (monitor/qmp-cmds-devices.c): query-chardev, query-block, query-iothreads. */
extern const QmpCommand monitor_qmp_device_commands[];

/*
 * Add a table of commands, terminated by an entry with name NULL. Called from
 * main in explicit order. Every QMP command must exist in the schema.
 */
void monitor_register_qmp(Monitor *mon, const QmpCommand *table);
void monitor_register_hmp(Monitor *mon, const HmpCommand *table);

/*
 * Start a QMP server for a QEMU-style spec ("unix:PATH,server=on,wait=off",
 * "tcp:127.0.0.1:4444,server=on,wait=off") or an HMP monitor ("stdio",
 * "unix:PATH,server=on,wait=off"). Both kinds take all three forms, and the
 * old ",server,nowait". As in QEMU, wait defaults to on: the call blocks
 * until the first client connects. On stdio, end of input only stops
 * reading; the process should ignore SIGPIPE so that a closed stdout ends
 * only the monitor (sockets never raise it).
 */
bool monitor_add_qmp(Monitor *mon, const char *spec, GError **errp);

/*
 * A monitor on a -chardev (-mon chardev=ID): a QMP one with @control, else
 * HMP. A socket given by fd= (a listening socket the manager bound) is
 * accepted on for the life of the process, so clients may reconnect by its
 * path; path= listens there; stdio uses the terminal.
 */
bool monitor_add_chardev(Monitor *mon, const ChardevOptions *o, bool control,
                         GError **errp);

/*
 * Take the descriptor a QMP client named with getfd (SCM_RIGHTS), as QEMU's
 * fd: migration URIs do: the caller owns it afterwards. -1 with @errp set
 * when no descriptor has that name. Main thread only.
 */
int monitor_fd_take(Monitor *mon, const char *name, GError **errp);

/* Whether @spec is a monitor address monitor_add_qmp() would take; opens nothing. */
bool monitor_spec_check(const char *spec, GError **errp);
bool monitor_add_hmp(Monitor *mon, const char *spec, GError **errp);

/*
 * Broadcast an event to every QMP client that finished negotiation, with a
 * timestamp. @data may be NULL (transfer full). Thread-safe: from another
 * thread it is queued to the main loop.
 */
void monitor_emit_event(Monitor *mon, const char *name, JsonObject *data);

/*
 * Between hold and release, events from other threads are queued with
 * their time but the main loop is not woken: a guest's pause should not
 * hand its CPU to the main loop and the client reading the event. Nested
 * holds count; @mon may be NULL.
 */
void monitor_events_hold(Monitor *mon);
void monitor_events_release(Monitor *mon);

/*
 * Run one HMP line as human-monitor-command does; returns its output
 * (g_free), with "\r\n" line ends as QEMU's. As in QEMU, a failing HMP
 * command is not an error here: its message ("Error: ...", "unknown
 * command: 'foo'") is the output. @errp is kept for the interface.
 */
char *monitor_hmp_run(Monitor *mon, const char *line, GError **errp);

/*
 * Call a registered QMP command by name, arguments checked against the
 * schema (@args: transfer none, NULL means {}). Returns the "return" value
 * (transfer full) or NULL with @errp set. For HMP handlers that want exactly
 * what QMP does. Main thread only.
 */
JsonNode *monitor_qmp_call(Monitor *mon, const char *command, JsonObject *args,
                           GError **errp);

/*
 * Helpers for HMP handlers. The dispatcher has already checked argv against
 * HmpCommand.params ("[-d] uri"): flags come first, then the words.
 *
 * hmp_has_flag: true when the line has "-@flag" among its leading flags.
 * hmp_arg: the @index-th word after the flags (0-based), or NULL.
 * Commands without flags in params may take words that start with '-'
 * ("-1"); they should read argv directly.
 */
bool hmp_has_flag(int argc, char **argv, char flag);
const char *hmp_arg(int argc, char **argv, int index);

/* "on"/"off" as QEMU's HMP; the error says "Expected 'on' or 'off'". */
bool hmp_parse_on_off(const char *word, bool *value, GError **errp);

/*
 * A size with an optional binary suffix (B, K, M, G, T, P, E; case-insensitive,
 * decimal fractions allowed: "1.5G"); a bare number is in @default_unit bytes
 * (QEMU's migrate_set_parameter max-bandwidth takes MiB). Error: "Invalid size WORD".
 */
bool hmp_parse_size(const char *word, uint64_t default_unit, uint64_t *value,
                    GError **errp);

/*
 * Deliver queued events, give clients up to half a second to read what is
 * pending (the quit reply, SHUTDOWN), then close every server and client and
 * clear m->monitor. Call after the threads that emit events have stopped.
 */
void monitor_free(Monitor *mon);

#endif
