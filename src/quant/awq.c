/* AWQ's scale search and its "-awq" formats (see awq.h). */
#include "quant/awq.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N_ALPHA 21

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

/* tr(dW G dW^T) with dW = wq - w, (rows, cols); tmp (rows, cols) */
static double output_error(const float *w, float *wq, int64_t rows, int64_t cols, const float *gram, float *tmp) {
    for (int64_t i = 0; i < rows * cols; i++) wq[i] -= w[i];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)cols, (int)cols, 1.0f, wq, (int)cols, gram, (int)cols,
                0.0f, tmp, (int)cols);
    double e = 0;
    for (int64_t i = 0; i < rows * cols; i++) e += (double)tmp[i] * wq[i];
    return e;
}

int qs_awq_search(const qs_awq_member *m, int n, int64_t cols, const float *magnitude, const float *gram, float *s,
                  float *alpha) {
    int64_t max_rows = 0;
    for (int k = 0; k < n; k++) max_rows = m[k].rows > max_rows ? m[k].rows : max_rows;
    float *trial = malloc(sizeof(float) * (size_t)cols), *wq = malloc(sizeof(float) * (size_t)(max_rows * cols));
    float *tmp = malloc(sizeof(float) * (size_t)(max_rows * cols));
    int rc = !trial || !wq || !tmp ? -1 : 0;
    double best = INFINITY;
    for (int a = 0; a < N_ALPHA && !rc; a++) {
        const float al = (float)a / (N_ALPHA - 1);
        scales_for(magnitude, cols, al, trial);
        double err = 0;
        for (int k = 0; k < n && !rc; k++) {
            rc = qs_awq_apply(m[k].fmt, m[k].w, wq, m[k].rows, cols, trial);
            if (!rc) err += output_error(m[k].w, wq, m[k].rows, cols, gram, tmp);
        }
        if (!rc && (a == 0 || err < best)) { /* ties keep the smaller alpha: plain rounding first */
            best = err;
            *alpha = al;
            memcpy(s, trial, sizeof(float) * (size_t)cols);
        }
    }
    free(trial);
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
