/* The sweep's activation sites: every linear layer's input (attn_in: q, k and v's; attn_out;
 * ffn_in: gate and up's; ffn_down_in; the output head's) in each activation format, and every
 * layer's KV cache in each KV-cache format (quant/act_format.h), one site at a time with the
 * rest of the model exact, on each evaluation domain: the KL and perplexity cost of quantizing
 * that one site, as the weight sweep measures a tensor. Rows in site_sensitivity, jobs
 * "site/<site>/<format>/<domain>" (resumable). Runs in the database owner's process (MPI ranks
 * are not used: the sites are few next to the tensors x formats). Static formats take their
 * scale from the calibration pass's range of that input. */
#ifndef QS_SWEEP_SITES_H
#define QS_SWEEP_SITES_H

#include "analyzers/profile.h"
#include "analyzers/sensitivity.h"

/* The number of site jobs of the run and how many are not done yet. */
int qs_sweep_sites_count(qs_profile *p, const qs_evalset *set, int *total, int *pending, qs_error *err);

/* Measures the pending site jobs on the base run s; progress as "sites" events. */
int qs_sweep_sites_run(qs_sens *s, const qs_evalset *set, qs_profile_progress_fn progress, void *user, int *jobs_run,
                       qs_error *err);

#endif
