/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Fast test for all-zero memory, used to send zero pages as a flag instead of data. */
#ifndef UTIL_ZERO_PAGE_H
#define UTIL_ZERO_PAGE_H

#include <stdbool.h>
#include <stddef.h>

/*
 * True if the @len bytes at @buf are all zero. Any alignment and length work;
 * whole 4 KiB pages aligned to 64 bytes take the fast path (AVX2 or SSE2,
 * picked once from the CPU's features). Reading never-touched anonymous
 * memory maps the shared zero page, so testing does not populate guest RAM.
 */
bool buffer_is_zero(const void *buf, size_t len);

#endif
