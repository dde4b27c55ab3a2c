#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Builds the stream loader's fuzz target with clang's libFuzzer (ASan + UBSan) and
# runs it for a short while from the seed corpus. Exit 77 (skip) with the reason
# when clang or its libFuzzer runtime is missing.
# usage: fuzz-smoke.sh SOURCE_ROOT BUILD_ROOT SECONDS REPLAY_BINARY
set -e
src=$1 build=$2 seconds=$3 replay=$4
out=$build/tests/fuzz
mkdir -p "$out"

rm -rf "$out/corpus-seed" "$out/corpus-work"
"$replay" --make-seeds "$out/corpus-seed" >/dev/null
mkdir -p "$out/corpus-work"

name=fuzz-savevm
# The parser, loader and stream are compiled with coverage.
sources="$src/tests/fuzz/fuzz-savevm.c
    $src/migration/stream/savevm.c $src/migration/stream/savevm-parse.c
    $src/migration/restore/savevm-load.c $src/migration/stream/savevm-machine.c
    $src/migration/stream/stream-file.c $src/migration/stream/vmstate.c
    $src/util/zero-page.c"
corpora="$out/corpus-work $out/corpus-seed $src/tests/fuzz/regressions"
flags=
. "$src/tests/fuzz/libfuzzer.sh"
