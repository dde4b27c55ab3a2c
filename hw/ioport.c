/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The port I/O dispatch table: which device answers which x86 I/O port. */
#include "hw/ioport.h"

#include "system/machine.h"

typedef struct IoportRange {
    uint16_t base;
    uint32_t end;             /* exclusive; 32 bits so a range may end at 0x10000 */
    IoportReadFunc read;
    IoportWriteFunc write;
    void *opaque;
} IoportRange;

struct IoportTable {
    GArray *ranges;           /* IoportRange, sorted by base */
};

static uint32_t ioport_all_ones(unsigned size)
{
    return size >= 4 ? 0xffffffffu : (1u << (size * 8)) - 1;
}

void ioport_register(Machine *m, uint16_t base, uint16_t len, IoportReadFunc read,
                     IoportWriteFunc write, void *opaque)
{
    IoportRange r = {
        .base = base, .end = (uint32_t)base + len,
        .read = read, .write = write, .opaque = opaque,
    };
    guint i;

    g_assert(len > 0 && r.end <= 0x10000);
    if (!m->ioports) {
        m->ioports = g_new0(IoportTable, 1);
        m->ioports->ranges = g_array_new(FALSE, FALSE, sizeof(IoportRange));
    }
    for (i = 0; i < m->ioports->ranges->len; i++) {
        IoportRange *other = &g_array_index(m->ioports->ranges, IoportRange, i);
        g_assert(r.end <= other->base || other->end <= r.base);
        if (other->base > base) {
            break;
        }
    }
    g_array_insert_val(m->ioports->ranges, i, r);
}

static const IoportRange *ioport_lookup(Machine *m, uint16_t port)
{
    GArray *ranges;
    guint lo = 0, hi;

    if (!m->ioports) {
        return NULL;
    }
    ranges = m->ioports->ranges;
    hi = ranges->len;
    while (lo < hi) {
        guint mid = (lo + hi) / 2;
        const IoportRange *r = &g_array_index(ranges, IoportRange, mid);
        if (port < r->base) {
            hi = mid;
        } else if (port >= r->end) {
            lo = mid + 1;
        } else {
            return r;
        }
    }
    return NULL;
}

uint32_t ioport_read(Machine *m, uint16_t port, unsigned size)
{
    const IoportRange *r = ioport_lookup(m, port);

    if (!r || !r->read) {
        return ioport_all_ones(size);
    }
    return r->read(r->opaque, port, size) & ioport_all_ones(size);
}

void ioport_write(Machine *m, uint16_t port, unsigned size, uint32_t value)
{
    const IoportRange *r = ioport_lookup(m, port);

    if (r && r->write) {
        r->write(r->opaque, port, size, value & ioport_all_ones(size));
    }
}

void ioport_table_free(Machine *m)
{
    if (m->ioports) {
        g_array_unref(m->ioports->ranges);
        g_clear_pointer(&m->ioports, g_free);
    }
}
