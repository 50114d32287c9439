/* Quantization error metrics (see qerror.h), accumulated in double. */
#include "quant/qerror.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>

void qs_qerror_compute(const float *w, const float *wq, int64_t n, qs_qerror *out) {
    double se = 0, sw = 0, sq = 0, dot = 0, mx = 0;
    for (int64_t i = 0; i < n; i++) {
        double a = w[i], b = wq[i], d = a - b;
        se += d * d;
        sw += a * a;
        sq += b * b;
        dot += a * b;
        if (fabs(d) > mx) mx = fabs(d);
    }
    out->mse = n ? se / (double)n : 0;
    out->sqnr_db = se > 0 ? 10.0 * log10(sw / se) : INFINITY;
    out->max_abs = mx;
    out->cosine = sw > 0 && sq > 0 ? dot / sqrt(sw * sq) : (sw == sq ? 1.0 : 0.0);
}

double qs_output_error(const float *w, const float *wq, int64_t rows, int64_t cols, const float *x, int64_t n_tok) {
    float *d = malloc(sizeof(float) * (size_t)(rows * cols));
    float *y = malloc(sizeof(float) * (size_t)(n_tok * rows)), *e = malloc(sizeof(float) * (size_t)(n_tok * rows));
    if (!d || !y || !e) {
        free(d); free(y); free(e);
        return NAN;
    }
    for (int64_t i = 0; i < rows * cols; i++) d[i] = w[i] - wq[i];
    /* y = X W^T, e = X (W - Wq)^T: (n_tok, rows) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n_tok, (int)rows, (int)cols, 1, x, (int)cols, w, (int)cols, 0, y, (int)rows);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n_tok, (int)rows, (int)cols, 1, x, (int)cols, d, (int)cols, 0, e, (int)rows);
    double ne = 0, ny = 0;
    for (int64_t i = 0; i < n_tok * rows; i++) {
        ne += (double)e[i] * e[i];
        ny += (double)y[i] * y[i];
    }
    free(d); free(y); free(e);
    return ny > 0 ? ne / ny : 0;
}
