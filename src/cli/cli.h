/* Shared pieces of the qsense subcommands: option parsing helpers and model/text loading with
 * errors turned into exit codes. Only src/cli prints and exits. */
#ifndef QS_CLI_H
#define QS_CLI_H

#include <stddef.h>

#include "core/qs_error.h"

int cmd_ppl(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_profile(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_report(int argc, char **argv);

/* Prints "qsense: <message>" to stderr and returns the exit code for err. */
int cli_fail(const qs_error *err);
/* Prints a usage error ("qsense CMD: ...; see --help") and returns 2. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses a positive int option value; returns -1 (after printing) on error. */
int cli_int(const char *cmd, const char *opt, const char *val, int lo, int hi);

/* Parses a size ("800M", "16G", "1.5G", "123456789" bytes; K, M, G, T are powers of 1024);
 * returns -1 (after printing) on error. */
long long cli_size(const char *cmd, const char *opt, const char *val);

/* Prints s as a JSON string literal (with quotes). */
void cli_json_str(const char *s);

#endif
