/* llama.cpp's K-quant quantizers (q2_k .. q6_k, 256-element super-blocks), as llama-quantize
 * runs them without an imatrix: quantize_row_q*_K_ref and their helpers make_qx_quants,
 * make_q3_quants and make_qkx2_quants (scale search by weighted least squares). Same float
 * operations in the same order, so the blocks come out byte for byte the same. */
#include <math.h>
#include <string.h>

#include "core/qs_dtype.h"
#include "core/qs_half.h"
#include "quant/ggml_quant_impl.h"

#define QK_K 256
#define GROUP_MAX_EPS 1e-15f
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define MIN(a, b) ((a) < (b) ? (a) : (b))

static float h2f(uint16_t h) { return qs_f16_to_f32(h); }
#define put16 qs_put16
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

#define nearest_int qs_nearest_int

/* signed levels in [-nmax, nmax-1] (stored + nmax) for a symmetric sub-block; weights qw, or
 * x^2 when qw is NULL (rmse_type 1); tries 18 scales around nmax/max and keeps the best
 * weighted fit. Shared with the imatrix-weighted quantizers (ggml_quant_weighted.c). */
float qs_ggml_make_qx_quants(int n, int nmax, const float *x, int8_t *L, int rmse_type, const float *qw) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max;
    if (rmse_type == 0) {
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * x[i]);
            L[i] = (int8_t)(nmax + MAX(-nmax, MIN(nmax - 1, l)));
        }
        return 1 / iscale;
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = MAX(-nmax, MIN(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        float w = qw ? qw[i] : x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * x[i]);
            l = MAX(-nmax, MIN(nmax - 1, l));
            float w = qw ? qw[i] : x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + MAX(-nmax, MIN(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* q3_k's sub-block fit: start from nmax/max, then move single levels while the weighted
 * least-squares fit improves (up to 5 passes) */
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = MAX(-nmax, MIN(nmax - 1, l));
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; ++itry) {
        int n_changed = 0;
        for (int i = 0; i < n; ++i) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int new_l = nearest_int(x[i] * sl2 / slx);
                new_l = MAX(-nmax, MIN(nmax - 1, new_l));
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        ++n_changed;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = (int8_t)(L[i] + nmax);
    return sumlx / suml2;
}

/* asymmetric sub-block fit (scale and min) with levels [0, nmax]: tries nstep+1 scales and
 * solves the weighted least-squares scale/min for each, keeping the lowest weighted error.
 * With use_mad 0 it is also llama.cpp's make_qkx3_quants (the imatrix paths), which differs
 * only for NULL weights, a case the imatrix paths never use. */
float qs_ggml_make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep, int use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_mad = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)MAX(0, MIN(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_mad += weights[i] * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
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
                diff = use_mad ? fabsf(diff) : diff * diff;
                mad += weights[i] * diff;
            }
            if (mad < best_mad) {
                for (int i = 0; i < n; ++i) L[i] = Laux[i];
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* A super-block's 6-bit sub-block scales (or mins) x[0..n) >= 0: the grid step minimising the
 * weighted squared error over 9 candidates, then single-level moves while the weighted
 * least-squares fit improves (llama.cpp's make_qp_quants). */
float qs_ggml_make_qp_quants(int n, int nmax, const float *x, uint8_t *L, const float *quant_weights) {
    float max = 0;
    for (int i = 0; i < n; ++i) max = MAX(max, x[i]);
    if (max < GROUP_MAX_EPS) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = nmax / max;
    for (int i = 0; i < n; ++i) L[i] = (uint8_t)nearest_int(iscale * x[i]);
    float scale = 1 / iscale, best_mse = 0;
    for (int i = 0; i < n; ++i) {
        float diff = x[i] - scale * L[i];
        float w = quant_weights[i];
        best_mse += w * diff * diff;
    }
    for (int is = -4; is <= 4; ++is) {
        if (is == 0) continue;
        float iscale_is = (0.1f * is + nmax) / max, scale_is = 1 / iscale_is, mse = 0;
        for (int i = 0; i < n; ++i) {
            int l = MIN(nmax, nearest_int(iscale_is * x[i]));
            float diff = x[i] - scale_is * l;
            float w = quant_weights[i];
            mse += w * diff * diff;
        }
        if (mse < best_mse) {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = MIN(nmax, nearest_int(iscale * x[i]));
        L[i] = (uint8_t)l;
        float w = quant_weights[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; ++itry) {
        int n_changed = 0;
        for (int i = 0; i < n; ++i) {
            float w = quant_weights[i];
            float slx = sumlx - w * x[i] * L[i], sl2 = suml2 - w * L[i] * L[i];
            if (slx > 0 && sl2 > 0) {
                int new_l = MIN(nmax, nearest_int(x[i] * sl2 / slx));
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (uint8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        ++n_changed;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

static void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
    }
}

/* four 2-bit values per byte, as q2_k and q3_k store them: L[j + l + 32 k] at bits 2k of qs[j/4 + l] */
static void pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; ++l)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

/* a q2_k block whose scales, mins, d and dmin are set: every value rounded on the stored grid
 * and packed (both llama.cpp paths end so); L: scratch holding the fit's levels, kept where a
 * sub-block's scale is 0 */
static void q2_k_round_and_pack(const float *x, uint8_t *y, uint8_t *L) {
    const uint8_t *sc = y;
    for (int j = 0; j < QK_K / 16; ++j) {
        const float d = h2f(get16(y + 80)) * (sc[j] & 0xF);
        if (!d) continue;
        const float dm = h2f(get16(y + 82)) * (sc[j] >> 4);
        for (int ii = 0; ii < 16; ++ii) L[16 * j + ii] = (uint8_t)MAX(0, MIN(3, nearest_int((x[16 * j + ii] + dm) / d)));
    }
    pack_2bit(L, y + 16);
}

/* a q3_k block whose 6-bit scales and d are set: every value rounded on the stored grid, the
 * high bits into hmask, the low two packed; L as for q2_k (levels 0..7) */
static void q3_k_round_and_pack(const float *x, uint8_t *y, int8_t *L) {
    uint8_t *hmask = y, *sc = y + 96;
    for (int j = 0; j < QK_K / 16; ++j) {
        int8_t s = (int8_t)(j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4);
        s = (int8_t)((s | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
        const float d = h2f(get16(y + 108)) * s;
        if (!d) continue;
        for (int ii = 0; ii < 16; ++ii) L[16 * j + ii] = (int8_t)(MAX(-4, MIN(3, nearest_int(x[16 * j + ii] / d))) + 4);
    }
    memset(hmask, 0, QK_K / 8);
    int m = 0;
    uint8_t hm = 1;
    for (int j = 0; j < QK_K; ++j) {
        if (L[j] > 3) {
            hmask[m] |= hm;
            L[j] -= 4;
        }
        if (++m == QK_K / 8) {
            m = 0;
            hm <<= 1;
        }
    }
    pack_2bit((const uint8_t *)L, y + 32);
}

/* block_q2_K: scales[16] qs[64] d dmin */
static void q2_k(const float *x, uint8_t *y, int64_t nb) {
    uint8_t L[QK_K], Laux[16];
    float weights[16], mins[QK_K / 16], scales[QK_K / 16];
    const float q4scale = 15.f;
    for (int64_t i = 0; i < nb; i++, x += QK_K, y += 84) {
        uint8_t *sc = y;
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < QK_K / 16; ++j) {
            for (int l = 0; l < 16; ++l) weights[l] = fabsf(x[16 * j + l]);
            scales[j] = qs_ggml_make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, 1);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            float iscale = q4scale / max_scale;
            for (int j = 0; j < QK_K / 16; ++j) sc[j] = (uint8_t)nearest_int(iscale * scales[j]);
            put16(y + 80, qs_f32_to_f16(max_scale / q4scale));
        } else {
            memset(sc, 0, 16);
            put16(y + 80, qs_f32_to_f16(0.f));
        }
        if (max_min > 0) {
            float iscale = q4scale / max_min;
            for (int j = 0; j < QK_K / 16; ++j) sc[j] |= (uint8_t)(nearest_int(iscale * mins[j]) << 4);
            put16(y + 82, qs_f32_to_f16(max_min / q4scale));
        } else {
            put16(y + 82, qs_f32_to_f16(0.f));
        }
        q2_k_round_and_pack(x, y, L);
    }
}

/* q2_k with importance qw (llama-quantize --imatrix): each 16-value sub-block's scale and min
 * searched on weights qw * sqrt(sigma2 + x^2), sigma2 the super-block's mean square; the
 * sixteen 4-bit scales and mins fitted by make_qp_quants weighted by each sub-block's total
 * weight; then every value rounded again on the stored grid. */
static void q2_k_weighted(const float *x, uint8_t *y, int64_t nb, const float *qw) {
    uint8_t L[QK_K], Laux[16], Ls[QK_K / 16], Lm[QK_K / 16];
    float mins[QK_K / 16], scales[QK_K / 16], sw[QK_K / 16], weight[16];
    for (int64_t i = 0; i < nb; i++, x += QK_K, y += 84, qw += QK_K) {
        float sumx2 = 0;
        for (int j = 0; j < QK_K; ++j) sumx2 += x[j] * x[j];
        const float sigma2 = sumx2 / QK_K;
        for (int j = 0; j < QK_K / 16; ++j) {
            sw[j] = 0;
            for (int l = 0; l < 16; ++l) weight[l] = qw[16 * j + l] * sqrtf(sigma2 + x[16 * j + l] * x[16 * j + l]);
            for (int l = 0; l < 16; ++l) sw[j] += weight[l];
            scales[j] = qs_ggml_make_qkx2_quants(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], Laux, -0.9f, 0.05f, 36, 0);
        }
        put16(y + 80, qs_f32_to_f16(qs_ggml_make_qp_quants(QK_K / 16, 15, scales, Ls, sw)));
        put16(y + 82, qs_f32_to_f16(qs_ggml_make_qp_quants(QK_K / 16, 15, mins, Lm, sw)));
        for (int j = 0; j < QK_K / 16; ++j) y[j] = (uint8_t)(Ls[j] | (Lm[j] << 4));
        q2_k_round_and_pack(x, y, L);
    }
}

/* block_q3_K: hmask[32] qs[64] scales[12] d */
static void q3_k(const float *x, uint8_t *y, int64_t nb) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < nb; i++, x += QK_K, y += 110) {
        uint8_t *sc = y + 96;
        float max_scale = 0, amax = 0;
        for (int j = 0; j < QK_K / 16; ++j) {
            scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
            float scale = fabsf(scales[j]);
            if (scale > amax) { amax = scale; max_scale = scales[j]; }
        }
        memset(sc, 0, 12);
        if (max_scale) {
            float iscale = -32.f / max_scale;
            for (int j = 0; j < QK_K / 16; ++j) {
                int8_t l = (int8_t)nearest_int(iscale * scales[j]);
                l = (int8_t)(MAX(-32, MIN(31, l)) + 32);
                if (j < 8) sc[j] = l & 0xF;
                else sc[j - 8] |= (uint8_t)((l & 0xF) << 4);
                l >>= 4;
                sc[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
            }
            put16(y + 108, qs_f32_to_f16(1 / iscale));
        } else {
            put16(y + 108, qs_f32_to_f16(0.f));
        }
        q3_k_round_and_pack(x, y, L);
    }
}

/* q3_k with importance qw: each sub-block's scale by the weighted make_qx_quants (weights
 * qw * sqrt(sigma2 + x^2), sigma2 twice the super-block's mean square), the sixteen 6-bit
 * scales by make_qx_quants weighted by the sub-blocks' total weights; values rounded again on
 * the stored grid (llama.cpp's quantize_row_q3_K_impl). */
static void q3_k_weighted(const float *x, uint8_t *y, int64_t nb, const float *qw) {
    int8_t L[QK_K], Ls[QK_K / 16];
    float scales[QK_K / 16], weight[16], sw[QK_K / 16];
    for (int64_t i = 0; i < nb; i++, x += QK_K, y += 110, qw += QK_K) {
        uint8_t *sc = y + 96;
        float sumx2 = 0;
        for (int j = 0; j < QK_K; ++j) sumx2 += x[j] * x[j];
        const float sigma2 = 2 * sumx2 / QK_K;
        for (int j = 0; j < QK_K / 16; ++j) {
            for (int l = 0; l < 16; ++l) weight[l] = qw[16 * j + l] * sqrtf(sigma2 + x[16 * j + l] * x[16 * j + l]);
            float sumw = 0;
            for (int l = 0; l < 16; ++l) sumw += weight[l];
            sw[j] = sumw;
            scales[j] = qs_ggml_make_qx_quants(16, 4, x + 16 * j, L + 16 * j, 1, weight);
        }
        memset(sc, 0, 12);
        const float d_block = qs_ggml_make_qx_quants(QK_K / 16, 32, scales, Ls, 1, sw);
        for (int j = 0; j < QK_K / 16; ++j) {
            int l = Ls[j];
            if (j < 8) sc[j] = (uint8_t)(l & 0xF);
            else sc[j - 8] |= (uint8_t)((l & 0xF) << 4);
            l >>= 4;
            sc[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
        }
        put16(y + 108, qs_f32_to_f16(d_block));
        q3_k_round_and_pack(x, y, L);
    }
}

/* the 6-bit scales and mins of q4_k / q5_k, packed into 12 bytes */
static void pack_scales_k4(uint8_t *s, const float *scales, const float *mins, float max_scale, float max_min) {
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = MIN(63, ls);
        lm = MIN(63, lm);
        if (j < 4) {
            s[j] = ls;
            s[j + 4] = lm;
        } else {
            s[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            s[j - 4] |= (uint8_t)((ls >> 4) << 6);
            s[j - 0] |= (uint8_t)((lm >> 4) << 6);
        }
    }
}

/* q4_k (nmax 15) and q5_k (nmax 31): 8 sub-blocks of 32 with weights av_x + |x| */
static void qk_4_5(const float *x, uint8_t *dm, uint8_t *scales12, uint8_t *L, int nmax, float rmin, int nstep) {
    uint8_t Laux[32];
    float weights[32], mins[QK_K / 32], scales[QK_K / 32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK_K / 32; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = qs_ggml_make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, 0);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    memset(scales12, 0, 12);
    pack_scales_k4(scales12, scales, mins, max_scale, max_min);
    put16(dm, qs_f32_to_f16(max_scale / 63.f));
    put16(dm + 2, qs_f32_to_f16(max_min / 63.f));
    uint8_t sc, m;
    for (int j = 0; j < QK_K / 32; ++j) {
        scale_min_k4(j, scales12, &sc, &m);
        const float d = h2f(get16(dm)) * sc;
        if (!d) continue;
        const float dmn = h2f(get16(dm + 2)) * m;
        for (int ii = 0; ii < 32; ++ii) {
            int l = nearest_int((x[32 * j + ii] + dmn) / d);
            L[32 * j + ii] = (uint8_t)MAX(0, MIN(nmax, l));
        }
    }
}

/* the imatrix path of q4_k / q5_k (llama.cpp's quantize_row_q4_K_impl / q5_K_impl): sub-block
 * fits weighted by qw * sqrt(sigma2 + x^2), then the 6-bit scales and mins fitted by
 * make_qp_quants weighted by each sub-block's total weight */
static void qk_4_5_weighted(const float *x, uint8_t *dm, uint8_t *s, uint8_t *L, int nmax, const float *qw) {
    uint8_t Laux[32], Ls[QK_K / 32], Lm[QK_K / 32];
    float weights[32], sw[QK_K / 32], mins[QK_K / 32], scales[QK_K / 32];
    float sum_x2 = 0;
    for (int l = 0; l < QK_K; ++l) sum_x2 += x[l] * x[l];
    const float sigma2 = 2 * sum_x2 / QK_K;
    for (int j = 0; j < QK_K / 32; ++j) {
        for (int l = 0; l < 32; ++l) weights[l] = qw[32 * j + l] * sqrtf(sigma2 + x[32 * j + l] * x[32 * j + l]);
        float sumw = 0;
        for (int l = 0; l < 32; ++l) sumw += weights[l];
        sw[j] = sumw;
        scales[j] = qs_ggml_make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f, 36, 0);
    }
    const float d_block = qs_ggml_make_qp_quants(QK_K / 32, 63, scales, Ls, sw);
    const float m_block = qs_ggml_make_qp_quants(QK_K / 32, 63, mins, Lm, sw);
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t ls = Ls[j], lm = Lm[j];
        if (nmax == 31) { /* q5_k clamps; q4_k's fit never exceeds 63 */
            ls = MIN(63, ls);
            lm = MIN(63, lm);
        }
        if (j < 4) {
            s[j] = ls;
            s[j + 4] = lm;
        } else {
            s[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            s[j - 4] |= (uint8_t)((ls >> 4) << 6);
            s[j - 0] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    put16(dm, qs_f32_to_f16(d_block));
    put16(dm + 2, qs_f32_to_f16(m_block));
    uint8_t sc, m;
    for (int j = 0; j < QK_K / 32; ++j) {
        scale_min_k4(j, s, &sc, &m);
        const float d = h2f(get16(dm)) * sc;
        if (!d) continue;
        const float dmn = h2f(get16(dm + 2)) * m;
        for (int ii = 0; ii < 32; ++ii) {
            int l = nearest_int((x[32 * j + ii] + dmn) / d);
            L[32 * j + ii] = (uint8_t)MAX(0, MIN(nmax, l));
        }
    }
}

/* block_q4_K: d dmin scales[12] qs[128] */
static void q4_k(const float *x, uint8_t *y, int64_t nb, const float *qw) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; i++, x += QK_K, y += 144) {
        if (qw) qk_4_5_weighted(x, y, y + 4, L, 15, qw + QK_K * i);
        else qk_4_5(x, y, y + 4, L, 15, -1.f, 20);
        uint8_t *q = y + 16;
        for (int j = 0; j < QK_K; j += 64, q += 32)
            for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
    }
}

/* block_q5_K: d dmin scales[12] qh[32] qs[128] */
static void q5_k(const float *x, uint8_t *y, int64_t nb, const float *qw) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; i++, x += QK_K, y += 176) {
        if (qw) qk_4_5_weighted(x, y, y + 4, L, 31, qw + QK_K * i);
        else qk_4_5(x, y, y + 4, L, 31, -0.5f, 15);
        uint8_t *qh = y + 16, *ql = y + 48;
        memset(qh, 0, QK_K / 8);
        uint8_t m1 = 1, m2 = 2;
        for (int n = 0; n < QK_K; n += 64, ql += 32) {
            for (int j = 0; j < 32; ++j) {
                int l1 = L[n + j];
                if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
                int l2 = L[n + j + 32];
                if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
                ql[j] = (uint8_t)(l1 | (l2 << 4));
            }
            m1 <<= 2;
            m2 <<= 2;
        }
    }
}

/* block_q6_K: ql[128] qh[64] scales[16] (int8) d. qw: per-value importance (llama-quantize's
 * imatrix path, which weighs each 16-value fit by it directly) or NULL (the reference). */
static void q6_k(const float *x, uint8_t *y, int64_t nb, const float *qw) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < nb; i++, x += QK_K, y += 210) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < QK_K / 16; ++ib) {
            const float *w = qw ? qw + QK_K * i + 16 * ib : NULL;
            const float scale = qs_ggml_make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, 1, w);
            scales[ib] = scale;
            const float abs_scale = fabsf(scale);
            if (abs_scale > max_abs_scale) {
                max_abs_scale = abs_scale;
                max_scale = scale;
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(y, 0, 210);
            continue;
        }
        int8_t *sc = (int8_t *)(y + 192);
        float iscale = -128.f / max_scale;
        put16(y + 208, qs_f32_to_f16(1 / iscale));
        for (int ib = 0; ib < QK_K / 16; ++ib) sc[ib] = (int8_t)MIN(127, nearest_int(iscale * scales[ib]));
        for (int j = 0; j < QK_K / 16; ++j) {
            float d = h2f(get16(y + 208)) * sc[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ++ii) {
                int l = nearest_int(x[16 * j + ii] / d);
                L[16 * j + ii] = (int8_t)(MAX(-32, MIN(31, l)) + 32);
            }
        }
        uint8_t *ql = y, *qh = y + 128;
        for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; ++l) {
                const uint8_t q1 = L[j + l + 0] & 0xF, q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l + 0] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                  ((L[j + l + 96] >> 4) << 6));
            }
        }
    }
}

int qs_ggml_quantize_k(int type, const float *src, uint8_t *dst, int64_t n) {
    const int64_t nb = n / QK_K;
    switch (type) {
    case QS_DT_Q2_K: q2_k(src, dst, nb); return 0;
    case QS_DT_Q3_K: q3_k(src, dst, nb); return 0;
    case QS_DT_Q4_K: q4_k(src, dst, nb, NULL); return 0;
    case QS_DT_Q5_K: q5_k(src, dst, nb, NULL); return 0;
    case QS_DT_Q6_K: q6_k(src, dst, nb, NULL); return 0;
    }
    return -1;
}

/* one row of n values (a multiple of 256) with importance qw[n]: q2_k .. q6_k */
int qs_ggml_quantize_k_weighted(int type, const float *src, uint8_t *dst, int64_t n, const float *qw) {
    switch (type) {
    case QS_DT_Q2_K: q2_k_weighted(src, dst, n / QK_K, qw); return 0;
    case QS_DT_Q3_K: q3_k_weighted(src, dst, n / QK_K, qw); return 0;
    case QS_DT_Q4_K: q4_k(src, dst, n / QK_K, qw); return 0;
    case QS_DT_Q5_K: q5_k(src, dst, n / QK_K, qw); return 0;
    case QS_DT_Q6_K: q6_k(src, dst, n / QK_K, qw); return 0;
    }
    return -1;
}
