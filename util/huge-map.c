/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Anonymous memory that starts on a 2 MiB boundary, so that it can be backed by huge pages. */
#include "util/huge-map.h"

#include <stddef.h>
#include <sys/mman.h>

void *huge_map_anonymous(uint64_t len)
{
    uint64_t reserve = len + HUGE_MAP_ALIGN;
    uint8_t *base = mmap(NULL, reserve, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    uint8_t *aligned;

    if (base == MAP_FAILED) {
        return NULL;
    }
    /* Over-map by 2 MiB, then give back what lies before and after the boundary. */
    aligned = (uint8_t *)(((uintptr_t)base + HUGE_MAP_ALIGN - 1) &
                          ~(uintptr_t)(HUGE_MAP_ALIGN - 1));
    if (aligned > base) {
        munmap(base, aligned - base);
    }
    if (base + reserve > aligned + len) {
        munmap(aligned + len, base + reserve - (aligned + len));
    }
    return aligned;
}
