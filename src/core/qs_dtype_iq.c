/* Dequantizers of llama.cpp's lattice i-quants: each group of 8 (or 4) values is one entry of
 * a fixed codebook (qs_iq_grids.c) times a sub-block scale, with signs stored apart (iq2, iq3)
 * or a shift of +-1/8 (iq1). Block layouts follow ggml-common.h; the arithmetic is ggml's
 * dequantize_row_iq* (same operations, same order), bit for bit. */
#include <pthread.h>
#include <string.h>

#include "core/qs_dtype_iq.h"
#include "core/qs_half.h"

#define QKK 256
#define IQ1S_DELTA 0.125f

/* the codebooks expanded to one byte per value, as ggml keeps them */
static uint8_t g_iq2xxs[256][8], g_iq2xs[512][8], g_iq2s[1024][8], g_iq3xxs[256][4], g_iq3s[512][4];
static int8_t g_iq1s[2048][8];
/* the sign bytes of iq2/iq3: 7 stored bits, the 8th making the count of minus signs even */
static uint8_t g_ksigns[128];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void expand(const uint16_t *packed, const int8_t *levels, int n, int width, int bits, uint8_t *out) {
    for (int e = 0; e < n; e++)
        for (int j = 0; j < width; j++) out[e * width + j] = (uint8_t)levels[(packed[e] >> (bits * j)) & ((1 << bits) - 1)];
}

static void build(void) {
    expand(qs_iq2xxs_packed, qs_iq2xxs_levels, 256, 8, 2, &g_iq2xxs[0][0]);
    expand(qs_iq2xs_packed, qs_iq2xs_levels, 512, 8, 2, &g_iq2xs[0][0]);
    expand(qs_iq2s_packed, qs_iq2s_levels, 1024, 8, 2, &g_iq2s[0][0]);
    expand(qs_iq3xxs_packed, qs_iq3xxs_levels, 256, 4, 3, &g_iq3xxs[0][0]);
    expand(qs_iq3s_packed, qs_iq3s_levels, 512, 4, 3, &g_iq3s[0][0]);
    expand(qs_iq1s_packed, qs_iq1s_levels, 2048, 8, 2, (uint8_t *)&g_iq1s[0][0]);
    for (int i = 0; i < 128; i++) g_ksigns[i] = (uint8_t)(i | (__builtin_popcount((unsigned)i) & 1) << 7);
}

static float rdh(const uint8_t *p) { return qs_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static float sign_of(uint8_t signs, int j) { return signs & (1u << j) ? -1.f : 1.f; }

/* iq2_xxs: {f16 d; u16 qs[32]}: per 32 values two words, 4 codebook bytes then 4 x 7 sign bits
 * and a 4-bit scale */
void qs_iq2_xxs_to_float(const void *restrict src, float *restrict y, int64_t n) {
    pthread_once(&once, build);
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QKK; i++, b += 66) {
        const float d = rdh(b);
        for (int ib32 = 0; ib32 < 8; ++ib32) {
            const uint8_t *aux8 = b + 2 + 8 * ib32;
            const uint32_t aux1 = rd32(aux8 + 4);
            const float db = d * (0.5f + (aux1 >> 28)) * 0.25f;
            for (int l = 0; l < 4; ++l, y += 8) {
                const uint8_t *grid = g_iq2xxs[aux8[l]];
                const uint8_t signs = g_ksigns[(aux1 >> 7 * l) & 127];
                for (int j = 0; j < 8; ++j) y[j] = db * grid[j] * sign_of(signs, j);
            }
        }
    }
}

/* iq2_xs: {f16 d; u16 qs[32]; u8 scales[8]}: each word a 9-bit codebook index and 7 sign bits */
void qs_iq2_xs_to_float(const void *restrict src, float *restrict y, int64_t n) {
    pthread_once(&once, build);
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QKK; i++, b += 74) {
        const float d = rdh(b);
        const uint8_t *scales = b + 66;
        for (int ib32 = 0; ib32 < 8; ++ib32) {
            float db[2];
            db[0] = d * (0.5f + (scales[ib32] & 0xf)) * 0.25f;
            db[1] = d * (0.5f + (scales[ib32] >> 4)) * 0.25f;
            for (int l = 0; l < 4; ++l, y += 8) {
                const uint16_t q = rd16(b + 2 + 2 * (4 * ib32 + l));
                const uint8_t *grid = g_iq2xs[q & 511];
                const uint8_t signs = g_ksigns[q >> 9];
                for (int j = 0; j < 8; ++j) y[j] = db[l / 2] * grid[j] * sign_of(signs, j);
            }
        }
    }
}

/* iq2_s: {f16 d; u8 qs[64] (32 index bytes, then 32 sign bytes); u8 qh[8]; u8 scales[8]}:
 * 10-bit indices (2 high bits per group in qh) */
void qs_iq2_s_to_float(const void *restrict src, float *restrict y, int64_t n) {
    pthread_once(&once, build);
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QKK; i++, b += 82) {
        const float d = rdh(b);
        const uint8_t *qs = b + 2, *signs = b + 2 + 32, *qh = b + 66, *scales = b + 74;
        for (int ib32 = 0; ib32 < 8; ++ib32, qs += 4, signs += 4) {
            float db[2];
            db[0] = d * (0.5f + (scales[ib32] & 0xf)) * 0.25f;
            db[1] = d * (0.5f + (scales[ib32] >> 4)) * 0.25f;
            for (int l = 0; l < 4; ++l, y += 8) {
                const float dl = db[l / 2];
                const uint8_t *grid = g_iq2s[qs[l] | ((qh[ib32] << (8 - 2 * l)) & 0x300)];
                for (int j = 0; j < 8; ++j) y[j] = dl * grid[j] * sign_of(signs[l], j);
            }
        }
    }
}

/* iq3_xxs: {f16 d; u8 qs[64] (codebook indices of 4 values); u8 scales_and_signs[32]} */
void qs_iq3_xxs_to_float(const void *restrict src, float *restrict y, int64_t n) {
    pthread_once(&once, build);
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QKK; i++, b += 98) {
        const float d = rdh(b);
        const uint8_t *qs = b + 2, *scales_and_signs = b + 2 + 64;
        for (int ib32 = 0; ib32 < 8; ++ib32, qs += 8) {
            const uint32_t aux32 = rd32(scales_and_signs + 4 * ib32);
            const float db = d * (0.5f + (aux32 >> 28)) * 0.5f;
            for (int l = 0; l < 4; ++l, y += 8) {
                const uint8_t signs = g_ksigns[(aux32 >> 7 * l) & 127];
                const uint8_t *grid1 = g_iq3xxs[qs[2 * l + 0]], *grid2 = g_iq3xxs[qs[2 * l + 1]];
                for (int j = 0; j < 4; ++j) {
                    y[j + 0] = db * grid1[j] * sign_of(signs, j);
                    y[j + 4] = db * grid2[j] * sign_of(signs, j + 4);
                }
            }
        }
    }
}

/* iq3_s: {f16 d; u8 qs[64]; u8 qh[8]; u8 signs[32]; u8 scales[4]}: 9-bit indices, explicit
 * sign bits, odd 4-bit scales per 32 */
void qs_iq3_s_to_float(const void *restrict src, float *restrict y, int64_t n) {
    pthread_once(&once, build);
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QKK; i++, b += 110) {
        const float d = rdh(b);
        const uint8_t *qs = b + 2, *qh = b + 66, *signs = b + 74, *scales = b + 106;
        for (int ib32 = 0; ib32 < 8; ib32 += 2, qh += 2) {
            const float dbs[2] = {d * (1 + 2 * (scales[ib32 / 2] & 0xf)), d * (1 + 2 * (scales[ib32 / 2] >> 4))};
            for (int half = 0; half < 2; half++, qs += 8, signs += 4) {
                const float db = dbs[half];
                for (int l = 0; l < 4; ++l, y += 8) {
                    const uint8_t *grid1 = g_iq3s[qs[2 * l + 0] | ((qh[half] << (8 - 2 * l)) & 256)];
                    const uint8_t *grid2 = g_iq3s[qs[2 * l + 1] | ((qh[half] << (7 - 2 * l)) & 256)];
                    for (int j = 0; j < 4; ++j) {
                        y[j + 0] = db * grid1[j] * sign_of(signs[l], j);
                        y[j + 4] = db * grid2[j] * sign_of(signs[l], j + 4);
                    }
                }
            }
        }
    }
}

/* iq1_s: {f16 d; u8 qs[32]; u16 qh[8]}: 11-bit indices into {-1, 0, 1}^8, a 3-bit scale and
 * the sign of a +-1/8 shift per 32 */
void qs_iq1_s_to_float(const void *restrict src, float *restrict y, int64_t n) {
    pthread_once(&once, build);
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QKK; i++, b += 50) {
        const float d = rdh(b);
        const uint8_t *qs = b + 2;
        for (int ib = 0; ib < 8; ++ib, qs += 4) {
            const uint16_t qh = rd16(b + 34 + 2 * ib);
            const float dl = d * (2 * ((qh >> 12) & 7) + 1);
            const float delta = qh & 0x8000 ? -IQ1S_DELTA : IQ1S_DELTA;
            for (int l = 0; l < 4; ++l, y += 8) {
                const int8_t *grid = g_iq1s[qs[l] | (((qh >> 3 * l) & 7) << 8)];
                for (int j = 0; j < 8; ++j) y[j] = dl * (grid[j] + delta);
            }
        }
    }
}

/* iq1_m: {u8 qs[32]; u8 qh[16]; u8 scales[8]}: iq1_s's codebook, a shift sign per 8 values,
 * 3-bit scales per 16 and the f16 super-scale spread over the scales' top nibbles */
void qs_iq1_m_to_float(const void *restrict src, float *restrict y, int64_t n) {
    pthread_once(&once, build);
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QKK; i++, b += 56) {
        uint16_t sc[4];
        for (int k = 0; k < 4; k++) sc[k] = rd16(b + 48 + 2 * k);
        const uint16_t s16 = (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
        const float d = qs_f16_to_f32(s16);
        const uint8_t *qs = b, *qh = b + 32;
        for (int ib = 0; ib < 8; ++ib, qs += 4, qh += 2) {
            const float dl1 = d * (2 * ((sc[ib / 2] >> (6 * (ib % 2) + 0)) & 0x7) + 1);
            const float dl2 = d * (2 * ((sc[ib / 2] >> (6 * (ib % 2) + 3)) & 0x7) + 1);
            const uint16_t idx[4] = {(uint16_t)(qs[0] | ((qh[0] << 8) & 0x700)), (uint16_t)(qs[1] | ((qh[0] << 4) & 0x700)),
                                     (uint16_t)(qs[2] | ((qh[1] << 8) & 0x700)), (uint16_t)(qs[3] | ((qh[1] << 4) & 0x700))};
            const float delta[4] = {qh[0] & 0x08 ? -IQ1S_DELTA : IQ1S_DELTA, qh[0] & 0x80 ? -IQ1S_DELTA : IQ1S_DELTA,
                                    qh[1] & 0x08 ? -IQ1S_DELTA : IQ1S_DELTA, qh[1] & 0x80 ? -IQ1S_DELTA : IQ1S_DELTA};
            for (int l = 0; l < 4; ++l, y += 8) {
                const int8_t *grid = g_iq1s[idx[l]];
                const float dl = l < 2 ? dl1 : dl2;
                for (int j = 0; j < 8; ++j) y[j] = dl * (grid[j] + delta[l]);
            }
        }
    }
}
