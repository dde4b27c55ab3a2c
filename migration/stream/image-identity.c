/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Image identities: UUIDs, the stream's IDNT record, reading and verifying an image file's identity, base paths. */
#include "migration/image-identity.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "migration/channel.h"
#include "migration/mapped-ram.h"
#include "migration/savevm-parse.h"
#include "migration/savevm.h"
#include "migration/stream-file.h"
#include "util/error.h"
#include "util/le-bytes.h"

/* IDNT payload: uuid, base uuid, base digest, u32 path length, the path. */
#define IDNT_FIXED_LEN (2 * IMAGE_UUID_SIZE + 8 + 4)

void image_uuid_generate(uint8_t out[IMAGE_UUID_SIZE])
{
    g_autofree char *s = g_uuid_string_random();
    int n = 0;

    for (const char *p = s; *p && n < IMAGE_UUID_SIZE; p++) {
        if (g_ascii_isxdigit(p[0]) && g_ascii_isxdigit(p[1])) {
            out[n++] = (uint8_t)(g_ascii_xdigit_value(p[0]) << 4 | g_ascii_xdigit_value(p[1]));
            p++;
        }
    }
}

char *image_uuid_string(const uint8_t u[IMAGE_UUID_SIZE])
{
    return g_strdup_printf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
                           "%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3], u[4], u[5],
                           u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

void image_identity_clear(ImageIdentity *id)
{
    g_free(id->base_path);
    memset(id, 0, sizeof(*id));
}

bool image_link_check_uuid(const uint8_t base_uuid[IMAGE_UUID_SIZE],
                           const uint8_t recorded_uuid[IMAGE_UUID_SIZE], GError **errp)
{
    if (!memcmp(base_uuid, recorded_uuid, IMAGE_UUID_SIZE)) {
        return true;
    }
    g_autofree char *got = image_uuid_string(base_uuid);
    g_autofree char *want = image_uuid_string(recorded_uuid);
    error_setg(errp, "it is another image: its UUID is %s, the increment was taken on %s",
               got, want);
    return false;
}

bool image_link_check_digest(uint64_t base_digest, uint64_t recorded_digest, GError **errp)
{
    if (base_digest == recorded_digest) {
        return true;
    }
    error_setg(errp, "it has changed since the increment was taken: its digest is %016"
               PRIx64 ", the increment names %016" PRIx64, base_digest, recorded_digest);
    return false;
}

static void put_le32(GByteArray *out, uint32_t v)
{
    uint8_t b[4];
    le_put32(b, v);
    g_byte_array_append(out, b, sizeof(b));
}

static void put_le64(GByteArray *out, uint64_t v)
{
    uint8_t b[8];
    le_put64(b, v);
    g_byte_array_append(out, b, sizeof(b));
}

void image_identity_encode_record(const ImageIdentity *id, GByteArray *out)
{
    static const uint8_t none[IMAGE_UUID_SIZE];
    uint32_t path_len = id->has_base && id->base_path ? (uint32_t)strlen(id->base_path) : 0;

    g_assert(path_len <= IMAGE_BASE_PATH_MAX);
    g_byte_array_append(out, id->uuid, IMAGE_UUID_SIZE);
    g_byte_array_append(out, id->has_base ? id->base_uuid : none, IMAGE_UUID_SIZE);
    put_le64(out, id->has_base ? id->base_digest : 0);
    put_le32(out, path_len);
    if (path_len) {
        g_byte_array_append(out, (const guint8 *)id->base_path, path_len);
    }
}

static bool uuid_is_zero(const uint8_t u[IMAGE_UUID_SIZE])
{
    static const uint8_t none[IMAGE_UUID_SIZE];

    return !memcmp(u, none, IMAGE_UUID_SIZE);
}

bool image_identity_decode_record(ImageIdentity *id, const uint8_t *p, size_t len,
                                  GError **errp)
{
    uint32_t path_len;

    if (len < IDNT_FIXED_LEN) {
        error_setg(errp, "identity record of %zu bytes", len);
        return false;
    }
    path_len = le_get32(p + 2 * IMAGE_UUID_SIZE + 8);
    if (path_len > IMAGE_BASE_PATH_MAX || len != IDNT_FIXED_LEN + path_len) {
        error_setg(errp, "identity record of %zu bytes with a base path of %u bytes", len,
                   path_len);
        return false;
    }
    memcpy(id->uuid, p, IMAGE_UUID_SIZE);
    id->has_uuid = true;
    memcpy(id->base_uuid, p + IMAGE_UUID_SIZE, IMAGE_UUID_SIZE);
    id->base_digest = le_get64(p + 2 * IMAGE_UUID_SIZE);
    id->has_base = !uuid_is_zero(id->base_uuid);
    if (uuid_is_zero(id->uuid)) {
        error_setg(errp, "identity record without an image UUID");
        return false;
    }
    if (id->has_base != (path_len > 0)) {
        error_setg(errp, "identity record %s a base UUID but %s a base path",
                   id->has_base ? "with" : "without", path_len ? "with" : "without");
        return false;
    }
    g_free(id->base_path);
    id->base_path = NULL;
    if (path_len) {
        const char *s = (const char *)p + IDNT_FIXED_LEN;
        if (memchr(s, '\0', path_len) || !g_utf8_validate(s, path_len, NULL)) {
            error_setg(errp, "identity record whose base path is not UTF-8 text");
            return false;
        }
        id->base_path = g_strndup(s, path_len);
    }
    return true;
}

static bool pread_exact(int fd, void *buf, size_t len, uint64_t offset)
{
    return pread(fd, buf, len, (off_t)offset) == (ssize_t)len;
}

/* A stream: its IDNT record (right after MACH when present) and its footer. */
static bool identity_read_stream(int fd, const char *path, uint64_t size, ImageIdentity *id,
                                 GError **errp)
{
    uint8_t rec[SAVEVM_RECORD_HEADER_SIZE], foot[SAVEVM_FOOTER_SIZE];
    uint64_t off = SAVEVM_HEADER_SIZE;

    if (size < SAVEVM_HEADER_SIZE + SAVEVM_FOOTER_SIZE ||
        !pread_exact(fd, foot, sizeof(foot), size - SAVEVM_FOOTER_SIZE) ||
        le_get32(foot) != SAVEVM_REC_FOOTER || le_get64(foot + 16) != size) {
        error_setg(errp, "image '%s' has no footer at its end (truncated or not complete)",
                   path);
        return false;
    }
    id->digest = le_get64(foot + 24);
    for (int i = 0; i < 2; i++) {
        if (!pread_exact(fd, rec, sizeof(rec), off)) {
            break;
        }
        uint32_t type = le_get32(rec);
        uint64_t len = le_get64(rec + 8);
        if (type == SAVEVM_REC_IDENTITY) {
            g_autofree uint8_t *payload = NULL;
            if (len > IDNT_FIXED_LEN + IMAGE_BASE_PATH_MAX) {
                break;
            }
            payload = g_malloc(len ? len : 1);
            if (!pread_exact(fd, payload, len, off + sizeof(rec))) {
                break;
            }
            if (!image_identity_decode_record(id, payload, len, errp)) {
                error_prefix(errp, "corrupt image '%s': ", path);
                return false;
            }
            return true;
        }
        if (type != SAVEVM_REC_MACHINE || len > size) {
            break;
        }
        off += sizeof(rec) + len;
    }
    /* A stream written before identities: readable, but it can be no one's base. */
    id->has_uuid = false;
    return true;
}

bool image_identity_read(const char *path, ImageIdentity *id, GError **errp)
{
    uint8_t head[SAVEVM_HEADER_SIZE];
    struct stat st;
    int fd;
    bool ok;

    memset(id, 0, sizeof(*id));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot open image '%s'", path);
        return false;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        error_setg(errp, "image '%s' is not a regular file", path);
        close(fd);
        return false;
    }
    id->length = (uint64_t)st.st_size;
    if (!pread_exact(fd, head, sizeof(head), 0) ||
        memcmp(head, SAVEVM_MAGIC, SAVEVM_MAGIC_SIZE)) {
        error_setg(errp, "'%s' is not a frostvm image (bad magic)", path);
        close(fd);
        return false;
    }
    if (!mapped_ram_is_image_header(head, sizeof(head))) {
        ok = identity_read_stream(fd, path, id->length, id, errp);
        close(fd);
        return ok;
    }
    /* Page-aligned: the open checks header, digest and bitmaps (small reads). */
    g_autoptr(MappedRamImage) img = mapped_ram_image_open(path, fd, errp);
    if (!img) {
        return false;
    }
    id->page_aligned = true;
    id->has_uuid = true;
    memcpy(id->uuid, img->h.uuid, IMAGE_UUID_SIZE);
    id->digest = img->h.digest;
    id->has_base = img->h.layout_flags & MAPPED_RAM_LAYOUT_HAS_BASE;
    if (id->has_base) {
        memcpy(id->base_uuid, img->h.base_uuid, IMAGE_UUID_SIZE);
        id->base_digest = img->h.base_digest;
        id->base_path = g_strdup(img->h.base_path);
    }
    return true;
}

bool image_identity_verify(const char *path, GError **errp)
{
    uint8_t head[SAVEVM_HEADER_SIZE];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    bool mapped;

    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot open image '%s'", path);
        return false;
    }
    mapped = pread_exact(fd, head, sizeof(head), 0) &&
             mapped_ram_is_image_header(head, sizeof(head));
    if (mapped) {
        g_autoptr(MappedRamImage) img = mapped_ram_image_open(path, fd, errp);
        return img && mapped_ram_image_check(img, NULL, NULL, errp);
    }
    close(fd);

    g_autofree char *uri = g_strdup_printf("file:%s", path);
    MigrationChannel *ch = channel_open_incoming(uri, errp);
    if (!ch) {
        return false;
    }
    StreamFile *f = stream_file_new_input(ch);
    static const SavevmParseOps no_ops;
    bool ok = savevm_parse(f, &no_ops, NULL, errp);
    if (!ok) {
        error_prefix(errp, "%s: ", path);
    }
    stream_file_free(f);
    channel_close(ch, ok, NULL);
    return ok;
}

char *image_identity_resolve_base(const char *image_path, const char *recorded)
{
    g_autofree char *dir = NULL;

    if (g_path_is_absolute(recorded)) {
        return g_strdup(recorded);
    }
    dir = image_path ? g_path_get_dirname(image_path) : g_strdup(".");
    if (!strcmp(dir, ".")) {
        return g_strdup(recorded);
    }
    return g_build_filename(dir, recorded, NULL);
}

char *image_identity_relative_base(const char *image_path, const char *base_path)
{
    g_autofree char *cwd = g_get_current_dir();
    g_autofree char *image = g_canonicalize_filename(image_path, cwd);
    g_autofree char *base = g_canonicalize_filename(base_path, cwd);
    g_autofree char *dir = g_path_get_dirname(image);
    g_auto(GStrv) from = NULL, to = NULL;
    GString *rel;
    guint common = 0;

    if (g_path_is_absolute(base_path)) {
        return g_strdup(base_path);
    }
    /* Lexical, as the user wrote them: "a/b" and "a/c" give "c", "x/y" gives "../x/y". */
    from = g_strsplit(dir + 1, G_DIR_SEPARATOR_S, -1);
    to = g_strsplit(base + 1, G_DIR_SEPARATOR_S, -1);
    while (from[common] && to[common] && to[common + 1] && *from[common] &&
           !strcmp(from[common], to[common])) {
        common++;
    }
    rel = g_string_new(NULL);
    for (guint i = common; from[i] && *from[i]; i++) {
        g_string_append(rel, ".." G_DIR_SEPARATOR_S);
    }
    for (guint i = common; to[i]; i++) {
        g_string_append(rel, to[i]);
        if (to[i + 1]) {
            g_string_append_c(rel, G_DIR_SEPARATOR);
        }
    }
    return g_string_free(rel, FALSE);
}
