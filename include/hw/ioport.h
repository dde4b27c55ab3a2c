/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Port I/O dispatch: devices claim x86 I/O port ranges, vCPU exits are routed to them. */
#ifndef HW_IOPORT_H
#define HW_IOPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

typedef struct Machine Machine;
typedef struct IoportTable IoportTable;

/*
 * A guest read of @size bytes (1, 2 or 4) at @port, which lies in the range the
 * handler registered. Returns the value (only the low @size bytes are used).
 */
typedef uint32_t (*IoportReadFunc)(void *opaque, uint16_t port, unsigned size);

/* A guest write of the low @size bytes of @value to @port. */
typedef void (*IoportWriteFunc)(void *opaque, uint16_t port, unsigned size,
                                uint32_t value);

/*
 * Claim ports [@base, @base + @len) for a device. Either callback may be NULL
 * (reads then return all ones, writes are dropped). Ranges must not overlap an
 * earlier registration (a programmer error, asserted). Register before the
 * vCPUs start: the table is read without a lock on the vCPU threads. The
 * table is created on first use and hangs off @m (Machine.ioports).
 */
void ioport_register(Machine *m, uint16_t base, uint16_t len, IoportReadFunc read,
                     IoportWriteFunc write, void *opaque);

/*
 * Dispatch a guest access; called by the accelerator on the vCPU thread.
 * Unclaimed ports read as all ones and ignore writes, as on a PC with nothing
 * behind them.
 */
uint32_t ioport_read(Machine *m, uint16_t port, unsigned size);
void ioport_write(Machine *m, uint16_t port, unsigned size, uint32_t value);

/* Free the table (Machine.ioports); safe when none was created. */
void ioport_table_free(Machine *m);

#endif
