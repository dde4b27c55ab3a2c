/* SPDX-License-Identifier: GPL-2.0-or-later */
/* StreamFile: buffering, byte counting, the running checksum, the sticky error and throttling. */
#include "migration/stream-file.h"

#include <errno.h>
#include <string.h>
#include <xxhash.h>

#include "migration/stream/stream-uring.h"
#include "util/error.h"

#define STREAM_URING_DEPTH 4
#define STREAM_RATE_WINDOW_US 100000

typedef enum {
    STREAM_CHANNEL_OUT,
    STREAM_CHANNEL_IN,
    STREAM_MEMORY_OUT,
    STREAM_MEMORY_IN,
} StreamKind;

struct StreamFile {
    StreamKind kind;
    MigrationChannel *ch;
    GError *error;
    XXH3_state_t *hash;
    uint64_t offset;

    /* Output: buf[0, len) is pending. Input: buf[pos, len) is unread. */
    uint8_t *buf;
    size_t len;
    size_t pos;
    bool own_buf;
    bool eof;

    GByteArray *memory;      /* STREAM_MEMORY_OUT */

    bool want_uring;
    bool uring_tried;
    StreamUring *uring;      /* file output: buf belongs to it */

    uint64_t rate_limit;     /* bytes per second, 0: none */
    const uint64_t *rate_source;  /* where to read the limit from, or NULL */
    int64_t window_start_us;
    uint64_t window_bytes;
};

static StreamFile *stream_file_alloc(StreamKind kind, MigrationChannel *ch)
{
    StreamFile *f = g_new0(StreamFile, 1);

    f->kind = kind;
    f->ch = ch;
    f->hash = XXH3_createState();
    g_assert(f->hash);
    XXH3_64bits_reset(f->hash);
    /*
     * Off by default: on this two-core machine, buffered file writes through
     * io_uring run on io-wq worker threads that compete with the vCPUs, and
     * measured 40-50 ms per 150 MiB at best (write(): 50 ms) but 150-600 ms
     * when the CPUs were busy. stream_file_set_io_uring() turns it on.
     */
    f->want_uring = false;
    return f;
}

StreamFile *stream_file_new_output(MigrationChannel *ch)
{
    return stream_file_alloc(STREAM_CHANNEL_OUT, ch);
}

StreamFile *stream_file_new_input(MigrationChannel *ch)
{
    StreamFile *f = stream_file_alloc(STREAM_CHANNEL_IN, ch);

    f->buf = g_malloc(STREAM_FILE_BUFFER_SIZE);
    f->own_buf = true;
    return f;
}

StreamFile *stream_file_new_memory_input(const void *data, size_t len)
{
    StreamFile *f = stream_file_alloc(STREAM_MEMORY_IN, NULL);

    f->buf = (uint8_t *)data;
    f->len = len;
    f->eof = true;
    return f;
}

StreamFile *stream_file_new_memory_output(void)
{
    StreamFile *f = stream_file_alloc(STREAM_MEMORY_OUT, NULL);

    f->memory = g_byte_array_new();
    return f;
}

GByteArray *stream_file_memory_output(StreamFile *f)
{
    g_assert(f->kind == STREAM_MEMORY_OUT);
    return f->memory;
}

void stream_file_free(StreamFile *f)
{
    if (!f) {
        return;
    }
    stream_uring_free(f->uring);
    if (f->own_buf) {
        g_free(f->buf);
    }
    if (f->memory) {
        g_byte_array_unref(f->memory);
    }
    XXH3_freeState(f->hash);
    g_clear_error(&f->error);
    g_free(f);
}

const GError *stream_file_error(const StreamFile *f)
{
    return f->error;
}

void stream_file_set_error(StreamFile *f, GError *err)
{
    if (f->error) {
        g_error_free(err);
        return;
    }
    f->error = err;
}

bool stream_file_check(const StreamFile *f, GError **errp)
{
    if (f->error) {
        g_propagate_error(errp, g_error_copy(f->error));
        return false;
    }
    return true;
}

uint64_t stream_file_offset(const StreamFile *f)
{
    return f->offset;
}

uint64_t stream_file_checksum(const StreamFile *f)
{
    return XXH3_64bits_digest(f->hash);
}

MigrationChannel *stream_file_channel(const StreamFile *f)
{
    return f->ch;
}

void stream_file_set_rate_limit(StreamFile *f, uint64_t bytes_per_second)
{
    f->rate_limit = bytes_per_second;
    f->window_start_us = 0;
    f->window_bytes = 0;
}

void stream_file_follow_rate_limit(StreamFile *f, const uint64_t *bytes_per_second)
{
    f->rate_source = bytes_per_second;
}

void stream_file_set_io_uring(StreamFile *f, bool enable)
{
    f->want_uring = enable;
}

/*
 * Throttle before @len bytes leave: within a 100 ms window, once the bytes
 * sent exceed what the limit allows for the time elapsed, sleep the
 * difference. Short bursts pass, the average holds.
 */
static bool stream_file_throttle(StreamFile *f, size_t len)
{
    int64_t now, ahead_us;

    if (f->rate_source) {
        uint64_t limit = __atomic_load_n(f->rate_source, __ATOMIC_RELAXED);
        if (limit != f->rate_limit) {
            stream_file_set_rate_limit(f, limit);
        }
    }
    if (!f->rate_limit) {
        return true;
    }
    now = g_get_monotonic_time();
    if (!f->window_start_us || now - f->window_start_us >= STREAM_RATE_WINDOW_US) {
        f->window_start_us = now;
        f->window_bytes = 0;
    }
    f->window_bytes += len;
    ahead_us = (int64_t)(f->window_bytes * 1000000.0 / f->rate_limit) -
               (now - f->window_start_us);
    if (ahead_us > 0) {
        if (f->ch && !channel_sleep(f->ch, (uint64_t)ahead_us)) {
            stream_file_set_error(f, g_error_new(FROSTVM_ERROR, FROSTVM_ERROR_GENERIC,
                                                 "%s: cancelled", channel_uri(f->ch)));
            return false;
        }
        if (!f->ch) {
            g_usleep((gulong)ahead_us);
        }
        /* Start a new window after the sleep, so the credit does not pile up. */
        f->window_start_us = g_get_monotonic_time();
        f->window_bytes = 0;
    }
    return true;
}

static void stream_file_set_errno(StreamFile *f, int err, const char *what)
{
    GError *e = NULL;

    error_setg_errno(&e, err, "%s %s failed", what,
                     f->ch ? channel_uri(f->ch) : "memory stream");
    stream_file_set_error(f, e);
}

/* Hand @len bytes at @data to the sink (not through the buffer). */
static bool stream_file_sink(StreamFile *f, const void *data, size_t len)
{
    GError *err = NULL;

    if (f->error) {
        return false;
    }
    if (f->kind == STREAM_MEMORY_OUT) {
        g_byte_array_append(f->memory, data, len);
        return true;
    }
    if (!stream_file_throttle(f, len)) {
        return false;
    }
    if (!channel_write_all(f->ch, data, len, &err)) {
        stream_file_set_error(f, err);
        return false;
    }
    return true;
}

/* Make sure there is an output buffer; decides io_uring on first use. */
static bool stream_file_out_buffer(StreamFile *f)
{
    if (f->buf) {
        return true;
    }
    if (!f->uring_tried) {
        f->uring_tried = true;
        if (f->want_uring && f->kind == STREAM_CHANNEL_OUT &&
            channel_is_regular_file(f->ch)) {
            /* NULL means no io_uring here: plain write() then. */
            f->uring = stream_uring_new(channel_fd(f->ch), STREAM_URING_DEPTH,
                                        STREAM_FILE_BUFFER_SIZE);
        }
    }
    if (f->uring) {
        f->buf = stream_uring_get_buffer(f->uring);
        if (!f->buf) {
            stream_file_set_errno(f, stream_uring_error(f->uring), "write to");
            return false;
        }
    } else {
        f->buf = g_malloc(STREAM_FILE_BUFFER_SIZE);
        f->own_buf = true;
    }
    f->len = 0;
    return true;
}

/* Send the buffered bytes (queue them, with io_uring). */
static bool stream_file_push(StreamFile *f)
{
    bool ok;

    if (f->error) {
        return false;
    }
    if (!f->len) {
        return true;
    }
    if (!f->uring) {
        ok = stream_file_sink(f, f->buf, f->len);
        f->len = 0;
        return ok;
    }
    if (!stream_file_throttle(f, f->len)) {
        return false;
    }
    ok = stream_uring_submit(f->uring, f->buf, f->len);
    f->buf = NULL;
    f->len = 0;
    if (!ok) {
        stream_file_set_errno(f, stream_uring_error(f->uring), "write to");
    }
    return ok && stream_file_out_buffer(f);
}

bool stream_file_write(StreamFile *f, const void *data, size_t len)
{
    const uint8_t *p = data;

    g_assert(f->kind == STREAM_CHANNEL_OUT || f->kind == STREAM_MEMORY_OUT);
    if (f->error) {
        return false;
    }
    XXH3_64bits_update(f->hash, data, len);
    f->offset += len;

    if (f->kind == STREAM_MEMORY_OUT) {
        return stream_file_sink(f, data, len);
    }
    /*
     * Large writes skip the copy when the write completes before we return
     * (write()); io_uring writes complete later, and the caller may change
     * its buffer (guest RAM!) after we return, so those are always copied.
     */
    if (len >= STREAM_FILE_DIRECT_SIZE && !f->uring &&
        !(f->want_uring && !f->uring_tried && channel_is_regular_file(f->ch))) {
        return stream_file_push(f) && stream_file_sink(f, data, len);
    }
    while (len) {
        size_t n;

        if (!stream_file_out_buffer(f)) {
            return false;
        }
        n = MIN(len, STREAM_FILE_BUFFER_SIZE - f->len);
        memcpy(f->buf + f->len, p, n);
        f->len += n;
        p += n;
        len -= n;
        if (f->len == STREAM_FILE_BUFFER_SIZE && !stream_file_push(f)) {
            return false;
        }
    }
    return true;
}

bool stream_file_put_u32(StreamFile *f, uint32_t v)
{
    uint32_t le = GUINT32_TO_LE(v);
    return stream_file_write(f, &le, sizeof(le));
}

bool stream_file_put_u64(StreamFile *f, uint64_t v)
{
    uint64_t le = GUINT64_TO_LE(v);
    return stream_file_write(f, &le, sizeof(le));
}

bool stream_file_flush(StreamFile *f)
{
    if (f->kind == STREAM_MEMORY_OUT) {
        return !f->error;
    }
    if (!stream_file_push(f)) {
        return false;
    }
    if (f->uring && !stream_uring_drain(f->uring)) {
        stream_file_set_errno(f, stream_uring_error(f->uring), "write to");
        return false;
    }
    return true;
}

/* Refill the input buffer; false at the end of the stream or on error. */
static bool stream_file_fill(StreamFile *f)
{
    GError *err = NULL;
    ssize_t r;

    if (f->eof || f->error) {
        return false;
    }
    f->pos = 0;
    f->len = 0;
    r = channel_read(f->ch, f->buf, STREAM_FILE_BUFFER_SIZE, &err);
    if (r < 0) {
        stream_file_set_error(f, err);
        return false;
    }
    if (r == 0) {
        f->eof = true;
        return false;
    }
    f->len = (size_t)r;
    return true;
}

static void stream_file_truncated(StreamFile *f, size_t missing)
{
    if (!f->error) {
        stream_file_set_error(f, g_error_new(FROSTVM_ERROR, FROSTVM_ERROR_GENERIC,
                                             "stream truncated at offset %" G_GUINT64_FORMAT
                                             ": %zu more bytes expected",
                                             f->offset, missing));
    }
}

/* Read the rest of a large request straight into @dst, bypassing the buffer. */
static bool stream_file_read_direct(StreamFile *f, uint8_t *dst, size_t len)
{
    while (len) {
        GError *err = NULL;
        ssize_t r;

        if (f->eof) {
            stream_file_truncated(f, len);
            return false;
        }
        r = channel_read(f->ch, dst, len, &err);
        if (r < 0) {
            stream_file_set_error(f, err);
            return false;
        }
        if (r == 0) {
            f->eof = true;
            continue;
        }
        XXH3_64bits_update(f->hash, dst, (size_t)r);
        f->offset += (uint64_t)r;
        dst += r;
        len -= (size_t)r;
    }
    return true;
}

bool stream_file_read(StreamFile *f, void *buf, size_t len)
{
    uint8_t *dst = buf;

    g_assert(f->kind == STREAM_CHANNEL_IN || f->kind == STREAM_MEMORY_IN);
    while (len) {
        size_t n;

        if (f->error) {
            return false;
        }
        if (f->pos == f->len) {
            if (f->kind == STREAM_CHANNEL_IN && len >= STREAM_FILE_DIRECT_SIZE &&
                !f->eof) {
                return stream_file_read_direct(f, dst, len);
            }
            if (!stream_file_fill(f)) {
                stream_file_truncated(f, len);
                return false;
            }
        }
        n = MIN(len, f->len - f->pos);
        memcpy(dst, f->buf + f->pos, n);
        XXH3_64bits_update(f->hash, dst, n);
        f->pos += n;
        f->offset += n;
        dst += n;
        len -= n;
    }
    return true;
}

bool stream_file_get_u32(StreamFile *f, uint32_t *v)
{
    uint32_t le = 0;
    bool ok = stream_file_read(f, &le, sizeof(le));
    *v = GUINT32_FROM_LE(le);
    return ok;
}

bool stream_file_get_u64(StreamFile *f, uint64_t *v)
{
    uint64_t le = 0;
    bool ok = stream_file_read(f, &le, sizeof(le));
    *v = GUINT64_FROM_LE(le);
    return ok;
}

bool stream_file_skip(StreamFile *f, uint64_t len)
{
    while (len) {
        size_t n;

        if (f->error) {
            return false;
        }
        if (f->pos == f->len && !stream_file_fill(f)) {
            stream_file_truncated(f, len);
            return false;
        }
        n = MIN(len, f->len - f->pos);
        XXH3_64bits_update(f->hash, f->buf + f->pos, n);
        f->pos += n;
        f->offset += n;
        len -= n;
    }
    return true;
}

bool stream_file_at_eof(StreamFile *f)
{
    if (f->pos < f->len) {
        return false;
    }
    if (f->kind == STREAM_MEMORY_IN) {
        return true;
    }
    return !stream_file_fill(f);
}
