/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The human monitor: sessions with banner and prompt, line dispatch, help and info. */
#include "monitor/monitor-internal.h"

#include <string.h>

#include "config-host.h"
#include "system/machine.h"
#include "util/error.h"

#define HMP_PROMPT "(frostvm) "
#define HMP_BANNER "frostvm " FROSTVM_VERSION " monitor - type 'help' for more information\n"

/* The help text, or the schema's doc of the QMP command naming it its HMP twin. */
static const char *hmp_help_text(Monitor *mon, const HmpCommand *cmd)
{
    GPtrArray *commands;

    if (cmd->help) {
        return cmd->help;
    }
    commands = qapi_schema_commands(mon->schema);
    for (guint i = 0; i < commands->len; i++) {
        const QapiCommand *qcmd = g_ptr_array_index(commands, i);

        if (qcmd->hmp && !strcmp(qcmd->hmp, cmd->name) && qcmd->doc) {
            return qcmd->doc;
        }
    }
    return "";
}

static void hmp_print_help_line(Monitor *mon, const HmpCommand *cmd, GString *out)
{
    g_string_append_printf(out, "%s %s -- %s\n", cmd->name, cmd->params ? cmd->params : "",
                           hmp_help_text(mon, cmd));
}

static gint compare_by_name(gconstpointer a, gconstpointer b)
{
    const HmpCommand *x = *(const HmpCommand *const *)a;
    const HmpCommand *y = *(const HmpCommand *const *)b;

    return strcmp(x->name, y->name);
}

/* Every command (@info false) or every info subcommand (@info true), sorted. */
static void hmp_print_help_list(Monitor *mon, bool info, GString *out)
{
    g_autoptr(GPtrArray) sorted = g_ptr_array_copy(mon->hmp_order, NULL, NULL);
    bool info_listed = false;

    g_ptr_array_sort(sorted, compare_by_name);
    for (guint i = 0; i < sorted->len; i++) {
        const HmpCommand *cmd = g_ptr_array_index(sorted, i);
        bool is_info = g_str_has_prefix(cmd->name, "info ");

        if (is_info == info) {
            hmp_print_help_line(mon, cmd, out);
        } else if (!info && !info_listed) {
            /* "info" has no entry of its own: list it where it sorts. */
            g_string_append(out, "info [subcommand] -- show various information "
                            "about the system state\n");
            info_listed = true;
        }
    }
}

static const HmpCommand *hmp_lookup(Monitor *mon, const char *name)
{
    return g_hash_table_lookup(mon->hmp_commands, name);
}

static bool hmp_help(Machine *m, int argc, char **argv, GString *out, GError **errp)
{
    Monitor *mon = m->monitor;
    g_autofree char *name = NULL;
    const HmpCommand *cmd;

    if (argc < 2) {
        hmp_print_help_list(mon, false, out);
        return true;
    }
    if (!strcmp(argv[1], "info") && argc < 3) {
        hmp_print_help_list(mon, true, out);
        return true;
    }
    name = argc >= 3 && !strcmp(argv[1], "info") ? g_strconcat("info ", argv[2], NULL)
                                                 : g_strdup(argv[1]);
    cmd = hmp_lookup(mon, name);
    if (!cmd) {
        g_string_append_printf(out, "unknown command: '%s'\n", name);
        return true;
    }
    hmp_print_help_line(mon, cmd, out);
    return true;
}

static bool hmp_info_version(Machine *m, int argc, char **argv, GString *out,
                             GError **errp)
{
    g_autoptr(JsonNode) info = monitor_qmp_call(m->monitor, "query-version", NULL, errp);
    JsonObject *obj, *triple;

    if (!info) {
        return false;
    }
    obj = json_node_get_object(info);
    triple = json_object_get_object_member(obj, "qemu");
    g_string_append_printf(out, "%" G_GINT64_FORMAT ".%" G_GINT64_FORMAT ".%"
                           G_GINT64_FORMAT " (%s)\n",
                           json_object_get_int_member(triple, "major"),
                           json_object_get_int_member(triple, "minor"),
                           json_object_get_int_member(triple, "micro"),
                           json_object_get_string_member(obj, "package"));
    return true;
}

const HmpCommand monitor_hmp_builtin_commands[] = {
    { "help", "[command [subcommand]]",
      "show the help of every command, or of one", hmp_help },
    { "info version", "", "show the version of frostvm", hmp_info_version },
    { NULL, NULL, NULL, NULL },
};

void hmp_dispatch_line(Monitor *mon, const char *line, GString *out)
{
    g_autoptr(GError) err = NULL;
    g_auto(GStrv) argv = NULL;
    g_autofree char *key = NULL;
    const HmpCommand *cmd;
    char **args;
    int argc;

    if (!hmp_split_line(line, &argv, &err)) {
        g_string_append_printf(out, "%s\n", err->message);
        return;
    }
    argc = g_strv_length(argv);
    if (argc == 0) {
        return;
    }
    if (!strcmp(argv[0], "info")) {
        if (argc == 1) {
            hmp_print_help_list(mon, true, out);
            return;
        }
        /* The handler sees "info NAME ..." as "NAME ...". */
        key = g_strconcat("info ", argv[1], NULL);
        args = argv + 1;
        argc--;
    } else {
        key = g_strdup(argv[0]);
        args = argv;
    }
    cmd = hmp_lookup(mon, key);
    if (!cmd) {
        g_string_append_printf(out, "unknown command: '%s'\n", key);
        return;
    }
    if (!hmp_check_params(args[0], cmd->params, argc, args, &err)) {
        g_string_append_printf(out, "%s\nTry \"help %s\" for more information\n",
                               err->message, key);
        return;
    }
    if (!cmd->handler(mon->machine, argc, args, out, &err)) {
        g_string_append_printf(out, "Error: %s\n",
                               err ? err->message : "the command failed");
    }
}

char *monitor_hmp_run(Monitor *mon, const char *line, GError **errp)
{
    g_autoptr(GString) out = g_string_new(NULL);

    hmp_dispatch_line(mon, line, out);
    return hmp_crlf(out->str);
}

static void hmp_session_write(MonitorSession *sess, const char *text)
{
    g_autofree char *crlf = hmp_crlf(text);

    monitor_conn_write(sess->conn, crlf, strlen(crlf));
}

void hmp_session_greet(MonitorSession *sess)
{
    hmp_session_write(sess, HMP_BANNER HMP_PROMPT);
}

void hmp_session_input(MonitorSession *sess, const char *data, gsize len)
{
    for (gsize i = 0; i < len; i++) {
        char c = data[i];
        g_autoptr(GString) out = NULL;

        if (c != '\n') {
            if (sess->line_overflow) {
                continue;
            }
            g_string_append_c(sess->line, c);
            if (sess->line->len > HMP_LINE_MAX) {
                sess->line_overflow = true;
                g_string_truncate(sess->line, 0);
                hmp_session_write(sess, "Error: line longer than 64 KiB, dropped\n"
                                  HMP_PROMPT);
            }
            continue;
        }
        if (sess->line_overflow) {
            sess->line_overflow = false;
            continue;
        }
        out = g_string_new(NULL);
        hmp_dispatch_line(sess->mon, sess->line->str, out);
        g_string_truncate(sess->line, 0);
        g_string_append(out, HMP_PROMPT);
        hmp_session_write(sess, out->str);
    }
}
