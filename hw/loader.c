/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Kernel image format detection and dispatch to the loader that handles it. */
#include "hw/loader.h"

#include <elf.h>
#include <string.h>

#include "hw/multiboot.h"
#include "util/error.h"

/* Linux x86 boot protocol: "HdrS" at 0x202 of a bzImage. */
#define LINUX_SETUP_MAGIC_OFFSET 0x202

bool loader_load_kernel(Machine *m, const char *path, const char *cmdline,
                        const char *initrd, GError **errp)
{
    g_autofree char *image = NULL;
    gsize size = 0;

    if (!g_file_get_contents(path, &image, &size, errp)) {
        error_prefix(errp, "cannot load kernel: ");
        return false;
    }
    if (multiboot_find_header((const uint8_t *)image, size) >= 0) {
        if (!multiboot_load(m, (const uint8_t *)image, size, path, cmdline, initrd,
                            errp)) {
            error_prefix(errp, "cannot load Multiboot kernel '%s': ", path);
            return false;
        }
        return true;
    }
    if (size > LINUX_SETUP_MAGIC_OFFSET + 4 &&
        memcmp(image + LINUX_SETUP_MAGIC_OFFSET, "HdrS", 4) == 0) {
        error_setg(errp, "cannot load kernel '%s': it is a Linux bzImage, and the "
                   "Linux boot protocol is not supported yet (frostvm boots "
                   "Multiboot v1 kernels)", path);
        return false;
    }
    if (size >= SELFMAG && memcmp(image, ELFMAG, SELFMAG) == 0) {
        error_setg(errp, "cannot load kernel '%s': it is an ELF file without a "
                   "Multiboot header in its first %d bytes (PVH and other ELF boot "
                   "protocols are not supported yet)", path, MULTIBOOT_SEARCH_LIMIT);
        return false;
    }
    error_setg(errp, "cannot load kernel '%s': unknown format (frostvm boots "
               "Multiboot v1 kernels)", path);
    return false;
}
