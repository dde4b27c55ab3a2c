/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The last snapshot's buffer pool, kept for a while so that the next one finds it populated. */
#include "migration/page-pool.h"

/*
 * Populating the pool is much of a short snapshot's CPU on hosts that take
 * free memory back (a first touch is then the host's fault too): 30-326 ms
 * for 128 MiB with KVM here, against 70-140 ms for the whole snapshot of
 * the same 128 MiB otherwise. One pool per process: one snapshot runs at a time.
 */
static GMutex keep_lock;
static PagePool *kept;
static guint kept_generation;   /* which keep a release timer belongs to */

PagePool *page_pool_obtain(uint64_t bytes, uint64_t reserve_bytes, uint64_t prefault_bytes,
                           GError **errp)
{
    g_mutex_lock(&keep_lock);
    PagePool *p = kept;
    kept = NULL;
    kept_generation++;          /* the pending timer, if any, finds nothing of its own */
    g_mutex_unlock(&keep_lock);

    if (p && page_pool_fits(p, bytes)) {
        page_pool_reuse(p, reserve_bytes, prefault_bytes);
        return p;
    }
    page_pool_free(p);
    return page_pool_new(bytes, reserve_bytes, prefault_bytes, errp);
}

static gboolean release_kept(gpointer data)
{
    PagePool *p = NULL;

    g_mutex_lock(&keep_lock);
    if (kept && kept_generation == GPOINTER_TO_UINT(data)) {
        p = kept;
        kept = NULL;
    }
    g_mutex_unlock(&keep_lock);
    page_pool_free(p);
    return G_SOURCE_REMOVE;
}

void page_pool_keep(PagePool *p, uint64_t keep_ms, GMainContext *context)
{
    if (!p) {
        return;
    }
    if (!keep_ms || !context) {
        page_pool_free(p);
        return;
    }
    page_pool_idle(p);
    g_mutex_lock(&keep_lock);
    PagePool *old = kept;
    kept = p;
    guint generation = ++kept_generation;
    g_mutex_unlock(&keep_lock);
    page_pool_free(old);

    GSource *timer = g_timeout_source_new(MIN(keep_ms, (uint64_t)G_MAXUINT));
    g_source_set_callback(timer, release_kept, GUINT_TO_POINTER(generation), NULL);
    g_source_attach(timer, context);
    g_source_unref(timer);
}

uint64_t page_pool_kept_bytes(void)
{
    g_mutex_lock(&keep_lock);
    uint64_t bytes = kept ? page_pool_bytes(kept) : 0;
    g_mutex_unlock(&keep_lock);
    return bytes;
}

void page_pool_drop_kept(void)
{
    g_mutex_lock(&keep_lock);
    PagePool *p = kept;
    kept = NULL;
    kept_generation++;
    g_mutex_unlock(&keep_lock);
    page_pool_free(p);
}
