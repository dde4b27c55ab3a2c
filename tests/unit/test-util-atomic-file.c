/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests of util/atomic-file: whole or absent at the path, 0600 whatever the umask, nothing left by a crash. */
#include "util/atomic-file.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct Fixture {
    char *dir;
    char *path;
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data)
{
    f->dir = g_dir_make_tmp("frostvm-atomic-XXXXXX", NULL);
    g_assert_nonnull(f->dir);
    f->path = g_build_filename(f->dir, "img", NULL);
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    g_autoptr(GDir) d = g_dir_open(f->dir, 0, NULL);
    const char *name;

    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(f->dir, name, NULL);
        unlink(p);
    }
    rmdir(f->dir);
    g_free(f->path);
    g_free(f->dir);
}

static gint compare_names(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The folder's entries, sorted and joined by spaces ("" when empty). */
static char *list_dir(const char *dir)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    const char *name;

    while ((name = g_dir_read_name(d))) {
        g_ptr_array_add(names, g_strdup(name));
    }
    g_ptr_array_sort(names, compare_names);
    g_ptr_array_add(names, NULL);
    return g_strjoinv(" ", (char **)names->pdata);
}

static void write_all(int fd, const char *text)
{
    g_assert_cmpint(write(fd, text, strlen(text)), ==, (gssize)strlen(text));
}

static void assert_file(const char *path, const char *content)
{
    g_autofree char *got = NULL;
    struct stat st;

    g_assert_true(g_file_get_contents(path, &got, NULL, NULL));
    g_assert_cmpstr(got, ==, content);
    g_assert_cmpint(stat(path, &st), ==, 0);
    g_assert_cmpint(st.st_mode & 07777, ==, 0600);
}

/* Nothing at the path (or beside it) until commit; then whole, 0600 under umask 000. */
static void test_commit(Fixture *f, gconstpointer data)
{
    bool named = GPOINTER_TO_INT(data);
    g_autoptr(GError) err = NULL;
    mode_t old_umask = umask(0);
    AtomicFile *file = atomic_file_create(f->path, false, named, &err);
    g_autofree char *during = NULL, *after = NULL;

    umask(old_umask);
    g_assert_no_error(err);
    g_assert_cmpint(file->kind, ==, named ? ATOMIC_FILE_NAMED : ATOMIC_FILE_UNNAMED);
    write_all(file->fd, "guest memory");
    during = list_dir(f->dir);
    if (named) {
        g_assert_true(g_str_has_prefix(during, "img.tmp-"));
    } else {
        g_assert_cmpstr(during, ==, "");
    }
    g_assert_true(atomic_file_commit(file, &err));
    g_assert_no_error(err);
    after = list_dir(f->dir);
    g_assert_cmpstr(after, ==, "img");
    assert_file(f->path, "guest memory");
}

/* An existing file is replaced in one step; no temporary name stays. */
static void test_replace(Fixture *f, gconstpointer data)
{
    bool named = GPOINTER_TO_INT(data);
    g_autoptr(GError) err = NULL;
    AtomicFile *file;
    g_autofree char *after = NULL;

    g_assert_true(g_file_set_contents(f->path, "old image", -1, NULL));
    chmod(f->path, 0600);
    file = atomic_file_create(f->path, true, named, &err);
    g_assert_no_error(err);
    write_all(file->fd, "new image");
    assert_file(f->path, "old image");
    g_assert_true(atomic_file_commit(file, &err));
    assert_file(f->path, "new image");
    after = list_dir(f->dir);
    g_assert_cmpstr(after, ==, "img");
}

static void test_abort(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    AtomicFile *file = atomic_file_create(f->path, false, GPOINTER_TO_INT(data), &err);
    g_autofree char *after = NULL;

    g_assert_no_error(err);
    write_all(file->fd, "half");
    atomic_file_abort(file);
    after = list_dir(f->dir);
    g_assert_cmpstr(after, ==, "");
}

/*
 * Issue 14: a SIGKILL while writing left "img.tmp-XXXXXX" for ever. Unnamed:
 * nothing is left at all. Named (no O_TMPFILE): the temporary stays, and the
 * next create for the same path removes it, saying so.
 */
static void test_crash(Fixture *f, gconstpointer data)
{
    bool named = GPOINTER_TO_INT(data);
    g_autoptr(GError) err = NULL;
    g_autofree char *after = NULL;
    AtomicFile *file;
    int status;
    pid_t pid = fork();

    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        AtomicFile *child = atomic_file_create(f->path, false, named, NULL);
        static char block[1 << 16];

        for (int i = 0; child && i < 64; i++) {
            if (write(child->fd, block, sizeof(block)) < 0) {
                break;
            }
        }
        raise(SIGKILL);
        _exit(1);
    }
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    g_assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    after = list_dir(f->dir);
    if (!named) {
        g_assert_cmpstr(after, ==, "");
        return;
    }
    g_assert_true(g_str_has_prefix(after, "img.tmp-"));
    file = atomic_file_create(f->path, false, false, &err);
    g_assert_no_error(err);
    atomic_file_abort(file);
    g_free(after);
    after = list_dir(f->dir);
    g_assert_cmpstr(after, ==, "");
}

/* Only this path's temporaries go, and never one a live writer holds. */
static void test_clean_stale(Fixture *f, gconstpointer data)
{
    static const char *const keep[] = {
        "img.tmp-", "img.tmp-abc", "img.tmp-abcdefg", "img.tmp-ab-cde", "imgx.tmp-abcdef",
        "other.tmp-abcdef", "img",
    };
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) removed = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *stale = g_build_filename(f->dir, "img.tmp-Ab12Cd", NULL);
    g_autofree char *after = NULL;
    AtomicFile *live;

    for (guint i = 0; i < G_N_ELEMENTS(keep); i++) {
        g_autofree char *p = g_build_filename(f->dir, keep[i], NULL);
        g_assert_true(g_file_set_contents(p, "x", -1, NULL));
    }
    g_assert_true(g_file_set_contents(stale, "stale", -1, NULL));
    live = atomic_file_create(f->path, false, true, &err);
    g_assert_no_error(err);
    /* create() already removed the stale one; the live one survives a second pass. */
    g_assert_false(g_file_test(stale, G_FILE_TEST_EXISTS));
    g_assert_cmpuint(atomic_file_clean_stale(f->path, removed), ==, 0);
    g_assert_true(g_file_test(live->tmp_path, G_FILE_TEST_EXISTS));
    atomic_file_abort(live);
    after = list_dir(f->dir);
    g_assert_cmpstr(after, ==,
                    "img img.tmp- img.tmp-ab-cde img.tmp-abc img.tmp-abcdefg imgx.tmp-abcdef "
                    "other.tmp-abcdef");
}

static void test_create_error(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *path = g_build_filename(f->dir, "missing", "img", NULL);

    g_assert_null(atomic_file_create(path, false, GPOINTER_TO_INT(data), &err));
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err->message, "cannot create a file in"));
    g_assert_nonnull(strstr(err->message, "No such file or directory"));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (int named = 0; named < 2; named++) {
        const char *kind = named ? "named" : "unnamed";
        gconstpointer data = GINT_TO_POINTER(named);
        g_autofree char *commit = g_strdup_printf("/util/atomic-file/%s/commit", kind);
        g_autofree char *replace = g_strdup_printf("/util/atomic-file/%s/replace", kind);
        g_autofree char *abort = g_strdup_printf("/util/atomic-file/%s/abort", kind);
        g_autofree char *crash = g_strdup_printf("/util/atomic-file/%s/sigkill", kind);
        g_autofree char *error = g_strdup_printf("/util/atomic-file/%s/create-error", kind);

        g_test_add(commit, Fixture, data, fixture_setup, test_commit, fixture_teardown);
        g_test_add(replace, Fixture, data, fixture_setup, test_replace, fixture_teardown);
        g_test_add(abort, Fixture, data, fixture_setup, test_abort, fixture_teardown);
        g_test_add(crash, Fixture, data, fixture_setup, test_crash, fixture_teardown);
        g_test_add(error, Fixture, data, fixture_setup, test_create_error, fixture_teardown);
    }
    g_test_add("/util/atomic-file/clean-stale", Fixture, NULL, fixture_setup,
               test_clean_stale, fixture_teardown);
    return g_test_run();
}
