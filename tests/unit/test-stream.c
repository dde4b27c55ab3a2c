/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests of StreamFile: buffering, large writes, io_uring file output, sticky errors, checksum, truncation, throttling. */
#include "migration/stream-file.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
#include <glib/gstdio.h>

#include "util/error.h"

/* A deterministic, incompressible pattern. */
static void fill_pattern(uint8_t *buf, size_t len, uint32_t seed)
{
    uint64_t x = 0x9e3779b97f4a7c15ull * (seed + 1);

    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
}

/* Write sizes that cross the buffer and the direct-write threshold. */
static const size_t write_sizes[] = {
    1, 7, 4096, 100000, STREAM_FILE_DIRECT_SIZE - 1, STREAM_FILE_DIRECT_SIZE,
    STREAM_FILE_BUFFER_SIZE, 3 * STREAM_FILE_BUFFER_SIZE + 5, 13,
};

static GByteArray *write_all_sizes(StreamFile *f)
{
    GByteArray *expect = g_byte_array_new();

    for (size_t i = 0; i < G_N_ELEMENTS(write_sizes); i++) {
        g_autofree uint8_t *buf = g_malloc(write_sizes[i]);

        fill_pattern(buf, write_sizes[i], (uint32_t)i);
        g_assert_true(stream_file_write(f, buf, write_sizes[i]));
        g_byte_array_append(expect, buf, write_sizes[i]);
        g_assert_cmpuint(stream_file_offset(f), ==, expect->len);
    }
    g_assert_cmpuint(stream_file_put_u32(f, 0x11223344), ==, true);
    g_assert_cmpuint(stream_file_put_u64(f, 0x5566778899aabbccull), ==, true);
    {
        static const uint8_t le[] = { 0x44, 0x33, 0x22, 0x11, 0xcc, 0xbb, 0xaa, 0x99,
                                      0x88, 0x77, 0x66, 0x55 };
        g_byte_array_append(expect, le, sizeof(le));
    }
    return expect;
}

static void test_memory_roundtrip(void)
{
    StreamFile *w = stream_file_new_memory_output();
    g_autoptr(GByteArray) expect = write_all_sizes(w);
    GByteArray *out = stream_file_memory_output(w);
    StreamFile *r;
    g_autofree uint8_t *back = NULL;
    uint32_t v32;
    uint64_t v64;
    size_t body = expect->len - 12;

    g_assert_true(stream_file_flush(w));
    g_assert_cmpmem(out->data, out->len, expect->data, expect->len);
    g_assert_cmphex(stream_file_checksum(w), ==, XXH3_64bits(expect->data, expect->len));

    r = stream_file_new_memory_input(out->data, out->len);
    back = g_malloc(body);
    g_assert_true(stream_file_read(r, back, body));
    g_assert_cmpmem(back, body, expect->data, body);
    g_assert_true(stream_file_get_u32(r, &v32));
    g_assert_true(stream_file_get_u64(r, &v64));
    g_assert_cmphex(v32, ==, 0x11223344);
    g_assert_cmphex(v64, ==, 0x5566778899aabbccull);
    g_assert_true(stream_file_at_eof(r));
    g_assert_cmphex(stream_file_checksum(r), ==, stream_file_checksum(w));
    g_assert_null(stream_file_error(r));
    stream_file_free(r);
    stream_file_free(w);
}

/* Write through a channel and read the result back through a channel too. */
static void check_channel_roundtrip(const char *out_uri, const char *in_uri,
                                    const char *path, bool uring)
{
    g_autoptr(GError) err = NULL;
    MigrationChannel *ch = channel_open_outgoing(out_uri, &err);
    StreamFile *f;
    g_autoptr(GByteArray) expect = NULL;
    g_autofree char *contents = NULL;
    gsize len;
    uint64_t sum;

    g_assert_no_error(err);
    f = stream_file_new_output(ch);
    stream_file_set_io_uring(f, uring);
    expect = write_all_sizes(f);
    g_assert_true(stream_file_flush(f));
    sum = stream_file_checksum(f);
    stream_file_free(f);
    g_assert_true(channel_close(ch, true, &err));
    g_assert_no_error(err);

    g_assert_true(g_file_get_contents(path, &contents, &len, NULL));
    g_assert_cmpmem(contents, len, expect->data, expect->len);

    ch = channel_open_incoming(in_uri, &err);
    g_assert_no_error(err);
    f = stream_file_new_input(ch);
    {
        g_autofree uint8_t *back = g_malloc(expect->len);
        /* One small read, then one large read that goes around the buffer. */
        g_assert_true(stream_file_read(f, back, 10));
        g_assert_true(stream_file_read(f, back + 10, expect->len - 10));
        g_assert_cmpmem(back, expect->len, expect->data, expect->len);
    }
    g_assert_true(stream_file_at_eof(f));
    g_assert_cmphex(stream_file_checksum(f), ==, sum);
    stream_file_free(f);
    g_assert_true(channel_close(ch, true, &err));
    g_assert_no_error(err);
}

static void test_file_roundtrip(gconstpointer data)
{
    bool uring = GPOINTER_TO_INT(data);
    g_autofree char *dir = g_dir_make_tmp("test-stream-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "image", NULL);
    g_autofree char *uri = g_strdup_printf("file:%s", path);

    check_channel_roundtrip(uri, uri, path, uring);
    g_unlink(path);
    g_rmdir(dir);
}

static void test_exec_roundtrip(void)
{
    g_autofree char *dir = g_dir_make_tmp("test-stream-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "image", NULL);
    g_autofree char *out = g_strdup_printf("exec:cat > '%s'", path);
    g_autofree char *in = g_strdup_printf("exec:cat '%s'", path);

    check_channel_roundtrip(out, in, path, true);
    g_unlink(path);
    g_rmdir(dir);
}

static void test_sticky_error(void)
{
    StreamFile *f = stream_file_new_memory_output();
    GError *first = g_error_new(FROSTVM_ERROR, FROSTVM_ERROR_GENERIC, "first failure");
    GError *second = g_error_new(FROSTVM_ERROR, FROSTVM_ERROR_GENERIC, "second failure");
    g_autoptr(GError) err = NULL;
    uint8_t byte = 1;

    g_assert_true(stream_file_write(f, &byte, 1));
    stream_file_set_error(f, first);
    stream_file_set_error(f, second);
    g_assert_false(stream_file_write(f, &byte, 1));
    g_assert_false(stream_file_flush(f));
    g_assert_cmpstr(stream_file_error(f)->message, ==, "first failure");
    g_assert_false(stream_file_check(f, &err));
    g_assert_error(err, FROSTVM_ERROR, FROSTVM_ERROR_GENERIC);
    g_assert_cmpstr(err->message, ==, "first failure");
    /* Nothing written after the error reached the sink. */
    g_assert_cmpuint(stream_file_memory_output(f)->len, ==, 1);
    stream_file_free(f);
}

static void test_truncated_read(void)
{
    static const uint8_t data[10] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
    StreamFile *f = stream_file_new_memory_input(data, sizeof(data));
    uint8_t buf[16];
    uint64_t v;

    g_assert_true(stream_file_read(f, buf, 4));
    g_assert_false(stream_file_read(f, buf, 16));
    g_assert_nonnull(stream_file_error(f));
    g_assert_nonnull(strstr(stream_file_error(f)->message, "truncated at offset"));
    /* Sticky: even a read that would fit now fails. */
    g_assert_false(stream_file_get_u64(f, &v));
    stream_file_free(f);
}

static void test_skip_checksums(void)
{
    uint8_t data[5000];
    StreamFile *f;

    fill_pattern(data, sizeof(data), 3);
    f = stream_file_new_memory_input(data, sizeof(data));
    g_assert_true(stream_file_skip(f, 4000));
    g_assert_true(stream_file_skip(f, 1000));
    g_assert_false(stream_file_skip(f, 1));
    g_assert_cmphex(stream_file_checksum(f), ==, XXH3_64bits(data, sizeof(data)));
    stream_file_free(f);
}

/* A reader that is gone: the write fails with a message, the process lives. */
static void test_write_error_is_sticky_on_channel(void)
{
    g_autoptr(GError) err = NULL;
    MigrationChannel *ch = channel_open_outgoing("exec:exit 0", &err);
    g_autofree uint8_t *buf = g_malloc0(4 << 20);
    StreamFile *f;

    g_assert_no_error(err);
    f = stream_file_new_output(ch);
    for (int i = 0; i < 8 && !stream_file_error(f); i++) {
        stream_file_write(f, buf, 4 << 20);
    }
    g_assert_nonnull(stream_file_error(f));
    g_assert_nonnull(strstr(stream_file_error(f)->message, "exited early"));
    g_assert_false(stream_file_flush(f));
    stream_file_free(f);
    channel_close(ch, false, NULL);
}

static void test_rate_limit(void)
{
    g_autofree char *dir = g_dir_make_tmp("test-stream-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "image", NULL);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autoptr(GError) err = NULL;
    MigrationChannel *ch = channel_open_outgoing(uri, &err);
    g_autofree uint8_t *buf = g_malloc0(64 * 1024);
    StreamFile *f;
    int64_t start, elapsed;

    g_assert_no_error(err);
    f = stream_file_new_output(ch);
    stream_file_set_io_uring(f, false);
    stream_file_set_rate_limit(f, 4 << 20);
    start = g_get_monotonic_time();
    /* 2 MiB at 4 MiB/s: about half a second; the first 100 ms window is free. */
    for (int i = 0; i < 32; i++) {
        g_assert_true(stream_file_write(f, buf, 64 * 1024));
        g_assert_true(stream_file_flush(f));
    }
    elapsed = g_get_monotonic_time() - start;
    g_assert_cmpint(elapsed, >=, 350000);
    g_assert_cmpint(elapsed, <, 3000000);
    stream_file_free(f);
    g_assert_true(channel_close(ch, false, NULL));
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    g_rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/stream/memory/roundtrip", test_memory_roundtrip);
    g_test_add_data_func("/stream/file/roundtrip-write", GINT_TO_POINTER(0),
                         test_file_roundtrip);
    g_test_add_data_func("/stream/file/roundtrip-io-uring", GINT_TO_POINTER(1),
                         test_file_roundtrip);
    g_test_add_func("/stream/exec/roundtrip", test_exec_roundtrip);
    g_test_add_func("/stream/error/sticky", test_sticky_error);
    g_test_add_func("/stream/error/reader-gone", test_write_error_is_sticky_on_channel);
    g_test_add_func("/stream/read/truncated", test_truncated_read);
    g_test_add_func("/stream/read/skip-checksums", test_skip_checksums);
    g_test_add_func("/stream/write/rate-limit", test_rate_limit);
    return g_test_run();
}
