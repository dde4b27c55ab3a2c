/* SPDX-License-Identifier: GPL-2.0-or-later */
/* StreamFile: a buffered, checksummed writer or reader of a migration stream over a channel. */
#ifndef MIGRATION_STREAM_FILE_H
#define MIGRATION_STREAM_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

#include "migration/channel.h"

/*
 * One direction of a stream. Bytes are counted and run through an XXH3-64
 * checksum in stream order as they are written or consumed. The first error
 * sticks: every later call fails at once, so callers check at section
 * boundaries. One thread at a time may use a StreamFile.
 */
typedef struct StreamFile StreamFile;

/* Buffer size, and the size from which writes and reads bypass the buffer. */
#define STREAM_FILE_BUFFER_SIZE (1u << 20)
#define STREAM_FILE_DIRECT_SIZE (256u << 10)

/*
 * A writer over @ch (not owned: close the channel after freeing the stream).
 * Writes go out with write()/send() from the calling thread; see
 * stream_file_set_io_uring() for asynchronous file writes.
 */
StreamFile *stream_file_new_output(MigrationChannel *ch);

/* A reader over @ch (not owned). */
StreamFile *stream_file_new_input(MigrationChannel *ch);

/* A reader of @len bytes at @data (not copied; must outlive the stream). */
StreamFile *stream_file_new_memory_input(const void *data, size_t len);

/* A writer into memory; see stream_file_memory_output(). */
StreamFile *stream_file_new_memory_output(void);

/* The bytes a memory writer has received so far (borrowed). */
GByteArray *stream_file_memory_output(StreamFile *f);

/*
 * Free the stream (NULL is fine). Buffered output that was not flushed is
 * dropped: flush first. Waits for writes still in flight.
 */
void stream_file_free(StreamFile *f);

/*
 * Append @len bytes. Small writes are copied into the buffer; large ones go
 * to the channel directly when that is safe (the caller's buffer is only
 * read during the call). False once the stream has an error.
 */
bool stream_file_write(StreamFile *f, const void *buf, size_t len);

/* Little-endian fixed-width values. */
bool stream_file_put_u32(StreamFile *f, uint32_t v);
bool stream_file_put_u64(StreamFile *f, uint64_t v);

/* Hand every buffered byte to the channel and wait for writes in flight. */
bool stream_file_flush(StreamFile *f);

/*
 * Read exactly @len bytes into @buf; large reads land in @buf directly.
 * The end of the stream before @len bytes is an error naming the offset
 * ("stream truncated at offset N: M more bytes expected").
 */
bool stream_file_read(StreamFile *f, void *buf, size_t len);

bool stream_file_get_u32(StreamFile *f, uint32_t *v);
bool stream_file_get_u64(StreamFile *f, uint64_t *v);

/* Consume @len bytes without keeping them (they still count and are checksummed). */
bool stream_file_skip(StreamFile *f, uint64_t len);

/*
 * True if no byte follows (waits for the peer to send or close). An error
 * while looking counts as the end; check stream_file_error().
 */
bool stream_file_at_eof(StreamFile *f);

/* Bytes written (accepted by stream_file_write) or consumed so far. */
uint64_t stream_file_offset(const StreamFile *f);

/* XXH3-64 (seed 0) of the bytes [0, stream_file_offset()). */
uint64_t stream_file_checksum(const StreamFile *f);

/* The first error, or NULL. Owned by the stream. */
const GError *stream_file_error(const StreamFile *f);

/*
 * Record @err (ownership taken) unless an error is already recorded, in
 * which case @err is freed: the first error wins.
 */
void stream_file_set_error(StreamFile *f, GError *err);

/* If the stream has an error, copy it to @errp and return false. */
bool stream_file_check(const StreamFile *f, GError **errp);

/*
 * Limit the output rate to @bytes_per_second (0: unlimited). The writer
 * sleeps in 100 ms windows; a cancelled channel ends the sleep.
 */
void stream_file_set_rate_limit(StreamFile *f, uint64_t bytes_per_second);

/*
 * Follow the limit stored at @bytes_per_second (read atomically before each
 * write, so a parameter changed during a migration applies at once); NULL
 * stops following and keeps the last value.
 */
void stream_file_follow_rate_limit(StreamFile *f, const uint64_t *bytes_per_second);

/*
 * Write file: output through io_uring, four 1 MiB buffers in flight, so the
 * caller copies and checksums while the kernel writes (off by default: it
 * only paid off on an idle machine here; see stream-file.c). Call before the
 * first write. Falls back to write() when io_uring is unavailable.
 */
void stream_file_set_io_uring(StreamFile *f, bool enable);

/* The channel, or NULL for memory streams. */
MigrationChannel *stream_file_channel(const StreamFile *f);

#endif
