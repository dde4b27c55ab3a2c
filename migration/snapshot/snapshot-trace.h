/* SPDX-License-Identifier: GPL-2.0-or-later */
/* USDT trace points on the background snapshot's hot path (compiled out without <sys/sdt.h>). */
#ifndef MIGRATION_SNAPSHOT_TRACE_H
#define MIGRATION_SNAPSHOT_TRACE_H

#include "config-host.h"

/*
 * Provider "frostvm". Each probe is a single nop in the binary until a tracer
 * attaches, so they stay in release builds. See docs/background-snapshot.md
 * for bpftrace one-liners.
 *
 *   snapshot_fault_read(addr, read_ns)            fault event read from the uffd
 *   snapshot_page_claimed(block, offset, npages, by_fault)
 *   snapshot_page_unprotected(block, offset, len, by_fault)
 *   snapshot_fault_served(addr, service_ns)       event read -> unprotected
 */
#ifdef HAVE_SYS_SDT_H
#include <sys/sdt.h>
#define trace_snapshot_fault_read(addr, read_ns) \
    DTRACE_PROBE2(frostvm, snapshot_fault_read, addr, read_ns)
#define trace_snapshot_page_claimed(block, offset, npages, by_fault) \
    DTRACE_PROBE4(frostvm, snapshot_page_claimed, block, offset, npages, by_fault)
#define trace_snapshot_page_unprotected(block, offset, len, by_fault) \
    DTRACE_PROBE4(frostvm, snapshot_page_unprotected, block, offset, len, by_fault)
#define trace_snapshot_fault_served(addr, service_ns) \
    DTRACE_PROBE2(frostvm, snapshot_fault_served, addr, service_ns)
#else
#define trace_snapshot_fault_read(addr, read_ns) do { } while (0)
#define trace_snapshot_page_claimed(block, offset, npages, by_fault) do { } while (0)
#define trace_snapshot_page_unprotected(block, offset, len, by_fault) do { } while (0)
#define trace_snapshot_fault_served(addr, service_ns) do { } while (0)
#endif

#endif
