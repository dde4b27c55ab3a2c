/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Checking command arguments and event data against the schema, with QEMU's messages. */
#ifndef QAPI_VALIDATE_H
#define QAPI_VALIDATE_H

#include <stdbool.h>
#include <glib.h>
#include <json-glib/json-glib.h>

#include "qapi/schema.h"

/*
 * Check @args (NULL means {}) against the arguments of @command. Rejects, with
 * QEMU's wording: members the schema does not list ("Parameter 'foo' is
 * unexpected"), missing required ones ("Parameter 'uri' is missing"), wrong
 * JSON types ("Invalid parameter type for 'detach', expected: boolean"),
 * integers out of range ("Parameter 'max-bandwidth' expects uint64" beyond
 * -2^63..2^64-1 for uint64 and size; "Invalid parameter type for 'x',
 * expected: integer" beyond int64 for int) and enum
 * values not declared ("Parameter 'capability' does not accept value 'zz'").
 * Nested members are named by path: 'capabilities[0].state'.
 * An unknown @command is an error too.
 */
bool qapi_check_arguments(QapiSchema *s, const char *command, JsonObject *args,
                          GError **errp);

/*
 * The same for arguments from a QMP request: @wide_ints (may be NULL) is the
 * parser's set of int64 nodes that hold an integer above INT64_MAX as its
 * uint64 bits (JsonNode has no uint64), so an "int" argument refuses them and
 * a "number" argument reads them positive.
 */
bool qapi_check_arguments_wide(QapiSchema *s, const char *command, JsonObject *args,
                               GHashTable *wide_ints, GError **errp);

/* Check an event's @data (NULL means {}) the same way. */
bool qapi_check_event(QapiSchema *s, const char *event, JsonObject *data,
                      GError **errp);

/*
 * Check one value against a TYPE expression; @path names it in messages.
 * The building block of the two functions above, public for tests.
 */
bool qapi_check_value(QapiSchema *s, JsonNode *type, JsonNode *value,
                      const char *path, GError **errp);

#endif
