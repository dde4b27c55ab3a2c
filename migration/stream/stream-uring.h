/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Asynchronous file writes for StreamFile: a few large buffers in flight through io_uring. */
#ifndef MIGRATION_STREAM_URING_H
#define MIGRATION_STREAM_URING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct StreamUring StreamUring;

/*
 * Set up @depth buffers of @buf_size bytes writing @fd sequentially from its
 * offset 0. NULL (errno set) when io_uring is not available; callers fall
 * back to write().
 */
StreamUring *stream_uring_new(int fd, unsigned depth, size_t buf_size);

/* A free buffer to fill; waits for a write to complete if all are busy. NULL on error. */
uint8_t *stream_uring_get_buffer(StreamUring *u);

/* Queue @len bytes of @buf (from stream_uring_get_buffer) at the next offset. */
bool stream_uring_submit(StreamUring *u, uint8_t *buf, size_t len);

/* Wait for every queued write. */
bool stream_uring_drain(StreamUring *u);

/* The first failed write's errno (positive), or 0. */
int stream_uring_error(const StreamUring *u);

/* Wait for writes in flight and free everything (NULL is fine). */
void stream_uring_free(StreamUring *u);

#endif
