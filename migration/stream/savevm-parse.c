/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The migration stream parser: checks structure, lengths, coverage and checksum, reports records. */
#include "migration/savevm-parse.h"

#include <inttypes.h>
#include <string.h>
#include <libfdt.h>

#include "migration/mapped-ram.h"
#include "migration/stream-file.h"
#include "util/error.h"

/* Sanity bounds: anything larger is corruption, not a real machine. */
#define PARSE_MAX_MACHINE_LEN   (1u << 20)
#define PARSE_MAX_BLOCKS        64u
#define PARSE_MAX_BLOCK_SIZE    (1ull << 42)      /* 4 TiB */
#define PARSE_MAX_TOTAL_SIZE    (1ull << 42)      /* all blocks together */
#define PARSE_MAX_DEVICE_LEN    (64u << 20)
#define PARSE_MAX_DEVICE_NAME   255u

typedef enum {
    PARSE_EXPECT_MACHINE,
    PARSE_EXPECT_RAM_START,
    PARSE_IN_RAM,
    PARSE_DEVICES,
    PARSE_DONE,
} ParseState;

typedef struct Parser {
    StreamFile *f;
    const SavevmParseOps *ops;
    void *opaque;
    ParseState state;
    uint32_t nblocks;
    uint64_t sizes[PARSE_MAX_BLOCKS];
    uint64_t *seen[PARSE_MAX_BLOCKS];   /* one bit per page saved at least once */
} Parser;

char *savevm_record_type_name(uint32_t type)
{
    GString *s = g_string_new(NULL);

    for (int i = 0; i < 4; i++) {
        unsigned char c = (type >> (8 * i)) & 0xff;
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            g_string_append_c(s, (char)c);
        } else {
            g_string_append_printf(s, "\\x%02x", c);
        }
    }
    return g_string_free(s, FALSE);
}

static const char *parse_state_expects(ParseState st)
{
    switch (st) {
    case PARSE_EXPECT_MACHINE:
        return "the machine description (MACH)";
    case PARSE_EXPECT_RAM_START:
        return "the RAM section start (RAMS)";
    case PARSE_IN_RAM:
        return "a RAM record (PAGE) or the RAM section end (RAME)";
    case PARSE_DEVICES:
        return "a device record (DEVC) or the footer (FOOT)";
    case PARSE_DONE:
        return "the end of the stream";
    }
    return "?";
}

G_GNUC_PRINTF(4, 5)
static bool parse_fail(Parser *p, uint64_t offset, GError **errp, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_setg(errp, "corrupt stream at offset %" PRIu64 ": %s", offset, msg);
    return false;
}

/* After a failed read: the stream's error, with the record it happened in. */
static bool parse_stream_error(Parser *p, uint32_t type, uint64_t rec_off, GError **errp)
{
    g_autofree char *name = savevm_record_type_name(type);

    stream_file_check(p->f, errp);
    error_prefix(errp, "in the %s record at offset %" PRIu64 ": ", name, rec_off);
    return false;
}

static bool parse_header(Parser *p, GError **errp)
{
    uint8_t magic[SAVEVM_MAGIC_SIZE];
    uint32_t version, flags;

    if (!stream_file_read(p->f, magic, sizeof(magic)) ||
        !stream_file_get_u32(p->f, &version) || !stream_file_get_u32(p->f, &flags)) {
        stream_file_check(p->f, errp);
        error_prefix(errp, "reading the stream header: ");
        return false;
    }
    if (memcmp(magic, SAVEVM_MAGIC, SAVEVM_MAGIC_SIZE)) {
        return parse_fail(p, 0, errp, "not a frostvm migration stream (bad magic)");
    }
    if (version == 0 || version > SAVEVM_VERSION) {
        return parse_fail(p, 8, errp,
                          "stream format version %u; this build reads versions 1 to %u",
                          version, SAVEVM_VERSION);
    }
    if (flags & MAPPED_RAM_STREAM_FLAG) {
        error_setg(errp, "this is a page-aligned image (mapped-ram): it is read at "
                   "random offsets, so it loads only from a file: URI (or convert it "
                   "with 'frostvm-img convert')");
        return false;
    }
    if (flags & SAVEVM_STREAM_FLAGS_REQUIRED_MASK) {
        return parse_fail(p, 12, errp, "unknown required stream flags 0x%08x",
                          flags & SAVEVM_STREAM_FLAGS_REQUIRED_MASK);
    }
    return !p->ops->header || p->ops->header(p->opaque, version, flags, errp);
}

static bool parse_machine(Parser *p, uint64_t rec_off, uint64_t len, GError **errp)
{
    g_autofree uint8_t *fdt = NULL;
    int r;

    if (len < sizeof(struct fdt_header) || len > PARSE_MAX_MACHINE_LEN) {
        return parse_fail(p, rec_off, errp,
                          "machine description of %" PRIu64 " bytes", len);
    }
    fdt = g_malloc(len);
    if (!stream_file_read(p->f, fdt, len)) {
        return parse_stream_error(p, SAVEVM_REC_MACHINE, rec_off, errp);
    }
    /*
     * Only the version-17 layout we write is accepted: libfdt's full check
     * trusts the older layouts' headers too much (a fuzzed version-8 header
     * crashed it).
     */
    r = fdt_check_header(fdt);
    if (r == 0 && (fdt_version(fdt) != 17 || fdt_totalsize(fdt) != len)) {
        r = fdt_version(fdt) != 17 ? -FDT_ERR_BADVERSION : -FDT_ERR_TRUNCATED;
    }
    if (r == 0) {
        r = fdt_check_full(fdt, len);
    }
    if (r) {
        return parse_fail(p, rec_off, errp,
                          "the machine description is not a valid device tree (%s)",
                          fdt_strerror(r));
    }
    p->state = PARSE_EXPECT_RAM_START;
    return !p->ops->machine || p->ops->machine(p->opaque, fdt, len, errp);
}

static bool parse_ram_start(Parser *p, uint64_t rec_off, uint64_t len, GError **errp)
{
    uint32_t nblocks, page_size;
    uint64_t total = 0;

    if (!stream_file_get_u32(p->f, &nblocks) || !stream_file_get_u32(p->f, &page_size)) {
        return parse_stream_error(p, SAVEVM_REC_RAM_START, rec_off, errp);
    }
    if (nblocks == 0 || nblocks > PARSE_MAX_BLOCKS) {
        return parse_fail(p, rec_off, errp, "RAM section with %u blocks", nblocks);
    }
    if (page_size != SAVEVM_PAGE_SIZE) {
        return parse_fail(p, rec_off, errp, "page size %u (only %u is defined)",
                          page_size, SAVEVM_PAGE_SIZE);
    }
    if (len != 8 + 8ull * nblocks) {
        return parse_fail(p, rec_off, errp,
                          "RAM section start of %" PRIu64 " bytes for %u blocks", len,
                          nblocks);
    }
    for (uint32_t i = 0; i < nblocks; i++) {
        uint64_t size;

        if (!stream_file_get_u64(p->f, &size)) {
            return parse_stream_error(p, SAVEVM_REC_RAM_START, rec_off, errp);
        }
        if (!size || size % SAVEVM_PAGE_SIZE || size > PARSE_MAX_BLOCK_SIZE) {
            return parse_fail(p, rec_off, errp, "RAM block %u has size %" PRIu64,
                              i, size);
        }
        p->sizes[i] = size;
        total += size;
    }
    if (total > PARSE_MAX_TOTAL_SIZE) {
        return parse_fail(p, rec_off, errp, "RAM blocks of %" PRIu64 " bytes in total", total);
    }
    if (p->ops->ram_start && !p->ops->ram_start(p->opaque, nblocks, p->sizes, errp)) {
        return false;
    }
    /* Large but lazily backed: untouched parts of the bitmaps cost nothing. */
    for (uint32_t i = 0; i < nblocks; i++) {
        uint64_t pages = p->sizes[i] / SAVEVM_PAGE_SIZE;
        p->seen[i] = g_malloc0((pages + 63) / 64 * 8);
    }
    p->nblocks = nblocks;
    p->state = PARSE_IN_RAM;
    return true;
}

/* Set bits [first, first + n): whole words at once, so huge records cost little. */
static void parse_mark_seen(Parser *p, const SavevmRamRecord *rec)
{
    uint64_t *map = p->seen[rec->block];
    uint64_t i = rec->offset / SAVEVM_PAGE_SIZE;
    uint64_t end = i + rec->npages;

    while (i < end) {
        if (i % 64 == 0 && end - i >= 64) {
            map[i / 64] = ~0ull;
            i += 64;
        } else {
            map[i / 64] |= 1ull << (i % 64);
            i++;
        }
    }
}

static bool parse_ram(Parser *p, uint64_t rec_off, uint32_t flags, uint64_t len,
                      GError **errp)
{
    SavevmRamRecord rec = { .flags = flags, .stream_offset = rec_off };
    uint64_t data_len;
    void *target = NULL;

    if (flags != SAVEVM_RAM_ZERO && flags != SAVEVM_RAM_DATA) {
        return parse_fail(p, rec_off, errp, "RAM record with flags 0x%08x", flags);
    }
    if (len < SAVEVM_RAM_RECORD_HEADER_SIZE - SAVEVM_RECORD_HEADER_SIZE) {
        return parse_fail(p, rec_off, errp, "RAM record of %" PRIu64 " bytes", len);
    }
    if (!stream_file_get_u32(p->f, &rec.block) || !stream_file_get_u32(p->f, &rec.npages) ||
        !stream_file_get_u64(p->f, &rec.offset)) {
        return parse_stream_error(p, SAVEVM_REC_RAM, rec_off, errp);
    }
    if (rec.block >= p->nblocks) {
        return parse_fail(p, rec_off, errp, "RAM record for block %u; the stream has %u",
                          rec.block, p->nblocks);
    }
    if (!rec.npages || rec.offset % SAVEVM_PAGE_SIZE ||
        rec.offset > p->sizes[rec.block] ||
        (uint64_t)rec.npages > (p->sizes[rec.block] - rec.offset) / SAVEVM_PAGE_SIZE) {
        return parse_fail(p, rec_off, errp,
                          "RAM record of %u pages at offset 0x%" PRIx64
                          " does not fit block %u (%" PRIu64 " bytes)",
                          rec.npages, rec.offset, rec.block, p->sizes[rec.block]);
    }
    data_len = flags == SAVEVM_RAM_DATA ? (uint64_t)rec.npages * SAVEVM_PAGE_SIZE : 0;
    if (len != SAVEVM_RAM_RECORD_HEADER_SIZE - SAVEVM_RECORD_HEADER_SIZE + data_len) {
        return parse_fail(p, rec_off, errp,
                          "RAM record of %u %s pages has length %" PRIu64,
                          rec.npages, data_len ? "data" : "zero", len);
    }
    if (data_len) {
        if (p->ops->ram_target) {
            target = p->ops->ram_target(p->opaque, &rec, errp);
            if (!target && errp && *errp) {
                return false;
            }
        }
        if (target ? !stream_file_read(p->f, target, data_len)
                   : !stream_file_skip(p->f, data_len)) {
            return parse_stream_error(p, SAVEVM_REC_RAM, rec_off, errp);
        }
    }
    parse_mark_seen(p, &rec);
    return !p->ops->ram_record || p->ops->ram_record(p->opaque, &rec, target, errp);
}

/* Every page of every block must have been saved at least once. */
static bool parse_ram_end(Parser *p, uint64_t rec_off, uint64_t len, GError **errp)
{
    if (len) {
        return parse_fail(p, rec_off, errp, "RAM section end of %" PRIu64 " bytes", len);
    }
    for (uint32_t b = 0; b < p->nblocks; b++) {
        uint64_t pages = p->sizes[b] / SAVEVM_PAGE_SIZE;
        uint64_t missing = 0, first = 0;

        for (uint64_t w = 0; w < (pages + 63) / 64; w++) {
            uint64_t bits = p->seen[b][w];
            uint64_t valid = pages - w * 64 >= 64 ? ~0ull : (1ull << (pages - w * 64)) - 1;
            uint64_t holes = ~bits & valid;

            if (holes) {
                if (!missing) {
                    first = w * 64 + (uint64_t)__builtin_ctzll(holes);
                }
                missing += (uint64_t)__builtin_popcountll(holes);
            }
        }
        if (missing) {
            return parse_fail(p, rec_off, errp,
                              "the RAM section ends with %" PRIu64 " pages of block %u "
                              "never saved (the first at offset 0x%" PRIx64 ")",
                              missing, b, first * SAVEVM_PAGE_SIZE);
        }
    }
    p->state = PARSE_DEVICES;
    return !p->ops->ram_end || p->ops->ram_end(p->opaque, errp);
}

static bool parse_device_name_ok(const char *name, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!g_ascii_isalnum(name[i]) && !strchr("-_.:/", name[i])) {
            return false;
        }
    }
    return len > 0;
}

static bool parse_device(Parser *p, uint64_t rec_off, uint64_t len, GError **errp)
{
    uint32_t instance, version, name_len;
    char name[PARSE_MAX_DEVICE_NAME + 1];
    g_autofree uint8_t *data = NULL;
    uint64_t data_len;

    if (len < 12 || len > PARSE_MAX_DEVICE_LEN) {
        return parse_fail(p, rec_off, errp, "device record of %" PRIu64 " bytes", len);
    }
    if (!stream_file_get_u32(p->f, &instance) || !stream_file_get_u32(p->f, &version) ||
        !stream_file_get_u32(p->f, &name_len)) {
        return parse_stream_error(p, SAVEVM_REC_DEVICE, rec_off, errp);
    }
    if (name_len == 0 || name_len > PARSE_MAX_DEVICE_NAME || name_len > len - 12) {
        return parse_fail(p, rec_off, errp, "device record with a name of %u bytes",
                          name_len);
    }
    if (!stream_file_read(p->f, name, name_len)) {
        return parse_stream_error(p, SAVEVM_REC_DEVICE, rec_off, errp);
    }
    name[name_len] = '\0';
    if (!parse_device_name_ok(name, name_len)) {
        return parse_fail(p, rec_off, errp, "device record name is not printable");
    }
    data_len = len - 12 - name_len;
    data = g_malloc(data_len ? data_len : 1);
    if (!stream_file_read(p->f, data, data_len)) {
        return parse_stream_error(p, SAVEVM_REC_DEVICE, rec_off, errp);
    }
    return !p->ops->device ||
           p->ops->device(p->opaque, name, instance, version, data, data_len, rec_off,
                          errp);
}

static bool parse_footer(Parser *p, uint64_t rec_off, uint64_t len, GError **errp)
{
    uint64_t length, checksum, computed;

    if (len != SAVEVM_FOOTER_SIZE - SAVEVM_RECORD_HEADER_SIZE) {
        return parse_fail(p, rec_off, errp, "footer of %" PRIu64 " bytes", len);
    }
    if (!stream_file_get_u64(p->f, &length)) {
        return parse_stream_error(p, SAVEVM_REC_FOOTER, rec_off, errp);
    }
    /* The checksum covers every byte before its own field. */
    computed = stream_file_checksum(p->f);
    if (!stream_file_get_u64(p->f, &checksum)) {
        return parse_stream_error(p, SAVEVM_REC_FOOTER, rec_off, errp);
    }
    if (length != rec_off + SAVEVM_FOOTER_SIZE) {
        return parse_fail(p, rec_off, errp,
                          "the footer gives a stream length of %" PRIu64
                          " bytes, but it ends at %" PRIu64,
                          length, rec_off + SAVEVM_FOOTER_SIZE);
    }
    if (checksum != computed) {
        error_setg(errp,
                   "checksum mismatch: the footer at offset %" PRIu64 " records "
                   "%016" PRIx64 " but the stream's bytes give %016" PRIx64
                   " (the image is corrupt)",
                   rec_off, checksum, computed);
        return false;
    }
    if (!stream_file_at_eof(p->f)) {
        if (!stream_file_check(p->f, errp)) {
            return false;
        }
        return parse_fail(p, length, errp, "unexpected data after the footer");
    }
    if (!stream_file_check(p->f, errp)) {
        return false;
    }
    p->state = PARSE_DONE;
    return !p->ops->footer || p->ops->footer(p->opaque, length, checksum, errp);
}

static bool parse_skip(Parser *p, uint32_t type, uint32_t flags, uint64_t rec_off,
                       uint64_t len, GError **errp)
{
    if (!stream_file_skip(p->f, len)) {
        return parse_stream_error(p, type, rec_off, errp);
    }
    if (p->ops->skipped) {
        p->ops->skipped(p->opaque, type, flags, len, rec_off);
    }
    return true;
}

static bool parse_record(Parser *p, GError **errp)
{
    uint64_t rec_off = stream_file_offset(p->f);
    uint32_t type, flags;
    uint64_t len;
    ParseState want;
    g_autofree char *name = NULL;

    if (stream_file_at_eof(p->f)) {
        if (!stream_file_check(p->f, errp)) {
            return false;
        }
        error_setg(errp, "stream truncated at offset %" PRIu64 ": it ends where %s "
                   "should follow%s", rec_off, parse_state_expects(p->state),
                   p->state == PARSE_DEVICES ? " (no footer)" : "");
        return false;
    }
    if (!stream_file_get_u32(p->f, &type) || !stream_file_get_u32(p->f, &flags) ||
        !stream_file_get_u64(p->f, &len)) {
        stream_file_check(p->f, errp);
        error_prefix(errp, "reading a record header at offset %" PRIu64 ": ", rec_off);
        return false;
    }

    switch (type) {
    case SAVEVM_REC_MACHINE:
        want = PARSE_EXPECT_MACHINE;
        break;
    case SAVEVM_REC_RAM_START:
        want = PARSE_EXPECT_RAM_START;
        break;
    case SAVEVM_REC_RAM:
    case SAVEVM_REC_RAM_END:
        want = PARSE_IN_RAM;
        break;
    case SAVEVM_REC_DEVICE:
    case SAVEVM_REC_FOOTER:
        want = PARSE_DEVICES;
        break;
    case SAVEVM_REC_PADDING:
        return parse_skip(p, type, flags, rec_off, len, errp);
    default:
        name = savevm_record_type_name(type);
        if (flags & SAVEVM_RECORD_OPTIONAL) {
            return parse_skip(p, type, flags, rec_off, len, errp);
        }
        return parse_fail(p, rec_off, errp, "unknown record type '%s' (flags 0x%08x)",
                          name, flags);
    }
    if (p->state != want) {
        name = savevm_record_type_name(type);
        return parse_fail(p, rec_off, errp, "a %s record where %s should be", name,
                          parse_state_expects(p->state));
    }

    switch (type) {
    case SAVEVM_REC_MACHINE:
        return parse_machine(p, rec_off, len, errp);
    case SAVEVM_REC_RAM_START:
        return parse_ram_start(p, rec_off, len, errp);
    case SAVEVM_REC_RAM:
        return parse_ram(p, rec_off, flags, len, errp);
    case SAVEVM_REC_RAM_END:
        return parse_ram_end(p, rec_off, len, errp);
    case SAVEVM_REC_DEVICE:
        return parse_device(p, rec_off, len, errp);
    default:
        return parse_footer(p, rec_off, len, errp);
    }
}

bool savevm_parse(StreamFile *f, const SavevmParseOps *ops, void *opaque,
                  GError **errp)
{
    Parser p = { .f = f, .ops = ops, .opaque = opaque };
    bool ok = parse_header(&p, errp);

    while (ok && p.state != PARSE_DONE) {
        ok = parse_record(&p, errp);
    }
    for (uint32_t i = 0; i < PARSE_MAX_BLOCKS; i++) {
        g_free(p.seen[i]);
    }
    return ok;
}

bool savevm_parse_devices(StreamFile *f, const SavevmParseOps *ops, void *opaque,
                          GError **errp)
{
    Parser p = { .f = f, .ops = ops, .opaque = opaque, .state = PARSE_DEVICES };

    while (!stream_file_at_eof(f)) {
        uint64_t rec_off = stream_file_offset(f);
        uint32_t type, flags;
        uint64_t len;
        bool ok;

        if (!stream_file_get_u32(f, &type) || !stream_file_get_u32(f, &flags) ||
            !stream_file_get_u64(f, &len)) {
            stream_file_check(f, errp);
            error_prefix(errp, "reading a device record header at offset %" PRIu64 ": ",
                         rec_off);
            return false;
        }
        if (type == SAVEVM_REC_DEVICE) {
            ok = parse_device(&p, rec_off, len, errp);
        } else if (type == SAVEVM_REC_PADDING || (flags & SAVEVM_RECORD_OPTIONAL)) {
            ok = parse_skip(&p, type, flags, rec_off, len, errp);
        } else {
            g_autofree char *name = savevm_record_type_name(type);
            ok = parse_fail(&p, rec_off, errp, "a %s record among the device records", name);
        }
        if (!ok) {
            return false;
        }
    }
    return stream_file_check(f, errp);
}

const char *savevm_fdt_get_string(const void *fdt, const char *path, const char *prop)
{
    int node = fdt_path_offset(fdt, path);
    const char *s;
    int len;

    if (node < 0) {
        return NULL;
    }
    s = fdt_getprop(fdt, node, prop, &len);
    if (!s || len < 1 || s[len - 1] != '\0' || strlen(s) != (size_t)len - 1) {
        return NULL;
    }
    return s;
}

bool savevm_fdt_get_u64(const void *fdt, const char *path, const char *prop,
                        uint64_t *value)
{
    int node = fdt_path_offset(fdt, path);
    const void *v;
    int len;

    if (node < 0) {
        return false;
    }
    v = fdt_getprop(fdt, node, prop, &len);
    if (v && len == 4) {
        *value = fdt32_ld(v);
        return true;
    }
    if (v && len == 8) {
        *value = fdt64_ld(v);
        return true;
    }
    return false;
}
