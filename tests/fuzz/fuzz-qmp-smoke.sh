#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Builds the QMP input path's fuzz target with clang's libFuzzer (ASan + UBSan) and
# runs it for SECONDS from the seed corpus and the regression inputs. Exit 77
# (skip) with the reason when clang or its libFuzzer runtime is missing.
# usage: fuzz-qmp-smoke.sh SOURCE_ROOT BUILD_ROOT SECONDS REPLAY_BINARY [CORPUS_DIR]
# A longer run (docs/hardening.md): SECONDS=600 and a CORPUS_DIR that is kept.
set -e
src=$1 build=$2 seconds=$3 replay=$4
out=$build/tests/fuzz
corpus=${5:-$out/qmp-corpus-work}
mkdir -p "$out" "$corpus"

. "$src/tests/fuzz/libfuzzer-probe.sh"

pkgs="glib-2.0 json-glib-1.0 liburing libxxhash"
# The framer, parser, dispatch, argument checks and serializer are compiled here
# with coverage; the rest comes from the project's library.
clang -g -O1 -std=gnu11 -D_GNU_SOURCE -DG_LOG_USE_STRUCTURED=1 \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$src/include" -I"$src" -I"$build" -I"$src/tests/fuzz" \
    $(pkg-config --cflags $pkgs) \
    "$src/tests/fuzz/fuzz-qmp.c" \
    "$src/monitor/qmp-framer.c" "$src/monitor/qmp-json-parse.c" "$src/monitor/qmp-json.c" \
    "$src/monitor/qmp-dispatch.c" "$src/qapi/qapi-validate.c" \
    "$build/libfrostvm-core.a" \
    $(pkg-config --libs $pkgs) -lfdt -lm -lpthread \
    -o "$out/fuzz-qmp"

rm -rf "$out/qmp-corpus-seed"
"$replay" --make-seeds "$out/qmp-corpus-seed" >/dev/null
status=0
"$out/fuzz-qmp" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=4096 \
    -print_final_stats=1 -artifact_prefix="$out/qmp-" \
    "$corpus" "$out/qmp-corpus-seed" "$src/tests/fuzz/qmp-regressions" \
    > "$out/fuzz-qmp.log" 2>&1 || status=$?
tail -25 "$out/fuzz-qmp.log"
exit $status
