/* Activation-weighted rounding for llama.cpp's 32-element block types: what llama-quantize does
 * with an imatrix (ggml's quantize_row_q4_0_impl .. q5_1_impl), reproduced step for step so the
 * blocks are byte-identical to ggml_quantize_chunk with the same importance vector (tested).
 * Each value's weight is importance[column] * sqrt(sigma2 + x^2), sigma2 the row's mean square;
 * the scale (and, for q4_1 / q5_1, the minimum) is then searched to minimise the weighted
 * squared error instead of being fixed by the block's extremes. The blocks are ordinary q4_0 ..
 * q5_1 blocks: llama.cpp loads them unchanged. q6_k's weighted path (importance alone, per
 * 16-value sub-block) lives with its reference code in ggml_kquant.c. */
#include <math.h>
#include <string.h>

#include "../core/qs_dtype.h"
#include "../core/qs_half.h"
#include "ggml_quant.h"

#define QK 32
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define MIN(a, b) ((a) < (b) ? (a) : (b))

/* in ggml_kquant.c */
float qs_ggml_make_qx_quants(int n, int nmax, const float *x, int8_t *L, int rmse_type, const float *qw);
void qs_ggml_quantize_q6_k_weighted(const float *src, uint8_t *dst, int64_t n, const float *qw);

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

static int nearest_int(float fval) {
    float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

/* Asymmetric levels 0..nmax with a minimum <= 0: start from the block's range, then try nstep+1
 * stretched grids and keep the weighted least-squares (scale, min) of the best one. Returns the
 * scale; *the_min is the (positive) offset to subtract. */
static float make_qkx3_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min, uint8_t *Laux,
                              float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0];
    float sum_w = weights[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max <= min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min), scale = 1 / iscale, best_mad = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)MAX(0, MIN(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = diff * diff; /* ggml's order of operations: w * (diff * diff) */
        best_mad += weights[i] * diff;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * (x[i] - min));
            l = MAX(0, MIN(nmax, l));
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float mad = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = diff * diff;
                mad += weights[i] * diff;
            }
            if (mad < best_mad) {
                memcpy(L, Laux, (size_t)n);
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* the 5th bits of 32 levels, as q5_0 / q5_1 store them */
static void pack5(const uint8_t *L, uint8_t *qs, uint8_t *qh_out) {
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
        qs[j] = (uint8_t)((L[j] & 0x0F) | ((L[j + 16] & 0x0F) << 4));
        qh |= ((L[j] & 0x10u) >> 4) << j;
        qh |= ((L[j + 16] & 0x10u) >> 4) << (j + 16);
    }
    memcpy(qh_out, &qh, 4);
}

/* one row of n values; qw: the importance of each column */
static void weighted_row(int type, const float *x, uint8_t *y, int64_t n, const float *qw) {
    float sum_x2 = 0;
    for (int64_t j = 0; j < n; ++j) sum_x2 += x[j] * x[j];
    const float sigma2 = sum_x2 / n;
    const int bytes = (int)qs_dtype_get(type)->type_size;
    for (int64_t ib = 0; ib < n / QK; ++ib, y += bytes) {
        const float *xb = x + QK * ib, *q = qw + QK * ib;
        float weight[QK];
        for (int j = 0; j < QK; ++j) weight[j] = q[j] * sqrtf(sigma2 + xb[j] * xb[j]);
        if (type == QS_DT_Q4_0 || type == QS_DT_Q5_0) {
            int8_t L[QK];
            const int nmax = type == QS_DT_Q4_0 ? 8 : 16;
            put16(y, qs_f32_to_f16(qs_ggml_make_qx_quants(QK, nmax, xb, L, 1, weight)));
            if (type == QS_DT_Q4_0)
                for (int j = 0; j < 16; ++j) y[2 + j] = (uint8_t)(L[j] | (L[j + 16] << 4));
            else
                pack5((const uint8_t *)L, y + 6, y + 2);
        } else {
            uint8_t L[QK], Laux[QK];
            float min;
            const int nmax = type == QS_DT_Q4_1 ? 15 : 31;
            const float d = make_qkx3_quants(QK, nmax, xb, weight, L, &min, Laux, -0.9f, 0.05f, 36);
            put16(y, qs_f32_to_f16(d));
            put16(y + 2, qs_f32_to_f16(-min));
            if (type == QS_DT_Q4_1)
                for (int j = 0; j < 16; ++j) y[4 + j] = (uint8_t)(L[j] | (L[j + 16] << 4));
            else
                pack5(L, y + 8, y + 4);
        }
    }
}

int qs_ggml_can_quantize_weighted(int type) {
    return type == QS_DT_Q4_0 || type == QS_DT_Q4_1 || type == QS_DT_Q5_0 || type == QS_DT_Q5_1 || type == QS_DT_Q8_0 ||
           type == QS_DT_Q6_K;
}

int qs_ggml_quantize_weighted(int type, const float *src, void *dst, int64_t nrows, int64_t n_per_row, const float *importance) {
    if (!qs_ggml_can_quantize_weighted(type) || n_per_row % qs_dtype_get(type)->block_size) return -1;
    uint8_t *y = dst;
    const uint64_t rb = qs_dtype_row_bytes(type, n_per_row);
    for (int64_t r = 0; r < nrows; r++, src += n_per_row, y += rb) {
        /* llama.cpp's q8_0 ignores the imatrix: its rounding is already near-optimal */
        if (type == QS_DT_Q8_0) qs_ggml_quantize(type, src, y, n_per_row);
        else if (type == QS_DT_Q6_K) qs_ggml_quantize_q6_k_weighted(src, y, n_per_row, importance);
        else weighted_row(type, src, y, n_per_row, importance);
    }
    return 0;
}
