/* SPDX-License-Identifier: GPL-2.0-or-later */
/* frostvm's GError domain. */
#include "util/error.h"

#include <string.h>

G_DEFINE_QUARK(frostvm-error-quark, frostvm_error)

void error_setg_errno(GError **errp, int errnum, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    if (!errp) {
        return;
    }
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(errp, FROSTVM_ERROR, FROSTVM_ERROR_GENERIC, "%s: %s", msg,
                g_strerror(errnum));
}
