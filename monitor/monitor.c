/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The monitor context: command tables, sessions, and events broadcast to QMP clients. */
#include "monitor/monitor.h"

#include "monitor/monitor-internal.h"
#include "qapi/validate.h"
#include "system/machine.h"
#include "util/error.h"

/* How long monitor_free() lets clients drain their last replies and events. */
#define MONITOR_CLOSE_FLUSH_MS 500

typedef struct PendingEvent {
    char *name;
    JsonObject *data;
    gint64 time_us;      /* when it was emitted, not when it is delivered */
} PendingEvent;

Monitor *monitor_new(Machine *m)
{
    Monitor *mon = g_new0(Monitor, 1);
    g_autoptr(GError) err = NULL;

    mon->machine = m;
    mon->context = g_main_context_ref(m && m->main_context ? m->main_context
                                                          : g_main_context_default());
    mon->schema = qapi_schema_load_builtin(&err);
    if (!mon->schema) {
        /* The schema is compiled in: a broken one is a build bug, not input. */
        g_error("monitor: the built-in command schema is broken: %s", err->message);
    }
    mon->qmp_commands = g_hash_table_new(g_str_hash, g_str_equal);
    mon->qmp_order = g_ptr_array_new();
    mon->hmp_commands = g_hash_table_new(g_str_hash, g_str_equal);
    mon->hmp_order = g_ptr_array_new();
    mon->listeners = g_ptr_array_new_with_free_func(monitor_listener_free);
    mon->sessions = g_ptr_array_new();
    mon->named_fds = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_mutex_init(&mon->event_lock);
    g_queue_init(&mon->pending_events);
    if (m && !m->monitor) {
        m->monitor = mon;
    }
    monitor_register_qmp(mon, monitor_qmp_builtin_commands);
    monitor_register_hmp(mon, monitor_hmp_builtin_commands);
    return mon;
}

void monitor_register_qmp(Monitor *mon, const QmpCommand *table)
{
    for (const QmpCommand *cmd = table; cmd->name; cmd++) {
        if (!qapi_schema_find_command(mon->schema, cmd->name)) {
            g_error("monitor: QMP command '%s' is registered but missing from the "
                    "schema (qapi/ JSON files)", cmd->name);
        }
        if (g_hash_table_contains(mon->qmp_commands, cmd->name)) {
            g_error("monitor: QMP command '%s' is registered twice", cmd->name);
        }
        g_hash_table_insert(mon->qmp_commands, (gpointer)cmd->name, (gpointer)cmd);
        g_ptr_array_add(mon->qmp_order, (gpointer)cmd);
    }
}

void monitor_register_hmp(Monitor *mon, const HmpCommand *table)
{
    for (const HmpCommand *cmd = table; cmd->name; cmd++) {
        if (g_hash_table_contains(mon->hmp_commands, cmd->name)) {
            g_error("monitor: HMP command '%s' is registered twice", cmd->name);
        }
        g_hash_table_insert(mon->hmp_commands, (gpointer)cmd->name, (gpointer)cmd);
        g_ptr_array_add(mon->hmp_order, (gpointer)cmd);
    }
}

bool monitor_add_qmp(Monitor *mon, const char *spec, GError **errp)
{
    return monitor_server_add(mon, MONITOR_KIND_QMP, spec, errp);
}

bool monitor_add_hmp(Monitor *mon, const char *spec, GError **errp)
{
    return monitor_server_add(mon, MONITOR_KIND_HMP, spec, errp);
}

/* ---- sessions ---- */

static void session_input_cb(void *opaque, const char *data, gsize len)
{
    MonitorSession *sess = opaque;

    if (sess->kind == MONITOR_KIND_QMP) {
        qmp_session_input(sess, data, len);
    } else {
        hmp_session_input(sess, data, len);
    }
}

static void session_closed_cb(void *opaque)
{
    monitor_session_free(opaque);
}

void monitor_session_start(Monitor *mon, MonitorKind kind, int in_fd, int out_fd,
                           bool owned)
{
    MonitorSession *sess = g_new0(MonitorSession, 1);

    sess->mon = mon;
    sess->kind = kind;
    sess->stdio = !owned;
    if (kind == MONITOR_KIND_QMP) {
        sess->framer = qmp_framer_new(QMP_INPUT_MAX);
    } else {
        sess->line = g_string_new(NULL);
    }
    sess->conn = monitor_conn_new(mon->context, in_fd, out_fd, owned, session_input_cb,
                                  session_closed_cb, sess);
    g_ptr_array_add(mon->sessions, sess);
    if (kind == MONITOR_KIND_QMP) {
        qmp_session_greet(sess);
    } else {
        hmp_session_greet(sess);
    }
}

void monitor_session_free(MonitorSession *sess)
{
    if (sess->mon->dispatching == sess) {
        sess->mon->dispatching = NULL;
    }
    g_ptr_array_remove(sess->mon->sessions, sess);
    monitor_conn_free(sess->conn);
    qmp_framer_free(sess->framer);
    if (sess->line) {
        g_string_free(sess->line, TRUE);
    }
    g_free(sess);
}

/* ---- events ---- */

static void event_deliver(Monitor *mon, const char *name, JsonObject *data,
                          gint64 time_us)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) event = json_object_new();
    JsonObject *timestamp = json_object_new();
    g_autofree char *text = NULL;
    g_autofree char *line = NULL;

    /* A mismatch is a bug in the emitter; clients still get the event. */
    if (!qapi_check_event(mon->schema, name, data, &err)) {
        g_critical("monitor: event %s does not match the schema: %s", name,
                   err->message);
    }
    json_object_set_int_member(timestamp, "seconds", time_us / G_USEC_PER_SEC);
    json_object_set_int_member(timestamp, "microseconds", time_us % G_USEC_PER_SEC);
    json_object_set_object_member(event, "timestamp", timestamp);
    json_object_set_string_member(event, "event", name);
    if (data) {
        json_object_set_object_member(event, "data", json_object_ref(data));
    }
    text = qmp_json_object_to_string(event);
    line = g_strconcat(text, QMP_LINE_END, NULL);
    for (guint i = 0; i < mon->sessions->len; i++) {
        MonitorSession *sess = g_ptr_array_index(mon->sessions, i);

        if (sess->kind == MONITOR_KIND_QMP && sess->negotiated) {
            monitor_conn_write(sess->conn, line, strlen(line));
        }
    }
}

static void pending_event_free(gpointer p)
{
    PendingEvent *ev = p;

    g_free(ev->name);
    if (ev->data) {
        json_object_unref(ev->data);
    }
    g_free(ev);
}

/* Deliver what other threads queued, oldest first. */
void monitor_events_flush(Monitor *mon)
{
    GQueue taken = G_QUEUE_INIT;
    PendingEvent *ev;

    g_mutex_lock(&mon->event_lock);
    taken = mon->pending_events;
    g_queue_init(&mon->pending_events);
    if (mon->event_source) {
        g_source_destroy(mon->event_source);
        g_source_unref(mon->event_source);
        mon->event_source = NULL;
    }
    g_mutex_unlock(&mon->event_lock);
    while ((ev = g_queue_pop_head(&taken))) {
        event_deliver(mon, ev->name, ev->data, ev->time_us);
        pending_event_free(ev);
    }
}

static gboolean events_pending_cb(gpointer opaque)
{
    monitor_events_flush(opaque);
    return G_SOURCE_REMOVE;
}

/* Have the main loop deliver the queue. Called with event_lock held. */
static void events_schedule_locked(Monitor *mon)
{
    if (!mon->event_source) {
        mon->event_source = g_idle_source_new();
        g_source_set_priority(mon->event_source, G_PRIORITY_DEFAULT);
        g_source_set_callback(mon->event_source, events_pending_cb, mon, NULL);
        g_source_attach(mon->event_source, mon->context);
    }
}

void monitor_emit_event(Monitor *mon, const char *name, JsonObject *data)
{
    PendingEvent *ev;
    gint64 now = g_get_real_time();

    /*
     * Whoever owns the context runs the main loop and may touch the sessions;
     * everybody else (vCPU, migration threads) hands the event over.
     */
    if (g_main_context_is_owner(mon->context)) {
        monitor_events_flush(mon);
        event_deliver(mon, name, data, now);
        if (data) {
            json_object_unref(data);
        }
        return;
    }
    ev = g_new0(PendingEvent, 1);
    ev->name = g_strdup(name);
    ev->data = data;
    ev->time_us = now;
    g_mutex_lock(&mon->event_lock);
    g_queue_push_tail(&mon->pending_events, ev);
    if (!mon->events_held) {
        events_schedule_locked(mon);
    }
    g_mutex_unlock(&mon->event_lock);
}

void monitor_events_hold(Monitor *mon)
{
    if (!mon) {
        return;
    }
    g_mutex_lock(&mon->event_lock);
    mon->events_held++;
    g_mutex_unlock(&mon->event_lock);
}

void monitor_events_release(Monitor *mon)
{
    if (!mon) {
        return;
    }
    g_mutex_lock(&mon->event_lock);
    g_assert(mon->events_held > 0);
    if (--mon->events_held == 0 && !g_queue_is_empty(&mon->pending_events)) {
        events_schedule_locked(mon);
    }
    g_mutex_unlock(&mon->event_lock);
}

void monitor_free(Monitor *mon)
{
    gint64 deadline;

    if (!mon) {
        return;
    }
    monitor_events_flush(mon);
    monitor_servers_close(mon);
    /* Let clients read the last replies and SHUTDOWN before they lose us. */
    deadline = g_get_monotonic_time() + MONITOR_CLOSE_FLUSH_MS * 1000;
    for (guint i = 0; i < mon->sessions->len; i++) {
        MonitorSession *sess = g_ptr_array_index(mon->sessions, i);
        gint64 left = (deadline - g_get_monotonic_time()) / 1000;

        if (left > 0) {
            monitor_conn_flush(sess->conn, (int)left);
        }
    }
    while (mon->sessions->len) {
        monitor_session_free(g_ptr_array_index(mon->sessions, 0));
    }
    if (mon->machine && mon->machine->monitor == mon) {
        mon->machine->monitor = NULL;
    }
    g_ptr_array_unref(mon->listeners);
    g_ptr_array_unref(mon->sessions);
    monitor_fds_close(mon);
    g_hash_table_unref(mon->qmp_commands);
    g_ptr_array_unref(mon->qmp_order);
    g_hash_table_unref(mon->hmp_commands);
    g_ptr_array_unref(mon->hmp_order);
    qapi_schema_free(mon->schema);
    g_mutex_clear(&mon->event_lock);
    g_main_context_unref(mon->context);
    g_free(mon);
}
