/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A 16550A UART on COM1: guest output to a file descriptor, host input into its FIFO. */
#ifndef HW_SERIAL_H
#define HW_SERIAL_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

typedef struct Machine Machine;
typedef struct SerialState SerialState;

#define SERIAL_COM1_BASE 0x3f8
#define SERIAL_COM1_IRQ  4
#define SERIAL_FIFO_SIZE 16

/*
 * Create COM1: claims ports 0x3F8-0x3FF, raises IRQ 4 through the in-kernel
 * irqchip when there is one, registers the "serial" device state record.
 * Bytes the guest transmits are written to @out_fd (-1: discarded). When
 * @in_fd is not -1, the main loop (m->main_context, or the default context
 * when NULL) reads it into the receive FIFO as the guest drains it; reading
 * stops while the FIFO is full, so no input is lost. Both descriptors stay
 * the caller's: close them after serial_free(). Call before the vCPUs start.
 */
SerialState *serial_new(Machine *m, int out_fd, int in_fd, GError **errp);

/*
 * With @drop, output that @out_fd (non-blocking) cannot take at once is
 * discarded, as a UART's bytes are lost when no terminal listens: for a
 * pseudo-terminal whose slave nobody may have opened. Otherwise a full
 * output waits, so files and pipes lose nothing.
 */
void serial_set_drop_when_full(SerialState *s, bool drop);

/*
 * Detach from the main loop and free. The vCPUs must be stopped; the port
 * handlers and the state record must not be used afterwards.
 */
void serial_free(SerialState *s);

#endif
