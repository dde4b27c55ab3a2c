/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Host memory that backs guest RAM: anonymous, memfd and file (tmpfs, hugetlbfs, ...) backends. */
#ifndef SYSTEM_MEMORY_BACKEND_H
#define SYSTEM_MEMORY_BACKEND_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

/* The -object types, named as QEMU names them. */
typedef enum {
    MEMORY_BACKEND_RAM,    /* memory-backend-ram: anonymous memory */
    MEMORY_BACKEND_MEMFD,  /* memory-backend-memfd: shmem or hugetlb memfd */
    MEMORY_BACKEND_FILE,   /* memory-backend-file: a file under mem-path */
} MemoryBackendKind;

/* What the kernel actually backs the mapping with; decides write-protect support. */
typedef enum {
    MEMORY_BACKING_ANONYMOUS,  /* private anonymous memory */
    MEMORY_BACKING_SHMEM,      /* memfd, tmpfs files, shared anonymous memory */
    MEMORY_BACKING_HUGETLBFS,  /* hugetlb memfd or a file on hugetlbfs */
    MEMORY_BACKING_OTHER_FILE, /* a file on any other file system */
} MemoryBackingType;

typedef struct MemoryBackendOptions {
    MemoryBackendKind kind;
    char *id;              /* -object ...,id=ID; may be NULL for an implicit backend */
    uint64_t size;         /* bytes */
    bool share;            /* MAP_SHARED; memory-backend-memfd defaults to on */
    bool hugetlb;          /* memfd: MFD_HUGETLB */
    uint64_t hugetlbsize;  /* memfd with hugetlb: page size, 0 for the default */
    bool thp;              /* anonymous: MADV_HUGEPAGE (default on) or MADV_NOHUGEPAGE */
    char *mem_path;        /* file: a file, or a directory to create a temporary file in */
    bool prealloc;         /* populate every page at creation */
    bool dontdump;         /* MADV_DONTDUMP: keep guest RAM out of core dumps (dump=off) */
} MemoryBackendOptions;

typedef struct MemoryBackend {
    MemoryBackendOptions opts;  /* a deep copy of what it was created from */
    void *host;                 /* start of the mapping, aligned to the THP/huge page size */
    uint64_t size;              /* mapped bytes (opts.size) */
    int fd;                     /* memfd or file descriptor; -1 for anonymous memory */
    uint64_t page_size;         /* backing page size: 4 KiB, or the huge page size */
    char *fs_type;              /* "anonymous", "shmem", "tmpfs", "hugetlbfs", "ext4", ... */
    MemoryBackingType backing;
    bool thp;                   /* MADV_HUGEPAGE is in effect on the mapping */
    char *path;                 /* the file opened under mem-path (unlinked if temporary) */
    /*
     * The file was created empty here (a memfd, or a temporary file unlinked
     * at once) and no other process can open it: its only pages are those
     * this mapping put there.
     */
    bool fresh;
    void *map_base;             /* the whole reservation, including alignment slack */
    uint64_t map_len;
} MemoryBackend;

/*
 * Allocate options for @kind with QEMU's defaults (share on for memfd, THP on).
 * Free with memory_backend_options_free().
 */
MemoryBackendOptions *memory_backend_options_new(MemoryBackendKind kind);

/* Free heap-allocated options and their strings (NULL is fine). */
void memory_backend_options_free(MemoryBackendOptions *opts);

/* "memory-backend-ram", "memory-backend-memfd" or "memory-backend-file". */
const char *memory_backend_kind_name(MemoryBackendKind kind);

/* The kind named @name (as memory_backend_kind_name()); false if unknown. */
bool memory_backend_kind_from_name(const char *name, MemoryBackendKind *kind);

/*
 * Create and map a backend. @opts is copied. The mapping is aligned so that
 * transparent or hugetlb huge pages can back it. Returns NULL with @errp set
 * when the size, path or kernel refuses (the message names the backend).
 */
MemoryBackend *memory_backend_new(const MemoryBackendOptions *opts, GError **errp);

/* Unmap and free a backend (NULL is fine). A temporary file is already unlinked. */
void memory_backend_free(MemoryBackend *b);

/*
 * Whether this kernel can write-protect @b with userfaultfd, given the
 * features it reported (uffd_query_features()). On false, @errp says which
 * backend (id, kind, file system) and why.
 */
bool memory_backend_can_write_protect(const MemoryBackend *b, uint64_t uffd_features,
                                      GError **errp);

/*
 * A short human description: "memory-backend-file on ext4 (PATH)",
 * "memory-backend-ram on anonymous memory (THP)". The caller frees it.
 */
char *memory_backend_describe(const MemoryBackend *b);

/*
 * Give [@host, @host + @len) the advice @b's own mapping has (huge pages or
 * not, not inherited by children, not in core dumps): for memory that takes
 * the place of part of it (restore-mode map's detach).
 */
void memory_backend_advise(const MemoryBackend *b, void *host, uint64_t len);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(MemoryBackend, memory_backend_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MemoryBackendOptions, memory_backend_options_free)

#endif
