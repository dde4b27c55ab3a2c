/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Runs the loader's fuzz target over files (a corpus or crash reproducers) without libFuzzer, and writes the seed corpus. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "fuzz-files.h"
#include "fuzz-savevm.h"

/*
 * Without libFuzzer: deterministic mutations of the seeds (flipped bytes,
 * overwritten fields, truncations, cut-and-splice), each run through the target.
 * Catches crashes and, under a sanitizer build, memory errors.
 */
static int smoke(const char *dir, int rounds)
{
    static const uint32_t interesting[] = { 0, 1, 0x7fffffff, 0x80000000, 0xffffffff,
                                            4096, 4095, 16, 32 };
    g_autoptr(GPtrArray) seeds = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
    g_autoptr(GDir) d = NULL;
    GRand *rand = g_rand_new_with_seed(20240601);
    const char *name;
    int runs = 0;

    g_mkdir_with_parents(dir, 0755);
    if (fuzz_savevm_write_seeds(dir) != 3) {
        return 1;
    }
    d = g_dir_open(dir, 0, NULL);
    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(dir, name, NULL);
        char *data;
        gsize len;

        if (g_file_get_contents(p, &data, &len, NULL)) {
            g_ptr_array_add(seeds, g_bytes_new_take(data, len));
        }
    }
    for (int r = 0; r < rounds; r++) {
        GBytes *seed = g_ptr_array_index(seeds, r % seeds->len);
        gsize len;
        const uint8_t *src = g_bytes_get_data(seed, &len);
        g_autofree uint8_t *buf = g_memdup2(src, len);
        gsize n = len;
        int kind = g_rand_int_range(rand, 0, 4);

        if (kind == 0) {
            for (int k = g_rand_int_range(rand, 1, 4); k > 0; k--) {
                buf[g_rand_int_range(rand, 0, (gint32)len)] ^= 1u << g_rand_int_range(rand, 0, 8);
            }
        } else if (kind == 1) {
            uint32_t v = interesting[g_rand_int_range(rand, 0, G_N_ELEMENTS(interesting))];
            gsize off = g_rand_int_range(rand, 0, (gint32)(len - 4)) & ~(gsize)3;
            memcpy(buf + off, &v, sizeof(v));
        } else if (kind == 2) {
            n = g_rand_int_range(rand, 0, (gint32)len);
        } else {
            gsize a = g_rand_int_range(rand, 0, (gint32)len);
            gsize b = g_rand_int_range(rand, 0, (gint32)len);
            memmove(buf + MIN(a, b), buf + MAX(a, b), len - MAX(a, b));
            n = len - (MAX(a, b) - MIN(a, b));
        }
        LLVMFuzzerTestOneInput(buf, n);
        runs++;
    }
    g_rand_free(rand);
    printf("smoke: %d mutated inputs from %u seeds, no crash\n", runs, seeds->len);
    return 0;
}

static bool make_seeds(const char *dir)
{
    return fuzz_savevm_write_seeds(dir) == 3;
}

int main(int argc, char **argv)
{
    return fuzz_replay_main(argc, argv, smoke, make_seeds);
}
