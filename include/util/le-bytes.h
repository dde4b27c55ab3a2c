/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Little-endian integers in byte buffers, as every on-disk format of frostvm stores them. */
#ifndef UTIL_LE_BYTES_H
#define UTIL_LE_BYTES_H

#include <stdint.h>
#include <string.h>
#include <glib.h>

static inline void le_put32(uint8_t *p, uint32_t v)
{
    v = GUINT32_TO_LE(v);
    memcpy(p, &v, sizeof(v));
}

static inline void le_put64(uint8_t *p, uint64_t v)
{
    v = GUINT64_TO_LE(v);
    memcpy(p, &v, sizeof(v));
}

static inline uint32_t le_get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return GUINT32_FROM_LE(v);
}

static inline uint64_t le_get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return GUINT64_FROM_LE(v);
}

#endif
