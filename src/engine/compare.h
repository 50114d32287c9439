/* Comparing a candidate model with a base model on the same tokens, as llama-perplexity
 * --kl-divergence does: the same chunks (BOS first, second half scored), and per scored
 * position the full-vocabulary KL(base || candidate), whether the most likely token is the
 * same, and the change in the probability of the true token. Both models run their chunks
 * layer-major in batches (chunk_pass.h); progress is called after each chunk is scored. */
#ifndef QS_COMPARE_H
#define QS_COMPARE_H

#include <stddef.h>

#include "engine/engine.h"

typedef struct {
    size_t n_scored;
    int n_chunks;
    double ppl_base, ppl, ppl_se;
    double ppl_ratio, ppl_ratio_se;       /* ppl / ppl_base, paired standard error */
    double kl_mean, kl_se, kl_p99, kl_max;
    double same_top1, same_top1_se;       /* fractions */
    double rms_dp;                        /* RMS of p_candidate(true) - p_base(true) */
    double seconds;
} qs_compare_result;

/* batch: chunks through the layers together (<= 0: half of qs_chunk_batch, both engines holding a
 * batch's activations; 1: chunk by chunk); the figures do not depend on it */
int qs_compare_run(qs_engine *base, qs_engine *cand, const int *tokens, size_t n_tokens, int n_ctx, int bos,
                   int max_chunks, int batch, void (*progress)(void *, int, int), void *user, qs_compare_result *res,
                   qs_error *err);

#endif
