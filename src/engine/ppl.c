/* Perplexity over chunks (see ppl.h). */
#include "engine/ppl.h"

#include "engine/chunk_pass.h"

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

/* per-layer progress of a batch: the chunks done so far counting the batch's fraction */
typedef struct {
    const qs_ppl_progress *progress;
    int c0, nb, n_chunks, n_layers;
    double t0;
} layer_tick;

static void on_layer(void *user, int layers_done) {
    const layer_tick *t = user;
    t->progress->layer(t->progress->user, t->c0 + t->nb * layers_done / (t->n_layers + 1.0), t->n_chunks,
                       now_s() - t->t0);
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
    if (batch <= 0) batch = qs_chunk_batch(e, n_ctx, n_chunks);
    if (batch > n_chunks) batch = n_chunks;
    const size_t per = (size_t)n_ctx * (size_t)a->dim; /* one chunk's residual stream */
    float *logits = malloc(sizeof(float) * (size_t)(n_ctx - first) * (size_t)nv);
    float *x = malloc(sizeof(float) * per * (size_t)batch);
    if (!logits || !x) {
        free(logits);
        free(x);
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory for %d chunks of %d tokens and their logits (%d x %d)",
                         batch, n_ctx, n_ctx - first, nv);
    }
    double nll = 0, nll2 = 0, t0 = now_s(), mm = 0;
    size_t count = 0;
    int rc = 0;
    for (int c0 = 0; c0 < n_chunks && !rc; c0 += batch) {
        const int nb = n_chunks - c0 < batch ? n_chunks - c0 : batch;
        const double m0 = qs_engine_matmul_seconds(e);
        layer_tick tick = {progress, c0, nb, n_chunks, L, t0};
        rc = qs_chunks_through_layers(e, tokens + (size_t)c0 * n_ctx, nb, n_ctx, bos, x,
                                      progress && progress->layer ? on_layer : NULL, &tick, err);
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
