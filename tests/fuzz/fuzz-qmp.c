/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The QMP input path's fuzz target (framing, strict parser, request and argument checks, reply text), and its seeds. */
#include "fuzz-qmp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/monitor-internal.h"

/* Every command of the schema, doing nothing once its arguments passed the checks. */
static JsonNode *fuzz_noop(Machine *m, JsonObject *args, GError **errp)
{
    return NULL;
}

/*
 * A monitor without a machine whose every command is the no-op above: the
 * whole input path runs, nothing acts (no stop, no migrate exec:).
 */
static Monitor *fuzz_monitor(void)
{
    static Monitor *mon;
    static QmpCommand *table;

    if (!mon) {
        GPtrArray *commands;

        mon = monitor_new(NULL);
        commands = qapi_schema_commands(mon->schema);
        table = g_new0(QmpCommand, commands->len + 1);
        g_hash_table_remove_all(mon->qmp_commands);
        for (guint i = 0; i < commands->len; i++) {
            const QapiCommand *cmd = g_ptr_array_index(commands, i);

            table[i].name = cmd->name;
            table[i].handler = fuzz_noop;
            g_hash_table_insert(mon->qmp_commands, (gpointer)cmd->name, &table[i]);
        }
    }
    return mon;
}

typedef struct FuzzSession {
    Monitor *mon;
    bool negotiated;
} FuzzSession;

/* Whatever came in, what goes out is one line of JSON our own parser accepts. */
static void check_reply(const char *line)
{
    g_autoptr(GError) err = NULL;
    QmpJsonText t;
    JsonObject *obj;

    if (strchr(line, '\n') || strchr(line, '\r')) {
        fprintf(stderr, "reply spans lines: %s\n", line);
        abort();
    }
    if (!qmp_json_parse_text(line, strlen(line), &t, &err)) {
        fprintf(stderr, "reply is not JSON (%s): %s\n", err->message, line);
        abort();
    }
    obj = JSON_NODE_HOLDS_OBJECT(t.root) ? json_node_get_object(t.root) : NULL;
    if (!obj || json_object_has_member(obj, "return") ==
                json_object_has_member(obj, "error")) {
        fprintf(stderr, "reply has neither or both of return and error: %s\n", line);
        abort();
    }
    qmp_json_text_clear(&t);
}

static void fuzz_text(void *opaque, const char *text, gsize len, const char *error)
{
    FuzzSession *s = opaque;
    g_autofree char *line = NULL;

    if (error) {
        g_autoptr(GError) err = g_error_new_literal(g_quark_from_static_string("fuzz"), 0,
                                                    error);
        g_autoptr(JsonObject) reply = qmp_error_reply(err);

        line = qmp_json_object_to_string(reply);
    } else {
        line = qmp_dispatch_to_string(s->mon, &s->negotiated, text, len);
    }
    check_reply(line);
}

/*
 * The first byte: bit 0 starts negotiated (or not), bits 1-7 choose the size
 * of the pieces the rest arrives in, so framing across reads is exercised.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FuzzSession s = { .mon = fuzz_monitor() };
    QmpFramer *framer;
    gsize piece;

    if (size == 0) {
        return 0;
    }
    s.negotiated = data[0] & 1;
    piece = (data[0] >> 1) + 1;
    framer = qmp_framer_new(64 * 1024);
    for (gsize off = 1; off < size; off += piece) {
        qmp_framer_feed(framer, (const char *)data + off, MIN(piece, size - off), fuzz_text,
                        &s);
    }
    qmp_framer_free(framer);
    return 0;
}

static const char *const seeds[] = {
    "{\"execute\": \"qmp_capabilities\"}\n{\"execute\": \"query-status\", \"id\": 1}\n",
    "{\"execute\": \"migrate-set-parameters\", \"arguments\": {\"max-bandwidth\": "
    "18446744073709551615, \"downtime-limit\": -1}, \"id\": 18446744073709551616}\n",
    "{\"execute\": \"migrate-set-capabilities\", \"arguments\": {\"capabilities\": "
    "[{\"capability\": \"background-snapshot\", \"state\": true}]}, \"id\": \"a\\u0000b\"}\n",
    "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"file:/nonexistent/x\", "
    "\"detach\": true}, \"id\": {\"k\": [1e400, -0, 0.5e-3, null, true]}}\n",
    "{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": "
    "\"info status\", \"cpu-index\": 9223372036854775808}}\n",
    "{\"execute\": \"query-status\", \"id\": 010}\n[0x10, .5, 1.]\n{\"a\": 1, \"a\": 2}\n",
    "\"\\ud83d\\ude00\\uD800\" 'x' \xff\xc0\x80 {\"execute\":\n\"query-migrate\"\n}\n",
    "[[[[[[[[[[[[[[[[{\"execute\": \"query-commands\"}]]]]]]]]]]]]]]]] }}} ]]]\n",
};

int fuzz_qmp_write_seeds(const char *dir)
{
    int written = 0;

    for (guint i = 0; i < G_N_ELEMENTS(seeds); i++) {
        g_autofree char *path = g_strdup_printf("%s/seed-%u", dir, i);
        /* A first byte per seed: negotiated or not, several piece sizes. */
        g_autofree char *data = g_strdup_printf("%c%s", (char)(i * 37 + 1), seeds[i]);

        if (g_file_set_contents(path, data, -1, NULL)) {
            written++;
        }
    }
    return written;
}
