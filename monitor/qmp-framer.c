/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Splits a QMP client's byte stream into complete JSON texts, with size and nesting limits. */
#include "monitor/monitor-internal.h"

typedef enum {
    FRAMER_IDLE,        /* between texts */
    FRAMER_COMPOSITE,   /* inside an object or array */
    FRAMER_STRING,      /* inside a top-level string */
    FRAMER_SCALAR,      /* a bare word: number, keyword or garbage */
    FRAMER_DISCARD,     /* after an error, skipping to the next newline */
} FramerMode;

struct QmpFramer {
    GString *buf;
    gsize max_input;
    FramerMode mode;
    unsigned depth;
    bool in_string;
    bool escape;
};

QmpFramer *qmp_framer_new(gsize max_input)
{
    QmpFramer *f = g_new0(QmpFramer, 1);

    f->buf = g_string_new(NULL);
    f->max_input = max_input;
    return f;
}

void qmp_framer_free(QmpFramer *f)
{
    if (f) {
        g_string_free(f->buf, TRUE);
        g_free(f);
    }
}

gsize qmp_framer_buffered(QmpFramer *f)
{
    return f->buf->len;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void emit_text(QmpFramer *f, QmpFramerEmit emit, void *opaque)
{
    emit(opaque, f->buf->str, f->buf->len, NULL);
    g_string_truncate(f->buf, 0);
    f->mode = FRAMER_IDLE;
    f->depth = 0;
    f->in_string = f->escape = false;
}

/*
 * Drop what is buffered and skip to the next newline: the rest of a broken
 * text cannot be told apart from the start of the next one, but clients send
 * one command per line, so a newline is the place to start over.
 */
static void emit_error(QmpFramer *f, const char *msg, bool discard, QmpFramerEmit emit,
                       void *opaque)
{
    g_string_truncate(f->buf, 0);
    f->mode = discard ? FRAMER_DISCARD : FRAMER_IDLE;
    f->depth = 0;
    f->in_string = f->escape = false;
    emit(opaque, NULL, 0, msg);
}

/* Inside a string: only the closing quote matters, and escapes hide quotes. */
static bool string_ends_at(QmpFramer *f, char c)
{
    if (f->escape) {
        f->escape = false;
    } else if (c == '\\') {
        f->escape = true;
    } else if (c == '"') {
        return true;
    }
    return false;
}

void qmp_framer_feed(QmpFramer *f, const char *data, gsize len, QmpFramerEmit emit,
                     void *opaque)
{
    for (gsize i = 0; i < len; i++) {
        char c = data[i];

        switch (f->mode) {
        case FRAMER_DISCARD:
            if (c == '\n') {
                f->mode = FRAMER_IDLE;
            }
            continue;
        case FRAMER_IDLE:
            if (is_space(c)) {
                continue;
            }
            if (c == '}' || c == ']') {
                emit_error(f, "JSON parse error, expecting value", false, emit, opaque);
                continue;
            }
            g_string_append_c(f->buf, c);
            if (c == '{' || c == '[') {
                f->mode = FRAMER_COMPOSITE;
                f->depth = 1;
            } else if (c == '"') {
                f->mode = FRAMER_STRING;
            } else {
                f->mode = FRAMER_SCALAR;
            }
            continue;
        case FRAMER_SCALAR:
            if (is_space(c) || c == '{' || c == '[' || c == '}' || c == ']' ||
                c == '"') {
                emit_text(f, emit, opaque);
                i--;    /* the delimiter starts the next text */
                continue;
            }
            g_string_append_c(f->buf, c);
            break;
        case FRAMER_STRING:
            g_string_append_c(f->buf, c);
            if (string_ends_at(f, c)) {
                emit_text(f, emit, opaque);
                continue;
            }
            break;
        case FRAMER_COMPOSITE:
            g_string_append_c(f->buf, c);
            if (f->in_string) {
                f->in_string = !string_ends_at(f, c);
            } else if (c == '"') {
                f->in_string = true;
            } else if (c == '{' || c == '[') {
                if (++f->depth > QMP_NESTING_MAX) {
                    emit_error(f, "JSON parse error, nesting too deep", true, emit,
                               opaque);
                    continue;
                }
            } else if (c == '}' || c == ']') {
                if (--f->depth == 0) {
                    emit_text(f, emit, opaque);
                    continue;
                }
            }
            break;
        }
        if (f->buf->len > f->max_input) {
            g_autofree char *msg = g_strdup_printf(
                "JSON parse error, more than %zu bytes without a complete JSON "
                "value (input dropped up to the next newline)", f->max_input);

            emit_error(f, msg, true, emit, opaque);
        }
    }
}
