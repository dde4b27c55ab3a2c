/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Files that appear at their path complete or not at all, private (0600), with nothing left by a crash. */
#ifndef UTIL_ATOMIC_FILE_H
#define UTIL_ATOMIC_FILE_H

#include <stdbool.h>
#include <glib.h>

/*
 * How the file is written before it gets its name:
 * - UNNAMED: an O_TMPFILE inode in the target's folder. A crash at any moment
 *   leaves nothing: the kernel frees an inode no name points to.
 * - NAMED: where the file system has no O_TMPFILE, "PATH.tmp-XXXXXX" beside the
 *   target, flock()ed while it is written. A crash leaves that name behind (a
 *   complete or partial file); the next atomic_file_create() for the same PATH
 *   removes it, because nobody holds its lock any more.
 */
typedef enum {
    ATOMIC_FILE_UNNAMED,
    ATOMIC_FILE_NAMED,
} AtomicFileKind;

typedef struct AtomicFile {
    int fd;                /* write here; owned until commit or abort */
    char *path;            /* the final name */
    char *tmp_path;        /* NAMED only: the temporary name */
    AtomicFileKind kind;
} AtomicFile;

/*
 * Start writing a file that will be called @path, mode 0600 (guest data: no
 * one else reads it, whatever the umask allows). @rdwr: open for reading too
 * (for mmap). First removes stale "PATH.tmp-XXXXXX" temporaries that earlier
 * runs left (a g_message names each). @force_named: skip O_TMPFILE (tests).
 */
AtomicFile *atomic_file_create(const char *path, bool rdwr, bool force_named,
                               GError **errp);

/*
 * fsync the data, give it its name (replacing an existing file atomically),
 * fsync the folder. Closes the fd and frees @f whatever the outcome; on
 * failure nothing is left at @path that was not there before.
 */
bool atomic_file_commit(AtomicFile *f, GError **errp);

/* Drop what was written: close, remove the temporary name if any, free. */
void atomic_file_abort(AtomicFile *f);

/*
 * Remove "PATH.tmp-XXXXXX" files (6 letters or digits) in @path's folder that
 * belong to this user and that no live writer holds locked. Returns how many
 * were removed; each removed name is added to @removed when not NULL.
 */
guint atomic_file_clean_stale(const char *path, GPtrArray *removed);

#endif
