/* What a check measures: a model file, or the reference with a plan's formats applied in memory
 * (each planned tensor fake-quantized, weighted and GPTQ rounding with the statistics from the
 * profile database, and substituted through the engine's overrides; no file written). */
#ifndef QS_CANDIDATE_H
#define QS_CANDIDATE_H

#include "engine/engine.h"
#include "gate/check.h"
#include "io/model.h"

/* The candidate's engine in *e; *cand the model file opened (NULL for a plan); *bufs the
 * substituted weights (one per reference tensor, NULL where none), which the engine borrows:
 * free them after it. */
int qs_check_candidate_engine(const qs_check_options *o, qs_model *ref, qs_model **cand, qs_engine **e, float ***bufs,
                              qs_error *err);

#endif
