/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The QMP protocol: greeting, capabilities negotiation, request checking, dispatch, replies. */
#include "monitor/monitor-internal.h"

#include <stdio.h>
#include <string.h>

#include "config-host.h"
#include "qapi/validate.h"
#include "util/error.h"

#define QMP_CAPABILITIES "qmp_capabilities"

/*
 * The version frostvm claims in "qemu": the QEMU whose command line, QMP and
 * HMP it follows (Debian 12's, the one its benchmarks compare against).
 * Clients read that member as the interface they may use; libvirt refuses
 * anything older than 4.2 and picks its command-line syntax from it.
 * frostvm's own version is in "package".
 */
#define QMP_QEMU_INTERFACE_MAJOR 7
#define QMP_QEMU_INTERFACE_MINOR 2
#define QMP_QEMU_INTERFACE_MICRO 0

JsonNode *qmp_version_info(void)
{
    JsonObject *info = json_object_new();
    JsonObject *triple = json_object_new();

    json_object_set_int_member(triple, "micro", QMP_QEMU_INTERFACE_MICRO);
    json_object_set_int_member(triple, "minor", QMP_QEMU_INTERFACE_MINOR);
    json_object_set_int_member(triple, "major", QMP_QEMU_INTERFACE_MAJOR);
    json_object_set_object_member(info, "qemu", triple);
    json_object_set_string_member(info, "package", "frostvm " FROSTVM_VERSION);
    return qmp_object_node(info);
}

JsonObject *qmp_greeting(void)
{
    JsonObject *greeting = json_object_new();
    JsonObject *qmp = json_object_new();

    json_object_set_member(qmp, "version", qmp_version_info());
    /* No out-of-band execution: every command runs in order on the main loop. */
    json_object_set_array_member(qmp, "capabilities", json_array_new());
    json_object_set_object_member(greeting, "QMP", qmp);
    return greeting;
}

static const char *error_class(const GError *err)
{
    if (err->domain == FROSTVM_ERROR) {
        switch (err->code) {
        case FROSTVM_ERROR_COMMAND_NOT_FOUND:
            return "CommandNotFound";
        case FROSTVM_ERROR_DEVICE_NOT_ACTIVE:
            return "DeviceNotActive";
        case FROSTVM_ERROR_DEVICE_NOT_FOUND:
            return "DeviceNotFound";
        default:
            break;
        }
    }
    return "GenericError";
}

JsonObject *qmp_error_reply(const GError *err)
{
    JsonObject *reply = json_object_new();
    JsonObject *error = json_object_new();

    json_object_set_string_member(error, "class", error_class(err));
    json_object_set_string_member(error, "desc", err->message);
    json_object_set_object_member(reply, "error", error);
    return reply;
}

static JsonNode *qmp_call(Monitor *mon, const QmpCommand *cmd, JsonObject *args,
                          GHashTable *wide_ints, GError **errp)
{
    g_autoptr(JsonObject) empty = NULL;
    g_autoptr(GError) err = NULL;
    JsonNode *ret;

    if (!qapi_check_arguments_wide(mon->schema, cmd->name, args, wide_ints, errp)) {
        return NULL;
    }
    if (!args) {
        /* Handlers may always read members without checking for NULL. */
        empty = json_object_new();
        args = empty;
    }
    ret = cmd->handler(mon->machine, args, &err);
    if (err) {
        if (ret) {
            json_node_unref(ret);
        }
        g_propagate_error(errp, g_steal_pointer(&err));
        return NULL;
    }
    if (!ret) {
        ret = qmp_object_node(json_object_new());
    }
    return ret;
}

static JsonNode *qmp_call_by_name(Monitor *mon, const char *command, JsonObject *args,
                                  GHashTable *wide_ints, GError **errp)
{
    const QmpCommand *cmd = g_hash_table_lookup(mon->qmp_commands, command);

    if (!cmd) {
        g_set_error(errp, FROSTVM_ERROR, FROSTVM_ERROR_COMMAND_NOT_FOUND,
                    "The command %s has not been found", command);
        return NULL;
    }
    return qmp_call(mon, cmd, args, wide_ints, errp);
}

JsonNode *monitor_qmp_call(Monitor *mon, const char *command, JsonObject *args,
                           GError **errp)
{
    return qmp_call_by_name(mon, command, args, NULL, errp);
}

/* qmp_capabilities in negotiation mode: the only state change of a session. */
static bool qmp_negotiate(Monitor *mon, JsonObject *args, bool *negotiated,
                          GError **errp)
{
    JsonNode *enable;

    if (!qapi_check_arguments(mon->schema, QMP_CAPABILITIES, args, errp)) {
        return false;
    }
    enable = args ? json_object_get_member(args, "enable") : NULL;
    if (enable && json_array_get_length(json_node_get_array(enable)) > 0) {
        error_setg(errp, "Capability '%s' is not offered by this server",
                   json_array_get_string_element(json_node_get_array(enable), 0));
        return false;
    }
    /*
     * Events queued by other threads before this moment belong to the
     * sessions that were negotiated then: deliver them before this one joins.
     */
    monitor_events_flush(mon);
    *negotiated = true;
    return true;
}

/* The checks QEMU makes on a request's shape, with its messages. */
static bool qmp_request_check(JsonNode *node, const char **command, JsonObject **args,
                              GError **errp)
{
    JsonObject *req;
    g_autoptr(GList) names = NULL;
    JsonNode *execute, *arguments;

    if (!JSON_NODE_HOLDS_OBJECT(node)) {
        error_setg(errp, "QMP input must be a JSON object");
        return false;
    }
    req = json_node_get_object(node);
    names = json_object_get_members(req);
    for (GList *l = names; l; l = l->next) {
        if (strcmp(l->data, "execute") && strcmp(l->data, "arguments") &&
            strcmp(l->data, "id")) {
            error_setg(errp, "QMP input member '%s' is unexpected",
                       (const char *)l->data);
            return false;
        }
    }
    execute = json_object_get_member(req, "execute");
    if (!execute) {
        error_setg(errp, "QMP input lacks member 'execute'");
        return false;
    }
    if (!JSON_NODE_HOLDS_VALUE(execute) ||
        json_node_get_value_type(execute) != G_TYPE_STRING) {
        error_setg(errp, "QMP input member 'execute' must be a string");
        return false;
    }
    arguments = json_object_get_member(req, "arguments");
    if (arguments && !JSON_NODE_HOLDS_OBJECT(arguments)) {
        error_setg(errp, "QMP input member 'arguments' must be an object");
        return false;
    }
    *command = json_node_get_string(execute);
    *args = arguments ? json_node_get_object(arguments) : NULL;
    return true;
}

/* The reply to one parsed request (@req NULL: it did not parse, @err says why). */
static JsonObject *qmp_dispatch_parsed(Monitor *mon, bool *negotiated, QmpJsonText *req,
                                       GError *err)
{
    JsonNode *request = req ? req->root : NULL;
    JsonNode *ret = NULL;
    JsonNode *id = NULL;
    JsonObject *reply;
    const char *command = NULL;
    JsonObject *args = NULL;

    if (request && JSON_NODE_HOLDS_OBJECT(request)) {
        id = json_object_get_member(json_node_get_object(request), "id");
    }
    if (!request || !qmp_request_check(request, &command, &args, &err)) {
        /* error already set */
    } else if (!*negotiated) {
        if (strcmp(command, QMP_CAPABILITIES)) {
            g_set_error(&err, FROSTVM_ERROR, FROSTVM_ERROR_COMMAND_NOT_FOUND,
                        "Expecting capabilities negotiation with '%s'",
                        QMP_CAPABILITIES);
        } else if (qmp_negotiate(mon, args, negotiated, &err)) {
            ret = qmp_object_node(json_object_new());
        }
    } else {
        ret = qmp_call_by_name(mon, command, args, req->wide_ints, &err);
    }
    if (ret) {
        reply = json_object_new();
        json_object_set_member(reply, "return", ret);
    } else {
        if (!err) {
            g_set_error(&err, FROSTVM_ERROR, FROSTVM_ERROR_GENERIC,
                        "%s failed without saying why", command);
        }
        reply = qmp_error_reply(err);
    }
    if (id) {
        json_object_set_member(reply, "id", json_node_copy(id));
    }
    g_clear_error(&err);
    return reply;
}

JsonObject *qmp_dispatch(Monitor *mon, bool *negotiated, const char *text, gsize len)
{
    GError *err = NULL;
    QmpJsonText req;
    JsonObject *reply;

    if (!qmp_json_parse_text(text, len, &req, &err)) {
        return qmp_dispatch_parsed(mon, negotiated, NULL, err);
    }
    reply = qmp_dispatch_parsed(mon, negotiated, &req, NULL);
    qmp_json_text_clear(&req);
    return reply;
}

char *qmp_dispatch_to_string(Monitor *mon, bool *negotiated, const char *text, gsize len)
{
    GError *err = NULL;
    QmpJsonText req;
    g_autoptr(JsonObject) reply = NULL;
    char *line;

    if (!qmp_json_parse_text(text, len, &req, &err)) {
        reply = qmp_dispatch_parsed(mon, negotiated, NULL, err);
        return qmp_json_reply_to_string(reply, NULL, 0);
    }
    reply = qmp_dispatch_parsed(mon, negotiated, &req, NULL);
    /* QEMU answers with the id only for requests that were objects. */
    line = qmp_json_reply_to_string(reply, json_object_has_member(reply, "id") ?
                                    req.id : NULL, req.id_len);
    qmp_json_text_clear(&req);
    return line;
}

static void qmp_session_send_text(MonitorSession *sess, const char *text)
{
    g_autofree char *line = g_strconcat(text, QMP_LINE_END, NULL);

    monitor_conn_write(sess->conn, line, strlen(line));
}

static void qmp_session_send(MonitorSession *sess, JsonObject *obj)
{
    g_autofree char *text = qmp_json_object_to_string(obj);

    qmp_session_send_text(sess, text);
}

void qmp_session_greet(MonitorSession *sess)
{
    g_autoptr(JsonObject) greeting = qmp_greeting();

    qmp_session_send(sess, greeting);
}

static void qmp_session_text(void *opaque, const char *text, gsize len,
                             const char *error)
{
    MonitorSession *sess = opaque;

    if (error) {
        g_autoptr(GError) err = g_error_new_literal(FROSTVM_ERROR,
                                                    FROSTVM_ERROR_GENERIC, error);
        g_autoptr(JsonObject) reply = qmp_error_reply(err);

        qmp_session_send(sess, reply);
    } else {
        /* getfd takes the descriptors that came over this session's socket. */
        g_autofree char *line = NULL;

        sess->mon->dispatching = sess;
        /* The reply carries the request's id exactly as the client wrote it. */
        line = qmp_dispatch_to_string(sess->mon, &sess->negotiated, text, len);
        sess->mon->dispatching = NULL;
        qmp_session_send_text(sess, line);
    }
}

void qmp_session_input(MonitorSession *sess, const char *data, gsize len)
{
    qmp_framer_feed(sess->framer, data, len, qmp_session_text, sess);
}
