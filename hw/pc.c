/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The PC RAM layout (low RAM, PCI hole, high RAM) and its e820 map. */
#include "hw/pc.h"

#include "system/machine.h"
#include "util/error.h"

bool pc_ram_layout_init(Machine *m, RamBlock *block, GError **errp)
{
    uint64_t low;

    if (block->size < PC_MIN_RAM_SIZE) {
        error_setg(errp, "RAM block '%s' is %" G_GUINT64_FORMAT " bytes: a PC guest "
                   "needs at least %llu MiB", block->name, block->size,
                   PC_MIN_RAM_SIZE >> 20);
        return false;
    }
    low = MIN(block->size, MACHINE_LOW_RAM_END);
    m->ram_ranges[0] = (GuestRamRange) {
        .gpa = 0, .size = low, .block = block, .offset = 0,
    };
    m->nr_ram_ranges = 1;
    if (block->size > low) {
        m->ram_ranges[1] = (GuestRamRange) {
            .gpa = MACHINE_HIGH_RAM_START, .size = block->size - low,
            .block = block, .offset = low,
        };
        m->nr_ram_ranges = 2;
    }
    return true;
}

uint64_t pc_low_ram_end(Machine *m)
{
    for (unsigned i = 0; i < m->nr_ram_ranges; i++) {
        if (m->ram_ranges[i].gpa == 0) {
            return m->ram_ranges[i].size;
        }
    }
    return 0;
}

/* Append the part of [start, end) that lies inside [lo, hi), if any. */
static void e820_add_clipped(GArray *table, uint64_t start, uint64_t end,
                             uint64_t lo, uint64_t hi, E820Type type)
{
    E820Entry e;

    start = MAX(start, lo);
    end = MIN(end, hi);
    if (start >= end) {
        return;
    }
    e = (E820Entry) { .addr = start, .size = end - start, .type = type };
    g_array_append_val(table, e);
}

static gint e820_compare(gconstpointer a, gconstpointer b)
{
    const E820Entry *x = a, *y = b;
    return x->addr < y->addr ? -1 : x->addr > y->addr;
}

GArray *pc_e820_table(Machine *m)
{
    GArray *table = g_array_new(FALSE, FALSE, sizeof(E820Entry));

    for (unsigned i = 0; i < m->nr_ram_ranges; i++) {
        uint64_t lo = m->ram_ranges[i].gpa;
        uint64_t hi = lo + m->ram_ranges[i].size;

        /*
         * The first megabyte is not plain RAM on a PC even though we back it
         * with RAM: guests expect the EBDA and BIOS area reserved and the
         * VGA window absent.
         */
        e820_add_clipped(table, 0, PC_EBDA_START, lo, hi, E820_TYPE_RAM);
        e820_add_clipped(table, PC_EBDA_START, PC_VGA_START, lo, hi,
                         E820_TYPE_RESERVED);
        e820_add_clipped(table, PC_BIOS_START, PC_HIGH_MEM_START, lo, hi,
                         E820_TYPE_RESERVED);
        e820_add_clipped(table, PC_HIGH_MEM_START, UINT64_MAX, lo, hi,
                         E820_TYPE_RAM);
    }
    g_array_sort(table, e820_compare);
    return table;
}
