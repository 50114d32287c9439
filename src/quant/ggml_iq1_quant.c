/* llama.cpp's 1.56 and 1.75 bit i-quants, byte for byte as ggml_quantize_chunk writes them
 * (quantize_row_iq1_s_impl, quantize_row_iq1_m_impl). Values are -1, 0, 1 shifted by +-1/8;
 * with three levels the weighted least-squares split is found exactly: sort the sub-block,
 * try every pair of boundaries with prefix sums, then put each group of 8 on the codebook
 * (iq1_s's 2048 entries) or its best neighbour. iq1_s needs an importance (llama.cpp refuses
 * it without an imatrix); iq1_m falls back to x^2. Same float operations in the same order as
 * ggml, and the same glibc qsort on the same (value, index) pairs. */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_dtype.h"
#include "core/qs_half.h"
#include "quant/ggml_quant_impl.h"
#include "quant/iq_lattice.h"

#define QKK 256
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define IQ1_DELTA 0.125f
#define GROUP_MAX_EPS_IQ1_M 1e-7f
#define GROUP_MAX_EPS_IQ1_S 1e-12f

typedef struct {
    float x;
    int i;
} pair;

static int by_value(const void *a, const void *b) {
    const float l = ((const pair *)a)->x, r = ((const pair *)b)->x;
    return l < r ? -1 : l > r ? 1 : 0;
}

/* the neighbour of word u minimising sum weight (scale xg[level] - x)^2; L gets its levels */
static int best_neighbour_shifted(const qs_lattice *lat, int u, const float *x, const float *weight, float scale, const float *xg,
                                  int8_t *L) {
    const uint16_t *list = lat->neighbours - lat->map[u] - 1;
    float best_score = FLT_MAX;
    int best = -1;
    for (int k = 1; k <= list[0]; ++k) {
        const uint8_t *pg = lat->pos + (size_t)list[k] * 8;
        float d2 = 0;
        for (int i = 0; i < 8; ++i) {
            const float q = xg[(pg[i] - 1) / 2], w = weight[i];
            const float diff = scale * q - x[i];
            d2 += w * diff * diff;
        }
        if (d2 < best_score) {
            best_score = d2;
            best = list[k];
        }
    }
    if (best < 0) best = list[1]; /* only when every distance is NaN */
    const uint8_t *pg = lat->pos + (size_t)best * 8;
    for (int i = 0; i < 8; ++i) L[i] = (int8_t)((pg[i] - 1) / 2);
    return best;
}

/* levels 0, 1, 2 for the sorted values below i1, from i1 to i2, from i2 on; with a negative
 * scale the levels mirror so the scale turns positive (returns 1 when they did) */
static int levels_from_split(const pair *p, int n, int i1, int i2, float *scale, int8_t *L) {
    for (int j = 0; j < n; ++j) L[p[j].i] = (int8_t)(j < i1 ? 0 : j < i2 ? 1 : 2);
    if (!(*scale < 0)) return 0;
    for (int j = 0; j < n; ++j) L[j] = (int8_t)(2 - L[j]);
    *scale = -*scale;
    return 1;
}

/* sorts the sub-block's values (ascending) into p */
static void sort_block(const float *xb, int n, pair *p) {
    for (int j = 0; j < n; ++j) p[j] = (pair){xb[j], j};
    qsort(p, (size_t)n, sizeof(pair), by_value);
}

/* iq1_s: {f16 d; u8 qs[32] (entry low 8 bits); u16 qh[8] (3 x 3 high bits, a 3-bit scale, the
 * shift's sign)} per 256, sub-blocks of 32 */
static void iq1_s_row(const qs_lattice *lat, const float *x, uint8_t *y, int64_t n, const float *qw_row) {
    const int block_size = 32;
    const float x_p[3] = {-1 + IQ1_DELTA, IQ1_DELTA, 1 + IQ1_DELTA};
    const float x_m[3] = {-1 - IQ1_DELTA, -IQ1_DELTA, 1 - IQ1_DELTA};
    for (int64_t ibl = 0; ibl < n / QKK; ++ibl, y += 50) {
        const float *xbl = x + QKK * ibl;
        float scales[8], max_scale = 0, sumx2 = 0;
        int8_t shifts[8];
        uint16_t qh[8] = {0};
        memset(y, 0, 50);
        for (int i = 0; i < QKK; ++i) sumx2 += xbl[i] * xbl[i];
        const float sigma2 = 2 * sumx2 / QKK;
        for (int ib = 0; ib < QKK / block_size; ++ib) {
            const float *xb = xbl + block_size * ib, *qw = qw_row + QKK * ibl + block_size * ib;
            float weight[32], sumx[33], sumw[33];
            int8_t L[32];
            pair p[32];
            uint16_t index[4];
            for (int i = 0; i < block_size; ++i) weight[i] = qw[i] * sqrtf(sigma2 + xb[i] * xb[i]);
            float max = fabsf(xb[0]);
            for (int i = 1; i < block_size; ++i) max = MAX(max, fabsf(xb[i]));
            if (max < GROUP_MAX_EPS_IQ1_S) {
                scales[ib] = 0;
                shifts[ib] = 1;
                continue;
            }
            sort_block(xb, block_size, p);
            sumx[0] = sumw[0] = 0;
            for (int j = 0; j < block_size; ++j) {
                const int i = p[j].i;
                sumx[j + 1] = sumx[j] + weight[i] * xb[i];
                sumw[j + 1] = sumw[j] + weight[i];
            }
            float best_score = -FLT_MAX, scale = max;
            int besti1 = -1, besti2 = -1, best_shift = 0;
            for (int i1 = 0; i1 <= block_size; ++i1) {
                for (int i2 = i1; i2 <= block_size; ++i2) {
                    float sumqx = (sumx[i1] - sumx[0]) * x_p[0] + (sumx[i2] - sumx[i1]) * x_p[1] + (sumx[block_size] - sumx[i2]) * x_p[2];
                    float sumq2 = (sumw[i1] - sumw[0]) * x_p[0] * x_p[0] + (sumw[i2] - sumw[i1]) * x_p[1] * x_p[1] +
                                  (sumw[block_size] - sumw[i2]) * x_p[2] * x_p[2];
                    if (sumq2 > 0 && sumqx * sumqx > best_score * sumq2) {
                        scale = sumqx / sumq2;
                        best_score = scale * sumqx;
                        besti1 = i1, besti2 = i2, best_shift = 1;
                    }
                    sumqx = (sumx[i1] - sumx[0]) * x_m[0] + (sumx[i2] - sumx[i1]) * x_m[1] + (sumx[block_size] - sumx[i2]) * x_m[2];
                    sumq2 = (sumw[i1] - sumw[0]) * x_m[0] * x_m[0] + (sumw[i2] - sumw[i1]) * x_m[1] * x_m[1] +
                            (sumw[block_size] - sumw[i2]) * x_m[2] * x_m[2];
                    if (sumq2 > 0 && sumqx * sumqx > best_score * sumq2) {
                        scale = sumqx / sumq2;
                        best_score = scale * sumqx;
                        besti1 = i1, besti2 = i2, best_shift = -1;
                    }
                }
            }
            if (besti1 < 0 || besti2 < 0 || best_shift == 0) {
                scales[ib] = 0;
                shifts[ib] = 1;
                continue;
            }
            if (levels_from_split(p, block_size, besti1, besti2, &scale, L)) best_shift = -best_shift;
            bool all_on_grid = true;
            const float *xx = best_shift == 1 ? x_p : x_m;
            for (int k = 0; k < block_size / 8; ++k) {
                const int u = qs_lattice_word(lat, L + 8 * k);
                int e = lat->map[u];
                if (e < 0) {
                    all_on_grid = false;
                    e = best_neighbour_shifted(lat, u, xb + 8 * k, weight + 8 * k, scale, xx, L + 8 * k);
                }
                index[k] = (uint16_t)e;
            }
            if (!all_on_grid) {
                float sumqx = 0, sumq2 = 0;
                for (int k = 0; k < block_size / 8; ++k) {
                    const uint8_t *pg = lat->pos + (size_t)index[k] * 8;
                    for (int j = 0; j < 8; ++j) {
                        const float w = weight[8 * k + j], q = xx[(pg[j] - 1) / 2];
                        sumqx += w * q * xb[8 * k + j];
                        sumq2 += w * q * q;
                    }
                }
                if (sumqx > 0 && sumq2 > 0) scale = sumqx / sumq2;
            }
            uint16_t h = 0;
            for (int k = 0; k < block_size / 8; ++k) {
                y[2 + (block_size / 8) * ib + k] = (uint8_t)(index[k] & 255);
                h |= (uint16_t)((index[k] >> 8) << 3 * k);
            }
            qh[ib] = h;
            scales[ib] = scale;
            shifts[ib] = (int8_t)best_shift;
            max_scale = MAX(max_scale, scale);
        }
        if (max_scale) {
            const float d = max_scale / 15, id = 1 / d;
            qs_put16(y, qs_f32_to_f16(d * 1.125f));
            for (int ib = 0; ib < QKK / block_size; ++ib) {
                int l = qs_nearest_int(0.5f * (id * scales[ib] - 1));
                l = MAX(0, MIN(7, l));
                if (shifts[ib] == -1) l |= 8;
                qh[ib] |= (uint16_t)(l << 12);
            }
        }
        for (int ib = 0; ib < 8; ++ib) qs_put16(y + 34 + 2 * ib, qh[ib]);
    }
}

/* the shifted levels each 8-value half of an iq1_m sub-block uses: shift k codes the signs of
 * the two halves (0: +,+  1: +,-  2: -,+  3: -,-) */
static const float *iq1_m_levels(int shift, int half, const float *x_p, const float *x_m) {
    if (half == 0) return shift < 2 ? x_p : x_m;
    return shift % 2 == 0 ? x_p : x_m;
}

static void iq1_m_weights(const float *xb, const float *qw, float sigma2, float *weight) {
    for (int i = 0; i < 16; ++i) weight[i] = qw ? qw[i] * sqrtf(sigma2 + xb[i] * xb[i]) : xb[i] * xb[i];
}

/* iq1_m: {u8 qs[32]; u8 qh[16] (entry high 3 bits and shift sign per 8); u8 scales[8] (3 bits
 * per 16, the f16 super-scale in the top nibbles)} per 256, sub-blocks of 16 */
static void iq1_m_row(const qs_lattice *lat, const float *x, uint8_t *y, int64_t n, const float *qw_row) {
    const int block_size = 16;
    const float x_p[3] = {-1 + IQ1_DELTA, IQ1_DELTA, 1 + IQ1_DELTA};
    const float x_m[3] = {-1 - IQ1_DELTA, -IQ1_DELTA, 1 - IQ1_DELTA};
    const uint8_t masks[4] = {0x00, 0x80, 0x08, 0x88};
    for (int64_t ibl = 0; ibl < n / QKK; ++ibl, y += 56) {
        const float *xbl = x + QKK * ibl;
        uint8_t *qs = y, *qh = y + 32;
        uint16_t sc[4] = {0};
        float scales[16], max_scale = 0, sumx2 = 0;
        int8_t shifts[16];
        memset(y, 0, 56);
        for (int i = 0; i < QKK; ++i) sumx2 += xbl[i] * xbl[i];
        const float sigma2 = 2 * sumx2 / QKK;
        for (int ib = 0; ib < QKK / block_size; ++ib) {
            const float *xb = xbl + block_size * ib;
            float weight[16];
            int8_t L[16];
            pair p[16];
            uint16_t index[2];
            iq1_m_weights(xb, qw_row ? qw_row + QKK * ibl + block_size * ib : NULL, sigma2, weight);
            float max = fabsf(xb[0]);
            for (int i = 1; i < block_size; ++i) max = MAX(max, fabsf(xb[i]));
            if (max < GROUP_MAX_EPS_IQ1_M) {
                scales[ib] = 0;
                shifts[ib] = 0;
                continue;
            }
            sort_block(xb, block_size, p);
            float best_score = -FLT_MAX, scale = max;
            int besti1 = -1, besti2 = -1, best_k = -1;
            {
                /* prefix sums per half (each half may take its own shift sign); since the level
                 * gaps are 1 for both shifts, a split's sums reduce to totals minus prefixes */
                float px[2][17], pw[2][17];
                px[0][0] = px[1][0] = 0;
                pw[0][0] = pw[1][0] = 0;
                for (int j = 0; j < block_size; ++j) {
                    const int i = p[j].i, h = i < block_size / 2 ? 0 : 1;
                    px[h][j + 1] = px[h][j] + weight[i] * xb[i];
                    px[1 - h][j + 1] = px[1 - h][j];
                    pw[h][j + 1] = pw[h][j] + weight[i];
                    pw[1 - h][j + 1] = pw[1 - h][j];
                }
                const float txs[2] = {px[0][block_size], px[1][block_size]}, tws[2] = {pw[0][block_size], pw[1][block_size]};
                const float p2 = x_p[2], m2 = x_m[2];
                const float cp1 = x_p[0] * x_p[0] - x_p[1] * x_p[1], cp2 = x_p[1] * x_p[1] - x_p[2] * x_p[2];
                const float cm1 = x_m[0] * x_m[0] - x_m[1] * x_m[1], cm2 = x_m[1] * x_m[1] - x_m[2] * x_m[2];
                for (int i1 = 0; i1 <= block_size; ++i1) {
                    for (int i2 = i1; i2 <= block_size; ++i2) {
                        float qx_p[2], qx_m[2], q2_p[2], q2_m[2], sumqx[4], sumq2[4];
                        for (int h = 0; h < 2; ++h) {
                            const float sx = px[h][i1] + px[h][i2];
                            qx_p[h] = txs[h] * p2 - sx;
                            qx_m[h] = txs[h] * m2 - sx;
                            q2_p[h] = tws[h] * p2 * p2 + pw[h][i1] * cp1 + pw[h][i2] * cp2;
                            q2_m[h] = tws[h] * m2 * m2 + pw[h][i1] * cm1 + pw[h][i2] * cm2;
                        }
                        sumqx[0] = qx_p[0] + qx_p[1];
                        sumqx[1] = qx_p[0] + qx_m[1];
                        sumqx[2] = qx_m[0] + qx_p[1];
                        sumqx[3] = qx_m[0] + qx_m[1];
                        sumq2[0] = q2_p[0] + q2_p[1];
                        sumq2[1] = q2_p[0] + q2_m[1];
                        sumq2[2] = q2_m[0] + q2_p[1];
                        sumq2[3] = q2_m[0] + q2_m[1];
                        for (int k = 0; k < 4; ++k) {
                            if (sumq2[k] > 0 && sumqx[k] * sumqx[k] > best_score * sumq2[k]) {
                                scale = sumqx[k] / sumq2[k];
                                best_score = scale * sumqx[k];
                                besti1 = i1, besti2 = i2, best_k = k;
                            }
                        }
                    }
                }
            }
            if (besti1 < 0 || besti2 < 0 || best_k < 0) {
                scales[ib] = 0;
                shifts[ib] = 0;
                continue;
            }
            if (levels_from_split(p, block_size, besti1, besti2, &scale, L)) best_k = 3 - best_k; /* both halves flip */
            bool all_on_grid = true;
            for (int k = 0; k < 2; ++k) {
                const float *xx = iq1_m_levels(best_k, k, x_p, x_m);
                const int u = qs_lattice_word(lat, L + 8 * k);
                int e = lat->map[u];
                if (e < 0) {
                    all_on_grid = false;
                    e = best_neighbour_shifted(lat, u, xb + 8 * k, weight + 8 * k, scale, xx, L + 8 * k);
                }
                index[k] = (uint16_t)e;
            }
            if (!all_on_grid) {
                float sumqx_f = 0, sumq2_f = 0;
                for (int k = 0; k < 2; ++k) {
                    const float *xx = iq1_m_levels(best_k, k, x_p, x_m);
                    const uint8_t *pg = lat->pos + (size_t)index[k] * 8;
                    for (int j = 0; j < 8; ++j) {
                        const float w = weight[8 * k + j], q = xx[(pg[j] - 1) / 2];
                        sumqx_f += w * q * xb[8 * k + j];
                        sumq2_f += w * q * q;
                    }
                }
                if (sumqx_f > 0 && sumq2_f > 0) scale = sumqx_f / sumq2_f;
            }
            qs[2 * ib + 0] = (uint8_t)(index[0] & 255);
            qs[2 * ib + 1] = (uint8_t)(index[1] & 255);
            qh[ib] = (uint8_t)((index[0] >> 8) | ((index[1] >> 8) << 4));
            scales[ib] = scale;
            shifts[ib] = (int8_t)best_k;
            max_scale = MAX(max_scale, scale);
        }
        if (!max_scale) continue;
        /* the sub-scales at d = max/15, then d refitted over the whole block */
        float d = max_scale / 15;
        const float id = 1 / d;
        float sumqx_f = 0, sumq2_f = 0;
        for (int ib = 0; ib < QKK / block_size; ++ib) {
            int l = qs_nearest_int(0.5f * (id * scales[ib + 0] - 1));
            l = MAX(0, MIN(7, l));
            sc[ib / 4] |= (uint16_t)(l << 3 * (ib % 4));
            qh[ib] |= masks[shifts[ib]];
            const float *xb = xbl + block_size * ib;
            float weight[16];
            iq1_m_weights(xb, qw_row ? qw_row + QKK * ibl + block_size * ib : NULL, sigma2, weight);
            for (int k = 0; k < 2; ++k) {
                const float *xx = iq1_m_levels(shifts[ib], k, x_p, x_m);
                const uint8_t *pg = lat->pos + (size_t)(qs[2 * ib + k] + ((qh[ib] << (8 - 4 * k)) & 0x700)) * 8;
                for (int j = 0; j < 8; ++j) {
                    const float w = weight[8 * k + j], q = xx[(pg[j] - 1) / 2] * (2 * l + 1);
                    sumqx_f += w * q * xb[8 * k + j];
                    sumq2_f += w * q * q;
                }
            }
        }
        if (sumq2_f > 0) d = sumqx_f / sumq2_f;
        const uint16_t s = qs_f32_to_f16(d * 1.1125f);
        sc[0] |= (uint16_t)((s & 0x000f) << 12);
        sc[1] |= (uint16_t)((s & 0x00f0) << 8);
        sc[2] |= (uint16_t)((s & 0x0f00) << 4);
        sc[3] |= (uint16_t)(s & 0xf000);
        for (int k = 0; k < 4; ++k) qs_put16(y + 48 + 2 * k, sc[k]);
    }
}

int qs_ggml_quantize_iq1(int type, const float *src, uint8_t *dst, int64_t n, const float *importance) {
    const qs_lattice *lat = qs_lattice_get(QS_LAT_IQ1S);
    if (!lat) return -1;
    if (type == QS_DT_IQ1_S) iq1_s_row(lat, src, dst, n, importance);
    else iq1_m_row(lat, src, dst, n, importance);
    return 0;
}
