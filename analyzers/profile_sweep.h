/* The sensitivity sweep of a profile run, as jobs "sensitivity/<tensor>/<format>/<domain>" (one
 * matrix quantized) and "whole/<format>/<domain>" (every matrix), one transaction each: the jobs
 * a previous run finished are skipped, the base distributions computed once, each candidate
 * quantized once for all domains.
 *
 * Three modes. "exact" measures every (tensor, format, domain). "calibrated" measures one probe
 * format per tensor (the applicable format nearest 4.5 bits per weight) on every domain, and
 * estimates every other format f as
 *     KL(f) = KL(probe) x output_error(f) / output_error(probe)
 * (the tensor's gain, KL per unit of activation-weighted output error, learnt from the probe;
 * the output errors come from the analyzers, run on the sweep's formats too). Estimates go to
 * sensitivity_estimates with their standard error, beside the measured rows; a format whose
 * output error is unknown, and every format of a tensor without one, is measured. --validate N
 * then measures N estimated jobs drawn at random (a fixed seed: a resumed run draws the same)
 * and records the rank correlation and relative error of the estimates on them.
 * "gradient" estimates every (tensor, format, domain) from one backward pass per evaluation chunk
 * (sens_gradient.h) and measures only the whole-model jobs, an untied output head's and the
 * validation draw; the estimates come first, so the map is there before the exact jobs run. */
#ifndef QS_PROFILE_SWEEP_H
#define QS_PROFILE_SWEEP_H

#include "analyzers/analyzer.h"
#include "analyzers/profile.h"
#include "io/evalset.h"

int qs_profile_sweep(qs_profile *p, const qs_profile_options *opt, const qs_evalset *set, qs_profile_progress_fn progress,
                     void *user, qs_profile_summary *sum, qs_error *err);

/* Spearman's rank correlation of two series (ties get their mean rank); NAN for n < 3. */
double qs_spearman(const double *a, const double *b, int n);

#endif
