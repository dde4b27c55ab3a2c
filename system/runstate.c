/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Run states, and the one place that stops, starts and shuts down the machine. */
#include "system/runstate.h"

#include <string.h>

#include "accel/accel.h"
#include "monitor/monitor.h"
#include "system/machine.h"
#include "util/error.h"

static const char *const runstate_names[RUN_STATE__MAX] = {
    [RUN_STATE_PRELAUNCH] = "prelaunch",
    [RUN_STATE_RUNNING] = "running",
    [RUN_STATE_PAUSED] = "paused",
    [RUN_STATE_INMIGRATE] = "inmigrate",
    [RUN_STATE_POSTMIGRATE] = "postmigrate",
    [RUN_STATE_FINISH_MIGRATE] = "finish-migrate",
    [RUN_STATE_RESTORE_VM] = "restore-vm",
    [RUN_STATE_SAVE_VM] = "save-vm",
    [RUN_STATE_SHUTDOWN] = "shutdown",
    [RUN_STATE_INTERNAL_ERROR] = "internal-error",
    [RUN_STATE_GUEST_PANICKED] = "guest-panicked",
};

const char *runstate_name(RunState state)
{
    g_assert(state < RUN_STATE__MAX);
    return runstate_names[state];
}

RunState runstate_get(Machine *m)
{
    RunState s;

    g_mutex_lock(&m->runstate_lock);
    s = m->runstate;
    g_mutex_unlock(&m->runstate_lock);
    return s;
}

bool runstate_is_running(Machine *m)
{
    return runstate_get(m) == RUN_STATE_RUNNING;
}

void runstate_set(Machine *m, RunState state)
{
    g_mutex_lock(&m->runstate_lock);
    m->runstate = state;
    g_mutex_unlock(&m->runstate_lock);
}

static void runstate_emit(Machine *m, const char *event)
{
    if (m->monitor) {
        monitor_emit_event(m->monitor, event, NULL);
    }
}

/* Stop the vCPUs and enter @state; STOP only when @emit (a shutdown sends SHUTDOWN alone). */
static void runstate_stop(Machine *m, RunState state, bool emit)
{
    bool was_running;

    g_mutex_lock(&m->transition_lock);
    was_running = runstate_is_running(m);
    /*
     * The state changes only once every vCPU is parked, so nobody who reads
     * "paused" can still see the guest change memory.
     */
    if (was_running && m->vcpus_started) {
        /* A throttled vCPU may be asleep for up to a second: wake it to park. */
        cpu_throttle_hold(&m->throttle, true);
        m->accel->pause_vcpus(m);
    }
    runstate_set(m, state);
    g_mutex_unlock(&m->transition_lock);
    if (was_running && emit) {
        runstate_emit(m, "STOP");
    }
}

bool runstate_create_vcpus(Machine *m, GError **errp)
{
    bool ok = true;

    g_mutex_lock(&m->transition_lock);
    if (!m->vcpus_started) {
        ok = m->accel->start_vcpus(m, errp);
        m->vcpus_started = ok;
    }
    g_mutex_unlock(&m->transition_lock);
    return ok;
}

void runstate_with_vcpus_parked(Machine *m, void (*fn)(void *opaque), void *opaque)
{
    bool running;

    g_mutex_lock(&m->transition_lock);
    running = runstate_is_running(m) && m->vcpus_started;
    if (running) {
        cpu_throttle_hold(&m->throttle, true);
        m->accel->pause_vcpus(m);
    }
    fn(opaque);
    if (running) {
        cpu_throttle_hold(&m->throttle, false);
        m->accel->resume_vcpus(m);
    }
    g_mutex_unlock(&m->transition_lock);
}

void runstate_vm_stop(Machine *m, RunState state)
{
    runstate_stop(m, state, true);
}

bool runstate_vm_start(Machine *m, GError **errp)
{
    RunState s;

    g_mutex_lock(&m->transition_lock);
    s = runstate_get(m);
    switch (s) {
    case RUN_STATE_RUNNING:
        g_mutex_unlock(&m->transition_lock);
        return true;
    case RUN_STATE_INMIGRATE:
        /* As QEMU: 'cont' while waiting for a migration means "run once loaded". */
        m->config->start_paused = false;
        g_mutex_unlock(&m->transition_lock);
        return true;
    case RUN_STATE_SHUTDOWN:
    case RUN_STATE_INTERNAL_ERROR:
    case RUN_STATE_GUEST_PANICKED:
        g_mutex_unlock(&m->transition_lock);
        error_setg(errp, "Resetting the Virtual Machine is required (state %s)",
                   runstate_name(s));
        return false;
    default:
        break;
    }
    if (!machine_has_guest(m)) {
        g_mutex_unlock(&m->transition_lock);
        error_setg(errp, "The 'none' machine has no guest to run");
        return false;
    }
    if (!m->vcpus_started) {
        if (!m->accel->start_vcpus(m, errp)) {
            g_mutex_unlock(&m->transition_lock);
            return false;
        }
        m->vcpus_started = true;
    }
    runstate_set(m, RUN_STATE_RUNNING);
    cpu_throttle_hold(&m->throttle, false);
    m->accel->resume_vcpus(m);
    g_mutex_unlock(&m->transition_lock);
    runstate_emit(m, "RESUME");
    return true;
}

typedef struct ShutdownRequest {
    Machine *m;
    char *reason;
} ShutdownRequest;

/*
 * -no-shutdown, as QEMU: a power-off (by the guest, or the power switch)
 * leaves the process stopped in "shutdown" for the manager to inspect and
 * kill; quit, signals and errors still exit.
 */
static bool runstate_shutdown_stays(Machine *m, const char *reason)
{
    return m->config && m->config->no_shutdown && strcmp(reason, "host-qmp-quit") &&
           strcmp(reason, "host-signal") && strcmp(reason, "host-error");
}

static gboolean runstate_shutdown_cb(gpointer opaque)
{
    ShutdownRequest *req = opaque;
    Machine *m = req->m;
    JsonObject *data = json_object_new();

    bool stay = runstate_shutdown_stays(m, req->reason);

    runstate_stop(m, RUN_STATE_SHUTDOWN, false);
    json_object_set_boolean_member(data, "guest",
                                   g_str_has_prefix(req->reason, "guest"));
    json_object_set_string_member(data, "reason", req->reason);
    if (m->monitor) {
        monitor_emit_event(m->monitor, "SHUTDOWN", data);
    } else {
        json_object_unref(data);
    }
    if (stay) {
        /* A later quit or signal must still end the process. */
        g_mutex_lock(&m->runstate_lock);
        m->shutdown_requested = false;
        g_mutex_unlock(&m->runstate_lock);
        return G_SOURCE_REMOVE;
    }
    if (m->main_loop) {
        g_main_loop_quit(m->main_loop);
    }
    return G_SOURCE_REMOVE;
}

static void shutdown_request_free(gpointer opaque)
{
    ShutdownRequest *req = opaque;

    g_free(req->reason);
    g_free(req);
}

void runstate_request_shutdown(Machine *m, const char *reason, int exit_status)
{
    ShutdownRequest *req;

    g_mutex_lock(&m->runstate_lock);
    if (m->shutdown_requested) {
        g_mutex_unlock(&m->runstate_lock);
        return;
    }
    m->shutdown_requested = true;
    /* After -no-shutdown kept the process, a later request replaces the reason. */
    g_free(m->shutdown_reason);
    m->shutdown_reason = g_strdup(reason);
    m->exit_status = exit_status;
    g_mutex_unlock(&m->runstate_lock);

    req = g_new0(ShutdownRequest, 1);
    req->m = m;
    req->reason = g_strdup(reason);
    /*
     * Always through a source on the main context: a vCPU thread must not stop
     * the vCPUs itself, a QMP reply must go out before SHUTDOWN, and an invoke
     * from a thread before the loop runs would run inline and lose the quit.
     */
    GSource *src = g_idle_source_new();

    g_source_set_priority(src, G_PRIORITY_HIGH);
    g_source_set_callback(src, runstate_shutdown_cb, req, shutdown_request_free);
    g_source_attach(src, m->main_context);
    g_source_unref(src);
}
