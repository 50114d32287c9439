/* Uniform integer formats (see format.h): b-bit round-to-nearest (ties to even) with min/max
 * scales per tensor, per output row, or per group of g inputs (a last partial group allowed).
 *   symmetric:  s = absmax / (2^(b-1) - 1), q = round(x / s) in [-(2^(b-1)-1), 2^(b-1)-1], x^ = q s
 *   asymmetric: range [min(x, 0), max(x, 0)], s = range / (2^b - 1), integer zero point
 *               z = round(-lo / s), q in [0, 2^b - 1], x^ = (q - z) s
 * "-mse" shrinks the range by a factor in [0.5, 1] (21 steps) per group, keeping the lowest
 * squared error. Storage: scales are fp16 per row/group (fp32 for a whole tensor), zero points
 * b-bit integers; the values are rounded with the scale as stored. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_half.h"
#include "core/qs_parallel.h"
#include "quant/format.h"
#include "quant/tensor_scan.h"

/* round to nearest, ties to even, for |x| < 2^22 (always true here: |x| <= 2^8 + 1): adding
 * 1.5 x 2^23 leaves no fraction bits. Much faster than nearbyintf, which is a libm call. */
static inline float rint22(float x) { return (x + 12582912.0f) - 12582912.0f; }

static float round_scale(float s, int per_tensor) { return per_tensor ? s : qs_f16_to_f32(qs_f32_to_f16(s)); }

/* lo = min(x, 0), hi = max(x, 0) over x[0..n), widening what they hold */
static void widen_range(const float *x, int64_t n, float *lo, float *hi) {
    for (int64_t i = 0; i < n; i++) {
        *lo = fminf(*lo, x[i]);
        *hi = fmaxf(*hi, x[i]);
    }
}

/* quantizes x[0..n) into y with the range [lo, hi] (lo <= 0 <= hi: the span's, or the whole
 * tensor's) shrunk by alpha; adds the squared error to *err, element by element in order, so
 * that a tensor's spans summed in turn give its whole sum exactly */
static void quant_range(const qs_format *f, const float *x, float *y, int64_t n, float lo, float hi, float alpha,
                        int per_tensor, double *err) {
    double e = *err;
    if (f->symmetric) {
        const int qmax = (1 << (f->bits - 1)) - 1;
        const float amax = fmaxf(-lo, hi); /* max |x| exactly */
        float s = round_scale(amax * alpha / (float)qmax, per_tensor), inv = s > 0 ? 1.0f / s : 0.0f;
        for (int64_t i = 0; i < n; i++) {
            float q = rint22(x[i] * inv);
            q = fminf(fmaxf(q, (float)-qmax), (float)qmax);
            y[i] = q * s;
            e += (double)(y[i] - x[i]) * (y[i] - x[i]);
        }
        *err = e;
        return;
    }
    const int qmax = (1 << f->bits) - 1;
    lo *= alpha;
    hi *= alpha;
    float s = round_scale((hi - lo) / (float)qmax, per_tensor), inv = s > 0 ? 1.0f / s : 0.0f;
    float z = s > 0 ? fminf(fmaxf(rint22(-lo * inv), 0), (float)qmax) : 0;
    for (int64_t i = 0; i < n; i++) {
        float q = fminf(fmaxf(rint22(x[i] * inv) + z, 0), (float)qmax);
        y[i] = (q - z) * s;
        e += (double)(y[i] - x[i]) * (y[i] - x[i]);
    }
    *err = e;
}

/* the range factor of the clipping search's step k (0: the full range) */
static float clip_alpha(int k) { return 1.0f - 0.025f * (float)k; }

/* one span, with the clipping search if the format asks for it: the lowest squared error, the
 * first step on a tie */
static void quant_best(const qs_format *f, const float *x, float *y, float *tmp, int64_t n, int per_tensor) {
    float lo = 0, hi = 0;
    widen_range(x, n, &lo, &hi);
    double best = 0;
    quant_range(f, x, y, n, lo, hi, 1.0f, per_tensor, &best);
    if (!f->clip_search) return;
    for (int k = 1; k < QS_INT_CLIP_STEPS; k++) {
        double e = 0;
        quant_range(f, x, tmp, n, lo, hi, clip_alpha(k), per_tensor, &e);
        if (e < best) {
            best = e;
            for (int64_t i = 0; i < n; i++) y[i] = tmp[i];
        }
    }
}

void qs_int_widen_range(const float *x, int64_t n, float *lo, float *hi) { widen_range(x, n, lo, hi); }

void qs_int_add_clip_errors(const qs_format *f, const float *x, float *tmp, int64_t n, float lo, float hi,
                            double err[QS_INT_CLIP_STEPS]) {
    for (int k = 0; k < QS_INT_CLIP_STEPS; k++) quant_range(f, x, tmp, n, lo, hi, clip_alpha(k), 1, &err[k]);
}

float qs_int_best_clip(const double err[QS_INT_CLIP_STEPS]) {
    int best = 0;
    for (int k = 1; k < QS_INT_CLIP_STEPS; k++)
        if (err[k] < err[best]) best = k;
    return clip_alpha(best);
}

typedef struct {
    const qs_format *f;
    const float *w;
    float *out;
    int64_t cols, span;
    int failed;
} int_job;

/* rows [r0, r1): each row's channel or groups quantized on their own */
static void int_rows(void *ctx, long r0, long r1) {
    int_job *j = ctx;
    const int64_t span = j->span, cols = j->cols;
    float *tmp = malloc(sizeof(float) * (size_t)span), *src = malloc(sizeof(float) * (size_t)span);
    if (!tmp || !src) {
        j->failed = 1;
        free(tmp);
        free(src);
        return;
    }
    for (long r = r0; r < r1; r++)
        for (int64_t c = 0; c < cols; c += span) {
            int64_t n = cols - c < span ? cols - c : span;
            memcpy(src, j->w + r * cols + c, sizeof(float) * (size_t)n); /* out may alias w */
            quant_best(j->f, src, j->out + r * cols + c, tmp, n, 0);
        }
    free(tmp);
    free(src);
}

static int int_fake(const qs_format *f, const float *w, float *out, int64_t rows, int64_t cols, const qs_calib *cal) {
    (void)cal;
    if (f->granularity == QS_GRAN_TENSOR) {
        const int64_t n = rows * cols;
        float *tmp = malloc(sizeof(float) * (size_t)n), *src = malloc(sizeof(float) * (size_t)n);
        if (!tmp || !src) {
            free(tmp);
            free(src);
            return -1;
        }
        memcpy(src, w, sizeof(float) * (size_t)n);
        quant_best(f, src, out, tmp, n, 1);
        free(tmp);
        free(src);
        return 0;
    }
    int_job j = {f, w, out, cols, f->granularity == QS_GRAN_CHANNEL ? cols : f->group, 0};
    qs_parallel_for((long)rows, qs_parallel_default_threads(), int_rows, &j);
    return j.failed ? -1 : 0;
}

/* a block of a per-tensor format's rows, with the tensor's range and clipping factor */
static int int_fake_rows(const qs_format *f, qs_tensor_figures *t, const float *w, float *out, int64_t rows,
                         int64_t cols, const qs_calib *cal) {
    (void)cal;
    if (f->granularity != QS_GRAN_TENSOR) return int_fake(f, w, out, rows, cols, NULL);
    double ignored = 0;
    quant_range(f, w, out, rows * cols, t->lo, t->hi, f->clip_search ? t->alpha : 1.0f, 1, &ignored);
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

const qs_format_ops qs_int_ops = {int_applies, int_bpw, int_fake, int_fake_rows};
