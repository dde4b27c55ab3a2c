/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Multiboot v1: load a kernel image into guest RAM and hand it the information structure. */
#ifndef HW_MULTIBOOT_H
#define HW_MULTIBOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

typedef struct Machine Machine;

#define MULTIBOOT_HEADER_MAGIC     0x1BADB002u
#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002u   /* EAX at entry */
#define MULTIBOOT_SEARCH_LIMIT     8192          /* the header lies in the first 8 KiB */

/* Header flags. */
#define MULTIBOOT_FLAG_PAGE_ALIGN  (1u << 0)     /* modules on 4 KiB boundaries */
#define MULTIBOOT_FLAG_MEMORY_INFO (1u << 1)     /* mem_* and mmap_* required */
#define MULTIBOOT_FLAG_VIDEO_MODE  (1u << 2)     /* video wanted (we have none) */
#define MULTIBOOT_FLAG_AOUT_KLUDGE (1u << 16)    /* load by the header's addresses */

/* Information structure flags we set. */
#define MULTIBOOT_INFO_MEMORY      (1u << 0)
#define MULTIBOOT_INFO_CMDLINE     (1u << 2)
#define MULTIBOOT_INFO_MODS        (1u << 3)
#define MULTIBOOT_INFO_MEM_MAP     (1u << 6)
#define MULTIBOOT_INFO_LOADER_NAME (1u << 9)

/* Where the information structure (and what it points to) goes in low RAM. */
#define MULTIBOOT_INFO_ADDR        0x9000u

#define MULTIBOOT_LOADER_NAME      "frostvm"

/*
 * Offset of a valid Multiboot header (magic, flags, checksum) in the first
 * 8 KiB of @image, or -1 when there is none.
 */
long multiboot_find_header(const uint8_t *image, size_t size);

/*
 * Load the Multiboot kernel @image (@size bytes) into guest RAM: an ELF32 or
 * ELF64 image by its PT_LOAD segments at their physical addresses, or, with
 * the a.out kludge flag, by the header's address fields. @kernel_name starts
 * the command line the kernel sees (then a space and @cmdline, which may be
 * NULL). @modules (may be NULL) lists modules as "FILE [ARGS],FILE [ARGS]".
 * Builds the information structure at MULTIBOOT_INFO_ADDR (memory sizes, the
 * e820 memory map, command line, modules, boot loader name) and sets the boot
 * vCPU's entry through m->accel->set_boot_entry().
 */
bool multiboot_load(Machine *m, const uint8_t *image, size_t size,
                    const char *kernel_name, const char *cmdline, const char *modules,
                    GError **errp);

#endif
