/* The analyzers' rows, one typed writer per measurement table (docs/schema.md): weight and
 * activation statistics, output error per format, and the sensitivity sweep's figures. Each
 * writes inside the caller's transaction and replaces the row with the same key, so a job that
 * is re-run writes the same rows again. NAN (or an infinity) is stored as NULL: "not defined".
 * The reading side is measures.h. */
#ifndef QS_STORE_MEASURE_ROWS_H
#define QS_STORE_MEASURE_ROWS_H

#include <stdint.h>

#include "store/db.h"

typedef struct {
    int64_t run_id, tensor_id, n;
    double min, max, absmax, mean, std, kurtosis;
    double p0_1, p1, p50, p99, p99_9, frac_beyond_3sigma, frac_beyond_6sigma;
    double row_absmax_min, row_absmax_median, row_absmax_max, hist_min, hist_max;
    const char *hist_dataset, *row_absmax_dataset; /* the arrays staged beside the row */
} qs_db_weight_stats_row;
int qs_db_put_weight_stats(qs_db *db, const qs_db_weight_stats_row *r, qs_error *err);

typedef struct {
    int64_t run_id, tensor_id, n_tokens, n_outlier_channels;
    double min, max, absmax, mean, std, dynamic_range_db, channel_absmax_median, channel_absmax_max, hist_min, hist_max;
    const char *outlier_channels; /* JSON list of channel indices */
    const char *hist_dataset, *channel_absmax_dataset, *channel_mean_sq_dataset;
} qs_db_activation_stats_row;
int qs_db_put_activation_stats(qs_db *db, const qs_db_activation_stats_row *r, qs_error *err);

/* A tensor's error in one format; a format that does not apply is recorded with the reason. */
typedef struct {
    int64_t run_id, tensor_id, format_id;
    int applicable;
    const char *reason; /* not applicable: why */
    double bpw, mse, sqnr_db, max_abs_error, cosine, output_error;
} qs_db_qerror_row;
int qs_db_put_qerror(qs_db *db, const qs_db_qerror_row *r, qs_error *err);

/* What one evaluation domain measured with quantized weights, against the base model. */
typedef struct {
    int64_t n_scored;
    double ppl, ppl_delta, ppl_delta_se, kl_mean, kl_se, kl_p99, top1_agree, top1_se;
} qs_db_eval_figures;

/* One tensor quantized to one format, on one domain; fig NULL: the format does not apply. */
int qs_db_put_sensitivity(qs_db *db, int64_t run_id, int64_t tensor_id, int64_t format_id, const char *domain,
                          const qs_db_eval_figures *fig, qs_error *err);
/* One activation site (site: "blk.3.attn_in", "blk.3.kv_cache", "output.head_in"; kind: its part
 * of the layer) in one activation or KV-cache format on one domain; fig NULL: the format does not
 * apply (reason says why). bits: the format's bits per value at that site. */
typedef struct {
    int64_t run_id;
    const char *site, *kind, *format, *domain, *reason;
    int layer;
    double bits;
} qs_db_site_row;
int qs_db_put_site_sensitivity(qs_db *db, const qs_db_site_row *r, const qs_db_eval_figures *fig, qs_error *err);
/* Every tensor the format applies to quantized at once (n_quantized of them, bpw over the model). */
int qs_db_put_whole_model(qs_db *db, int64_t run_id, int64_t format_id, const char *domain, int n_quantized, double bpw,
                          const qs_db_eval_figures *fig, qs_error *err);

/* An estimate of one job's KL by a method ("calibrated": the probe format's measured KL scaled by
 * the output errors; "gradient": the Fisher-weighted output error), with its standard error,
 * beside the measured rows, never over them. probe_format_id <= 0: no probe (NULL). */
int qs_db_put_estimate(qs_db *db, int64_t run_id, int64_t tensor_id, int64_t format_id, const char *domain, const char *method,
                       double kl, double kl_se, int64_t probe_format_id, qs_error *err);
/* How a method's estimates agreed with n exact jobs drawn at random: Spearman's rank correlation
 * and the median and 90th percentile of |estimate - exact| / exact. */
int qs_db_put_validation(qs_db *db, int64_t run_id, const char *method, int n_jobs, double spearman, double median_rel_error,
                         double p90_rel_error, qs_error *err);

/* An evaluation domain of the sweep and its base model's perplexity. */
typedef struct {
    int64_t run_id;
    const char *name, *sha256, *files;
    int n_chunks, ctx, n_scored, topk;
    double base_ppl, base_ppl_se, mean_tail_mass;
} qs_db_eval_domain_row;
int qs_db_put_eval_domain(qs_db *db, const qs_db_eval_domain_row *r, qs_error *err);

#endif
