/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Reading guest pages into pool slots through the kernel's mapping of them (process_vm_readv). */
#include "migration/snapshot/snapshot-internal.h"

#include <errno.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util/bitmap.h"

/* Pages per call: each side's iovec count stays under IOV_MAX (1024). */
#define READ_BATCH_PAGES 512

int64_t snapshot_read_pages(const uint8_t *base, const unsigned long *claimed,
                            const unsigned long *skip, uint64_t from, uint64_t n,
                            PagePool *pool, const uint32_t *slots)
{
    struct iovec local[READ_BATCH_PAGES];
    struct iovec remote[READ_BATCH_PAGES];
    uint64_t copied = 0;
    uint64_t i = from;

    while (i < n) {
        unsigned nl = 0;
        unsigned nr = 0;

        for (; i < n && nl < READ_BATCH_PAGES; i++) {
            if (!bitmap_test_bit(claimed, i) || (skip && bitmap_test_bit(skip, i))) {
                continue;
            }
            uint8_t *src = (uint8_t *)base + i * SNAPSHOT_PAGE_SIZE;

            local[nl].iov_base = page_pool_page(pool, slots[copied + nl]);
            local[nl].iov_len = SNAPSHOT_PAGE_SIZE;
            nl++;
            /* Neighbouring pages are one remote range: fewer page-table walks to set up. */
            if (nr && (uint8_t *)remote[nr - 1].iov_base + remote[nr - 1].iov_len == src) {
                remote[nr - 1].iov_len += SNAPSHOT_PAGE_SIZE;
            } else {
                remote[nr].iov_base = src;
                remote[nr].iov_len = SNAPSHOT_PAGE_SIZE;
                nr++;
            }
        }
        if (!nl) {
            break;
        }
        ssize_t got = process_vm_readv(getpid(), local, nl, remote, nr, 0);
        if (got < 0) {
            return -errno;
        }
        if ((size_t)got != (size_t)nl * SNAPSHOT_PAGE_SIZE) {
            /* Only a page that vanished from under us can cut a read short. */
            return -EFAULT;
        }
        copied += nl;
    }
    return (int64_t)copied;
}
