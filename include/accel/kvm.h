/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What devices and tests may ask of the KVM accelerator beyond AccelOps. */
#ifndef ACCEL_KVM_H
#define ACCEL_KVM_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

typedef struct Machine Machine;

/* True when /dev/kvm can be opened (a test's reason to skip otherwise). */
bool kvm_available(GError **errp);

/*
 * Drive interrupt line @gsi (ISA IRQ numbers 0-15 map to the same GSI) of the
 * in-kernel PIC and IOAPIC to @level. Returns false, doing nothing, when @m
 * does not run on KVM or the VM has no in-kernel irqchip; devices then work
 * by polling only. Thread-safe.
 */
bool kvm_set_irq(Machine *m, uint32_t gsi, bool level);

/* Counters for tests and benchmarks. */
typedef struct KvmStats {
    uint64_t exits;               /* KVM_RUN returns on all vCPUs */
} KvmStats;

/*
 * Read the counters; only meaningful while the vCPUs are paused (they are
 * updated by the vCPU threads without locks).
 */
void kvm_get_stats(Machine *m, KvmStats *stats);

#endif
