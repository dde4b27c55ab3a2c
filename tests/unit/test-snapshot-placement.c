/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Where a background snapshot's threads run: off the vCPU's CPU, and the vCPU held on its own until the pause ends. */
#include <sched.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <glib.h>

#include "accel/accel.h"
#include "migration/snapshot/snapshot-internal.h"
#include "system/machine.h"

/* A "vCPU": a thread that spins until told to stop, so that it has a CPU to be on. */
typedef struct SpinVcpu {
    GThread *thread;
    int tid;            /* atomic */
    bool stop;          /* atomic */
} SpinVcpu;

static SpinVcpu *the_vcpu;

static gpointer spin_main(gpointer opaque)
{
    SpinVcpu *v = opaque;

    __atomic_store_n(&v->tid, (int)syscall(SYS_gettid), __ATOMIC_RELEASE);
    while (!__atomic_load_n(&v->stop, __ATOMIC_ACQUIRE)) {
    }
    return NULL;
}

static int spin_vcpu_thread_id(Machine *m, unsigned index)
{
    return index == 0 ? __atomic_load_n(&the_vcpu->tid, __ATOMIC_ACQUIRE) : -1;
}

static const AccelOps spin_accel = {
    .name = "spin",
    .vcpu_thread_id = spin_vcpu_thread_id,
};

static void spin_start(SpinVcpu *v)
{
    the_vcpu = v;
    v->thread = g_thread_new("spin-vcpu", spin_main, v);
    while (!__atomic_load_n(&v->tid, __ATOMIC_ACQUIRE)) {
        g_usleep(100);
    }
    g_usleep(20 * 1000);    /* long enough to be seen running on a CPU */
}

static void spin_stop(SpinVcpu *v)
{
    __atomic_store_n(&v->stop, true, __ATOMIC_RELEASE);
    g_thread_join(v->thread);
}

static bool two_cpus(void)
{
    cpu_set_t cpus;

    if (sched_getaffinity(0, sizeof(cpus), &cpus) != 0 || CPU_COUNT(&cpus) < 2) {
        g_test_skip("needs two CPUs to keep the snapshot's threads apart from the vCPU");
        return false;
    }
    return true;
}

static bool sets_overlap(const cpu_set_t *a, const cpu_set_t *b)
{
    cpu_set_t both;

    CPU_AND(&both, a, b);
    return CPU_COUNT(&both) > 0;
}

/* A "vCPU" running, the snapshot's placement begun on this thread. */
typedef struct PlacementFixture {
    SpinVcpu v;
    Machine m;
    SnapshotPlacement pl;
    cpu_set_t before;           /* this thread's CPUs before */
    cpu_set_t vcpu_before;      /* the vCPU's */
} PlacementFixture;

/* @pin_vcpu: the vCPU pinned to one CPU first, as a manager's vcpupin does. */
static void fixture_begin(PlacementFixture *f, bool pin_vcpu)
{
    memset(f, 0, sizeof(*f));
    f->m.smp = 1;
    f->m.accel = &spin_accel;
    spin_start(&f->v);
    if (pin_vcpu) {
        cpu_set_t all, one;
        int cpu = 0;

        g_assert_cmpint(sched_getaffinity(0, sizeof(all), &all), ==, 0);
        while (!CPU_ISSET(cpu, &all)) {
            cpu++;
        }
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        g_assert_cmpint(sched_setaffinity(f->v.tid, sizeof(one), &one), ==, 0);
    }
    g_assert_cmpint(sched_getaffinity(0, sizeof(f->before), &f->before), ==, 0);
    g_assert_cmpint(sched_getaffinity(f->v.tid, sizeof(f->vcpu_before), &f->vcpu_before), ==, 0);
    g_assert_true(snapshot_placement_begin(&f->pl, &f->m, NULL));
    g_assert_true(f->pl.active);
}

/* End the placement: both threads have their CPUs back. */
static void fixture_end(PlacementFixture *f)
{
    cpu_set_t now;

    snapshot_placement_end(&f->pl);
    g_assert_cmpint(sched_getaffinity(0, sizeof(now), &now), ==, 0);
    g_assert_true(CPU_EQUAL(&now, &f->before));
    g_assert_cmpint(sched_getaffinity(f->v.tid, sizeof(now), &now), ==, 0);
    g_assert_true(CPU_EQUAL(&now, &f->vcpu_before));
    spin_stop(&f->v);
}

/*
 * One vCPU: the snapshot's thread leaves the vCPU's CPU; held, the vCPU may
 * run only where the snapshot's thread may not (faults before the pause
 * wake it, and a woken thread may be moved to an idle CPU); released, it
 * gets its CPUs back.
 */
static void test_hold_one_vcpu(void)
{
    PlacementFixture f;
    cpu_set_t mine, held;

    if (!two_cpus()) {
        return;
    }
    fixture_begin(&f, false);
    g_assert_cmpint(sched_getaffinity(0, sizeof(mine), &mine), ==, 0);
    g_assert_cmpint(CPU_COUNT(&f.pl.vcpu_cpus), >, 0);
    g_assert_false(sets_overlap(&mine, &f.pl.vcpu_cpus));

    snapshot_placement_hold_vcpu(&f.pl, &f.m);
    g_assert_cmpint(f.pl.held_vcpu, ==, f.v.tid);
    g_assert_cmpint(sched_getaffinity(f.v.tid, sizeof(held), &held), ==, 0);
    g_assert_true(CPU_EQUAL(&held, &f.pl.vcpu_cpus));
    g_assert_false(sets_overlap(&held, &mine));

    snapshot_placement_release_vcpu(&f.pl);
    g_assert_cmpint(f.pl.held_vcpu, ==, 0);
    g_assert_cmpint(sched_getaffinity(f.v.tid, sizeof(held), &held), ==, 0);
    g_assert_true(CPU_EQUAL(&held, &f.vcpu_before));
    fixture_end(&f);
}

/* Ending the placement releases a vCPU still held (a snapshot that failed before its pause ended). */
static void test_end_releases_vcpu(void)
{
    PlacementFixture f;

    if (!two_cpus()) {
        return;
    }
    fixture_begin(&f, false);
    snapshot_placement_hold_vcpu(&f.pl, &f.m);
    g_assert_cmpint(f.pl.held_vcpu, ==, f.v.tid);
    fixture_end(&f);
}

/* More vCPUs than one: nothing is held (the placement keeps only one vCPU's CPUs). */
static void test_no_hold_with_two_vcpus(void)
{
    PlacementFixture f;
    cpu_set_t now;

    if (!two_cpus()) {
        return;
    }
    fixture_begin(&f, false);
    f.m.smp = 2;
    snapshot_placement_hold_vcpu(&f.pl, &f.m);
    g_assert_cmpint(f.pl.held_vcpu, ==, 0);
    g_assert_cmpint(sched_getaffinity(f.v.tid, sizeof(now), &now), ==, 0);
    g_assert_true(CPU_EQUAL(&now, &f.vcpu_before));
    fixture_end(&f);
}

/* A vCPU pinned already is left as it is: the hold only ever narrows. */
static void test_pinned_vcpu_left_alone(void)
{
    PlacementFixture f;
    cpu_set_t now;

    if (!two_cpus()) {
        return;
    }
    fixture_begin(&f, true);
    snapshot_placement_hold_vcpu(&f.pl, &f.m);
    g_assert_cmpint(f.pl.held_vcpu, ==, 0);
    g_assert_cmpint(sched_getaffinity(f.v.tid, sizeof(now), &now), ==, 0);
    g_assert_true(CPU_EQUAL(&now, &f.vcpu_before));
    fixture_end(&f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/snapshot-placement/hold-one-vcpu", test_hold_one_vcpu);
    g_test_add_func("/snapshot-placement/end-releases-vcpu", test_end_releases_vcpu);
    g_test_add_func("/snapshot-placement/no-hold-with-two-vcpus", test_no_hold_with_two_vcpus);
    g_test_add_func("/snapshot-placement/pinned-vcpu-left-alone", test_pinned_vcpu_left_alone);
    return g_test_run();
}
