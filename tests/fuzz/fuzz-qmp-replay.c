/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Runs the QMP fuzz target over files, or over JSON-aware mutations of its seeds without libFuzzer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "fuzz-files.h"
#include "fuzz-qmp.h"

/* Tokens that broke or bent QMP parsers: spliced into the seeds. */
static const char *const tokens[] = {
    "010", "0x10", ".5", "1.", "-", "1e400", "-0", "18446744073709551616",
    "9223372036854775808", "-9223372036854775809", "\"a\\u0000b\"", "\\u0000",
    "\\uD800", "\\ud83d\\ude00", "\xff", "\xc0\x80", "\xed\xa0\x80", "{", "}", "[", "]",
    "\"", "\\", ",", ":", "\n", "\r\n", "\t", "'", "null", "true", "nul", "\"id\": ",
    "\"execute\": \"migrate-set-parameters\"", "\"arguments\": {}", "{\"a\": 1, \"a\": 2}",
};

/* One mutation of @s: a token inserted, a range deleted or repeated, a byte changed. */
static void mutate(GString *s, GRand *rand)
{
    gsize at = s->len > 1 ? (gsize)g_rand_int_range(rand, 1, (gint32)s->len) : s->len;
    gsize n = g_rand_int_range(rand, 1, 16);

    switch (g_rand_int_range(rand, 0, 4)) {
    case 0:
        g_string_insert(s, (gssize)at, tokens[g_rand_int_range(rand, 0, G_N_ELEMENTS(tokens))]);
        break;
    case 1:
        g_string_erase(s, (gssize)at, (gssize)MIN(n, s->len - at));
        break;
    case 2: {
        g_autofree char *copy = g_strndup(s->str + at, MIN(n, s->len - at));

        g_string_insert(s, (gssize)at, copy);
        break;
    }
    default:
        if (at < s->len) {
            s->str[at] = (char)g_rand_int_range(rand, 0, 256);
        }
    }
}

static int smoke(const char *dir, int rounds)
{
    g_autoptr(GPtrArray) seeds = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GDir) d = NULL;
    GRand *rand = g_rand_new_with_seed(14);
    const char *name;

    g_mkdir_with_parents(dir, 0755);
    if (fuzz_qmp_write_seeds(dir) <= 0) {
        return 1;
    }
    d = g_dir_open(dir, 0, NULL);
    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(dir, name, NULL);
        char *data;

        if (g_file_get_contents(p, &data, NULL, NULL)) {
            g_ptr_array_add(seeds, data);
        }
    }
    for (int r = 0; r < rounds; r++) {
        g_autoptr(GString) s = g_string_new(g_ptr_array_index(seeds, r % seeds->len));

        for (int k = g_rand_int_range(rand, 1, 6); k > 0; k--) {
            mutate(s, rand);
        }
        LLVMFuzzerTestOneInput((const uint8_t *)s->str, s->len);
    }
    g_rand_free(rand);
    printf("smoke: %d mutated inputs from %u seeds, every reply one line of JSON\n", rounds,
           seeds->len);
    return 0;
}

static bool make_seeds(const char *dir)
{
    return fuzz_qmp_write_seeds(dir) > 0;
}

int main(int argc, char **argv)
{
    return fuzz_replay_main(argc, argv, smoke, make_seeds);
}
