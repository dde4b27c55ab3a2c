/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What the running kernel does that unit tests' expectations depend on, and how to read it. */
#include "kernel-facts.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include <glib.h>

uint64_t smaps_field_kb(const void *addr, const char *field)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    bool inside = false;

    g_assert_true(g_file_get_contents("/proc/self/smaps", &text, NULL, NULL));
    lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l; l++) {
        uint64_t a, b;
        if (sscanf(*l, "%" G_GINT64_MODIFIER "x-%" G_GINT64_MODIFIER "x", &a, &b) == 2 &&
            strchr(*l, ' ')) {
            inside = (uintptr_t)addr >= a && (uintptr_t)addr < b;
        } else if (inside && g_str_has_prefix(*l, field) && (*l)[strlen(field)] == ':') {
            return g_ascii_strtoull(*l + strlen(field) + 1, NULL, 10);
        }
    }
    return 0;
}

bool kernel_reads_map_zero_page(void)
{
    static int known = -1;

    if (known < 0) {
        /* A page of its own counts in Rss; the shared zero page does not. */
        size_t len = 4 * 4096;
        uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                          -1, 0);
        g_assert(m != MAP_FAILED);
        madvise(m, len, MADV_NOHUGEPAGE);
        (void)*(volatile uint8_t *)(m + 4096);
        known = smaps_field_kb(m, "Rss") == 0;
        munmap(m, len);
    }
    return known;
}
