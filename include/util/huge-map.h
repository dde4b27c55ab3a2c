/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Anonymous memory that starts on a 2 MiB boundary, so that it can be backed by huge pages. */
#ifndef UTIL_HUGE_MAP_H
#define UTIL_HUGE_MAP_H

#include <stdint.h>

#define HUGE_MAP_ALIGN (2ULL << 20)

/*
 * Map @len bytes of private anonymous memory (MAP_NORESERVE) at a 2 MiB
 * boundary; nothing else stays mapped, so munmap(result, @len) frees it all.
 * NULL with errno set on failure.
 */
void *huge_map_anonymous(uint64_t len);

#endif
