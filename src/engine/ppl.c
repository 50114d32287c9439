/* Perplexity over chunks (see ppl.h). */
#include "engine/ppl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double qs_log_softmax_at(const float *logits, int n_vocab, int target) {
    float mx = logits[0];
    for (int i = 1; i < n_vocab; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0.0;
    for (int i = 0; i < n_vocab; i++) sum += expf(logits[i] - mx);
    return (double)(logits[target] - mx) - log(sum);
}

int qs_ppl_batch_chunks(const qs_arch *a, int n_ctx, int n_chunks) {
    /* the engine's activations per row: the stream, its norm, q, k, v, the attention output and
     * the two FFN halves (engine.c's qse_grow) */
    const double row = 4.0 * (4.0 * a->dim + 2.0 * a->n_kv_heads * a->head_dim + 2.0 * a->n_heads * a->head_dim +
                              2.0 * (a->n_expert > 0 ? a->expert_ff : a->hidden_dim));
    double rows = QS_PPL_BATCH_BYTES / row;
    if (rows > QS_PPL_BATCH_ROWS) rows = QS_PPL_BATCH_ROWS;
    int b = (int)(rows / n_ctx);
    if (b > n_chunks) b = n_chunks;
    return b < 1 ? 1 : b;
}

int qs_ppl_run(qs_engine *e, const int *tokens, size_t n_tokens, int n_ctx, int bos, int max_chunks, int batch,
               const qs_ppl_progress *progress, qs_ppl_result *res, qs_error *err) {
    memset(res, 0, sizeof *res);
    if (n_ctx < 4) return qs_errorf(err, QS_ERR_USAGE, "context size %d is too small (at least 4)", n_ctx);
    if (n_tokens < 2 * (size_t)n_ctx)
        return qs_errorf(err, QS_ERR_INPUT,
                         "the text has %zu tokens; perplexity with a context of %d needs at least %d (2 x ctx)",
                         n_tokens, n_ctx, 2 * n_ctx);
    int n_chunks = (int)(n_tokens / (size_t)n_ctx);
    if (max_chunks > 0 && max_chunks < n_chunks) n_chunks = max_chunks;
    const qs_arch *a = qs_engine_arch(e);
    const int first = n_ctx / 2, nv = a->n_vocab, L = a->n_layers;
    if (batch <= 0) batch = qs_ppl_batch_chunks(a, n_ctx, n_chunks);
    if (batch > n_chunks) batch = n_chunks;
    const size_t per = (size_t)n_ctx * (size_t)a->dim; /* one chunk's residual stream */
    float *logits = malloc(sizeof(float) * (size_t)(n_ctx - first) * (size_t)nv);
    float *x = malloc(sizeof(float) * per * (size_t)batch);
    int *chunk = malloc(sizeof(int) * (size_t)n_ctx);
    if (!logits || !x || !chunk) {
        free(logits);
        free(x);
        free(chunk);
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory for %d chunks of %d tokens and their logits (%d x %d)",
                         batch, n_ctx, n_ctx - first, nv);
    }
    double nll = 0, nll2 = 0, t0 = now_s(), mm = 0;
    size_t count = 0;
    int rc = 0;
    /* a batch of chunks passes layer l before layer l + 1: each stored weight is expanded once
     * per batch (a file larger than memory is read once per batch), not once per chunk; the
     * arithmetic of every chunk is that of running it alone */
    for (int c0 = 0; c0 < n_chunks && !rc; c0 += batch) {
        const int nb = n_chunks - c0 < batch ? n_chunks - c0 : batch;
        for (int k = 0; k < nb && !rc; k++) {
            memcpy(chunk, tokens + (size_t)(c0 + k) * n_ctx, sizeof(int) * (size_t)n_ctx);
            if (bos >= 0) chunk[0] = bos;
            rc = qs_engine_embed(e, chunk, n_ctx, x + (size_t)k * per, err);
        }
        const double m0 = qs_engine_matmul_seconds(e);
        for (int l = 0; l < L && !rc; l++) {
            rc = qs_engine_run_layer_batch(e, l, x, nb, n_ctx, err);
            if (!rc && progress && progress->layer)
                progress->layer(progress->user, c0 + nb * (l + 1.0) / (L + 1.0), n_chunks, now_s() - t0);
        }
        mm += qs_engine_matmul_seconds(e) - m0;
        for (int k = 0; k < nb && !rc; k++) { /* the head one chunk at a time: its logits are the largest buffer */
            const int c = c0 + k;
            if ((rc = qs_engine_forward_from(e, L, x + (size_t)k * per, n_ctx, first, logits, err))) break;
            mm += qs_engine_matmul_seconds(e);
            const int *src = tokens + (size_t)c * n_ctx;
            for (int i = first; i < n_ctx - 1; i++) {
                double v = -qs_log_softmax_at(logits + (size_t)(i - first) * nv, nv, src[i + 1]);
                nll += v;
                nll2 += v * v;
                count++;
            }
            if (progress && progress->chunk)
                progress->chunk(progress->user, c + 1, n_chunks, exp(nll / (double)count), now_s() - t0);
        }
    }
    free(logits);
    free(x);
    free(chunk);
    if (rc) return rc;
    double mean = nll / (double)count, var = nll2 / (double)count - mean * mean;
    res->mean_nll = mean;
    res->ppl = exp(mean);
    res->ppl_stderr = var > 0 && count > 1 ? sqrt(var / (double)(count - 1)) * res->ppl : 0;
    res->n_tokens = n_tokens;
    res->n_chunks = n_chunks;
    res->n_scored = count;
    res->batch_chunks = batch;
    res->seconds = now_s() - t0;
    res->matmul_seconds = mm;
    res->tokens_per_second = res->seconds > 0 ? (double)n_chunks * n_ctx / res->seconds : 0;
    return 0;
}
