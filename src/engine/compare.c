/* Base vs candidate comparison (see compare.h). */
#include "engine/compare.h"

#include "engine/chunk_pass.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* log-softmax of a row into out (double) */
static void log_softmax(const float *l, int n, double *out) {
    float mx = l[0];
    for (int i = 1; i < n; i++) mx = l[i] > mx ? l[i] : mx;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)(l[i] - mx));
    const double ln = mx + log(sum);
    for (int i = 0; i < n; i++) out[i] = l[i] - ln;
}

/* sums over the scored positions, for the means and standard errors */
typedef struct {
    double nll_b, nll_c, d, d2, kl, kl2, same, dp2;
    size_t n;
} sums;

/* Scores one chunk's `per` positions: lb, lc (per, V) the base's and candidate's logits,
 * targets[i] the token each position predicts; each position's KL goes to kls[acc->n]. */
static void score_chunk(sums *acc, const float *lb, const float *lc, const int *targets, int per, int V, double *pb,
                        double *pc, double *kls) {
    for (int i = 0; i < per; i++) {
        const int target = targets[i];
        log_softmax(lb + (size_t)i * V, V, pb);
        log_softmax(lc + (size_t)i * V, V, pc);
        double k = 0;
        int ab = 0, ac = 0;
        for (int v = 0; v < V; v++) {
            k += exp(pb[v]) * (pb[v] - pc[v]);
            if (pb[v] > pb[ab]) ab = v;
            if (pc[v] > pc[ac]) ac = v;
        }
        k = fmax(k, 0.0);
        kls[acc->n++] = k;
        acc->kl += k;
        acc->kl2 += k * k;
        acc->same += ab == ac;
        acc->nll_b -= pb[target];
        acc->nll_c -= pc[target];
        const double dn = pb[target] - pc[target];
        acc->d += dn;
        acc->d2 += dn * dn;
        const double dp = exp(pc[target]) - exp(pb[target]);
        acc->dp2 += dp * dp;
    }
}

int qs_compare_run(qs_engine *base, qs_engine *cand, const int *tokens, size_t n_tokens, int n_ctx, int bos,
                   int max_chunks, int batch, void (*progress)(void *, int, int), void *user, qs_compare_result *res,
                   qs_error *err) {
    memset(res, 0, sizeof *res);
    const int V = qs_engine_n_vocab(base);
    if (qs_engine_n_vocab(cand) != V)
        return qs_errorf(err, QS_ERR_INPUT, "the candidate's vocabulary (%d) differs from the base's (%d)", qs_engine_n_vocab(cand), V);
    if (n_tokens < 2 * (size_t)n_ctx)
        return qs_errorf(err, QS_ERR_INPUT, "the text has %zu tokens; a context of %d needs at least %d", n_tokens, n_ctx, 2 * n_ctx);
    int n_chunks = (int)(n_tokens / (size_t)n_ctx);
    if (max_chunks > 0 && max_chunks < n_chunks) n_chunks = max_chunks;
    const int first = n_ctx / 2, per = n_ctx - 1 - first;
    const size_t rows = (size_t)(n_ctx - first);
    if (batch <= 0) batch = qs_chunk_batch(base, n_ctx, n_chunks) / 2; /* both engines hold a batch */
    if (batch < 1) batch = 1;
    if (batch > n_chunks) batch = n_chunks;
    const size_t stream = (size_t)n_ctx * (size_t)qs_engine_arch(base)->dim; /* one chunk's residual stream */
    float *lb = malloc(sizeof(float) * rows * (size_t)V), *lc = malloc(sizeof(float) * rows * (size_t)V);
    float *xb = malloc(sizeof(float) * stream * (size_t)batch), *xc = malloc(sizeof(float) * stream * (size_t)batch);
    double *pb = malloc(sizeof(double) * (size_t)V), *pc = malloc(sizeof(double) * (size_t)V);
    double *kls = malloc(sizeof(double) * (size_t)n_chunks * (size_t)per);
    int rc = 0;
    if (!lb || !lc || !xb || !xc || !pb || !pc || !kls)
        rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory for %d chunks of %d tokens and %zu x %d logits", batch, n_ctx,
                       rows, V);
    sums acc = {0};
    const double t0 = now_s();
    const int n_layers = qs_engine_arch(base)->n_layers;
    for (int c0 = 0; c0 < n_chunks && !rc; c0 += batch) {
        const int nb = n_chunks - c0 < batch ? n_chunks - c0 : batch;
        const int *src = tokens + (size_t)c0 * n_ctx;
        if ((rc = qs_chunks_through_layers(base, src, nb, n_ctx, bos, xb, NULL, NULL, err)) ||
            (rc = qs_chunks_through_layers(cand, src, nb, n_ctx, bos, xc, NULL, NULL, err)))
            break;
        for (int k = 0; k < nb && !rc; k++) { /* the heads one chunk at a time: the logits are the largest buffers */
            const int c = c0 + k;
            if ((rc = qs_engine_forward_from(base, n_layers, xb + (size_t)k * stream, n_ctx, first, lb, err)) ||
                (rc = qs_engine_forward_from(cand, n_layers, xc + (size_t)k * stream, n_ctx, first, lc, err)))
                break;
            score_chunk(&acc, lb, lc, tokens + (size_t)c * n_ctx + first + 1, per, V, pb, pc, kls);
            if (progress) progress(user, c + 1, n_chunks);
        }
    }
    if (!rc) {
        const size_t n = acc.n;
        const double N = (double)n, d = acc.d;
        res->n_scored = n;
        res->n_chunks = n_chunks;
        res->ppl_base = exp(acc.nll_b / N);
        res->ppl = exp(acc.nll_c / N);
        res->ppl_ratio = res->ppl / res->ppl_base;
        const double vd = fmax(0, acc.d2 / N - (d / N) * (d / N));
        res->ppl_ratio_se = N > 1 ? res->ppl_ratio * sqrt(vd / (N - 1)) : 0;
        res->kl_mean = acc.kl / N;
        res->kl_se = N > 1 ? sqrt(fmax(0, acc.kl2 / N - res->kl_mean * res->kl_mean) / (N - 1)) : 0;
        qsort(kls, n, sizeof(double), cmp_double);
        res->kl_p99 = kls[(size_t)fmax(0, ceil(0.99 * N) - 1)];
        res->kl_max = kls[n - 1];
        res->same_top1 = acc.same / N;
        res->same_top1_se = sqrt(res->same_top1 * (1 - res->same_top1) / N);
        res->rms_dp = sqrt(acc.dp2 / N);
        res->seconds = now_s() - t0;
    }
    free(lb);
    free(lc);
    free(xb);
    free(xc);
    free(pb);
    free(pc);
    free(kls);
    return rc;
}
