# SPDX-License-Identifier: GPL-2.0-or-later
# Sourced by the fuzz smoke scripts with $out set: exits 77 (skip) with the reason
# when clang or its libFuzzer runtime is missing.
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
