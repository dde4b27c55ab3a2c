/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What /proc tells about a process's threads (see proc-threads.h). */
#include "proc-threads.h"

#include <string.h>
#include <sys/resource.h>

#include "util/proc-stat.h"

static char *proc_path(pid_t pid, const char *tid, const char *file)
{
    return tid ? g_strdup_printf("/proc/%d/task/%s/%s", (int)pid, tid, file)
               : g_strdup_printf("/proc/%d/%s", (int)pid, file);
}

guint64 proc_allowed_cpus(pid_t pid, const char *tid)
{
    g_autofree char *path = proc_path(pid, tid, "status");
    g_autofree char *text = NULL;
    guint64 mask = 0;
    const char *line;

    if (!g_file_get_contents(path, &text, NULL, NULL) ||
        !(line = strstr(text, "Cpus_allowed_list:"))) {
        return 0;
    }
    line += strlen("Cpus_allowed_list:");
    while (*line && *line != '\n') {
        char *end;
        guint64 lo = g_ascii_strtoull(line, &end, 10), hi = lo;

        if (end == line) {
            line++;
            continue;
        }
        if (*end == '-') {
            line = end + 1;
            hi = g_ascii_strtoull(line, &end, 10);
        }
        for (guint64 c = lo; c <= hi && c < 64; c++) {
            mask |= 1ull << c;
        }
        line = end;
    }
    return mask;
}

int proc_nice(pid_t pid, const char *tid)
{
    g_autofree char *path = proc_path(pid, tid, "stat");
    long long nice;

    return proc_stat_field(path, 19, &nice) ? (int)nice : 100;
}

/* The name of thread @tid of @pid, or NULL (g_free). */
static char *thread_comm(pid_t pid, const char *tid)
{
    g_autofree char *path = proc_path(pid, tid, "comm");
    char *comm = NULL;

    return g_file_get_contents(path, &comm, NULL, NULL) ? g_strchomp(comm) : NULL;
}

static GDir *task_dir(pid_t pid)
{
    g_autofree char *dir_path = g_strdup_printf("/proc/%d/task", (int)pid);

    return g_dir_open(dir_path, 0, NULL);
}

char *proc_thread_named(pid_t pid, const char *prefix)
{
    g_autoptr(GDir) dir = task_dir(pid);
    const char *tid;

    while (dir && (tid = g_dir_read_name(dir))) {
        g_autofree char *comm = thread_comm(pid, tid);

        if (comm && g_str_has_prefix(comm, prefix)) {
            return g_strdup(tid);
        }
    }
    return NULL;
}

unsigned proc_threads_named(pid_t pid, const char *name)
{
    g_autoptr(GDir) dir = task_dir(pid);
    const char *tid;
    unsigned n = 0;

    while (dir && (tid = g_dir_read_name(dir))) {
        g_autofree char *comm = thread_comm(pid, tid);

        n += comm && !strcmp(comm, name);
    }
    return n;
}

pid_t proc_child_of(pid_t pid)
{
    g_autoptr(GDir) proc = g_dir_open("/proc", 0, NULL);
    const char *name;

    while (proc && (name = g_dir_read_name(proc))) {
        g_autofree char *path = g_strdup_printf("/proc/%s/stat", name);
        long long ppid;

        if (name[0] >= '1' && name[0] <= '9' && proc_stat_field(path, 4, &ppid) &&
            ppid == pid) {
            return (pid_t)g_ascii_strtoll(name, NULL, 10);
        }
    }
    return 0;
}

bool proc_may_lower_nice(void)
{
    g_autofree char *status = NULL;
    struct rlimit rl;
    const char *cap;

    if (getrlimit(RLIMIT_NICE, &rl) == 0 && (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= 20)) {
        return true;
    }
    return g_file_get_contents("/proc/self/status", &status, NULL, NULL) &&
           (cap = strstr(status, "CapEff:")) &&
           (g_ascii_strtoull(cap + strlen("CapEff:"), NULL, 16) & (1ull << 23));
}
