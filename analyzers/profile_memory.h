/* What a `qsense profile` run will hold in memory, estimated before it starts, so that a run
 * that cannot fit says so with the figures instead of being killed hours later. The model file
 * is mapped (its pages are the OS's to drop); the rest is the process's own. */
#ifndef QS_PROFILE_MEMORY_H
#define QS_PROFILE_MEMORY_H

#include <stdint.h>

#include "analyzers/profile.h"
#include "core/qs_error.h"
#include "io/evalset.h"
#include "io/model.h"

typedef struct {
    double file;      /* the mapped model file(s) */
    double stats;     /* calibration statistics: channel statistics of every linear input, and an X^T X
                       * per input of one layer at a time (of every layer on an MPI worker), and
                       * the calibration chunks' residual stream */
    double widest;    /* the widest input's X^T X (the FFN down projection's, usually) */
    double tensors;   /* the analyzers' row blocks, and the largest tensor whole where a format or the sweep needs it */
    double engine;    /* weight scratch and one chunk's activations and logits */
    double sens;      /* the sweep's base-run caches (residual stream per layer, top-k), 0 without */
    double sens_cache; /* of which the residual streams (every layer's, and the whole-model rows' waiting
                        * chunks), which can go to a file */
    double whole;      /* of which the whole-model rows' quantized weights at the worst format: one
                        * layer's, in a GGUF type's blocks or else in f32 */
    double own;       /* everything but the file */
} qs_profile_memory;

/* all_grams: every layer's X^T X is kept to the end (an MPI worker with a GPTQ or AWQ sweep format;
 * a profile run reads a tensor's back from its database instead). */
void qs_profile_estimate_memory(const qs_model *m, const qs_profile_options *opt, const qs_evalset *set, int all_grams,
                                qs_profile_memory *out);

/* The budget for `own`: opt->mem_budget if set, else 80 % of physical memory. */
double qs_profile_memory_budget(const qs_profile_options *opt);

/* QS_ERR_INPUT with the figures (and what would make it fit) when the estimate exceeds the
 * budget even with the sweep's residual caches in a file; *spill = 1 when it fits only so (the
 * sweep then maps them from a scratch file beside the database). */
int qs_profile_check_memory(const qs_model *m, const qs_profile_options *opt, const qs_evalset *set, int all_grams, int *spill,
                            qs_error *err);

#endif
