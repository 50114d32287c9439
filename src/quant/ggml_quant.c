/* llama.cpp block quantizers (see ggml_quant.h). The arithmetic follows ggml's reference
 * quantize_row_*_ref step for step (same float operations in the same order, the same casts),
 * because byte-exact output is the contract: tests compare against blocks llama-quantize wrote.
 * The 32-element types are here; the K-quants are in ggml_kquant.c. */
#include "quant/ggml_quant.h"
#include "quant/ggml_quant_impl.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "core/qs_dtype.h"
#include "core/qs_half.h"

#define QK 32

static int imin(int a, int b) { return a < b ? a : b; }

#define put16 qs_put16

/* the value of largest magnitude, with its sign (first one on ties) */
static float signed_absmax(const float *x, int n, float *amax_out) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        const float v = x[j];
        if (amax < fabsf(v)) {
            amax = fabsf(v);
            max = v;
        }
    }
    if (amax_out) *amax_out = amax;
    return max;
}

static void q4_0(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK, y += 18) {
        const float max = signed_absmax(x, QK, NULL);
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        put16(y, qs_f32_to_f16(d));
        for (int j = 0; j < QK / 2; ++j) {
            const float x0 = x[j] * id, x1 = x[QK / 2 + j] * id;
            const uint8_t xi0 = (uint8_t)imin(15, (int8_t)(x0 + 8.5f));
            const uint8_t xi1 = (uint8_t)imin(15, (int8_t)(x1 + 8.5f));
            y[2 + j] = xi0 | (uint8_t)(xi1 << 4);
        }
    }
}

static void min_max(const float *x, int n, float *mn, float *mx) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    *mn = min;
    *mx = max;
}

static void q4_1(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK, y += 20) {
        float min, max;
        min_max(x, QK, &min, &max);
        const float d = (max - min) / ((1 << 4) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        put16(y, qs_f32_to_f16(d));
        put16(y + 2, qs_f32_to_f16(min));
        for (int j = 0; j < QK / 2; ++j) {
            const float x0 = (x[j] - min) * id, x1 = (x[QK / 2 + j] - min) * id;
            const uint8_t xi0 = (uint8_t)imin(15, (int8_t)(x0 + 0.5f));
            const uint8_t xi1 = (uint8_t)imin(15, (int8_t)(x1 + 0.5f));
            y[4 + j] = xi0 | (uint8_t)(xi1 << 4);
        }
    }
}

static void q5_0(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK, y += 22) {
        const float max = signed_absmax(x, QK, NULL);
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        put16(y, qs_f32_to_f16(d));
        uint32_t qh = 0;
        for (int j = 0; j < QK / 2; ++j) {
            const float x0 = x[j] * id, x1 = x[QK / 2 + j] * id;
            const uint8_t xi0 = (uint8_t)imin(31, (int8_t)(x0 + 16.5f));
            const uint8_t xi1 = (uint8_t)imin(31, (int8_t)(x1 + 16.5f));
            y[6 + j] = (uint8_t)((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
            qh |= ((xi0 & 0x10u) >> 4) << (j + 0);
            qh |= ((xi1 & 0x10u) >> 4) << (j + QK / 2);
        }
        memcpy(y + 2, &qh, 4);
    }
}

static void q5_1(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK, y += 24) {
        float min, max;
        min_max(x, QK, &min, &max);
        const float d = (max - min) / ((1 << 5) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        put16(y, qs_f32_to_f16(d));
        put16(y + 2, qs_f32_to_f16(min));
        uint32_t qh = 0;
        for (int j = 0; j < QK / 2; ++j) {
            const float x0 = (x[j] - min) * id, x1 = (x[QK / 2 + j] - min) * id;
            const uint8_t xi0 = (uint8_t)(x0 + 0.5f);
            const uint8_t xi1 = (uint8_t)(x1 + 0.5f);
            y[8 + j] = (uint8_t)((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
            qh |= ((xi0 & 0x10u) >> 4) << (j + 0);
            qh |= ((xi1 & 0x10u) >> 4) << (j + QK / 2);
        }
        memcpy(y + 4, &qh, 4);
    }
}

static void q8_0(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK, y += 34) {
        float amax;
        signed_absmax(x, QK, &amax);
        const float d = amax / ((1 << 7) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        put16(y, qs_f32_to_f16(d));
        for (int j = 0; j < QK; ++j) y[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
    }
}

static void f16(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) put16(y + 2 * i, qs_f32_to_f16(x[i]));
}

static void bf16(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) put16(y + 2 * i, qs_f32_to_bf16(x[i]));
}


int qs_ggml_can_quantize(int type) {
    switch (type) {
    case QS_DT_F32: case QS_DT_F16: case QS_DT_BF16: case QS_DT_Q4_0: case QS_DT_Q4_1: case QS_DT_Q5_0:
    case QS_DT_Q5_1: case QS_DT_Q8_0: case QS_DT_Q2_K: case QS_DT_Q3_K: case QS_DT_Q4_K: case QS_DT_Q5_K:
    case QS_DT_Q6_K: case QS_DT_IQ4_NL: case QS_DT_IQ4_XS: case QS_DT_MXFP4: case QS_DT_NVFP4: case QS_DT_TQ1_0:
    case QS_DT_TQ2_0: case QS_DT_IQ2_S: case QS_DT_IQ3_XXS: case QS_DT_IQ3_S: case QS_DT_IQ1_M:
        return 1;
    }
    return 0;
}

int qs_ggml_quantize(int type, const float *src, void *dst, int64_t n) {
    const qs_dtype_traits *tr = qs_dtype_get(type);
    if (!tr || n % tr->block_size) return -1;
    const int64_t nb = n / tr->block_size;
    uint8_t *y = dst;
    switch (type) {
    case QS_DT_F32: memcpy(y, src, (size_t)n * 4); return 0;
    case QS_DT_F16: f16(src, y, n); return 0;
    case QS_DT_BF16: bf16(src, y, n); return 0;
    case QS_DT_Q4_0: q4_0(src, y, nb); return 0;
    case QS_DT_Q4_1: q4_1(src, y, nb); return 0;
    case QS_DT_Q5_0: q5_0(src, y, nb); return 0;
    case QS_DT_Q5_1: q5_1(src, y, nb); return 0;
    case QS_DT_Q8_0: q8_0(src, y, nb); return 0;
    case QS_DT_IQ4_NL: case QS_DT_IQ4_XS: case QS_DT_MXFP4: case QS_DT_NVFP4: case QS_DT_TQ1_0: case QS_DT_TQ2_0:
        return qs_ggml_quantize_lut(type, src, y, n, NULL);
    case QS_DT_IQ2_XXS: case QS_DT_IQ2_XS: case QS_DT_IQ2_S: case QS_DT_IQ3_XXS: case QS_DT_IQ3_S: case QS_DT_IQ1_S: case QS_DT_IQ1_M:
        return qs_ggml_quantize_iq(type, src, y, n, NULL);
    default: return qs_ggml_quantize_k(type, src, y, n);
    }
}
