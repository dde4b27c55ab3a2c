/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests of the guest RAM backends and which of them this kernel can write-protect. */
#include "system/memory-backend.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "util/error.h"
#include "util/userfaultfd.h"

#define MIB (1ULL << 20)
#define BACKEND_SIZE (8 * MIB)
#define HUGETLBFS_MAGIC_VALUE 0x958458f6
#define TMPFS_MAGIC_VALUE 0x01021994

/* Where each backend case gets its memory from. */
typedef enum {
    PLACE_NONE,          /* anonymous or memfd */
    PLACE_TMPFS_FILE,    /* a file on /dev/shm */
    PLACE_TMPFS_DIR,     /* a temporary file in /dev/shm */
    PLACE_DISK_DIR,      /* a temporary file on a disk file system (ext4, overlay) */
    PLACE_HUGETLBFS_DIR, /* a temporary file on a mounted hugetlbfs */
} BackendPlace;

typedef struct {
    const char *name;
    MemoryBackendKind kind;
    bool share;
    bool hugetlb;
    BackendPlace place;
    MemoryBackingType backing;
    bool needs_huge_pages;
    bool write_protect;  /* the answer expected on a kernel with all WP features */
} BackendCase;

static const BackendCase backend_cases[] = {
    { "ram", MEMORY_BACKEND_RAM, false, false, PLACE_NONE, MEMORY_BACKING_ANONYMOUS, false, true },
    { "ram-shared", MEMORY_BACKEND_RAM, true, false, PLACE_NONE, MEMORY_BACKING_SHMEM, false,
      true },
    { "memfd", MEMORY_BACKEND_MEMFD, true, false, PLACE_NONE, MEMORY_BACKING_SHMEM, false, true },
    { "memfd-hugetlb", MEMORY_BACKEND_MEMFD, true, true, PLACE_NONE, MEMORY_BACKING_HUGETLBFS,
      true, true },
    { "file-tmpfs", MEMORY_BACKEND_FILE, true, false, PLACE_TMPFS_FILE, MEMORY_BACKING_SHMEM,
      false, true },
    { "file-tmpfs-dir", MEMORY_BACKEND_FILE, false, false, PLACE_TMPFS_DIR,
      MEMORY_BACKING_SHMEM, false, true },
    { "file-hugetlbfs", MEMORY_BACKEND_FILE, true, false, PLACE_HUGETLBFS_DIR,
      MEMORY_BACKING_HUGETLBFS, true, true },
    { "file-disk", MEMORY_BACKEND_FILE, true, false, PLACE_DISK_DIR, MEMORY_BACKING_OTHER_FILE,
      false, false },
};

/* A value of /proc/meminfo in its own unit (kB, or a count), or 0. */
static uint64_t meminfo_value(const char *key)
{
    g_autofree char *text = NULL;

    if (!g_file_get_contents("/proc/meminfo", &text, NULL, NULL)) {
        return 0;
    }
    g_autofree char *needle = g_strdup_printf("\n%s:", key);
    const char *p = strstr(text, needle);
    return p ? g_ascii_strtoull(p + strlen(needle), NULL, 10) : 0;
}

/* The mount point of a hugetlbfs, or NULL. */
static char *find_hugetlbfs_mount(void)
{
    g_autofree char *mounts = NULL;

    if (!g_file_get_contents("/proc/mounts", &mounts, NULL, NULL)) {
        return NULL;
    }
    g_auto(GStrv) lines = g_strsplit(mounts, "\n", -1);
    for (char **line = lines; *line; line++) {
        g_auto(GStrv) f = g_strsplit(*line, " ", -1);
        if (g_strv_length(f) >= 3 && g_str_equal(f[2], "hugetlbfs")) {
            return g_strdup(f[1]);
        }
    }
    return NULL;
}

/* A directory on a disk file system (not tmpfs, not hugetlbfs), or NULL. */
static char *find_disk_dir(void)
{
    g_autofree char *cwd = g_get_current_dir();
    const char *candidates[] = { g_get_tmp_dir(), cwd, "/var/tmp" };

    for (unsigned i = 0; i < G_N_ELEMENTS(candidates); i++) {
        struct statfs sfs;
        if (statfs(candidates[i], &sfs) == 0 && access(candidates[i], W_OK) == 0 &&
            (unsigned long)sfs.f_type != TMPFS_MAGIC_VALUE &&
            (unsigned long)sfs.f_type != HUGETLBFS_MAGIC_VALUE) {
            return g_strdup(candidates[i]);
        }
    }
    return NULL;
}

/*
 * Fill @opts for @c; returns false (and skips the test with the reason) when
 * this machine cannot provide the place. *@cleanup receives a file to remove.
 */
static bool backend_case_options(const BackendCase *c, MemoryBackendOptions *opts,
                                 char **cleanup)
{
    opts->kind = c->kind;
    opts->id = g_strdup_printf("mem-%s", c->name);
    opts->size = BACKEND_SIZE;
    opts->share = c->share;
    opts->hugetlb = c->hugetlb;
    opts->thp = true;

    if (c->needs_huge_pages) {
        uint64_t free_pages = meminfo_value("HugePages_Free");
        uint64_t page_kb = meminfo_value("Hugepagesize");
        if (free_pages * page_kb * 1024 < BACKEND_SIZE) {
            g_autofree char *why = g_strdup_printf(
                "needs %" G_GUINT64_FORMAT " MiB of free huge pages; HugePages_Free is %"
                G_GUINT64_FORMAT " (vm.nr_hugepages)", (uint64_t)(BACKEND_SIZE / MIB),
                free_pages);
            g_test_skip(why);
            return false;
        }
    }
    switch (c->place) {
    case PLACE_NONE:
        return true;
    case PLACE_TMPFS_FILE:
        opts->mem_path = g_strdup_printf("/dev/shm/frostvm-test-%d-%s", getpid(), c->name);
        *cleanup = g_strdup(opts->mem_path);
        break;
    case PLACE_TMPFS_DIR:
        opts->mem_path = g_strdup("/dev/shm");
        break;
    case PLACE_DISK_DIR:
        opts->mem_path = find_disk_dir();
        if (!opts->mem_path) {
            g_test_skip("no writable directory on a disk file system");
            return false;
        }
        break;
    case PLACE_HUGETLBFS_DIR:
        opts->mem_path = find_hugetlbfs_mount();
        if (!opts->mem_path) {
            g_test_skip("no hugetlbfs is mounted");
            return false;
        }
        break;
    }
    if (c->place == PLACE_TMPFS_DIR && access("/dev/shm", W_OK) != 0) {
        g_test_skip("/dev/shm is not writable");
        return false;
    }
    return true;
}

static void backend_case_cleanup(MemoryBackendOptions *opts, char *cleanup)
{
    if (cleanup) {
        g_unlink(cleanup);
        g_free(cleanup);
    }
    g_free(opts->id);
    g_free(opts->mem_path);
}

/* Each backend maps, is writable everywhere and reports its page size and backing. */
static void test_backend_map(gconstpointer data)
{
    const BackendCase *c = data;
    MemoryBackendOptions opts = { 0 };
    char *cleanup = NULL;
    g_autoptr(GError) err = NULL;

    if (!backend_case_options(c, &opts, &cleanup)) {
        backend_case_cleanup(&opts, cleanup);
        return;
    }
    g_autoptr(MemoryBackend) b = memory_backend_new(&opts, &err);
    g_assert_no_error(err);
    g_assert_nonnull(b);
    g_assert_cmpuint(b->size, ==, BACKEND_SIZE);
    g_assert_cmpint(b->backing, ==, c->backing);
    g_assert_cmpuint((uintptr_t)b->host % (2 * MIB), ==, 0);
    if (c->backing == MEMORY_BACKING_HUGETLBFS) {
        g_assert_cmpuint(b->page_size, ==, meminfo_value("Hugepagesize") * 1024);
    } else {
        g_assert_cmpuint(b->page_size, ==, (uint64_t)getpagesize());
    }
    /* Shared RAM is a memfd too: its holes are what was never written. */
    g_assert_cmpint(b->fd >= 0, ==, c->kind != MEMORY_BACKEND_RAM || c->share);
    g_assert_cmpint(b->fresh, ==, c->kind == MEMORY_BACKEND_MEMFD ||
                                  (c->kind == MEMORY_BACKEND_RAM && c->share) ||
                                  c->place == PLACE_TMPFS_DIR || c->place == PLACE_DISK_DIR ||
                                  c->place == PLACE_HUGETLBFS_DIR);

    uint8_t *mem = b->host;
    for (uint64_t off = 0; off < b->size; off += b->page_size) {
        mem[off] = (uint8_t)(off / b->page_size);
    }
    mem[b->size - 1] = 0xEE;
    for (uint64_t off = 0; off < b->size; off += b->page_size) {
        g_assert_cmpuint(mem[off], ==, (uint8_t)(off / b->page_size));
    }
    g_assert_cmpuint(mem[b->size - 1], ==, 0xEE);

    g_autofree char *desc = memory_backend_describe(b);
    g_test_message("%s: %s", c->name, desc);
    g_assert_true(g_str_has_prefix(desc, memory_backend_kind_name(c->kind)));
    if (c->backing != MEMORY_BACKING_ANONYMOUS) {
        g_assert_nonnull(strstr(desc, b->fs_type));
    }
    if (c->place == PLACE_TMPFS_DIR || c->place == PLACE_DISK_DIR ||
        c->place == PLACE_HUGETLBFS_DIR) {
        /* The temporary file is gone from the directory as soon as it is mapped. */
        g_assert_false(g_file_test(b->path, G_FILE_TEST_EXISTS));
    }
    backend_case_cleanup(&opts, cleanup);
}

/*
 * The compatibility matrix on this kernel: the answer of
 * memory_backend_can_write_protect() agrees with what the kernel does when the
 * mapping is registered and protected.
 */
static void test_backend_write_protect(gconstpointer data)
{
    const BackendCase *c = data;
    MemoryBackendOptions opts = { 0 };
    char *cleanup = NULL;
    g_autoptr(GError) err = NULL;
    uint64_t features = 0;

    if (!backend_case_options(c, &opts, &cleanup)) {
        backend_case_cleanup(&opts, cleanup);
        return;
    }
    g_assert_cmpint(uffd_query_features(&features, NULL), ==, 0);
    g_autoptr(MemoryBackend) b = memory_backend_new(&opts, &err);
    g_assert_no_error(err);
    memset(b->host, 0x5A, b->size);

    bool can = memory_backend_can_write_protect(b, features, &err);
    uint64_t needed = c->backing == MEMORY_BACKING_ANONYMOUS ? UFFD_FEATURE_PAGEFAULT_FLAG_WP
                                                              : UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
    if (c->write_protect && !(features & needed)) {
        g_autofree char *why = g_strdup_printf("kernel lacks UFFD_FEATURE_%s",
                                               uffd_feature_name(needed));
        g_assert_false(can);
        g_test_skip(why);
        backend_case_cleanup(&opts, cleanup);
        return;
    }
    g_assert_cmpint(can, ==, c->write_protect);

    int uffd = uffd_open(c->write_protect ? needed : 0, O_CLOEXEC | O_NONBLOCK, NULL);
    g_assert_cmpint(uffd, >=, 0);
    int ret = uffd_register(uffd, b->host, b->size, UFFDIO_REGISTER_MODE_WP, NULL);
    if (can) {
        g_assert_no_error(err);
        g_assert_cmpint(ret, ==, 0);
        g_assert_cmpint(uffd_writeprotect(uffd, b->host, b->size, true, false), ==, 0);
        g_assert_cmpint(uffd_writeprotect(uffd, b->host, b->size, false, false), ==, 0);
        g_assert_cmpint(uffd_unregister(uffd, b->host, b->size), ==, 0);
    } else {
        g_assert_cmpint(ret, ==, -EINVAL);
        g_assert_error(err, FROSTVM_ERROR, FROSTVM_ERROR_GENERIC);
        g_test_message("refused: %s", err->message);
        /* The message names the backend, its kind, its file system and the reason. */
        g_assert_nonnull(strstr(err->message, opts.id));
        g_assert_nonnull(strstr(err->message, "memory-backend-file"));
        g_assert_nonnull(strstr(err->message, b->fs_type));
        g_assert_nonnull(strstr(err->message, "cannot be write-protected"));
        g_assert_nonnull(strstr(err->message, "only for anonymous, shmem"));
        g_assert_cmpstr(b->fs_type, !=, "tmpfs");
    }
    close(uffd);
    backend_case_cleanup(&opts, cleanup);
}

/* A kernel without the needed feature: the refusal names the feature. */
static void test_write_protect_missing_feature(void)
{
    g_autoptr(MemoryBackendOptions) opts = memory_backend_options_new(MEMORY_BACKEND_RAM);
    g_autoptr(GError) err = NULL;

    opts->id = g_strdup("ram0");
    opts->size = 2 * MIB;
    g_autoptr(MemoryBackend) anon = memory_backend_new(opts, &err);
    g_assert_no_error(err);
    g_assert_false(memory_backend_can_write_protect(anon, 0, &err));
    g_assert_cmpstr(err->message, ==,
                    "memory-backend-ram 'ram0' on anonymous memory cannot be write-protected: this "
                    "kernel lacks the userfaultfd feature PAGEFAULT_FLAG_WP");
    g_clear_error(&err);

    opts->kind = MEMORY_BACKEND_MEMFD;
    opts->share = true;
    g_autoptr(MemoryBackend) memfd = memory_backend_new(opts, &err);
    g_assert_no_error(err);
    g_assert_true(memory_backend_can_write_protect(memfd, UFFD_FEATURE_WP_HUGETLBFS_SHMEM,
                                                   &err));
    g_assert_false(memory_backend_can_write_protect(memfd, UFFD_FEATURE_PAGEFAULT_FLAG_WP,
                                                    &err));
    g_assert_nonnull(strstr(err->message, "memory-backend-memfd 'ram0' on shmem"));
    g_assert_nonnull(strstr(err->message, "WP_HUGETLBFS_SHMEM"));
}

/* The smaps fields of the mapping that contains @addr. */
static GHashTable *smaps_of(const void *addr)
{
    g_autofree char *text = NULL;
    GHashTable *fields = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    bool inside = false;

    g_assert_true(g_file_get_contents("/proc/self/smaps", &text, NULL, NULL));
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (char **line = lines; *line; line++) {
        uintptr_t start, end;
        char perms[5];
        if (sscanf(*line, "%" G_GINTPTR_MODIFIER "x-%" G_GINTPTR_MODIFIER "x %4s", &start, &end,
                   perms) == 3) {
            if (inside) {
                break;
            }
            inside = (uintptr_t)addr >= start && (uintptr_t)addr < end;
            continue;
        }
        const char *colon = strchr(*line, ':');
        if (inside && colon) {
            g_hash_table_insert(fields, g_strndup(*line, colon - *line),
                                g_strstrip(g_strdup(colon + 1)));
        }
    }
    return fields;
}

static uint64_t smaps_kb(GHashTable *fields, const char *key)
{
    const char *v = g_hash_table_lookup(fields, key);
    return v ? g_ascii_strtoull(v, NULL, 10) : 0;
}

static bool smaps_has_vmflag(GHashTable *fields, const char *flag)
{
    const char *v = g_hash_table_lookup(fields, "VmFlags");
    g_auto(GStrv) flags = g_strsplit(v ? v : "", " ", -1);
    return g_strv_contains((const char *const *)flags, flag);
}

/* A counter of /proc/vmstat, or 0. */
static uint64_t vmstat_value(const char *key)
{
    g_autofree char *text = NULL;

    if (!g_file_get_contents("/proc/vmstat", &text, NULL, NULL)) {
        return 0;
    }
    g_autofree char *needle = g_strdup_printf("\n%s ", key);
    const char *p = strstr(text, needle);
    return p ? g_ascii_strtoull(p + strlen(needle), NULL, 10) : 0;
}

static void test_thp(gconstpointer data)
{
    bool thp = GPOINTER_TO_INT(data);
    g_autofree char *mode = NULL;
    g_autoptr(GError) err = NULL;

    g_autoptr(MemoryBackendOptions) opts = memory_backend_options_new(MEMORY_BACKEND_RAM);
    g_assert_true(opts->thp);
    opts->size = BACKEND_SIZE;
    opts->thp = thp;
    g_autoptr(MemoryBackend) b = memory_backend_new(opts, &err);
    g_assert_no_error(err);
    uint64_t fallbacks = vmstat_value("thp_fault_fallback");
    memset(b->host, 1, b->size);
    fallbacks = vmstat_value("thp_fault_fallback") - fallbacks;

    g_autoptr(GHashTable) smaps = smaps_of(b->host);
    g_assert_true(smaps_has_vmflag(smaps, thp ? "hg" : "nh"));
    g_assert_false(smaps_has_vmflag(smaps, thp ? "nh" : "hg"));
    g_assert_true(smaps_has_vmflag(smaps, "dc"));  /* MADV_DONTFORK */
    g_assert_cmpint(b->thp, ==, thp);
    uint64_t huge_kb = smaps_kb(smaps, "AnonHugePages");
    g_test_message("THP %s: AnonHugePages %" G_GUINT64_FORMAT " kB of %" G_GUINT64_FORMAT,
                   thp ? "on" : "off", huge_kb, (uint64_t)(BACKEND_SIZE / 1024));
    if (!thp) {
        g_assert_cmpuint(huge_kb, ==, 0);
        return;
    }
    if (!g_file_get_contents("/sys/kernel/mm/transparent_hugepage/enabled", &mode, NULL, NULL) ||
        strstr(mode, "[never]")) {
        g_test_skip("transparent huge pages are disabled on this system");
        return;
    }
    if (huge_kb == 0 && fallbacks) {
        g_test_skip("the kernel found no free huge page (thp_fault_fallback rose)");
        return;
    }
    /* Fresh, aligned, 2 MiB-sized regions get huge pages at first touch. */
    g_assert_cmpuint(huge_kb, >, 0);
}

static void test_prealloc(void)
{
    g_autoptr(MemoryBackendOptions) opts = memory_backend_options_new(MEMORY_BACKEND_RAM);
    g_autoptr(GError) err = NULL;

    opts->size = BACKEND_SIZE;
    opts->thp = false;
    opts->prealloc = true;
    g_autoptr(MemoryBackend) b = memory_backend_new(opts, &err);
    g_assert_no_error(err);
    g_autoptr(GHashTable) smaps = smaps_of(b->host);
    g_assert_cmpuint(smaps_kb(smaps, "Rss"), ==, BACKEND_SIZE / 1024);
}

static void test_existing_file(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *path = g_strdup_printf("/dev/shm/frostvm-test-%d-existing", getpid());
    g_autoptr(MemoryBackendOptions) opts = memory_backend_options_new(MEMORY_BACKEND_FILE);

    g_assert_true(g_file_set_contents(path, "hello", 5, NULL));
    opts->id = g_strdup("small");
    opts->size = 2 * MIB;
    opts->mem_path = g_strdup(path);
    g_assert_null(memory_backend_new(opts, &err));
    g_assert_nonnull(strstr(err->message, "memory-backend-file 'small'"));
    g_assert_nonnull(strstr(err->message, "less than size"));
    g_clear_error(&err);

    /* A large enough file keeps its content: the backend maps it as it is. */
    g_assert_cmpint(truncate(path, 2 * MIB), ==, 0);
    opts->share = true;
    g_autoptr(MemoryBackend) b = memory_backend_new(opts, &err);
    g_assert_no_error(err);
    g_assert_cmpmem(b->host, 5, "hello", 5);
    g_assert_cmpstr(b->fs_type, ==, "tmpfs");
    g_autofree char *desc = memory_backend_describe(b);
    g_autofree char *expected = g_strdup_printf("memory-backend-file on tmpfs (%s)", path);
    g_assert_cmpstr(desc, ==, expected);
    g_unlink(path);
}

typedef struct {
    const char *path;
    MemoryBackendKind kind;
    uint64_t size;
    bool hugetlb;
    uint64_t hugetlbsize;
    const char *mem_path;
    const char *message;
} BadOptionsCase;

static const BadOptionsCase bad_options[] = {
    { "/memory-backend/errors/zero-size", MEMORY_BACKEND_RAM, 0, false, 0, NULL,
      "memory-backend-ram 'bad': size must be larger than 0" },
    { "/memory-backend/errors/unaligned-size", MEMORY_BACKEND_MEMFD, 4096 + 1, false, 0, NULL,
      "memory-backend-memfd 'bad': size 4097 is not a multiple of the page size 4096" },
    { "/memory-backend/errors/no-mem-path", MEMORY_BACKEND_FILE, 2 * MIB, false, 0, NULL,
      "memory-backend-file 'bad': mem-path is required" },
    { "/memory-backend/errors/bad-mem-path", MEMORY_BACKEND_FILE, 2 * MIB, false, 0,
      "/nonexistent-dir/file",
      "memory-backend-file 'bad': cannot open '/nonexistent-dir/file': No such file or "
      "directory" },
    { "/memory-backend/errors/hugetlbsize-not-power-of-two", MEMORY_BACKEND_MEMFD, 2 * MIB, true,
      3 * MIB, NULL, "memory-backend-memfd 'bad': hugetlbsize 3145728 is not a power of two" },
    { "/memory-backend/errors/hugetlbsize-without-hugetlb", MEMORY_BACKEND_MEMFD, 2 * MIB, false,
      2 * MIB, NULL, "memory-backend-memfd 'bad': hugetlbsize needs hugetlb=on" },
};

static void test_bad_options(gconstpointer data)
{
    const BadOptionsCase *c = data;
    g_autoptr(MemoryBackendOptions) opts = memory_backend_options_new(c->kind);
    g_autoptr(GError) err = NULL;

    opts->id = g_strdup("bad");
    opts->size = c->size;
    opts->hugetlb = c->hugetlb;
    opts->hugetlbsize = c->hugetlbsize;
    opts->mem_path = g_strdup(c->mem_path);
    g_assert_null(memory_backend_new(opts, &err));
    g_assert_error(err, FROSTVM_ERROR, FROSTVM_ERROR_GENERIC);
    g_assert_cmpstr(err->message, ==, c->message);
}

static void test_kind_names(void)
{
    MemoryBackendKind kind;

    g_assert_cmpstr(memory_backend_kind_name(MEMORY_BACKEND_RAM), ==, "memory-backend-ram");
    g_assert_cmpstr(memory_backend_kind_name(MEMORY_BACKEND_MEMFD), ==, "memory-backend-memfd");
    g_assert_cmpstr(memory_backend_kind_name(MEMORY_BACKEND_FILE), ==, "memory-backend-file");
    g_assert_true(memory_backend_kind_from_name("memory-backend-memfd", &kind));
    g_assert_cmpint(kind, ==, MEMORY_BACKEND_MEMFD);
    g_assert_false(memory_backend_kind_from_name("memory-backend-epc", &kind));

    g_autoptr(MemoryBackendOptions) memfd = memory_backend_options_new(MEMORY_BACKEND_MEMFD);
    g_assert_true(memfd->share);
    g_autoptr(MemoryBackendOptions) file = memory_backend_options_new(MEMORY_BACKEND_FILE);
    g_assert_false(file->share);
    g_assert_true(file->thp);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    g_test_add_func("/memory-backend/kind-names", test_kind_names);
    for (unsigned i = 0; i < G_N_ELEMENTS(backend_cases); i++) {
        g_autofree char *map = g_strdup_printf("/memory-backend/map/%s", backend_cases[i].name);
        g_autofree char *wp = g_strdup_printf("/memory-backend/write-protect/%s",
                                              backend_cases[i].name);
        g_test_add_data_func(map, &backend_cases[i], test_backend_map);
        g_test_add_data_func(wp, &backend_cases[i], test_backend_write_protect);
    }
    g_test_add_func("/memory-backend/write-protect/missing-feature",
                    test_write_protect_missing_feature);
    g_test_add_data_func("/memory-backend/thp/on", GINT_TO_POINTER(true), test_thp);
    g_test_add_data_func("/memory-backend/thp/off", GINT_TO_POINTER(false), test_thp);
    g_test_add_func("/memory-backend/prealloc", test_prealloc);
    g_test_add_func("/memory-backend/file/existing", test_existing_file);
    for (unsigned i = 0; i < G_N_ELEMENTS(bad_options); i++) {
        g_test_add_data_func(bad_options[i].path, &bad_options[i], test_bad_options);
    }
    return g_test_run();
}
