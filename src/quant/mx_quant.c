/* Microscaling formats (see format.h), simulated with their true storage cost:
 *  - OCP MX v1.0 (mxfp4 = E2M1, mxfp6-e2m3, mxfp6-e3m2, mxfp8-e4m3, mxfp8-e5m2): blocks of 32
 *    values along a row share an E8M0 scale X = 2^(floor(log2(amax)) - emax_elem), clamped to
 *    E8M0's range [2^-127, 2^127]; each value is V / X rounded to the element format, nearest
 *    even, saturating at its largest normal (the specification's conversion, section 6.3).
 *    Cost: element bits + 8 / 32.
 *  - NVFP4 (NVIDIA's, as ModelOpt quantizes it): blocks of 16 share an E4M3 scale, the whole
 *    tensor an f32 scale g = amax / (6 x 448); a block's scale is amax_block / 6 / g rounded to
 *    E4M3, and each value V / (scale x g) is rounded to E2M1. Cost: 4 + 8 / 16 + 32 / n.
 * Rows must be whole blocks (as in the hardware formats). llama.cpp's own MXFP4 blocks pick the
 * nearest level with ties to the lower code rather than to even: these are the specification's. */
#include <math.h>
#include <stdio.h>

#include "quant/format.h"
#include "quant/minifloat.h"

/* an element format: mantissa bits, smallest normal exponent, largest normal value, and
 * emax = floor(log2(largest)) */
typedef struct {
    int mant, emin;
    float max;
    int emax;
} elem;

static elem elem_of(const qs_format *f) {
    switch (f->elem_exp * 10 + f->elem_mant) {
    case 21: return (elem){1, 0, 6.0f, 2};       /* E2M1 */
    case 23: return (elem){3, 0, 7.5f, 2};       /* E2M3 */
    case 32: return (elem){2, -2, 28.0f, 4};     /* E3M2 */
    case 43: return (elem){3, -6, 448.0f, 8};    /* E4M3 */
    default: return (elem){2, -14, 57344.0f, 15}; /* E5M2 */
    }
}

static int whole_blocks(const qs_format *f, int64_t rows, int64_t cols, char *why, size_t cap) {
    (void)rows;
    if (cols % f->group == 0) return 1;
    if (why) snprintf(why, cap, "rows of %lld values are not whole %d-value blocks", (long long)cols, f->group);
    return 0;
}

static double mx_bpw(const qs_format *f, int64_t rows, int64_t cols) {
    const double n = (double)rows * (double)cols;
    return f->bits + 8.0 / f->group + (f->nvfp4 ? 32.0 / n : 0.0);
}

/* OCP MX: one block of n values */
static void mx_block(const elem *e, const float *x, float *y, int64_t n) {
    float amax = 0;
    for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    if (!(amax > 0)) {
        for (int64_t i = 0; i < n; i++) y[i] = 0.0f * x[i];
        return;
    }
    int ex;
    frexpf(amax, &ex); /* amax = m 2^ex, m in [0.5, 1): floor(log2(amax)) = ex - 1 */
    int shared = ex - 1 - e->emax;
    shared = shared < -127 ? -127 : shared > 127 ? 127 : shared;
    for (int64_t i = 0; i < n; i++) {
        const float v = ldexpf(x[i], -shared); /* exact: a power of two */
        y[i] = ldexpf(qs_round_minifloat(v, e->mant, e->emin, e->max), shared);
    }
}

/* NVIDIA's FP4: blocks of 16 with an E4M3 scale relative to the tensor's f32 scale g */
static void nvfp4_blocks(const qs_format *f, const float *w, float *out, int64_t n, float amax) {
    const float g = amax > 0 ? amax / (6.0f * 448.0f) : 1.0f; /* the tensor's f32 scale */
    for (int64_t b = 0; b < n; b += f->group) {
        float bmax = 0;
        for (int64_t i = 0; i < f->group; i++) bmax = fmaxf(bmax, fabsf(w[b + i]));
        const float s = qs_round_minifloat(bmax / 6.0f / g, 3, -6, 448.0f) * g; /* E4M3 block scale, times g */
        for (int64_t i = 0; i < f->group; i++)
            out[b + i] = s > 0 ? qs_round_minifloat(w[b + i] / s, 1, 0, 6.0f) * s : 0.0f * w[b + i];
    }
}

static int mx_fake(const qs_format *f, const float *w, float *out, int64_t rows, int64_t cols, const qs_calib *cal) {
    (void)cal;
    const elem e = elem_of(f);
    if (!f->nvfp4) {
        for (int64_t b = 0; b < rows * cols; b += f->group) mx_block(&e, w + b, out + b, f->group);
        return 0;
    }
    float amax = 0;
    for (int64_t i = 0; i < rows * cols; i++) amax = fmaxf(amax, fabsf(w[i]));
    nvfp4_blocks(f, w, out, rows * cols, amax);
    return 0;
}

/* a block of rows (whole blocks: cols is a multiple of the group) with the tensor's absmax */
static int mx_fake_rows(const qs_format *f, qs_tensor_figures *t, const float *w, float *out, int64_t rows,
                        int64_t cols, const qs_calib *cal) {
    if (!f->nvfp4) return mx_fake(f, w, out, rows, cols, cal);
    nvfp4_blocks(f, w, out, rows * cols, fmaxf(-t->lo, t->hi));
    return 0;
}

const qs_format_ops qs_mx_ops = {whole_blocks, mx_bpw, mx_fake, mx_fake_rows};
