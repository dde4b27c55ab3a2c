/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Writing the migration stream: header, machine description, RAM section framing, device records, footer. */
#include "migration/savevm.h"

#include <string.h>

#include "migration/image-identity.h"
#include "migration/migration.h"
#include "migration/stream/savevm-internal.h"
#include "migration/stream-file.h"
#include "migration/vmstate.h"
#include "system/machine.h"
#include "util/error.h"
#include "util/le-bytes.h"

static void encode_record_header(uint8_t *dst, uint32_t type, uint32_t flags,
                                 uint64_t len)
{
    le_put32(dst, type);
    le_put32(dst + 4, flags);
    le_put64(dst + 8, len);
}

static bool write_record_header(StreamFile *f, uint32_t type, uint32_t flags,
                                uint64_t len)
{
    uint8_t hdr[SAVEVM_RECORD_HEADER_SIZE];

    encode_record_header(hdr, type, flags, len);
    return stream_file_write(f, hdr, sizeof(hdr));
}

void savevm_encode_ram_header(uint8_t *dst, uint32_t block_index, uint64_t offset,
                              uint32_t npages, uint32_t flags)
{
    uint64_t data = (flags & SAVEVM_RAM_DATA) ? (uint64_t)npages * SAVEVM_PAGE_SIZE : 0;

    encode_record_header(dst, SAVEVM_REC_RAM, flags,
                         SAVEVM_RAM_RECORD_HEADER_SIZE - SAVEVM_RECORD_HEADER_SIZE + data);
    le_put32(dst + 16, block_index);
    le_put32(dst + 20, npages);
    le_put64(dst + 24, offset);
}

int savevm_ram_block_index(Machine *m, RamBlock *block)
{
    for (guint i = 0; i < m->ram_blocks->len; i++) {
        if (g_ptr_array_index(m->ram_blocks, i) == block) {
            return (int)i;
        }
    }
    return -1;
}

bool savevm_write_header(StreamFile *f, Machine *m, uint32_t stream_flags,
                         GError **errp)
{
    ImageIdentity id = { .has_uuid = true };

    image_uuid_generate(id.uuid);
    return savevm_write_header_identity(f, m, stream_flags, &id, errp);
}

bool savevm_write_header_identity(StreamFile *f, Machine *m, uint32_t stream_flags,
                                  const ImageIdentity *id, GError **errp)
{
    g_autoptr(GByteArray) desc = savevm_machine_describe(m, errp);
    g_autoptr(GByteArray) idnt = g_byte_array_new();

    if (!desc) {
        return false;
    }
    if (id->has_base) {
        stream_flags |= SAVEVM_STREAM_INCREMENTAL;
    }
    stream_file_write(f, SAVEVM_MAGIC, SAVEVM_MAGIC_SIZE);
    stream_file_put_u32(f, SAVEVM_VERSION);
    stream_file_put_u32(f, stream_flags);

    write_record_header(f, SAVEVM_REC_MACHINE, 0, desc->len);
    stream_file_write(f, desc->data, desc->len);

    /* Optional: a reader that predates identities skips it (a flat image still loads). */
    image_identity_encode_record(id, idnt);
    write_record_header(f, SAVEVM_REC_IDENTITY, SAVEVM_RECORD_OPTIONAL, idnt->len);
    stream_file_write(f, idnt->data, idnt->len);

    write_record_header(f, SAVEVM_REC_RAM_START, 0, 8 + 8ull * m->ram_blocks->len);
    stream_file_put_u32(f, m->ram_blocks->len);
    stream_file_put_u32(f, SAVEVM_PAGE_SIZE);
    for (guint i = 0; i < m->ram_blocks->len; i++) {
        RamBlock *b = g_ptr_array_index(m->ram_blocks, i);
        stream_file_put_u64(f, b->size);
    }
    return stream_file_check(f, errp);
}

bool savevm_write_ram_end(StreamFile *f, GError **errp)
{
    write_record_header(f, SAVEVM_REC_RAM_END, 0, 0);
    return stream_file_check(f, errp);
}

/* Append one device record whose state @save appends; patches the length after. */
static bool save_device_record(GByteArray *out, const char *name, uint32_t instance,
                               uint32_t version,
                               bool (*save)(void *opaque, GByteArray *buf, GError **errp),
                               void *opaque, GError **errp)
{
    size_t start = out->len;
    uint32_t name_len = (uint32_t)strlen(name);
    uint8_t hdr[SAVEVM_RECORD_HEADER_SIZE];

    g_byte_array_set_size(out, start + SAVEVM_RECORD_HEADER_SIZE);
    vmstate_put_u32(out, instance);
    vmstate_put_u32(out, version);
    vmstate_put_u32(out, name_len);
    vmstate_put_bytes(out, name, name_len);
    if (!save(opaque, out, errp)) {
        error_prefix(errp, "saving device '%s' instance %u: ", name, instance);
        g_byte_array_set_size(out, start);
        return false;
    }
    encode_record_header(hdr, SAVEVM_REC_DEVICE, 0,
                         out->len - start - SAVEVM_RECORD_HEADER_SIZE);
    memcpy(out->data + start, hdr, sizeof(hdr));
    return true;
}

/* The built-in record: did the guest run before migration stopped it? */
static bool save_runstate(void *opaque, GByteArray *buf, GError **errp)
{
    Machine *m = opaque;
    bool running = m->migration ? m->migration->vm_was_running
                                : m->runstate == RUN_STATE_RUNNING;

    vmstate_put_u32(buf, running ? 1 : 0);
    return true;
}

GByteArray *savevm_save_devices(Machine *m, GError **errp)
{
    g_autoptr(GByteArray) out = g_byte_array_sized_new(64 * 1024);

    if (!save_device_record(out, SAVEVM_RUNSTATE_RECORD, 0, 1, save_runstate, m, errp)) {
        return NULL;
    }
    for (guint i = 0; m->vmstate_handlers && i < m->vmstate_handlers->len; i++) {
        VMStateHandler *h = &g_array_index(m->vmstate_handlers, VMStateHandler, i);

        if (!save_device_record(out, h->name, h->instance, h->version, h->save,
                                h->opaque, errp)) {
            return NULL;
        }
    }
    return g_steal_pointer(&out);
}

bool savevm_write_devices(StreamFile *f, GByteArray *devices, GError **errp)
{
    stream_file_write(f, devices->data, devices->len);
    return stream_file_check(f, errp);
}

bool savevm_write_footer(StreamFile *f, GError **errp)
{
    return savevm_write_footer_digest(f, NULL, errp);
}

bool savevm_write_footer_digest(StreamFile *f, uint64_t *digest, GError **errp)
{
    uint64_t length = stream_file_offset(f) + SAVEVM_FOOTER_SIZE;
    uint64_t checksum;

    write_record_header(f, SAVEVM_REC_FOOTER, 0,
                        SAVEVM_FOOTER_SIZE - SAVEVM_RECORD_HEADER_SIZE);
    stream_file_put_u64(f, length);
    /* Covers every byte before the checksum field itself. */
    checksum = stream_file_checksum(f);
    stream_file_put_u64(f, checksum);
    if (digest) {
        *digest = checksum;
    }
    return stream_file_check(f, errp);
}
