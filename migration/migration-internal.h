/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Helpers shared by the files of the migration state machine (migration.c, incoming.c, the monitor commands). */
#ifndef MIGRATION_MIGRATION_INTERNAL_H
#define MIGRATION_MIGRATION_INTERNAL_H

#include "migration/migration.h"

/* Smallest background-snapshot-buffer-size other than 0 (the page pool's 16 pages). */
#define MIGRATION_MIN_SNAPSHOT_BUFFER (64u * 1024u)

/* Remember @err (copied) as the last migration's error-desc. */
void migration_record_error(MigrationState *s, const GError *err);

/* Clear the figures and error of the last migration; a new one starts at @uri. */
void migration_reset(MigrationState *s, const char *uri, bool incoming);

/*
 * Can @cap be turned @on given the capability set @caps (which already has
 * @cap at @on)? QEMU's messages.
 */
bool migration_check_capability(MigrationState *s, const bool *caps,
                                MigrationCapability cap, bool on, GError **errp);

/* After capabilities changed: incremental-snapshot off stops epoch tracking. */
void migration_capabilities_changed(MigrationState *s);

/* The query-migrate reply (QMP shape), also what `info migrate` prints. */
JsonNode *migration_query(MigrationState *s);

#endif
