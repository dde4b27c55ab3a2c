/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The Multiboot v1 loader: kernel segments, modules, and the boot information structure. */
#define G_LOG_DOMAIN "frostvm-loader"
#include "hw/multiboot.h"

#include <elf.h>
#include <string.h>

#include "accel/accel.h"
#include "hw/pc.h"
#include "system/machine.h"
#include "util/error.h"

#define MB_PAGE 4096u
#define ROUND_UP(x, a) (((x) + (a) - 1) / (a) * (a))

/* The information structure, as the Multiboot v1 specification lays it out. */
typedef struct __attribute__((packed)) MultibootInfo {
    uint32_t flags;
    uint32_t mem_lower;        /* KiB below 640 KiB */
    uint32_t mem_upper;        /* KiB from 1 MiB to the first hole */
    uint32_t boot_device;
    uint32_t cmdline;
    uint32_t mods_count;
    uint32_t mods_addr;
    uint32_t syms[4];
    uint32_t mmap_length;
    uint32_t mmap_addr;
    uint32_t drives_length;
    uint32_t drives_addr;
    uint32_t config_table;
    uint32_t boot_loader_name;
    uint32_t apm_table;
    uint32_t vbe[6];
    uint8_t framebuffer[28];
} MultibootInfo;

typedef struct __attribute__((packed)) MultibootMmapEntry {
    uint32_t size;             /* of the rest of the entry: 20 */
    uint64_t addr;
    uint64_t len;
    uint32_t type;
} MultibootMmapEntry;

typedef struct __attribute__((packed)) MultibootModule {
    uint32_t mod_start;
    uint32_t mod_end;
    uint32_t string;
    uint32_t reserved;
} MultibootModule;

typedef struct __attribute__((packed)) MultibootHeader {
    uint32_t magic;
    uint32_t flags;
    uint32_t checksum;
    /* Valid with MULTIBOOT_FLAG_AOUT_KLUDGE: */
    uint32_t header_addr;
    uint32_t load_addr;
    uint32_t load_end_addr;
    uint32_t bss_end_addr;
    uint32_t entry_addr;
} MultibootHeader;

/* One piece of guest memory to fill: @filesz bytes of @data, then zeros to @memsz. */
typedef struct LoadPiece {
    uint64_t gpa;
    const uint8_t *data;
    uint64_t filesz;
    uint64_t memsz;
    const char *what;
} LoadPiece;

typedef struct MultibootLoad {
    Machine *m;
    GArray *pieces;            /* LoadPiece */
    GPtrArray *owned;          /* buffers the pieces point into */
    uint64_t entry;
    uint64_t kernel_end;
} MultibootLoad;

static void *mb_gpa_to_host(Machine *m, uint64_t gpa, uint64_t len)
{
    for (unsigned i = 0; i < m->nr_ram_ranges; i++) {
        GuestRamRange *r = &m->ram_ranges[i];
        if (gpa >= r->gpa && len <= r->size && gpa - r->gpa <= r->size - len) {
            return r->block->host + r->offset + (gpa - r->gpa);
        }
    }
    return NULL;
}

static void mb_add_piece(MultibootLoad *ld, uint64_t gpa, const uint8_t *data,
                         uint64_t filesz, uint64_t memsz, const char *what)
{
    LoadPiece p = {
        .gpa = gpa, .data = data, .filesz = filesz, .memsz = memsz, .what = what,
    };

    g_array_append_val(ld->pieces, p);
    ld->kernel_end = MAX(ld->kernel_end, gpa + memsz);
}

long multiboot_find_header(const uint8_t *image, size_t size)
{
    size_t limit = MIN(size, (size_t)MULTIBOOT_SEARCH_LIMIT);

    for (size_t off = 0; off + 12 <= limit; off += 4) {
        uint32_t w[3];
        memcpy(w, image + off, sizeof(w));
        if (w[0] == MULTIBOOT_HEADER_MAGIC && (uint32_t)(w[0] + w[1] + w[2]) == 0) {
            return (long)off;
        }
    }
    return -1;
}

static bool mb_load_aout_kludge(MultibootLoad *ld, const uint8_t *image, size_t size,
                                size_t hoff, const MultibootHeader *h, GError **errp)
{
    uint64_t file_off, load_size, mem_size;

    if (hoff + sizeof(*h) > size) {
        error_setg(errp, "the Multiboot header's address fields lie past the end of "
                   "the image");
        return false;
    }
    if (h->header_addr < h->load_addr || h->header_addr - h->load_addr > hoff) {
        error_setg(errp, "the Multiboot header says it sits at 0x%x with the image "
                   "loaded from 0x%x, which puts the load start before the file",
                   h->header_addr, h->load_addr);
        return false;
    }
    file_off = hoff - (h->header_addr - h->load_addr);
    if (h->load_end_addr) {
        if (h->load_end_addr < h->load_addr) {
            error_setg(errp, "Multiboot load_end_addr 0x%x is below load_addr 0x%x",
                       h->load_end_addr, h->load_addr);
            return false;
        }
        load_size = h->load_end_addr - h->load_addr;
    } else {
        load_size = size - file_off;
    }
    if (file_off + load_size > size) {
        error_setg(errp, "the Multiboot header asks for %" G_GUINT64_FORMAT
                   " bytes from file offset %" G_GUINT64_FORMAT ", the image has %zu",
                   load_size, file_off, size);
        return false;
    }
    mem_size = load_size;
    if (h->bss_end_addr) {
        if (h->bss_end_addr < h->load_addr + load_size) {
            error_setg(errp, "Multiboot bss_end_addr 0x%x lies below the end of the "
                       "loaded image (0x%" G_GINT64_MODIFIER "x)", h->bss_end_addr,
                       h->load_addr + load_size);
            return false;
        }
        mem_size = h->bss_end_addr - h->load_addr;
    }
    mb_add_piece(ld, h->load_addr, image + file_off, load_size, mem_size, "kernel");
    ld->entry = h->entry_addr;
    return true;
}

/* A program header of either ELF class, widened. */
typedef struct ElfSegment {
    uint32_t type;
    uint64_t offset, vaddr, paddr, filesz, memsz;
} ElfSegment;

static void elf_segment(const uint8_t *image, bool is64, uint64_t phoff, unsigned i,
                        unsigned phentsize, ElfSegment *seg)
{
    const uint8_t *p = image + phoff + (uint64_t)i * phentsize;

    if (is64) {
        Elf64_Phdr ph;
        memcpy(&ph, p, sizeof(ph));
        *seg = (ElfSegment) { ph.p_type, ph.p_offset, ph.p_vaddr, ph.p_paddr,
                              ph.p_filesz, ph.p_memsz };
    } else {
        Elf32_Phdr ph;
        memcpy(&ph, p, sizeof(ph));
        *seg = (ElfSegment) { ph.p_type, ph.p_offset, ph.p_vaddr, ph.p_paddr,
                              ph.p_filesz, ph.p_memsz };
    }
}

/*
 * ELF32 as the specification has it; ELF64 too, as GRUB accepts it. Small
 * 64-bit kernels are often objcopy'd into an ELF32 container (EM_386 or
 * EM_X86_64 in class 32): only the headers' class matters here.
 */
static bool mb_load_elf(MultibootLoad *ld, const uint8_t *image, size_t size,
                        GError **errp)
{
    bool is64;
    uint64_t phoff, entry;
    unsigned phnum, phentsize, machine, type, loaded = 0;

    if (size < EI_NIDENT || memcmp(image, ELFMAG, SELFMAG) != 0) {
        error_setg(errp, "the image is neither ELF nor marked for the Multiboot a.out "
                   "kludge (header flag 16), so there is no way to know where it "
                   "loads");
        return false;
    }
    if (image[EI_DATA] != ELFDATA2LSB ||
        (image[EI_CLASS] != ELFCLASS32 && image[EI_CLASS] != ELFCLASS64)) {
        error_setg(errp, "unsupported ELF image: class %u, data encoding %u (want a "
                   "little-endian ELF32 or ELF64)", image[EI_CLASS], image[EI_DATA]);
        return false;
    }
    is64 = image[EI_CLASS] == ELFCLASS64;
    if (is64) {
        Elf64_Ehdr eh;
        if (size < sizeof(eh)) {
            goto truncated;
        }
        memcpy(&eh, image, sizeof(eh));
        type = eh.e_type, machine = eh.e_machine, entry = eh.e_entry;
        phoff = eh.e_phoff, phnum = eh.e_phnum, phentsize = eh.e_phentsize;
    } else {
        Elf32_Ehdr eh;
        if (size < sizeof(eh)) {
            goto truncated;
        }
        memcpy(&eh, image, sizeof(eh));
        type = eh.e_type, machine = eh.e_machine, entry = eh.e_entry;
        phoff = eh.e_phoff, phnum = eh.e_phnum, phentsize = eh.e_phentsize;
    }
    if (type != ET_EXEC) {
        error_setg(errp, "ELF type %u is not an executable", type);
        return false;
    }
    if (machine != EM_386 && machine != EM_X86_64) {
        error_setg(errp, "ELF machine %u is not x86", machine);
        return false;
    }
    if (phentsize < (is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr)) ||
        phoff > size || (uint64_t)phnum * phentsize > size - phoff) {
        goto truncated;
    }

    ld->entry = entry;
    for (unsigned i = 0; i < phnum; i++) {
        ElfSegment seg;
        elf_segment(image, is64, phoff, i, phentsize, &seg);
        if (seg.type != PT_LOAD || seg.memsz == 0) {
            continue;
        }
        if (seg.filesz > seg.memsz || seg.offset > size || seg.filesz > size - seg.offset) {
            error_setg(errp, "ELF segment %u (file offset 0x%" G_GINT64_MODIFIER "x, "
                       "%" G_GUINT64_FORMAT " bytes) does not fit the image (%zu bytes)",
                       i, seg.offset, seg.filesz, size);
            return false;
        }
        mb_add_piece(ld, seg.paddr, image + seg.offset, seg.filesz, seg.memsz,
                     "kernel segment");
        /* A kernel linked higher-half names its entry by virtual address. */
        if (entry >= seg.vaddr && entry - seg.vaddr < seg.memsz) {
            ld->entry = entry - seg.vaddr + seg.paddr;
        }
        loaded++;
    }
    if (!loaded) {
        error_setg(errp, "the ELF image has no loadable segment");
        return false;
    }
    return true;

truncated:
    error_setg(errp, "the ELF image is truncated (%zu bytes)", size);
    return false;
}

/*
 * Read the modules ("FILE [ARGS]" separated by commas) and place them one
 * after the other on page boundaries above the kernel.
 */
static bool mb_load_modules(MultibootLoad *ld, const char *spec, GArray *mods,
                            GPtrArray *strings, GError **errp)
{
    g_auto(GStrv) entries = g_strsplit(spec, ",", -1);
    uint64_t addr = ROUND_UP(ld->kernel_end, MB_PAGE);

    for (unsigned i = 0; entries[i]; i++) {
        g_autofree char *line = g_strstrip(g_strdup(entries[i]));
        g_autofree char *path = NULL;
        char *contents = NULL;
        gsize len = 0;
        MultibootModule mod = { 0 };
        const char *space;

        if (!*line) {
            continue;
        }
        space = strchr(line, ' ');
        path = space ? g_strndup(line, space - line) : g_strdup(line);
        if (!g_file_get_contents(path, &contents, &len, errp)) {
            error_prefix(errp, "Multiboot module %u: ", i);
            return false;
        }
        g_ptr_array_add(ld->owned, contents);
        if (addr + len > UINT32_MAX) {
            error_setg(errp, "Multiboot module '%s' (%zu bytes) would end above 4 GiB",
                       path, (size_t)len);
            return false;
        }
        mod.mod_start = addr;
        mod.mod_end = addr + len;
        g_array_append_val(mods, mod);
        g_ptr_array_add(strings, g_steal_pointer(&line));
        mb_add_piece(ld, addr, (const uint8_t *)contents, len, len, "module");
        addr = ROUND_UP(addr + len, MB_PAGE);
    }
    return true;
}

/* Append a NUL-terminated string to the info area; returns its guest address. */
static uint32_t info_put_string(GByteArray *area, const char *str)
{
    uint32_t addr = MULTIBOOT_INFO_ADDR + area->len;

    g_byte_array_append(area, (const guint8 *)str, strlen(str) + 1);
    return addr;
}

static void info_align(GByteArray *area, unsigned align)
{
    static const uint8_t zeros[16];
    g_byte_array_append(area, zeros, ROUND_UP(area->len, align) - area->len);
}

/* Build the information structure and everything it points to, as one blob. */
static GByteArray *mb_build_info(Machine *m, const char *cmdline, GArray *mods,
                                 GPtrArray *mod_strings)
{
    GByteArray *area = g_byte_array_new();
    g_autoptr(GArray) e820 = pc_e820_table(m);
    uint64_t low_end = pc_low_ram_end(m);
    MultibootInfo info = { 0 };

    g_byte_array_set_size(area, sizeof(info));

    info.flags = MULTIBOOT_INFO_MEMORY | MULTIBOOT_INFO_CMDLINE |
                 MULTIBOOT_INFO_MEM_MAP | MULTIBOOT_INFO_LOADER_NAME;
    info.mem_lower = MIN(low_end, PC_EBDA_START) / 1024;
    info.mem_upper = low_end > PC_HIGH_MEM_START ?
                     (low_end - PC_HIGH_MEM_START) / 1024 : 0;

    info_align(area, 8);
    info.mmap_addr = MULTIBOOT_INFO_ADDR + area->len;
    for (guint i = 0; i < e820->len; i++) {
        E820Entry *e = &g_array_index(e820, E820Entry, i);
        MultibootMmapEntry me = {
            .size = sizeof(me) - sizeof(me.size),
            .addr = e->addr, .len = e->size, .type = e->type,
        };
        g_byte_array_append(area, (const guint8 *)&me, sizeof(me));
    }
    info.mmap_length = e820->len * sizeof(MultibootMmapEntry);

    if (mods->len) {
        info_align(area, 8);
        info.flags |= MULTIBOOT_INFO_MODS;
        info.mods_count = mods->len;
        info.mods_addr = MULTIBOOT_INFO_ADDR + area->len;
        g_byte_array_set_size(area, area->len + mods->len * sizeof(MultibootModule));
        for (guint i = 0; i < mods->len; i++) {
            MultibootModule *mod = &g_array_index(mods, MultibootModule, i);
            mod->string = info_put_string(area, g_ptr_array_index(mod_strings, i));
            memcpy(area->data + (info.mods_addr - MULTIBOOT_INFO_ADDR) +
                   i * sizeof(*mod), mod, sizeof(*mod));
        }
    }
    info.cmdline = info_put_string(area, cmdline);
    info.boot_loader_name = info_put_string(area, MULTIBOOT_LOADER_NAME);
    memcpy(area->data, &info, sizeof(info));
    return area;
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

/* Check every piece against RAM and the info area, then copy them in. */
static bool mb_place(MultibootLoad *ld, GByteArray *info, GError **errp)
{
    Machine *m = ld->m;
    uint64_t info_end = MULTIBOOT_INFO_ADDR + info->len;
    uint8_t *host;

    if (info_end > PC_EBDA_START) {
        error_setg(errp, "the Multiboot information (command line, modules, memory "
                   "map: %u bytes) does not fit below 0x%llx", info->len, PC_EBDA_START);
        return false;
    }
    for (guint i = 0; i < ld->pieces->len; i++) {
        LoadPiece *p = &g_array_index(ld->pieces, LoadPiece, i);
        if (!mb_gpa_to_host(m, p->gpa, p->memsz)) {
            error_setg(errp, "%s at guest address 0x%" G_GINT64_MODIFIER "x (%"
                       G_GUINT64_FORMAT " bytes) is not in guest RAM (%" G_GUINT64_FORMAT
                       " MiB)", p->what, p->gpa, p->memsz, m->ram_size >> 20);
            return false;
        }
        if (ranges_overlap(p->gpa, p->memsz, MULTIBOOT_INFO_ADDR, info->len)) {
            error_setg(errp, "%s at guest address 0x%" G_GINT64_MODIFIER "x overlaps "
                       "the Multiboot information at 0x%x", p->what, p->gpa,
                       MULTIBOOT_INFO_ADDR);
            return false;
        }
    }
    for (guint i = 0; i < ld->pieces->len; i++) {
        LoadPiece *p = &g_array_index(ld->pieces, LoadPiece, i);
        host = mb_gpa_to_host(m, p->gpa, p->memsz);
        memcpy(host, p->data, p->filesz);
        memset(host + p->filesz, 0, p->memsz - p->filesz);
    }
    host = mb_gpa_to_host(m, MULTIBOOT_INFO_ADDR, info->len);
    if (!host) {
        error_setg(errp, "no guest RAM at 0x%x for the Multiboot information",
                   MULTIBOOT_INFO_ADDR);
        return false;
    }
    memcpy(host, info->data, info->len);
    return true;
}

bool multiboot_load(Machine *m, const uint8_t *image, size_t size,
                    const char *kernel_name, const char *cmdline, const char *modules,
                    GError **errp)
{
    MultibootLoad ld = { .m = m };
    MultibootHeader h = { 0 };
    long hoff = multiboot_find_header(image, size);
    g_autoptr(GArray) pieces = g_array_new(FALSE, FALSE, sizeof(LoadPiece));
    g_autoptr(GPtrArray) owned = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GArray) mods = g_array_new(FALSE, TRUE, sizeof(MultibootModule));
    g_autoptr(GPtrArray) mod_strings = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GByteArray) info = NULL;
    g_autofree char *full_cmdline = NULL;
    uint32_t unsupported;

    ld.pieces = pieces;
    ld.owned = owned;
    if (hoff < 0) {
        error_setg(errp, "no Multiboot header in the first %d bytes",
                   MULTIBOOT_SEARCH_LIMIT);
        return false;
    }
    memcpy(&h, image + hoff, MIN(sizeof(h), size - hoff));
    /* Bits 0-15 are requirements: refuse the ones we cannot honour. */
    unsupported = h.flags & 0xffff & ~(MULTIBOOT_FLAG_PAGE_ALIGN |
                                       MULTIBOOT_FLAG_MEMORY_INFO |
                                       MULTIBOOT_FLAG_VIDEO_MODE);
    if (unsupported) {
        error_setg(errp, "the Multiboot header requires features 0x%x that frostvm "
                   "does not know", unsupported);
        return false;
    }
    if (h.flags & MULTIBOOT_FLAG_VIDEO_MODE) {
        g_info("the kernel asks for a video mode; frostvm has no display and sets no "
               "video information");
    }
    if (h.flags & MULTIBOOT_FLAG_AOUT_KLUDGE) {
        if (!mb_load_aout_kludge(&ld, image, size, hoff, &h, errp)) {
            return false;
        }
    } else if (!mb_load_elf(&ld, image, size, errp)) {
        return false;
    }
    if (ld.entry > UINT32_MAX) {
        error_setg(errp, "the kernel entry point 0x%" G_GINT64_MODIFIER "x is above "
                   "4 GiB, out of reach of a 32-bit Multiboot entry", ld.entry);
        return false;
    }
    /* Modules always go on page boundaries, which satisfies header flag 0 too. */
    if (modules && !mb_load_modules(&ld, modules, mods, mod_strings, errp)) {
        return false;
    }

    /* The kernel sees its own name first, as with QEMU and GRUB. */
    full_cmdline = cmdline && *cmdline ? g_strdup_printf("%s %s", kernel_name, cmdline)
                                       : g_strdup(kernel_name);
    info = mb_build_info(m, full_cmdline, mods, mod_strings);
    if (!mb_place(&ld, info, errp)) {
        return false;
    }
    g_debug("Multiboot: entry 0x%" G_GINT64_MODIFIER "x, kernel ends at 0x%"
            G_GINT64_MODIFIER "x, %u modules, info %u bytes", ld.entry, ld.kernel_end,
            mods->len, info->len);
    return m->accel->set_boot_entry(m, (uint32_t)ld.entry, MULTIBOOT_BOOTLOADER_MAGIC,
                                    MULTIBOOT_INFO_ADDR, errp);
}
