/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Feeds files and folders of inputs to a fuzz target, for the replayers of every target. */
#include "fuzz-files.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    g_autofree char *data = NULL;
    gsize len;

    if (!g_file_get_contents(path, &data, &len, NULL)) {
        g_printerr("fuzz replay: cannot read %s\n", path);
        return 1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)data, len);
    return 0;
}

int fuzz_replay_paths(int n, char **paths)
{
    int files = 0, failed = 0;

    for (int i = 0; i < n; i++) {
        g_autoptr(GDir) d = g_dir_open(paths[i], 0, NULL);
        const char *name;

        if (!d) {
            failed += replay_file(paths[i]);
            files++;
            continue;
        }
        while ((name = g_dir_read_name(d))) {
            g_autofree char *p = g_build_filename(paths[i], name, NULL);

            failed += replay_file(p);
            files++;
        }
    }
    printf("replayed %d inputs\n", files);
    return failed ? 1 : 0;
}

int fuzz_replay_main(int argc, char **argv, int (*smoke)(const char *dir, int rounds),
                     bool (*make_seeds)(const char *dir))
{
    if (argc == 4 && !strcmp(argv[1], "--smoke")) {
        return smoke(argv[2], atoi(argv[3]));
    }
    if (argc == 3 && !strcmp(argv[1], "--make-seeds")) {
        g_mkdir_with_parents(argv[2], 0755);
        return make_seeds(argv[2]) ? 0 : 1;
    }
    return fuzz_replay_paths(argc - 1, argv + 1);
}
