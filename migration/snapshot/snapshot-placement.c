/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Where a background snapshot's own threads run: off the CPUs the vCPUs are
 * on, when the machine has CPUs to spare. The snapshot's threads yield to the
 * vCPUs by priority (SCHED_IDLE), but priority does not keep them apart: a
 * vCPU preempted for a moment (by the fault thread, a kernel worker, the
 * migration thread) then waited 0.3-1.9 ms on its own CPU while `cat` or the
 * writer, both at SCHED_IDLE, ran there (bpftrace, sched_switch with the
 * policy of the task before it; KVM, one vCPU on two CPUs). On a CPU of their
 * own they only ever meet the guest when it faults, and then it waits anyway.
 * Where the vCPUs fill the CPUs there is no CPU to spare: the snapshot's
 * threads then yield by weight (nice), see FILL_NICE.
 */
#include "migration/snapshot/snapshot-internal.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "accel/accel.h"
#include "migration/background-snapshot.h"
#include "migration/channel.h"
#include "system/machine.h"
#include "util/proc-stat.h"

/*
 * Where the vCPUs take every CPU, the snapshot must take some of theirs; at
 * SCHED_IDLE it got a trickle (a first snapshot took a minute) and at normal
 * priority the guest kept 55-85% of its rate (two KVM vCPUs on two CPUs,
 * bg-smp2). At nice 10 (weight 110 against a vCPU's 1024) it kept 84-107%
 * and the snapshot took 0.6-3.7 s instead of 0.3-0.7 s; nice 5 kept 75-88%,
 * nice 15 took up to 10 s.
 */
#define FILL_NICE 10

/* The CPU thread @tid of this process last ran on, or -1. */
static int thread_last_cpu(int tid)
{
    char path[64];
    long long cpu;

    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
    return proc_stat_field(path, 39, &cpu) && cpu >= 0 && cpu < CPU_SETSIZE ? (int)cpu : -1;
}

/*
 * Whether this thread may lower its nice value back to @to: the pause must
 * run at the priority it had (CAP_SYS_NICE, or RLIMIT_NICE high enough).
 */
static bool may_lower_nice_to(int to)
{
    struct rlimit rl;
    long long caps = 0;
    char line[256];
    FILE *f;

    if (getrlimit(RLIMIT_NICE, &rl) == 0 &&
        (rl.rlim_cur == RLIM_INFINITY || 20 - (long long)rl.rlim_cur <= to)) {
        return true;
    }
    f = fopen("/proc/self/status", "re");
    if (!f) {
        return false;
    }
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "CapEff: %llx", &caps) == 1) {
            break;
        }
    }
    fclose(f);
    return caps & (1LL << 23);  /* CAP_SYS_NICE */
}

/*
 * Where the vCPUs fill the CPUs: yield to them by weight (nice) instead.
 * Without the right to come back for the pause, nothing changes (the
 * snapshot then runs at normal priority, as before).
 */
static bool placement_yield(SnapshotPlacement *pl, MigrationChannel *sink)
{
    int nice = FILL_NICE;
    int tid = (int)gettid();

    errno = 0;
    pl->nice_before = getpriority(PRIO_PROCESS, (id_t)tid);
    if ((pl->nice_before == -1 && errno) || pl->nice_before >= nice ||
        !may_lower_nice_to(pl->nice_before) ||
        setpriority(PRIO_PROCESS, (id_t)tid, nice) != 0) {
        return false;
    }
    pl->niced = true;
    pl->nice = nice;
    pl->sink = sink;
    if (sink) {
        channel_set_child_nice(sink, nice);
    }
    return true;
}

bool background_snapshot_spare_cpus(Machine *m, const cpu_set_t *from, cpu_set_t *spare)
{
    if (!m->accel->vcpu_thread_id || background_snapshot_vcpus_fill_cpus(m->smp)) {
        return false;
    }
    *spare = *from;
    for (unsigned i = 0; i < m->smp; i++) {
        int tid = m->accel->vcpu_thread_id(m, i);
        cpu_set_t own;

        if (tid <= 0) {
            continue;
        }
        if (sched_getaffinity(tid, sizeof(own), &own) == 0 && CPU_COUNT(&own) < CPU_COUNT(from)) {
            /* Pinned (taskset, libvirt's vcpupin): keep off every CPU it may use. */
            for (int c = 0; c < CPU_SETSIZE; c++) {
                if (CPU_ISSET(c, &own)) {
                    CPU_CLR(c, spare);
                }
            }
        } else {
            int cpu = thread_last_cpu(tid);

            if (cpu >= 0) {
                CPU_CLR(cpu, spare);
            }
        }
    }
    return CPU_COUNT(spare) > 0 && !CPU_EQUAL(spare, from);
}

bool snapshot_placement_begin(SnapshotPlacement *pl, Machine *m, MigrationChannel *sink)
{
    cpu_set_t spare;

    memset(pl, 0, sizeof(*pl));
    if (background_snapshot_vcpus_fill_cpus(m->smp)) {
        return placement_yield(pl, sink);
    }
    if (sched_getaffinity(0, sizeof(pl->before), &pl->before) != 0 ||
        !background_snapshot_spare_cpus(m, &pl->before, &spare) ||
        sched_setaffinity(0, sizeof(spare), &spare) != 0) {
        return false;
    }
    pl->active = true;
    pl->sink = sink;
    if (sink) {
        channel_set_child_cpus(sink, &spare);
    }
    if (m->smp == 1) {
        CPU_XOR(&pl->vcpu_cpus, &pl->before, &spare);   /* spare is a subset of before */
    }
    return true;
}

/*
 * The fault thread beside the vCPU: a vCPU that faults stops running, so
 * its CPU is free for the handler, and waking a thread on the waker's own
 * CPU is immediate. Waking one on another CPU that sleeps costs the host's
 * wake-up of that CPU: a userfaultfd round trip took 66-70 us (p50) and
 * 106-145 us (p99) across two CPUs here, 10-13 us and 15-17 us on one
 * (build/bench/uffd-latency; this host's guest kernel halts an idle CPU at
 * once, haltpoll.guest_halt_poll_ns=0). Only for one vCPU: with more, the
 * real-time fault thread, woken on a CPU another vCPU runs on, would take it.
 */
void snapshot_placement_fault_thread(SnapshotPlacement *pl, BackgroundSnapshot *bs)
{
    if (pl->active && CPU_COUNT(&pl->vcpu_cpus) > 0 && bs->wt && !bs->epoch) {
        write_tracking_fault_thread_cpus(bs->wt, &pl->vcpu_cpus);
    }
}

void snapshot_placement_hold_vcpu(SnapshotPlacement *pl, Machine *m)
{
    if (!pl->active || CPU_COUNT(&pl->vcpu_cpus) == 0 || m->smp != 1) {
        return;
    }
    int tid = m->accel->vcpu_thread_id(m, 0);
    cpu_set_t hold;

    if (tid <= 0 || sched_getaffinity(tid, sizeof(pl->held_before), &pl->held_before) != 0) {
        return;
    }
    /* Only ever narrower than its own CPUs (a pinned vCPU stays within its pinning). */
    CPU_AND(&hold, &pl->held_before, &pl->vcpu_cpus);
    if (CPU_COUNT(&hold) == 0 || CPU_EQUAL(&hold, &pl->held_before) ||
        sched_setaffinity(tid, sizeof(hold), &hold) != 0) {
        return;
    }
    pl->held_vcpu = tid;
}

void snapshot_placement_release_vcpu(SnapshotPlacement *pl)
{
    if (pl->held_vcpu) {
        sched_setaffinity(pl->held_vcpu, sizeof(pl->held_before), &pl->held_before);
        pl->held_vcpu = 0;
    }
}

void snapshot_placement_end(SnapshotPlacement *pl)
{
    snapshot_placement_release_vcpu(pl);
    if (pl->niced) {
        setpriority(PRIO_PROCESS, (id_t)gettid(), pl->nice_before);
        if (pl->sink) {
            channel_set_child_nice(pl->sink, pl->nice_before);
        }
        pl->niced = false;
    }
    if (!pl->active) {
        return;
    }
    sched_setaffinity(0, sizeof(pl->before), &pl->before);
    if (pl->sink) {
        channel_set_child_cpus(pl->sink, &pl->before);
    }
    pl->active = false;
}

void snapshot_placement_pause_begin(SnapshotPlacement *pl)
{
    if (pl->niced) {
        setpriority(PRIO_PROCESS, (id_t)gettid(), pl->nice_before);
    }
}

void snapshot_placement_pause_end(SnapshotPlacement *pl)
{
    if (pl->niced) {
        setpriority(PRIO_PROCESS, (id_t)gettid(), pl->nice);
    }
}
