/* llama.cpp's lattice i-quants iq2_xxs, iq2_xs, iq2_s, iq3_xxs and iq3_s, byte for byte as
 * ggml_quantize_chunk writes them (quantize_row_iq*_impl). Each sub-block's values are folded
 * to magnitudes (the signs stored apart; iq2_xxs, iq2_xs and iq3_xxs flip the least important
 * value so an even number of signs is negative, which saves a bit), then a range of trial
 * scales maps groups of 8 (iq2) or 4 (iq3) magnitudes to the nearest codebook entry (or the
 * best of its listed neighbours), keeping the scale of the best weighted least-squares fit.
 * Weights: importance x sqrt(sigma^2 + x^2); iq2_xxs and iq2_xs need an importance (llama.cpp
 * refuses them without an imatrix); the others fall back to x^2 (iq2_s: sigma^2/4 + x^2).
 * Same float operations in the same order as ggml, including its quirks (noted where kept). */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "core/qs_dtype.h"
#include "core/qs_half.h"
#include "quant/ggml_quant_impl.h"
#include "quant/iq_lattice.h"

#define QKK 256
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define GROUP_MAX_EPS 1e-15f
#define GROUP_MAX_EPS_IQ3_XXS 1e-8f
#define GROUP_MAX_EPS_IQ2_S 1e-8f

/* magnitudes of 8 values and their sign bits; with parity, the value of least weighted square
 * is also flipped when an odd count is negative (the stored 7 bits then imply the 8th) */
static uint8_t fold_signs(const float *xb, const float *weight, float *xval, int parity) {
    int nflip = 0;
    uint8_t s = 0;
    for (int i = 0; i < 8; ++i) {
        if (xb[i] >= 0) xval[i] = xb[i];
        else {
            xval[i] = -xb[i];
            ++nflip;
            s |= (uint8_t)(1 << i);
        }
    }
    if (parity && nflip % 2) {
        int imin = 0;
        float min = weight[imin] * xb[imin] * xb[imin];
        for (int i = 1; i < 8; ++i) {
            const float ax = weight[i] * xb[i] * xb[i];
            if (ax < min) {
                min = ax;
                imin = i;
            }
        }
        xval[imin] = -xval[imin];
        s ^= (uint8_t)(1 << imin);
    }
    return parity ? (uint8_t)(s & 127) : s;
}

/* the levels of one group at inverse scale id, clamped to [0, kmax) */
static void group_levels(int width, int kmax, float id, const float *xval, int8_t *L) {
    for (int i = 0; i < width; ++i) {
        const int l = qs_nearest_int(0.5f * (id * xval[i] - 1));
        L[i] = (int8_t)MAX(0, MIN(kmax - 1, l));
    }
}

/* one group placed on the codebook at scale (id = 1/scale): its own word when the codebook has
 * it, else the best neighbour; L gets the entry's levels; returns the entry */
static int place_group(const qs_lattice *lat, int kmax, float id, float scale, const float *xval, const float *waux, int8_t *L) {
    group_levels(lat->width, kmax, id, xval, L);
    const int u = qs_lattice_word(lat, L);
    if (lat->map[u] >= 0) return lat->map[u];
    return qs_lattice_best_neighbour(lat, u, xval, waux, scale, L);
}

/* weighted least squares of the magnitudes on positions 2 L + 1 */
static void fit(int n, const float *xval, const float *weight, const int8_t *L, float *sumqx, float *sumq2) {
    *sumqx = *sumq2 = 0;
    for (int i = 0; i < n; ++i) {
        const float w = weight[i], q = 2 * L[i] + 1;
        *sumqx += w * xval[i] * q;
        *sumq2 += w * q * q;
    }
}

/* the trial scales id = (2 kmax - 1 + is step) / denom, is in [-range, range]: keeps in L and
 * on_grid the placement of the best fit; returns its scale (scale when none fits) */
static float try_scales(const qs_lattice *lat, int n, int kmax, int range, float step, float denom, const float *xval,
                        const float *weight, const float *waux, int8_t *L, bool *on_grid, float scale) {
    const int groups = n / lat->width;
    int8_t Laux[32];
    bool on_aux[8];
    float best = 0;
    for (int is = -range; is <= range; ++is) {
        const float id = (2 * kmax - 1 + is * step) / denom, this_scale = 1 / id;
        for (int k = 0; k < groups; ++k) {
            const int w = lat->width;
            group_levels(w, kmax, id, xval + w * k, Laux + w * k);
            const int u = qs_lattice_word(lat, Laux + w * k);
            on_aux[k] = lat->map[u] >= 0;
            if (!on_aux[k]) qs_lattice_best_neighbour(lat, u, xval + w * k, waux + w * k, this_scale, Laux + w * k);
        }
        float sumqx, sumq2;
        fit(n, xval, weight, Laux, &sumqx, &sumq2);
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            scale = sumqx / sumq2;
            best = scale * sumqx;
            memcpy(L, Laux, (size_t)n);
            memcpy(on_grid, on_aux, sizeof(bool) * (size_t)groups);
        }
    }
    return scale;
}

/* places again at the chosen scale the groups that were off the codebook (every group when
 * all_groups), then refits the scale */
static float refine(const qs_lattice *lat, int n, int kmax, float scale, const float *xval, const float *weight, const float *waux,
                    int8_t *L, const bool *on_grid, int all_groups) {
    const float id = 1 / scale;
    for (int k = 0; k < n / lat->width; ++k) {
        if (!all_groups && on_grid[k]) continue;
        const int w = lat->width;
        const int e = place_group(lat, kmax, id, scale, xval + w * k, waux + w * k, L + w * k);
        for (int i = 0; i < w; ++i) L[w * k + i] = (int8_t)((lat->pos[e * w + i] - 1) / 2);
    }
    float sumqx, sumq2;
    fit(n, xval, weight, L, &sumqx, &sumq2);
    return sumq2 > 0 ? sumqx / sumq2 : scale;
}

static float sum_squares(const float *x, int n) {
    float s = 0;
    for (int i = 0; i < n; ++i) s += x[i] * x[i];
    return s;
}

static int entry_of(const qs_lattice *lat, const int8_t *L) { return lat->map[qs_lattice_word(lat, L)]; }

/* a sub-block scale as its 4-bit code c, the scale being (2 c + 1) d (id = 1/d) */
static int scale_code(float id, float scale) {
    const int l = qs_nearest_int(0.5f * (id * scale - 1));
    return MAX(0, MIN(15, l));
}

/* iq2_xxs: {f16 d; u32 per 32 values: 4 entries of 256, then 4 x 7 sign bits and a 4-bit
 * scale}; the starting scale comes from make_qp_quants on the magnitudes */
static void iq2_xxs_row(const qs_lattice *lat, const float *x, uint8_t *y, int64_t n, const float *qw_row) {
    const int kMaxQ = 3;
    for (int64_t ibl = 0; ibl < n / QKK; ++ibl, y += 66) {
        const float *xbl = x + QKK * ibl;
        uint32_t q2[16] = {0};
        float scales[8], max_scale = 0;
        const float sigma2 = sum_squares(xbl, QKK) / QKK;
        qs_put16(y, qs_f32_to_f16(0.f));
        for (int ib = 0; ib < 8; ++ib) {
            const float *xb = xbl + 32 * ib, *qw = qw_row + QKK * ibl + 32 * ib;
            float weight[32], waux[32], xval[32];
            int8_t L[32];
            bool on_grid[8];
            uint8_t block_signs[4];
            for (int i = 0; i < 32; ++i) weight[i] = qw[i] * sqrtf(sigma2 + xb[i] * xb[i]);
            for (int i = 0; i < 32; ++i) waux[i] = sqrtf(weight[i]);
            for (int k = 0; k < 4; ++k) block_signs[k] = fold_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k, 1);
            float max = xval[0];
            for (int i = 1; i < 32; ++i) max = MAX(max, xval[i]);
            if (max < GROUP_MAX_EPS) {
                scales[ib] = 0;
                continue;
            }
            float scale = qs_ggml_make_qp_quants(32, kMaxQ + 1, xval, (uint8_t *)L, weight);
            const float eff_max = scale * kMaxQ;
            if (eff_max <= 0) {
                scales[ib] = 0;
                continue;
            }
            scale = try_scales(lat, 32, kMaxQ, 6, 0.1f, eff_max, xval, weight, waux, L, on_grid, scale);
            if (scale > 0) scale = refine(lat, 32, kMaxQ, scale, xval, weight, waux, L, on_grid, 1);
            if (scale < 0) { /* never seen; llama.cpp flips the signs to keep the scale unsigned */
                scale = -scale;
                for (int k = 0; k < 4; ++k) block_signs[k] = (uint8_t)(~block_signs[k] & 127);
            }
            for (int k = 0; k < 4; ++k) {
                q2[2 * ib + 0] |= (uint32_t)entry_of(lat, L + 8 * k) << 8 * k;
                q2[2 * ib + 1] |= (uint32_t)block_signs[k] << 7 * k;
            }
            scales[ib] = scale;
            max_scale = MAX(max_scale, scale);
        }
        if (!max_scale) {
            memset(y + 2, 0, 64);
            continue;
        }
        const float d = max_scale / 31, id = 1 / d;
        qs_put16(y, qs_f32_to_f16(d));
        for (int ib = 0; ib < 8; ++ib) {
            const int l = scale_code(id, scales[ib]);
            q2[2 * ib + 1] |= (uint32_t)l << 28;
        }
        for (int i = 0; i < 16; ++i)
            for (int b = 0; b < 4; ++b) y[2 + 4 * i + b] = (uint8_t)(q2[i] >> 8 * b);
    }
}

/* iq2_xs: {f16 d; u16 qs[32] (9-bit entry | 7 sign bits << 9); u8 scales[8] (4 bits per 16)} */
static void iq2_xs_row(const qs_lattice *lat, const float *x, uint8_t *y, int64_t n, const float *qw_row) {
    const int kMaxQ = 3;
    for (int64_t ibl = 0; ibl < n / QKK; ++ibl, y += 74) {
        const float *xbl = x + QKK * ibl;
        uint16_t q2[32] = {0};
        float scales[16], max_scale = 0;
        const float sigma2 = sum_squares(xbl, QKK) / QKK;
        qs_put16(y, qs_f32_to_f16(0.f));
        memset(y + 66, 0, 8);
        for (int ib = 0; ib < 16; ++ib) {
            const float *xb = xbl + 16 * ib, *qw = qw_row + QKK * ibl + 16 * ib;
            float weight[16], waux[16], xval[16];
            int8_t L[16] = {0};
            bool on_grid[2] = {true, true};
            uint8_t block_signs[2];
            for (int i = 0; i < 16; ++i) weight[i] = qw[i] * sqrtf(sigma2 + xb[i] * xb[i]);
            for (int i = 0; i < 16; ++i) waux[i] = sqrtf(weight[i]);
            for (int k = 0; k < 2; ++k) block_signs[k] = fold_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k, 1);
            float max = xval[0];
            for (int i = 1; i < 16; ++i) max = MAX(max, xval[i]);
            if (max < GROUP_MAX_EPS) {
                scales[ib] = 0;
                continue;
            }
            float scale = try_scales(lat, 16, kMaxQ, 9, 0.1f, max, xval, weight, waux, L, on_grid, max / (2 * kMaxQ - 1));
            if ((!on_grid[0] || !on_grid[1]) && scale > 0) scale = refine(lat, 16, kMaxQ, scale, xval, weight, waux, L, on_grid, 0);
            if (scale < 0) {
                scale = -scale;
                for (int k = 0; k < 2; ++k) block_signs[k] = (uint8_t)(~block_signs[k] & 127);
            }
            for (int k = 0; k < 2; ++k) q2[2 * ib + k] = (uint16_t)(entry_of(lat, L + 8 * k) | (block_signs[k] << 9));
            scales[ib] = scale;
            max_scale = MAX(max_scale, scale);
        }
        if (!max_scale) {
            memset(y + 2, 0, 64);
            continue;
        }
        const float d = max_scale / 31, id = 1 / d;
        qs_put16(y, qs_f32_to_f16(d));
        for (int ib = 0; ib < 16; ++ib) {
            const int l = scale_code(id, scales[ib]);
            if (ib % 2 == 0) y[66 + ib / 2] = (uint8_t)l;
            else y[66 + ib / 2] |= (uint8_t)(l << 4);
        }
        for (int i = 0; i < 32; ++i) qs_put16(y + 2 + 2 * i, q2[i]);
    }
}

/* iq2_s: {f16 d; u8 qs[32] (entry low bits); u8 signs[32]; u8 qh[8] (entry high 2 bits);
 * u8 scales[8]}: 1024 entries, 8 explicit sign bits per group */
static void iq2_s_row(const qs_lattice *lat, const float *x, uint8_t *y, int64_t n, const float *qw_row) {
    const int kMaxQ = 3;
    for (int64_t ibl = 0; ibl < n / QKK; ++ibl, y += 82) {
        const float *xbl = x + QKK * ibl;
        float scales[16], max_scale = 0;
        const float sigma2 = 2 * sum_squares(xbl, QKK) / QKK;
        memset(y, 0, 82);
        uint8_t *qs = y + 2, *qh = y + 66, *sc = y + 74;
        for (int ib = 0; ib < 16; ++ib) {
            const float *xb = xbl + 16 * ib;
            float weight[16], waux[16], xval[16];
            int8_t L[16] = {0};
            bool on_grid[2] = {true, true};
            uint8_t block_signs[2];
            if (qw_row)
                for (int i = 0; i < 16; ++i) weight[i] = qw_row[QKK * ibl + 16 * ib + i] * sqrtf(sigma2 + xb[i] * xb[i]);
            else
                for (int i = 0; i < 16; ++i) weight[i] = 0.25f * sigma2 + xb[i] * xb[i];
            for (int i = 0; i < 16; ++i) waux[i] = sqrtf(weight[i]);
            for (int k = 0; k < 2; ++k) block_signs[k] = fold_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k, 0);
            float max = xval[0];
            for (int i = 1; i < 16; ++i) max = MAX(max, xval[i]);
            if (max < GROUP_MAX_EPS_IQ2_S) {
                scales[ib] = 0;
                continue;
            }
            float scale = try_scales(lat, 16, kMaxQ, 9, 0.1f, max, xval, weight, waux, L, on_grid, max / (2 * kMaxQ - 1));
            if ((!on_grid[0] || !on_grid[1]) && scale > 0) scale = refine(lat, 16, kMaxQ, scale, xval, weight, waux, L, on_grid, 0);
            if (scale < 0) {
                scale = -scale;
                for (int k = 0; k < 2; ++k) block_signs[k] = (uint8_t)~block_signs[k];
            }
            for (int k = 0; k < 2; ++k) {
                const int e = entry_of(lat, L + 8 * k), i8 = 2 * ib + k;
                qs[i8] = (uint8_t)(e & 255);
                qh[i8 / 4] |= (uint8_t)((e >> 8) << 2 * (i8 % 4));
                qs[32 + i8] = block_signs[k];
            }
            scales[ib] = scale;
            max_scale = MAX(max_scale, scale);
        }
        if (!max_scale) continue;
        const float d = max_scale / 31, id = 1 / d;
        qs_put16(y, qs_f32_to_f16(d * 0.9875f));
        for (int ib = 0; ib < 16; ++ib) {
            const int l = scale_code(id, scales[ib]);
            if (ib % 2 == 0) sc[ib / 2] = (uint8_t)l;
            else sc[ib / 2] |= (uint8_t)(l << 4);
        }
    }
}

/* the weights of a 32-value iq3 sub-block: importance x sqrt(sigma2 + x^2), or x^2 */
static void iq3_weights(const float *xb, const float *qw, float sigma2, float *weight, float *waux) {
    for (int i = 0; i < 32; ++i) weight[i] = qw ? qw[i] * sqrtf(sigma2 + xb[i] * xb[i]) : xb[i] * xb[i];
    for (int i = 0; i < 32; ++i) waux[i] = sqrtf(weight[i]);
}

/* iq3_xxs: {f16 d; u8 qs[64] (8 entries of 256 per 32 values); u32 per 32: 4 x 7 sign bits
 * and a 4-bit scale} */
static void iq3_xxs_row(const qs_lattice *lat, const float *x, uint8_t *y, int64_t n, const float *qw_row) {
    const int kMaxQ = 8;
    for (int64_t ibl = 0; ibl < n / QKK; ++ibl, y += 98) {
        const float *xbl = x + QKK * ibl;
        uint8_t q3[96] = {0};
        uint32_t scales_and_signs[8] = {0};
        float scales[8], max_scale = 0;
        const float sigma2 = 2 * sum_squares(xbl, QKK) / QKK;
        qs_put16(y, qs_f32_to_f16(0.f));
        for (int ib = 0; ib < 8; ++ib) {
            const float *xb = xbl + 32 * ib;
            float weight[32], waux[32], xval[32];
            int8_t L[32] = {0};
            bool on_grid[8];
            uint8_t block_signs[4];
            for (int k = 0; k < 8; ++k) on_grid[k] = true;
            iq3_weights(xb, qw_row ? qw_row + QKK * ibl + 32 * ib : NULL, sigma2, weight, waux);
            for (int k = 0; k < 4; ++k) block_signs[k] = fold_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k, 1);
            float max = xval[0];
            for (int i = 1; i < 32; ++i) max = MAX(max, xval[i]);
            if (max < GROUP_MAX_EPS_IQ3_XXS) {
                scales[ib] = 0;
                continue;
            }
            float scale = try_scales(lat, 32, kMaxQ, 15, 0.2f, max, xval, weight, waux, L, on_grid, max / (2 * kMaxQ - 1));
            int off = 0;
            for (int k = 0; k < 8; ++k) off += !on_grid[k];
            if (off > 0 && scale > 0) scale = refine(lat, 32, kMaxQ, scale, xval, weight, waux, L, on_grid, 0);
            if (scale < 0) {
                scale = -scale;
                for (int k = 0; k < 4; ++k) block_signs[k] = (uint8_t)(~block_signs[k] & 127);
            }
            for (int k = 0; k < 8; ++k) q3[8 * ib + k] = (uint8_t)entry_of(lat, L + 4 * k);
            scales_and_signs[ib] = block_signs[0] | (block_signs[1] << 7) | (block_signs[2] << 14) | ((uint32_t)block_signs[3] << 21);
            scales[ib] = scale;
            max_scale = MAX(max_scale, scale);
        }
        if (!max_scale) {
            memset(y + 2, 0, 96);
            continue;
        }
        const float d = max_scale / 31, id = 1 / d;
        qs_put16(y, qs_f32_to_f16(d * 1.0125f));
        for (int ib = 0; ib < 8; ++ib) {
            const int l = scale_code(id, scales[ib]);
            scales_and_signs[ib] |= (uint32_t)l << 28;
        }
        memcpy(y + 2, q3, 64);
        for (int ib = 0; ib < 8; ++ib)
            for (int b = 0; b < 4; ++b) y[2 + 64 + 4 * ib + b] = (uint8_t)(scales_and_signs[ib] >> 8 * b);
    }
}

/* iq3_s: {f16 d; u8 qs[64] (entry low bits); u8 qh[8] (entry high bit); u8 signs[32];
 * u8 scales[4] (4 bits per 32)}: 512 entries, explicit signs. As in llama.cpp, an all-zero
 * sub-block does not advance the qs and signs cursors, so the next sub-block's entries and
 * signs land in its slots (its qh bits and scale stay in their own places). */
static void iq3_s_row(const qs_lattice *lat, const float *x, uint8_t *y, int64_t n, const float *qw_row) {
    const int kMaxQ = 8;
    for (int64_t ibl = 0; ibl < n / QKK; ++ibl, y += 110) {
        const float *xbl = x + QKK * ibl;
        float scales[8], max_scale = 0;
        const float sigma2 = 2 * sum_squares(xbl, QKK) / QKK;
        memset(y, 0, 110);
        uint8_t *qs = y + 2, *qh = y + 66, *signs = y + 74, *sc = y + 106;
        for (int ib = 0; ib < 8; ++ib) {
            const float *xb = xbl + 32 * ib;
            float weight[32], waux[32], xval[32];
            int8_t L[32] = {0};
            bool on_grid[8];
            uint8_t block_signs[4];
            for (int k = 0; k < 8; ++k) on_grid[k] = false;
            iq3_weights(xb, qw_row ? qw_row + QKK * ibl + 32 * ib : NULL, sigma2, weight, waux);
            for (int k = 0; k < 4; ++k) block_signs[k] = fold_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k, 0);
            float max = xval[0];
            for (int i = 1; i < 32; ++i) max = MAX(max, xval[i]);
            if (!max) {
                scales[ib] = 0;
                continue;
            }
            float scale = try_scales(lat, 32, kMaxQ, 9, 0.2f, max, xval, weight, waux, L, on_grid, max / (2 * kMaxQ - 1));
            int off = 0;
            for (int k = 0; k < 8; ++k) off += !on_grid[k];
            if (off > 0 && scale > 0) scale = refine(lat, 32, kMaxQ, scale, xval, weight, waux, L, on_grid, 1);
            if (scale < 0) {
                scale = -scale;
                for (int k = 0; k < 4; ++k) block_signs[k] = (uint8_t)~block_signs[k];
            }
            for (int k = 0; k < 8; ++k) {
                const int e = entry_of(lat, L + 4 * k);
                qs[k] = (uint8_t)(e & 255);
                qh[(ib * 8 + k) / 8] |= (uint8_t)((e >> 8) << ((ib * 8 + k) % 8));
            }
            qs += 8;
            for (int k = 0; k < 4; ++k) signs[k] = block_signs[k];
            signs += 4;
            scales[ib] = scale;
            max_scale = MAX(max_scale, scale);
        }
        if (!max_scale) continue;
        const float d = max_scale / 31, id = 1 / d;
        qs_put16(y, qs_f32_to_f16(d * 1.033f));
        for (int ib = 0; ib < 8; ib += 2) {
            sc[ib / 2] = (uint8_t)(scale_code(id, scales[ib]) | (scale_code(id, scales[ib + 1]) << 4));
        }
    }
}

/* in ggml_iq1_quant.c */
int qs_ggml_quantize_iq1(int type, const float *src, uint8_t *dst, int64_t n, const float *importance);

int qs_ggml_iq_needs_importance(int type) { return type == QS_DT_IQ2_XXS || type == QS_DT_IQ2_XS || type == QS_DT_IQ1_S; }

int qs_ggml_quantize_iq(int type, const float *src, uint8_t *dst, int64_t n, const float *importance) {
    if (qs_ggml_iq_needs_importance(type) && !importance) return -1;
    if (type == QS_DT_IQ1_S || type == QS_DT_IQ1_M) return qs_ggml_quantize_iq1(type, src, dst, n, importance);
    const qs_lattice *lat = qs_lattice_get(type == QS_DT_IQ2_XXS ? QS_LAT_IQ2XXS : type == QS_DT_IQ2_XS ? QS_LAT_IQ2XS
                                           : type == QS_DT_IQ2_S  ? QS_LAT_IQ2S
                                           : type == QS_DT_IQ3_XXS ? QS_LAT_IQ3XXS : QS_LAT_IQ3S);
    if (!lat) return -1;
    switch (type) {
    case QS_DT_IQ2_XXS: iq2_xxs_row(lat, src, dst, n, importance); return 0;
    case QS_DT_IQ2_XS: iq2_xs_row(lat, src, dst, n, importance); return 0;
    case QS_DT_IQ2_S: iq2_s_row(lat, src, dst, n, importance); return 0;
    case QS_DT_IQ3_XXS: iq3_xxs_row(lat, src, dst, n, importance); return 0;
    case QS_DT_IQ3_S: iq3_s_row(lat, src, dst, n, importance); return 0;
    }
    return -1;
}
