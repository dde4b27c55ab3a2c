/* SPDX-License-Identifier: GPL-2.0-or-later */
/* io_uring writer behind StreamFile for file: channels: keeps several large writes in flight. */
#include "migration/stream/stream-uring.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#define STREAM_URING_MAX_DEPTH 8

typedef struct StreamUringBuffer {
    uint8_t *data;
    bool busy;
    size_t len;          /* bytes queued */
    size_t done;         /* bytes the kernel has written so far */
    uint64_t offset;     /* file offset of data[0] */
} StreamUringBuffer;

struct StreamUring {
    struct io_uring ring;
    int fd;
    uint64_t offset;
    unsigned depth;
    unsigned inflight;
    int error;
    StreamUringBuffer bufs[STREAM_URING_MAX_DEPTH];
};

StreamUring *stream_uring_new(int fd, unsigned depth, size_t buf_size)
{
    StreamUring *u = g_new0(StreamUring, 1);
    int r;

    u->fd = fd;
    u->depth = MIN(depth, STREAM_URING_MAX_DEPTH);
    r = io_uring_queue_init(u->depth * 2, &u->ring, 0);
    if (r < 0) {
        g_free(u);
        errno = -r;
        return NULL;
    }
    for (unsigned i = 0; i < u->depth; i++) {
        /* Page-aligned, so the page cache copy runs at full speed. */
        if (posix_memalign((void **)&u->bufs[i].data, 4096, buf_size)) {
            u->depth = i;
            stream_uring_free(u);
            errno = ENOMEM;
            return NULL;
        }
    }
    return u;
}

static bool stream_uring_queue(StreamUring *u, unsigned i)
{
    StreamUringBuffer *b = &u->bufs[i];
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    int r;

    if (!sqe) {
        /* The ring has twice as many entries as buffers: cannot be full. */
        u->error = EBUSY;
        return false;
    }
    io_uring_prep_write(sqe, u->fd, b->data + b->done, b->len - b->done,
                        b->offset + b->done);
    io_uring_sqe_set_data64(sqe, i);
    r = io_uring_submit(&u->ring);
    if (r < 0) {
        u->error = -r;
        return false;
    }
    return true;
}

/* Reap one completion, waiting for it. */
static bool stream_uring_reap(StreamUring *u)
{
    struct io_uring_cqe *cqe;
    StreamUringBuffer *b;
    int r;

    do {
        r = io_uring_wait_cqe(&u->ring, &cqe);
    } while (r == -EINTR);
    if (r < 0) {
        u->error = -r;
        return false;
    }
    b = &u->bufs[io_uring_cqe_get_data64(cqe)];
    r = cqe->res;
    io_uring_cqe_seen(&u->ring, cqe);

    if (r < 0 && r != -EINTR && r != -EAGAIN) {
        if (!u->error) {
            u->error = -r;
        }
    } else if (r > 0) {
        b->done += (size_t)r;
    }
    if (!u->error && b->done < b->len) {
        if (r == 0) {
            u->error = EIO;    /* no progress: treat as a failed write */
        } else if (stream_uring_queue(u, (unsigned)(b - u->bufs))) {
            return true;       /* short write: the rest is queued again */
        }
    }
    b->busy = false;
    u->inflight--;
    return !u->error;
}

uint8_t *stream_uring_get_buffer(StreamUring *u)
{
    for (;;) {
        if (u->error) {
            return NULL;
        }
        for (unsigned i = 0; i < u->depth; i++) {
            if (!u->bufs[i].busy) {
                return u->bufs[i].data;
            }
        }
        if (!stream_uring_reap(u)) {
            return NULL;
        }
    }
}

bool stream_uring_submit(StreamUring *u, uint8_t *buf, size_t len)
{
    unsigned i;

    if (u->error) {
        return false;
    }
    for (i = 0; i < u->depth && u->bufs[i].data != buf; i++) {
    }
    g_assert(i < u->depth && !u->bufs[i].busy);
    if (!len) {
        return true;
    }
    u->bufs[i].busy = true;
    u->bufs[i].len = len;
    u->bufs[i].done = 0;
    u->bufs[i].offset = u->offset;
    u->offset += len;
    u->inflight++;
    if (!stream_uring_queue(u, i)) {
        u->bufs[i].busy = false;
        u->inflight--;
        return false;
    }
    return true;
}

bool stream_uring_drain(StreamUring *u)
{
    while (u->inflight) {
        if (!stream_uring_reap(u) && u->error) {
            /* Keep reaping: buffers must not be freed under the kernel. */
            while (u->inflight) {
                struct io_uring_cqe *cqe;
                if (io_uring_wait_cqe(&u->ring, &cqe) < 0) {
                    break;
                }
                u->bufs[io_uring_cqe_get_data64(cqe)].busy = false;
                io_uring_cqe_seen(&u->ring, cqe);
                u->inflight--;
            }
            return false;
        }
    }
    return !u->error;
}

int stream_uring_error(const StreamUring *u)
{
    return u->error;
}

void stream_uring_free(StreamUring *u)
{
    if (!u) {
        return;
    }
    stream_uring_drain(u);
    io_uring_queue_exit(&u->ring);
    for (unsigned i = 0; i < u->depth; i++) {
        free(u->bufs[i].data);
    }
    g_free(u);
}
