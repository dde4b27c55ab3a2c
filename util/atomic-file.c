/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Creating files that appear whole or not at all: O_TMPFILE and linkat, or a locked temporary name. */
#include "util/atomic-file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"

#define TMP_INFIX ".tmp-"
#define TMP_RANDOM_LEN 6

/* "NAME.tmp-XXXXXX" for NAME, with exactly six letters or digits (mkstemp's). */
static bool is_temporary_of(const char *entry, const char *base)
{
    size_t n = strlen(base);
    const char *tail;

    if (strncmp(entry, base, n) || strncmp(entry + n, TMP_INFIX, strlen(TMP_INFIX))) {
        return false;
    }
    tail = entry + n + strlen(TMP_INFIX);
    if (strlen(tail) != TMP_RANDOM_LEN) {
        return false;
    }
    for (const char *c = tail; *c; c++) {
        if (!g_ascii_isalnum(*c)) {
            return false;
        }
    }
    return true;
}

/*
 * A writer holds its temporary flock()ed until it closes it; a temporary
 * nobody holds is stale (its writer crashed, or it came from a version that
 * did not lock). Only regular files of ours are considered.
 */
static bool remove_if_stale(int dir_fd, const char *name, off_t *size)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    bool removed = false;

    if (fd < 0) {
        return false;
    }
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
        flock(fd, LOCK_EX | LOCK_NB) == 0) {
        *size = st.st_size;
        removed = unlinkat(dir_fd, name, 0) == 0;
    }
    close(fd);
    return removed;
}

guint atomic_file_clean_stale(const char *path, GPtrArray *removed)
{
    g_autofree char *dir = g_path_get_dirname(path);
    g_autofree char *base = g_path_get_basename(path);
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    int dir_fd;
    const char *name;
    guint count = 0;

    if (!d) {
        return 0;
    }
    dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) {
        return 0;
    }
    while ((name = g_dir_read_name(d))) {
        off_t size = 0;

        if (is_temporary_of(name, base) && remove_if_stale(dir_fd, name, &size)) {
            g_autofree char *full = g_build_filename(dir, name, NULL);

            /* A message, not a warning: the cleanup is the remedy, nothing failed. */
            g_message("removed '%s' (%lld bytes), a temporary file that an interrupted "
                      "write of '%s' left behind", full, (long long)size, path);
            if (removed) {
                g_ptr_array_add(removed, g_steal_pointer(&full));
            }
            count++;
        }
    }
    close(dir_fd);
    return count;
}

static bool create_named(AtomicFile *f, int flags, GError **errp)
{
    f->tmp_path = g_strdup_printf("%s" TMP_INFIX "XXXXXX", f->path);
    f->fd = g_mkstemp_full(f->tmp_path, flags, 0600);
    if (f->fd < 0) {
        return false;
    }
    /* Marks it live for atomic_file_clean_stale() in other processes. */
    if (flock(f->fd, LOCK_EX) < 0) {
        error_setg_errno(errp, errno, "cannot lock '%s'", f->tmp_path);
        close(f->fd);
        unlink(f->tmp_path);
        f->fd = -1;
        return false;
    }
    f->kind = ATOMIC_FILE_NAMED;
    return true;
}

AtomicFile *atomic_file_create(const char *path, bool rdwr, bool force_named,
                               GError **errp)
{
    g_autofree char *dir = g_path_get_dirname(path);
    int flags = (rdwr ? O_RDWR : O_WRONLY) | O_CLOEXEC;
    AtomicFile *f = g_new0(AtomicFile, 1);
    int err;

    f->path = g_strdup(path);
    atomic_file_clean_stale(path, NULL);
    f->fd = force_named ? -1 : open(dir, flags | O_TMPFILE, 0600);
    if (f->fd >= 0) {
        f->kind = ATOMIC_FILE_UNNAMED;
        return f;
    }
    /* EOPNOTSUPP: the file system has no O_TMPFILE; EISDIR/EINVAL: the kernel. */
    err = errno;
    if (force_named || err == EOPNOTSUPP || err == EISDIR || err == EINVAL) {
        g_autoptr(GError) local = NULL;

        if (create_named(f, flags, &local)) {
            return f;
        }
        if (local) {
            g_propagate_error(errp, g_steal_pointer(&local));
            atomic_file_abort(f);
            return NULL;
        }
        err = errno;
    }
    error_setg_errno(errp, err, "cannot create a file in '%s' for '%s'", dir, path);
    atomic_file_abort(f);
    return NULL;
}

/* fsync the folder holding @path so the new name itself is durable. */
static bool sync_dir(const char *path, GError **errp)
{
    g_autofree char *dir = g_path_get_dirname(path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot open folder '%s'", dir);
        return false;
    }
    if (fsync(fd) < 0 && errno != EINVAL) {
        int err = errno;
        close(fd);
        error_setg_errno(errp, err, "cannot sync folder '%s'", dir);
        return false;
    }
    close(fd);
    return true;
}

/* Give the unnamed inode the name @name; -errno on failure. */
static int link_unnamed(int fd, const char *name)
{
    char proc[64];

    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    if (linkat(AT_FDCWD, proc, AT_FDCWD, name, AT_SYMLINK_FOLLOW) == 0) {
        return 0;
    }
    if (errno != ENOENT) {
        return -errno;
    }
    /* No /proc: AT_EMPTY_PATH does the same but needs CAP_DAC_READ_SEARCH. */
    return linkat(fd, "", AT_FDCWD, name, AT_EMPTY_PATH) == 0 ? 0 : -errno;
}

/*
 * linkat() never replaces a name. When @f->path exists, link under a fresh
 * temporary name and rename that over it: the old file stays whole until the
 * new one replaces it. A crash between the two calls (microseconds) leaves a
 * complete "PATH.tmp-XXXXXX" that the next create for PATH removes.
 */
static bool commit_unnamed(AtomicFile *f, GError **errp)
{
    int r = link_unnamed(f->fd, f->path);

    if (r == 0) {
        return true;
    }
    if (r != -EEXIST) {
        error_setg_errno(errp, -r, "cannot link the new file to '%s'", f->path);
        return false;
    }
    for (int attempt = 0; attempt < 100; attempt++) {
        static const char letters[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        char suffix[TMP_RANDOM_LEN + 1];
        g_autofree char *tmp = NULL;

        for (int i = 0; i < TMP_RANDOM_LEN; i++) {
            suffix[i] = letters[g_random_int_range(0, sizeof(letters) - 1)];
        }
        suffix[TMP_RANDOM_LEN] = '\0';
        tmp = g_strconcat(f->path, TMP_INFIX, suffix, NULL);
        r = link_unnamed(f->fd, tmp);
        if (r == -EEXIST) {
            continue;
        }
        if (r < 0) {
            error_setg_errno(errp, -r, "cannot link the new file to '%s'", tmp);
            return false;
        }
        if (rename(tmp, f->path) < 0) {
            int err = errno;

            unlink(tmp);
            error_setg_errno(errp, err, "cannot rename '%s' to '%s'", tmp, f->path);
            return false;
        }
        return true;
    }
    error_setg(errp, "cannot find a free temporary name beside '%s'", f->path);
    return false;
}

bool atomic_file_commit(AtomicFile *f, GError **errp)
{
    bool ok = true;

    if (fsync(f->fd) < 0) {
        error_setg_errno(errp, errno, "cannot sync the new '%s'", f->path);
        ok = false;
    } else if (f->kind == ATOMIC_FILE_UNNAMED) {
        ok = commit_unnamed(f, errp);
    } else if (rename(f->tmp_path, f->path) < 0) {
        error_setg_errno(errp, errno, "cannot rename %s to %s", f->tmp_path, f->path);
        ok = false;
    } else {
        g_clear_pointer(&f->tmp_path, g_free);
    }
    if (ok) {
        ok = sync_dir(f->path, errp);
    }
    atomic_file_abort(f);
    return ok;
}

void atomic_file_abort(AtomicFile *f)
{
    if (!f) {
        return;
    }
    if (f->fd >= 0) {
        close(f->fd);
    }
    if (f->tmp_path) {
        unlink(f->tmp_path);
    }
    g_free(f->tmp_path);
    g_free(f->path);
    g_free(f);
}
