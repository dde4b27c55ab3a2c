/* SPDX-License-Identifier: GPL-2.0-or-later */
/* frostvm's GError domain and the shorthands every layer above util/ uses. */
#ifndef UTIL_ERROR_H
#define UTIL_ERROR_H

#include <glib.h>

#define FROSTVM_ERROR (frostvm_error_quark())

/* Codes map onto QMP error classes. */
typedef enum {
    FROSTVM_ERROR_GENERIC,            /* "GenericError" */
    FROSTVM_ERROR_COMMAND_NOT_FOUND,  /* "CommandNotFound" */
    FROSTVM_ERROR_DEVICE_NOT_ACTIVE,  /* "DeviceNotActive" */
    FROSTVM_ERROR_DEVICE_NOT_FOUND,   /* "DeviceNotFound" */
} FrostvmErrorCode;

GQuark frostvm_error_quark(void);

/* Set a generic error with a printf-style message. */
#define error_setg(errp, ...) \
    g_set_error((errp), FROSTVM_ERROR, FROSTVM_ERROR_GENERIC, __VA_ARGS__)

/*
 * Set a generic error whose message ends with ": " and strerror(@errnum)
 * (a positive errno value).
 */
void error_setg_errno(GError **errp, int errnum, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

/* Prefix an existing error's message (no-op when @errp or *errp is NULL). */
#define error_prefix(errp, ...) g_prefix_error((errp), __VA_ARGS__)

#endif
