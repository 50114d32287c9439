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

int qs_ppl_run(qs_engine *e, const int *tokens, size_t n_tokens, int n_ctx, int bos, int max_chunks,
               qs_ppl_progress_fn progress, void *user, qs_ppl_result *res, qs_error *err) {
    memset(res, 0, sizeof *res);
    if (n_ctx < 4) return qs_errorf(err, QS_ERR_USAGE, "context size %d is too small (at least 4)", n_ctx);
    if (n_tokens < 2 * (size_t)n_ctx)
        return qs_errorf(err, QS_ERR_INPUT,
                         "the text has %zu tokens; perplexity with a context of %d needs at least %d (2 x ctx)",
                         n_tokens, n_ctx, 2 * n_ctx);
    int n_chunks = (int)(n_tokens / (size_t)n_ctx);
    if (max_chunks > 0 && max_chunks < n_chunks) n_chunks = max_chunks;
    const int first = n_ctx / 2;
    const int nv = qs_engine_n_vocab(e);
    float *logits = malloc(sizeof(float) * (size_t)(n_ctx - first) * (size_t)nv);
    int *chunk = malloc(sizeof(int) * (size_t)n_ctx);
    if (!logits || !chunk) {
        free(logits);
        free(chunk);
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory for logits (%d x %d)", n_ctx - first, nv);
    }
    double nll = 0, nll2 = 0, t0 = now_s(), mm = 0;
    size_t count = 0;
    int rc = 0;
    for (int c = 0; c < n_chunks; c++) {
        const int *src = tokens + (size_t)c * n_ctx;
        memcpy(chunk, src, sizeof(int) * (size_t)n_ctx);
        if (bos >= 0) chunk[0] = bos;
        if ((rc = qs_engine_forward(e, chunk, n_ctx, first, logits, err))) break;
        mm += qs_engine_matmul_seconds(e);
        for (int i = first; i < n_ctx - 1; i++) {
            double v = -qs_log_softmax_at(logits + (size_t)(i - first) * nv, nv, src[i + 1]);
            nll += v;
            nll2 += v * v;
            count++;
        }
        if (progress) progress(user, c + 1, n_chunks, exp(nll / (double)count), now_s() - t0);
    }
    free(logits);
    free(chunk);
    if (rc) return rc;
    double mean = nll / (double)count, var = nll2 / (double)count - mean * mean;
    res->mean_nll = mean;
    res->ppl = exp(mean);
    res->ppl_stderr = var > 0 && count > 1 ? sqrt(var / (double)(count - 1)) * res->ppl : 0;
    res->n_tokens = n_tokens;
    res->n_chunks = n_chunks;
    res->n_scored = count;
    res->seconds = now_s() - t0;
    res->matmul_seconds = mm;
    res->tokens_per_second = res->seconds > 0 ? (double)n_chunks * n_ctx / res->seconds : 0;
    return 0;
}
