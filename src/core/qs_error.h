/* qs_error: the one error model of qsense.
 * Functions that can fail return int (0 = ok, negative = a qs_status) and fill a qs_error with
 * one human sentence naming the file, the offset or key, and what was expected.
 * The CLI maps the status to an exit code (docs/design.md: 2 usage, 3 bad input, 4 internal). */
#ifndef QS_ERROR_H
#define QS_ERROR_H

#include <stddef.h>

typedef enum {
    QS_OK = 0,
    QS_ERR_USAGE = -2,    /* the caller asked for something that makes no sense */
    QS_ERR_INPUT = -3,    /* a file or text is missing, malformed, or unsupported */
    QS_ERR_INTERNAL = -4, /* out of memory, a bug, an OS failure we cannot blame on input */
} qs_status;

typedef struct {
    int code;
    char msg[1024];
} qs_error;

/* Sets err (if not NULL) to code and a printf-formatted message; returns code. */
int qs_errorf(qs_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the existing message with "context: " (e.g. the file name). Returns err->code. */
int qs_error_prefix(qs_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Exit code for the CLI: 0 ok, 2 usage, 3 bad input, 4 internal. */
int qs_error_exit_code(int code);

#endif
