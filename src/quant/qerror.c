/* Quantization error metrics (see qerror.h), accumulated in double. */
#include "quant/qerror.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>

void qs_qerror_add(qs_qerror_acc *acc, const float *w, const float *wq, int64_t n) {
    double se = acc->se, sw = acc->sw, sq = acc->sq, dot = acc->dot, mx = acc->mx;
    for (int64_t i = 0; i < n; i++) {
        double a = w[i], b = wq[i], d = a - b;
        se += d * d;
        sw += a * a;
        sq += b * b;
        dot += a * b;
        if (fabs(d) > mx) mx = fabs(d);
    }
    *acc = (qs_qerror_acc){se, sw, sq, dot, mx, acc->n + n};
}

void qs_qerror_finish(const qs_qerror_acc *a, qs_qerror *out) {
    out->mse = a->n ? a->se / (double)a->n : 0;
    out->sqnr_db = a->se > 0 ? 10.0 * log10(a->sw / a->se) : INFINITY;
    out->max_abs = a->mx;
    out->cosine = a->sw > 0 && a->sq > 0 ? a->dot / sqrt(a->sw * a->sq) : (a->sw == a->sq ? 1.0 : 0.0);
}

void qs_qerror_compute(const float *w, const float *wq, int64_t n, qs_qerror *out) {
    qs_qerror_acc a = {0};
    qs_qerror_add(&a, w, wq, n);
    qs_qerror_finish(&a, out);
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
