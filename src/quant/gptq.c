/* GPTQ-style error compensation inside llama.cpp's block types (Frantar et al., "GPTQ", 2022):
 * the columns (input features) of W are rounded one at a time, and each column's rounding
 * error is pushed onto the columns not yet rounded, weighted by the inverse of the inputs'
 * Hessian H = X^T X, so the layer's output error ||(W - W^) X||^2 is what is minimised rather
 * than each weight's own error. The blocks' scales are fitted when the sweep reaches a block's
 * first column, on the weights as compensated so far (the "-w" formats' activation-weighted
 * fit; q8_0's plain one), then kept; only the codes are chosen here
 * (ggml_codes.c). The result is an ordinary block: llama.cpp loads it unchanged.
 *
 * Data flow: H from the profile's calibration pass (qs_act_stats.gram, or the `gram` arrays in
 * the database); H + 1 % of its mean diagonal (dampening), Cholesky factor U of H^-1 (upper,
 * H^-1 = U^T U) by LAPACK; then the columns in batches of 128 (or one 256-wide K-quant
 * super-block) with the batch's error applied to the rest by one sgemm. Inputs that never fired
 * (a zero diagonal) get a unit diagonal: their weights stay where rounding puts them. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_dtype.h"
#include "quant/ggml_quant.h"

/* LAPACK, from OpenBLAS (column-major; a symmetric matrix is its own transpose) */
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info);

int qs_gptq_supports(int type) { return qs_ggml_code_max(type) > 0 && qs_ggml_can_quantize(type); }

/* U (cols, cols), row-major upper triangle, with (H + damp)^-1 = U^T U. Raises the dampening
 * tenfold while H is not numerically positive definite. Returns 0, -1 when out of memory, -3
 * when H has a non-finite value or cannot be factored. */
static int inverse_cholesky(const float *gram, int n, float *u) {
    double *h = malloc(sizeof(double) * (size_t)n * (size_t)n);
    if (!h) return -1;
    double mean_diag = 0;
    for (size_t k = 0; k < (size_t)n * n; k++)
        if (!isfinite(gram[k])) { /* a corrupt statistic: refuse rather than write garbage codes */
            free(h);
            return -3;
        }
    for (int i = 0; i < n; i++) mean_diag += gram[(size_t)i * n + i] > 0 ? gram[(size_t)i * n + i] : 0;
    mean_diag = mean_diag > 0 ? mean_diag / n : 1;
    int info = 1;
    for (double damp = 0.01; info && damp <= 10; damp *= 10) {
        for (size_t k = 0; k < (size_t)n * n; k++) h[k] = gram[k];
        for (int i = 0; i < n; i++) {
            double *d = &h[(size_t)i * n + i];
            if (*d <= 0) { /* a dead input: no correlations to use */
                for (int j = 0; j < n; j++) h[(size_t)i * n + j] = h[(size_t)j * n + i] = 0;
                *d = mean_diag;
            }
            *d += damp * mean_diag;
        }
        /* column-major "L" = row-major upper: H = L L^T, then H^-1 from it */
        dpotrf_("L", &n, h, &n, &info);
        if (!info) dpotri_("L", &n, h, &n, &info);
        if (info) continue;
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++) h[(size_t)j * n + i] = h[(size_t)i * n + j];
        dpotrf_("L", &n, h, &n, &info); /* row-major upper U: H^-1 = U^T U */
    }
    if (!info)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) u[(size_t)i * n + j] = j >= i ? (float)h[(size_t)i * n + j] : 0.0f;
    free(h);
    return info ? -3 : 0;
}

/* the affine map of every element of a block from its code, for the block's fixed scales:
 * value = a * code + b (qs_dtype dequantizes the block with every code 0, then every code 1) */
static void block_affine(int type, const uint8_t *block, int bs, int ts, uint8_t *tmp, float *a, float *b) {
    const qs_dtype_traits *tr = qs_dtype_get(type);
    memcpy(tmp, block, (size_t)ts);
    for (int e = 0; e < bs; e++) qs_ggml_code_set(type, tmp, e, 0);
    tr->to_float(tmp, b, bs);
    for (int e = 0; e < bs; e++) qs_ggml_code_set(type, tmp, e, 1);
    tr->to_float(tmp, a, bs);
    for (int e = 0; e < bs; e++) a[e] -= b[e];
}

int qs_gptq_factor_make(const float *gram, int64_t cols, qs_gptq_factor *out) {
    *out = (qs_gptq_factor){.cols = cols};
    if (cols <= 0 || cols > 1 << 20) return -3;
    const int n = (int)cols;
    out->u = malloc(sizeof(float) * (size_t)n * (size_t)n);
    out->imp = malloc(sizeof(float) * (size_t)n);
    int rc = !out->u || !out->imp ? -1 : inverse_cholesky(gram, n, out->u);
    if (rc) {
        qs_gptq_factor_free(out);
        return rc;
    }
    double mean_diag = 0;
    for (int i = 0; i < n; i++) mean_diag += fmax(0.0, gram[(size_t)i * n + i]);
    mean_diag = mean_diag > 0 ? mean_diag / n : 1;
    /* the scale fit's importance: the inputs' mean square up to a factor, never exactly 0 */
    for (int i = 0; i < n; i++) out->imp[i] = (float)(fmax(0.0, gram[(size_t)i * n + i]) / mean_diag + 1e-6);
    return 0;
}

void qs_gptq_factor_free(qs_gptq_factor *g) {
    free(g->u);
    free(g->imp);
    g->u = g->imp = NULL;
}

int qs_gptq_quantize(int type, const float *w, int64_t rows, int64_t cols, const float *gram, void *dst) {
    if (!qs_gptq_supports(type)) return -2;
    if (cols % qs_dtype_get(type)->block_size || cols > 1 << 20) return -2;
    qs_gptq_factor g;
    int rc = qs_gptq_factor_make(gram, cols, &g);
    if (!rc) rc = qs_gptq_quantize_factored(type, w, rows, &g, dst);
    qs_gptq_factor_free(&g);
    return rc;
}

int qs_gptq_quantize_factored(int type, const float *w, int64_t rows, const qs_gptq_factor *g, void *dst) {
    if (!qs_gptq_supports(type)) return -2;
    const qs_dtype_traits *tr = qs_dtype_get(type);
    const int bs = tr->block_size, ts = tr->type_size, code_max = qs_ggml_code_max(type);
    const int64_t cols = g->cols;
    if (cols % bs || cols > 1 << 20) return -2;
    const int n = (int)cols, batch = bs >= 128 ? bs : 128;
    const uint64_t rb = qs_dtype_row_bytes(type, cols);
    const float *u = g->u, *imp = g->imp;
    float *wk = malloc(sizeof(float) * (size_t)rows * (size_t)n);
    float *errs = malloc(sizeof(float) * (size_t)rows * (size_t)batch);
    float *a = malloc(sizeof(float) * (size_t)rows * (size_t)bs),
          *b = malloc(sizeof(float) * (size_t)rows * (size_t)bs);
    uint8_t *tmp = malloc((size_t)ts);
    int rc = !wk || !errs || !a || !b || !tmp ? -1 : 0;
    if (!rc) memcpy(wk, w, sizeof(float) * (size_t)rows * (size_t)n);
    const int fit_weighted = qs_ggml_can_quantize_weighted(type);
    for (int i1 = 0; i1 < n && !rc; i1 += batch) {
        const int i2 = i1 + batch < n ? i1 + batch : n, cnt = i2 - i1;
        for (int j = i1; j < i2; j++) {
            if (j % bs == 0) /* a new block: fit its scales on the compensated weights, then keep them */
                for (int64_t r = 0; r < rows; r++) {
                    uint8_t *blk = (uint8_t *)dst + (size_t)r * rb + (size_t)(j / bs) * ts;
                    const float *x = wk + (size_t)r * n + j;
                    if (fit_weighted) qs_ggml_quantize_weighted(type, x, blk, 1, bs, imp + j);
                    else qs_ggml_quantize(type, x, blk, bs);
                    block_affine(type, blk, bs, ts, tmp, a + (size_t)r * bs, b + (size_t)r * bs);
                }
            const float ujj = u[(size_t)j * n + j];
            const float *urow = u + (size_t)j * n;
            for (int64_t r = 0; r < rows; r++) {
                float *wr = wk + (size_t)r * n;
                const int e = j % bs;
                const float ae = a[(size_t)r * bs + e], be = b[(size_t)r * bs + e];
                long code = ae != 0 ? lrintf((wr[j] - be) / ae) : 0;
                code = code < 0 ? 0 : code > code_max ? code_max : code;
                qs_ggml_code_set(type, (uint8_t *)dst + (size_t)r * rb + (size_t)(j / bs) * ts, e, (int)code);
                const float err = (wr[j] - (ae * (float)code + be)) / ujj;
                for (int k = j + 1; k < i2; k++) wr[k] -= err * urow[k];
                errs[(size_t)r * batch + (j - i1)] = err;
            }
        }
        /* the batch's errors onto every later column: W[:, i2:] -= E (rows, cnt) x U[i1:i2, i2:] (cnt, n - i2) */
        if (i2 < n)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, n - i2, cnt, -1.0f, errs, batch,
                        u + (size_t)i1 * n + i2, n, 1.0f, wk + i2, n);
    }
    free(wk);
    free(errs);
    free(a);
    free(b);
    free(tmp);
    return rc;
}
