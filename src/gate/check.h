/* qsense check: a quantization regression gate. Per evaluation domain it compares a candidate
 * with a reference (llama-perplexity's chunk convention: perplexity ratio, mean and p99 KL,
 * top-1 agreement) and judges each metric against thresholds (per domain, with a default;
 * thresholds.h) or against the last passing run in the database. Writes JUnit XML and a Markdown
 * table, and records every run (with the git commit when inside a repository). It prints
 * nothing: the command line shows the verdict from the summary. */
#ifndef QS_CHECK_H
#define QS_CHECK_H

#include <stdint.h>

#include "core/qs_error.h"

typedef struct {
    const char *candidate, *reference, *plan;   /* candidate: a model file, or reference + plan */
    const char *data;                           /* evaluation set or text file */
    const char *thresholds;                     /* JSON file, or NULL for the defaults */
    const char *db, *junit, *markdown;
    int ctx, threads, llamacpp_numerics;
    int64_t mem_budget; /* bytes the planned tensors' f32 copies may take (0: 80 % of physical memory);
                           beyond it a row-independent format is rounded as the engine reads the rows */
} qs_check_options;

enum { QS_CHECK_KL, QS_CHECK_KL_P99, QS_CHECK_PPL_RATIO, QS_CHECK_TOP1, QS_CHECK_N_METRICS };

/* "kl_mean", "kl_p99", "ppl_ratio", "top1" (the names in the database and the JUnit file) */
const char *qs_check_metric_name(int metric);
/* 1 when a larger value is worse (KL, perplexity ratio), 0 for top-1 agreement */
int qs_check_higher_is_worse(int metric);

typedef struct {
    char domain[64];
    double value[QS_CHECK_N_METRICS], limit[QS_CHECK_N_METRICS], baseline[QS_CHECK_N_METRICS]; /* NAN: none */
    int failed[QS_CHECK_N_METRICS];
} qs_check_domain;

typedef struct {
    int n_checks, n_failed;
    int n_domains;
    qs_check_domain *d; /* malloc'd: qs_check_summary_free */
    char set_name[64], commit[64];
} qs_check_summary;

/* Returns 0 when it ran (see summary for the verdict), or an error. */
int qs_check_run(const qs_check_options *opt, qs_check_summary *sum, qs_error *err);
void qs_check_summary_free(qs_check_summary *sum);

#endif
