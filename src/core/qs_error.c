/* qs_error: formatting and classifying errors (see qs_error.h). */
#include "core/qs_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int qs_errorf(qs_error *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int qs_error_prefix(qs_error *err, const char *fmt, ...) {
    if (!err) return QS_ERR_INTERNAL;
    char prefix[256], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %.*s", prefix, (int)(sizeof err->msg - sizeof prefix - 3), old);
    return err->code;
}

int qs_error_exit_code(int code) {
    switch (code) {
    case QS_OK: return 0;
    case QS_ERR_USAGE: return 2;
    case QS_ERR_INPUT: return 3;
    default: return 4;
    }
}
