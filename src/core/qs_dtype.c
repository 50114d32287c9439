/* qs_dtype: type traits and ggml-exact scalar dequantizers (see qs_dtype.h).
 * Block layouts follow ggml-common.h; every dequantizer reproduces the arithmetic of ggml's
 * reference dequantize_row_* (same operations, same order), so results match bit for bit. */
#include "core/qs_dtype.h"

#include <stdio.h>
#include <string.h>

#include "core/qs_dtype_impl.h"
#include "core/qs_dtype_iq.h"
#include "core/qs_half.h"

#define QK4 32
#define QKK 256

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static float rdh(const uint8_t *p) { return qs_f16_to_f32(rd16(p)); }

static void f32_to_float(const void *restrict src, float *restrict dst, int64_t n) { memcpy(dst, src, (size_t)n * 4); }

static void f16_to_float(const void *restrict src, float *restrict dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = rdh(p + 2 * i);
}

static void bf16_to_float(const void *restrict src, float *restrict dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = qs_bf16_to_f32(rd16(p + 2 * i));
}

/* q4_0: {f16 d; u8 qs[16]}: x = (nibble - 8) * d, low nibbles first half, high second half */
static void q4_0_to_float(const void *restrict src, float *restrict y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK4; i++, b += 18, y += QK4) {
        const float d = rdh(b);
        const uint8_t *qs = b + 2;
        for (int j = 0; j < 16; j++) {
            const int x0 = (qs[j] & 0x0F) - 8;
            const int x1 = (qs[j] >> 4) - 8;
            y[j] = x0 * d;
            y[j + 16] = x1 * d;
        }
    }
}

/* q4_1: {f16 d; f16 m; u8 qs[16]}: x = nibble * d + m */
static void q4_1_to_float(const void *restrict src, float *restrict y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK4; i++, b += 20, y += QK4) {
        const float d = rdh(b), m = rdh(b + 2);
        const uint8_t *qs = b + 4;
        for (int j = 0; j < 16; j++) {
            const int x0 = qs[j] & 0x0F;
            const int x1 = qs[j] >> 4;
            y[j] = x0 * d + m;
            y[j + 16] = x1 * d + m;
        }
    }
}

/* q5_0: {f16 d; u8 qh[4]; u8 qs[16]}: 5th bit of element j is bit j of qh */
static void q5_0_to_float(const void *restrict src, float *restrict y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK4; i++, b += 22, y += QK4) {
        const float d = rdh(b);
        uint32_t qh;
        memcpy(&qh, b + 2, 4);
        const uint8_t *qs = b + 6;
        for (int j = 0; j < 16; j++) {
            const uint8_t xh0 = ((qh >> (j + 0)) << 4) & 0x10;
            const uint8_t xh1 = ((qh >> (j + 12))) & 0x10;
            const int32_t x0 = ((qs[j] & 0x0F) | xh0) - 16;
            const int32_t x1 = ((qs[j] >> 4) | xh1) - 16;
            y[j] = x0 * d;
            y[j + 16] = x1 * d;
        }
    }
}

/* q5_1: {f16 d; f16 m; u8 qh[4]; u8 qs[16]} */
static void q5_1_to_float(const void *restrict src, float *restrict y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK4; i++, b += 24, y += QK4) {
        const float d = rdh(b), m = rdh(b + 2);
        uint32_t qh;
        memcpy(&qh, b + 4, 4);
        const uint8_t *qs = b + 8;
        for (int j = 0; j < 16; j++) {
            const uint8_t xh0 = ((qh >> (j + 0)) << 4) & 0x10;
            const uint8_t xh1 = ((qh >> (j + 12))) & 0x10;
            const int x0 = (qs[j] & 0x0F) | xh0;
            const int x1 = (qs[j] >> 4) | xh1;
            y[j] = x0 * d + m;
            y[j + 16] = x1 * d + m;
        }
    }
}

/* q8_0: {f16 d; i8 qs[32]} */
static void q8_0_to_float(const void *restrict src, float *restrict y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK4; i++, b += 34, y += QK4) {
        const float d = rdh(b);
        const int8_t *qs = (const int8_t *)(b + 2);
        for (int j = 0; j < QK4; j++) y[j] = qs[j] * d;
    }
}

/* q2_k: {u8 scales[16]; u8 qs[64]; f16 d; f16 dmin}; 16 sub-blocks of 16, 4-bit scale and
 * 4-bit min per sub-block */
static void q2_k_to_float(const void *restrict src, float *restrict y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QKK; i++, b += 84) {
        const uint8_t *scales = b, *q = b + 16;
        const float d = rdh(b + 80), min = rdh(b + 82);
        int is = 0;
        for (int k = 0; k < QKK; k += 128) {
            int shift = 0;
            for (int j = 0; j < 4; ++j) {
                uint8_t sc = scales[is++];
                float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                for (int l = 0; l < 16; ++l) *y++ = dl * ((int8_t)((q[l] >> shift) & 3)) - ml;
                sc = scales[is++];
                dl = d * (sc & 0xF);
                ml = min * (sc >> 4);
                for (int l = 0; l < 16; ++l) *y++ = dl * ((int8_t)((q[l + 16] >> shift) & 3)) - ml;
                shift += 2;
            }
            q += 32;
        }
    }
}

/* q3_k: {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}; 16 six-bit signed scales packed in 12
 * bytes; the high bit of each 3-bit value lives in hmask (set = no -4 offset) */
static void q3_k_to_float(const void *restrict src, float *restrict y, int64_t n) {
    const uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QKK; i++, b += 110) {
        const uint8_t *hm = b, *q = b + 32;
        const float d_all = rdh(b + 108);
        uint32_t aux[4];
        memcpy(aux, b + 96, 12);
        uint32_t tmp = aux[2];
        aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
        aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
        aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
        aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
        const int8_t *scales = (const int8_t *)aux;
        int is = 0;
        uint8_t m = 1;
        for (int k = 0; k < QKK; k += 128) {
            int shift = 0;
            for (int j = 0; j < 4; ++j) {
                float dl = d_all * (scales[is++] - 32);
                for (int l = 0; l < 16; ++l)
                    *y++ = dl * ((int8_t)((q[l + 0] >> shift) & 3) - ((hm[l + 0] & m) ? 0 : 4));
                dl = d_all * (scales[is++] - 32);
                for (int l = 0; l < 16; ++l)
                    *y++ = dl * ((int8_t)((q[l + 16] >> shift) & 3) - ((hm[l + 16] & m) ? 0 : 4));
                shift += 2;
                m <<= 1;
            }
            q += 32;
        }
    }
}

/* 6-bit scale and min number j of the 12-byte packed K-quant scales (q4_k, q5_k) */
static void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
    }
}

/* q4_k: {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}; 8 sub-blocks of 32 */
static void q4_k_to_float(const void *restrict src, float *restrict y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QKK; i++, b += 144) {
        const float d = rdh(b), min = rdh(b + 2);
        const uint8_t *scales = b + 4, *q = b + 16;
        int is = 0;
        uint8_t sc, m;
        for (int j = 0; j < QKK; j += 64) {
            scale_min_k4(is + 0, scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            scale_min_k4(is + 1, scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
            q += 32;
            is += 2;
        }
    }
}

/* q5_k: {f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]} */
static void q5_k_to_float(const void *restrict src, float *restrict y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QKK; i++, b += 176) {
        const float d = rdh(b), min = rdh(b + 2);
        const uint8_t *scales = b + 4, *qh = b + 16, *ql = b + 48;
        int is = 0;
        uint8_t sc, m, u1 = 1, u2 = 2;
        for (int j = 0; j < QKK; j += 64) {
            scale_min_k4(is + 0, scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            scale_min_k4(is + 1, scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            ql += 32;
            is += 2;
            u1 <<= 2;
            u2 <<= 2;
        }
    }
}

/* q6_k: {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d} */
static void q6_k_to_float(const void *restrict src, float *restrict y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QKK; i++, b += 210) {
        const float d = rdh(b + 208);
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        for (int k = 0; k < QKK; k += 128) {
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                const int8_t q1 = (int8_t)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int8_t q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int8_t q3 = (int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int8_t q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l + 0] = d * sc[is + 0] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}

static const qs_dtype_traits TRAITS[QS_DT_GGML_COUNT] = {
    [QS_DT_F32] = {"f32", 1, 4, f32_to_float},
    [QS_DT_F16] = {"f16", 1, 2, f16_to_float},
    [QS_DT_BF16] = {"bf16", 1, 2, bf16_to_float},
    [QS_DT_Q4_0] = {"q4_0", 32, 18, q4_0_to_float},
    [QS_DT_Q4_1] = {"q4_1", 32, 20, q4_1_to_float},
    [QS_DT_Q5_0] = {"q5_0", 32, 22, q5_0_to_float},
    [QS_DT_Q5_1] = {"q5_1", 32, 24, q5_1_to_float},
    [QS_DT_Q8_0] = {"q8_0", 32, 34, q8_0_to_float},
    [QS_DT_Q2_K] = {"q2_k", 256, 84, q2_k_to_float},
    [QS_DT_Q3_K] = {"q3_k", 256, 110, q3_k_to_float},
    [QS_DT_Q4_K] = {"q4_k", 256, 144, q4_k_to_float},
    [QS_DT_Q5_K] = {"q5_k", 256, 176, q5_k_to_float},
    [QS_DT_Q6_K] = {"q6_k", 256, 210, q6_k_to_float},
    [QS_DT_IQ4_NL] = {"iq4_nl", 32, 18, qs_iq4_nl_to_float},
    [QS_DT_IQ4_XS] = {"iq4_xs", 256, 136, qs_iq4_xs_to_float},
    [QS_DT_TQ1_0] = {"tq1_0", 256, 54, qs_tq1_0_to_float},
    [QS_DT_TQ2_0] = {"tq2_0", 256, 66, qs_tq2_0_to_float},
    [QS_DT_MXFP4] = {"mxfp4", 32, 17, qs_mxfp4_to_float},
    [QS_DT_NVFP4] = {"nvfp4", 64, 36, qs_nvfp4_to_float},
    [QS_DT_IQ2_XXS] = {"iq2_xxs", 256, 66, qs_iq2_xxs_to_float},
    [QS_DT_IQ2_XS] = {"iq2_xs", 256, 74, qs_iq2_xs_to_float},
    [QS_DT_IQ2_S] = {"iq2_s", 256, 82, qs_iq2_s_to_float},
    [QS_DT_IQ3_XXS] = {"iq3_xxs", 256, 98, qs_iq3_xxs_to_float},
    [QS_DT_IQ3_S] = {"iq3_s", 256, 110, qs_iq3_s_to_float},
    [QS_DT_IQ1_S] = {"iq1_s", 256, 50, qs_iq1_s_to_float},
    [QS_DT_IQ1_M] = {"iq1_m", 256, 56, qs_iq1_m_to_float},
};

/* ggml type ids qsense knows by name but cannot dequantize (for clear error messages) */
static const char *const OTHER_NAMES[QS_DT_GGML_COUNT] = {
    [4] = "q4_2 (removed)", [5] = "q4_3 (removed)", [QS_DT_Q8_1] = "q8_1", [QS_DT_Q8_K] = "q8_k",
    [24] = "i8", [25] = "i16", [26] = "i32", [27] = "i64", [28] = "f64", [41] = "q1_0", [42] = "q2_0",
};

const qs_dtype_traits *qs_dtype_get(int t) {
    if (t < 0 || t >= QS_DT_GGML_COUNT || !TRAITS[t].name) return NULL;
    return &TRAITS[t];
}

const char *qs_dtype_name(int t) {
    static _Thread_local char buf[32];
    if (t == QS_DT_I8_GROUPED) return "i8-grouped";
    const qs_dtype_traits *tr = qs_dtype_get(t);
    if (tr) return tr->name;
    if (t >= 0 && t < QS_DT_GGML_COUNT && OTHER_NAMES[t]) return OTHER_NAMES[t];
    snprintf(buf, sizeof buf, "type %d", t);
    return buf;
}

uint64_t qs_dtype_row_bytes(int t, int64_t n) {
    const qs_dtype_traits *tr = qs_dtype_get(t);
    if (!tr || n % tr->block_size) return 0;
    return (uint64_t)(n / tr->block_size) * (uint64_t)tr->type_size;
}
