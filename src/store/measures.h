/* Reading what a run measured: per-tensor costs in a format (output error, SQNR, KL), weight and
 * activation statistics, the sweep's rows per tensor, and the aggregates the report draws and
 * `qsense profile` summarises. Every function reads; none decides.
 *
 * KL per tensor, format and domain is the measured row where the sweep ran that job, and an
 * estimate (sensitivity_estimates) where it did not: the costs, rankings and aggregates below
 * use both, and say which where a caller needs to know. */
#ifndef QS_STORE_MEASURES_H
#define QS_STORE_MEASURES_H

#include <stdint.h>

#include "store/db.h"

typedef enum { QS_DB_QERROR, QS_DB_SENSITIVITY } qs_db_measure;

/* The distinct formats with rows of that measure in the run (only applicable rows when
 * applicable_only), in SQLite's order; at most cap names; returns the count. */
int qs_db_formats_measured(qs_db *db, int64_t run_id, qs_db_measure m, int applicable_only, char (*names)[32], int cap);

typedef struct {
    double kl, kl_se;         /* mean over domains of the sweep's KL, and its standard error (NAN: none) */
    double out_err, sqnr, bpw; /* qerror: output error (NAN: none), SQNR (INFINITY when NULL: exact), bits per weight */
    int has_qerror;
} qs_db_cost;

/* Tensor `tensor_id`'s cost in `format` (applicable rows only). */
void qs_db_cost_of(qs_db *db, int64_t run_id, int64_t tensor_id, const char *format, qs_db_cost *out);

/* The sweep's applicable rows of one tensor, ordered by format name: (format, domain, KL). */
typedef struct {
    char format[32], domain[64];
    double kl;
    int estimated; /* 0: measured by an exact job; 1: an estimate */
} qs_db_kl_row;
int qs_db_tensor_kls(qs_db *db, int64_t run_id, int64_t tensor_id, qs_db_kl_row **out, int *n, qs_error *err);
/* The same for an activation site ("blk.3.attn_in") in one format: its applicable rows, one per
 * domain (none when the sweep did not measure it). */
int qs_db_site_kls(qs_db *db, int64_t run_id, const char *site, const char *format, qs_db_kl_row **out, int *n, qs_error *err);

/* Whole-model KL over the sum of the per-tensor KLs, per format, on one domain (formats whose
 * whole-model KL lies in (0, 1)); at most cap values; returns the count. */
int qs_db_whole_over_sum(qs_db *db, int64_t run_id, const char *domain, double *out, int cap);

typedef struct {
    int found;
    double hist_min, hist_max, absmax, kurtosis, std, mean; /* NAN for NULL */
} qs_db_weight_stats;
typedef struct {
    int found;
    double hist_min, hist_max, absmax, dynamic_range_db, n_tokens, n_outlier_channels; /* NAN for NULL */
} qs_db_act_stats;

void qs_db_weight_stats_of(qs_db *db, int64_t run_id, int64_t tensor_id, qs_db_weight_stats *out);
void qs_db_act_stats_of(qs_db *db, int64_t run_id, int64_t tensor_id, qs_db_act_stats *out);
/* the activation statistics of the tensor of this kind in this layer */
void qs_db_act_stats_at(qs_db *db, int64_t run_id, int layer, const char *kind, qs_db_act_stats *out);

/* Per format, over the tensors of one kind: the mean cost (KL for the sweep, output error for
 * qerror) and, for the sweep, the smallest shape (for the format's true bits per weight), for
 * qerror the mean bits per weight. */
typedef struct {
    char format[32];
    double cost, bpw;
    int64_t rows, cols;
} qs_db_kind_cost;
int qs_db_kind_costs(qs_db *db, int64_t run_id, qs_db_measure m, const char *kind, qs_db_kind_cost *out, int cap);

/* The 4-bit integer formats without clip search, by mean bits per weight (symmetric first);
 * returns the count. The mean output error of one format over the tensors of a kind (NAN: none). */
int qs_db_int4_granularities(qs_db *db, int64_t run_id, char (*names)[32], int cap);
double qs_db_mean_output_error(qs_db *db, int64_t run_id, const char *format, const char *kind);

/* Whole-model rows with at least one tensor quantized, most bits first, then format, domain. */
typedef struct {
    char format[32], domain[64];
    double bpw, n_quantized, kl_mean, kl_se, ppl_delta, ppl_delta_se, top1_agree;
} qs_db_whole_row;
int qs_db_whole_model(qs_db *db, int64_t run_id, qs_db_whole_row **out, int *n, qs_error *err);

/* Per format, the whole-model mean over domains of bits per weight and KL. */
typedef struct {
    char format[32];
    double bpw, kl;
} qs_db_format_point;
int qs_db_whole_by_format(qs_db *db, int64_t run_id, qs_db_format_point *out, int cap);

/* `qsense profile`'s summary: the tensors with the largest output error at the run's reference
 * format (int4-g128-asym when measured, else the fewest bits), most costly first. */
typedef struct {
    char tensor[128], format[32];
    double out_err, sqnr;
} qs_db_top_error;
int qs_db_top_output_errors(qs_db *db, int64_t run_id, qs_db_top_error *out, int cap);

/* ... and the sweep per format and domain: mean and worst per-tensor KL, whole-model KL. */
typedef struct {
    char format[32], domain[64];
    double mean_kl, worst_kl, whole_kl, whole_kl_se;
} qs_db_sweep_summary;
int qs_db_sweep_summary_of(qs_db *db, int64_t run_id, qs_db_sweep_summary **out, int *n, qs_error *err);

/* ... and the activation sites per format and kind of site (attn_in, ..., kv_cache), over the
 * domains: mean and worst KL of one site at a time, the worst site. */
typedef struct {
    char format[32], kind[32], worst_site[64];
    double mean_kl, worst_kl;
    int n_sites;
} qs_db_site_summary;
int qs_db_site_summary_of(qs_db *db, int64_t run_id, qs_db_site_summary **out, int *n, qs_error *err);
/* Every (site, format) of the run: its layer, kind, the mean KL over the domains (NAN where the
 * format does not apply), in the order of a block (attn_in, attn_out, ffn_in, ffn_down_in,
 * kv_cache, then the head's input), then format, layer. */
typedef struct {
    char format[32], kind[32];
    int layer;
    double kl;
} qs_db_site_cell;
int qs_db_site_cells(qs_db *db, int64_t run_id, qs_db_site_cell **out, int *n, qs_error *err);

/* The output error of a tensor in a format (NAN: not applicable or not measured). */
double qs_db_output_error(qs_db *db, int64_t run_id, int64_t tensor_id, int64_t format_id);
/* The measured KL (and its standard error) of one job: 1 if the run has an applicable row. */
int qs_db_measured_kl(qs_db *db, int64_t run_id, int64_t tensor_id, int64_t format_id, const char *domain, double *kl,
                      double *kl_se);
/* The estimate of one job by a method: 1 if there is one. */
int qs_db_estimated_kl(qs_db *db, int64_t run_id, int64_t tensor_id, int64_t format_id, const char *domain, const char *method,
                       double *kl);

/* What a run estimated rather than measured, and how the estimates fared against exact jobs. */
typedef struct {
    char method[32];            /* the method with most estimates ("" if none) */
    int64_t n_estimated, n_measured;
    int n_validated;            /* exact jobs drawn to check the estimates (0: not validated) */
    double spearman, median_rel_error, p90_rel_error; /* NAN when not validated */
} qs_db_estimates;
/* 1 and *out filled when the run holds estimates, else 0. */
int qs_db_estimates_of(qs_db *db, int64_t run_id, qs_db_estimates *out);
/* The jobs a method estimated that were also measured (the validation draw): each one's estimate
 * and measured KL, at most cap; returns the count. */
int qs_db_estimate_pairs(qs_db *db, int64_t run_id, const char *method, double *estimate, double *measured, int cap);

#endif
