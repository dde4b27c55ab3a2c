# SPDX-License-Identifier: GPL-2.0-or-later
# Sourced by the fuzz smoke scripts: builds $out/$name from $sources with clang's
# libFuzzer (ASan + UBSan; the sources get coverage, the rest comes from the
# project's library), runs it for $seconds over $corpora (the first one grows) with
# $flags, shows the end of its log and exits with its status. Exits 77 (skip) with
# the reason when clang or its libFuzzer runtime is missing.
# Needs: src build out name sources corpora seconds [flags]; paths without spaces.
if ! command -v clang >/dev/null 2>&1; then
    echo "SKIP: clang is not installed (apt-get install clang) - libFuzzer smoke run not possible"
    exit 77
fi
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n' \
    > "$out/probe.c"
if ! clang -fsanitize=fuzzer "$out/probe.c" -o "$out/probe" >/dev/null 2>&1; then
    echo "SKIP: clang has no libFuzzer runtime (-fsanitize=fuzzer failed)"
    exit 77
fi

pkgs="glib-2.0 json-glib-1.0 liburing libxxhash"
# shellcheck disable=SC2086 # $sources, $corpora and $flags are lists
clang -g -O1 -std=gnu11 -D_GNU_SOURCE -DG_LOG_USE_STRUCTURED=1 \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$src/include" -I"$src" -I"$build" -I"$src/tests/fuzz" \
    $(pkg-config --cflags $pkgs) $sources "$build/libfrostvm-core.a" \
    $(pkg-config --libs $pkgs) -lfdt -lm -lpthread -o "$out/$name"

# Leak checking stays on: every error path must free what it took. GLib before
# 2.76 carves g_slice chunks (every JsonNode, JsonObject, JsonArray, GList) out
# of larger blocks it keeps, so a leaked chunk never looks unreachable and
# LeakSanitizer sees such leaks only when g_slice goes straight to malloc.
status=0
# shellcheck disable=SC2086
G_SLICE=always-malloc "$out/$name" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 $flags \
    -print_final_stats=1 -artifact_prefix="$out/$name-" $corpora \
    > "$out/$name.log" 2>&1 || status=$?
tail -25 "$out/$name.log"
exit $status
