/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Run states as QEMU names them, and the one place that changes them. */
#ifndef SYSTEM_RUNSTATE_H
#define SYSTEM_RUNSTATE_H

#include <stdbool.h>
#include <glib.h>

typedef struct Machine Machine;

typedef enum {
    RUN_STATE_PRELAUNCH,       /* -S: not started yet */
    RUN_STATE_RUNNING,
    RUN_STATE_PAUSED,          /* stopped by the user ("stop") */
    RUN_STATE_INMIGRATE,       /* waiting for / loading an incoming migration */
    RUN_STATE_POSTMIGRATE,     /* source after a completed outgoing migration */
    RUN_STATE_FINISH_MIGRATE,  /* stopped to complete a migration */
    RUN_STATE_RESTORE_VM,      /* loading state */
    RUN_STATE_SAVE_VM,         /* stopped to save state */
    RUN_STATE_SHUTDOWN,
    RUN_STATE_INTERNAL_ERROR,
    RUN_STATE_GUEST_PANICKED,
    RUN_STATE__MAX,
} RunState;

/* QEMU's name for @state ("running", "paused", "postmigrate", ...). */
const char *runstate_name(RunState state);

/* Current state (locked read). */
RunState runstate_get(Machine *m);

/* True when the vCPUs run. */
bool runstate_is_running(Machine *m);

/*
 * Stop the vCPUs (all of them have left guest mode when this returns) and enter
 * @state. Emits STOP if they were running. Any thread may call it.
 */
void runstate_vm_stop(Machine *m, RunState state);

/*
 * Start or resume the vCPUs and enter "running"; emits RESUME. Fails (with a
 * reason) in states from which the guest cannot run (inmigrate, shutdown...).
 */
bool runstate_vm_start(Machine *m, GError **errp);

/*
 * Run @fn(@opaque) with every vCPU parked, without a change of run state or
 * an event: for brief work the guest must never see half done, such as
 * replacing the memory under its RAM. A stop or start meanwhile waits.
 * Any thread but a vCPU's.
 */
void runstate_with_vcpus_parked(Machine *m, void (*fn)(void *opaque), void *opaque);

/*
 * Create the vCPU threads, parked, if they are not yet: as QEMU has them from
 * the start, so a manager that asks for their thread ids before the first
 * cont (libvirt starts every domain with -S) gets them. False if the
 * accelerator could not start them.
 */
bool runstate_create_vcpus(Machine *m, GError **errp);

/* Enter @state without touching the vCPUs (for transitions while stopped). */
void runstate_set(Machine *m, RunState state);

/*
 * Ask the main loop to shut the machine down (guest exit port, QMP quit,
 * signal). Thread-safe; @reason goes into the SHUTDOWN event ("host-qmp-quit",
 * "guest-shutdown", "host-signal"). @exit_status becomes the process status.
 */
void runstate_request_shutdown(Machine *m, const char *reason, int exit_status);

#endif
