/* SPDX-License-Identifier: GPL-2.0-or-later */
/* frostvm-img: inspect (info), verify (check) and extract guest RAM from (dump-ram) stream images; the command line. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <glib.h>
#include <json-glib/json-glib.h>
#include <libfdt.h>

#include "config-host.h"
#include "tools/frostvm-img.h"
#include "migration/channel.h"
#include "migration/savevm-parse.h"
#include "migration/stream-file.h"
#include "util/atomic-file.h"
#include "util/error.h"
#include "util/zero-page.h"

#define IMG_MAX_BLOCKS 64

typedef struct ImgDevice {
    char *name;
    uint32_t instance;
    uint32_t version;
    uint64_t size;
    uint64_t offset;
} ImgDevice;

/* Everything info reports, gathered by the parser callbacks. */
typedef struct ImgInfo {
    uint32_t version;
    uint32_t flags;
    GBytes *fdt;
    uint32_t nblocks;
    uint64_t block_size[IMG_MAX_BLOCKS];
    uint64_t *seen[IMG_MAX_BLOCKS];
    uint64_t ram_start, ram_end;          /* stream offsets of the RAM section */
    uint64_t records, zero_pages, data_pages, repeated_pages, out_of_order;
    uint64_t last_end[IMG_MAX_BLOCKS];    /* end of the previous record, per block */
    GPtrArray *devices;                   /* ImgDevice * */
    uint64_t skipped_records, skipped_bytes;
    bool have_footer;
    uint64_t stream_length, checksum;
} ImgInfo;

static void img_device_free(gpointer p)
{
    ImgDevice *d = p;

    g_free(d->name);
    g_free(d);
}

static void img_info_clear(ImgInfo *info)
{
    g_clear_pointer(&info->fdt, g_bytes_unref);
    for (int i = 0; i < IMG_MAX_BLOCKS; i++) {
        g_free(info->seen[i]);
    }
    g_clear_pointer(&info->devices, g_ptr_array_unref);
}

static bool info_header(void *opaque, uint32_t version, uint32_t flags, GError **errp)
{
    ImgInfo *info = opaque;

    info->version = version;
    info->flags = flags;
    return true;
}

static bool info_machine(void *opaque, const void *fdt, size_t len, GError **errp)
{
    ImgInfo *info = opaque;

    info->fdt = g_bytes_new(fdt, len);
    return true;
}

static bool info_ram_start(void *opaque, uint32_t nblocks, const uint64_t *sizes,
                           GError **errp)
{
    ImgInfo *info = opaque;

    info->nblocks = nblocks;
    for (uint32_t i = 0; i < nblocks; i++) {
        info->block_size[i] = sizes[i];
        info->seen[i] = g_malloc0((sizes[i] / SAVEVM_PAGE_SIZE + 63) / 64 * 8);
    }
    return true;
}

static bool info_ram_record(void *opaque, const SavevmRamRecord *rec, const void *data,
                            GError **errp)
{
    ImgInfo *info = opaque;
    uint64_t first = rec->offset / SAVEVM_PAGE_SIZE;
    uint64_t *map = info->seen[rec->block];

    if (!info->records++) {
        info->ram_start = rec->stream_offset;
    }
    if (rec->flags & SAVEVM_RAM_ZERO) {
        info->zero_pages += rec->npages;
    } else {
        info->data_pages += rec->npages;
    }
    if (rec->offset < info->last_end[rec->block]) {
        info->out_of_order++;
    }
    info->last_end[rec->block] = rec->offset + (uint64_t)rec->npages * SAVEVM_PAGE_SIZE;
    for (uint64_t p = first; p < first + rec->npages; p++) {
        if (map[p / 64] & (1ull << (p % 64))) {
            info->repeated_pages++;
        }
        map[p / 64] |= 1ull << (p % 64);
    }
    return true;
}

static bool info_device(void *opaque, const char *name, uint32_t instance,
                        uint32_t version, const uint8_t *data, size_t len,
                        uint64_t stream_offset, GError **errp)
{
    ImgInfo *info = opaque;
    ImgDevice *d = g_new0(ImgDevice, 1);

    if (!info->ram_end) {
        info->ram_end = stream_offset;
    }
    d->name = g_strdup(name);
    d->instance = instance;
    d->version = version;
    d->size = len;
    d->offset = stream_offset;
    g_ptr_array_add(info->devices, d);
    return true;
}

static void info_skipped(void *opaque, uint32_t type, uint32_t flags, uint64_t len,
                         uint64_t stream_offset)
{
    ImgInfo *info = opaque;

    info->skipped_records++;
    info->skipped_bytes += len;
}

static bool info_footer(void *opaque, uint64_t stream_length, uint64_t checksum,
                        GError **errp)
{
    ImgInfo *info = opaque;

    info->have_footer = true;
    info->stream_length = stream_length;
    info->checksum = checksum;
    return true;
}

/* Open @path and run the parser over it with @ops. */
static bool img_parse(const char *path, const SavevmParseOps *ops, void *opaque,
                      GError **errp)
{
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    MigrationChannel *ch = channel_open_incoming(uri, errp);
    StreamFile *f;
    bool ok;

    if (!ch) {
        return false;
    }
    f = stream_file_new_input(ch);
    ok = savevm_parse(f, ops, opaque, errp);
    stream_file_free(f);
    channel_close(ch, ok, NULL);
    return ok;
}

char *human_size(uint64_t bytes)
{
    if (bytes >= (1ull << 30)) {
        return g_strdup_printf("%.1f GiB", bytes / (double)(1ull << 30));
    }
    if (bytes >= (1ull << 20)) {
        return g_strdup_printf("%.1f MiB", bytes / (double)(1ull << 20));
    }
    if (bytes >= 1024) {
        return g_strdup_printf("%.1f KiB", bytes / 1024.0);
    }
    return g_strdup_printf("%" PRIu64 " bytes", bytes);
}

const char *fdt_str(const void *fdt, const char *path, const char *prop)
{
    const char *s = savevm_fdt_get_string(fdt, path, prop);
    return s ? s : "?";
}

uint64_t fdt_u64(const void *fdt, const char *path, const char *prop)
{
    uint64_t v = 0;
    savevm_fdt_get_u64(fdt, path, prop, &v);
    return v;
}

/* Call @fn for each child of @parent with its full path. */
void fdt_each_child(const void *fdt, const char *parent,
                           void (*fn)(const void *fdt, const char *path, void *opaque),
                           void *opaque)
{
    int node, off = fdt_path_offset(fdt, parent);

    if (off < 0) {
        return;
    }
    fdt_for_each_subnode(node, fdt, off) {
        char path[256];
        if (fdt_get_path(fdt, node, path, sizeof(path)) == 0) {
            fn(fdt, path, opaque);
        }
    }
}

static void print_block(const void *fdt, const char *path, void *opaque)
{
    g_autofree char *size = human_size(fdt_u64(fdt, path, "size"));

    printf("    %s: %s, %s on %s, page size %" PRIu64 " KiB\n", fdt_str(fdt, path, "name"),
           size, fdt_str(fdt, path, "backend"), fdt_str(fdt, path, "backing"),
           fdt_u64(fdt, path, "page-size") / 1024);
}

static void print_range(const void *fdt, const char *path, void *opaque)
{
    uint64_t gpa = fdt_u64(fdt, path, "gpa"), size = fdt_u64(fdt, path, "size");

    printf("    GPA 0x%" PRIx64 "-0x%" PRIx64 ": block %" PRIu64 " offset 0x%" PRIx64 "\n",
           gpa, gpa + size - 1, fdt_u64(fdt, path, "block"), fdt_u64(fdt, path, "offset"));
}

const char *flag_names(uint32_t flags, char *buf, size_t len)
{
    buf[0] = '\0';
    if (flags & SAVEVM_STREAM_BACKGROUND_SNAPSHOT) {
        g_strlcat(buf, "background-snapshot ", len);
    }
    if (flags & SAVEVM_STREAM_PRECOPY) {
        g_strlcat(buf, "precopy ", len);
    }
    if (flags & ~(SAVEVM_STREAM_BACKGROUND_SNAPSHOT | SAVEVM_STREAM_PRECOPY)) {
        g_strlcat(buf, "unknown ", len);
    }
    if (!buf[0]) {
        g_strlcat(buf, "none ", len);
    }
    buf[strlen(buf) - 1] = '\0';
    return buf;
}

static void print_info_sections(ImgInfo *info);

static void print_info_human(const char *path, uint64_t file_size, ImgInfo *info)
{
    const void *fdt = info->fdt ? g_bytes_get_data(info->fdt, NULL) : NULL;
    g_autofree char *fsize = human_size(file_size);
    char flags[128];

    printf("image: %s\n", path);
    printf("file size: %" PRIu64 " bytes (%s)\n", file_size, fsize);
    printf("format: frostvm migration stream, version %u\n", info->version);
    printf("stream flags: %s\n", flag_names(info->flags, flags, sizeof(flags)));
    if (fdt) {
        img_print_machine(fdt);
    }
    print_info_sections(info);
}

void img_print_machine(const void *fdt)
{
    {
        time_t created = (time_t)fdt_u64(fdt, "/", "created");
        char when[64] = "?";
        g_autofree char *ram = human_size(fdt_u64(fdt, "/", "ram-size"));

        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&created));
        printf("machine:\n");
        printf("  producer: %s\n", fdt_str(fdt, "/", "producer"));
        printf("  created: %s\n", when);
        if (*fdt_str(fdt, "/", "name")) {
            printf("  name: %s\n", fdt_str(fdt, "/", "name"));
        }
        printf("  accelerator: %s\n", fdt_str(fdt, "/", "accelerator"));
        printf("  vcpus: %" PRIu64 "\n", fdt_u64(fdt, "/", "vcpus"));
        printf("  ram size: %s\n", ram);
        printf("  ram blocks:\n");
        fdt_each_child(fdt, "/ram-blocks", print_block, NULL);
        printf("  ram ranges:\n");
        fdt_each_child(fdt, "/ram-ranges", print_range, NULL);
        printf("  host cpu: %s, %s\n", fdt_str(fdt, "/cpu", "host-vendor"),
               fdt_str(fdt, "/cpu", "host-model"));
        printf("  host cpu features: %s\n", fdt_str(fdt, "/cpu", "host-features"));
    }
}

static void print_info_sections(ImgInfo *info)
{
    printf("sections:\n");
    if (info->records) {
        g_autofree char *data = human_size(info->data_pages * SAVEVM_PAGE_SIZE);
        printf("  ram: offset %" PRIu64 "-%" PRIu64 ", %" PRIu64 " records\n",
               info->ram_start, info->ram_end, info->records);
        printf("    data pages: %" PRIu64 " (%s)\n", info->data_pages, data);
        printf("    zero pages: %" PRIu64 "\n", info->zero_pages);
        printf("    pages saved more than once: %" PRIu64 "\n", info->repeated_pages);
        printf("    records out of address order: %" PRIu64 "\n", info->out_of_order);
    }
    if (info->devices && info->devices->len) {
        printf("  devices: %u records\n", info->devices->len);
        for (guint i = 0; i < info->devices->len; i++) {
            ImgDevice *d = g_ptr_array_index(info->devices, i);
            printf("    %s instance %u: version %u, %" PRIu64 " bytes at offset %" PRIu64
                   "\n", d->name, d->instance, d->version, d->size, d->offset);
        }
    }
    if (info->skipped_records) {
        printf("  skipped (optional or padding): %" PRIu64 " records, %" PRIu64 " bytes\n",
               info->skipped_records, info->skipped_bytes);
    }
    if (info->have_footer) {
        printf("  footer: stream length %" PRIu64 ", checksum %016" PRIx64 " (verified)\n",
               info->stream_length, info->checksum);
    }
}

void json_put_u64(JsonBuilder *b, const char *name, uint64_t v)
{
    json_builder_set_member_name(b, name);
    json_builder_add_int_value(b, (gint64)v);
}

void json_put_str(JsonBuilder *b, const char *name, const char *v)
{
    json_builder_set_member_name(b, name);
    json_builder_add_string_value(b, v);
}

static void json_block(const void *fdt, const char *path, void *opaque)
{
    JsonBuilder *b = opaque;

    json_builder_begin_object(b);
    json_put_str(b, "name", fdt_str(fdt, path, "name"));
    json_put_u64(b, "size", fdt_u64(fdt, path, "size"));
    json_put_str(b, "backend", fdt_str(fdt, path, "backend"));
    json_put_str(b, "backing", fdt_str(fdt, path, "backing"));
    json_put_u64(b, "page-size", fdt_u64(fdt, path, "page-size"));
    json_builder_end_object(b);
}

static void print_info_json(const char *path, uint64_t file_size, ImgInfo *info,
                            const GError *err)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    const void *fdt = info->fdt ? g_bytes_get_data(info->fdt, NULL) : NULL;
    char flags[128];

    json_builder_begin_object(b);
    json_put_str(b, "filename", path);
    json_put_u64(b, "file-size", file_size);
    json_put_u64(b, "version", info->version);
    json_put_str(b, "stream-flags", flag_names(info->flags, flags, sizeof(flags)));
    if (fdt) {
        json_builder_set_member_name(b, "machine");
        json_builder_begin_object(b);
        json_put_str(b, "producer", fdt_str(fdt, "/", "producer"));
        json_put_u64(b, "created", fdt_u64(fdt, "/", "created"));
        json_put_str(b, "name", fdt_str(fdt, "/", "name"));
        json_put_str(b, "accelerator", fdt_str(fdt, "/", "accelerator"));
        json_put_u64(b, "vcpus", fdt_u64(fdt, "/", "vcpus"));
        json_put_u64(b, "ram-size", fdt_u64(fdt, "/", "ram-size"));
        json_builder_set_member_name(b, "ram-blocks");
        json_builder_begin_array(b);
        fdt_each_child(fdt, "/ram-blocks", json_block, b);
        json_builder_end_array(b);
        json_builder_end_object(b);
    }
    json_put_u64(b, "ram-records", info->records);
    json_put_u64(b, "data-pages", info->data_pages);
    json_put_u64(b, "zero-pages", info->zero_pages);
    json_put_u64(b, "repeated-pages", info->repeated_pages);
    json_put_u64(b, "out-of-order-records", info->out_of_order);
    json_builder_set_member_name(b, "devices");
    json_builder_begin_array(b);
    for (guint i = 0; info->devices && i < info->devices->len; i++) {
        ImgDevice *d = g_ptr_array_index(info->devices, i);
        json_builder_begin_object(b);
        json_put_str(b, "name", d->name);
        json_put_u64(b, "instance", d->instance);
        json_put_u64(b, "version", d->version);
        json_put_u64(b, "size", d->size);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    if (info->have_footer) {
        json_put_u64(b, "stream-length", info->stream_length);
        json_builder_set_member_name(b, "checksum");
        {
            char hex[17];
            g_snprintf(hex, sizeof(hex), "%016" PRIx64, info->checksum);
            json_builder_add_string_value(b, hex);
        }
    }
    json_builder_set_member_name(b, "valid");
    json_builder_add_boolean_value(b, err == NULL);
    if (err) {
        json_put_str(b, "error", err->message);
    }
    json_builder_end_object(b);
    img_print_json(b);
}

void img_print_json(JsonBuilder *b)
{
    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autoptr(JsonNode) root = json_builder_get_root(b);
    g_autofree char *text = NULL;

    json_generator_set_root(gen, root);
    json_generator_set_pretty(gen, TRUE);
    text = json_generator_to_data(gen, NULL);
    printf("%s\n", text);
}

static const SavevmParseOps info_ops = {
    .header = info_header,
    .machine = info_machine,
    .ram_start = info_ram_start,
    .ram_record = info_ram_record,
    .device = info_device,
    .skipped = info_skipped,
    .footer = info_footer,
};

static int cmd_info(const char *path, const char *output)
{
    ImgInfo info = { .devices = g_ptr_array_new_with_free_func(img_device_free) };
    g_autoptr(GError) err = NULL;
    struct stat st;
    bool ok;

    if (stat(path, &st) < 0) {
        g_printerr("frostvm-img: cannot open '%s': %s\n", path, g_strerror(errno));
        img_info_clear(&info);
        return EXIT_IMAGE_ERROR;
    }
    ok = img_parse(path, &info_ops, &info, &err);
    if (!strcmp(output, "json")) {
        print_info_json(path, (uint64_t)st.st_size, &info, err);
    } else {
        print_info_human(path, (uint64_t)st.st_size, &info);
    }
    img_info_clear(&info);
    if (!ok) {
        g_printerr("frostvm-img: %s: %s\n", path, err->message);
        return EXIT_CORRUPT;
    }
    return 0;
}

static int cmd_check(const char *path)
{
    ImgInfo info = { .devices = g_ptr_array_new_with_free_func(img_device_free) };
    g_autoptr(GError) err = NULL;
    struct stat st;
    bool ok;

    if (stat(path, &st) < 0) {
        g_printerr("frostvm-img: cannot open '%s': %s\n", path, g_strerror(errno));
        img_info_clear(&info);
        return EXIT_IMAGE_ERROR;
    }
    ok = img_parse(path, &info_ops, &info, &err);
    if (ok) {
        printf("No errors were found on the image.\n");
        printf("%" PRIu64 " data pages, %" PRIu64 " zero pages, %u device records, "
               "checksum %016" PRIx64 "\n", info.data_pages, info.zero_pages,
               info.devices->len, info.checksum);
        printf("Image end offset: %" PRIu64 "\n", info.stream_length);
    } else {
        g_printerr("frostvm-img: %s: %s\n", path, err->message);
    }
    img_info_clear(&info);
    return ok ? 0 : EXIT_CORRUPT;
}

/* dump-ram: guest-physical memory from 0 to the end of the highest RAM range. */
typedef struct DumpRange {
    uint64_t gpa, size, block, offset;
} DumpRange;

typedef struct Dump {
    uint8_t *out;             /* the output file, mapped */
    uint64_t out_size;
    DumpRange ranges[8];
    unsigned nranges;
    uint8_t *scratch;
    size_t scratch_size;
} Dump;

static void dump_collect_range(const void *fdt, const char *path, void *opaque)
{
    Dump *d = opaque;

    if (d->nranges < G_N_ELEMENTS(d->ranges)) {
        DumpRange *r = &d->ranges[d->nranges++];
        r->gpa = fdt_u64(fdt, path, "gpa");
        r->size = fdt_u64(fdt, path, "size");
        r->block = fdt_u64(fdt, path, "block");
        r->offset = fdt_u64(fdt, path, "offset");
    }
}

static bool dump_machine(void *opaque, const void *fdt, size_t len, GError **errp)
{
    Dump *d = opaque;

    fdt_each_child(fdt, "/ram-ranges", dump_collect_range, d);
    if (!d->nranges) {
        error_setg(errp, "the machine description has no RAM ranges");
        return false;
    }
    for (unsigned i = 0; i < d->nranges; i++) {
        if (d->ranges[i].gpa + d->ranges[i].size < d->ranges[i].gpa ||
            d->ranges[i].gpa + d->ranges[i].size > (1ull << 46)) {
            error_setg(errp, "the machine description has an implausible RAM range");
            return false;
        }
        d->out_size = MAX(d->out_size, d->ranges[i].gpa + d->ranges[i].size);
    }
    return true;
}

void *img_scratch(uint8_t **buf, size_t *size, size_t need)
{
    if (need > *size) {
        g_free(*buf);
        *buf = g_malloc(need);
        *size = need;
    }
    return *buf;
}

static void *dump_ram_target(void *opaque, const SavevmRamRecord *rec, GError **errp)
{
    Dump *d = opaque;

    return img_scratch(&d->scratch, &d->scratch_size, (size_t)rec->npages * SAVEVM_PAGE_SIZE);
}

/* Copy (or zero) one record's pages to wherever the RAM ranges put them. */
static bool dump_ram_record(void *opaque, const SavevmRamRecord *rec, const void *data,
                            GError **errp)
{
    Dump *d = opaque;

    for (uint32_t i = 0; i < rec->npages; i++) {
        uint64_t boff = rec->offset + (uint64_t)i * SAVEVM_PAGE_SIZE;

        for (unsigned r = 0; r < d->nranges; r++) {
            DumpRange *rg = &d->ranges[r];
            uint8_t *dst;

            if (rg->block != rec->block || boff < rg->offset || boff >= rg->offset + rg->size) {
                continue;
            }
            dst = d->out + rg->gpa + (boff - rg->offset);
            if (data) {
                memcpy(dst, (const uint8_t *)data + (uint64_t)i * SAVEVM_PAGE_SIZE,
                       SAVEVM_PAGE_SIZE);
            } else if (!buffer_is_zero(dst, SAVEVM_PAGE_SIZE)) {
                memset(dst, 0, SAVEVM_PAGE_SIZE);
            }
        }
    }
    return true;
}

static int cmd_dump_ram(const char *path, const char *out_path)
{
    SavevmParseOps ops = { .machine = dump_machine };
    Dump d = { 0 };
    g_autoptr(GError) err = NULL;
    AtomicFile *out;
    bool ok;

    /* First pass: the RAM layout, to size the output. */
    if (!img_parse(path, &ops, &d, &err)) {
        g_printerr("frostvm-img: %s: %s\n", path, err->message);
        return EXIT_CORRUPT;
    }
    /* Guest memory: 0600, and whole at OUT or not there at all. */
    out = atomic_file_create(out_path, true, false, &err);
    if (!out) {
        g_printerr("frostvm-img: %s\n", err->message);
        return EXIT_IMAGE_ERROR;
    }
    if (ftruncate(out->fd, (off_t)d.out_size) < 0) {
        g_printerr("frostvm-img: cannot size '%s': %s\n", out_path, g_strerror(errno));
        atomic_file_abort(out);
        return EXIT_IMAGE_ERROR;
    }
    d.out = mmap(NULL, d.out_size, PROT_READ | PROT_WRITE, MAP_SHARED, out->fd, 0);
    if (d.out == MAP_FAILED) {
        g_printerr("frostvm-img: cannot map '%s': %s\n", out_path, g_strerror(errno));
        atomic_file_abort(out);
        return EXIT_IMAGE_ERROR;
    }
    d.nranges = 0;
    ops.ram_target = dump_ram_target;
    ops.ram_record = dump_ram_record;
    ok = img_parse(path, &ops, &d, &err);
    munmap(d.out, d.out_size);
    g_free(d.scratch);
    if (!ok) {
        atomic_file_abort(out);
        g_printerr("frostvm-img: %s: %s\n", path, err->message);
        return EXIT_CORRUPT;
    }
    if (!atomic_file_commit(out, &err)) {
        g_printerr("frostvm-img: cannot write '%s': %s\n", out_path, err->message);
        return EXIT_IMAGE_ERROR;
    }
    printf("wrote %" PRIu64 " bytes of guest-physical memory to %s\n", d.out_size, out_path);
    return 0;
}

static const char usage[] =
    "COMMAND IMAGE [OUTPUT]\n\n"
    "Commands (stream and page-aligned images alike):\n"
    "  info IMAGE           header, machine description, sections, page counts\n"
    "  check IMAGE          verify structure and checksums (exit 2 if corrupt)\n"
    "  dump-ram IMAGE OUT   write guest-physical memory 0..end of RAM to OUT\n"
    "  convert IMAGE OUT    a stream image to a page-aligned one, or back";

int main(int argc, char **argv)
{
    g_autofree char *output = NULL;
    gboolean version = FALSE;
    GOptionEntry entries[] = {
        { "output", 0, 0, G_OPTION_ARG_STRING, &output,
          "info: output format, human (default) or json", "FORMAT" },
        { "version", 'V', 0, G_OPTION_ARG_NONE, &version, "print the version", NULL },
        { NULL },
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new(usage);
    g_autoptr(GError) err = NULL;
    const char *cmd;

    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_summary(ctx, "Inspect and verify frostvm migration images.");
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        g_printerr("frostvm-img: %s\n", err->message);
        return EXIT_IMAGE_ERROR;
    }
    if (version) {
        printf("frostvm-img %s\n", FROSTVM_VERSION);
        return 0;
    }
    if (!output) {
        output = g_strdup("human");
    }
    if (strcmp(output, "human") && strcmp(output, "json")) {
        g_printerr("frostvm-img: --output must be human or json, not '%s'\n", output);
        return EXIT_IMAGE_ERROR;
    }
    cmd = argc > 1 ? argv[1] : NULL;
    if (cmd && !strcmp(cmd, "convert") && argc == 4) {
        return img_convert(argv[2], argv[3]);
    }
    if (cmd && argc >= 3 && img_is_mapped(argv[2])) {
        if (!strcmp(cmd, "info") && argc == 3) {
            return img_mapped_info(argv[2], output);
        }
        if (!strcmp(cmd, "check") && argc == 3) {
            return img_mapped_check(argv[2]);
        }
        if (!strcmp(cmd, "dump-ram") && argc == 4) {
            return img_mapped_dump_ram(argv[2], argv[3]);
        }
    }
    if (cmd && !strcmp(cmd, "info") && argc == 3) {
        return cmd_info(argv[2], output);
    }
    if (cmd && !strcmp(cmd, "check") && argc == 3) {
        return cmd_check(argv[2]);
    }
    if (cmd && !strcmp(cmd, "dump-ram") && argc == 4) {
        return cmd_dump_ram(argv[2], argv[3]);
    }
    {
        g_autofree char *help = g_option_context_get_help(ctx, TRUE, NULL);
        g_printerr("%s", help);
    }
    return EXIT_IMAGE_ERROR;
}
