/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The PC machine's guest-physical RAM layout and the e820 map derived from it. */
#ifndef HW_PC_H
#define HW_PC_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

typedef struct Machine Machine;
typedef struct RamBlock RamBlock;

/* Landmarks of the first megabyte, as a BIOS-less PC presents them. */
#define PC_EBDA_START     0x9FC00ULL   /* last KiB below 640 KiB: reserved */
#define PC_VGA_START      0xA0000ULL   /* legacy video and option ROMs: a hole */
#define PC_BIOS_START     0xF0000ULL   /* system BIOS area: reserved */
#define PC_HIGH_MEM_START 0x100000ULL  /* 1 MiB: where kernels load */

/* Smallest guest we lay out: the first megabyte plus room for a kernel. */
#define PC_MIN_RAM_SIZE   (2ULL << 20)

typedef enum {
    E820_TYPE_RAM = 1,
    E820_TYPE_RESERVED = 2,
} E820Type;

typedef struct E820Entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;           /* E820Type */
} E820Entry;

/*
 * Place @block in guest-physical space: the first MACHINE_LOW_RAM_END bytes at
 * address 0, the rest at MACHINE_HIGH_RAM_START (above the PCI hole). Fills
 * m->ram_ranges and m->nr_ram_ranges. Fails if the block is smaller than
 * PC_MIN_RAM_SIZE.
 */
bool pc_ram_layout_init(Machine *m, RamBlock *block, GError **errp);

/*
 * The e820 map for m->ram_ranges, sorted by address: usable RAM below the
 * EBDA, the EBDA and BIOS area reserved, the VGA hole absent, usable RAM from
 * 1 MiB to the end of low RAM and above 4 GiB. Returns a GArray of E820Entry
 * (caller unrefs).
 */
GArray *pc_e820_table(Machine *m);

/* End of the RAM range that starts at guest address 0 (0 if there is none). */
uint64_t pc_low_ram_end(Machine *m);

#endif
