/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What every accelerator's vCPU threads share: their names in ps and /proc. */
#include "accel/accel.h"

#include <pthread.h>

#include "system/machine.h"

void accel_vcpu_thread_name(Machine *m, unsigned index, const char *accel)
{
    char name[16];

    if (!m->config || !m->config->debug_threads) {
        return;
    }
    /* The kernel keeps 15 characters; "CPU 7/TEST" fits. */
    g_snprintf(name, sizeof(name), "CPU %u/%s", index, accel);
    pthread_setname_np(pthread_self(), name);
}
