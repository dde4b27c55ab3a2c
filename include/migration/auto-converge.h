/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Auto-converge: when precopy's guest dirties memory faster than it is sent, throttle its vCPUs. */
#ifndef MIGRATION_AUTO_CONVERGE_H
#define MIGRATION_AUTO_CONVERGE_H

#include <stdbool.h>
#include <stdint.h>

/* QEMU's defaults and ranges for the parameters, which it and libvirt set by name. */
#define AUTO_CONVERGE_DEFAULT_INITIAL 20      /* cpu-throttle-initial, 1..99 */
#define AUTO_CONVERGE_DEFAULT_INCREMENT 10    /* cpu-throttle-increment, 1..99 */
#define AUTO_CONVERGE_DEFAULT_MAX 99          /* max-cpu-throttle, 1..99 */
#define AUTO_CONVERGE_DEFAULT_THRESHOLD 50    /* throttle-trigger-threshold, 1..100 */

/*
 * The rate is judged over periods of at least a second, as QEMU does: a fast
 * sink finishes many passes a second, and judging each would raise the
 * throttle several steps a second.
 */
#define AUTO_CONVERGE_PERIOD_US 1000000

typedef struct AutoConvergeParams {
    unsigned initial;       /* percent throttled when it starts */
    unsigned increment;     /* percent added each time it must go further */
    unsigned max;           /* never more than this */
    unsigned threshold;     /* dirtied above this percent of what was sent counts as too fast */
    bool tailslow;          /* near the end, add only what the rates ask for */
} AutoConvergeParams;

typedef struct AutoConverge {
    uint64_t period_start_us;   /* 0: no period yet */
    uint64_t sent;              /* bytes sent in this period */
    uint64_t dirtied;           /* bytes the guest dirtied in it */
    unsigned high_periods;      /* periods above the threshold since the last raise */
} AutoConverge;

/*
 * After each dirty-log sync of a live pass: @sent bytes went out and the
 * guest dirtied @dirtied bytes since the previous sync, at time @now_us.
 * Each period of at least a second is judged when it ends: every second
 * period (since the last raise, not necessarily in a row) in which more
 * than @p->threshold percent of what was sent was dirtied starts the
 * throttle at @p->initial, or raises it by @p->increment (with tailslow:
 * by what would bring the dirty rate to the threshold, if less), at most to
 * @p->max. Returns the percentage to throttle to: @current when unchanged.
 */
unsigned auto_converge_update(AutoConverge *ac, const AutoConvergeParams *p, unsigned current,
                              uint64_t now_us, uint64_t sent, uint64_t dirtied);

#endif
