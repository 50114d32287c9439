/* Activation-weighted rounding for llama.cpp's 32-element block types: what llama-quantize does
 * with an imatrix (ggml's quantize_row_q4_0_impl .. q5_1_impl), reproduced step for step so the
 * blocks are byte-identical to ggml_quantize_chunk with the same importance vector (tested).
 * Each value's weight is importance[column] * sqrt(sigma2 + x^2), sigma2 the row's mean square;
 * the scale (and, for q4_1 / q5_1, the minimum) is then searched to minimise the weighted
 * squared error instead of being fixed by the block's extremes. The blocks are ordinary q4_0 ..
 * q5_1 blocks: llama.cpp loads them unchanged. The K-quants' weighted paths (q2_k .. q6_k)
 * live with their reference code in ggml_kquant.c. */
#include <math.h>
#include <string.h>

#include "core/qs_dtype.h"
#include "core/qs_half.h"
#include "quant/ggml_quant.h"
#include "quant/ggml_quant_impl.h"

#define QK 32
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define MIN(a, b) ((a) < (b) ? (a) : (b))

#define put16 qs_put16

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
            const float d = qs_ggml_make_qkx2_quants(QK, nmax, xb, weight, L, &min, Laux, -0.9f, 0.05f, 36, 0);
            put16(y, qs_f32_to_f16(d));
            put16(y + 2, qs_f32_to_f16(-min));
            if (type == QS_DT_Q4_1)
                for (int j = 0; j < 16; ++j) y[4 + j] = (uint8_t)(L[j] | (L[j + 16] << 4));
            else
                pack5(L, y + 8, y + 4);
        }
    }
}

static int tr_is_k(int type) { return qs_dtype_get(type)->block_size == 256; }

int qs_ggml_can_quantize_weighted(int type) {
    return type == QS_DT_Q4_0 || type == QS_DT_Q4_1 || type == QS_DT_Q5_0 || type == QS_DT_Q5_1 || type == QS_DT_Q8_0 ||
           type == QS_DT_Q2_K || type == QS_DT_Q3_K || type == QS_DT_Q4_K || type == QS_DT_Q5_K || type == QS_DT_Q6_K ||
           type == QS_DT_IQ4_NL || type == QS_DT_IQ4_XS || qs_ggml_is_lattice_iq(type);
}

int qs_ggml_quantize_weighted(int type, const float *src, void *dst, int64_t nrows, int64_t n_per_row, const float *importance) {
    if (!qs_ggml_can_quantize_weighted(type) || n_per_row % qs_dtype_get(type)->block_size) return -1;
    uint8_t *y = dst;
    const uint64_t rb = qs_dtype_row_bytes(type, n_per_row);
    for (int64_t r = 0; r < nrows; r++, src += n_per_row, y += rb) {
        /* llama.cpp's q8_0 ignores the imatrix: its rounding is already near-optimal */
        if (type == QS_DT_Q8_0) qs_ggml_quantize(type, src, y, n_per_row);
        else if (type == QS_DT_IQ4_NL || type == QS_DT_IQ4_XS)
            qs_ggml_quantize_lut(type, src, y, n_per_row, importance);
        else if (qs_ggml_is_lattice_iq(type))
            qs_ggml_quantize_iq(type, src, y, n_per_row, importance);
        else if (tr_is_k(type))
            qs_ggml_quantize_k_weighted(type, src, y, n_per_row, importance);
        else weighted_row(type, src, y, n_per_row, importance);
    }
    return 0;
}
