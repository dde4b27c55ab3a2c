/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What the monitor's files share: the Monitor struct, connections, sessions, JSON framing. */
#ifndef MONITOR_MONITOR_INTERNAL_H
#define MONITOR_MONITOR_INTERNAL_H

#include <stdbool.h>
#include <glib.h>
#include <json-glib/json-glib.h>

#include "monitor/monitor.h"
#include "qapi/schema.h"

/* More than this much input without a complete JSON value is refused. */
#define QMP_INPUT_MAX (1024 * 1024)
/* Deeper nesting is refused before json-glib recurses into it. */
#define QMP_NESTING_MAX 1024
/* A client that lets this much output pile up unread is disconnected. */
#define MONITOR_OUTPUT_MAX (64 * 1024 * 1024)
/*
 * QMP output ends each reply and event with CR LF, as QEMU's monitor does;
 * libvirt splits its input on exactly that.
 */
#define QMP_LINE_END "\r\n"
/* HMP lines longer than this are refused. */
#define HMP_LINE_MAX (64 * 1024)

/* ---- connections (monitor-conn.c) ---- */

typedef struct MonitorConn MonitorConn;

/* Bytes arrived; @len > 0. */
typedef void (*MonitorConnInput)(void *opaque, const char *data, gsize len);
/*
 * The connection is finished (peer gone, write error, or end of input with all
 * output flushed). The callee frees the connection; nothing touches it after.
 */
typedef void (*MonitorConnClosed)(void *opaque);

/*
 * Watch @in_fd for input and write output to @out_fd on @ctx. With @owned the
 * fds are sockets this monitor accepted: made non-blocking, closed on free.
 * Otherwise (stdio) they stay blocking, end of input only stops reading, and
 * output is written in pieces small enough never to block.
 * @in_fd may be -1 (no input).
 */
MonitorConn *monitor_conn_new(GMainContext *ctx, int in_fd, int out_fd, bool owned,
                              MonitorConnInput on_input, MonitorConnClosed on_closed,
                              void *opaque);
/* Queue output; written as the peer accepts it. */
void monitor_conn_write(MonitorConn *c, const char *data, gsize len);
/* Write what is queued, waiting at most @timeout_ms in total (for shutdown). */
void monitor_conn_flush(MonitorConn *c, int timeout_ms);
/* Bytes queued and not yet written. */
gsize monitor_conn_pending(MonitorConn *c);
/*
 * The oldest descriptor the peer passed with SCM_RIGHTS and nobody took yet
 * (the caller owns it), or -1.
 */
int monitor_conn_take_fd(MonitorConn *c);
void monitor_conn_free(MonitorConn *c);

/* ---- listeners and specs (monitor-server.c) ---- */

typedef enum {
    MONITOR_SPEC_STDIO,
    MONITOR_SPEC_UNIX,
    MONITOR_SPEC_TCP,
} MonitorSpecKind;

typedef struct MonitorSpec {
    MonitorSpecKind kind;
    char *path;        /* unix */
    char *host;        /* tcp; "" means every address */
    char *port;        /* tcp */
    bool wait;         /* block in monitor_add_*() until the first client */
    bool nodelay;
} MonitorSpec;

/*
 * Parse "stdio", "unix:PATH,server=on,wait=off" (or the old ",server,nowait"),
 * "tcp:HOST:PORT,server=on,wait=off". Only server mode exists; wait defaults to
 * on as in QEMU.
 */
bool monitor_spec_parse(const char *text, MonitorSpec *spec, GError **errp);
void monitor_spec_clear(MonitorSpec *spec);

typedef enum {
    MONITOR_KIND_QMP,
    MONITOR_KIND_HMP,
} MonitorKind;

/* Open a listener (or stdio) for @spec and attach sessions of @kind to it. */
bool monitor_server_add(Monitor *mon, MonitorKind kind, const char *spec,
                        GError **errp);
/* Close every listener (removing unix socket files). */
void monitor_servers_close(Monitor *mon);
/* Free function of Monitor.listeners. */
void monitor_listener_free(gpointer listener);

/* ---- sessions (one per client; qmp.c, hmp.c) ---- */

typedef struct QmpFramer QmpFramer;

typedef struct MonitorSession {
    Monitor *mon;
    MonitorKind kind;
    MonitorConn *conn;
    bool stdio;            /* on the process's stdin/stdout */
    bool negotiated;       /* QMP: qmp_capabilities done */
    QmpFramer *framer;     /* QMP input */
    GString *line;         /* HMP input */
    bool line_overflow;    /* HMP: discarding up to the next newline */
} MonitorSession;

/* Start a session on an accepted or stdio connection: greeting or banner. */
void monitor_session_start(Monitor *mon, MonitorKind kind, int in_fd, int out_fd,
                           bool owned);
/* Forget and free a session (its connection ended or the monitor closes). */
void monitor_session_free(MonitorSession *sess);

void qmp_session_input(MonitorSession *sess, const char *data, gsize len);
void qmp_session_greet(MonitorSession *sess);
void hmp_session_input(MonitorSession *sess, const char *data, gsize len);
void hmp_session_greet(MonitorSession *sess);

/* ---- the monitor ---- */

typedef struct MonitorListener MonitorListener;

struct Monitor {
    Machine *machine;
    GMainContext *context;
    QapiSchema *schema;
    GHashTable *qmp_commands;     /* name -> const QmpCommand * */
    GPtrArray *qmp_order;         /* const QmpCommand *, registration order */
    GHashTable *hmp_commands;     /* name ("info status") -> const HmpCommand * */
    GPtrArray *hmp_order;         /* const HmpCommand * */
    GPtrArray *listeners;         /* MonitorListener * */
    GPtrArray *sessions;          /* MonitorSession * */

    MonitorSession *dispatching;  /* the QMP session whose command runs now, or NULL */
    GHashTable *named_fds;        /* getfd name -> descriptor (GINT_TO_POINTER) */

    GMutex event_lock;            /* guards the three fields below */
    GQueue pending_events;        /* events emitted off the main loop */
    GSource *event_source;        /* idle source that delivers them */
    unsigned events_held;         /* monitor_events_hold() depth: queue, wake nobody */
};

/* The QMP side of run-state.json and quit (qmp-cmds.c), shared with HMP. */
JsonNode *qmp_quit(Machine *m, JsonObject *args, GError **errp);
JsonNode *qmp_query_status(Machine *m, JsonObject *args, GError **errp);
JsonNode *qmp_stop(Machine *m, JsonObject *args, GError **errp);
JsonNode *qmp_cont(Machine *m, JsonObject *args, GError **errp);
JsonNode *qmp_system_powerdown(Machine *m, JsonObject *args, GError **errp);

/* Close every descriptor getfd kept (qmp-cmds-fds.c), for monitor_free(). */
void monitor_fds_close(Monitor *mon);

/* machine.json (qmp-cmds-machine.c). */
JsonNode *qmp_query_kvm(Machine *m, JsonObject *args, GError **errp);
/* "/machine/unattached/device[N]", vCPU @index's path in the object tree (g_free). */
char *monitor_vcpu_qom_path(unsigned index);

/* The built-in tables monitor_new() registers (protocol commands, help). */
extern const QmpCommand monitor_qmp_builtin_commands[];
extern const HmpCommand monitor_hmp_builtin_commands[];

/* ---- QMP dispatch (qmp-dispatch.c) ---- */

/* Deliver the events other threads queued to the sessions negotiated now (main thread). */
void monitor_events_flush(Monitor *mon);

/*
 * Handle one complete JSON text from a client and return the reply object
 * (transfer full). @negotiated is the client's state, updated by
 * qmp_capabilities. Used by the socket sessions and by tests directly.
 */
JsonObject *qmp_dispatch(Monitor *mon, bool *negotiated, const char *text, gsize len);
/*
 * The same, returning the reply as one line of text (no newline) whose "id"
 * is the request's id byte for byte, whatever JSON value it is.
 */
char *qmp_dispatch_to_string(Monitor *mon, bool *negotiated, const char *text, gsize len);

/* {"error": {"class": ..., "desc": ...}} for @err (id added by the caller). */
JsonObject *qmp_error_reply(const GError *err);

/* The greeting object. */
JsonObject *qmp_greeting(void);

/* query-version's value: {"qemu": {...}, "package": "frostvm X.Y.Z"}. */
JsonNode *qmp_version_info(void);

/* ---- JSON text (qmp-json-parse.c, qmp-json.c) ---- */

/* One parsed JSON text and what a JsonNode tree cannot hold. */
typedef struct QmpJsonText {
    JsonNode *root;
    /*
     * JsonNode * set (NULL when empty): integers above INT64_MAX up to
     * UINT64_MAX, stored as int64 nodes holding their uint64 bits, so that
     * 18446744073709551615 and -1 can be told apart by the argument checker.
     */
    GHashTable *wide_ints;
    /* The top-level object's "id" member exactly as sent (points into the input). */
    const char *id;
    gsize id_len;
} QmpJsonText;

/*
 * Parse exactly one JSON text by RFC 8259: no leading zeros, hex, bare
 * fractions, single quotes, raw control characters or invalid UTF-8; duplicate
 * keys refused as QEMU does. \u0000 is kept as the bytes C0 80 (QEMU's
 * modified UTF-8) and written back as \u0000. Errors read "JSON parse error,
 * <reason>" with QEMU's reasons: "stray '01'" for a lexical error (the token
 * up to the byte that cannot continue it), "expecting value", "duplicate key".
 */
bool qmp_json_parse_text(const char *text, gsize len, QmpJsonText *out, GError **errp);
void qmp_json_text_clear(QmpJsonText *t);
/* The same, for callers that need only the tree (transfer full). @len -1: NUL-terminated. */
JsonNode *qmp_json_parse(const char *text, gssize len, GError **errp);

/*
 * A reply as one line of text: @reply serialized without its "id" member,
 * then "id" with @id (@id_len bytes) exactly as the client sent it, line
 * breaks between its tokens turned into spaces so the reply stays one line.
 * @id NULL: no id.
 */
char *qmp_json_reply_to_string(JsonObject *reply, const char *id, gsize id_len);

/* Serialize with QEMU's spacing ({"a": 1, "b": [1, 2]}), ASCII only. */
void qmp_json_append(GString *out, JsonNode *node);
char *qmp_json_to_string(JsonNode *node);
char *qmp_json_object_to_string(JsonObject *obj);

/* ---- JSON stream framing (qmp-framer.c) ---- */

/*
 * Called for each complete top-level JSON text, or with @text NULL and an
 * @error message ("JSON parse error, ...") when input had to be dropped.
 */
typedef void (*QmpFramerEmit)(void *opaque, const char *text, gsize len,
                              const char *error);

QmpFramer *qmp_framer_new(gsize max_input);
/*
 * Split a byte stream into JSON texts: objects and arrays by bracket counting
 * outside strings (so they may span lines, and several may share one), bare
 * scalars and garbage up to the next whitespace or bracket.
 */
void qmp_framer_feed(QmpFramer *f, const char *data, gsize len, QmpFramerEmit emit,
                     void *opaque);
/* Bytes of an incomplete text held back. */
gsize qmp_framer_buffered(QmpFramer *f);
void qmp_framer_free(QmpFramer *f);

/* ---- HMP (hmp.c, hmp-parse.c) ---- */

/*
 * Split an HMP line into words. Whitespace separates words; double quotes
 * (with \" \\ \n \t escapes) and single quotes (literal) group, also in the
 * middle of a word: exec:'cat > f' is one word, exec:cat > f.
 */
bool hmp_split_line(const char *line, GStrv *argv, GError **errp);

/*
 * Check @argc/@argv (argv[0] the command) against a params string like
 * "[-d] uri [extra]": flags, required and optional words. On failure the
 * message is QEMU's ("migrate: missing argument 'uri'", "...extraneous
 * characters at the end of line").
 */
bool hmp_check_params(const char *name, const char *params, int argc, char **argv,
                      GError **errp);

/* Run one HMP line, appending its output ('\n' line ends) to @out. */
void hmp_dispatch_line(Monitor *mon, const char *line, GString *out);

/* Turn '\n' into "\r\n" as QEMU's monitor does on output. */
char *hmp_crlf(const char *text);

#endif
