/* qs_profile_run: the `qsense profile` job driver. Opens the model and the database, registers
 * the model (by content fingerprint), its tensors and the formats, finds or creates the run
 * (keyed by model fingerprint, text hash, formats, settings and qsense version), then runs every
 * analyzer job that is not done yet, each in its own transaction, and exports the run's arrays
 * to HDF5. A killed run resumes where it stopped when the same command is run again. */
#ifndef QS_PROFILE_H
#define QS_PROFILE_H

#include <stdint.h>

#include "core/qs_error.h"

/* fewer calibration tokens than this give per-channel statistics that are noise: refused */
#define QS_PROFILE_MIN_CALIB_TOKENS 64

typedef struct {
    const char *model_path, *tokenizer_path;
    const char *data_path;   /* calibration text */
    const char *formats;     /* comma-separated names, or "default" */
    const char *db_path;
    int threads;
    int ctx;                 /* calibration chunk length (tokens) */
    int calib_tokens;        /* token budget of the calibration pass */
    /* per-tensor sensitivity (sensitivity.h), off unless sensitivity is set */
    int sensitivity;
    const char *eval;        /* evaluation set: a shipped name ("debian"), a manifest, or a text file */
    const char *sens_formats;
    int eval_ctx;            /* chunk length of the evaluation (default: ctx) */
    int topk;                /* base top-k kept per position for KL (default 64) */
    const char *sens_mode;   /* "exact" (default: every job measured), "calibrated" (profile_sweep.h) or
                              * "gradient" (sens_gradient.h) */
    int validate;            /* exact jobs drawn at random to check the estimates (calibrated, gradient) */
    const char *act_formats; /* activation formats swept on every linear input (NULL: none) */
    const char *kv_formats;  /* KV-cache formats swept on every layer's cache (NULL: none) */
    int64_t mem_budget;      /* bytes the run may hold besides the mapped model; 0: 80 % of memory */
} qs_profile_options;

typedef struct {
    int64_t run_id;
    int resumed;
    int jobs_total, jobs_done_before, jobs_run;
    int64_t calib_tokens;    /* tokens actually run through the model (0 if no pass was needed) */
    int sens_jobs_total, sens_jobs_run;
    int site_jobs_total, site_jobs_run; /* activation / KV-cache sites x formats x domains */
    int64_t sens_estimated;  /* (tensor, format, domain) costs estimated rather than measured */
    int n_validated;         /* exact jobs that checked the estimates */
    double spearman, median_rel_error; /* of the estimates on those jobs (NAN: none) */
    int n_tensors, n_formats;
    char hdf5_path[4096];
} qs_profile_summary;

/* what: "memory" (once, before any work: done = the MiB the run is estimated to hold besides
 * the model file, total = the budget in MiB, jobs_done = the file's MiB), "fingerprint", "jobs"
 * (done/total in work units: jobs and calibration layers differ in cost, so the ETA follows the
 * work, not the job count; jobs_done/jobs_total count jobs), "sensitivity" */
typedef void (*qs_profile_progress_fn)(void *user, const char *what, long done, long total, int jobs_done,
                                       int jobs_total);

int qs_profile_run(const qs_profile_options *opt, qs_profile_progress_fn progress, void *user, qs_profile_summary *sum,
                   qs_error *err);

/* An MPI worker's part of the same command (ranks > 0, analyzers/sweep_mpi.h): the model, formats,
 * tensors and the statistics the sweep's formats round with, computed again (the calibration is
 * deterministic), the same base run, then the sweep's units as rank 0 hands them out. No
 * database, no output. */
int qs_profile_serve(const qs_profile_options *opt, qs_error *err);

#endif
