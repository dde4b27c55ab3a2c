/* SPDX-License-Identifier: GPL-2.0-or-later */
/* frostvm's entry point: parse, build the machine, start monitors, run the main loop. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib-unix.h>

#include "accel/accel.h"
#include "migration/migration.h"
#include "monitor/monitor.h"
#include "system/chardev.h"
#include "system/cmdline.h"
#include "system/machine.h"
#include "system/runstate.h"
#include "util/error.h"

static gboolean main_on_signal(gpointer opaque)
{
    Machine *m = opaque;

    runstate_request_shutdown(m, "host-signal", 0);
    return G_SOURCE_CONTINUE;
}

/*
 * -daemonize: the parent waits until the child reports that the machine is up
 * (one byte on a pipe) so that its exit status says whether start-up worked,
 * as QEMU's does. Must run before any thread exists.
 */
static int main_daemonize(void)
{
    int fds[2];
    pid_t pid;

    if (pipe2(fds, O_CLOEXEC) < 0) {
        perror("frostvm: -daemonize: pipe");
        exit(1);
    }
    pid = fork();
    if (pid < 0) {
        perror("frostvm: -daemonize: fork");
        exit(1);
    }
    if (pid > 0) {
        char c;
        ssize_t n;

        close(fds[1]);
        do {
            n = read(fds[0], &c, 1);
        } while (n < 0 && errno == EINTR);
        _exit(n == 1 ? 0 : 1);
    }
    close(fds[0]);
    setsid();
    return fds[1];
}

static void main_daemon_ready(int ready_fd)
{
    int null = open("/dev/null", O_RDWR);

    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        close(null);
    }
    if (write(ready_fd, "", 1) != 1) {
        /* The parent is gone; nothing to tell. */
    }
    close(ready_fd);
}

static bool main_write_pidfile(const char *path, GError **errp)
{
    g_autofree char *text = g_strdup_printf("%d\n", (int)getpid());
    GError *err = NULL;

    if (!g_file_set_contents(path, text, -1, &err)) {
        error_setg(errp, "-pidfile %s: %s", path, err->message);
        g_error_free(err);
        return false;
    }
    return true;
}

/* Errors for the user, time-stamped with -msg timestamp=on as QEMU's are. */
static void main_error(const MachineConfig *c, const char *msg)
{
    g_autofree char *stamp = NULL;

    if (c && c->msg_timestamp) {
        g_autoptr(GDateTime) now = g_date_time_new_now_utc();

        stamp = g_date_time_format(now, "%Y-%m-%dT%H:%M:%S.%fZ ");
    }
    fprintf(stderr, "%sfrostvm: %s\n", stamp ? stamp : "", msg);
}

/* Monitors on -chardev sockets (-mon chardev=ID[,mode=control]), as libvirt gives them. */
static bool main_start_mon_options(Machine *m, GError **errp)
{
    MachineConfig *c = m->config;

    for (unsigned i = 0; i < c->mons->len; i++) {
        MonOptions *mon = g_ptr_array_index(c->mons, i);
        ChardevOptions *o = chardev_options_find(c->chardevs, mon->chardev);

        if (!monitor_add_chardev(m->monitor, o, mon->control, errp)) {
            return false;
        }
    }
    return true;
}

static bool main_start_monitors(Machine *m, GError **errp)
{
    MachineConfig *c = m->config;

    m->monitor = monitor_new(m);
    /* Explicit order: core commands, then each subsystem's table. */
    monitor_register_qmp(m->monitor, monitor_qmp_commands);
    monitor_register_qmp(m->monitor, monitor_qmp_machine_commands);
    monitor_register_qmp(m->monitor, monitor_qmp_fd_commands);
    monitor_register_qmp(m->monitor, monitor_qmp_qom_commands);
    monitor_register_qmp(m->monitor, monitor_qmp_introspect_commands);
    monitor_register_qmp(m->monitor, monitor_qmp_device_commands);
    monitor_register_qmp(m->monitor, migration_qmp_commands);
    monitor_register_hmp(m->monitor, monitor_hmp_commands);
    monitor_register_hmp(m->monitor, monitor_hmp_machine_commands);
    monitor_register_hmp(m->monitor, migration_hmp_commands);

    for (unsigned i = 0; i < c->qmp->len; i++) {
        if (!monitor_add_qmp(m->monitor, g_ptr_array_index(c->qmp, i), errp)) {
            return false;
        }
    }
    for (unsigned i = 0; i < c->monitors->len; i++) {
        if (!monitor_add_hmp(m->monitor, g_ptr_array_index(c->monitors, i), errp)) {
            return false;
        }
    }
    return main_start_mon_options(m, errp);
}

/* Load the kernel (or wait for an incoming stream) and start the vCPUs unless -S. */
static bool main_start_guest(Machine *m, GError **errp)
{
    MachineConfig *c = m->config;

    if (!machine_has_guest(m)) {
        /* -machine none: nothing to load or run; the monitors answer. */
        return true;
    }
    if (c->incoming) {
        runstate_set(m, RUN_STATE_INMIGRATE);
        if (!runstate_create_vcpus(m, errp)) {
            return false;
        }
        if (!strcmp(c->incoming, "defer")) {
            return true;
        }
        return migration_incoming_start(m, c->incoming, errp);
    }
    if (m->accel == &kvm_accel_ops || c->kernel) {
        if (!machine_load_kernel(m, errp)) {
            return false;
        }
    }
    if (c->start_paused) {
        /* Parked, but there: their thread ids are in query-cpus-fast from the start. */
        return runstate_create_vcpus(m, errp);
    }
    return runstate_vm_start(m, errp);
}

int main(int argc, char **argv)
{
    g_autoptr(GError) err = NULL;
    MachineConfig *config;
    Machine *m;
    bool exit_now;
    int ready_fd = -1;
    int status;

    /* A sink or client that goes away must give EPIPE, never kill the VM. */
    signal(SIGPIPE, SIG_IGN);

    config = cmdline_parse(argc - 1, argv + 1, &exit_now, &err);
    if (!config) {
        main_error(NULL, err->message);
        return 1;
    }
    if (exit_now) {
        machine_config_free(config);
        return 0;
    }
    if (config->debug) {
        g_setenv("G_MESSAGES_DEBUG", "all", TRUE);
    }
    if (config->daemonize) {
        ready_fd = main_daemonize();
    }

    m = config->machine_none ? machine_new_none(config, &err) : machine_new(config, &err);
    if (!m) {
        main_error(config, err->message);
        machine_config_free(config);
        return 1;
    }
    if (m->accel_fallback_note) {
        /* QEMU says so too when it falls back from one -accel to the next. */
        main_error(config, m->accel_fallback_note);
    }
    m->main_loop = g_main_loop_new(m->main_context, FALSE);
    m->migration = migration_new(m);
    if (config->restore_mode) {
        MigrationRestoreMode mode = MIGRATION_RESTORE_LAZY;

        /* Checked by the command line parser already. */
        migration_restore_mode_from_name(config->restore_mode, &mode);
        m->migration->parameters.restore_mode = (int)mode;
    }
    if (config->restore_base) {
        migration_set_path_parameter(m->migration, "restore-base", config->restore_base, NULL);
    }
    for (guint i = 0; config->capabilities && i < config->capabilities->len; i++) {
        MachineCapabilitySetting *set = &g_array_index(config->capabilities,
                                                       MachineCapabilitySetting, i);

        /* The capability's own checks (the name was checked by the parser). */
        if (!migration_set_capability(m->migration, (MigrationCapability)set->cap, set->on,
                                      &err)) {
            g_prefix_error(&err, "-global migration.x-%s: ",
                           migration_capability_name((MigrationCapability)set->cap));
            main_error(config, err->message);
            status = 1;
            goto out;
        }
    }

    if (!main_start_monitors(m, &err) ||
        (config->pidfile && !main_write_pidfile(config->pidfile, &err)) ||
        !main_start_guest(m, &err)) {
        main_error(config, err->message);
        status = 1;
        goto out;
    }
    g_unix_signal_add(SIGINT, main_on_signal, m);
    g_unix_signal_add(SIGTERM, main_on_signal, m);
    g_unix_signal_add(SIGHUP, main_on_signal, m);
    if (ready_fd >= 0) {
        main_daemon_ready(ready_fd);
    }

    g_main_loop_run(m->main_loop);

    status = m->exit_status;
    if (status && m->shutdown_reason && !g_str_has_prefix(m->shutdown_reason, "guest-") &&
        !g_str_has_prefix(m->shutdown_reason, "host-")) {
        main_error(config, m->shutdown_reason);
    }

out:
    runstate_vm_stop(m, RUN_STATE_SHUTDOWN);
    migration_free(m->migration);
    m->migration = NULL;
    if (m->monitor) {
        monitor_free(m->monitor);
        m->monitor = NULL;
    }
    g_main_loop_unref(m->main_loop);
    if (config->pidfile) {
        unlink(config->pidfile);
    }
    machine_free(m);
    machine_config_free(config);
    return status;
}
