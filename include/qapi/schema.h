/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The command and event schema (the qapi/ JSON files): loading, lookup, introspection. */
#ifndef QAPI_SCHEMA_H
#define QAPI_SCHEMA_H

#include <stdbool.h>
#include <glib.h>
#include <json-glib/json-glib.h>

/*
 * A schema file is one JSON object:
 *
 *   { "doc": "what the area covers",
 *     "types":    [ { "name": "T", "doc": "...", "members": { MEMBERS } },
 *                   { "name": "E", "doc": "...", "enum": [ "a", "b" ] } ],
 *     "commands": [ { "name": "cmd", "doc": "...", "arguments": { MEMBERS },
 *                     "returns": TYPE, "hmp": "hmp-name", "example": [ LINES ] } ],
 *     "events":   [ { "name": "EVENT", "doc": "...", "data": { MEMBERS } } ] }
 *
 * MEMBERS maps a member name (with a leading '*' when optional) to a TYPE, or to
 * { "type": TYPE, "doc": "..." } when the member deserves a sentence.
 * TYPE is a built-in ("str", "int", "uint64", "size", "bool", "number", "any"),
 * the name of a type declared in any schema file, or [ TYPE ] for an array.
 */

typedef struct QapiSchema QapiSchema;

/* What a type expression resolves to. */
typedef enum {
    QAPI_KIND_STR,
    QAPI_KIND_INT,       /* any JSON integer (int64) */
    QAPI_KIND_UINT64,    /* JSON integer read as uint64 ("uint64", "size") */
    QAPI_KIND_UINT8,     /* JSON integer read as uint64, then at most 255 ("uint8") */
    QAPI_KIND_BOOL,
    QAPI_KIND_NUMBER,    /* integer or floating point */
    QAPI_KIND_ANY,
    QAPI_KIND_ARRAY,
    QAPI_KIND_STRUCT,    /* a declared type with "members" */
    QAPI_KIND_ENUM,      /* a declared type with "enum" */
} QapiKind;

/* One member of an argument list, event data or struct. */
typedef struct QapiMember {
    char *name;          /* without the '*' */
    bool optional;
    JsonNode *type;      /* the TYPE expression, as written */
    char *doc;           /* NULL when the schema gives none */
} QapiMember;

/* A declared struct or enum type. */
typedef struct QapiType {
    char *name;
    char *doc;
    QapiKind kind;       /* QAPI_KIND_STRUCT or QAPI_KIND_ENUM */
    GPtrArray *members;  /* QapiMember *, struct only */
    GStrv values;        /* enum only */
} QapiType;

typedef struct QapiCommand {
    char *name;
    char *doc;
    char *area;          /* the schema file's name without ".json" */
    GPtrArray *arguments;    /* QapiMember *, in schema order */
    JsonNode *returns;   /* TYPE expression or NULL (returns {}) */
    char *hmp;           /* HMP counterpart ("info status") or NULL */
    GStrv example;       /* "-> {...}" / "<- {...}" lines, or NULL */
} QapiCommand;

typedef struct QapiEvent {
    char *name;
    char *doc;
    char *area;
    GPtrArray *data;     /* QapiMember * */
} QapiEvent;

/* An empty schema. */
QapiSchema *qapi_schema_new(void);

/*
 * Add one schema file's text; @area names it in errors and docs ("migration").
 * Names must be unique across files. Type references are checked later, by
 * qapi_schema_check(), so files may refer to each other in any order.
 */
bool qapi_schema_add_json(QapiSchema *s, const char *area, const char *json,
                          gssize len, GError **errp);

/*
 * Check that every type expression names a built-in or declared type. Call
 * after the last qapi_schema_add_json().
 */
bool qapi_schema_check(QapiSchema *s, GError **errp);

/*
 * The schema compiled into the program (every qapi/ JSON file, embedded at build
 * time), loaded and checked. Fails only if the build embedded a broken file.
 */
QapiSchema *qapi_schema_load_builtin(GError **errp);

/*
 * The embedded schema files' names ("control.json", ...), sorted; free with
 * g_strfreev(). qapi_schema_builtin_text() returns one file's text (static).
 */
GStrv qapi_schema_builtin_files(void);
const char *qapi_schema_builtin_text(const char *file);

void qapi_schema_free(QapiSchema *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QapiSchema, qapi_schema_free)

/* Lookups; NULL when absent. The schema owns what they return. */
const QapiCommand *qapi_schema_find_command(QapiSchema *s, const char *name);
const QapiEvent *qapi_schema_find_event(QapiSchema *s, const char *name);
const QapiType *qapi_schema_find_type(QapiSchema *s, const char *name);

/* Every command / event / declared type in load order (the schema owns the array). */
GPtrArray *qapi_schema_commands(QapiSchema *s);
GPtrArray *qapi_schema_types(QapiSchema *s);
GPtrArray *qapi_schema_events(QapiSchema *s);

/*
 * Resolve a TYPE expression: its kind and, for declared types, the type (NULL
 * for built-ins and arrays). Returns false for an unknown name.
 */
bool qapi_schema_resolve(QapiSchema *s, JsonNode *type, QapiKind *kind,
                         const QapiType **declared);

/* A TYPE expression as text for docs and help: "str", "[MigrationCapabilityStatus]". */
char *qapi_type_to_string(JsonNode *type);

#endif
