/* Base vs candidate comparison (see compare.h). */
#include "engine/compare.h"

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

int qs_compare_run(qs_engine *base, qs_engine *cand, const int *tokens, size_t n_tokens, int n_ctx, int bos,
                   int max_chunks, void (*progress)(void *, int, int), void *user, qs_compare_result *res, qs_error *err) {
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
    float *lb = malloc(sizeof(float) * rows * (size_t)V), *lc = malloc(sizeof(float) * rows * (size_t)V);
    double *pb = malloc(sizeof(double) * (size_t)V), *pc = malloc(sizeof(double) * (size_t)V);
    double *kls = malloc(sizeof(double) * (size_t)n_chunks * (size_t)per);
    int *chunk = malloc(sizeof(int) * (size_t)n_ctx);
    if (!lb || !lc || !pb || !pc || !kls || !chunk) {
        free(lb); free(lc); free(pb); free(pc); free(kls); free(chunk);
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory for %zu x %d logits", rows, V);
    }
    double nll_b = 0, nll_c = 0, d = 0, d2 = 0, kl = 0, kl2 = 0, same = 0, dp2 = 0, t0 = now_s();
    size_t n = 0;
    int rc = 0;
    for (int c = 0; c < n_chunks && !rc; c++) {
        memcpy(chunk, tokens + (size_t)c * n_ctx, sizeof(int) * (size_t)n_ctx);
        if (bos >= 0) chunk[0] = bos;
        if ((rc = qs_engine_forward(base, chunk, n_ctx, first, lb, err)) || (rc = qs_engine_forward(cand, chunk, n_ctx, first, lc, err)))
            break;
        for (int i = 0; i < per; i++) {
            const int target = tokens[(size_t)c * n_ctx + first + i + 1];
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
            kls[n] = k;
            kl += k;
            kl2 += k * k;
            same += ab == ac;
            nll_b -= pb[target];
            nll_c -= pc[target];
            const double dn = pb[target] - pc[target];
            d += dn;
            d2 += dn * dn;
            const double dp = exp(pc[target]) - exp(pb[target]);
            dp2 += dp * dp;
            n++;
        }
        if (progress) progress(user, c + 1, n_chunks);
    }
    if (!rc) {
        const double N = (double)n;
        res->n_scored = n;
        res->n_chunks = n_chunks;
        res->ppl_base = exp(nll_b / N);
        res->ppl = exp(nll_c / N);
        res->ppl_ratio = res->ppl / res->ppl_base;
        const double vd = fmax(0, d2 / N - (d / N) * (d / N));
        res->ppl_ratio_se = N > 1 ? res->ppl_ratio * sqrt(vd / (N - 1)) : 0;
        res->kl_mean = kl / N;
        res->kl_se = N > 1 ? sqrt(fmax(0, kl2 / N - res->kl_mean * res->kl_mean) / (N - 1)) : 0;
        qsort(kls, n, sizeof(double), cmp_double);
        res->kl_p99 = kls[(size_t)fmax(0, ceil(0.99 * N) - 1)];
        res->kl_max = kls[n - 1];
        res->same_top1 = same / N;
        res->same_top1_se = sqrt(res->same_top1 * (1 - res->same_top1) / N);
        res->rms_dp = sqrt(dp2 / N);
        res->seconds = now_s() - t0;
    }
    free(lb); free(lc); free(pb); free(pc); free(kls); free(chunk);
    return rc;
}
