/* SPDX-License-Identifier: GPL-2.0-or-later */
/* exec: migration channels: the command under /bin/sh -c, its pipe, its exit status. */
#include "migration/channel.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "migration/channels/channel-internal.h"
#include "util/error.h"
#include "util/proc-stat.h"

/* Large pipe buffers cut the number of wake-ups per megabyte tenfold. */
#define EXEC_PIPE_SIZE (1 << 20)

/*
 * The command starts through posix_spawn(), which glibc does with a vfork-like
 * clone that shares our memory until the exec. A fork() copies frostvm's page
 * tables under its mmap lock held for writing: 0.6-1.4 ms here (bpftrace,
 * mmap_lock tracepoints), during which a vCPU that page-faults waits (0.3-0.4
 * ms seen at the start of each exec: migration).
 *
 * What the command gets: the pipe as stdin (outgoing) or stdout (incoming,
 * stdin from /dev/null); no other descriptor of ours; an empty signal mask
 * and default SIGPIPE even if frostvm ignores it or the calling thread blocks
 * signals; its own process group, so a failed migration can stop a pipeline
 * as a whole; and, when asked, SCHED_IDLE from its first instruction, which
 * it inherits from this thread (posix_spawn's scheduler attribute knows only
 * the real-time policies and SCHED_OTHER).
 */
static int exec_spawn(MigrationChannel *ch, char **argv, int child_end, pid_t *pid)
{
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    struct sched_param idle = { 0 }, old_param;
    int old_policy = sched_getscheduler(0);
    bool lowered = false, narrowed;
    cpu_set_t own_cpus;
    sigset_t none, dfl;
    int ret;

    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, child_end,
                                     ch->outgoing ? STDIN_FILENO : STDOUT_FILENO);
    if (!ch->outgoing) {
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    }
    posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGPIPE);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &dfl);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                    POSIX_SPAWN_SETPGROUP);
    if (ch->child_idle && old_policy >= 0 && old_policy != SCHED_IDLE &&
        sched_getparam(0, &old_param) == 0) {
        lowered = sched_setscheduler(0, SCHED_IDLE, &idle) == 0;
    }
    /*
     * Its CPUs likewise, from its first instruction: narrowed only once
     * running, `sh` and `pv` took a vCPU's CPU for 0.9 ms as they started.
     */
    narrowed = ch->has_child_cpus && sched_getaffinity(0, sizeof(own_cpus), &own_cpus) == 0 &&
               sched_setaffinity(0, sizeof(ch->child_cpus), &ch->child_cpus) == 0;
    ret = posix_spawn(pid, argv[0], &actions, &attr, argv, environ);
    if (narrowed) {
        sched_setaffinity(0, sizeof(own_cpus), &own_cpus);
    }
    if (lowered) {
        sched_setscheduler(0, old_policy, &old_param);
    }
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    return ret;
}

bool channel_exec_start(MigrationChannel *ch, GError **errp)
{
    char *argv[] = { "/bin/sh", "-c", ch->target, NULL };
    int pipefd[2];
    pid_t pid;
    int fd, flags, ret;

    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        error_setg_errno(errp, errno, "%s: cannot create a pipe", ch->uri);
        return false;
    }
    /* The command reads the stream (outgoing) or writes it (incoming). */
    fd = ch->outgoing ? pipefd[1] : pipefd[0];
    ret = exec_spawn(ch, argv, ch->outgoing ? pipefd[0] : pipefd[1], &pid);
    close(ch->outgoing ? pipefd[0] : pipefd[1]);
    if (ret) {
        close(fd);
        error_setg(errp, "%s: cannot start /bin/sh: %s", ch->uri, g_strerror(ret));
        return false;
    }
    ch->pid = pid;
    ch->fd = fd;
    flags = fcntl(fd, F_GETFL);
    if (flags >= 0) {
        fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    }
    /* Best effort: unprivileged users may be capped by pipe-max-size. */
    fcntl(fd, F_SETPIPE_SZ, EXEC_PIPE_SIZE);
    return true;
}

/* The process group of @pid (field 5 of /proc/PID/stat), or -1. */
static pid_t exec_pgrp_of(const char *pid)
{
    char path[300];
    long long pgrp;

    snprintf(path, sizeof(path), "/proc/%s/stat", pid);
    return proc_stat_field(path, 5, &pgrp) ? (pid_t)pgrp : -1;
}

/* Call @fn on every thread of process @pid. */
static void exec_process_threads(const char *pid, void (*fn)(pid_t tid, const void *arg),
                                 const void *arg)
{
    char path[300];
    struct dirent *t;
    DIR *d;

    snprintf(path, sizeof(path), "/proc/%s/task", pid);
    d = opendir(path);
    if (!d) {
        return;
    }
    while ((t = readdir(d))) {
        if (t->d_name[0] != '.') {
            fn((pid_t)atoi(t->d_name), arg);
        }
    }
    closedir(d);
}

/* Call @fn on every thread of the command's pipeline: its process group (exec_child_setup()). */
static void exec_child_threads(MigrationChannel *ch, void (*fn)(pid_t tid, const void *arg),
                               const void *arg)
{
    struct dirent *e;
    DIR *proc;

    if (!ch->pid || ch->child_exited) {
        return;
    }
    proc = opendir("/proc");
    if (!proc) {
        return;
    }
    while ((e = readdir(proc))) {
        if (e->d_name[0] >= '1' && e->d_name[0] <= '9' && exec_pgrp_of(e->d_name) == ch->pid) {
            exec_process_threads(e->d_name, fn, arg);
        }
    }
    closedir(proc);
}

static void thread_set_policy(pid_t tid, const void *arg)
{
    struct sched_param param = { 0 };

    sched_setscheduler(tid, *(const int *)arg, &param);
}

void channel_set_child_idle(MigrationChannel *ch, bool idle)
{
    int policy = idle ? SCHED_IDLE : SCHED_BATCH;

    if (ch->kind != MIGRATION_CHANNEL_EXEC) {
        return;
    }
    ch->child_idle = idle;
    /* Not started yet: it starts so (exec_spawn()). */
    exec_child_threads(ch, thread_set_policy, &policy);
}

static void thread_set_cpus(pid_t tid, const void *arg)
{
    sched_setaffinity(tid, sizeof(cpu_set_t), arg);
}

static void thread_set_nice(pid_t tid, const void *arg)
{
    setpriority(PRIO_PROCESS, (id_t)tid, *(const int *)arg);
}

void channel_set_child_nice(MigrationChannel *ch, int nice)
{
    if (ch->kind == MIGRATION_CHANNEL_EXEC) {
        exec_child_threads(ch, thread_set_nice, &nice);
    }
}

void channel_set_child_cpus(MigrationChannel *ch, const cpu_set_t *cpus)
{
    if (ch->kind != MIGRATION_CHANNEL_EXEC) {
        return;
    }
    ch->child_cpus = *cpus;
    ch->has_child_cpus = true;
    /* Not started yet: it starts there (exec_spawn()). */
    exec_child_threads(ch, thread_set_cpus, cpus);
}

static bool exec_try_reap(MigrationChannel *ch)
{
    int status;
    pid_t r;

    if (ch->child_exited) {
        return true;
    }
    do {
        r = waitpid(ch->pid, &status, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == ch->pid || (r < 0 && errno == ECHILD)) {
        /* ECHILD: someone else reaped it; report a clean exit we cannot see. */
        ch->child_status = r == ch->pid ? status : 0;
        ch->child_exited = true;
        return true;
    }
    return false;
}

static int64_t exec_now_ms(void)
{
    return g_get_monotonic_time() / 1000;
}

bool channel_exec_wait(MigrationChannel *ch, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : exec_now_ms() + timeout_ms;
    int pidfd = (int)syscall(SYS_pidfd_open, ch->pid, 0);
    bool done = false;

    while (!(done = exec_try_reap(ch))) {
        int64_t left = deadline - exec_now_ms();
        struct pollfd p[2] = {
            { .fd = ch->cancel_fd, .events = POLLIN },
            { .fd = pidfd, .events = POLLIN },
        };

        if (left <= 0) {
            break;
        }
        /* Without pidfd (old kernels) poll the child every 10 ms. */
        if (poll(p, pidfd >= 0 ? 2 : 1, pidfd >= 0 ? (int)MIN(left, 1000) : 10) > 0 &&
            p[0].revents) {
            done = exec_try_reap(ch);
            break;
        }
    }
    if (pidfd >= 0) {
        close(pidfd);
    }
    return done;
}

void channel_exec_kill(MigrationChannel *ch)
{
    int status = 0;

    if (!ch->pid || ch->child_exited) {
        return;
    }
    /* The group first (a pipeline's other members), then the shell itself. */
    kill(-ch->pid, SIGKILL);
    kill(ch->pid, SIGKILL);
    while (waitpid(ch->pid, &status, 0) < 0 && errno == EINTR) {
    }
    ch->child_status = status;
    ch->child_exited = true;
}

char *channel_exec_describe_status(int status)
{
    if (WIFEXITED(status)) {
        return g_strdup_printf("exited with status %d", WEXITSTATUS(status));
    }
    if (WIFSIGNALED(status)) {
        return g_strdup_printf("was killed by signal %d (%s)", WTERMSIG(status),
                               strsignal(WTERMSIG(status)));
    }
    return g_strdup_printf("ended with wait status 0x%x", status);
}
