/* Dequantizers of ggml's lookup-table and ternary block types (see qs_dtype.h): iq4_nl and
 * iq4_xs (a 16-level non-uniform grid), mxfp4 and nvfp4 (E2M1 values under a power-of-two or
 * unsigned-E4M3 block scale), tq1_0 and tq2_0 (ternary). Block layouts follow ggml-common.h;
 * the arithmetic is ggml's dequantize_row_* (same operations, same order), bit for bit. */
#include <math.h>
#include <string.h>

#include "core/qs_dtype_impl.h"
#include "core/qs_half.h"

/* iq4_nl's levels: a non-uniform grid denser near zero, where weights are */
const int8_t qs_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
/* E2M1 values doubled (ggml stores them as integers and halves the block scale instead) */
const int8_t qs_fp4_values2[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

static float rdh(const uint8_t *p) { return qs_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

float qs_e8m0_to_f32_half(uint8_t e) {
    /* 2^(e - 128): below e = 2 the value is an f32 subnormal */
    const uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    return qs_bits_to_f32(bits);
}

float qs_ue4m3_to_f32_half(uint8_t x) {
    if (x == 0 || x == 0x7F) return 0.0f;
    const int exp = (x >> 3) & 0xF, man = x & 0x7;
    const float raw = exp == 0 ? ldexpf((float)man, -9) : ldexpf(1.0f + (float)man / 8.0f, exp - 7);
    return raw * 0.5f;
}

/* iq4_nl: {f16 d; u8 qs[16]}: x = d * grid[nibble], low nibbles first half */
void qs_iq4_nl_to_float(const void *restrict src, float *restrict y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / 32; i++, b += 18, y += 32) {
        const float d = rdh(b);
        for (int j = 0; j < 16; j++) {
            y[j] = d * qs_iq4nl_values[b[2 + j] & 0xf];
            y[j + 16] = d * qs_iq4nl_values[b[2 + j] >> 4];
        }
    }
}

/* iq4_xs: {f16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128]}: 8 sub-blocks of 32 with 6-bit
 * scales (4 low bits in scales_l, 2 high in scales_h), offset by 32 */
void qs_iq4_xs_to_float(const void *restrict src, float *restrict y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / 256; i++, b += 136) {
        const float d = rdh(b);
        const unsigned scales_h = (unsigned)(b[2] | (b[3] << 8));
        const uint8_t *scales_l = b + 4, *qs = b + 8;
        for (int ib = 0; ib < 8; ib++, y += 32, qs += 16) {
            const int ls = ((scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) | (int)(((scales_h >> 2 * ib) & 3) << 4);
            const float dl = d * (ls - 32);
            for (int j = 0; j < 16; j++) {
                y[j] = dl * qs_iq4nl_values[qs[j] & 0xf];
                y[j + 16] = dl * qs_iq4nl_values[qs[j] >> 4];
            }
        }
    }
}

/* mxfp4: {u8 e (E8M0); u8 qs[16]}: x = fp4[nibble] * 2^(e - 128) */
void qs_mxfp4_to_float(const void *restrict src, float *restrict y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / 32; i++, b += 17, y += 32) {
        const float d = qs_e8m0_to_f32_half(b[0]);
        for (int j = 0; j < 16; j++) {
            y[j] = qs_fp4_values2[b[1 + j] & 0x0F] * d;
            y[j + 16] = qs_fp4_values2[b[1 + j] >> 4] * d;
        }
    }
}

/* nvfp4: {u8 d[4] (UE4M3); u8 qs[32]}: four sub-blocks of 16, each with its own scale */
void qs_nvfp4_to_float(const void *restrict src, float *restrict y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / 64; i++, b += 36) {
        for (int s = 0; s < 4; s++, y += 16) {
            const float d = qs_ue4m3_to_f32_half(b[s]);
            const uint8_t *qs = b + 4 + 8 * s;
            for (int j = 0; j < 8; j++) {
                y[j] = qs_fp4_values2[qs[j] & 0x0F] * d;
                y[j + 8] = qs_fp4_values2[qs[j] >> 4] * d;
            }
        }
    }
}

/* one base-3 digit of a byte that holds 5 (or 4) trits as a fixed-point fraction of 3^5:
 * multiplying by 3^k moves digit k to the top, and (q * 3) >> 8 reads it */
static float trit(uint8_t byte, int k, float d) {
    static const uint8_t pow3[6] = {1, 3, 9, 27, 81, 243};
    const uint8_t q = (uint8_t)(byte * pow3[k]);
    const int xi = ((uint16_t)q * 3) >> 8;
    return (float)(xi - 1) * d;
}

/* tq1_0: {u8 qs[48]; u8 qh[4]; f16 d}: 240 values 5 per byte (32 then 16 bytes wide), 16 values
 * 4 per byte */
void qs_tq1_0_to_float(const void *restrict src, float *restrict y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / 256; i++, b += 54) {
        const float d = rdh(b + 52);
        for (int j = 0; j < 32; j += 32)
            for (int k = 0; k < 5; k++)
                for (int m = 0; m < 32; m++) *y++ = trit(b[j + m], k, d);
        for (int j = 32; j < 48; j += 16)
            for (int k = 0; k < 5; k++)
                for (int m = 0; m < 16; m++) *y++ = trit(b[j + m], k, d);
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < 4; j++) *y++ = trit(b[48 + j], k, d);
    }
}

/* tq2_0: {u8 qs[64]; f16 d}: 2 bits per value (0, 1, 2 -> -1, 0, 1), four 32-wide planes per
 * 32 bytes */
void qs_tq2_0_to_float(const void *restrict src, float *restrict y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / 256; i++, b += 66) {
        const float d = rdh(b + 64);
        for (int j = 0; j < 64; j += 32)
            for (int l = 0; l < 4; l++)
                for (int m = 0; m < 32; m++) *y++ = (float)(((b[j + m] >> (l * 2)) & 3) - 1) * d;
    }
}
