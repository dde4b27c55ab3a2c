/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Freestanding helpers of the test payload: building serial lines, parsing numbers
 * from the command line, and the mem* functions the compiler may call. */
#include "payload.h"

void *memset(void *d, int c, size_t n)
{
    unsigned char *p = d;

    while (n--) {
        *p++ = (unsigned char)c;
    }
    return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
    unsigned char *dp = d;
    const unsigned char *sp = s;

    while (n--) {
        *dp++ = *sp++;
    }
    return d;
}

void *memmove(void *d, const void *s, size_t n)
{
    unsigned char *dp = d;
    const unsigned char *sp = s;

    if (dp < sp) {
        return memcpy(d, s, n);
    }
    while (n--) {
        dp[n] = sp[n];
    }
    return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *pa = a, *pb = b;

    for (size_t i = 0; i < n; i++) {
        if (pa[i] != pb[i]) {
            return pa[i] < pb[i] ? -1 : 1;
        }
    }
    return 0;
}

void line_reset(Line *l)
{
    l->len = 0;
}

static void line_char(Line *l, char c)
{
    if (l->len < sizeof(l->buf)) {
        l->buf[l->len++] = c;
    }
}

void line_str(Line *l, const char *s)
{
    while (*s) {
        line_char(l, *s++);
    }
}

void line_u64(Line *l, uint64_t v)
{
    char tmp[20];
    int n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) {
        line_char(l, tmp[--n]);
    }
}

void line_hex(Line *l, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[16];
    int n = 0;

    line_str(l, "0x");
    do {
        tmp[n++] = digits[v & 15];
        v >>= 4;
    } while (v);
    while (n) {
        line_char(l, tmp[--n]);
    }
}

void line_kv(Line *l, const char *key, uint64_t v)
{
    line_char(l, ' ');
    line_str(l, key);
    line_char(l, '=');
    line_u64(l, v);
}

void line_kx(Line *l, const char *key, uint64_t v)
{
    line_char(l, ' ');
    line_str(l, key);
    line_char(l, '=');
    line_hex(l, v);
}

void line_send(Line *l)
{
    serial_write_line(l->buf, l->len);
    l->len = 0;
}

bool str_eq(const char *a, size_t alen, const char *b)
{
    size_t i;

    for (i = 0; i < alen; i++) {
        if (b[i] != a[i]) {
            return false;
        }
    }
    return b[i] == '\0';
}

bool parse_size(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0, shift = 0;
    unsigned base = 10;
    size_t i = 0;

    if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        i = 2;
    }
    if (i == len) {
        return false;
    }
    for (; i < len; i++) {
        char c = s[i];
        unsigned d;

        if (c >= '0' && c <= '9') {
            d = (unsigned)(c - '0');
        } else if (base == 16 && c >= 'a' && c <= 'f') {
            d = (unsigned)(c - 'a' + 10);
        } else if (base == 16 && c >= 'A' && c <= 'F') {
            d = (unsigned)(c - 'A' + 10);
        } else {
            break;
        }
        if (v > (UINT64_MAX - d) / base) {
            return false;
        }
        v = v * base + d;
    }
    if (i < len) {
        switch (s[i]) {
        case 'k': case 'K':
            shift = 10;
            break;
        case 'm': case 'M':
            shift = 20;
            break;
        case 'g': case 'G':
            shift = 30;
            break;
        default:
            return false;
        }
        if (i + 1 != len || (shift && v > (UINT64_MAX >> shift))) {
            return false;
        }
    }
    *out = v << shift;
    return true;
}
