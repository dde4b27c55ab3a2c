/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The KVM unit tests' machine: hand-assembled guest code, test ports, a VM to boot it in. */
#ifndef TESTS_UNIT_KVM_TEST_VM_H
#define TESTS_UNIT_KVM_TEST_VM_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "system/machine.h"

#define CODE_GPA      0x100000u
#define COUNTER_GPA   0x200000u
#define IN_RESULT_GPA 0x201000u
#define FAR_GPA       0x300000u
#define AP_TRAMPOLINE 0x8000u

#define PORT_COUNT    0x500   /* guest writes its loop counter */
#define PORT_MAGIC    0x501   /* guest reads, stores the value at IN_RESULT_GPA */
#define PORT_SPIN     0x502   /* tight loop of writes: KVM_RUN round trips */
#define PORT_AP       0x503   /* written by an AP once INIT/SIPI started it */
#define PORT_IIR      0x504   /* the IRQ 4 handler reports the UART's IIR */
#define PORT_BYTE     0x505   /* ... and the byte it received */
#define PORT_IN_PAUSE 0x506   /* read: a new value; when armed, pauses from the vCPU */
#define MAGIC_VALUE   0x12345678u

/* Where the long-mode test puts its descriptor tables and page tables. */
#define GUEST_GDT   0x6000u
#define GUEST_GDTR  0x6100u
#define GUEST_IDTR  0x6108u
#define GUEST_IDT   0x7000u
#define GUEST_PML4  0x5000u
#define GUEST_PDPT  0x4000u
#define GUEST_PD    0x3000u

/* The guest code at CODE_GPA + 0x600 (kvm-test-vm.c), just past its IN. */
#define IN_LOOP_AFTER_IN (CODE_GPA + 0x600 + 5)

/* What the port handlers saw; updated on vCPU threads, read with atomics. */
typedef struct TestPorts {
    uint64_t count_writes;
    uint32_t count_last;
    uint32_t count_first_after_mark;   /* 0: none since the mark */
    uint64_t spin_writes;
    uint64_t ap_writes;
    uint32_t ap_value;
    uint64_t iir_writes;
    uint32_t iir_value;
    uint64_t byte_writes;
    uint32_t byte_value;
    uint32_t in_last;                  /* the value PORT_IN_PAUSE last returned */
    int in_pause_armed;                /* the next read pauses the vCPUs itself */
    Machine *m;
} TestPorts;

typedef struct TestVm {
    Machine *m;
    RamBlock block;
    TestPorts ports;
} TestVm;

/* A relaxed atomic read of a port counter. */
uint64_t atomic_get(uint64_t *p);
/* True (the test skipped, with the reason) where there is no usable KVM. */
bool skip_without_kvm(void);
/* A KVM VM with @ram_size of RAM, @smp vCPUs and the test ports; not started. */
TestVm *test_vm_new(uint64_t ram_size, unsigned smp);
void test_vm_free(TestVm *vm);
void test_vm_load_code(TestVm *vm, uint64_t gpa, const uint8_t *code, size_t len);
/* Load every piece of guest code, start the vCPUs at @entry, let them run. */
void test_vm_boot(TestVm *vm, uint32_t entry);
uint32_t guest_u32(TestVm *vm, uint64_t gpa);
/* Wait up to @ms for *@counter to reach @want. */
bool wait_for(uint64_t *counter, uint64_t want, unsigned ms);
/* Wait up to @ms for the guest's counter at COUNTER_GPA to pass @want. */
bool wait_for_guest_counter(TestVm *vm, uint32_t want, unsigned ms);

#endif
