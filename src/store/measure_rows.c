/* The analyzers' rows (see measure_rows.h): each typed row becomes one INSERT OR REPLACE. */
#include "store/measure_rows.h"

#include <math.h>

#include "store/sql.h"

#define INT(col, v) {col, 2, (double)(v), NULL}
#define REAL(col, v) {col, 0, (v), NULL}
#define TEXT(col, v) {col, 1, 0, (v)}
#define N(vals) ((int)(sizeof vals / sizeof vals[0]))

int qs_db_put_weight_stats(qs_db *db, const qs_db_weight_stats_row *r, qs_error *err) {
    qs_db_value v[] = {INT("run_id", r->run_id), INT("tensor_id", r->tensor_id), INT("n", r->n), REAL("min", r->min),
                       REAL("max", r->max), REAL("absmax", r->absmax), REAL("mean", r->mean), REAL("std", r->std),
                       REAL("kurtosis", r->kurtosis), REAL("p0_1", r->p0_1), REAL("p1", r->p1), REAL("p50", r->p50),
                       REAL("p99", r->p99), REAL("p99_9", r->p99_9), REAL("frac_beyond_3sigma", r->frac_beyond_3sigma),
                       REAL("frac_beyond_6sigma", r->frac_beyond_6sigma), REAL("row_absmax_min", r->row_absmax_min),
                       REAL("row_absmax_median", r->row_absmax_median), REAL("row_absmax_max", r->row_absmax_max),
                       REAL("hist_min", r->hist_min), REAL("hist_max", r->hist_max), TEXT("hist_dataset", r->hist_dataset),
                       TEXT("row_absmax_dataset", r->row_absmax_dataset)};
    return qs_db_put_row(db, "weight_stats", v, N(v), err);
}

int qs_db_put_activation_stats(qs_db *db, const qs_db_activation_stats_row *r, qs_error *err) {
    qs_db_value v[] = {INT("run_id", r->run_id), INT("tensor_id", r->tensor_id), INT("n_tokens", r->n_tokens),
                       REAL("min", r->min), REAL("max", r->max), REAL("absmax", r->absmax), REAL("mean", r->mean),
                       REAL("std", r->std), REAL("dynamic_range_db", r->dynamic_range_db),
                       REAL("channel_absmax_median", r->channel_absmax_median),
                       REAL("channel_absmax_max", r->channel_absmax_max), INT("n_outlier_channels", r->n_outlier_channels),
                       TEXT("outlier_channels", r->outlier_channels), REAL("hist_min", r->hist_min),
                       REAL("hist_max", r->hist_max), TEXT("hist_dataset", r->hist_dataset),
                       TEXT("channel_absmax_dataset", r->channel_absmax_dataset),
                       TEXT("channel_mean_sq_dataset", r->channel_mean_sq_dataset)};
    return qs_db_put_row(db, "activation_stats", v, N(v), err);
}

int qs_db_put_qerror(qs_db *db, const qs_db_qerror_row *r, qs_error *err) {
    qs_db_value v[] = {INT("run_id", r->run_id), INT("tensor_id", r->tensor_id), INT("format_id", r->format_id),
                       INT("applicable", r->applicable), TEXT("reason", r->reason), REAL("bpw", r->bpw), REAL("mse", r->mse),
                       REAL("sqnr_db", r->sqnr_db), REAL("max_abs_error", r->max_abs_error), REAL("cosine", r->cosine),
                       REAL("output_error", r->output_error)};
    return qs_db_put_row(db, "qerror", v, r->applicable ? N(v) : 5, err);
}

/* the figures' columns, after n_key key columns */
static int put_figures(qs_db *db, const char *table, qs_db_value *v, int n_key, const qs_db_eval_figures *f, qs_error *err) {
    qs_db_value fig[] = {INT("n_scored", f->n_scored), REAL("ppl", f->ppl), REAL("ppl_delta", f->ppl_delta),
                         REAL("ppl_delta_se", f->ppl_delta_se), REAL("kl_mean", f->kl_mean), REAL("kl_se", f->kl_se),
                         REAL("kl_p99", f->kl_p99), REAL("top1_agree", f->top1_agree), REAL("top1_se", f->top1_se)};
    for (int i = 0; i < N(fig); i++) v[n_key + i] = fig[i];
    return qs_db_put_row(db, table, v, n_key + N(fig), err);
}

int qs_db_put_sensitivity(qs_db *db, int64_t run_id, int64_t tensor_id, int64_t format_id, const char *domain,
                          const qs_db_eval_figures *fig, qs_error *err) {
    qs_db_value v[14] = {INT("run_id", run_id), INT("tensor_id", tensor_id), INT("format_id", format_id), TEXT("domain", domain),
                         INT("applicable", fig != NULL)};
    return fig ? put_figures(db, "sensitivity", v, 5, fig, err) : qs_db_put_row(db, "sensitivity", v, 5, err);
}

int qs_db_put_site_sensitivity(qs_db *db, const qs_db_site_row *r, const qs_db_eval_figures *fig, qs_error *err) {
    qs_db_value v[18] = {INT("run_id", r->run_id), TEXT("site", r->site), INT("layer", r->layer), TEXT("kind", r->kind),
                         TEXT("format", r->format), TEXT("domain", r->domain), INT("applicable", fig != NULL),
                         REAL("bits", r->bits)};
    int n = 8;
    if (!fig && r->reason) v[n++] = (qs_db_value)TEXT("reason", r->reason);
    return fig ? put_figures(db, "site_sensitivity", v, n, fig, err) : qs_db_put_row(db, "site_sensitivity", v, n, err);
}

int qs_db_put_whole_model(qs_db *db, int64_t run_id, int64_t format_id, const char *domain, int n_quantized, double bpw,
                          const qs_db_eval_figures *fig, qs_error *err) {
    qs_db_value v[14] = {INT("run_id", run_id), INT("format_id", format_id), TEXT("domain", domain),
                         INT("n_quantized", n_quantized), REAL("bpw", bpw)};
    return put_figures(db, "whole_model", v, 5, fig, err);
}

int qs_db_put_eval_domain(qs_db *db, const qs_db_eval_domain_row *r, qs_error *err) {
    qs_db_value v[] = {INT("run_id", r->run_id), TEXT("name", r->name), TEXT("sha256", r->sha256), TEXT("files", r->files),
                       INT("n_chunks", r->n_chunks), INT("ctx", r->ctx), INT("n_scored", r->n_scored),
                       REAL("base_ppl", r->base_ppl), REAL("base_ppl_se", r->base_ppl_se), INT("topk", r->topk),
                       REAL("mean_tail_mass", r->mean_tail_mass)};
    return qs_db_put_row(db, "eval_domains", v, N(v), err);
}

int qs_db_put_estimate(qs_db *db, int64_t run_id, int64_t tensor_id, int64_t format_id, const char *domain, const char *method,
                       double kl, double kl_se, int64_t probe_format_id, qs_error *err) {
    qs_db_value v[] = {INT("run_id", run_id), INT("tensor_id", tensor_id), INT("format_id", format_id), TEXT("domain", domain),
                       TEXT("method", method), REAL("kl_mean", kl), REAL("kl_se", kl_se),
                       INT("probe_format_id", probe_format_id > 0 ? (double)probe_format_id : NAN)};
    return qs_db_put_row(db, "sensitivity_estimates", v, N(v), err);
}

int qs_db_put_validation(qs_db *db, int64_t run_id, const char *method, int n_jobs, double spearman, double median_rel_error,
                         double p90_rel_error, qs_error *err) {
    qs_db_value v[] = {INT("run_id", run_id), TEXT("method", method), INT("n_jobs", n_jobs), REAL("spearman", spearman),
                       REAL("median_rel_error", median_rel_error), REAL("p90_rel_error", p90_rel_error)};
    return qs_db_put_row(db, "estimate_validation", v, N(v), err);
}
