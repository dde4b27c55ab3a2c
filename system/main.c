/* SPDX-License-Identifier: GPL-2.0-or-later */
/* frostvm entry point (placeholder until the machine lands). */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "frostvm: machine not built yet\n");
    return 1;
}
