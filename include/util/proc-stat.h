/* SPDX-License-Identifier: GPL-2.0-or-later */
/* One numeric field of a /proc stat line (a process's or a thread's). */
#ifndef UTIL_PROC_STAT_H
#define UTIL_PROC_STAT_H

#include <stdbool.h>

/*
 * Field @field (numbered as in proc(5): 3 is the state, 5 the process group,
 * 19 the nice value, 39 the CPU last run on) of the stat file at @path, e.g.
 * "/proc/self/task/TID/stat". The command name in field 2 may hold spaces and
 * parentheses: fields are counted after its last ')'. False if the file
 * cannot be read or has no such numeric field.
 */
bool proc_stat_field(const char *path, unsigned field, long long *value);

#endif
