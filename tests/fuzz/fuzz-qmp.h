/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The QMP input path's fuzz target, shared by the libFuzzer build and its replayer. */
#ifndef TESTS_FUZZ_FUZZ_QMP_H
#define TESTS_FUZZ_FUZZ_QMP_H

#include <stddef.h>
#include <stdint.h>

/*
 * libFuzzer's entry point: @data (first byte: negotiated flag and read size)
 * goes through the framer, the parser, the request and argument checks of
 * every schema command (handlers do nothing) and the reply serializer; aborts
 * if a reply is not one line of JSON with exactly one of return and error.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Write the seed corpus into @dir; returns how many files were written. */
int fuzz_qmp_write_seeds(const char *dir);

#endif
