/* SPDX-License-Identifier: GPL-2.0-or-later */
/* For monitor tests: an accelerator with no guest, so run-state changes work. */
#ifndef TESTS_UNIT_FAKE_ACCEL_H
#define TESTS_UNIT_FAKE_ACCEL_H

#include "accel/accel.h"

static bool fake_start_vcpus(Machine *m, GError **errp)
{
    return true;
}

static void fake_vcpus_noop(Machine *m)
{
}

static const AccelOps fake_accel = {
    .name = "fake",
    .start_vcpus = fake_start_vcpus,
    .pause_vcpus = fake_vcpus_noop,
    .resume_vcpus = fake_vcpus_noop,
};

#endif
