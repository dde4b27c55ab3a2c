/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The debug exit port: guest writes become a shutdown request with an exit status. */
#include "hw/debug-exit.h"

#include "hw/ioport.h"
#include "system/machine.h"
#include "system/runstate.h"

static void debug_exit_write(void *opaque, uint16_t port, unsigned size,
                             uint32_t value)
{
    Machine *m = opaque;

    /* Shells see the status modulo 256, as with QEMU. */
    runstate_request_shutdown(m, "guest-shutdown", (int)((value << 1) | 1));
}

void debug_exit_init(Machine *m)
{
    ioport_register(m, DEBUG_EXIT_PORT, DEBUG_EXIT_IOSIZE, NULL, debug_exit_write, m);
}
