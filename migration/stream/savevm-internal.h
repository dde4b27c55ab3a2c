/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Private helpers shared by the stream format's writer and loader. */
#ifndef MIGRATION_SAVEVM_INTERNAL_H
#define MIGRATION_SAVEVM_INTERNAL_H

#include "migration/savevm.h"

/* The built-in device record carrying the source's run state. */
#define SAVEVM_RUNSTATE_RECORD "frostvm.runstate"

/* The machine description of @m as an FDT blob. */
GByteArray *savevm_machine_describe(Machine *m, GError **errp);

/*
 * Compare the description @fdt (already structurally checked) with @m; the
 * error lists every difference.
 */
bool savevm_machine_check(Machine *m, const void *fdt, GError **errp);

#endif
