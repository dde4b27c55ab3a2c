/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Parsing HMP lines: splitting with quotes, checking words against a command's params, values. */
#include "monitor/monitor-internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Inside double quotes: \" \\ \n \t \r \' are escapes; other backslashes stay. */
static const char *split_double_quoted(const char *p, GString *word)
{
    for (; *p && *p != '"'; p++) {
        if (*p == '\\' && p[1]) {
            switch (p[1]) {
            case 'n':
                g_string_append_c(word, '\n');
                p++;
                continue;
            case 't':
                g_string_append_c(word, '\t');
                p++;
                continue;
            case 'r':
                g_string_append_c(word, '\r');
                p++;
                continue;
            case '"':
            case '\\':
            case '\'':
                g_string_append_c(word, p[1]);
                p++;
                continue;
            default:
                break;
            }
        }
        g_string_append_c(word, *p);
    }
    return *p ? p + 1 : NULL;
}

bool hmp_split_line(const char *line, GStrv *argv, GError **errp)
{
    g_autoptr(GPtrArray) words = g_ptr_array_new_with_free_func(g_free);
    const char *p = line;

    for (;;) {
        g_autoptr(GString) word = NULL;

        while (is_blank(*p)) {
            p++;
        }
        if (!*p) {
            break;
        }
        word = g_string_new(NULL);
        while (*p && !is_blank(*p)) {
            if (*p == '"') {
                p = split_double_quoted(p + 1, word);
                if (!p) {
                    error_setg(errp, "unterminated double quote in '%s'", line);
                    return false;
                }
            } else if (*p == '\'') {
                const char *end = strchr(p + 1, '\'');

                if (!end) {
                    error_setg(errp, "unterminated single quote in '%s'", line);
                    return false;
                }
                g_string_append_len(word, p + 1, end - p - 1);
                p = end + 1;
            } else {
                g_string_append_c(word, *p++);
            }
        }
        g_ptr_array_add(words, g_string_free(g_steal_pointer(&word), FALSE));
    }
    g_ptr_array_add(words, NULL);
    g_ptr_array_set_free_func(words, NULL);
    *argv = (GStrv)g_ptr_array_free(g_steal_pointer(&words), FALSE);
    return true;
}

static bool is_flag_word(const char *word)
{
    return word[0] == '-' && g_ascii_isalpha(word[1]) && word[2] == '\0';
}

/* Index of the first word after the leading flags. */
static int first_word(int argc, char **argv)
{
    int i = 1;

    while (i < argc && is_flag_word(argv[i])) {
        i++;
    }
    return i;
}

bool hmp_check_params(const char *name, const char *params, int argc, char **argv,
                      GError **errp)
{
    g_auto(GStrv) tokens = g_strsplit_set(params ? params : "", " \t", -1);
    g_autoptr(GString) flags = g_string_new(NULL);
    g_autoptr(GPtrArray) required = g_ptr_array_new_with_free_func(g_free);
    unsigned optional = 0;
    bool rest = false;
    int i = 1;
    int count;

    for (char **t = tokens; *t; t++) {
        const char *tok = *t;
        /* "[name [subcommand]]" nests: any bracket makes the word optional. */
        bool bracketed = tok[0] == '[';
        g_autofree char *inner = g_strdup(tok + strspn(tok, "["));

        if (!tok[0]) {
            continue;
        }
        inner[strcspn(inner, "]")] = '\0';
        if (bracketed && is_flag_word(inner)) {
            g_string_append_c(flags, inner[1]);
        } else if (g_str_has_suffix(inner, "...")) {
            rest = true;
        } else if (bracketed) {
            optional++;
        } else {
            g_ptr_array_add(required, g_steal_pointer(&inner));
        }
    }
    /* Only commands with flags read leading "-x" words as flags. */
    while (flags->len && i < argc && is_flag_word(argv[i])) {
        if (!strchr(flags->str, argv[i][1])) {
            error_setg(errp, "%s: unsupported option %s", name, argv[i]);
            return false;
        }
        i++;
    }
    count = argc - i;
    if (count < (int)required->len) {
        error_setg(errp, "%s: missing argument '%s'", name,
                   (const char *)g_ptr_array_index(required, count));
        return false;
    }
    if (!rest && count > (int)(required->len + optional)) {
        error_setg(errp, "%s: extraneous characters at the end of line", name);
        return false;
    }
    return true;
}

bool hmp_has_flag(int argc, char **argv, char flag)
{
    for (int i = 1; i < argc && is_flag_word(argv[i]); i++) {
        if (argv[i][1] == flag) {
            return true;
        }
    }
    return false;
}

const char *hmp_arg(int argc, char **argv, int index)
{
    int i = first_word(argc, argv) + index;

    return index >= 0 && i < argc ? argv[i] : NULL;
}

bool hmp_parse_on_off(const char *word, bool *value, GError **errp)
{
    if (word && !strcmp(word, "on")) {
        *value = true;
        return true;
    }
    if (word && !strcmp(word, "off")) {
        *value = false;
        return true;
    }
    error_setg(errp, "Expected 'on' or 'off'");
    return false;
}

static int size_suffix_shift(char c)
{
    switch (g_ascii_tolower(c)) {
    case 'b':
        return 0;
    case 'k':
        return 10;
    case 'm':
        return 20;
    case 'g':
        return 30;
    case 't':
        return 40;
    case 'p':
        return 50;
    case 'e':
        return 60;
    default:
        return -1;
    }
}

bool hmp_parse_size(const char *word, uint64_t default_unit, uint64_t *value,
                    GError **errp)
{
    const char *p = word;
    const char *end;
    uint64_t whole, unit = default_unit;
    double fraction = 0;

    if (!word || !g_ascii_isdigit(*p)) {
        goto invalid;
    }
    errno = 0;
    whole = g_ascii_strtoull(p, (char **)&end, 10);
    if (errno) {
        goto invalid;
    }
    p = end;
    if (*p == '.') {
        const char *start = p;
        g_autofree char *digits = NULL;

        p++;
        while (g_ascii_isdigit(*p)) {
            p++;
        }
        digits = g_strndup(start, p - start);
        fraction = g_ascii_strtod(digits, NULL);
    }
    if (*p) {
        int shift = size_suffix_shift(*p);

        if (shift < 0 || p[1]) {
            goto invalid;
        }
        unit = UINT64_C(1) << shift;
    }
    if ((double)whole + fraction >= 18446744073709551616.0 / (double)unit ||
        (unit && whole > UINT64_MAX / unit)) {
        goto invalid;
    }
    *value = whole * unit + (uint64_t)llround(fraction * (double)unit);
    return true;

invalid:
    error_setg(errp, "Invalid size %s", word ? word : "(none)");
    return false;
}

char *hmp_crlf(const char *text)
{
    GString *out = g_string_sized_new(strlen(text) + 16);

    for (const char *p = text; *p; p++) {
        if (*p == '\n' && (p == text || p[-1] != '\r')) {
            g_string_append_c(out, '\r');
        }
        g_string_append_c(out, *p);
    }
    return g_string_free(out, FALSE);
}
