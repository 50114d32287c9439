/* qs_plan: a mixed-precision plan (which format each tensor gets) chosen from the sensitivity
 * measurements in the database for a size budget, its JSON form (docs/plan.md), and checks of
 * a plan against a model or a written GGUF. */
#ifndef QS_PLAN_H
#define QS_PLAN_H

#include <stdint.h>

#include "core/qs_error.h"
#include "reports/planner/plan_solver.h"

struct qs_db;
typedef struct qs_model qs_model;

typedef struct {
    char name[128];
    char format[32];      /* a qsense format name; "f32" / "f16" for tensors kept as floats */
    int64_t rows, cols;
    double bytes;         /* storage of this tensor in the chosen format */
    double cost;          /* predicted KL contribution (domain-weighted) */
    char act[24];         /* the activation format of its input (a W+A plan), "" for none */
} qs_plan_tensor;

typedef struct {
    char model_fingerprint[65];
    char model_path[1024];
    char target[16];      /* "llama.cpp", "llm-compressor" or "any" */
    char act[24];         /* a W+A plan's activation format ("" for weights only) */
    double budget_bytes;  /* tensor-data budget the plan was made for */
    double total_bytes;   /* tensor bytes of the plan */
    double predicted_kl;  /* sum of per-tensor costs (each domain-weighted) */
    int n_domains;
    char domains[16][64];
    double domain_weights[16];
    double predicted_kl_domain[16];
    /* whole-model KL / sum of per-tensor KL, the median over the formats the sweep applied to the
     * whole model (those with KL < 1), per domain; NAN when the run has no whole-model rows */
    double additivity[16];
    int n_tensors;
    qs_plan_tensor *tensors;
    int64_t run_id;
    double total_params;
    /* the size/cost Pareto front over all budgets (its convex hull: one Lagrangian solution per
     * point), smallest first; filled by qs_plan_make only */
    int n_curve;
    qs_plan_point *curve;
    char weights_spec[256]; /* --domain-weights as given ("" for equal) */
    int64_t n_costs_measured, n_costs_estimated; /* (tensor, format, domain) costs behind the options */
    char est_method[32];    /* how the estimated ones were estimated ("calibrated", "gradient"; "" if none) */
    char plan_sha256[65];   /* of the plan file's bytes; set by qs_plan_read_json */
    char source_path[1024]; /* the plan file qs_plan_read_json read ("" for a plan made in memory) */
} qs_plan;

typedef struct {
    const char *db_path;
    double budget_bpw;    /* > 0: bits per weight over the model's parameters */
    double budget_bytes;  /* > 0: bytes of tensor data */
    const char *target;   /* "llama.cpp" (default), "llm-compressor" or "any" */
    const char *domain_weights; /* "legal=2,python=1" or NULL */
    const char *rounding;       /* "auto" (default: every measured format), "rtn" (no "-w" formats),
                                 * "weighted" (a block type's "-w" variant instead of it where measured) */
    const char *act;            /* a W+A plan (plan_act.c): each linear input group (q/k/v, o, gate/up, down)
                                 * either stays 16-bit or takes a weight format and this activation format
                                 * on its input, from the site sweep's rows; NULL: weights only */
} qs_plan_options;

int qs_plan_make(qs_plan **out, const qs_plan_options *opt, qs_error *err);
void qs_plan_free(qs_plan *p);

int qs_plan_write_json(const qs_plan *p, const char *path, qs_error *err);
/* Reads plan.json strictly: every tensor named once, a known format each. */
int qs_plan_read_json(qs_plan **out, const char *path, qs_error *err);
/* The plan entry for a tensor, or NULL. */
const qs_plan_tensor *qs_plan_find(const qs_plan *p, const char *tensor);
/* QS_ERR_INPUT naming the plan file when the plan names a tensor the model lacks: a plan for
 * another model's layout must not half-apply. */
int qs_plan_check_model(const qs_plan *p, const qs_model *m, qs_error *err);

/* Records a plan written to plan_path (its sha256 identifies it), its per-domain prediction and
 * the Pareto front in the database (tables plans, plan_domains, pareto); returns the plan id. */
int qs_plan_record(const qs_plan *p, const char *db_path, const char *plan_path, int64_t *plan_id, qs_error *err);

/* Puts measured figures for one domain beside the plan's prediction (plan_domains), if the
 * database knows the plan with this sha256; returns 1 if recorded, 0 if the plan is unknown. */
typedef struct { double kl_mean, kl_p99, ppl_ratio, top1; } qs_plan_measured;
int qs_plan_record_measured(struct qs_db *db, const char *plan_sha256, int64_t check_id, const char *domain,
                            const qs_plan_measured *m, qs_error *err);

/* Writes a llama-quantize --tensor-type-file (anchored exact patterns) and prints the command. */
int qs_plan_write_tensor_type_file(const qs_plan *p, const char *path, qs_error *err);

/* 1 if any tensor of the plan rounds with the inputs' statistics (a "-w" or "-gptq" format) */
int qs_plan_needs_importance(const qs_plan *p);

/* What the newest profile run of the model with this fingerprint in the database measured about
 * a tensor's inputs: *importance, the inputs' mean square per column (as llama-imatrix computes
 * it), malloc'd, or NULL (uniform) for an untied token embedding, which has no inputs; with
 * want_gram, *gram (cols x cols, X^T X / n_tokens), malloc'd (NULL for that embedding too). QS_ERR_INPUT naming the tensor and
 * the missing statistic when the database lacks it. */
/* The inputs' mean |x| per column (AWQ's statistic) of a tensor, malloc'd; QS_ERR_INPUT naming
 * the tensor when the database lacks it (a profile from before qsense measured it). */
int qs_plan_load_mean_abs(const char *db_path, const char *model_fingerprint, const char *tensor, int64_t cols, float **mean_abs,
                          qs_error *err);
/* The largest |x| among a tensor's calibration inputs (from its channel_absmax array): the range a
 * static activation format's scale is set from; QS_ERR_INPUT naming the tensor when missing. */
int qs_plan_load_input_absmax(const char *db_path, const char *model_fingerprint, const char *tensor, int64_t cols, float *absmax,
                              qs_error *err);
int qs_plan_load_calib(const char *db_path, const char *model_fingerprint, const char *tensor, int64_t cols, int want_gram,
                       float **importance, float **gram, qs_error *err);

/* Writes an llm-compressor recipe (YAML): one config group per integer/fp8 scheme, targets as
 * anchored regexes on Hugging Face module names, float tensors ignored. QS_ERR_USAGE if a tensor
 * has a format llm-compressor cannot express (plan with --target llm-compressor). */
int qs_plan_write_llm_compressor(const qs_plan *p, const char *path, qs_error *err);
/* the llm-compressor input_activations scheme of an activation format; 0 if it has none */
int qs_plan_llmc_act_scheme(const char *act, char *out, size_t cap);
/* 1 if llm-compressor can apply fmt to the tensor called name (GGUF name) */
int qs_plan_llmc_expressible(const char *name, const char *fmt);

/* Compares the tensor types inside a GGUF with the plan: 0 if all match, else QS_ERR_INPUT with
 * the first differences in the message (and *n_diff set). */
int qs_plan_verify_gguf(const qs_plan *p, const char *gguf_path, int *n_diff, qs_error *err);

#endif
