/* The analyzers' one small interface, and the profile they work on.
 * An analyzer has a name, says whether it needs the calibration pass (activations), and runs
 * one job: one tensor, writing its rows into the open transaction. The driver (profile.c)
 * decides which jobs remain, runs each in its own transaction, and reports progress. Analyzers
 * never print. */
#ifndef QS_ANALYZER_H
#define QS_ANALYZER_H

#include <stdint.h>

#include "core/qs_error.h"
#include "io/model.h"
#include "quant/act_format.h"
#include "quant/format.h"
#include "quant/row_rounding.h"
#include "store/db.h"
#include "store/measure_rows.h"
#include "store/profile_rows.h"

/* The weights and qerror analyzers read a tensor a block of rows at a time, at most this many
 * bytes of f32 per buffer, instead of expanding it whole */
#define QS_PROFILE_BLOCK_BYTES ((int64_t)32 << 20)

/* Statistics of the inputs of one linear layer over the calibration tokens. */
typedef struct {
    int n_in;
    int64_t n_tokens;
    double sum, sum_sq;    /* over all values */
    float min, max;
    float *ch_absmax;      /* (n_in) */
    double *ch_sum_sq;     /* (n_in): / n_tokens = mean square, llama-imatrix's statistic */
    double *ch_sum_abs;    /* (n_in): / n_tokens = mean |x|, AWQ's statistic */
    float *gram;           /* (n_in, n_in) = X^T X, for the output error of any W */
    uint64_t hist[256];    /* over [-hist_range, hist_range]; values beyond land in the end bins */
    float hist_range;
} qs_act_stats;

typedef struct {
    const qs_tensor *t;
    int64_t db_id;
    int layer;            /* -1 for tensors outside the blocks */
    const char *kind;     /* "attn_q", "ffn_down", "token_embd", "output", "attn_norm", ... */
    int linear;           /* qs_linear of the engine, or -1 (norms; token_embd unless it is the output) */
    int64_t rows, cols;   /* rows = output features (ne[1]), cols = ne[0] */
} qs_prof_tensor;

typedef struct qs_profile {
    const qs_model *m;
    qs_db *db;
    int64_t run_id;
    const qs_format **formats;
    int n_formats;
    int64_t *format_ids;
    qs_prof_tensor *tensors;
    int n_tensors;
    qs_act_stats *acts;   /* [(n_layers + 1) * QS_LIN_COUNT], NULL until the calibration pass ran */
    const qs_format **formats_sens; /* the sensitivity sweep's formats */
    int n_formats_sens;
    int64_t *format_ids_sens;
    int threads;
    int store_gram;                       /* a GPTQ or AWQ format is measured or swept: the analyzers store each input's
                                           * Gram matrix in the database, where the sweep reads a tensor's back */
    int keep_gram;                        /* every layer's stay in memory for the sweep: an MPI worker, which has no
                                           * database (its copies normalized as the stored ones: qs_calib_normalize_grams) */
    const struct qs_engine *calib_engine; /* the calibration pass's engine while it runs (its routing counts) */
    unsigned char *want_gram; /* [n_layers + 1]: accumulate X^T X for this layer's inputs */
    int spill_caches;     /* the sweep's residual caches do not fit the memory budget: map them from a
                           * scratch file beside the database (core/qs_file.h) */
    const char *db_path;
    /* the sweep of activation sites (sweep_sites.h): formats for linear inputs and KV caches */
    const qs_act_format **act_formats, **kv_formats;
    int n_act_formats, n_kv_formats;
} qs_profile;

typedef struct {
    const char *name;
    int needs_activations;
    int (*applies)(const qs_profile *p, int tensor);
    int (*run)(qs_profile *p, int tensor, qs_error *err);
} qs_analyzer;

extern const qs_analyzer qs_analyzer_weights, qs_analyzer_activations, qs_analyzer_qerror;

/* The activation statistics feeding tensor i (NULL when it has no linear input or no pass ran). */
const qs_act_stats *qs_profile_input_stats(const qs_profile *p, int tensor);
/* The importance of each input column of tensor i (its inputs' mean square, llama-imatrix's
 * statistic), malloc'd; NULL when the run has no activation statistics for it. */
float *qs_profile_importance(const qs_profile *p, int tensor);

/* Everything calibration measured about tensor i's inputs, for qs_format_fake_quantize_calib
 * with format f (NULL: any the analyzers measure): cal->importance as qs_profile_importance and
 * cal->mean_abs, in *buf (malloc'd, the caller frees it; NULL when no pass ran or the tensor has
 * no linear input); cal->gram borrowed from the calibration pass while it holds the layer's, else
 * for a GPTQ or AWQ f read back from the run's database into *buf (X^T X / tokens, as quantize
 * reads it). 0 or an error (the database's, or no stored Gram matrix). */
int qs_profile_calib(const qs_profile *p, int tensor, const qs_format *f, qs_calib *cal, float **buf, qs_error *err);
/* qs_format_applies, and for GPTQ formats also calibrated inputs; else 0 with a reason. */
int qs_profile_format_applies(const qs_profile *p, int tensor, const qs_format *f, char *why, size_t cap);

/* Dequantized copy of tensor i (malloc'd, caller frees). */
float *qs_profile_weights(const qs_profile *p, int tensor);

/* Tensor i fake-quantized to format f with what calibration measured (*wq, malloc'd), and its
 * weights (*w, malloc'd) when w is not NULL; on failure both NULL and an error. */
int qs_profile_candidate(const qs_profile *p, int tensor, const qs_format *f, float **w, float **wq, qs_error *err);
/* Tensor i in format f as the blocks of f's GGUF type: *st describes them (the tensor's shape, data
 * = *blocks, malloc'd), so the engine can run it as stored (qs_engine_override_stored) at its
 * stored size instead of an f32 copy. Returns 1 (and nothing allocated) when f has no GGUF type
 * for this shape (int, fp8, nf4, MX, AWQ ...: use qs_profile_candidate), 0, or an error. */
int qs_profile_candidate_blocks(const qs_profile *p, int tensor, const qs_format *f, qs_tensor *st, void **blocks, qs_error *err);

/* Tensor i rounded to a format a block of rows at a time, never whole (the format rounds by rows:
 * qs_format_rounds_by_rows): opened, the format's scans have read the stored rows and the rounding
 * has the tensor's calibration; then any rows, in any order. */
typedef struct {
    qs_row_rounding *r;
    const qs_format *f;
    qs_calib cal;
    float *cal_buf; /* what cal points into */
    float *copy;    /* rounding in place goes through a copy */
    size_t copy_cap;
} qs_prof_rows;
int qs_profile_rows_open(const qs_profile *p, int tensor, const qs_format *f, qs_prof_rows *out, qs_error *err);
/* out (n, cols) = the rounding of rows [r0, r0 + n), which w holds (out != w) */
int qs_profile_rows_round(qs_prof_rows *pr, const float *w, float *out, int64_t r0, int64_t n, qs_error *err);
/* the same in place */
int qs_profile_rows_round_in_place(qs_prof_rows *pr, float *w, int64_t r0, int64_t n, int64_t cols, qs_error *err);
void qs_profile_rows_close(qs_prof_rows *pr);

#endif
