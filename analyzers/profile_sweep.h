/* The sensitivity sweep of a profile run, as jobs "sensitivity/<tensor>/<format>/<domain>" (one
 * matrix quantized) and "whole/<format>/<domain>" (every matrix), one transaction each: the jobs
 * a previous run finished are skipped, the base distributions computed once, each candidate
 * quantized once for all domains. */
#ifndef QS_PROFILE_SWEEP_H
#define QS_PROFILE_SWEEP_H

#include "analyzers/analyzer.h"
#include "analyzers/profile.h"
#include "io/evalset.h"

int qs_profile_sweep(qs_profile *p, const qs_profile_options *opt, const qs_evalset *set, qs_profile_progress_fn progress,
                     void *user, qs_profile_summary *sum, qs_error *err);

#endif
