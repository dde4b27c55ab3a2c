/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A small blocking QMP client for tests: connect, negotiate, run commands, wait for events. */
#ifndef TESTS_FUNCTIONAL_QMP_CLIENT_H
#define TESTS_FUNCTIONAL_QMP_CLIENT_H

#include <stdbool.h>
#include <glib.h>
#include <json-glib/json-glib.h>

typedef struct QmpClient QmpClient;

/* Error domain of failures the server reported ({"error": ...}). */
#define QMP_CLIENT_ERROR (qmp_client_error_quark())
GQuark qmp_client_error_quark(void);

typedef enum {
    QMP_CLIENT_ERROR_REPLY,      /* the server answered with an error */
    QMP_CLIENT_ERROR_IO,         /* connection lost, bad JSON, protocol */
    QMP_CLIENT_ERROR_TIMEOUT,
} QmpClientErrorCode;

/*
 * Connect to the unix socket @path, retrying until it accepts (at most
 * @timeout_ms: the server may still be starting), and read the greeting.
 */
QmpClient *qmp_client_connect(const char *path, int timeout_ms, GError **errp);

/* Wrap a connected socket (takes ownership) and read the greeting. */
QmpClient *qmp_client_new_from_fd(int fd, GError **errp);

/* qmp_client_connect() followed by qmp_client_negotiate(). */
QmpClient *qmp_client_open(const char *path, int timeout_ms, GError **errp);

/* The greeting's "QMP" object (owned by the client). */
JsonObject *qmp_client_greeting(QmpClient *c);

/* Send qmp_capabilities. */
bool qmp_client_negotiate(QmpClient *c, GError **errp);

/* How long a command may take before its reply (default 30 s). */
void qmp_client_set_timeout(QmpClient *c, int timeout_ms);

/*
 * Send {"execute": @command, "arguments": @args} (@args transfer none, may be
 * NULL) and return the whole reply object (transfer full), events that
 * arrive meanwhile are kept for qmp_client_wait_event().
 */
JsonObject *qmp_client_request(QmpClient *c, const char *command, JsonObject *args,
                               GError **errp);

/*
 * Like qmp_client_request() but returns the "return" value (transfer full);
 * an error reply becomes a QMP_CLIENT_ERROR_REPLY error whose message is the
 * desc, and qmp_client_last_error_class() tells its class.
 */
JsonNode *qmp_client_execute(QmpClient *c, const char *command, JsonObject *args,
                             GError **errp);

/* The same with the arguments as JSON text ("{\"uri\": \"exec:cat > f\"}"). */
JsonNode *qmp_client_execute_json(QmpClient *c, const char *command,
                                  const char *args_json, GError **errp);

/* The class of the last error reply ("GenericError", ...), or NULL. */
const char *qmp_client_last_error_class(QmpClient *c);

/* Run an HMP line through human-monitor-command; returns its output. */
char *qmp_client_hmp(QmpClient *c, const char *line, GError **errp);

/* Send raw text (a newline is not added) and read the next non-event message. */
bool qmp_client_send_raw(QmpClient *c, const char *text, gsize len, GError **errp);
JsonObject *qmp_client_read_reply(QmpClient *c, GError **errp);

/*
 * Wait for the event @name: first among the events already received (the
 * oldest match is taken out), then reading for at most @timeout_ms.
 * Returns the whole event object (transfer full).
 */
JsonObject *qmp_client_wait_event(QmpClient *c, const char *name, int timeout_ms,
                                  GError **errp);

/* Events received and not yet taken (JsonObject *; owned by the client). */
GPtrArray *qmp_client_events(QmpClient *c);

/*
 * Wait until the server closes the connection (after quit), at most
 * @timeout_ms; events read meanwhile are kept.
 */
bool qmp_client_wait_closed(QmpClient *c, int timeout_ms, GError **errp);

/* The socket, for tests that need to poke at it. */
int qmp_client_fd(QmpClient *c);

void qmp_client_free(QmpClient *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmpClient, qmp_client_free)

#endif
