/* SPDX-License-Identifier: GPL-2.0-or-later */
/* isa-debug-exit: a port a guest writes to end the VM with a chosen exit status. */
#ifndef HW_DEBUG_EXIT_H
#define HW_DEBUG_EXIT_H

#include <stdint.h>

typedef struct Machine Machine;

#define DEBUG_EXIT_PORT   0xf4
#define DEBUG_EXIT_IOSIZE 4

/*
 * Claim ports 0xF4-0xF7. A guest write of value v requests shutdown with
 * reason "guest-shutdown" and process exit status (v << 1) | 1, as QEMU's
 * isa-debug-exit does (so a guest can never exit with 0 by this path).
 */
void debug_exit_init(Machine *m);

#endif
