/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The machine description in every stream (a flattened device tree) and the loader's comparison with it. */
#include "migration/stream/savevm-internal.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>
#include <libfdt.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "accel/accel.h"
#include "config-host.h"
#include "migration/savevm-parse.h"
#include "migration/vmstate.h"
#include "system/machine.h"
#include "system/memory-backend.h"
#include "util/error.h"

#define DESCRIBE_INITIAL_SIZE 4096

/* Host CPU vendor, model and a feature summary: informational, never compared. */
static void describe_cpu(char vendor[13], char model[49], GString *features)
{
    memset(vendor, 0, 13);
    memset(model, 0, 49);
#if defined(__x86_64__)
    {
        unsigned a, b, c, d;
        static const struct {
            int leaf;    /* 1: CPUID.1, 7: CPUID.7.0 */
            char reg;    /* 'b', 'c' or 'd' */
            int bit;
            const char *name;
        } flags[] = {
            { 1, 'd', 25, "sse" }, { 1, 'd', 26, "sse2" }, { 1, 'c', 0, "sse3" },
            { 1, 'c', 9, "ssse3" }, { 1, 'c', 19, "sse4.1" }, { 1, 'c', 20, "sse4.2" },
            { 1, 'c', 23, "popcnt" }, { 1, 'c', 25, "aes" }, { 1, 'c', 26, "xsave" },
            { 1, 'c', 28, "avx" }, { 1, 'c', 30, "rdrand" }, { 7, 'b', 5, "avx2" },
            { 7, 'b', 8, "bmi2" }, { 7, 'b', 16, "avx512f" }, { 7, 'b', 29, "sha" },
        };
        unsigned r1[4] = { 0 }, r7[4] = { 0 };

        if (__get_cpuid(0, &a, &b, &c, &d)) {
            memcpy(vendor, &b, 4);
            memcpy(vendor + 4, &d, 4);
            memcpy(vendor + 8, &c, 4);
            __get_cpuid(1, &r1[0], &r1[1], &r1[2], &r1[3]);
            if (a >= 7) {
                __cpuid_count(7, 0, r7[0], r7[1], r7[2], r7[3]);
            }
        }
        if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
            for (unsigned i = 0; i < 3; i++) {
                unsigned r[4];
                __get_cpuid(0x80000002 + i, &r[0], &r[1], &r[2], &r[3]);
                memcpy(model + 16 * i, r, 16);
            }
        }
        for (size_t i = 0; i < G_N_ELEMENTS(flags); i++) {
            unsigned *regs = flags[i].leaf == 1 ? r1 : r7;
            unsigned v = regs[flags[i].reg - 'a'];
            if (v & (1u << flags[i].bit)) {
                g_string_append_printf(features, "%s%s", features->len ? " " : "",
                                       flags[i].name);
            }
        }
    }
#endif
    g_strstrip(model);
}

/* Build the description into @fdt; false if @size is too small. */
static bool describe_build(Machine *m, void *fdt, size_t size)
{
    char vendor[13], model[49], node[32];
    g_autoptr(GString) features = g_string_new(NULL);
    const char *name = m->config && m->config->name ? m->config->name : "";
    int r = 0;

#define FDT_DO(call) do { if ((r = (call)) < 0) return false; } while (0)
    FDT_DO(fdt_create(fdt, (int)size));
    FDT_DO(fdt_finish_reservemap(fdt));
    FDT_DO(fdt_begin_node(fdt, ""));
    FDT_DO(fdt_property_string(fdt, "compatible", "frostvm,machine"));
    FDT_DO(fdt_property_u32(fdt, "description-version", 1));
    FDT_DO(fdt_property_string(fdt, "producer", "frostvm " FROSTVM_VERSION));
    FDT_DO(fdt_property_u64(fdt, "created", (uint64_t)time(NULL)));
    FDT_DO(fdt_property_string(fdt, "name", name));
    FDT_DO(fdt_property_string(fdt, "accelerator", m->accel ? m->accel->name : "none"));
    FDT_DO(fdt_property_u32(fdt, "vcpus", m->smp));
    FDT_DO(fdt_property_u64(fdt, "ram-size", m->ram_size));

    FDT_DO(fdt_begin_node(fdt, "ram-blocks"));
    for (guint i = 0; i < m->ram_blocks->len; i++) {
        RamBlock *b = g_ptr_array_index(m->ram_blocks, i);

        g_snprintf(node, sizeof(node), "block@%u", i);
        FDT_DO(fdt_begin_node(fdt, node));
        FDT_DO(fdt_property_string(fdt, "name", b->name));
        FDT_DO(fdt_property_u64(fdt, "size", b->size));
        FDT_DO(fdt_property_u64(fdt, "page-size", b->page_size));
        FDT_DO(fdt_property_string(fdt, "backend",
                                   b->backend ? memory_backend_kind_name(b->backend->opts.kind)
                                              : "none"));
        FDT_DO(fdt_property_string(fdt, "backing",
                                   b->backend && b->backend->fs_type ? b->backend->fs_type
                                                                      : "unknown"));
        FDT_DO(fdt_end_node(fdt));
    }
    FDT_DO(fdt_end_node(fdt));

    FDT_DO(fdt_begin_node(fdt, "ram-ranges"));
    for (unsigned i = 0; i < m->nr_ram_ranges; i++) {
        GuestRamRange *rr = &m->ram_ranges[i];

        g_snprintf(node, sizeof(node), "range@%" PRIx64, rr->gpa);
        FDT_DO(fdt_begin_node(fdt, node));
        FDT_DO(fdt_property_u64(fdt, "gpa", rr->gpa));
        FDT_DO(fdt_property_u64(fdt, "size", rr->size));
        FDT_DO(fdt_property_u32(fdt, "block", (uint32_t)savevm_ram_block_index(m, rr->block)));
        FDT_DO(fdt_property_u64(fdt, "offset", rr->offset));
        FDT_DO(fdt_end_node(fdt));
    }
    FDT_DO(fdt_end_node(fdt));

    describe_cpu(vendor, model, features);
    FDT_DO(fdt_begin_node(fdt, "cpu"));
    FDT_DO(fdt_property_string(fdt, "host-vendor", vendor));
    FDT_DO(fdt_property_string(fdt, "host-model", model));
    FDT_DO(fdt_property_string(fdt, "host-features", features->str));
    FDT_DO(fdt_end_node(fdt));

    FDT_DO(fdt_begin_node(fdt, "devices"));
    for (guint i = 0; m->vmstate_handlers && i < m->vmstate_handlers->len; i++) {
        VMStateHandler *h = &g_array_index(m->vmstate_handlers, VMStateHandler, i);

        g_snprintf(node, sizeof(node), "device@%u", i);
        FDT_DO(fdt_begin_node(fdt, node));
        FDT_DO(fdt_property_string(fdt, "name", h->name));
        FDT_DO(fdt_property_u32(fdt, "instance", h->instance));
        FDT_DO(fdt_property_u32(fdt, "version", h->version));
        FDT_DO(fdt_end_node(fdt));
    }
    FDT_DO(fdt_end_node(fdt));

    FDT_DO(fdt_end_node(fdt));
    FDT_DO(fdt_finish(fdt));
#undef FDT_DO
    return true;
}

GByteArray *savevm_machine_describe(Machine *m, GError **errp)
{
    size_t size = DESCRIBE_INITIAL_SIZE;

    for (;;) {
        g_autofree uint8_t *tmp = g_malloc0(size);
        GByteArray *out;

        if (describe_build(m, tmp, size)) {
            out = g_byte_array_sized_new(fdt_totalsize(tmp));
            g_byte_array_append(out, tmp, fdt_totalsize(tmp));
            return out;
        }
        if (size >= (1u << 20)) {
            error_setg(errp, "the machine description does not fit in %zu bytes", size);
            return NULL;
        }
        size *= 2;
    }
}

/* "512 MiB" when exact, the byte count otherwise. */
static char *describe_size(uint64_t bytes)
{
    static const char *units[] = { "bytes", "KiB", "MiB", "GiB", "TiB" };
    unsigned u = 0;

    while (u < G_N_ELEMENTS(units) - 1 && bytes >= 1024 && bytes % 1024 == 0) {
        bytes /= 1024;
        u++;
    }
    return g_strdup_printf("%" PRIu64 " %s", bytes, units[u]);
}

bool savevm_machine_check(Machine *m, const void *fdt, GError **errp)
{
    g_autoptr(GPtrArray) diffs = g_ptr_array_new_with_free_func(g_free);
    const char *compat = savevm_fdt_get_string(fdt, "/", "compatible");
    const char *accel = savevm_fdt_get_string(fdt, "/", "accelerator");
    uint64_t vcpus, ram_size, nblocks = 0;
    int parent;

    if (!compat || strcmp(compat, "frostvm,machine")) {
        error_setg(errp, "the stream's machine description is not a frostvm machine");
        return false;
    }
    if (!savevm_fdt_get_u64(fdt, "/", "vcpus", &vcpus) ||
        !savevm_fdt_get_u64(fdt, "/", "ram-size", &ram_size)) {
        error_setg(errp, "the stream's machine description lacks vcpus or ram-size");
        return false;
    }
    if (ram_size != m->ram_size) {
        g_autofree char *a = describe_size(ram_size);
        g_autofree char *b = describe_size(m->ram_size);
        g_ptr_array_add(diffs, g_strdup_printf("RAM size: the image has %s, this machine %s",
                                               a, b));
    }
    if (vcpus != m->smp) {
        g_ptr_array_add(diffs, g_strdup_printf("vCPUs: the image has %" PRIu64
                                               ", this machine %u", vcpus, m->smp));
    }
    if (accel && m->accel && strcmp(accel, m->accel->name)) {
        g_ptr_array_add(diffs, g_strdup_printf("accelerator: the image was saved with "
                                               "'%s', this machine uses '%s'",
                                               accel, m->accel->name));
    }
    parent = fdt_path_offset(fdt, "/ram-blocks");
    if (parent >= 0) {
        int node;
        fdt_for_each_subnode(node, fdt, parent) {
            const char *bname;
            uint64_t bsize = 0;
            RamBlock *mine;
            char pathbuf[256];

            if (fdt_get_path(fdt, node, pathbuf, sizeof(pathbuf)) < 0) {
                continue;
            }
            bname = savevm_fdt_get_string(fdt, pathbuf, "name");
            savevm_fdt_get_u64(fdt, pathbuf, "size", &bsize);
            mine = nblocks < m->ram_blocks->len
                   ? g_ptr_array_index(m->ram_blocks, nblocks) : NULL;
            nblocks++;
            if (!bname) {
                g_ptr_array_add(diffs, g_strdup_printf("RAM block %" PRIu64 " has no name",
                                                       nblocks - 1));
            } else if (!mine) {
                g_ptr_array_add(diffs, g_strdup_printf("RAM block '%s' does not exist "
                                                       "here", bname));
            } else if (strcmp(bname, mine->name)) {
                g_ptr_array_add(diffs, g_strdup_printf("RAM block %" PRIu64 ": the image "
                                                       "has '%s', this machine '%s'",
                                                       nblocks - 1, bname, mine->name));
            } else if (bsize != mine->size) {
                g_autofree char *a = describe_size(bsize);
                g_autofree char *b = describe_size(mine->size);
                g_ptr_array_add(diffs, g_strdup_printf("RAM block '%s': the image has "
                                                       "%s, this machine %s", bname, a, b));
            }
        }
    }
    if (nblocks < m->ram_blocks->len) {
        RamBlock *b = g_ptr_array_index(m->ram_blocks, nblocks);
        g_ptr_array_add(diffs, g_strdup_printf("RAM block '%s' is missing from the image",
                                               b->name));
    }
    if (diffs->len) {
        g_autofree char *all = NULL;
        g_ptr_array_add(diffs, NULL);
        all = g_strjoinv("; ", (char **)diffs->pdata);
        error_setg(errp, "the image was saved from a different machine: %s", all);
        return false;
    }
    return true;
}
