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

. "$src/tests/fuzz/libfuzzer-probe.sh"

pkgs="glib-2.0 json-glib-1.0 liburing libxxhash"
# The parser, loader and stream are compiled here with coverage; the rest comes
# from the project's library.
clang -g -O1 -std=gnu11 -D_GNU_SOURCE -DG_LOG_USE_STRUCTURED=1 \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$src/include" -I"$src" -I"$build" -I"$src/tests/fuzz" \
    $(pkg-config --cflags $pkgs) \
    "$src/tests/fuzz/fuzz-savevm.c" \
    "$src/migration/stream/savevm.c" "$src/migration/stream/savevm-parse.c" \
    "$src/migration/restore/savevm-load.c" "$src/migration/stream/savevm-machine.c" \
    "$src/migration/stream/stream-file.c" "$src/migration/stream/vmstate.c" \
    "$src/util/zero-page.c" \
    "$build/libfrostvm-core.a" \
    $(pkg-config --libs $pkgs) -lfdt -lm -lpthread \
    -o "$out/fuzz-savevm"

rm -rf "$out/corpus-seed" "$out/corpus-work"
"$replay" --make-seeds "$out/corpus-seed" >/dev/null
mkdir -p "$out/corpus-work"
# Leak checking stays on: the loader must free everything on every error path.
status=0
"$out/fuzz-savevm" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$out/" \
    "$out/corpus-work" "$out/corpus-seed" "$src/tests/fuzz/regressions" \
    > "$out/fuzz.log" 2>&1 || status=$?
tail -25 "$out/fuzz.log"
exit $status
