/* Floating-point formats (see format.h): f16 and bf16 (round to nearest even); fp8 e4m3 (OCP
 * "FN": max 448, no infinities) and e5m2 (max 57344), round to nearest even and saturating,
 * with an fp32 scale per tensor or per row mapping the absmax onto the format's max; NF4
 * (QLoRA's NormalFloat 4-bit codebook) with an fp32 absmax per group. */
#include <math.h>

#include "core/qs_dtype.h"
#include "core/qs_half.h"
#include "quant/format.h"
#include "quant/minifloat.h"

static int any_shape(const qs_format *f, int64_t rows, int64_t cols, char *why, size_t cap) {
    (void)f; (void)why; (void)cap;
    return rows > 0 && cols > 0;
}

/* ---- f16 / bf16 ---- */

static double f16_bpw(const qs_format *f, int64_t rows, int64_t cols) {
    (void)f; (void)rows; (void)cols;
    return 16;
}

static int f16_fake(const qs_format *f, const float *w, float *out, int64_t rows, int64_t cols,
                    const qs_calib *cal) {
    (void)cal;
    int64_t n = rows * cols;
    for (int64_t i = 0; i < n; i++)
        out[i] = f->ggml_type == QS_DT_BF16 ? qs_bf16_to_f32(qs_f32_to_bf16(w[i])) : qs_f16_to_f32(qs_f32_to_f16(w[i]));
    return 0;
}

const qs_format_ops qs_float16_ops = {any_shape, f16_bpw, f16_fake, NULL};

/* ---- fp8 ---- */

/* nearest representable value of a float format with `mant` mantissa bits, smallest normal
 * exponent emin, largest finite value fmax; ties to even; saturating (minifloat.h) */
float qs_round_minifloat(float x, int mant, int emin, float fmax) {
    float a = fabsf(x);
    if (!(a == a)) return x; /* NaN stays NaN */
    if (a >= fmax) return copysignf(fmax, x);
    int e;
    frexpf(a, &e); /* a = m 2^e, m in [0.5, 1): exponent of a is e - 1 */
    int exp = e - 1 < emin ? emin : e - 1;
    float quantum = ldexpf(1.0f, exp - mant);
    float r = nearbyintf(a / quantum) * quantum; /* exact: quantum is a power of two */
    if (r > fmax) r = fmax;
    return copysignf(r, x);
}

static float fp8_round(const qs_format *f, float x) {
    return f->fp8_exp == 4 ? qs_round_minifloat(x, 3, -6, 448.0f) : qs_round_minifloat(x, 2, -14, 57344.0f);
}

static int fp8_fake(const qs_format *f, const float *w, float *out, int64_t rows, int64_t cols,
                    const qs_calib *cal) {
    (void)cal;
    const float fmax = f->fp8_exp == 4 ? 448.0f : 57344.0f;
    int64_t span = f->granularity == QS_GRAN_TENSOR ? rows * cols : cols;
    for (int64_t s0 = 0; s0 < rows * cols; s0 += span) {
        float amax = 0;
        for (int64_t i = 0; i < span; i++) amax = fmaxf(amax, fabsf(w[s0 + i]));
        const float scale = amax > 0 ? amax / fmax : 1.0f;
        for (int64_t i = 0; i < span; i++) out[s0 + i] = fp8_round(f, w[s0 + i] / scale) * scale;
    }
    return 0;
}

/* a block of a per-tensor fp8 format's rows, scaled by the whole tensor's absmax */
static int fp8_fake_rows(const qs_format *f, qs_tensor_figures *t, const float *w, float *out, int64_t rows,
                         int64_t cols, const qs_calib *cal) {
    if (f->granularity != QS_GRAN_TENSOR) return fp8_fake(f, w, out, rows, cols, cal);
    const float fmax = f->fp8_exp == 4 ? 448.0f : 57344.0f, amax = fmaxf(-t->lo, t->hi);
    const float scale = amax > 0 ? amax / fmax : 1.0f;
    for (int64_t i = 0; i < rows * cols; i++) out[i] = fp8_round(f, w[i] / scale) * scale;
    return 0;
}

static double fp8_bpw(const qs_format *f, int64_t rows, int64_t cols) {
    double n = (double)rows * (double)cols;
    return 8 + 32.0 * (f->granularity == QS_GRAN_TENSOR ? 1 : (double)rows) / n;
}

const qs_format_ops qs_fp8_ops = {any_shape, fp8_bpw, fp8_fake, fp8_fake_rows};

/* ---- NF4 ---- */

/* QLoRA's NormalFloat4 levels (quantiles of N(0, 1), normalized to [-1, 1], with an exact 0) */
static const float NF4[16] = {-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
                              -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
                              0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
                              0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

static float nf4_nearest(float v) {
    int best = 0;
    float bd = fabsf(v - NF4[0]);
    for (int k = 1; k < 16; k++) {
        float d = fabsf(v - NF4[k]);
        if (d < bd) { bd = d; best = k; }
    }
    return NF4[best];
}

static int nf4_fake(const qs_format *f, const float *w, float *out, int64_t rows, int64_t cols,
                    const qs_calib *cal) {
    (void)cal;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c += f->group) {
            int64_t n = cols - c < f->group ? cols - c : f->group;
            const float *x = w + r * cols + c;
            float *y = out + r * cols + c, amax = 0;
            for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
            for (int64_t i = 0; i < n; i++) y[i] = amax > 0 ? nf4_nearest(x[i] / amax) * amax : 0.0f;
        }
    return 0;
}

static double nf4_bpw(const qs_format *f, int64_t rows, int64_t cols) {
    double groups = (double)rows * (double)((cols + f->group - 1) / f->group);
    return 4 + 32.0 * groups / ((double)rows * (double)cols);
}

const qs_format_ops qs_nf4_ops = {any_shape, nf4_bpw, nf4_fake, NULL};
