/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The KVM accelerator's private state, shared by the files of accel/kvm/ only. */
#ifndef ACCEL_KVM_INTERNAL_H
#define ACCEL_KVM_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include <linux/kvm.h>

#include "accel/kvm.h"
#include "system/machine.h"

/* The signal that kicks a vCPU thread out of KVM_RUN. */
#define KVM_KICK_SIGNAL SIGUSR1

/* Guest-physical pages KVM needs for its real-mode TSS and identity map (VMX). */
#define KVM_TSS_ADDR          0xfffbd000ULL
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ULL

typedef struct KvmState KvmState;

typedef struct KvmVcpu {
    KvmState *kvm;
    unsigned index;               /* also the APIC ID */
    int fd;
    struct kvm_run *run;          /* shared page(s) mapped from the vCPU fd */
    GThread *thread;
    pthread_t tid;                /* valid once thread_ready */
    int kernel_tid;               /* gettid() of the thread, 0 until it runs (atomic) */
    bool thread_ready;            /* under KvmState.lock */
    bool parked;                  /* under KvmState.lock: waiting, not in KVM_RUN */
    bool stopped;                 /* shut down or failed: parks until destroy */
    bool exit_unfinished;         /* vCPU thread only: KVM finishes the last exit on re-entry */
    bool mmio_warned;             /* log unexpected MMIO only once */
    bool hlt_warned;
    uint64_t nr_exits;            /* vCPU thread only */
    CpuThrottleVcpu throttle;     /* vCPU thread only */
} KvmVcpu;

struct KvmState {
    Machine *m;
    int sys_fd;                   /* /dev/kvm */
    int vm_fd;
    int run_size;                 /* KVM_GET_VCPU_MMAP_SIZE */

    /* What this kernel offers (probed once at init). */
    bool has_irqchip;
    bool has_pit;
    bool has_manual_dirty_protect;
    int xsave_size;               /* bytes for KVM_GET_XSAVE(2); 0: use KVM_GET_FPU */
    bool has_xsave2;
    bool has_xcrs;
    bool has_vcpu_events;
    bool has_debugregs;
    bool has_adjust_clock;

    struct kvm_cpuid2 *cpuid;     /* KVM_GET_SUPPORTED_CPUID, patched per vCPU */
    uint32_t *msr_indices;        /* the MSRs we save: listed by KVM and readable */
    unsigned nr_msr_indices;

    KvmVcpu vcpus[MACHINE_MAX_VCPUS];
    unsigned nr_vcpus;

    /*
     * Parking: vCPU threads wait on vcpu_cond while pause_requested (or quit),
     * the pauser waits on parked_cond until nr_parked == nr_threads.
     */
    GMutex lock;
    GCond vcpu_cond;
    GCond parked_cond;
    bool pause_requested;
    bool quit;
    unsigned nr_threads;
    unsigned nr_parked;

    GPtrArray *device_refs;       /* opaques of the in-kernel device records */

    /* Dirty logging, one scratch bitmap per memory slot. */
    bool dirty_logging;
    unsigned long *slot_bitmaps[G_N_ELEMENTS(((Machine *)0)->ram_ranges)];
};

static inline KvmState *kvm_state(Machine *m)
{
    return m->accel_state;
}

/* kvm-vm.c: /dev/kvm, the VM, in-kernel devices, memory slots. */
KvmState *kvm_vm_create(Machine *m, GError **errp);
void kvm_vm_destroy(KvmState *s);
/* Map or remap slot @slot (Machine.ram_ranges[@slot]) with @flags. */
bool kvm_vm_set_slot(KvmState *s, unsigned slot, uint32_t flags, GError **errp);
/* KVM_CHECK_EXTENSION on the VM fd (falls back to /dev/kvm); 0 when absent. */
int kvm_vm_check_extension(KvmState *s, unsigned cap);

/* kvm-vcpu.c: vCPU creation, CPUID, exit handling. */
bool kvm_vcpu_create(KvmState *s, unsigned index, GError **errp);
void kvm_vcpu_destroy(KvmVcpu *v);
/* Handle the exit in v->run after KVM_RUN returned 0. */
void kvm_vcpu_handle_exit(KvmVcpu *v);
bool kvm_vcpu_set_boot_entry(KvmVcpu *v, uint32_t entry, uint32_t eax, uint32_t ebx,
                             GError **errp);
/* Make an AP wait for INIT/SIPI from the in-kernel LAPIC. */
bool kvm_vcpu_set_wait_for_sipi(KvmVcpu *v, GError **errp);

/* kvm-run.c: vCPU threads, parking, pause and resume. */
bool kvm_vcpus_start(KvmState *s, GError **errp);
void kvm_vcpus_pause(KvmState *s);
void kvm_vcpus_resume(KvmState *s);
/* Out of KVM_RUN once, not parked: the vCPUs check their throttle. */
void kvm_vcpus_kick(KvmState *s);
void kvm_vcpus_join(KvmState *s);

/* kvm-dirty.c: dirty page logging for precopy. */
bool kvm_dirty_log_start(Machine *m, GError **errp);
bool kvm_dirty_log_sync(Machine *m, RamBlock *block, unsigned long *bitmap,
                        GError **errp);
void kvm_dirty_log_stop(Machine *m);

/* kvm-cpu-state.c: the "cpu" device state records. */
bool kvm_cpu_state_init(KvmState *s, GError **errp);
void kvm_cpu_state_register(KvmState *s);

/* kvm-vm-state.c: "pic", "ioapic", "pit", "kvmclock" records. */
void kvm_vm_state_register(KvmState *s);

#endif
