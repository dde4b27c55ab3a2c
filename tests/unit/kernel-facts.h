/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What the running kernel does that unit tests' expectations depend on, and how to read it. */
#ifndef TESTS_UNIT_KERNEL_FACTS_H
#define TESTS_UNIT_KERNEL_FACTS_H

#include <stdbool.h>
#include <stdint.h>

/* A field in KiB ("Rss", "AnonHugePages") of the mapping that holds @addr, from /proc/self/smaps. */
uint64_t smaps_field_kb(const void *addr, const char *field);

/*
 * Whether a read of a never-written anonymous page maps the shared zero page
 * (most kernels) rather than a fresh page of its own. Some paravirtual guest
 * kernels give every read its own page; PAGEMAP_SCAN then has no zero page
 * to report, and frostvm reads such a page as data.
 */
bool kernel_reads_map_zero_page(void);

#endif
