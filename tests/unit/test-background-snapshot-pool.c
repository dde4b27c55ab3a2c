/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Tests of the background snapshot engine against its buffer pool: a pool
 * that covers everything left to save needs no sink to go on.
 */
#include <string.h>
#include <unistd.h>
#include <glib.h>

#include "migration/channel.h"
#include "migration/snapshot/snapshot-internal.h"
#include "migration/stream-file.h"

#include "snapshot-test-guest.h"

/* How long the held sink waits for every page to be saved before it reads anyway. */
#define HOLD_LIMIT_US (10 * G_USEC_PER_SEC)

/* A pipe's reading end that reads nothing until the snapshot has saved every page. */
typedef struct HeldSink {
    int fd;
    BackgroundSnapshot *bs;
    GThread *thread;
    bool saved_while_held;      /* every page saved before a byte was read */
    uint64_t saved_at_release;
    GByteArray *image;
} HeldSink;

static gpointer held_sink_main(gpointer opaque)
{
    HeldSink *s = opaque;
    gint64 limit = g_get_monotonic_time() + HOLD_LIMIT_US;
    uint8_t buf[65536];
    ssize_t n;

    while (g_get_monotonic_time() < limit &&
           __atomic_load_n(&s->bs->fig.saved_pages, __ATOMIC_ACQUIRE) < s->bs->total_pages) {
        g_usleep(1000);
    }
    s->saved_at_release = __atomic_load_n(&s->bs->fig.saved_pages, __ATOMIC_ACQUIRE);
    s->saved_while_held = s->saved_at_release == s->bs->total_pages;
    /* From here on the engine may finish and free: bs is not touched again. */
    while ((n = read(s->fd, buf, sizeof(buf))) > 0) {
        g_byte_array_append(s->image, buf, (guint)n);
    }
    return NULL;
}

static void start_held_sink(TickCtx *t)
{
    HeldSink *s = t->opaque;

    s->bs = t->bs;
    s->thread = g_thread_new("held-sink", held_sink_main, s);
}

/*
 * 32 MiB of data (hot part written once, cold part, half of block 1) and a
 * 40 MiB pool: the scan alone may take 30 MiB, less than the data, but the
 * pool covers all of it with room to spare. With a sink that reads nothing,
 * the scan must save every page anyway (taking the faults' reserve), where
 * before it waited for the sink with the last 2 MiB unsaved. No writers: no
 * fault saves pages for the scan, so the outcome does not depend on timing.
 */
static void test_covered_without_sink(void)
{
    g_autoptr(GError) err = NULL;
    int fds[2];

    if (!wp_available()) {
        return;
    }
    TestGuest *g = guest_new(false);
    memset(g->rb[0].host, 0x5a, HOT_SIZE);

    g_assert_cmpint(pipe(fds), ==, 0);
    g_autofree char *uri = g_strdup_printf("fd:%d", fds[1]);
    MigrationChannel *ch = channel_open_outgoing(uri, &err);
    g_assert_no_error(err);
    close(fds[1]);      /* the channel has its own copy */
    StreamFile *f = stream_file_new_output(ch);
    HeldSink sink = { .fd = fds[0], .image = g_byte_array_new() };
    TickCtx t = { .before_pause = start_held_sink, .opaque = &sink };
    SnapshotResult res;

    run_snapshot(g, f, 40 * MIB, &t, &res);
    g_assert_no_error(res.error);
    g_assert_true(res.ok);
    g_assert_true(stream_file_flush(f));
    g_assert_true(channel_close(ch, true, &err));
    g_assert_no_error(err);
    g_thread_join(sink.thread);
    close(fds[0]);

    g_test_message("pages saved when the sink began to read: %" G_GUINT64_FORMAT " of %"
                   G_GUINT64_FORMAT, sink.saved_at_release,
                   (uint64_t)((g->rb[0].size + g->rb[1].size) / PAGE));
    g_assert_true(sink.saved_while_held);
    g_assert_cmpuint(res.stats.write_faults, ==, 0);
    g_assert_cmpuint(res.stats.pool_high_water, >, 30 * MIB);
    check_image(g, sink.image, &res);
    print_stats("snapshot to a sink that reads nothing until all is saved, 40 MiB pool", &res, g);

    result_clear(&res);
    stream_file_free(f);
    g_byte_array_unref(sink.image);
    guest_free(g);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/background-snapshot/pool/covered-without-sink", test_covered_without_sink);
    return g_test_run();
}
