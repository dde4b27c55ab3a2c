/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The background snapshot's writer thread: drains queued RAM records to the stream and frees their buffers. */
#include "migration/snapshot/snapshot-internal.h"

#include "migration/channel.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "migration/mapped-ram.h"
#include "migration/savevm.h"
#include "migration/stream-file.h"
#include "util/error.h"

/*
 * Buffers go back to the pool after every span this many pages long: at a
 * slow sink a 2 MiB record takes 100 ms to drain (20 MiB/s), and a fault
 * waiting for a free buffer should wait for one span, not a whole record.
 */
#define WRITER_SPAN_PAGES 16

/*
 * The stream hands its buffer to the channel only when it is full (1 MiB,
 * 50 ms at 20 MiB/s), and frees no pool buffer meanwhile. When the pool runs
 * low, flush every this many bytes instead, so a fault waiting for a buffer
 * waits for a short write, not a long one.
 */
#define WRITER_PRESSURE_FLUSH_BYTES (64u << 10)
#define WRITER_PRESSURE_FREE_SHARE 0.25

/* Under pool pressure, keep the stream's unwritten bytes small. */
static bool writer_flush_if_pressed(SnapshotWriter *w, size_t just_written)
{
    w->unflushed += just_written;
    if (w->unflushed < WRITER_PRESSURE_FLUSH_BYTES ||
        page_pool_free_fraction(w->pool) >= WRITER_PRESSURE_FREE_SHARE) {
        return true;
    }
    w->unflushed = 0;
    w->pressure_flushes++;
    return stream_file_flush(w->f);
}

/*
 * mapped-ram: the record's pages go straight to their offsets, one vectored
 * positioned write per record; zero pages are left as holes (absent). A
 * failure is recorded in the stream, where the writer's callers look.
 */
static bool write_record_mapped(SnapshotWriter *w, const SnapshotRecord *rec)
{
    g_autoptr(GError) err = NULL;
    void *pages[SNAPSHOT_FAULT_BLOCK_MAX_PAGES];
    bool ok = true;

    if (rec->zero) {
        /* Flat: stays absent (a hole); incremental: present and zero, not the base's. */
        ok = mapped_ram_writer_zero(w->mapped, rec->block_index,
                                    rec->offset / SNAPSHOT_PAGE_SIZE, rec->npages, &err);
    }
    for (uint32_t done = 0; !rec->zero && ok && done < rec->npages;) {
        uint32_t n = MIN(rec->npages - done, (uint32_t)G_N_ELEMENTS(pages));

        for (uint32_t i = 0; i < n; i++) {
            pages[i] = page_pool_page(w->pool, rec->slots[done + i]);
        }
        ok = mapped_ram_writer_putv(w->mapped, rec->block_index,
                                    rec->offset / SNAPSHOT_PAGE_SIZE + done, n, pages, &err);
        done += n;
    }
    if (!rec->zero) {
        page_pool_put(w->pool, rec->slots, rec->npages);
    }
    if (!ok) {
        stream_file_set_error(w->f, g_steal_pointer(&err));
        return false;
    }
    __atomic_fetch_add(&w->records, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(rec->zero ? &w->zero_pages : &w->data_pages, rec->npages,
                       __ATOMIC_RELAXED);
    __atomic_fetch_add(&w->bytes, rec->zero ? 0 : (uint64_t)rec->npages * SNAPSHOT_PAGE_SIZE,
                       __ATOMIC_RELAXED);
    return true;
}

/*
 * Write one record and give its buffers back as their pages are handed to
 * the stream (stream_file_write() copies or writes them before it returns).
 * False once the stream has failed; the buffers are returned either way.
 */
static bool write_record(SnapshotWriter *w, const SnapshotRecord *rec)
{
    uint8_t header[SAVEVM_RAM_RECORD_HEADER_SIZE];
    bool ok;

    if (w->mapped) {
        return write_record_mapped(w, rec);
    }
    savevm_encode_ram_header(header, rec->block_index, rec->offset, rec->npages,
                             rec->zero ? SAVEVM_RAM_ZERO : SAVEVM_RAM_DATA);
    ok = stream_file_write(w->f, header, sizeof(header));
    /* Slots taken together are often adjacent: write them as one span. */
    uint32_t i = 0;
    while (!rec->zero && i < rec->npages) {
        uint32_t span = 1;
        uint8_t *start = page_pool_page(w->pool, rec->slots[i]);
        while (span < WRITER_SPAN_PAGES && i + span < rec->npages &&
               rec->slots[i + span] == rec->slots[i] + span) {
            span++;
        }
        ok = ok && stream_file_write(w->f, start, (size_t)span * SNAPSHOT_PAGE_SIZE);
        page_pool_put(w->pool, &rec->slots[i], span);
        ok = ok && writer_flush_if_pressed(w, (size_t)span * SNAPSHOT_PAGE_SIZE);
        i += span;
    }
    if (!ok) {
        return false;
    }
    __atomic_fetch_add(&w->records, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(rec->zero ? &w->zero_pages : &w->data_pages, rec->npages,
                       __ATOMIC_RELAXED);
    __atomic_fetch_add(&w->bytes, sizeof(header) +
                       (rec->zero ? 0 : (uint64_t)rec->npages * SNAPSHOT_PAGE_SIZE),
                       __ATOMIC_RELAXED);
    return true;
}

/* Drop a record that will not be written (after a failure, or too late). */
static void release_record(SnapshotWriter *w, SnapshotRecord *rec)
{
    if (!rec->zero) {
        page_pool_put(w->pool, rec->slots, rec->npages);
    }
    g_free(rec);
}

/*
 * The writer yields to the vCPUs entirely (SCHED_IDLE): woken by every
 * record, at normal or batch priority it took the CPU of a vCPU that had
 * just been released from a fault, and the guest waited 1-3 ms for it (on
 * two CPUs, a worst stall of 2-8 ms against 0.9-2 ms at idle priority, with
 * a tmpfs sink). A faulting vCPU frees its CPU, so the writer gets one when
 * the pool needs draining; a watchdog lifts it if the vCPUs leave it none.
 */
static void writer_lower_priority(SnapshotWriter *w)
{
    struct sched_param idle = { 0 };

    g_mutex_lock(&w->prio_lock);
    w->tid = (pid_t)syscall(SYS_gettid);
    w->lowered = !w->keep_priority &&
                 pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle) == 0;
    g_mutex_unlock(&w->prio_lock);
}

void snapshot_writer_keep_priority(SnapshotWriter *w)
{
    struct sched_param normal = { 0 };

    g_mutex_lock(&w->prio_lock);
    w->keep_priority = true;
    if (w->tid && w->lowered && sched_setscheduler(w->tid, SCHED_OTHER, &normal) == 0) {
        w->lowered = false;
        __atomic_store_n(&w->boost_until_ns, 0, __ATOMIC_RELAXED);
    }
    g_mutex_unlock(&w->prio_lock);
}

/*
 * The command behind an exec: sink (cat, pv) runs at SCHED_IDLE for the same
 * reason as the writer (migration.c starts it so); when the writer starves,
 * so does it, and both are lifted and lowered together.
 */
static void writer_sink_idle(SnapshotWriter *w, bool idle)
{
    MigrationChannel *ch = w->f ? stream_file_channel(w->f) : NULL;

    if (ch) {
        channel_set_child_idle(ch, idle);
    }
}

/* Back to SCHED_IDLE once a starvation boost has run its time. */
static void writer_unboost_if_due(SnapshotWriter *w)
{
    struct sched_param idle = { 0 };
    uint64_t until = __atomic_load_n(&w->boost_until_ns, __ATOMIC_RELAXED);

    if (!until || write_tracking_now_ns() < until) {
        return;
    }
    g_mutex_lock(&w->prio_lock);
    if (w->boost_until_ns && write_tracking_now_ns() >= w->boost_until_ns) {
        pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle);
        writer_sink_idle(w, true);
        __atomic_store_n(&w->boost_until_ns, 0, __ATOMIC_RELAXED);
    }
    g_mutex_unlock(&w->prio_lock);
}

void snapshot_writer_boost_starved(SnapshotWriter *w, uint64_t for_ns)
{
    struct sched_param batch = { 0 };

    g_mutex_lock(&w->prio_lock);
    if (w->tid && w->lowered &&
        sched_setscheduler(w->tid, SCHED_BATCH, &batch) == 0) {
        __atomic_store_n(&w->boost_until_ns, write_tracking_now_ns() + for_ns,
                         __ATOMIC_RELAXED);
        writer_sink_idle(w, false);
        w->starved_boosts++;
    }
    g_mutex_unlock(&w->prio_lock);
}

unsigned snapshot_writer_pending(SnapshotWriter *w)
{
    unsigned n = 0;

    pi_mutex_lock(&w->lock);
    if (w->thread) {
        n = g_queue_get_length(&w->queue);
    }
    pi_mutex_unlock(&w->lock);
    return n;
}

static gpointer writer_thread_main(gpointer opaque)
{
    SnapshotWriter *w = opaque;

    writer_lower_priority(w);

    for (;;) {
        pi_mutex_lock(&w->lock);
        while (g_queue_is_empty(&w->queue) && !w->finishing) {
            pi_cond_wait(&w->cond, &w->lock);
        }
        SnapshotRecord *rec = g_queue_pop_head(&w->queue);
        pi_mutex_unlock(&w->lock);
        if (!rec) {
            break;      /* finishing and drained */
        }
        writer_unboost_if_due(w);
        if (__atomic_load_n(&w->failed, __ATOMIC_ACQUIRE)) {
            release_record(w, rec);
            continue;
        }
        if (!write_record(w, rec)) {
            /*
             * Keep draining (and freeing buffers) after a failure, so a fault
             * waiting for the pool is released; the snapshot sees the flag.
             * The stream belongs to this thread, so copy its error for others.
             */
            const GError *err = stream_file_error(w->f);
            pi_mutex_lock(&w->lock);
            w->error = err ? g_error_copy(err) : NULL;
            pi_mutex_unlock(&w->lock);
            __atomic_store_n(&w->failed, true, __ATOMIC_RELEASE);
        }
        g_free(rec);
    }
    return NULL;
}

void snapshot_writer_init(SnapshotWriter *w)
{
    pi_mutex_init(&w->lock);
    g_mutex_init(&w->prio_lock);
    pi_cond_init(&w->cond);
    g_queue_init(&w->queue);
}

void snapshot_writer_clear(SnapshotWriter *w)
{
    g_assert(!w->thread);
    pi_mutex_clear(&w->lock);
    g_mutex_clear(&w->prio_lock);
    pi_cond_clear(&w->cond);
}

bool snapshot_writer_start(SnapshotWriter *w, StreamFile *f, MappedRamWriter *mapped,
                           PagePool *pool, GError **errp)
{
    w->f = f;
    w->mapped = mapped;
    w->pool = pool;
    w->thread = g_thread_try_new("snapshot-writer", writer_thread_main, w, errp);
    if (!w->thread) {
        error_prefix(errp, "background-snapshot: cannot start the writer: ");
        return false;
    }
    return true;
}

void snapshot_writer_push(SnapshotWriter *w, SnapshotRecord *rec)
{
    pi_mutex_lock(&w->lock);
    if (w->thread && !w->finishing) {
        bool was_empty = g_queue_is_empty(&w->queue);
        g_queue_push_tail(&w->queue, rec);
        if (was_empty) {
            pi_cond_signal(&w->cond);
        }
        rec = NULL;
    }
    pi_mutex_unlock(&w->lock);
    if (rec) {
        release_record(w, rec);     /* too late: the stream is closed to records */
    }
}

bool snapshot_writer_finish(SnapshotWriter *w, GError **errp)
{
    if (!w->thread) {
        return true;
    }
    pi_mutex_lock(&w->lock);
    w->finishing = true;
    pi_cond_signal(&w->cond);
    pi_mutex_unlock(&w->lock);
    g_thread_join(w->thread);
    pi_mutex_lock(&w->lock);
    w->thread = NULL;
    pi_mutex_unlock(&w->lock);

    if (w->failed || stream_file_error(w->f)) {
        snapshot_writer_get_error(w, errp);
        g_clear_error(&w->error);
        return false;
    }
    return true;
}

bool snapshot_writer_failed(SnapshotWriter *w)
{
    return __atomic_load_n(&w->failed, __ATOMIC_ACQUIRE);
}

void snapshot_writer_get_error(SnapshotWriter *w, GError **errp)
{
    const char *why = "the stream failed";

    if (w->thread) {
        pi_mutex_lock(&w->lock);
    }
    if (w->error) {
        why = w->error->message;
    } else if (!w->thread && stream_file_error(w->f)) {
        why = stream_file_error(w->f)->message;
    }
    error_setg(errp, "background-snapshot: writing RAM failed: %s", why);
    if (w->thread) {
        pi_mutex_unlock(&w->lock);
    }
}
