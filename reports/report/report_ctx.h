/* The report's view of one run (internal to reports/report_*.c): the run, its model and
 * tensors, domains, the chosen format with each tensor's cost in it, and which kinds of
 * measurements the database holds. Loaded once; the writers ask
 * the store (src/store/measures.h) for the rest. */
#ifndef QS_REPORT_CTX_H
#define QS_REPORT_CTX_H

#include <stdint.h>

#include "reports/report/report.h"
#include "store/db.h"
#include "store/measures.h"

#define RP_MAX_DOMAINS 16

typedef struct {
    int64_t id;
    char name[128], kind[16], stored[16];
    int layer;            /* -1 outside the blocks */
    int64_t rows, cols;
    double kl, kl_se;     /* the chosen format's KL, mean over domains (NAN: not measured) */
    double out_err, sqnr; /* the chosen format's output error and SQNR (NAN: not measured) */
} rp_tensor;

typedef struct {
    qs_db *db;
    const char *db_path;
    int64_t run_id, model_id;
    char model_path[1024], fingerprint[65], model_format[32], arch[32];
    int64_t n_params;
    int n_layers, dim, hidden_dim, n_heads, n_kv_heads, n_vocab;
    char started[32], finished[32], status[16], calib_data[1024], eval_set[256], version[32];
    int ctx, calib_tokens, eval_ctx;
    int n_tensors;
    rp_tensor *t;
    int n_domains;
    char domains[RP_MAX_DOMAINS][64];
    double base_ppl[RP_MAX_DOMAINS];
    int n_scored[RP_MAX_DOMAINS];
    int n_qformats, n_sformats; /* formats with qerror / sensitivity rows */
    char format[32];            /* the chosen format */
    double format_bpw;
    int has_sensitivity, has_whole, has_activations;
    int64_t plan_id;            /* the newest plan made from this run, 0 if none */
    qs_db_estimates est;        /* costs estimated rather than measured (est.n_estimated 0: none) */
} rp_ctx;

int rp_ctx_open(rp_ctx *c, const qs_report_options *o, qs_error *err);
void rp_ctx_close(rp_ctx *c);

/* One sentence on how many costs were measured and estimated, by which method, and how the
 * estimates fared against exact jobs (for a run with estimates). */
void rp_estimates_sentence(const rp_ctx *c, char *out, size_t cap);

/* Matrices (rows > 1) sorted by the chosen format's cost (KL if measured, else output error),
 * most costly first; returns the count. idx must hold n_tensors entries. */
int rp_ranked(const rp_ctx *c, int *idx);

/* a tensor's cost in the chosen format for rankings: KL when the run measured it, else output error */
double rp_cost(const rp_ctx *c, const rp_tensor *t);
const char *rp_cost_name(const rp_ctx *c);

/* The plan recorded for this run (the newest), with predicted and measured cost per domain. */
typedef struct {
    char domain[64];
    double predicted, measured, measured_p99, ppl_ratio, top1; /* NAN: not there */
    double corrected;  /* predicted x the domain's measured additivity (plan.json), NAN if none */
} rp_plan_domain;

typedef struct {
    int64_t id;
    char path[1024], created[32], target[32], weights[256], formats[512]; /* formats: "q5_0 x20, f16 x5" */
    double budget_bytes, tensor_bytes, bpw, predicted;
    int n_domains;
    rp_plan_domain d[RP_MAX_DOMAINS * 2];
} rp_plan;

/* 1 if the run has a plan (filled), else 0 */
int rp_plan_load(const rp_ctx *c, rp_plan *p);

/* Model files measured against this run's model by qsense check --db (newest check per file):
 * their mean KL over the domains checked and, when the file is still there, tensor bits per
 * weight (NAN otherwise). Returns the count (at most cap). */
typedef struct {
    char path[1024], eval_set[64], created[32];
    double kl, bpw;
    int n_domains;
} rp_checked;
int rp_checked_files(const rp_ctx *c, rp_checked *out, int cap);

#endif
