/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A hint inside a spin-wait loop that this thread only waits. */
#ifndef UTIL_CPU_RELAX_H
#define UTIL_CPU_RELAX_H

/*
 * x86's pause: the spinning thread yields execution resources to its
 * sibling hyperthread and leaves the loop without a memory-order flush.
 * Elsewhere only a compiler barrier, so the loop still re-reads memory.
 */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

#endif
