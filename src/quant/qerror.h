/* Error of a quantized matrix against the original: MSE, SQNR, max abs error, cosine
 * similarity; and the activation-weighted output error ||(W - W^) X||^2 / ||W X||^2. */
#ifndef QS_QERROR_H
#define QS_QERROR_H

#include <stdint.h>

typedef struct {
    double mse;       /* mean squared error */
    double sqnr_db;   /* 10 log10(sum w^2 / sum (w - w^)^2); +inf when exact */
    double max_abs;   /* largest |w - w^| */
    double cosine;    /* cosine similarity of w and w^ as vectors */
} qs_qerror;

void qs_qerror_compute(const float *w, const float *wq, int64_t n, qs_qerror *out);

/* The same over a matrix streamed a block of rows at a time: qs_qerror_add each block in order,
 * then qs_qerror_finish; the sums run in the same order, so the result is qs_qerror_compute's. */
typedef struct {
    double se, sw, sq, dot, mx;
    int64_t n;
} qs_qerror_acc;
void qs_qerror_add(qs_qerror_acc *a, const float *w, const float *wq, int64_t n);
void qs_qerror_finish(const qs_qerror_acc *a, qs_qerror *out);

/* ||(W - Wq) X^T||^2 / ||W X^T||^2 for W, Wq (rows, cols) and inputs X (n_tok, cols) */
double qs_output_error(const float *w, const float *wq, int64_t rows, int64_t cols, const float *x, int64_t n_tok);

#endif
