/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests of the schema loader: the embedded files, lookups, and refusing malformed schema text. */
#include "qapi/schema.h"

#include <string.h>

static void test_builtin_files(void)
{
    g_auto(GStrv) files = qapi_schema_builtin_files();

    g_assert_true(g_strv_contains((const char *const *)files, "control.json"));
    g_assert_true(g_strv_contains((const char *const *)files, "run-state.json"));
    g_assert_true(g_strv_contains((const char *const *)files, "migration.json"));
    for (char **f = files; *f; f++) {
        const char *text = qapi_schema_builtin_text(*f);

        g_assert_nonnull(text);
        g_assert_cmpint(text[0], ==, '{');
    }
    g_assert_null(qapi_schema_builtin_text("no-such.json"));
}

/* Every command and event DESIGN.md promises is in the schema, documented. */
static void test_builtin_complete(void)
{
    static const char *const commands[] = {
        "qmp_capabilities", "query-status", "stop", "cont", "quit", "query-version",
        "query-commands", "migrate-set-capabilities", "query-migrate-capabilities",
        "migrate-set-parameters", "query-migrate-parameters", "migrate",
        "migrate-incoming", "migrate_cancel", "query-migrate", "human-monitor-command",
    };
    static const char *const events[] = { "STOP", "RESUME", "SHUTDOWN", "MIGRATION" };
    g_autoptr(GError) err = NULL;
    g_autoptr(QapiSchema) s = qapi_schema_load_builtin(&err);
    GPtrArray *all;

    g_assert_no_error(err);
    for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
        const QapiCommand *cmd = qapi_schema_find_command(s, commands[i]);

        g_assert_nonnull(cmd);
        g_assert_nonnull(cmd->doc);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(events); i++) {
        g_assert_nonnull(qapi_schema_find_event(s, events[i]));
    }
    all = qapi_schema_commands(s);
    for (guint i = 0; i < all->len; i++) {
        const QapiCommand *cmd = g_ptr_array_index(all, i);

        g_assert_nonnull(cmd->doc);
        g_assert_nonnull(cmd->area);
    }
    g_assert_cmpstr(qapi_schema_find_command(s, "query-status")->hmp, ==, "info status");
    g_assert_cmpstr(qapi_schema_find_command(s, "migrate")->area, ==, "migration");
    g_assert_null(qapi_schema_find_command(s, "no-such-command"));
}

static void test_members_and_types(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(QapiSchema) s = qapi_schema_load_builtin(&err);
    const QapiCommand *migrate = qapi_schema_find_command(s, "migrate");
    const QapiCommand *caps = qapi_schema_find_command(s, "migrate-set-capabilities");
    const QapiMember *uri, *detach, *list;
    const QapiType *declared;
    g_autofree char *text = NULL;
    QapiKind kind;

    g_assert_no_error(err);
    uri = g_ptr_array_index(migrate->arguments, 0);
    detach = g_ptr_array_index(migrate->arguments, 1);
    g_assert_cmpstr(uri->name, ==, "uri");
    g_assert_false(uri->optional);
    g_assert_cmpstr(detach->name, ==, "detach");
    g_assert_true(detach->optional);
    g_assert_true(qapi_schema_resolve(s, detach->type, &kind, &declared));
    g_assert_cmpint(kind, ==, QAPI_KIND_BOOL);
    g_assert_null(declared);

    list = g_ptr_array_index(caps->arguments, 0);
    text = qapi_type_to_string(list->type);
    g_assert_cmpstr(text, ==, "[MigrationCapabilityStatus]");
    g_assert_true(qapi_schema_resolve(s, list->type, &kind, &declared));
    g_assert_cmpint(kind, ==, QAPI_KIND_ARRAY);
    declared = qapi_schema_find_type(s, "MigrationCapability");
    g_assert_nonnull(declared);
    g_assert_cmpint(declared->kind, ==, QAPI_KIND_ENUM);
    g_assert_true(g_strv_contains((const char *const *)declared->values,
                                  "background-snapshot"));
}

typedef struct BadSchema {
    const char *what;
    const char *json;
    const char *second;      /* a second file, for cross-file cases */
    const char *message;     /* a substring of the error */
} BadSchema;

static const BadSchema bad_schemas[] = {
    { "not JSON", "{", NULL, "a.json:" },
    { "not an object", "[]", NULL, "must hold one JSON object" },
    { "unknown top-level key", "{\"command\": []}", NULL, "unknown key 'command'" },
    { "commands not an array", "{\"commands\": {}}", NULL, "'commands' must be an array" },
    { "command without name", "{\"commands\": [{\"doc\": \"x\"}]}", NULL,
      "commands[0] lacks a string 'name'" },
    { "unknown command key", "{\"commands\": [{\"name\": \"c\", \"args\": {}}]}", NULL,
      "command 'c': unknown key 'args'" },
    { "malformed type", "{\"commands\": [{\"name\": \"c\", \"arguments\": {\"a\": 5}}]}",
      NULL, "member 'a' has a malformed type" },
    { "two-element array type",
      "{\"commands\": [{\"name\": \"c\", \"arguments\": {\"a\": [\"str\", \"int\"]}}]}",
      NULL, "member 'a' has a malformed type" },
    { "member object without type",
      "{\"commands\": [{\"name\": \"c\", \"arguments\": {\"a\": {\"doc\": \"x\"}}}]}",
      NULL, "member 'a' lacks 'type'" },
    { "unknown type", "{\"commands\": [{\"name\": \"c\", \"arguments\": {\"a\": \"Nope\"}}]}",
      NULL, "unknown type 'Nope'" },
    { "unknown element type",
      "{\"events\": [{\"name\": \"E\", \"data\": {\"a\": [\"Nope\"]}}]}", NULL,
      "unknown type 'Nope'" },
    { "struct and enum at once",
      "{\"types\": [{\"name\": \"T\", \"members\": {}, \"enum\": []}]}", NULL,
      "exactly one of 'members' and 'enum'" },
    { "enum of non-strings", "{\"types\": [{\"name\": \"T\", \"enum\": [1]}]}", NULL,
      "array of strings" },
    { "built-in name", "{\"types\": [{\"name\": \"str\", \"enum\": []}]}", NULL,
      "'str' is a built-in type name" },
    { "defined twice in one file",
      "{\"commands\": [{\"name\": \"c\"}, {\"name\": \"c\"}]}", NULL,
      "the name 'c' is defined twice" },
    { "defined twice across files", "{\"commands\": [{\"name\": \"c\"}]}",
      "{\"events\": [{\"name\": \"c\"}]}", "the name 'c' is defined twice" },
    { "doc not a string", "{\"commands\": [{\"name\": \"c\", \"doc\": 1}]}", NULL,
      "'doc' must be a string" },
};

static void test_bad_schema(gconstpointer data)
{
    const BadSchema *t = data;
    g_autoptr(QapiSchema) s = qapi_schema_new();
    g_autoptr(GError) err = NULL;
    bool ok = qapi_schema_add_json(s, "a", t->json, -1, &err);

    if (ok && t->second) {
        ok = qapi_schema_add_json(s, "b", t->second, -1, &err);
    }
    if (ok) {
        ok = qapi_schema_check(s, &err);
    }
    g_assert_false(ok);
    g_assert_nonnull(err);
    if (!strstr(err->message, t->message)) {
        g_error("%s: got '%s', expected it to contain '%s'", t->what, err->message,
                t->message);
    }
}

/* Types may be used before the file that declares them is loaded. */
static void test_cross_file_reference(void)
{
    g_autoptr(QapiSchema) s = qapi_schema_new();
    g_autoptr(GError) err = NULL;

    g_assert_true(qapi_schema_add_json(s, "a",
        "{\"commands\": [{\"name\": \"c\", \"arguments\": {\"x\": \"T\"}}]}", -1, &err));
    g_assert_true(qapi_schema_add_json(s, "b",
        "{\"types\": [{\"name\": \"T\", \"members\": {\"*y\": \"int\"}}]}", -1, &err));
    g_assert_true(qapi_schema_check(s, &err));
    g_assert_no_error(err);
    g_assert_cmpstr(qapi_schema_find_command(s, "c")->area, ==, "a");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qapi/schema/builtin/files", test_builtin_files);
    g_test_add_func("/qapi/schema/builtin/complete", test_builtin_complete);
    g_test_add_func("/qapi/schema/builtin/members-and-types", test_members_and_types);
    g_test_add_func("/qapi/schema/cross-file-reference", test_cross_file_reference);
    for (size_t i = 0; i < G_N_ELEMENTS(bad_schemas); i++) {
        g_autofree char *path = g_strdup_printf("/qapi/schema/refuses/%s",
                                                bad_schemas[i].what);

        for (char *p = path + strlen("/qapi/schema/refuses/"); *p; p++) {
            if (*p == ' ') {
                *p = '-';
            }
        }
        g_test_add_data_func(path, &bad_schemas[i], test_bad_schema);
    }
    return g_test_run();
}
