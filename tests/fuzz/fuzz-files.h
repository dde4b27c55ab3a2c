/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Running a fuzz target over files without libFuzzer: corpora, crash reproducers, regressions. */
#ifndef TESTS_FUZZ_FUZZ_FILES_H
#define TESTS_FUZZ_FUZZ_FILES_H

/*
 * Feed each of @paths (@n of them; a folder means every file in it) to
 * LLVMFuzzerTestOneInput(), print how many, and return 0, or 1 if a file
 * could not be read.
 */
int fuzz_replay_paths(int n, char **paths);

#endif
