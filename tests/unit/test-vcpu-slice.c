/* SPDX-License-Identifier: GPL-2.0-or-later */
/* accel/vcpu-thread.c: a vCPU thread asks for a short time slice, and gets it. */
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <glib.h>

#include "accel/accel.h"

/* se.slice of thread @tid in ns, from /proc (0 where the kernel does not show it). */
static guint64 thread_slice_ns(pid_t tid)
{
    g_autofree char *path = g_strdup_printf("/proc/self/task/%d/sched", (int)tid);
    g_autofree char *text = NULL;
    const char *line;

    if (!g_file_get_contents(path, &text, NULL, NULL) || !(line = strstr(text, "se.slice"))) {
        return 0;
    }
    line = strchr(line, ':');
    return line ? g_ascii_strtoull(line + 1, NULL, 10) : 0;
}

typedef struct SliceResult {
    bool asked;
    guint64 before_ns, after_ns;
} SliceResult;

static gpointer slice_thread(gpointer opaque)
{
    SliceResult *r = opaque;
    pid_t tid = (pid_t)syscall(SYS_gettid);

    r->before_ns = thread_slice_ns(tid);
    r->asked = accel_vcpu_short_slice(100 * 1000);
    r->after_ns = thread_slice_ns(tid);
    return NULL;
}

/* In a thread of its own, as a vCPU: the slice becomes 100 us; other threads keep theirs. */
static void test_short_slice(void)
{
    SliceResult r = { 0 };
    guint64 mine = thread_slice_ns((pid_t)syscall(SYS_gettid));

    g_thread_join(g_thread_new("slice", slice_thread, &r));
    if (!r.before_ns) {
        g_test_skip("this kernel does not show se.slice in /proc (before Linux 6.6)");
        return;
    }
    if (!r.asked) {
        g_test_skip("this kernel refused a custom slice (before Linux 6.12)");
        return;
    }
    g_assert_cmpuint(r.after_ns, ==, 100 * 1000);
    g_assert_cmpuint(r.before_ns, >, r.after_ns);
    g_assert_cmpuint(thread_slice_ns((pid_t)syscall(SYS_gettid)), ==, mine);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/accel/vcpu/short-slice", test_short_slice);
    return g_test_run();
}
