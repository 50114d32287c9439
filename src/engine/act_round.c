/* llama.cpp activation rounding (see act_round.h). Mirrors ggml-cpu's x86 quantize_row_q8_0 /
 * q8_1 (scale 127/amax, round to nearest even, fp16 block scale) and quantize_row_q8_K_ref. */
#include "engine/act_round.h"

#include <math.h>

#include "core/qs_dtype.h"
#include "core/qs_half.h"

static void q8_32(const float *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n; b += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b + j]));
        const float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
        const float dh = qs_f16_to_f32(qs_f32_to_f16(d));
        for (int j = 0; j < 32; j++) y[b + j] = nearbyintf(x[b + j] * id) * dh;
    }
}

static int nearest_int(float f) { return (int)lrintf(f); }

static void q8_k(const float *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n; b += 256) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 256; j++) {
            float ax = fabsf(x[b + j]);
            if (ax > amax) { amax = ax; max = x[b + j]; }
        }
        if (amax == 0.0f) {
            for (int j = 0; j < 256; j++) y[b + j] = 0.0f;
            continue;
        }
        const float iscale = -127.0f / max, d = 1.0f / iscale;
        for (int j = 0; j < 256; j++) {
            int v = nearest_int(iscale * x[b + j]);
            y[b + j] = (float)(v < 127 ? v : 127) * d;
        }
    }
}

void qs_round_f16(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = qs_f16_to_f32(qs_f32_to_f16(x[i]));
}

int qs_act_round(int weight_type, const float *x, float *y, int64_t n) {
    switch (weight_type) {
    case QS_DT_Q4_0: case QS_DT_Q4_1: case QS_DT_Q5_0: case QS_DT_Q5_1: case QS_DT_Q8_0: case QS_DT_IQ4_NL: case QS_DT_MXFP4:
    case QS_DT_NVFP4:
        if (n % 32) return 0;
        q8_32(x, y, n);
        return 1;
    case QS_DT_Q2_K: case QS_DT_Q3_K: case QS_DT_Q4_K: case QS_DT_Q5_K: case QS_DT_Q6_K: case QS_DT_IQ4_XS: case QS_DT_TQ1_0:
    case QS_DT_TQ2_0: case QS_DT_IQ2_XXS: case QS_DT_IQ2_XS: case QS_DT_IQ2_S: case QS_DT_IQ3_XXS: case QS_DT_IQ3_S:
    case QS_DT_IQ1_S: case QS_DT_IQ1_M:
        if (n % 256) return 0;
        q8_k(x, y, n);
        return 1;
    case QS_DT_F16:
        for (int64_t i = 0; i < n; i++) y[i] = qs_f16_to_f32(qs_f32_to_f16(x[i]));
        return 1;
    case QS_DT_BF16:
        for (int64_t i = 0; i < n; i++) y[i] = qs_bf16_to_f32(qs_f32_to_bf16(x[i]));
        return 1;
    default:
        return 0;
    }
}
