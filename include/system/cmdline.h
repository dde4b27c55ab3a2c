/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The QEMU-style command line: options, comma syntax, sizes. */
#ifndef SYSTEM_CMDLINE_H
#define SYSTEM_CMDLINE_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "system/machine.h"

/*
 * Parse argv (without argv[0]) into a new config. Unknown or malformed
 * options fail with a message that names the option. *@exit_now is set for
 * -version and -help (the text goes to stdout; the caller exits 0).
 */
MachineConfig *cmdline_parse(int argc, char **argv, bool *exit_now, GError **errp);

void machine_config_free(MachineConfig *c);

/*
 * Checks that span options (backend ids and sizes, monitor and -incoming
 * specs, the test accelerator's -append keys), without opening anything.
 * cmdline_parse() runs it; it also fills defaults (the accelerator list).
 */
bool cmdline_check(MachineConfig *c, GError **errp);

/* One option that takes key=value parameters, as query-command-line-options lists it. */
typedef struct CmdlineOptionInfo {
    const char *name;                 /* without the dash: "chardev" */
    const char *const *keys[3];       /* NULL-terminated key lists (a union); unused are NULL */
} CmdlineOptionInfo;

/*
 * Every option frostvm accepts with key=value parameters, from the table the
 * parser itself uses; *@n gets the count.
 */
const CmdlineOptionInfo *cmdline_option_infos(size_t *n);

/* "kvm", "test" or "tcg". */
const char *cmdline_accel_name(AccelKind kind);

/*
 * Parse a size: a number with an optional K, M, G, T suffix (powers of 1024).
 * @default_unit multiplies a bare number (QEMU's -m takes MiB, size= bytes).
 */
bool cmdline_parse_size(const char *s, uint64_t default_unit, uint64_t *out,
                        GError **errp);

/*
 * Split "value,key=val,key2=val2" as QEMU does (",," is a literal comma). A
 * first element without '=' is stored under @implied_key (if not NULL).
 * Returns a table of strings (keys to values), or NULL on a malformed list.
 */
GHashTable *cmdline_parse_keyval(const char *s, const char *implied_key,
                                 GError **errp);

/* Parse "on"/"off"/"yes"/"no"/"true"/"false" for option @key. */
bool cmdline_parse_bool(const char *key, const char *s, bool *out, GError **errp);

#endif
