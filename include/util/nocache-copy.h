/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copies that bypass the cache on their way out: a snapshot's pages into pool buffers. */
#ifndef UTIL_NOCACHE_COPY_H
#define UTIL_NOCACHE_COPY_H

#include <stddef.h>

/*
 * Copy @len bytes from @src to @dst with non-temporal stores where the CPU
 * has them and @dst is 16-byte aligned (otherwise memcpy). The stores are
 * weakly ordered: call nocache_copy_publish() before another thread may read
 * @dst (before the flag or queue that hands it over).
 */
void nocache_copy(void *dst, const void *src, size_t len);

/* Make every nocache_copy() of this thread visible before the stores that follow. */
void nocache_copy_publish(void);

#endif
