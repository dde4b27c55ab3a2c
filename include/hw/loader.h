/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Kernel loading: recognise the image format and dispatch to its loader. */
#ifndef HW_LOADER_H
#define HW_LOADER_H

#include <stdbool.h>
#include <glib.h>

typedef struct Machine Machine;

/*
 * Load the kernel file @path (-kernel) with command line @cmdline (-append,
 * may be NULL) and modules @initrd (-initrd, may be NULL) into the guest and
 * set the boot vCPU's entry state. Recognises Multiboot v1 images today; for
 * other formats (a Linux bzImage, a plain ELF) it fails and says which format
 * it found and that it is not supported yet.
 */
bool loader_load_kernel(Machine *m, const char *path, const char *cmdline,
                        const char *initrd, GError **errp);

#endif
