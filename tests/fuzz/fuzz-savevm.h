/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The stream loader's fuzz target, shared by the libFuzzer build and the corpus replayer. */
#ifndef TESTS_FUZZ_FUZZ_SAVEVM_H
#define TESTS_FUZZ_FUZZ_SAVEVM_H

#include <stddef.h>
#include <stdint.h>

/* libFuzzer's entry point: load @data as a stream into a small fake machine. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Write valid images of the fuzz machine into @dir (the seed corpus); number written. */
int fuzz_savevm_write_seeds(const char *dir);

#endif
