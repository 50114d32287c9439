/* Perplexity with llama-perplexity's convention: the token stream (BOS first) is cut into
 * consecutive chunks of n_ctx tokens, the last partial chunk dropped; the first token of each
 * chunk is replaced by BOS; each chunk runs from an empty cache; only the predictions for
 * positions n_ctx/2 .. n_ctx-1 are scored. PPL = exp(mean NLL); its standard error is
 * propagated from the NLL's as llama-perplexity prints it. */
#ifndef QS_PPL_H
#define QS_PPL_H

#include <stddef.h>

#include "engine/engine.h"

typedef struct {
    double ppl, ppl_stderr;
    double mean_nll;
    size_t n_tokens;   /* tokens in the text, BOS included */
    int n_chunks;
    size_t n_scored;
    double seconds;
    double tokens_per_second; /* tokens evaluated (n_chunks * n_ctx) per second */
    double matmul_seconds;
} qs_ppl_result;

/* Called after each chunk with the running perplexity. */
typedef void (*qs_ppl_progress_fn)(void *user, int chunk, int n_chunks, double running_ppl, double elapsed_s);

/* max_chunks <= 0: all chunks. bos < 0: keep the first token of each chunk as it is. */
int qs_ppl_run(qs_engine *e, const int *tokens, size_t n_tokens, int n_ctx, int bos, int max_chunks,
               qs_ppl_progress_fn progress, void *user, qs_ppl_result *res, qs_error *err);

/* log p(target) from one row of logits, as llama.cpp computes it (max in float, sum in double). */
double qs_log_softmax_at(const float *logits, int n_vocab, int target);

#endif
