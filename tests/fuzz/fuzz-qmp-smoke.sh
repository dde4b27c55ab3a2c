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

rm -rf "$out/qmp-corpus-seed"
"$replay" --make-seeds "$out/qmp-corpus-seed" >/dev/null

name=fuzz-qmp
# The framer, parser, dispatch, argument checks and serializer get coverage.
sources="$src/tests/fuzz/fuzz-qmp.c
    $src/monitor/qmp-framer.c $src/monitor/qmp-json-parse.c $src/monitor/qmp-json.c
    $src/monitor/qmp-dispatch.c $src/qapi/qapi-validate.c"
corpora="$corpus $out/qmp-corpus-seed $src/tests/fuzz/qmp-regressions"
flags=-max_len=4096
. "$src/tests/fuzz/libfuzzer.sh"
