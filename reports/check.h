/* qsense check: a quantization regression gate. Per evaluation domain it compares a candidate
 * with a reference (llama-perplexity's chunk convention: perplexity ratio, mean and p99 KL,
 * top-1 agreement) and judges each metric against thresholds (per domain, with a default) or
 * against the last passing run in the database. Writes JUnit XML and a Markdown table, and
 * records every run (with the git commit when inside a repository). */
#ifndef QS_CHECK_H
#define QS_CHECK_H

#include "core/qs_error.h"

typedef struct {
    const char *candidate, *reference, *plan;   /* candidate: a model file, or reference + plan */
    const char *data;                           /* evaluation set or text file */
    const char *thresholds;                     /* JSON file, or NULL for the defaults */
    const char *db, *junit, *markdown;
    int ctx, threads, llamacpp_numerics;
} qs_check_options;

typedef struct {
    int n_checks, n_failed;
} qs_check_summary;

/* Returns 0 when it ran (see summary for the verdict), or an error. */
int qs_check_run(const qs_check_options *opt, qs_check_summary *sum, qs_error *err);

#endif
