/* SPDX-License-Identifier: GPL-2.0-or-later */
/* payload-check: checks the test payload's memory invariant in a raw guest memory
 * dump (GPA 0 .. file size, as QEMU's pmemsave writes it), or the register
 * checksum in one of its PROGRESS lines. */
#include "payload-check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Exit status: 0 the invariant holds, 1 it does not, 2 nothing could be checked. */
enum { EXIT_OK = 0, EXIT_BROKEN = 1, EXIT_UNCHECKED = 2 };

static int check_progress(const char *line)
{
    g_autoptr(GError) err = NULL;
    PayloadProgress p;

    if (!payload_parse_progress(line, &p, &err)) {
        fprintf(stderr, "payload-check: %s\n", err->message);
        return EXIT_UNCHECKED;
    }
    uint64_t want = payload_csum_compute(0, p.csteps);
    if (want != p.csum) {
        printf("FAIL csum=0x%" G_GINT64_MODIFIER "x but %" G_GUINT64_FORMAT
               " steps give 0x%" G_GINT64_MODIFIER "x\n", p.csum, p.csteps, want);
        return EXIT_BROKEN;
    }
    printf("OK csum=0x%" G_GINT64_MODIFIER "x matches %" G_GUINT64_FORMAT " steps%s\n",
           p.csum, p.csteps, p.regs_ok && p.errors == 0 ? "" : " (but regs/errors bad)");
    return p.regs_ok && p.errors == 0 ? EXIT_OK : EXIT_BROKEN;
}

static int check_file(const char *path)
{
    g_autoptr(GError) err = NULL;
    PayloadCheckResult res;
    struct stat st;
    int fd = open(path, O_RDONLY);

    if (fd < 0) {
        fprintf(stderr, "payload-check: cannot open '%s': %s\n", path, strerror(errno));
        return EXIT_UNCHECKED;
    }
    if (fstat(fd, &st) < 0 || st.st_size == 0) {
        fprintf(stderr, "payload-check: '%s' is empty or cannot be read\n", path);
        close(fd);
        return EXIT_UNCHECKED;
    }
    void *ram = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (ram == MAP_FAILED) {
        fprintf(stderr, "payload-check: cannot map '%s': %s\n", path, strerror(errno));
        return EXIT_UNCHECKED;
    }

    bool ok = payload_check_memory(ram, (uint64_t)st.st_size, &res, &err);
    int rc = ok ? EXIT_OK : EXIT_BROKEN;
    if (ok || g_error_matches(err, PAYLOAD_CHECK_ERROR, PAYLOAD_CHECK_ERROR_INVARIANT)) {
        g_autofree char *text = payload_check_result_describe(&res);
        fputs(text, stdout);
    }
    if (!ok) {
        fprintf(stderr, "payload-check: %s: %s\n", path, err->message);
        if (!g_error_matches(err, PAYLOAD_CHECK_ERROR, PAYLOAD_CHECK_ERROR_INVARIANT)) {
            rc = EXIT_UNCHECKED;
        }
    } else {
        printf("OK\n");
    }
    munmap(ram, (size_t)st.st_size);
    return rc;
}

int main(int argc, char **argv)
{
    g_autofree char *progress = NULL;
    GOptionEntry entries[] = {
        { "progress", 'p', 0, G_OPTION_ARG_STRING, &progress,
          "check the register checksum of one PROGRESS line instead", "LINE" },
        { NULL },
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("[RAWFILE]");
    g_autoptr(GError) err = NULL;

    g_option_context_set_summary(ctx,
        "Checks the frostvm test payload's memory invariant in a raw memory dump\n"
        "(guest-physical address 0 up to the file size, e.g. QEMU's pmemsave).\n"
        "Exit status: 0 holds, 1 broken, 2 could not check.");
    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        fprintf(stderr, "payload-check: %s\n", err->message);
        return EXIT_UNCHECKED;
    }
    if (progress) {
        return check_progress(progress);
    }
    if (argc != 2) {
        fprintf(stderr, "usage: payload-check RAWFILE | --progress LINE\n");
        return EXIT_UNCHECKED;
    }
    return check_file(argv[1]);
}
