/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Write access back for shared guest RAM after userfaultfd write-protection. */
#ifndef SYSTEM_SHARED_WRITE_H
#define SYSTEM_SHARED_WRITE_H

#include <stdint.h>

/*
 * Make the pages mapped in [@host, @host + @len) of a shared read-write
 * mapping (shmem) writable again, once the range is no longer registered
 * with userfaultfd. 0, or a negative errno when the kernel refused (the
 * pages then stay as they were: correct, only slower to write; if the
 * refusal came half-way, a warning says which piece stays executable).
 */
int shared_write_restore(uint8_t *host, uint64_t len);

/*
 * While the range is still registered (write tracking keeps it so), the
 * nearest thing: resolve each page's next write fault now, in the kernel
 * (MADV_POPULATE_WRITE), for the pages in memory. Only for pages nobody can
 * write-protect meanwhile: a write-protected page would make this wait for
 * the userfaultfd's reader. 0 or a negative errno.
 */
int shared_write_populate(uint8_t *host, uint64_t len);

#endif
