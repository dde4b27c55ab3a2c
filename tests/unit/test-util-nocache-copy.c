/* SPDX-License-Identifier: GPL-2.0-or-later */
/* nocache_copy(): the same bytes as memcpy, aligned or not, whole pages or not. */
#include "util/nocache-copy.h"

#include <stdint.h>
#include <string.h>

#include <glib.h>

#define LEN (3 * 4096 + 64)

static void check_copy(size_t dst_off, size_t src_off, size_t len)
{
    g_autofree uint8_t *src = g_malloc(LEN + 64);
    uint8_t *dst = g_aligned_alloc(1, LEN + 64, 64);
    GRand *rand = g_rand_new_with_seed((guint32)(dst_off * 131 + src_off * 7 + len));

    for (size_t i = 0; i < LEN + 64; i++) {
        src[i] = (uint8_t)g_rand_int(rand);
    }
    memset(dst, 0xee, LEN + 64);
    nocache_copy(dst + dst_off, src + src_off, len);
    nocache_copy_publish();
    g_assert_cmpmem(dst + dst_off, len, src + src_off, len);
    /* Nothing written outside [dst_off, dst_off + len). */
    for (size_t i = 0; i < dst_off; i++) {
        g_assert_cmpuint(dst[i], ==, 0xee);
    }
    for (size_t i = dst_off + len; i < LEN + 64; i++) {
        g_assert_cmpuint(dst[i], ==, 0xee);
    }
    g_rand_free(rand);
    g_aligned_free(dst);
}

static void test_pages(void)
{
    check_copy(0, 0, 4096);
    check_copy(0, 0, 3 * 4096);
}

static void test_unaligned_source(void)
{
    check_copy(0, 1, 4096);
    check_copy(16, 7, 2 * 4096);
}

/* A destination the streaming stores cannot take goes through memcpy. */
static void test_unaligned_destination(void)
{
    check_copy(1, 0, 4096);
    check_copy(9, 3, 100);
}

static void test_tails(void)
{
    check_copy(0, 0, 0);
    check_copy(0, 0, 63);
    check_copy(32, 0, 64 + 17);
    check_copy(0, 5, LEN);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/util/nocache-copy/pages", test_pages);
    g_test_add_func("/util/nocache-copy/unaligned-source", test_unaligned_source);
    g_test_add_func("/util/nocache-copy/unaligned-destination", test_unaligned_destination);
    g_test_add_func("/util/nocache-copy/tails", test_tails);
    return g_test_run();
}
