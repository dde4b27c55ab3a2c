/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Running a fuzz target over files without libFuzzer: corpora, crash reproducers, regressions. */
#ifndef TESTS_FUZZ_FUZZ_FILES_H
#define TESTS_FUZZ_FUZZ_FILES_H

#include <stdbool.h>

/*
 * Feed each of @paths (@n of them; a folder means every file in it) to
 * LLVMFuzzerTestOneInput(), print how many, and return 0, or 1 if a file
 * could not be read.
 */
int fuzz_replay_paths(int n, char **paths);

/*
 * A replayer's main: "--smoke DIR N" runs @smoke (N mutated inputs from the
 * seeds it writes into DIR), "--make-seeds DIR" runs @make_seeds (true when
 * written), anything else replays the paths given.
 */
int fuzz_replay_main(int argc, char **argv, int (*smoke)(const char *dir, int rounds),
                     bool (*make_seeds)(const char *dir));

#endif
