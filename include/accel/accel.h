/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What an accelerator (KVM, or the host-thread test accelerator) offers the machine. */
#ifndef ACCEL_ACCEL_H
#define ACCEL_ACCEL_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

typedef struct Machine Machine;
typedef struct RamBlock RamBlock;

typedef struct AccelOps {
    const char *name;                       /* "kvm", "test" */

    /*
     * Create the VM: map every RAM range, create vCPUs (not yet running) and the
     * in-kernel devices, register their device state (vmstate_register()).
     */
    bool (*init)(Machine *m, GError **errp);

    /*
     * Set the boot vCPU to enter a Multiboot kernel: 32-bit flat protected mode,
     * EIP=@entry, EAX=@eax, EBX=@ebx. APs wait for INIT/SIPI.
     */
    bool (*set_boot_entry)(Machine *m, uint32_t entry, uint32_t eax, uint32_t ebx,
                           GError **errp);

    /* Start the vCPU threads, parked (paused) until resume_vcpus(). */
    bool (*start_vcpus)(Machine *m, GError **errp);

    /*
     * Bring every vCPU out of guest mode and park it; returns when all are
     * parked (bounded time: kicks with a signal and immediate_exit).
     */
    void (*pause_vcpus)(Machine *m);

    /* Let parked vCPUs run again. */
    void (*resume_vcpus)(Machine *m);

    /*
     * Optional: take every running vCPU out of guest mode once, without
     * parking it, so that it checks its throttle (system/cpu-throttle.h).
     * Needed where guest code runs inside the kernel (KVM); the test
     * accelerator's threads check by themselves after each batch of steps
     * (64, or a millisecond's worth when paced).
     */
    void (*kick_vcpus)(Machine *m);

    /*
     * Dirty tracking for precopy. start: begin logging on every RAM range.
     * sync: OR the pages written since the last sync into @bitmap (one bit per
     * 4 KiB page of @block, from offset 0) and re-arm tracking for them.
     */
    bool (*dirty_log_start)(Machine *m, GError **errp);
    bool (*dirty_log_sync)(Machine *m, RamBlock *block, unsigned long *bitmap,
                           GError **errp);
    void (*dirty_log_stop)(Machine *m);

    /*
     * The kernel thread id (gettid()) of the host thread that runs vCPU
     * @index, or 0 before it started. Managers pin it and put it in cgroups.
     */
    int (*vcpu_thread_id)(Machine *m, unsigned index);

    /*
     * Optional. Thread @tid is blocked for good on guest memory that cannot
     * be given to it (a lazy restore whose image failed its check): if it is
     * a vCPU thread that pause_vcpus() cannot reach, count it as parked.
     * KVM should need nothing: its kick interrupts a vCPU waiting on a fault.
     */
    void (*vcpu_blocked)(Machine *m, int tid);

    /* Stop and join the vCPU threads, free everything init made. */
    void (*destroy)(Machine *m);
} AccelOps;

extern const AccelOps kvm_accel_ops;
extern const AccelOps test_accel_ops;

typedef struct MachineConfig MachineConfig;

/*
 * The test accelerator's view of the command line: its -append keys parse and
 * its range fits in the configured RAM. Opens nothing; for cmdline_check().
 */
bool test_accel_check_config(const MachineConfig *c, GError **errp);

/*
 * Whether /dev/kvm can be opened and speaks the stable API (what query-kvm
 * calls "present"). On false, @why (if not NULL) gets the reason.
 */
bool kvm_accel_available(char **why);

/*
 * Called first thing in a vCPU thread: names it "CPU N/ACCEL" as QEMU's
 * -name debug-threads=on does (when the machine asks for it), and asks the
 * scheduler for a short time slice (accel_vcpu_short_slice(), the machine's
 * -accel x-vcpu-slice-us=).
 */
void accel_vcpu_thread_start(Machine *m, unsigned index, const char *accel);

/*
 * The calling thread asks for a time slice of @slice_ns (Linux 6.12 and
 * later; 100 us for vCPUs unless -accel x-vcpu-slice-us= says otherwise): a
 * woken task with a shorter slice than the running one preempts it, so a
 * vCPU released from a fault or a sleep does not wait for the rest of
 * another task's slice (1.4 ms here). Returns false where the kernel
 * refused it or the thread is not SCHED_OTHER; older kernels that ignore
 * the field return true and keep their slice.
 */
bool accel_vcpu_short_slice(uint64_t slice_ns);

#endif
