/* AWQ's scale search and its "-awq" formats (see awq.h). */
#include "quant/awq.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* s_c = m_c^alpha normalized, clamped so neither W diag(s) nor the folded 1/s overflows */
static void scales_for(const float *magnitude, int64_t cols, float alpha, float *s) {
    float lo = INFINITY, hi = 0;
    for (int64_t c = 0; c < cols; c++) {
        s[c] = powf(fmaxf(magnitude[c], 1e-8f), alpha);
        lo = fminf(lo, s[c]);
        hi = fmaxf(hi, s[c]);
    }
    const float norm = sqrtf(lo * hi);
    for (int64_t c = 0; c < cols; c++) s[c] = fminf(fmaxf(s[c] / (norm > 0 ? norm : 1.0f), 1e-4f), 1e4f);
}

int qs_awq_apply(const qs_format *fmt, const float *w, float *out, int64_t rows, int64_t cols, const float *s) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) out[r * cols + c] = w[r * cols + c] * s[c];
    if (fmt->ops->fake_quantize(fmt, out, out, rows, cols, NULL)) return -1;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) out[r * cols + c] /= s[c];
    return 0;
}

/* e += tr(dW G dW^T) with dW = wq - w, (rows, cols), summed in row order so that blocks of rows
 * in turn sum as the whole tensor does; tmp (rows, cols) */
static void add_output_error(const float *w, float *wq, int64_t rows, int64_t cols, const float *gram, float *tmp,
                             double *e) {
    for (int64_t i = 0; i < rows * cols; i++) wq[i] -= w[i];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)cols, (int)cols, 1.0f, wq, (int)cols, gram,
                (int)cols, 0.0f, tmp, (int)cols);
    for (int64_t i = 0; i < rows * cols; i++) *e += (double)tmp[i] * wq[i];
}

static float alpha_at(int a) { return (float)a / (QS_AWQ_ALPHAS - 1); }

int qs_awq_add_errors(const qs_format *fmt, const float *w, int64_t rows, int64_t cols, const float *magnitude,
                      const float *gram, float *wq, float *tmp, double *err) {
    float *trial = malloc(sizeof(float) * (size_t)cols);
    int rc = trial ? 0 : -1;
    for (int a = 0; a < QS_AWQ_ALPHAS && !rc; a++) {
        scales_for(magnitude, cols, alpha_at(a), trial);
        if (!(rc = qs_awq_apply(fmt, w, wq, rows, cols, trial)))
            add_output_error(w, wq, rows, cols, gram, tmp, &err[a]);
    }
    free(trial);
    return rc;
}

void qs_awq_pick(const double *err, const float *magnitude, int64_t cols, float *s, float *alpha) {
    int best = 0;
    for (int a = 1; a < QS_AWQ_ALPHAS; a++) /* ties keep the smaller alpha: plain rounding first */
        if (err[a] < err[best]) best = a;
    *alpha = alpha_at(best);
    scales_for(magnitude, cols, *alpha, s);
}

int qs_awq_search(const qs_awq_member *m, int n, int64_t cols, const float *magnitude, const float *gram, float *s,
                  float *alpha) {
    int64_t max_rows = 0;
    for (int k = 0; k < n; k++) max_rows = m[k].rows > max_rows ? m[k].rows : max_rows;
    float *wq = malloc(sizeof(float) * (size_t)(max_rows * cols)),
          *tmp = malloc(sizeof(float) * (size_t)(max_rows * cols));
    double err[QS_AWQ_ALPHAS] = {0};
    int rc = !wq || !tmp ? -1 : 0;
    for (int k = 0; k < n && !rc; k++) { /* each member's error summed alone, then added */
        double e[QS_AWQ_ALPHAS] = {0};
        rc = qs_awq_add_errors(m[k].fmt, m[k].w, m[k].rows, cols, magnitude, gram, wq, tmp, e);
        for (int a = 0; a < QS_AWQ_ALPHAS; a++) err[a] += e[a];
    }
    if (!rc) qs_awq_pick(err, magnitude, cols, s, alpha);
    free(wq);
    free(tmp);
    return rc;
}

/* ---- the "-awq" formats: one tensor's own scales ------------------------------------------- */

static int awq_applies(const qs_format *f, int64_t rows, int64_t cols, char *why, size_t cap) {
    return qs_format_applies(f->base, rows, cols, why, cap);
}

static double awq_bpw(const qs_format *f, int64_t rows, int64_t cols) { return qs_format_bpw(f->base, rows, cols); }

static int awq_fake(const qs_format *f, const float *w, float *out, int64_t rows, int64_t cols, const qs_calib *cal) {
    if (!cal || !cal->gram || !cal->mean_abs) {
        /* a table read by index has no inputs to weigh: plain rounding, as GPTQ formats do */
        if (cal && cal->lookup) return f->base->ops->fake_quantize(f->base, w, out, rows, cols, NULL);
        return -2;
    }
    float *s = malloc(sizeof(float) * (size_t)cols), alpha;
    if (!s) return -1;
    const qs_awq_member m = {w, rows, f->base};
    int rc = qs_awq_search(&m, 1, cols, cal->mean_abs, cal->gram, s, &alpha);
    if (!rc) rc = qs_awq_apply(f->base, w, out, rows, cols, s);
    free(s);
    return rc;
}

const qs_format_ops qs_awq_ops = {awq_applies, awq_bpw, awq_fake, NULL};
