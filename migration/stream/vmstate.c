/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Device state records: the registry of handlers and the little-endian helpers. */
#include "migration/vmstate.h"

#include <string.h>

#include "system/machine.h"
#include "util/error.h"

void vmstate_register(Machine *m, const VMStateHandler *handler)
{
    if (!m->vmstate_handlers) {
        m->vmstate_handlers = g_array_new(FALSE, TRUE, sizeof(VMStateHandler));
    }
    g_array_append_val(m->vmstate_handlers, *handler);
}

void vmstate_put_u32(GByteArray *buf, uint32_t v)
{
    uint32_t le = GUINT32_TO_LE(v);
    g_byte_array_append(buf, (const guint8 *)&le, sizeof(le));
}

void vmstate_put_u64(GByteArray *buf, uint64_t v)
{
    uint64_t le = GUINT64_TO_LE(v);
    g_byte_array_append(buf, (const guint8 *)&le, sizeof(le));
}

void vmstate_put_bytes(GByteArray *buf, const void *data, size_t len)
{
    g_byte_array_append(buf, data, len);
}

void vmstate_reader_init(VMStateReader *r, const uint8_t *data, size_t len)
{
    r->data = data;
    r->len = len;
    r->pos = 0;
    r->overrun = false;
}

bool vmstate_get_bytes(VMStateReader *r, void *out, size_t len)
{
    if (r->overrun || len > r->len - r->pos) {
        r->overrun = true;
        memset(out, 0, len);
        return false;
    }
    memcpy(out, r->data + r->pos, len);
    r->pos += len;
    return true;
}

uint32_t vmstate_get_u32(VMStateReader *r)
{
    uint32_t le;
    vmstate_get_bytes(r, &le, sizeof(le));
    return GUINT32_FROM_LE(le);
}

uint64_t vmstate_get_u64(VMStateReader *r)
{
    uint64_t le;
    vmstate_get_bytes(r, &le, sizeof(le));
    return GUINT64_FROM_LE(le);
}

bool vmstate_reader_finish(VMStateReader *r, const char *what, GError **errp)
{
    if (r->overrun) {
        error_setg(errp,
                    "device state '%s' is truncated (%zu bytes)", what, r->len);
        return false;
    }
    if (r->pos != r->len) {
        error_setg(errp,
                    "device state '%s' has %zu unexpected trailing bytes", what,
                    r->len - r->pos);
        return false;
    }
    return true;
}
