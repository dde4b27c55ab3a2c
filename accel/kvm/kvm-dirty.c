/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Dirty page logging for precopy: KVM's per-slot bitmaps folded into RAM block bitmaps. */
#define G_LOG_DOMAIN "frostvm-kvm"
#include "kvm-internal.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "util/error.h"

#define BITS_PER_LONG (8 * sizeof(unsigned long))

static uint64_t slot_pages(Machine *m, unsigned slot)
{
    return m->ram_ranges[slot].size / MACHINE_PAGE_SIZE;
}

static size_t slot_bitmap_longs(Machine *m, unsigned slot)
{
    return (slot_pages(m, slot) + BITS_PER_LONG - 1) / BITS_PER_LONG;
}

bool kvm_dirty_log_start(Machine *m, GError **errp)
{
    KvmState *s = kvm_state(m);

    if (s->dirty_logging) {
        return true;
    }
    for (unsigned i = 0; i < m->nr_ram_ranges; i++) {
        if (!s->slot_bitmaps[i]) {
            s->slot_bitmaps[i] = g_new0(unsigned long, slot_bitmap_longs(m, i));
        }
        if (!kvm_vm_set_slot(s, i, KVM_MEM_LOG_DIRTY_PAGES, errp)) {
            error_prefix(errp, "cannot start dirty logging: ");
            for (unsigned j = 0; j < i; j++) {
                kvm_vm_set_slot(s, j, 0, NULL);
            }
            return false;
        }
    }
    s->dirty_logging = true;
    return true;
}

/* OR @npages bits of @src into @dst starting at bit @first. */
static void bitmap_or_at(unsigned long *dst, uint64_t first, const unsigned long *src,
                         uint64_t npages)
{
    if (first % BITS_PER_LONG == 0) {
        unsigned long *d = dst + first / BITS_PER_LONG;
        uint64_t full = npages / BITS_PER_LONG;
        uint64_t rest = npages % BITS_PER_LONG;

        for (uint64_t i = 0; i < full; i++) {
            d[i] |= src[i];
        }
        if (rest) {
            d[full] |= src[full] & ((1UL << rest) - 1);
        }
        return;
    }
    for (uint64_t i = 0; i < npages; i++) {
        if (src[i / BITS_PER_LONG] & (1UL << (i % BITS_PER_LONG))) {
            uint64_t bit = first + i;
            dst[bit / BITS_PER_LONG] |= 1UL << (bit % BITS_PER_LONG);
        }
    }
}

static bool bitmap_empty(const unsigned long *map, size_t longs)
{
    for (size_t i = 0; i < longs; i++) {
        if (map[i]) {
            return false;
        }
    }
    return true;
}

static bool kvm_dirty_log_sync_slot(KvmState *s, unsigned slot, unsigned long *bitmap,
                                    GError **errp)
{
    Machine *m = s->m;
    unsigned long *scratch = s->slot_bitmaps[slot];
    size_t longs = slot_bitmap_longs(m, slot);
    struct kvm_dirty_log log = { .slot = slot, .dirty_bitmap = scratch };

    memset(scratch, 0, longs * sizeof(unsigned long));
    if (ioctl(s->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0) {
        error_setg_errno(errp, errno, "KVM_GET_DIRTY_LOG on slot %u", slot);
        return false;
    }
    if (bitmap_empty(scratch, longs)) {
        return true;
    }
    /*
     * Re-protect exactly the pages we are about to report: a write that lands
     * after this point sets the bit again and shows up at the next sync.
     */
    if (s->has_manual_dirty_protect) {
        struct kvm_clear_dirty_log clear = {
            .slot = slot,
            .num_pages = slot_pages(m, slot),
            .first_page = 0,
            .dirty_bitmap = scratch,
        };
        if (ioctl(s->vm_fd, KVM_CLEAR_DIRTY_LOG, &clear) < 0) {
            error_setg_errno(errp, errno, "KVM_CLEAR_DIRTY_LOG on slot %u", slot);
            return false;
        }
    }
    bitmap_or_at(bitmap, m->ram_ranges[slot].offset / MACHINE_PAGE_SIZE, scratch,
                 slot_pages(m, slot));
    return true;
}

bool kvm_dirty_log_sync(Machine *m, RamBlock *block, unsigned long *bitmap,
                        GError **errp)
{
    KvmState *s = kvm_state(m);

    if (!s->dirty_logging) {
        error_setg(errp, "cannot sync the dirty log of RAM block '%s': dirty "
                   "logging is not started", block->name);
        return false;
    }
    for (unsigned i = 0; i < m->nr_ram_ranges; i++) {
        if (m->ram_ranges[i].block == block &&
            !kvm_dirty_log_sync_slot(s, i, bitmap, errp)) {
            return false;
        }
    }
    return true;
}

void kvm_dirty_log_stop(Machine *m)
{
    KvmState *s = kvm_state(m);
    g_autoptr(GError) err = NULL;

    if (!s->dirty_logging) {
        return;
    }
    for (unsigned i = 0; i < m->nr_ram_ranges; i++) {
        if (!kvm_vm_set_slot(s, i, 0, &err)) {
            g_warning("stopping dirty logging: %s", err->message);
            g_clear_error(&err);
        }
    }
    s->dirty_logging = false;
}
