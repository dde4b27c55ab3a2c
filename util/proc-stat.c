/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Reading one numeric field of a /proc stat line. */
#include "util/proc-stat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool proc_stat_field(const char *path, unsigned field, long long *value)
{
    char buf[1024];
    bool ok = false;
    FILE *f;

    if (field < 3) {
        return false;
    }
    f = fopen(path, "re");
    if (!f) {
        return false;
    }
    if (fgets(buf, sizeof(buf), f)) {
        char *p = strrchr(buf, ')');

        /* p is at the ')' that ends field 2; each space starts the next field. */
        for (unsigned n = 2; p && n < field; n++) {
            p = strchr(p + 1, ' ');
        }
        if (p) {
            char *end;
            long long v = strtoll(p + 1, &end, 10);

            if (end != p + 1 && (*end == ' ' || *end == '\n' || *end == '\0')) {
                *value = v;
                ok = true;
            }
        }
    }
    fclose(f);
    return ok;
}
