/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for the Multiboot v1 loader and the PC memory map, on synthetic images. */
#include "hw/multiboot.h"

#include <elf.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "accel/accel.h"
#include "hw/loader.h"
#include "hw/pc.h"
#include "system/machine.h"

#define RAM_SIZE (8ULL << 20)

typedef struct Fixture {
    Machine m;
    RamBlock block;
    AccelOps ops;
    bool entry_set;
    uint32_t entry, eax, ebx;
} Fixture;

/* The fake accelerator only records what the loader asked for. */
static Fixture *current_fixture(Machine *m)
{
    return (Fixture *)((char *)m - offsetof(Fixture, m));
}

static bool fake_set_boot_entry(Machine *m, uint32_t entry, uint32_t eax, uint32_t ebx,
                                GError **errp)
{
    Fixture *f = current_fixture(m);
    f->entry_set = true;
    f->entry = entry;
    f->eax = eax;
    f->ebx = ebx;
    return true;
}

static void fixture_setup(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;

    f->block.name = "pc.ram";
    f->block.size = RAM_SIZE;
    f->block.page_size = 4096;
    f->block.host = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert_true(f->block.host != MAP_FAILED);
    /* Not zero, so we can see what the loader zeroes. */
    memset(f->block.host, 0xaa, RAM_SIZE);
    f->m.ram_size = RAM_SIZE;
    g_assert_true(pc_ram_layout_init(&f->m, &f->block, &err));
    g_assert_no_error(err);
    f->ops.name = "fake";
    f->ops.set_boot_entry = fake_set_boot_entry;
    f->m.accel = &f->ops;
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    munmap(f->block.host, RAM_SIZE);
}

static uint8_t *gpa(Fixture *f, uint64_t addr)
{
    g_assert_cmpuint(addr, <, RAM_SIZE);
    return f->block.host + addr;
}

static uint32_t gpa_u32(Fixture *f, uint64_t addr)
{
    uint32_t v;
    memcpy(&v, gpa(f, addr), 4);
    return v;
}

static void put_mb_header(uint8_t *p, uint32_t flags)
{
    uint32_t h[3] = { MULTIBOOT_HEADER_MAGIC, flags, -(MULTIBOOT_HEADER_MAGIC + flags) };
    memcpy(p, h, sizeof(h));
}

/* A synthetic ELF image: what each test varies. */
typedef struct ElfSpec {
    bool is64;
    uint16_t machine;
    uint64_t entry;
    uint64_t vaddr_offset;      /* vaddr = paddr + this (higher-half kernels) */
    uint64_t text_paddr;        /* segment 0: 0x200 bytes holding the header */
    uint64_t bss_paddr;         /* segment 1: 0x100 bytes data, 0x3000 in memory */
    uint32_t mb_flags;
} ElfSpec;

#define TEXT_OFF 0x1000
#define DATA_OFF 0x1200
#define IMAGE_SIZE 0x1300

static uint8_t *build_elf(const ElfSpec *spec, size_t *size)
{
    uint8_t *img = g_malloc0(IMAGE_SIZE);
    struct { uint64_t paddr, off, filesz, memsz; } segs[2] = {
        { spec->text_paddr, TEXT_OFF, 0x200, 0x200 },
        { spec->bss_paddr, DATA_OFF, 0x100, 0x3000 },
    };

    memcpy(img, ELFMAG, SELFMAG);
    img[EI_CLASS] = spec->is64 ? ELFCLASS64 : ELFCLASS32;
    img[EI_DATA] = ELFDATA2LSB;
    img[EI_VERSION] = EV_CURRENT;
    if (spec->is64) {
        Elf64_Ehdr eh = { .e_type = ET_EXEC, .e_machine = spec->machine,
                          .e_version = EV_CURRENT, .e_entry = spec->entry,
                          .e_phoff = sizeof(Elf64_Ehdr), .e_ehsize = sizeof(Elf64_Ehdr),
                          .e_phentsize = sizeof(Elf64_Phdr), .e_phnum = 2 };
        memcpy(eh.e_ident, img, EI_NIDENT);
        memcpy(img, &eh, sizeof(eh));
        for (int i = 0; i < 2; i++) {
            Elf64_Phdr ph = { .p_type = PT_LOAD, .p_offset = segs[i].off,
                              .p_vaddr = segs[i].paddr + spec->vaddr_offset,
                              .p_paddr = segs[i].paddr, .p_filesz = segs[i].filesz,
                              .p_memsz = segs[i].memsz, .p_flags = PF_R | PF_W | PF_X };
            memcpy(img + sizeof(eh) + i * sizeof(ph), &ph, sizeof(ph));
        }
    } else {
        Elf32_Ehdr eh = { .e_type = ET_EXEC, .e_machine = spec->machine,
                          .e_version = EV_CURRENT, .e_entry = spec->entry,
                          .e_phoff = sizeof(Elf32_Ehdr), .e_ehsize = sizeof(Elf32_Ehdr),
                          .e_phentsize = sizeof(Elf32_Phdr), .e_phnum = 2 };
        memcpy(eh.e_ident, img, EI_NIDENT);
        memcpy(img, &eh, sizeof(eh));
        for (int i = 0; i < 2; i++) {
            Elf32_Phdr ph = { .p_type = PT_LOAD, .p_offset = segs[i].off,
                              .p_vaddr = segs[i].paddr + spec->vaddr_offset,
                              .p_paddr = segs[i].paddr, .p_filesz = segs[i].filesz,
                              .p_memsz = segs[i].memsz, .p_flags = PF_R | PF_W | PF_X };
            memcpy(img + sizeof(eh) + i * sizeof(ph), &ph, sizeof(ph));
        }
    }
    put_mb_header(img + TEXT_OFF, spec->mb_flags);
    memset(img + TEXT_OFF + 12, 0x11, 0x200 - 12);
    memset(img + DATA_OFF, 0x22, 0x100);
    *size = IMAGE_SIZE;
    return img;
}

static const ElfSpec default_elf = {
    .machine = EM_386, .entry = 0x100010, .text_paddr = 0x100000,
    .bss_paddr = 0x102000, .mb_flags = MULTIBOOT_FLAG_PAGE_ALIGN |
                                       MULTIBOOT_FLAG_MEMORY_INFO,
};

static void check_segments_placed(Fixture *f)
{
    g_assert_cmphex(gpa_u32(f, 0x100000), ==, MULTIBOOT_HEADER_MAGIC);
    g_assert_cmphex(*gpa(f, 0x1001ff), ==, 0x11);
    g_assert_cmphex(*gpa(f, 0x100200), ==, 0xaa);     /* untouched past the segment */
    g_assert_cmphex(*gpa(f, 0x102000), ==, 0x22);
    g_assert_cmphex(*gpa(f, 0x1020ff), ==, 0x22);
    g_assert_cmphex(*gpa(f, 0x102100), ==, 0x00);     /* bss zeroed ... */
    g_assert_cmphex(*gpa(f, 0x104fff), ==, 0x00);
    g_assert_cmphex(*gpa(f, 0x105000), ==, 0xaa);     /* ... and no further */
}

static bool load(Fixture *f, const uint8_t *img, size_t size, const char *cmdline,
                 const char *modules, GError **errp)
{
    return multiboot_load(&f->m, img, size, "kernel.elf", cmdline, modules, errp);
}

static void test_header_found(Fixture *f, gconstpointer data)
{
    g_autofree uint8_t *img = g_malloc0(MULTIBOOT_SEARCH_LIMIT + 64);

    g_assert_cmpint(multiboot_find_header(img, MULTIBOOT_SEARCH_LIMIT + 64), ==, -1);
    put_mb_header(img + 0x24, 0);
    g_assert_cmpint(multiboot_find_header(img, MULTIBOOT_SEARCH_LIMIT), ==, 0x24);

    /* A bad checksum is no header. */
    memset(img, 0, 64);
    put_mb_header(img + 0x24, 0);
    img[0x24 + 8] ^= 1;
    g_assert_cmpint(multiboot_find_header(img, MULTIBOOT_SEARCH_LIMIT), ==, -1);

    /* Only the first 8 KiB count, and only 4-byte aligned offsets. */
    memset(img, 0, MULTIBOOT_SEARCH_LIMIT + 64);
    put_mb_header(img + MULTIBOOT_SEARCH_LIMIT, 0);
    g_assert_cmpint(multiboot_find_header(img, MULTIBOOT_SEARCH_LIMIT + 64), ==, -1);
    memset(img, 0, MULTIBOOT_SEARCH_LIMIT + 64);
    put_mb_header(img + 0x22, 0);
    g_assert_cmpint(multiboot_find_header(img, MULTIBOOT_SEARCH_LIMIT), ==, -1);
}

static void test_elf32_segments(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    size_t size;
    g_autofree uint8_t *img = build_elf(&default_elf, &size);

    g_assert_true(load(f, img, size, "a=1 b=2", NULL, &err));
    g_assert_no_error(err);
    check_segments_placed(f);
    g_assert_true(f->entry_set);
    g_assert_cmphex(f->entry, ==, 0x100010);
    g_assert_cmphex(f->eax, ==, MULTIBOOT_BOOTLOADER_MAGIC);
    g_assert_cmphex(f->ebx, ==, MULTIBOOT_INFO_ADDR);
}

/* Kernels objcopy'd from 64-bit code, or ELF64 outright, or linked higher-half. */
static void test_elf_variants(Fixture *f, gconstpointer data)
{
    static const struct { const char *what; bool is64; uint16_t machine;
                          uint64_t voff, entry, want; } cases[] = {
        { "elf32 container, x86-64 machine", false, EM_X86_64, 0, 0x100010, 0x100010 },
        { "elf64", true, EM_X86_64, 0, 0x100020, 0x100020 },
        { "elf32 higher half", false, EM_386, 0xc0000000, 0xc0100030, 0x100030 },
        { "elf64 higher half", true, EM_X86_64, 0xffffffff80000000ull,
          0xffffffff80100040ull, 0x100040 },
    };

    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) err = NULL;
        ElfSpec spec = default_elf;
        size_t size;
        g_autofree uint8_t *img = NULL;

        g_test_message("%s", cases[i].what);
        spec.is64 = cases[i].is64;
        spec.machine = cases[i].machine;
        spec.vaddr_offset = cases[i].voff;
        spec.entry = cases[i].entry;
        img = build_elf(&spec, &size);
        memset(f->block.host, 0xaa, RAM_SIZE);
        f->entry_set = false;
        g_assert_true(load(f, img, size, NULL, NULL, &err));
        g_assert_no_error(err);
        check_segments_placed(f);
        g_assert_cmphex(f->entry, ==, cases[i].want);
    }
}

static void test_aout_kludge(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    const size_t size = 0x900;
    g_autofree uint8_t *img = g_malloc0(size);
    uint32_t fields[5] = {
        0x100040,   /* header_addr: the header is 0x40 into the load */
        0x100000,   /* load_addr */
        0x100800,   /* load_end_addr: 0x800 bytes of the file */
        0x102000,   /* bss_end_addr */
        0x100080,   /* entry_addr */
    };

    memset(img, 0x33, size);
    put_mb_header(img + 0x40, MULTIBOOT_FLAG_AOUT_KLUDGE | MULTIBOOT_FLAG_MEMORY_INFO);
    memcpy(img + 0x40 + 12, fields, sizeof(fields));
    g_assert_true(load(f, img, size, NULL, NULL, &err));
    g_assert_no_error(err);
    g_assert_cmphex(*gpa(f, 0x100000), ==, 0x33);
    g_assert_cmphex(gpa_u32(f, 0x100040), ==, MULTIBOOT_HEADER_MAGIC);
    g_assert_cmphex(*gpa(f, 0x1007ff), ==, 0x33);
    g_assert_cmphex(*gpa(f, 0x100800), ==, 0x00);     /* bss */
    g_assert_cmphex(*gpa(f, 0x101fff), ==, 0x00);
    g_assert_cmphex(*gpa(f, 0x102000), ==, 0xaa);
    g_assert_cmphex(f->entry, ==, 0x100080);

    /* A header that claims to sit before the file's start is refused. */
    fields[0] = 0x101000;
    memcpy(img + 0x40 + 12, fields, sizeof(fields));
    g_assert_false(load(f, img, size, NULL, NULL, &err));
    g_assert_nonnull(err);
}

static void test_info_structure(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    size_t size;
    g_autofree uint8_t *img = build_elf(&default_elf, &size);
    uint32_t info = MULTIBOOT_INFO_ADDR, flags, mmap_addr, mmap_len;
    static const struct { uint64_t addr, len; uint32_t type; } want[] = {
        { 0, 0x9fc00, 1 },
        { 0x9fc00, 0x400, 2 },
        { 0xf0000, 0x10000, 2 },
        { 0x100000, RAM_SIZE - 0x100000, 1 },
    };

    g_assert_true(load(f, img, size, "console=ttyS0 sweeps=3", NULL, &err));
    g_assert_no_error(err);
    flags = gpa_u32(f, info);
    g_assert_cmphex(flags, ==, MULTIBOOT_INFO_MEMORY | MULTIBOOT_INFO_CMDLINE |
                                 MULTIBOOT_INFO_MEM_MAP | MULTIBOOT_INFO_LOADER_NAME);
    g_assert_cmpuint(gpa_u32(f, info + 4), ==, 639);                 /* mem_lower */
    g_assert_cmpuint(gpa_u32(f, info + 8), ==, (RAM_SIZE >> 10) - 1024);  /* mem_upper */
    g_assert_cmpstr((char *)gpa(f, gpa_u32(f, info + 16)), ==,
                    "kernel.elf console=ttyS0 sweeps=3");
    g_assert_cmpstr((char *)gpa(f, gpa_u32(f, info + 64)), ==, "frostvm");

    mmap_len = gpa_u32(f, info + 44);
    mmap_addr = gpa_u32(f, info + 48);
    g_assert_cmpuint(mmap_len, ==, G_N_ELEMENTS(want) * 24);
    for (unsigned i = 0; i < G_N_ELEMENTS(want); i++) {
        uint32_t e = mmap_addr + i * 24;
        uint64_t addr, len;
        g_assert_cmpuint(gpa_u32(f, e), ==, 20);
        memcpy(&addr, gpa(f, e + 4), 8);
        memcpy(&len, gpa(f, e + 12), 8);
        g_assert_cmphex(addr, ==, want[i].addr);
        g_assert_cmphex(len, ==, want[i].len);
        g_assert_cmpuint(gpa_u32(f, e + 20), ==, want[i].type);
    }
}

static void test_cmdline_without_append(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    size_t size;
    g_autofree uint8_t *img = build_elf(&default_elf, &size);

    g_assert_true(load(f, img, size, NULL, NULL, &err));
    g_assert_cmpstr((char *)gpa(f, gpa_u32(f, MULTIBOOT_INFO_ADDR + 16)), ==,
                    "kernel.elf");
}

static void test_modules(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *dir = g_dir_make_tmp("test-multiboot-XXXXXX", &err);
    g_autofree char *mod1 = g_build_filename(dir, "mod1", NULL);
    g_autofree char *mod2 = g_build_filename(dir, "mod2", NULL);
    g_autofree char *spec = g_strdup_printf("%s arg1 arg2,%s", mod1, mod2);
    g_autofree char *want1 = g_strdup_printf("%s arg1 arg2", mod1);
    size_t size;
    g_autofree uint8_t *img = build_elf(&default_elf, &size);
    uint32_t info = MULTIBOOT_INFO_ADDR, mods;
    uint32_t start1, end1, start2, end2;

    g_assert_no_error(err);
    g_assert_true(g_file_set_contents(mod1, "first module", -1, &err));
    g_assert_true(g_file_set_contents(mod2, "second", -1, &err));
    g_assert_true(load(f, img, size, NULL, spec, &err));
    g_assert_no_error(err);

    g_assert_cmphex(gpa_u32(f, info) & MULTIBOOT_INFO_MODS, ==, MULTIBOOT_INFO_MODS);
    g_assert_cmpuint(gpa_u32(f, info + 20), ==, 2);
    mods = gpa_u32(f, info + 24);
    start1 = gpa_u32(f, mods);
    end1 = gpa_u32(f, mods + 4);
    start2 = gpa_u32(f, mods + 16);
    end2 = gpa_u32(f, mods + 20);
    g_assert_cmphex(start1, ==, 0x105000);            /* page after the kernel's bss */
    g_assert_cmpuint(end1 - start1, ==, strlen("first module"));
    g_assert_cmpmem(gpa(f, start1), end1 - start1, "first module", end1 - start1);
    g_assert_cmphex(start2 % 4096, ==, 0);
    g_assert_cmphex(start2, >=, end1);
    g_assert_cmpmem(gpa(f, start2), end2 - start2, "second", 6);
    g_assert_cmpstr((char *)gpa(f, gpa_u32(f, mods + 8)), ==, want1);
    g_assert_cmpstr((char *)gpa(f, gpa_u32(f, mods + 24)), ==, mod2);

    unlink(mod1);
    unlink(mod2);
    rmdir(dir);
}

/* Images the loader must refuse, each with a reason. */
static void test_refused(Fixture *f, gconstpointer data)
{
    static const struct { const char *what; uint32_t mb_flags; uint64_t text, bss;
                          const char *expect; } cases[] = {
        { "unknown required flag", 1u << 5, 0x100000, 0x102000, "requires features" },
        { "segment beyond RAM", 0, 0x100000, RAM_SIZE, "not in guest RAM" },
        { "segment over the info area", 0, 0x9000, 0x102000, "overlaps" },
    };

    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) err = NULL;
        ElfSpec spec = default_elf;
        size_t size;
        g_autofree uint8_t *img = NULL;

        g_test_message("%s", cases[i].what);
        spec.mb_flags = cases[i].mb_flags;
        spec.text_paddr = cases[i].text;
        spec.bss_paddr = cases[i].bss;
        img = build_elf(&spec, &size);
        f->entry_set = false;
        g_assert_false(load(f, img, size, NULL, NULL, &err));
        g_assert_nonnull(err);
        g_test_message("  -> %s", err->message);
        g_assert_nonnull(strstr(err->message, cases[i].expect));
        g_assert_false(f->entry_set);
    }
}

static void test_loader_formats(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *dir = g_dir_make_tmp("test-loader-XXXXXX", &err);
    g_autofree char *bz = g_build_filename(dir, "bzImage", NULL);
    g_autofree char *junk = g_build_filename(dir, "junk", NULL);
    g_autofree char *elf = g_build_filename(dir, "kernel.elf", NULL);
    g_autofree uint8_t *img = g_malloc0(0x400);
    size_t size;
    g_autofree uint8_t *mb = build_elf(&default_elf, &size);

    memcpy(img + 0x202, "HdrS", 4);
    g_assert_true(g_file_set_contents(bz, (char *)img, 0x400, NULL));
    g_assert_false(loader_load_kernel(&f->m, bz, NULL, NULL, &err));
    g_assert_nonnull(strstr(err->message, "Linux boot protocol is not supported yet"));
    g_clear_error(&err);

    g_assert_true(g_file_set_contents(junk, "not a kernel", -1, NULL));
    g_assert_false(loader_load_kernel(&f->m, junk, NULL, NULL, &err));
    g_assert_nonnull(strstr(err->message, "unknown format"));
    g_clear_error(&err);

    g_assert_false(loader_load_kernel(&f->m, "/nonexistent/kernel", NULL, NULL, &err));
    g_assert_nonnull(err);
    g_clear_error(&err);

    g_assert_true(g_file_set_contents(elf, (char *)mb, size, NULL));
    g_assert_true(loader_load_kernel(&f->m, elf, "x=1", NULL, &err));
    g_assert_no_error(err);
    g_assert_cmphex(f->entry, ==, 0x100010);
    g_assert_true(g_str_has_suffix((char *)gpa(f, gpa_u32(f, MULTIBOOT_INFO_ADDR + 16)),
                                   "kernel.elf x=1"));
    unlink(bz);
    unlink(junk);
    unlink(elf);
    rmdir(dir);
}

/* The layout of a guest bigger than the low RAM window: part of it above 4 GiB. */
static void test_e820_high_ram(void)
{
    g_autoptr(GError) err = NULL;
    Machine m = { 0 };
    RamBlock block = { .name = "pc.ram", .size = MACHINE_LOW_RAM_END + (1ULL << 30) };
    g_autoptr(GArray) e820 = NULL;
    E820Entry *last;

    g_assert_true(pc_ram_layout_init(&m, &block, &err));
    g_assert_cmpuint(m.nr_ram_ranges, ==, 2);
    g_assert_cmphex(m.ram_ranges[1].gpa, ==, MACHINE_HIGH_RAM_START);
    g_assert_cmphex(m.ram_ranges[1].offset, ==, MACHINE_LOW_RAM_END);
    g_assert_cmphex(m.ram_ranges[1].size, ==, 1ULL << 30);
    g_assert_cmphex(pc_low_ram_end(&m), ==, MACHINE_LOW_RAM_END);
    e820 = pc_e820_table(&m);
    g_assert_cmpuint(e820->len, ==, 5);
    last = &g_array_index(e820, E820Entry, 4);
    g_assert_cmphex(last->addr, ==, MACHINE_HIGH_RAM_START);
    g_assert_cmphex(last->size, ==, 1ULL << 30);
    g_assert_cmpuint(last->type, ==, E820_TYPE_RAM);

    block.size = 1ULL << 20;
    g_assert_false(pc_ram_layout_init(&m, &block, &err));
    g_assert_nonnull(err);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) \
    g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
    ADD("/multiboot/header/found", test_header_found);
    ADD("/multiboot/elf/segments", test_elf32_segments);
    ADD("/multiboot/elf/variants", test_elf_variants);
    ADD("/multiboot/aout-kludge", test_aout_kludge);
    ADD("/multiboot/info/structure", test_info_structure);
    ADD("/multiboot/info/cmdline-without-append", test_cmdline_without_append);
    ADD("/multiboot/modules", test_modules);
    ADD("/multiboot/refused", test_refused);
    ADD("/loader/formats", test_loader_formats);
#undef ADD
    g_test_add_func("/pc/e820/high-ram", test_e820_high_ram);
    return g_test_run();
}
