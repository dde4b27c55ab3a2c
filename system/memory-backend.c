/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Memory backends: map guest RAM from anonymous memory, a memfd or a file; say what backs it. */
#include "system/memory-backend.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "util/error.h"
#include "util/userfaultfd.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MFD_HUGE_SHIFT
#define MFD_HUGE_SHIFT 26
#endif

#define MEMORY_BACKEND_DEFAULT_THP_SIZE (2ULL << 20)

#define FS_MAGIC_HUGETLBFS 0x958458f6
#define FS_MAGIC_TMPFS 0x01021994

static const char *const memory_backend_kind_names[] = {
    [MEMORY_BACKEND_RAM] = "memory-backend-ram",
    [MEMORY_BACKEND_MEMFD] = "memory-backend-memfd",
    [MEMORY_BACKEND_FILE] = "memory-backend-file",
};

const char *memory_backend_kind_name(MemoryBackendKind kind)
{
    if ((unsigned)kind >= G_N_ELEMENTS(memory_backend_kind_names)) {
        return "memory-backend-?";
    }
    return memory_backend_kind_names[kind];
}

bool memory_backend_kind_from_name(const char *name, MemoryBackendKind *kind)
{
    for (unsigned i = 0; i < G_N_ELEMENTS(memory_backend_kind_names); i++) {
        if (g_str_equal(name, memory_backend_kind_names[i])) {
            *kind = i;
            return true;
        }
    }
    return false;
}

MemoryBackendOptions *memory_backend_options_new(MemoryBackendKind kind)
{
    MemoryBackendOptions *opts = g_new0(MemoryBackendOptions, 1);

    opts->kind = kind;
    opts->share = kind == MEMORY_BACKEND_MEMFD;
    opts->thp = true;
    return opts;
}

static void memory_backend_options_clear(MemoryBackendOptions *opts)
{
    g_clear_pointer(&opts->id, g_free);
    g_clear_pointer(&opts->mem_path, g_free);
}

void memory_backend_options_free(MemoryBackendOptions *opts)
{
    if (opts) {
        memory_backend_options_clear(opts);
        g_free(opts);
    }
}

/* The size the kernel uses for PMD-mapped transparent huge pages. */
static uint64_t memory_backend_thp_size(void)
{
    g_autofree char *text = NULL;

    if (g_file_get_contents("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", &text, NULL,
                            NULL)) {
        uint64_t size = g_ascii_strtoull(text, NULL, 10);
        if (size && !(size & (size - 1))) {
            return size;
        }
    }
    return MEMORY_BACKEND_DEFAULT_THP_SIZE;
}

/*
 * The file system type of @fd as the mount table names it ("ext4", "tmpfs"),
 * so messages say what the administrator sees in mount(8); falls back to the
 * statfs magic number for file systems whose st_dev matches no mount (btrfs
 * subvolumes).
 */
static char *memory_backend_fs_name(int fd, long magic)
{
    struct stat st;
    g_autofree char *mountinfo = NULL;

    if (fstat(fd, &st) == 0 &&
        g_file_get_contents("/proc/self/mountinfo", &mountinfo, NULL, NULL)) {
        g_autofree char *dev = g_strdup_printf("%u:%u", major(st.st_dev), minor(st.st_dev));
        g_auto(GStrv) lines = g_strsplit(mountinfo, "\n", -1);
        for (char **line = lines; *line; line++) {
            g_auto(GStrv) fields = g_strsplit(*line, " ", -1);
            if (g_strv_length(fields) < 3 || !g_str_equal(fields[2], dev)) {
                continue;
            }
            /* The type follows the " - " separator after the optional fields. */
            for (char **f = fields + 3; *f; f++) {
                if (g_str_equal(*f, "-") && f[1]) {
                    return g_strdup(f[1]);
                }
            }
        }
    }
    switch ((unsigned long)magic) {
    case FS_MAGIC_HUGETLBFS:
        return g_strdup("hugetlbfs");
    case FS_MAGIC_TMPFS:
        return g_strdup("tmpfs");
    case 0xEF53:
        return g_strdup("ext4");
    case 0x794c7630:
        return g_strdup("overlay");
    case 0x58465342:
        return g_strdup("xfs");
    case 0x9123683e:
        return g_strdup("btrfs");
    case 0x6969:
        return g_strdup("nfs");
    default:
        return g_strdup_printf("file system 0x%lx", (unsigned long)magic);
    }
}

/* Who the backend is, for messages: "memory-backend-file 'mem0'". */
static char *memory_backend_name(const MemoryBackend *b)
{
    const char *kind = memory_backend_kind_name(b->opts.kind);

    return b->opts.id ? g_strdup_printf("%s '%s'", kind, b->opts.id) : g_strdup(kind);
}

static char *memory_backend_format_size(uint64_t bytes)
{
    if (bytes >= (1ULL << 30) && !(bytes & ((1ULL << 30) - 1))) {
        return g_strdup_printf("%" G_GUINT64_FORMAT " GiB", bytes >> 30);
    }
    if (bytes >= (1ULL << 20) && !(bytes & ((1ULL << 20) - 1))) {
        return g_strdup_printf("%" G_GUINT64_FORMAT " MiB", bytes >> 20);
    }
    return g_strdup_printf("%" G_GUINT64_FORMAT " KiB", bytes >> 10);
}

static bool memory_backend_open_memfd(MemoryBackend *b, GError **errp)
{
    g_autofree char *who = memory_backend_name(b);
    unsigned flags = MFD_CLOEXEC;

    if (b->opts.hugetlb) {
        flags |= MFD_HUGETLB;
        uint64_t hs = b->opts.hugetlbsize;
        if (hs) {
            if (hs & (hs - 1)) {
                error_setg(errp, "%s: hugetlbsize %" G_GUINT64_FORMAT " is not a power of two",
                           who, hs);
                return false;
            }
            flags |= (unsigned)__builtin_ctzll(hs) << MFD_HUGE_SHIFT;
        }
    } else if (b->opts.hugetlbsize) {
        error_setg(errp, "%s: hugetlbsize needs hugetlb=on", who);
        return false;
    }
    b->fd = memfd_create(b->opts.id ? b->opts.id : "frostvm-ram", flags);
    if (b->fd < 0) {
        error_setg_errno(errp, errno, "%s: cannot create a %smemfd", who,
                         b->opts.hugetlb ? "hugetlb " : "");
        return false;
    }
    b->fresh = true;
    return true;
}

static bool memory_backend_open_file(MemoryBackend *b, GError **errp)
{
    g_autofree char *who = memory_backend_name(b);
    const char *mem_path = b->opts.mem_path;
    struct stat st;

    if (!mem_path || !*mem_path) {
        error_setg(errp, "%s: mem-path is required", who);
        return false;
    }
    if (stat(mem_path, &st) == 0 && S_ISDIR(st.st_mode)) {
        /*
         * A directory asks for private memory on that file system: create a
         * file no one else can open, and unlink it at once so it disappears
         * with the process even after a crash.
         */
        b->path = g_strdup_printf("%s/frostvm-%s-XXXXXX", mem_path,
                                  b->opts.id ? b->opts.id : "ram");
        b->fd = g_mkstemp_full(b->path, O_RDWR | O_CLOEXEC, 0600);
        if (b->fd < 0) {
            error_setg_errno(errp, errno, "%s: cannot create a file in '%s'", who, mem_path);
            return false;
        }
        unlink(b->path);
        b->fresh = true;
    } else {
        b->path = g_strdup(mem_path);
        b->fd = open(mem_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (b->fd < 0) {
            error_setg_errno(errp, errno, "%s: cannot open '%s'", who, mem_path);
            return false;
        }
    }
    return true;
}

/* Fill in fs_type, backing and page_size from what the descriptor lives on. */
static bool memory_backend_probe_fd(MemoryBackend *b, GError **errp)
{
    struct statfs sfs;

    if (fstatfs(b->fd, &sfs) < 0) {
        g_autofree char *who = memory_backend_name(b);
        error_setg_errno(errp, errno, "%s: cannot query the file system", who);
        return false;
    }
    b->page_size = getpagesize();
    if ((unsigned long)sfs.f_type == FS_MAGIC_HUGETLBFS) {
        b->backing = MEMORY_BACKING_HUGETLBFS;
        b->page_size = sfs.f_bsize;
        b->fs_type = g_strdup("hugetlbfs");
    } else if ((unsigned long)sfs.f_type == FS_MAGIC_TMPFS) {
        b->backing = MEMORY_BACKING_SHMEM;
        /* A memfd lives on the kernel's internal shmem mount, not a tmpfs the user mounted. */
        b->fs_type = b->opts.kind != MEMORY_BACKEND_FILE ? g_strdup("shmem")
                                                          : memory_backend_fs_name(b->fd,
                                                                                   sfs.f_type);
    } else {
        b->backing = MEMORY_BACKING_OTHER_FILE;
        b->fs_type = memory_backend_fs_name(b->fd, sfs.f_type);
    }
    return true;
}

/* Give the file its size; an existing file must be at least as large as the backend. */
static bool memory_backend_size_file(MemoryBackend *b, GError **errp)
{
    g_autofree char *who = memory_backend_name(b);
    struct stat st;

    if (fstat(b->fd, &st) < 0) {
        error_setg_errno(errp, errno, "%s: cannot stat '%s'", who, b->path ? b->path : "memfd");
        return false;
    }
    if ((uint64_t)st.st_size >= b->size) {
        return true;
    }
    if (st.st_size > 0) {
        error_setg(errp, "%s: '%s' holds %" G_GUINT64_FORMAT " bytes, less than size %"
                   G_GUINT64_FORMAT, who, b->path, (uint64_t)st.st_size, b->size);
        return false;
    }
    if (ftruncate(b->fd, b->size) < 0) {
        error_setg_errno(errp, errno, "%s: cannot size %s to %" G_GUINT64_FORMAT " bytes", who,
                         b->path ? b->path : "the memfd", b->size);
        return false;
    }
    return true;
}

/*
 * Map the backend at an address aligned to @align: reserve a larger
 * inaccessible range, place the mapping inside it, and give back the slack.
 * Aligned guest RAM lets the kernel use PMD-sized pages from the first byte.
 */
static bool memory_backend_map(MemoryBackend *b, uint64_t align, GError **errp)
{
    g_autofree char *who = memory_backend_name(b);
    uint64_t reserve = b->size + align;
    int flags;

    uint8_t *base = mmap(NULL, reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                         -1, 0);
    if (base == MAP_FAILED) {
        error_setg_errno(errp, errno, "%s: cannot reserve %" G_GUINT64_FORMAT " bytes", who,
                         reserve);
        return false;
    }
    uint8_t *aligned = (uint8_t *)(((uintptr_t)base + align - 1) & ~(uintptr_t)(align - 1));

    if (b->fd < 0) {
        /* Only private RAM has no descriptor: shared RAM is a memfd (memory_backend_new()). */
        flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
    } else {
        flags = b->opts.share ? MAP_SHARED : MAP_PRIVATE;
        /*
         * Hugetlb pages are reserved at mmap time; without MAP_NORESERVE a
         * shortage fails here, with an error, rather than as SIGBUS later.
         */
        if (b->backing != MEMORY_BACKING_HUGETLBFS) {
            flags |= MAP_NORESERVE;
        }
    }
    void *host = mmap(aligned, b->size, PROT_READ | PROT_WRITE, flags | MAP_FIXED, b->fd, 0);
    if (host == MAP_FAILED) {
        int err = errno;
        munmap(base, reserve);
        error_setg_errno(errp, err, "%s: cannot map %" G_GUINT64_FORMAT " bytes", who,
                         b->size);
        return false;
    }
    if (aligned > base) {
        munmap(base, aligned - base);
    }
    uint8_t *end = aligned + b->size;
    if (base + reserve > end) {
        munmap(end, base + reserve - end);
    }
    b->host = host;
    b->map_base = host;
    b->map_len = b->size;
    return true;
}

static bool memory_backend_prealloc(MemoryBackend *b, GError **errp)
{
    if (madvise(b->host, b->size, MADV_POPULATE_WRITE) == 0) {
        return true;
    }
    if (errno != EINVAL) {
        g_autofree char *who = memory_backend_name(b);
        error_setg_errno(errp, errno, "%s: cannot preallocate %" G_GUINT64_FORMAT " bytes", who,
                         b->size);
        return false;
    }
    /*
     * Kernels before 5.14 lack MADV_POPULATE_WRITE: write every page,
     * keeping what an existing file already holds.
     */
    for (uint64_t off = 0; off < b->size; off += b->page_size) {
        volatile uint8_t *p = (uint8_t *)b->host + off;
        *p = *p;
    }
    return true;
}

MemoryBackend *memory_backend_new(const MemoryBackendOptions *opts, GError **errp)
{
    g_autoptr(MemoryBackend) b = g_new0(MemoryBackend, 1);

    b->opts = *opts;
    b->opts.id = g_strdup(opts->id);
    b->opts.mem_path = g_strdup(opts->mem_path);
    b->fd = -1;
    b->size = opts->size;

    g_autofree char *who = memory_backend_name(b);
    if (b->size == 0) {
        error_setg(errp, "%s: size must be larger than 0", who);
        return NULL;
    }
    if (b->size % getpagesize()) {
        error_setg(errp, "%s: size %" G_GUINT64_FORMAT " is not a multiple of the page size %d",
                   who, b->size, getpagesize());
        return NULL;
    }

    switch (opts->kind) {
    case MEMORY_BACKEND_RAM:
        if (opts->share) {
            /*
             * Shared anonymous memory is an unnamed shmem file; a memfd is
             * the same memory with a descriptor, whose holes (SEEK_HOLE) tell
             * snapshots and migration which pages were never written.
             * Without it they read every page, and reading shmem allocates:
             * a snapshot of a 512 MiB guest using 128 MiB left all 512 MiB
             * allocated.
             */
            if (!memory_backend_open_memfd(b, errp) || !memory_backend_probe_fd(b, errp)) {
                return NULL;
            }
            break;
        }
        b->page_size = getpagesize();
        b->backing = MEMORY_BACKING_ANONYMOUS;
        b->fs_type = g_strdup("anonymous");
        break;
    case MEMORY_BACKEND_MEMFD:
        if (!memory_backend_open_memfd(b, errp) || !memory_backend_probe_fd(b, errp)) {
            return NULL;
        }
        break;
    case MEMORY_BACKEND_FILE:
        if (!memory_backend_open_file(b, errp) || !memory_backend_probe_fd(b, errp)) {
            return NULL;
        }
        break;
    default:
        error_setg(errp, "memory backend kind %d is unknown", opts->kind);
        return NULL;
    }

    if (b->size % b->page_size) {
        g_autofree char *ps = memory_backend_format_size(b->page_size);
        error_setg(errp, "%s: size %" G_GUINT64_FORMAT " is not a multiple of its %s pages",
                   who, b->size, ps);
        return NULL;
    }
    if (b->fd >= 0 && !memory_backend_size_file(b, errp)) {
        return NULL;
    }

    uint64_t align = MAX(b->page_size, memory_backend_thp_size());
    if (!memory_backend_map(b, align, errp)) {
        return NULL;
    }

    if (b->backing == MEMORY_BACKING_ANONYMOUS) {
        /*
         * Huge pages make write-protecting all of RAM cheap (one PMD entry per
         * 2 MiB instead of 512 PTEs).
         */
        b->thp = opts->thp && madvise(b->host, b->size, MADV_HUGEPAGE) == 0;
    }
    memory_backend_advise(b, b->host, b->size);

    if (opts->prealloc && !memory_backend_prealloc(b, errp)) {
        return NULL;
    }
    return g_steal_pointer(&b);
}

void memory_backend_advise(const MemoryBackend *b, void *host, uint64_t len)
{
    if (b->backing == MEMORY_BACKING_ANONYMOUS) {
        /* "off" must also hold when the system default is THP "always". */
        madvise(host, len, b->thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    }
    /*
     * Children (exec: migration channels, helpers) never touch guest RAM:
     * skipping it at fork avoids copying its page tables and marking it
     * copy-on-write under a running guest.
     */
    madvise(host, len, MADV_DONTFORK);
    if (b->opts.dontdump) {
        madvise(host, len, MADV_DONTDUMP);
    }
}

void memory_backend_free(MemoryBackend *b)
{
    if (!b) {
        return;
    }
    if (b->map_base) {
        munmap(b->map_base, b->map_len);
    }
    if (b->fd >= 0) {
        close(b->fd);
    }
    memory_backend_options_clear(&b->opts);
    g_free(b->fs_type);
    g_free(b->path);
    g_free(b);
}

/* Where the memory comes from, for messages: "anonymous memory", "ext4 (PATH)". */
static char *memory_backend_where(const MemoryBackend *b)
{
    GString *s = g_string_new(NULL);

    if (b->backing == MEMORY_BACKING_ANONYMOUS) {
        g_string_append(s, "anonymous memory");
    } else {
        g_string_append(s, b->fs_type);
    }
    if (b->backing == MEMORY_BACKING_HUGETLBFS) {
        g_autofree char *ps = memory_backend_format_size(b->page_size);
        g_string_append_printf(s, ", %s pages", ps);
    }
    if (b->opts.mem_path) {
        g_string_append_printf(s, " (%s)", b->opts.mem_path);
    }
    return g_string_free(s, FALSE);
}

bool memory_backend_can_write_protect(const MemoryBackend *b, uint64_t uffd_features,
                                      GError **errp)
{
    g_autofree char *who = memory_backend_name(b);
    g_autofree char *where = memory_backend_where(b);
    uint64_t needed;

    switch (b->backing) {
    case MEMORY_BACKING_ANONYMOUS:
        needed = UFFD_FEATURE_PAGEFAULT_FLAG_WP;
        break;
    case MEMORY_BACKING_SHMEM:
    case MEMORY_BACKING_HUGETLBFS:
        needed = UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
        break;
    default:
        error_setg(errp, "%s on %s cannot be write-protected: the kernel supports userfaultfd "
                   "write-protect only for anonymous, shmem (memfd, tmpfs) and hugetlbfs memory",
                   who, where);
        return false;
    }
    if (!(uffd_features & needed)) {
        error_setg(errp, "%s on %s cannot be write-protected: this kernel lacks the "
                   "userfaultfd feature %s", who, where, uffd_feature_name(needed));
        return false;
    }
    return true;
}

char *memory_backend_describe(const MemoryBackend *b)
{
    g_autofree char *where = memory_backend_where(b);

    return g_strdup_printf("%s on %s%s", memory_backend_kind_name(b->opts.kind), where,
                           b->thp ? " (THP)" : "");
}
