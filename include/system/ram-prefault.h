/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A second thread that faults guest RAM in ahead of a restore writing into it. */
#ifndef SYSTEM_RAM_PREFAULT_H
#define SYSTEM_RAM_PREFAULT_H

#include <stdbool.h>
#include <stdint.h>

/*
 * A restore fills fresh guest RAM, and every first touch of a fresh page is a
 * page fault that allocates and clears it. On a paravirtual host the host may
 * have to back that memory too (memory freed for a few seconds is given back
 * to it): 0.5-2 ms per MiB on one thread, while two threads fault it in two
 * to four times as fast. So a restore's writer tells this helper where it is
 * writing and how far it expects to go, and the helper populates up to @lead
 * bytes beyond it, 2 MiB at a time (MADV_POPULATE_WRITE), while the writer
 * reads the next pages. Populating never changes what a page holds, so the
 * two threads need no other agreement. Only a hint: a helper that cannot
 * populate stops, and the writer's own faults do the work as before.
 */
typedef struct RamPrefault RamPrefault;

/*
 * How far ahead a restore's helper goes. Reading 1 GiB from a pipe into
 * fresh memory here: 1.0-1.4 s alone, 0.6-0.7 s with an 8 MiB lead,
 * 0.5-0.7 s with 16 MiB, 0.6-1.2 s with 32 MiB (the helper then competes
 * with the pipe's writer for the second CPU for longer).
 */
#define RAM_PREFAULT_LEAD ((uint64_t)16 << 20)

/* Start the helper thread; NULL if it could not be started (nothing to do then). */
RamPrefault *ram_prefault_start(uint64_t lead);

/*
 * The writer is about to write [@addr, @addr + @len) and may go on to
 * @addr + @len + @ahead. The helper works from the 2 MiB region after the one
 * @addr is in (the writer faults that itself), to at most @lead bytes beyond
 * @addr, and forgets where it was when @addr is outside its last window.
 * @pf may be NULL.
 */
void ram_prefault_next(RamPrefault *pf, uint8_t *addr, uint64_t len, uint64_t ahead);

/* Bytes the helper populated so far (whether or not they were present already). */
uint64_t ram_prefault_populated(RamPrefault *pf);

/*
 * Stop and join the helper, after which it touches nothing: call it before the
 * guest runs and before RAM is unmapped. @pf may be NULL.
 */
void ram_prefault_stop(RamPrefault *pf);

#endif
