/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Device state records: each device saves itself into bytes and loads itself back. */
#ifndef MIGRATION_VMSTATE_H
#define MIGRATION_VMSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

typedef struct Machine Machine;

typedef struct VMStateHandler {
    const char *name;        /* stable record name in the stream: "cpu", "serial", ... */
    uint32_t instance;       /* e.g. the vCPU index */
    uint32_t version;        /* version this build writes */
    /* Append the device's state to @buf. Called with the vCPUs stopped. */
    bool (*save)(void *opaque, GByteArray *buf, GError **errp);
    /* Load a record written by version @version (<= this build's). */
    bool (*load)(void *opaque, const uint8_t *data, size_t len, uint32_t version,
                 GError **errp);
    void *opaque;
} VMStateHandler;

/* Add a handler (copied); records are saved and loaded in registration order. */
void vmstate_register(Machine *m, const VMStateHandler *handler);

/* Little helpers to build and parse records (little-endian, fixed width). */
void vmstate_put_u32(GByteArray *buf, uint32_t v);
void vmstate_put_u64(GByteArray *buf, uint64_t v);
void vmstate_put_bytes(GByteArray *buf, const void *data, size_t len);

/* A cursor over a record: reads fail (sticky) past the end. */
typedef struct VMStateReader {
    const uint8_t *data;
    size_t len;
    size_t pos;
    bool overrun;
} VMStateReader;

void vmstate_reader_init(VMStateReader *r, const uint8_t *data, size_t len);
uint32_t vmstate_get_u32(VMStateReader *r);
uint64_t vmstate_get_u64(VMStateReader *r);
bool vmstate_get_bytes(VMStateReader *r, void *out, size_t len);
/* False with a message naming @what if the record was short or had bytes left over. */
bool vmstate_reader_finish(VMStateReader *r, const char *what, GError **errp);

#endif
