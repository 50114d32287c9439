/* llama.cpp's quantizers for its lookup-table and ternary block types, byte for byte as
 * ggml_quantize_chunk writes them (what llama-quantize stores):
 *   iq4_nl, iq4_xs  quantize_iq4_nl / quantize_iq4_xs: a 16-level non-uniform grid, the block
 *                   scale searched over 15 candidates, weighted by x^2 or, with an imatrix, by
 *                   importance x sqrt(sigma^2 + x^2); iq4_xs then stores 6-bit sub-scales
 *   mxfp4, nvfp4    quantize_row_*_ref: E2M1 codes under an E8M0 scale per 32 / an unsigned
 *                   E4M3 scale per 16; the code is the first nearest in code order, so a tie
 *                   goes to the smaller magnitude (not to even, as the OCP rule has it)
 *   tq1_0, tq2_0    quantize_row_tq*_ref: ternary {-1, 0, 1} x the block's absmax
 * The float operations and their order are ggml's: byte-exact output is the contract. */
#include <math.h>
#include <string.h>

#include "core/qs_dtype.h"
#include "core/qs_dtype_impl.h"
#include "core/qs_half.h"
#include "quant/ggml_quant.h"
#include "quant/ggml_quant_impl.h"

#define QKK 256
/* llama.cpp treats a block whose absmax is below this as all zero */
#define GROUP_MAX_EPS 1e-15f

#define put16 qs_put16
#define nearest_int qs_nearest_int

/* index of the grid level nearest x (grid ascending); a tie goes to the upper level */
static int nearest_level(const int8_t *val, float x) {
    if (x <= val[0]) return 0;
    if (x >= val[15]) return 15;
    int lo = 0, hi = 15;
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (x < val[mid]) hi = mid;
        else lo = mid;
    }
    return x - val[hi - 1] < val[hi] - x ? hi - 1 : hi;
}

/* Scale search of one block of 32 (xb, weights w): the least-squares scale of the nearest
 * levels at d = max/values[0], then 15 trial scales around it; returns the best scale and
 * leaves the block's levels in L as they were at the first trial (iq4_nl keeps them only
 * when it re-rounds, below). */
static float iq4_block_scale(const float *xb, const float *w, uint8_t *L) {
    const int8_t *values = qs_iq4nl_values;
    const int ntry = 7;
    float amax = 0, max = 0;
    for (int j = 0; j < 32; ++j) {
        const float ax = fabsf(xb[j]);
        if (ax > amax) {
            amax = ax;
            max = xb[j];
        }
    }
    if (amax < GROUP_MAX_EPS) return 0.0f;
    float d = -max / values[0];
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < 32; ++j) {
        const float al = id * xb[j];
        const int l = nearest_level(values, al);
        L[j] = (uint8_t)l;
        const float q = values[l];
        sumqx += w[j] * q * xb[j];
        sumq2 += w[j] * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
    float best = d * sumqx;
    for (int itry = -ntry; itry <= ntry; ++itry) {
        id = (itry + values[0]) / max;
        sumqx = sumq2 = 0;
        for (int j = 0; j < 32; ++j) {
            const float al = id * xb[j];
            const float q = values[nearest_level(values, al)];
            sumqx += w[j] * q * xb[j];
            sumq2 += w[j] * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

/* the weights of one block: importance x sqrt(sigma2 + x^2) with an imatrix, else x^2 */
static void iq4_weights(const float *xb, const float *qw, float sigma2, float *w) {
    for (int j = 0; j < 32; ++j) w[j] = qw ? qw[j] * sqrtf(sigma2 + xb[j] * xb[j]) : xb[j] * xb[j];
}

static float iq4_sigma2(const float *x, int n) {
    float sigma2 = 0;
    for (int j = 0; j < n; ++j) sigma2 += x[j] * x[j];
    return sigma2 * 2.f / n;
}

static void pack_nibbles(const uint8_t *L, uint8_t *q4, int n) {
    for (int i = 0; i < n / 32; ++i)
        for (int j = 0; j < 16; ++j) q4[16 * i + j] = (uint8_t)(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
}

/* iq4_nl: {f16 d; u8 qs[16]} per 32 */
static void iq4_nl_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    for (int64_t ib = 0; ib < n / 32; ib++, x += 32, y += 18) {
        const float *q = qw ? qw + 32 * ib : NULL;
        float w[32];
        uint8_t L[32];
        iq4_weights(x, q, iq4_sigma2(x, 32), w);
        memset(L, 0, sizeof L);
        const float d = iq4_block_scale(x, w, L);
        put16(y, qs_f32_to_f16(d));
        /* re-rounded at the chosen scale (an all-zero block gets the level nearest 0) */
        const float id = d ? 1 / d : 0;
        for (int j = 0; j < 32; ++j) L[j] = (uint8_t)nearest_level(qs_iq4nl_values, id * x[j]);
        pack_nibbles(L, y + 2, 32);
    }
}

/* iq4_xs: {f16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128]} per 256: each sub-block's scale
 * as a 6-bit multiple (-32..31) of d = -max_scale / 32, levels re-rounded at that scale */
static void iq4_xs_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    for (int64_t ibl = 0; ibl < n / QKK; ibl++, x += QKK, y += 136) {
        const float sigma2 = iq4_sigma2(x, QKK);
        float scales[8], w[32], max_scale = 0, amax_scale = 0;
        uint8_t L[QKK];
        memset(y, 0, 136);
        for (int ib = 0; ib < 8; ++ib) {
            iq4_weights(x + 32 * ib, qw ? qw + QKK * ibl + 32 * ib : NULL, sigma2, w);
            scales[ib] = iq4_block_scale(x + 32 * ib, w, L + 32 * ib);
            if (fabsf(scales[ib]) > amax_scale) {
                amax_scale = fabsf(scales[ib]);
                max_scale = scales[ib];
            }
        }
        const float d = -max_scale / 32;
        put16(y, qs_f32_to_f16(d));
        const float id = d ? 1 / d : 0.f;
        unsigned scales_h = 0;
        for (int ib = 0; ib < 8; ++ib) {
            int l = nearest_int(id * scales[ib]);
            l = l < -32 ? -32 : l > 31 ? 31 : l;
            const float dl = d * l, idl = dl ? 1 / dl : 0.f;
            for (int j = 0; j < 32; ++j) L[32 * ib + j] = (uint8_t)nearest_level(qs_iq4nl_values, idl * x[32 * ib + j]);
            l += 32;
            if (ib % 2 == 0) y[4 + ib / 2] = (uint8_t)(l & 0xf);
            else y[4 + ib / 2] |= (uint8_t)((l & 0xf) << 4);
            scales_h |= (unsigned)(l >> 4) << 2 * (ib % 8);
        }
        put16(y + 2, (uint16_t)scales_h);
        pack_nibbles(L, y + 8, QKK);
    }
}

/* the first E2M1 code (in code order) nearest x / e; e is half the scale (codes are doubled) */
static uint8_t nearest_fp4(float x, float e) {
    int best = 0;
    float best_err = fabsf(qs_fp4_values2[0] * e - x);
    for (int i = 1; i < 16; i++) {
        const float err = fabsf(qs_fp4_values2[i] * e - x);
        if (err < best_err) {
            best = i;
            best_err = err;
        }
    }
    return (uint8_t)best;
}

static void mxfp4_rows(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n / 32; i++, x += 32, y += 17) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            if (amax < fabsf(x[j])) amax = fabsf(x[j]);
        /* the largest code (6) then covers amax / 2^floor(log2 amax) in [1, 2) times 4 */
        const uint8_t e = amax > 0.0f ? (uint8_t)(int)(floorf(log2f(amax)) - 2 + 127) : 0;
        const float d = qs_e8m0_to_f32_half(e);
        y[0] = e;
        for (int j = 0; j < 16; ++j) y[1 + j] = (uint8_t)(nearest_fp4(x[j], d) | nearest_fp4(x[16 + j], d) << 4);
    }
}

/* unsigned E4M3 from f32: the top 3 mantissa bits rounded half up on the next bit; subnormals
 * rounded half up on x * 2^9; saturating at 448 (code 0x7E) */
static uint8_t f32_to_ue4m3(float x) {
    if (!(x > 0.0f)) return 0;
    if (x > 448.0f) x = 448.0f;
    const uint32_t bits = qs_f32_to_bits(x);
    const int fp32_exp = (int)((bits >> 23) & 0xFF) - 127, fp32_man = (int)((bits >> 20) & 0x7);
    int exp = fp32_exp + 7;
    if (exp <= 0) {
        int man = (int)(x * 512.0f + 0.5f);
        if (man > 7) man = 7;
        return man < 1 ? 0 : (uint8_t)man;
    }
    if (exp >= 15) return 0x7E;
    int man = fp32_man + (int)((bits >> 19) & 1);
    if (man > 7) {
        man = 0;
        exp++;
    }
    if (exp >= 15) return 0x7E;
    return (uint8_t)((exp << 3) | man);
}

static void nvfp4_rows(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n / 64; i++, y += 36)
        for (int s = 0; s < 4; s++, x += 16) {
            float amax = 0.0f;
            for (int j = 0; j < 16; j++)
                if (amax < fabsf(x[j])) amax = fabsf(x[j]);
            const uint8_t ue = f32_to_ue4m3(amax / 6.0f);
            y[s] = ue;
            const float d = qs_ue4m3_to_f32_half(ue);
            for (int j = 0; j < 8; ++j) y[4 + 8 * s + j] = (uint8_t)(nearest_fp4(x[j], d) | nearest_fp4(x[8 + j], d) << 4);
        }
}

static float block_absmax(const float *x, int n) {
    float amax = 0.0f;
    for (int j = 0; j < n; j++) amax = fmaxf(amax, fabsf(x[j]));
    return amax;
}

/* a byte of trits t0..t(k-1) (most significant first) as the ceiling of its base-3 value
 * scaled to 256 / 3^5, which the dequantizer's multiply-and-shift reads back */
static uint8_t pack_trits(const float *x, int stride, int k, float id) {
    uint8_t q = 0;
    for (int t = 0; t < k; t++) q = (uint8_t)(q * 3 + (lroundf(x[t * stride] * id) + 1));
    if (k == 4) q = (uint8_t)(q * 3);
    return (uint8_t)(((uint16_t)q * 256 + (243 - 1)) / 243);
}

static void tq1_0_rows(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n / QKK; i++, y += 54) {
        const float d = block_absmax(x, QKK), id = d ? 1.0f / d : 0.0f;
        put16(y + 52, qs_f32_to_f16(d));
        for (int m = 0; m < 32; ++m) y[m] = pack_trits(x + m, 32, 5, id);
        x += 5 * 32;
        for (int m = 0; m < 16; ++m) y[32 + m] = pack_trits(x + m, 16, 5, id);
        x += 5 * 16;
        for (int j = 0; j < 4; ++j) y[48 + j] = pack_trits(x + j, 4, 4, id);
        x += 16;
    }
}

static void tq2_0_rows(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n / QKK; i++, y += 66) {
        const float d = block_absmax(x, QKK), id = d ? 1.0f / d : 0.0f;
        put16(y + 64, qs_f32_to_f16(d));
        for (int j = 0; j < 64; j += 32, x += 128)
            for (int m = 0; m < 32; ++m) {
                uint8_t q = 0;
                for (int k = 0; k < 4; ++k) q = (uint8_t)(q + (((lroundf(x[m + k * 32] * id) + 1) & 3) << (2 * k)));
                y[j + m] = q;
            }
    }
}

int qs_ggml_quantize_lut(int type, const float *src, uint8_t *dst, int64_t n, const float *importance) {
    switch (type) {
    case QS_DT_IQ4_NL: iq4_nl_row(src, dst, n, importance); return 0;
    case QS_DT_IQ4_XS: iq4_xs_row(src, dst, n, importance); return 0;
    case QS_DT_MXFP4: mxfp4_rows(src, dst, n); return 0;
    case QS_DT_NVFP4: nvfp4_rows(src, dst, n); return 0;
    case QS_DT_TQ1_0: tq1_0_rows(src, dst, n); return 0;
    case QS_DT_TQ2_0: tq2_0_rows(src, dst, n); return 0;
    }
    return -1;
}
