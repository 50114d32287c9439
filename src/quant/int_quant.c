/* Uniform integer formats (see format.h): b-bit round-to-nearest (ties to even) with min/max
 * scales per tensor, per output row, or per group of g inputs (a last partial group allowed).
 *   symmetric:  s = absmax / (2^(b-1) - 1), q in [-(2^(b-1)-1), 2^(b-1)-1], x^ = q s
 *   asymmetric: range [min(x, 0), max(x, 0)], s = range / (2^b - 1), integer zero point
 *               z = round(-lo / s), q in [0, 2^b - 1], x^ = (q - z) s
 * "-mse" shrinks the range by a factor in [0.5, 1] (21 steps) per group, keeping the lowest
 * squared error. Storage: scales are fp16 per row/group (fp32 for a whole tensor), zero points
 * b-bit integers; the values are rounded with the scale as stored. */
#include <math.h>
#include <stdlib.h>

#include "../core/qs_half.h"
#include "format.h"

static float round_scale(float s, int per_tensor) { return per_tensor ? s : qs_f16_to_f32(qs_f32_to_f16(s)); }

/* quantizes x[0..n) with range factor alpha into y; returns the squared error */
static double quant_span(const qs_format *f, const float *x, float *y, int64_t n, float alpha, int per_tensor) {
    double err = 0;
    if (f->symmetric) {
        const int qmax = (1 << (f->bits - 1)) - 1;
        float amax = 0;
        for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
        float s = round_scale(amax * alpha / (float)qmax, per_tensor);
        for (int64_t i = 0; i < n; i++) {
            float q = s > 0 ? nearbyintf(x[i] / s) : 0;
            q = fminf(fmaxf(q, (float)-qmax), (float)qmax);
            y[i] = q * s;
            err += (double)(y[i] - x[i]) * (y[i] - x[i]);
        }
        return err;
    }
    const int qmax = (1 << f->bits) - 1;
    float lo = 0, hi = 0;
    for (int64_t i = 0; i < n; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
    }
    lo *= alpha;
    hi *= alpha;
    float s = round_scale((hi - lo) / (float)qmax, per_tensor);
    float z = s > 0 ? fminf(fmaxf(nearbyintf(-lo / s), 0), (float)qmax) : 0;
    for (int64_t i = 0; i < n; i++) {
        float q = s > 0 ? fminf(fmaxf(nearbyintf(x[i] / s) + z, 0), (float)qmax) : z;
        y[i] = (q - z) * s;
        err += (double)(y[i] - x[i]) * (y[i] - x[i]);
    }
    return err;
}

/* one span, with the clipping search if the format asks for it */
static void quant_best(const qs_format *f, const float *x, float *y, float *tmp, int64_t n, int per_tensor) {
    double best = quant_span(f, x, y, n, 1.0f, per_tensor);
    if (!f->clip_search) return;
    for (int k = 1; k <= 20; k++) {
        float alpha = 1.0f - 0.025f * (float)k;
        double e = quant_span(f, x, tmp, n, alpha, per_tensor);
        if (e < best) {
            best = e;
            for (int64_t i = 0; i < n; i++) y[i] = tmp[i];
        }
    }
}

static int int_fake(const qs_format *f, const float *w, float *out, int64_t rows, int64_t cols,
                    const float *importance) {
    (void)importance;
    int64_t span = f->granularity == QS_GRAN_TENSOR ? rows * cols : f->granularity == QS_GRAN_CHANNEL ? cols : f->group;
    float *tmp = f->clip_search ? malloc(sizeof(float) * (size_t)span) : NULL;
    float *src = out == w ? malloc(sizeof(float) * (size_t)span) : NULL;
    if ((f->clip_search && !tmp) || (out == w && !src)) {
        free(tmp);
        free(src);
        return -1;
    }
    if (f->granularity == QS_GRAN_TENSOR) {
        if (src) for (int64_t i = 0; i < span; i++) src[i] = w[i];
        quant_best(f, src ? src : w, out, tmp, span, 1);
    } else {
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c += span) {
                int64_t n = cols - c < span ? cols - c : span;
                const float *x = w + r * cols + c;
                if (src) {
                    for (int64_t i = 0; i < n; i++) src[i] = x[i];
                    x = src;
                }
                quant_best(f, x, out + r * cols + c, tmp, n, 0);
            }
    }
    free(tmp);
    free(src);
    return 0;
}

static int int_applies(const qs_format *f, int64_t rows, int64_t cols, char *why, size_t cap) {
    (void)f; (void)why; (void)cap;
    return rows > 0 && cols > 0;
}

static double int_bpw(const qs_format *f, int64_t rows, int64_t cols) {
    double n = (double)rows * (double)cols, groups, scale_bits = 16;
    if (f->granularity == QS_GRAN_TENSOR) groups = 1, scale_bits = 32;
    else if (f->granularity == QS_GRAN_CHANNEL) groups = (double)rows;
    else groups = (double)rows * (double)((cols + f->group - 1) / f->group);
    double zero_bits = f->symmetric ? 0 : (f->granularity == QS_GRAN_TENSOR ? 32 : f->bits);
    return f->bits + groups * (scale_bits + zero_bits) / n;
}

const qs_format_ops qs_int_ops = {int_applies, int_bpw, int_fake};
