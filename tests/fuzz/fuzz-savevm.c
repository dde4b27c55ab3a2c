/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Fuzz target: migration streams through the loader (fake machine) and through frostvm-img's parser path. */
#include "fuzz-savevm.h"

#include <string.h>
#include <sys/mman.h>
#include <glib.h>

#include "accel/accel.h"
#include "migration/savevm-parse.h"
#include "migration/savevm.h"
#include "migration/stream-file.h"
#include "migration/vmstate.h"
#include "system/machine.h"

/* Small, so that mutated images reach the RAM and device records quickly. */
#define FUZZ_RAM_SIZE (64 * 1024)

typedef struct FuzzDevice {
    uint64_t regs[3];
} FuzzDevice;

static bool fuzz_device_save(void *opaque, GByteArray *buf, GError **errp)
{
    FuzzDevice *d = opaque;

    for (int i = 0; i < 3; i++) {
        vmstate_put_u64(buf, d->regs[i]);
    }
    return true;
}

static bool fuzz_device_load(void *opaque, const uint8_t *data, size_t len,
                             uint32_t version, GError **errp)
{
    FuzzDevice *d = opaque;
    VMStateReader r;

    vmstate_reader_init(&r, data, len);
    for (int i = 0; i < 3; i++) {
        d->regs[i] = vmstate_get_u64(&r);
    }
    return vmstate_reader_finish(&r, "fuzz-device", errp);
}

static const AccelOps fuzz_accel = { .name = "test" };

typedef struct FuzzMachine {
    Machine m;
    RamBlock block;
    FuzzDevice dev;
} FuzzMachine;

static FuzzMachine *fuzz_machine(void)
{
    static FuzzMachine *fm;
    VMStateHandler h = {
        .name = "fuzz-device", .instance = 0, .version = 1,
        .save = fuzz_device_save, .load = fuzz_device_load,
    };

    if (fm) {
        return fm;
    }
    fm = g_new0(FuzzMachine, 1);
    fm->block.name = (char *)"pc.ram";
    fm->block.size = FUZZ_RAM_SIZE;
    fm->block.page_size = MACHINE_PAGE_SIZE;
    fm->block.host = mmap(NULL, FUZZ_RAM_SIZE, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert(fm->block.host != MAP_FAILED);
    fm->m.ram_blocks = g_ptr_array_new();
    g_ptr_array_add(fm->m.ram_blocks, &fm->block);
    fm->m.ram_size = FUZZ_RAM_SIZE;
    fm->m.smp = 1;
    fm->m.nr_ram_ranges = 1;
    fm->m.ram_ranges[0] = (GuestRamRange){ .gpa = 0, .size = FUZZ_RAM_SIZE,
                                           .block = &fm->block };
    fm->m.accel = &fuzz_accel;
    fm->m.runstate = RUN_STATE_RUNNING;
    h.opaque = &fm->dev;
    vmstate_register(&fm->m, &h);
    return fm;
}

/* frostvm-img's way through the parser: no machine, data skipped. */
static bool count_record(void *opaque, const SavevmRamRecord *rec, const void *data,
                         GError **errp)
{
    (*(uint64_t *)opaque) += rec->npages;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FuzzMachine *fm = fuzz_machine();
    SavevmParseOps ops = { .ram_record = count_record };
    StreamFile *f;
    GError *err = NULL;
    uint64_t pages = 0;

    f = stream_file_new_memory_input(data, size);
    savevm_load(f, &fm->m, &err);
    g_clear_error(&err);
    stream_file_free(f);

    f = stream_file_new_memory_input(data, size);
    savevm_parse(f, &ops, &pages, &err);
    g_clear_error(&err);
    stream_file_free(f);
    return 0;
}

/* One seed: RAM records per @run pages, in order or reversed. */
static bool write_seed(const char *dir, const char *name, uint32_t run, bool reversed,
                       uint32_t stream_flags)
{
    FuzzMachine *fm = fuzz_machine();
    StreamFile *f = stream_file_new_memory_output();
    g_autoptr(GByteArray) devices = NULL;
    g_autofree char *path = g_build_filename(dir, name, NULL);
    uint32_t pages = FUZZ_RAM_SIZE / SAVEVM_PAGE_SIZE;
    GError *err = NULL;
    bool ok;

    ok = savevm_write_header(f, &fm->m, stream_flags, &err);
    for (uint32_t i = 0; ok && i < pages; i += run) {
        uint32_t first = reversed ? pages - i - run : i;
        bool zero = (first / run) % 3 == 0;
        uint8_t hdr[SAVEVM_RAM_RECORD_HEADER_SIZE];

        savevm_encode_ram_header(hdr, 0, (uint64_t)first * SAVEVM_PAGE_SIZE, run,
                                 zero ? SAVEVM_RAM_ZERO : SAVEVM_RAM_DATA);
        stream_file_write(f, hdr, sizeof(hdr));
        if (!zero) {
            stream_file_write(f, fm->block.host + (uint64_t)first * SAVEVM_PAGE_SIZE,
                              (size_t)run * SAVEVM_PAGE_SIZE);
        }
    }
    devices = ok ? savevm_save_devices(&fm->m, &err) : NULL;
    ok = devices && savevm_write_ram_end(f, &err) && savevm_write_devices(f, devices, &err) &&
         savevm_write_footer(f, &err) &&
         g_file_set_contents(path, (const char *)stream_file_memory_output(f)->data,
                             stream_file_memory_output(f)->len, &err);
    if (err) {
        g_printerr("fuzz seeds: %s\n", err->message);
        g_error_free(err);
    }
    stream_file_free(f);
    return ok;
}

int fuzz_savevm_write_seeds(const char *dir)
{
    FuzzMachine *fm = fuzz_machine();
    int n = 0;

    /* Recognisable, mostly small page contents. */
    for (uint64_t i = 0; i < FUZZ_RAM_SIZE / 8; i += 61) {
        ((uint64_t *)fm->block.host)[i] = i * 0x0101010101ull;
    }
    fm->dev.regs[0] = 42;
    n += write_seed(dir, "seed-runs-4", 4, false, SAVEVM_STREAM_PRECOPY);
    n += write_seed(dir, "seed-single-reversed", 1, true, SAVEVM_STREAM_BACKGROUND_SNAPSHOT);
    n += write_seed(dir, "seed-one-record", FUZZ_RAM_SIZE / SAVEVM_PAGE_SIZE, false, 0);
    memset(fm->block.host, 0, FUZZ_RAM_SIZE);
    return n;
}
