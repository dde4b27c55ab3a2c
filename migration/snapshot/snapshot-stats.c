/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The background snapshot's figures as query-migrate members and info migrate lines. */
#include "migration/background-snapshot.h"

static void put_u64(JsonBuilder *b, const char *name, uint64_t v)
{
    json_builder_set_member_name(b, name);
    json_builder_add_int_value(b, (gint64)v);
}

void background_snapshot_stats_to_json(const BackgroundSnapshotStats *st, JsonBuilder *b)
{
    json_builder_set_member_name(b, "background-snapshot");
    json_builder_begin_object(b);
    put_u64(b, "write-faults", st->write_faults);
    put_u64(b, "pages-out-of-order", st->pages_out_of_order);
    put_u64(b, "pages-saved-ahead", st->pages_saved_ahead);
    put_u64(b, "pages-saved-in-pause", st->pages_saved_in_pause);
    put_u64(b, "fault-service-p50-us", st->fault_us_p50);
    put_u64(b, "fault-service-p99-us", st->fault_us_p99);
    put_u64(b, "fault-service-p999-us", st->fault_us_p999);
    put_u64(b, "fault-service-max-us", st->fault_us_max);
    put_u64(b, "buffer-pool-size", st->pool_size);
    put_u64(b, "buffer-pool-high-water", st->pool_high_water);
    put_u64(b, "buffer-pool-populated", st->pool_populated);
    put_u64(b, "buffer-pool-reused", st->pool_reused);
    put_u64(b, "buffer-pool-waits", st->pool_waits);
    put_u64(b, "buffer-pool-wait-us", st->pool_wait_us);
    put_u64(b, "paced-faults", st->paced_faults);
    put_u64(b, "paced-wait-us", st->paced_us);
    put_u64(b, "pages-unpopulated", st->pages_unpopulated);
    put_u64(b, "huge-pages", st->huge_pages);
    put_u64(b, "huge-page-faults", st->huge_page_faults);
    put_u64(b, "huge-pages-split", st->huge_pages_split);
    put_u64(b, "huge-pages-restored", st->huge_pages_restored);
    put_u64(b, "downtime-us", st->downtime_us);
    put_u64(b, "write-protect-setup-us", st->wp_setup_us);
    json_builder_set_member_name(b, "incremental");
    json_builder_add_boolean_value(b, st->incremental);
    put_u64(b, "pages-unchanged", st->pages_unchanged);
    json_builder_end_object(b);
}

void background_snapshot_stats_to_hmp(const BackgroundSnapshotStats *st, GString *out)
{
    g_string_append_printf(out, "write faults: %" G_GUINT64_FORMAT "\n", st->write_faults);
    g_string_append_printf(out, "pages saved out of order: %" G_GUINT64_FORMAT "\n",
                           st->pages_out_of_order);
    g_string_append_printf(out, "pages saved ahead of faults: %" G_GUINT64_FORMAT "\n",
                           st->pages_saved_ahead);
    g_string_append_printf(out, "pages saved in the pause: %" G_GUINT64_FORMAT "\n",
                           st->pages_saved_in_pause);
    g_string_append_printf(out, "fault service (us): p50 %" G_GUINT64_FORMAT
                           " p99 %" G_GUINT64_FORMAT " p99.9 %" G_GUINT64_FORMAT
                           " max %" G_GUINT64_FORMAT "\n",
                           st->fault_us_p50, st->fault_us_p99, st->fault_us_p999,
                           st->fault_us_max);
    g_string_append_printf(out, "buffer pool: %" G_GUINT64_FORMAT " kbytes (%" G_GUINT64_FORMAT
                           " populated before the pause, %" G_GUINT64_FORMAT
                           " kept from the last snapshot), high water %" G_GUINT64_FORMAT
                           " kbytes, waits %" G_GUINT64_FORMAT " (%" G_GUINT64_FORMAT " us)\n",
                           st->pool_size >> 10, st->pool_populated >> 10, st->pool_reused >> 10,
                           st->pool_high_water >> 10, st->pool_waits, st->pool_wait_us);
    g_string_append_printf(out, "faults paced to the sink: %" G_GUINT64_FORMAT " (%"
                           G_GUINT64_FORMAT " us)\n", st->paced_faults, st->paced_us);
    g_string_append_printf(out, "pages unpopulated: %" G_GUINT64_FORMAT "\n",
                           st->pages_unpopulated);
    g_string_append_printf(out, "huge pages: %" G_GUINT64_FORMAT ", faults served whole %"
                           G_GUINT64_FORMAT ", split %" G_GUINT64_FORMAT ", restored %"
                           G_GUINT64_FORMAT "\n", st->huge_pages, st->huge_page_faults,
                           st->huge_pages_split, st->huge_pages_restored);
    g_string_append_printf(out, "snapshot downtime: %" G_GUINT64_FORMAT " us\n",
                           st->downtime_us);
    g_string_append_printf(out, "write-protect setup: %" G_GUINT64_FORMAT " us\n",
                           st->wp_setup_us);
    if (st->incremental) {
        g_string_append_printf(out, "incremental: %" G_GUINT64_FORMAT " pages unchanged "
                               "since the base\n", st->pages_unchanged);
    }
}
