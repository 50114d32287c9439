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
    int batch_chunks; /* chunks that passed each layer together */
} qs_ppl_result;

/* Optional callbacks, each may be NULL. chunk: after each chunk is scored (1-based, in order),
 * with the running perplexity. layer: after each layer of a batch of chunks, with the chunks done
 * so far counting the batch's fraction (for a progress line: a batch of an 8B model's chunks
 * takes minutes before its first chunk is scored). */
typedef struct {
    void (*chunk)(void *user, int chunk, int n_chunks, double running_ppl, double elapsed_s);
    void (*layer)(void *user, double chunks_done, int n_chunks, double elapsed_s);
    void *user;
} qs_ppl_progress;

/* max_chunks <= 0: all chunks. bos < 0: keep the first token of each chunk as it is. The chunks
 * go through the layers `batch` at a time (<= 0: qs_chunk_batch; 1: chunk-major), each
 * scored exactly as if run alone. */
int qs_ppl_run(qs_engine *e, const int *tokens, size_t n_tokens, int n_ctx, int bos, int max_chunks, int batch,
               const qs_ppl_progress *progress, qs_ppl_result *res, qs_error *err);

/* log p(target) from one row of logits, as llama.cpp computes it (max in float, sum in double). */
double qs_log_softmax_at(const float *logits, int n_vocab, int target);

#endif
