/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Auto-converge: when precopy's guest dirties memory faster than it is sent, throttle its vCPUs. */
#include "migration/auto-converge.h"

#include <glib.h>

/* The next percentage once the guest was too fast for a second period. */
static unsigned auto_converge_raise(const AutoConvergeParams *p, unsigned current,
                                    uint64_t dirtied, uint64_t allowed)
{
    unsigned step = p->increment;

    if (!current) {
        return MIN(p->initial, p->max);
    }
    if (p->tailslow && dirtied) {
        /*
         * The guest's CPU share that would dirty only what is allowed, if
         * dirtying scales with it: add no more than takes it there.
         */
        unsigned share = 100 - current;
        unsigned ideal = (unsigned)((double)share * (double)allowed / (double)dirtied);

        step = MIN(step, share - MIN(ideal, share));
    }
    return MIN(current + step, p->max);
}

unsigned auto_converge_update(AutoConverge *ac, const AutoConvergeParams *p, unsigned current,
                              uint64_t now_us, uint64_t sent, uint64_t dirtied)
{
    uint64_t allowed;
    unsigned next = current;

    if (!ac->period_start_us) {
        ac->period_start_us = now_us;
    }
    ac->sent += sent;
    ac->dirtied += dirtied;
    if (now_us - ac->period_start_us < AUTO_CONVERGE_PERIOD_US) {
        return current;
    }
    allowed = ac->sent * p->threshold / 100;
    /* As QEMU: the count of fast periods goes back to 0 only when the throttle rises. */
    if (ac->dirtied > allowed && ++ac->high_periods >= 2) {
        ac->high_periods = 0;
        next = auto_converge_raise(p, current, ac->dirtied, allowed);
    }
    ac->period_start_us = now_us;
    ac->sent = 0;
    ac->dirtied = 0;
    return next;
}
