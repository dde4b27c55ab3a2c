/* SPDX-License-Identifier: GPL-2.0-or-later */
/* USDT trace point of the test accelerator (compiled out without <sys/sdt.h>). */
#ifndef ACCEL_TEST_TRACE_H
#define ACCEL_TEST_TRACE_H

#include "config-host.h"

/*
 * Provider "frostvm":
 *
 *   test_vcpu_stall(index, cycles)   a gap of at least 0.5 ms between two page
 *                                    steps of vCPU @index (what the stall
 *                                    figure measures), in TSC cycles, fired
 *                                    at its end: a tracer can ask what the
 *                                    vCPU thread did in it
 */
#ifdef HAVE_SYS_SDT_H
#include <sys/sdt.h>
#define trace_test_vcpu_stall(index, cycles) DTRACE_PROBE2(frostvm, test_vcpu_stall, index, cycles)
#else
#define trace_test_vcpu_stall(index, cycles) do { } while (0)
#endif

#endif
