/* The helpers every subcommand shares (see cli.h): failing with the right exit code, usage
 * errors, parsing numbers and sizes, printing JSON strings. */
#include "cli/cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_fail(const qs_error *err) {
    fprintf(stderr, "qsense: %s\n", err->msg);
    return qs_error_exit_code(err->code);
}

int cli_usage(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "qsense %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see qsense %s --help)\n", cmd);
    va_end(ap);
    return 2;
}

int cli_int(const char *cmd, const char *opt, const char *val, int lo, int hi) {
    char *end;
    long v = val ? strtol(val, &end, 10) : 0;
    if (!val || *end || v < lo || v > hi) {
        cli_usage(cmd, "%s expects an integer from %d to %d, got '%s'", opt, lo, hi, val ? val : "");
        return -1;
    }
    return (int)v;
}

long long cli_size(const char *cmd, const char *opt, const char *val) {
    char *end;
    double v = val ? strtod(val, &end) : -1;
    double mul = 1;
    if (val && *end) {
        const char *u = "KMGT";
        const char *hit = strchr(u, end[0] & ~0x20);
        if (hit && (!end[1] || ((end[1] & ~0x20) == 'B' && !end[2]) || ((end[1] & ~0x20) == 'I' && (end[2] & ~0x20) == 'B' && !end[3])))
            for (const char *c = u; c <= hit; c++) mul *= 1024;
        else
            v = -1;
    }
    if (!val || !(v > 0) || v * mul > 9e18) {
        cli_usage(cmd, "%s expects a size such as 800M or 16G, got '%s'", opt, val ? val : "");
        return -1;
    }
    return (long long)(v * mul);
}

/* length of the valid UTF-8 sequence at p (1-4), or 0 if it is not one (overlong forms,
 * surrogates and code points past U+10FFFF are not) */
static int utf8_len(const unsigned char *p) {
    if (p[0] < 0x80) return 1;
    int n = p[0] >= 0xc2 && p[0] <= 0xdf ? 2 : p[0] >= 0xe0 && p[0] <= 0xef ? 3 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : 0;
    for (int i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    if (n == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0))) return 0;
    if (n == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))) return 0;
    return n;
}

void cli_json_str(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        int n = utf8_len(p);
        if (n == 0) { /* JSON is UTF-8: a byte that is not becomes U+FFFD, as decoders do */
            fputs("\\ufffd", stdout);
            p++;
        } else if (*p == '"' || *p == '\\') {
            printf("\\%c", *p++);
        } else if (*p < 0x20 || *p == 0x7f) {
            printf("\\u%04x", *p++);
        } else {
            fwrite(p, 1, (size_t)n, stdout);
            p += n;
        }
    }
    putchar('"');
}
