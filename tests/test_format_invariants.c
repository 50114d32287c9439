/* The format registry and the properties every format must have, on real weights:
 *  - one vocabulary: unique names, lookups, list parsing, clear errors for unknown names;
 *  - error falls as bits rise; per-group <= per-channel <= per-tensor for the same bits; the
 *    MSE clipping search never does worse than plain min/max;
 *  - int8 SQNR on a Gaussian matches the uniform quantizer's theory (step^2 / 12);
 *  - fp8 rounding to nearest even and saturation on values worked out by hand; nf4 exact on
 *    its own levels; f16/bf16 agree with the reader's conversions;
 *  - true storage cost in bits per weight for each family; ragged last groups;
 *  - microscaling (OCP MX v1.0, NVFP4): each element format's grid enumerated here from its bit
 *    fields as the specification defines them (E2M1's must be the spec's table: 0, 0.5, 1, 1.5,
 *    2, 3, 4, 6), every value rounded to the nearest grid value with ties to the even code and
 *    saturated; the shared E8M0 scale is 2^(floor(log2 amax) - emax); NVFP4 values are E2M1
 *    levels times an E4M3 block scale times the tensor's amax / (6 x 448). */
#include <string.h>

#include "core/qs_half.h"
#include "io/model.h"
#include "quant/format.h"
#include "quant/qerror.h"
#include "tests/test_util.h"

static double mse_of(const char *name, const float *w, int64_t rows, int64_t cols) {
    qs_error err = {0};
    const qs_format *f = qs_format_find(name, &err);
    CHECK(f != NULL, "%s", err.msg);
    if (!f) return NAN;
    float *out = malloc(sizeof(float) * (size_t)(rows * cols));
    CHECK(qs_format_fake_quantize(f, w, out, rows, cols, &err) == 0, "%s: %s", name, err.msg);
    qs_qerror q;
    qs_qerror_compute(w, out, rows * cols, &q);
    free(out);
    return q.mse;
}

static void invariants_on(const char *label, const float *w, int64_t rows, int64_t cols, int k_ladder) {
    char name[64], prev_name[64] = "";
    const char *grans[] = {"tensor", "channel", "g128", "g64", "g32"};
    for (int sym = 0; sym <= 1; sym++) {
        double prev = INFINITY;
        for (int b = 2; b <= 8; b++) {
            snprintf(name, sizeof name, "int%d-g64-%s", b, sym ? "sym" : "asym");
            double m = mse_of(name, w, rows, cols);
            CHECK(m < prev, "%s: %s mse %g not below %s's %g", label, name, m, prev_name, prev);
            prev = m;
            snprintf(prev_name, sizeof prev_name, "%s", name);
        }
        for (int b = 3; b <= 8; b++) {
            double last = INFINITY;
            for (int g = 0; g < 5; g++) {
                snprintf(name, sizeof name, "int%d-%s-%s", b, grans[g], sym ? "sym" : "asym");
                double m = mse_of(name, w, rows, cols);
                /* finer granularity never loses (equal only if the scales coincide) */
                CHECK(m <= last * (1 + 1e-9), "%s: %s mse %g above the coarser granularity's %g", label, name, m, last);
                last = m;
                char mse_name[72];
                snprintf(mse_name, sizeof mse_name, "%s-mse", name);
                CHECK(mse_of(mse_name, w, rows, cols) <= m * (1 + 1e-12), "%s: %s worse than plain min/max", label, mse_name);
            }
        }
    }
    CHECK(mse_of("nuq4-channel", w, rows, cols) < mse_of("int4-channel-asym", w, rows, cols), "%s: nuq4 vs int4", label);
    const char *ladder[] = {"q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "q8_0"};
    if (k_ladder && cols % 256 == 0) {
        double prev = INFINITY;
        for (int i = 0; i < 6; i++) {
            double m = mse_of(ladder[i], w, rows, cols);
            CHECK(m < prev, "%s: %s mse %g not below the previous %g", label, ladder[i], m, prev);
            prev = m;
        }
    }
}

/* the non-negative values of an OCP element format with E exponent and M mantissa bits (bias
 * 2^(E-1) - 1, subnormals at exponent field 0), leaving out E4M3's NaN code (S.1111.111) and
 * E5M2's infinities and NaNs (exponent field all ones); ascending; returns the count */
static int grid_of(int E, int M, double *v) {
    const int bias = (1 << (E - 1)) - 1;
    int n = 0;
    for (int e = 0; e < (1 << E); e++)
        for (int m = 0; m < (1 << M); m++) {
            if (E == 5 && e == 31) continue;
            if (E == 4 && M == 3 && e == 15 && m == 7) continue;
            v[n++] = e == 0 ? ldexp((double)m / (1 << M), 1 - bias) : ldexp(1.0 + (double)m / (1 << M), e - bias);
        }
    return n;
}

/* x rounded on the grid: nearest, ties to the even code (the even index), beyond the top saturated */
static double on_grid(const double *v, int n, double x) {
    const double a = fabs(x);
    if (a >= v[n - 1]) return copysign(v[n - 1], x);
    int k = 0;
    while (v[k + 1] < a) k++;
    const double lo = v[k], hi = v[k + 1];
    const double r = a - lo < hi - a ? lo : a - lo > hi - a ? hi : (k % 2 == 0 ? lo : hi);
    return copysign(r, x);
}

static void microscaling(void) {
    qs_error err = {0};
    double grid[256];
    const double e2m1[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
    CHECK(grid_of(2, 1, grid) == 8 && !memcmp(grid, e2m1, sizeof e2m1), "E2M1's values are the OCP table's");
    struct { const char *name; int E, M; double max, min_sub; } mx[] = {
        {"ocp-mxfp4", 2, 1, 6, 0.5}, {"mxfp6-e2m3", 2, 3, 7.5, 0.125}, {"mxfp6-e3m2", 3, 2, 28, 0.0625},
        {"mxfp8-e4m3", 4, 3, 448, 1.0 / 512}, {"mxfp8-e5m2", 5, 2, 57344, 1.0 / 65536}};
    for (size_t k = 0; k < sizeof mx / sizeof mx[0]; k++) {
        const qs_format *f = qs_format_find(mx[k].name, &err);
        const int n = grid_of(mx[k].E, mx[k].M, grid);
        CHECK(f && grid[n - 1] == mx[k].max && grid[1] == mx[k].min_sub, "%s: grid from %g to %g", mx[k].name, grid[1], grid[n - 1]);
        if (!f) continue;
        const int emax = (int)floor(log2(mx[k].max));
        /* a block whose scale is 2^0 (its amax has exponent emax), then the same times 2^s */
        float w[64], q[64];
        for (int shift = -3; shift <= 5; shift += 4) {
            for (int i = 0; i < 32; i++) { /* values across the grid, ties and beyond the top included */
                const double t = (i - 15.5) / 15.5 * mx[k].max * 1.1;
                w[i] = (float)ldexp(i % 5 == 0 ? on_grid(grid, n, t) + (grid[1] / 2) * (i % 2 ? 1 : -1) : t, shift);
            }
            w[7] = (float)ldexp(ldexp(1.0, emax), shift); /* amax's exponent: emax */
            for (int i = 0; i < 32; i++) w[i] = fabsf(w[i]) > (float)ldexp(mx[k].max * 1.1, shift) ? w[7] : w[i];
            float amax = 0;
            for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(w[i]));
            const int scale = (int)floor(log2(amax)) - emax; /* the E8M0 exponent */
            CHECK(qs_format_fake_quantize(f, w, q, 1, 32, &err) == 0, "%s", err.msg);
            int bad = 0;
            for (int i = 0; i < 32; i++) bad += (double)q[i] != ldexp(on_grid(grid, n, ldexp(w[i], -scale)), scale);
            CHECK(bad == 0, "%s (block x 2^%d): %d of 32 values off the nearest-even grid value times 2^%d", mx[k].name, shift, bad,
                  scale);
        }
        CHECK(fabs(qs_format_bpw(f, 64, 64) - (1 + mx[k].E + mx[k].M + 0.25)) < 1e-12, "%s bpw", mx[k].name);
        char why[128] = "";
        CHECK(!qs_format_applies(f, 4, 172, why, sizeof why) && strstr(why, "32-value blocks"), "%s on 172-wide rows: %s",
              mx[k].name, why);
    }
    /* mxfp4 ties and saturation worked out by hand (a block with scale 2^0: its amax 7 has exponent 2):
     * 5 -> 4 and 3.5 -> 4 (the even codes 110 over 111 and 101), 2.5 -> 2, 1.25 -> 1, 0.75 -> 1,
     * 0.25 -> 0, 7 -> 6 (saturated) */
    {
        float w[32] = {5, 3.5f, 2.5f, 1.25f, 0.75f, 0.25f, 7, -5, -0.25f}, q[32];
        const float want[9] = {4, 4, 2, 1, 1, 0, 6, -4, -0.0f};
        CHECK(qs_format_fake_quantize(qs_format_find("ocp-mxfp4", &err), w, q, 1, 32, &err) == 0, "%s", err.msg);
        int bad = 0;
        for (int i = 0; i < 9; i++) bad += q[i] != want[i];
        CHECK(bad == 0, "mxfp4 ties to even and saturation: %d of 9 wrong (5 -> %g, 3.5 -> %g, 7 -> %g)", bad, q[0], q[1], q[6]);
    }
    /* NVFP4: every value is an E2M1 level times its block's E4M3 scale times g = amax / (6 x 448) */
    const qs_format *nv = qs_format_find("nvidia-nvfp4", &err);
    CHECK(nv != NULL, "nvfp4");
    if (nv) {
        enum { R = 8, C = 64 };
        float w[R * C], q[R * C];
        uint64_t s = 99;
        for (int i = 0; i < R * C; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            w[i] = (float)(((double)(s >> 11) / 9007199254740992.0 - 0.5) * (i < C ? 40.0 : 1.0)); /* one row far larger */
        }
        CHECK(qs_format_fake_quantize(nv, w, q, R, C, &err) == 0, "%s", err.msg);
        double e4m3[256], e2m1_grid[8];
        const int n4 = grid_of(4, 3, e4m3), n2 = grid_of(2, 1, e2m1_grid);
        float amax = 0;
        for (int i = 0; i < R * C; i++) amax = fmaxf(amax, fabsf(w[i]));
        const float g = amax / (6.0f * 448.0f);
        int bad = 0;
        for (int b = 0; b < R * C; b += 16) {
            float bmax = 0;
            for (int i = 0; i < 16; i++) bmax = fmaxf(bmax, fabsf(w[b + i]));
            const float sc = (float)on_grid(e4m3, n4, bmax / 6.0f / g) * g;
            for (int i = 0; i < 16; i++) bad += sc > 0 && q[b + i] != (float)on_grid(e2m1_grid, n2, w[b + i] / sc) * sc;
        }
        CHECK(bad == 0, "nvfp4: %d of %d values are not E2M1 x the block's E4M3 scale x g", bad, R * C);
        CHECK(fabs(qs_format_bpw(nv, 16, 16) - (4 + 0.5 + 32.0 / 256)) < 1e-12, "nvfp4 bpw");
        /* E2M3's grid holds E2M1's and both have emax 2, so a block gets the same scale in both:
         * mxfp6-e2m3 is never further from a value than mxfp4 */
        float q4[R * C], q6[R * C];
        qs_format_fake_quantize(qs_format_find("ocp-mxfp4", &err), w, q4, R, C, &err);
        qs_format_fake_quantize(qs_format_find("mxfp6-e2m3", &err), w, q6, R, C, &err);
        int worse = 0;
        for (int i = 0; i < R * C; i++) worse += fabsf(q6[i] - w[i]) > fabsf(q4[i] - w[i]);
        CHECK(worse == 0, "mxfp6-e2m3 further than mxfp4 from %d values", worse);
    }
}

/* Every format that lets the analyzers stream a matrix by rows (qs_format_rows_independent)
 * must give, for a block of rows, exactly those rows of the whole matrix's result: 7 rows of
 * different magnitudes quantized whole and as 3 + 4 rows, with calibration statistics. The
 * method is shown able to fail: a per-tensor format differs when split. */
static int split_matches(const qs_format *f, const float *w, int64_t rows, int64_t cols, const qs_calib *cal) {
    const int64_t top = 3, n = rows * cols;
    float *whole = malloc(sizeof(float) * (size_t)n), *parts = malloc(sizeof(float) * (size_t)n);
    qs_error err = {0};
    int ok = qs_format_fake_quantize_calib(f, w, whole, rows, cols, cal, &err) == 0 &&
             qs_format_fake_quantize_calib(f, w, parts, top, cols, cal, &err) == 0 &&
             qs_format_fake_quantize_calib(f, w + top * cols, parts + top * cols, rows - top, cols, cal, &err) == 0;
    CHECK(ok, "%s: %s", f->name, err.msg);
    ok = ok && memcmp(whole, parts, sizeof(float) * (size_t)n) == 0;
    free(whole);
    free(parts);
    return ok;
}

static void rows_independent(void) {
    enum { R = 7, C = 256 };
    static float w[R * C], imp[C], mabs[C], gram[C * C], a[2 * C * C];
    uint64_t s = 11;
    for (int i = 0; i < 2 * C * C; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        a[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
    }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) w[r * C + c] = (float)(r + 1) * a[r * C + c] * (c % 37 == 5 ? 9.0f : 1.0f);
    for (int c = 0; c < C; c++) {
        imp[c] = 0.1f + a[C * C + c] * a[C * C + c] * (c % 11 == 0 ? 50 : 1);
        mabs[c] = sqrtf(imp[c]) * 0.8f;
    }
    for (int i = 0; i < C; i++) /* X^T X of 2C random rows: positive definite */
        for (int j = 0; j < C; j++) {
            double g = 0;
            for (int t = 0; t < 2 * C; t++) g += (double)a[t * C + i] * a[t * C + j];
            gram[i * C + j] = (float)g;
        }
    const qs_calib cal = {imp, gram, 0, mabs};
    int checked = 0;
    for (int i = 0; i < qs_format_count(); i++) {
        const qs_format *f = qs_format_at(i);
        if (!qs_format_rows_independent(f) || !qs_format_applies(f, R, C, NULL, 0)) continue;
        CHECK(split_matches(f, w, R, C, &cal), "%s says its rows are independent, but 3 + 4 rows differ from 7", f->name);
        checked++;
    }
    CHECK(checked >= 150, "%d formats checked row by row", checked);
    qs_error err = {0};
    const char *whole_only[] = {"int4-tensor-sym", "fp8-e4m3", "nvidia-nvfp4", "nuq3-channel-sp0.45"};
    for (size_t k = 0; k < sizeof whole_only / sizeof whole_only[0]; k++) {
        const qs_format *f = qs_format_find(whole_only[k], &err);
        CHECK(f && !qs_format_rows_independent(f) && !split_matches(f, w, R, C, &cal), "%s: a per-tensor format, split",
              whole_only[k]);
    }
}

int main(void) {
    qs_error err = {0};
    /* vocabulary */
    int n = qs_format_count();
    CHECK(n >= 150, "%d formats", n);
    int dups = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) dups += !strcmp(qs_format_at(i)->name, qs_format_at(j)->name);
    CHECK(dups == 0, "%d duplicate names", dups);
    CHECK(qs_format_find("int4-g128-asym", &err) && qs_format_find("q4_k", &err) && qs_format_find("fp8-e4m3", &err) &&
              qs_format_find("int8-channel-sym", &err) && qs_format_find("int3-tensor-sym", &err) &&
              qs_format_find("nf4-g64", &err),
          "issue examples resolve");
    CHECK(!qs_format_find("int9-g128-asym", &err) && err.code == QS_ERR_USAGE && strstr(err.msg, "int9-g128-asym"),
          "unknown name: %s", err.msg);
    const qs_format **list;
    int m;
    CHECK(qs_format_parse_list("default", &list, &m, &err) == 0 && m >= 25, "default list: %s", err.msg);
    if (m) free(list);
    CHECK(qs_format_parse_list("q4_0, int4-g32-sym,q4_0", &list, &m, &err) == 0 && m == 2, "list with a duplicate");
    free(list);
    CHECK(qs_format_parse_list("q4_0,bogus", &list, &m, &err) == QS_ERR_USAGE && strstr(err.msg, "bogus"), "bad list");
    CHECK(qs_format_parse_list(",", &list, &m, &err) == QS_ERR_USAGE, "empty list");

    rows_independent();

    /* bits per weight */
    struct { const char *name; int64_t rows, cols; double bpw; } costs[] = {
        {"q4_0", 64, 64, 4.5}, {"q8_0", 64, 64, 8.5}, {"q4_k", 8, 256, 4.5}, {"q6_k", 8, 256, 6.5625},
        {"q2_k", 8, 256, 2.625}, {"q3_k", 8, 256, 3.4375}, {"q5_k", 8, 256, 5.5}, {"f16", 3, 5, 16},
        {"int4-g128-asym", 10, 256, 4 + (16 + 4) / 128.0}, {"int4-g128-sym", 10, 256, 4 + 16 / 128.0},
        {"int8-tensor-sym", 64, 64, 8 + 32 / 4096.0}, {"int4-channel-asym", 64, 100, 4 + 20 / 100.0},
        {"int4-g128-asym", 1, 172, 4 + 2 * 20 / 172.0}, /* ragged: two groups */
        {"nf4-g64", 4, 128, 4.5}, {"fp8-e4m3", 16, 16, 8 + 32 / 256.0}, {"fp8-e5m2-channel", 16, 16, 8 + 2.0},
    };
    for (size_t i = 0; i < sizeof costs / sizeof costs[0]; i++) {
        const qs_format *f = qs_format_find(costs[i].name, &err);
        double got = f ? qs_format_bpw(f, costs[i].rows, costs[i].cols) : NAN;
        CHECK(fabs(got - costs[i].bpw) < 1e-12, "%s bpw %g, want %g", costs[i].name, got, costs[i].bpw);
    }

    /* GPTQ variants: the same blocks (same cost); without the inputs' Gram matrix, a clear refusal */
    const qs_format *g4 = qs_format_find("q4_k-gptq", &err), *g2 = qs_format_find("q2_k-gptq", &err);
    CHECK(g4 && g2 && g4->gptq && qs_format_bpw(g4, 8, 256) == 4.5 && qs_format_bpw(g2, 8, 256) == 2.625, "gptq formats");
    float w256[512] = {0}, o256[512];
    for (int i = 0; i < 512; i++) w256[i] = (float)sin(i * 0.37);
    CHECK(g4 && qs_format_fake_quantize(g4, w256, o256, 2, 256, &err) == QS_ERR_INPUT && strstr(err.msg, "Gram matrix"),
          "gptq without calibration: %s", err.msg);

    /* int8 on a Gaussian: MSE = step^2 / 12 with step = absmax / 127 */
    enum { N = 1 << 20 };
    float *g = malloc(sizeof(float) * N), *gq = malloc(sizeof(float) * N);
    uint64_t s = 7;
    for (int i = 0; i < N; i += 2) { /* Box-Muller */
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u1 = ((double)(s >> 11) + 0.5) / 9007199254740992.0;
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u2 = ((double)(s >> 11) + 0.5) / 9007199254740992.0;
        double r = sqrt(-2 * log(u1));
        g[i] = (float)(r * cos(2 * M_PI * u2));
        g[i + 1] = (float)(r * sin(2 * M_PI * u2));
    }
    const qs_format *i8 = qs_format_find("int8-tensor-sym", &err);
    qs_format_fake_quantize(i8, g, gq, 1, N, &err);
    double amax = 0, pw = 0;
    for (int i = 0; i < N; i++) {
        amax = fmax(amax, fabs(g[i]));
        pw += (double)g[i] * g[i];
    }
    double step = amax / 127, theory = 10 * log10(pw / N / (step * step / 12));
    qs_qerror q;
    qs_qerror_compute(g, gq, N, &q);
    CHECK(fabs(q.sqnr_db - theory) < 0.05, "int8 Gaussian SQNR %.3f dB, theory %.3f dB", q.sqnr_db, theory);
    CHECK(q.cosine > 0.9999 && q.max_abs <= step / 2 * (1 + 1e-6), "int8 cosine %g, max error %g vs step/2 %g", q.cosine,
          q.max_abs, step / 2);

    /* fp8 by hand: with amax = 448 (e4m3) / 57344 (e5m2) the scale is 1 */
    float x4[8] = {448, 1.0625f, 1.1875f, 0.0029296875f, -300, 0.0009765625f, 17, -0.001953125f};
    float w4[8] = {448, 1.0f, 1.25f, 0.00390625f, -288, 0.0f, 16, -0.001953125f};
    float o[8];
    qs_format_fake_quantize(qs_format_find("fp8-e4m3", &err), x4, o, 1, 8, &err);
    for (int i = 0; i < 8; i++) CHECK(o[i] == w4[i], "e4m3(%g) = %g, want %g", x4[i], o[i], w4[i]);
    float x5[4] = {57344, 1.125f, 1.375f, 50000};
    float w5[4] = {57344, 1.0f, 1.5f, 49152};
    qs_format_fake_quantize(qs_format_find("fp8-e5m2", &err), x5, o, 1, 4, &err);
    for (int i = 0; i < 4; i++) CHECK(o[i] == w5[i], "e5m2(%g) = %g, want %g", x5[i], o[i], w5[i]);
    float nf[4] = {2.0f, -2.0f, 0.0f, 2.0f * 0.33791524171829224f};
    qs_format_fake_quantize(qs_format_find("nf4-g64", &err), nf, o, 1, 4, &err);
    CHECK(o[0] == 2.0f && o[1] == -2.0f && o[2] == 0.0f && fabsf(o[3] - nf[3]) < 1e-7f, "nf4 on its own levels");
    float h[3] = {0.1f, 65519.f, 1e-8f};
    qs_format_fake_quantize(qs_format_find("f16", &err), h, o, 1, 3, &err);
    for (int i = 0; i < 3; i++) CHECK(o[i] == qs_f16_to_f32(qs_f32_to_f16(h[i])), "f16 round trip of %g", h[i]);

    /* ragged: a row of 130 where the last 2 values are huge: their own group keeps the first 128 exact-ish */
    float rag[130], rq[130];
    for (int i = 0; i < 130; i++) rag[i] = i < 128 ? (float)(i % 16) / 15.0f : 1000.0f + i;
    qs_format_fake_quantize(qs_format_find("int4-g128-asym", &err), rag, rq, 1, 130, &err);
    double e_first = 0;
    for (int i = 0; i < 128; i++) e_first = fmax(e_first, fabs(rq[i] - rag[i]));
    CHECK(e_first < 1e-3 && fabs(rq[128] - rag[128]) < 1.0, "ragged last group: first-group error %g", e_first);

    invariants_on("Gaussian 64 x 1024", g, 64, 1024, 1);

    /* non-uniform and dense-and-sparse */
    CHECK(mse_of("nuq4-channel", g, 64, 1024) < mse_of("int4-channel-asym", g, 64, 1024) &&
              mse_of("nuq3-channel", g, 64, 1024) < mse_of("int3-channel-asym", g, 64, 1024),
          "k-means codebooks beat the uniform grid at the same bits");
    {
        /* the importance-weighted fit lowers the importance-weighted error */
        const int R = 32, C = 512;
        float *imp = malloc(sizeof(float) * C), *a = malloc(sizeof(float) * R * C), *b = malloc(sizeof(float) * R * C);
        for (int c = 0; c < C; c++) imp[c] = c % 16 == 0 ? 100.0f : 0.01f;
        const qs_format *nu = qs_format_find("nuq3-channel", &err);
        qs_format_fake_quantize_weighted(nu, g, a, R, C, imp, &err);
        qs_format_fake_quantize_weighted(nu, g, b, R, C, NULL, &err);
        double ea = 0, eb = 0;
        for (int i = 0; i < R * C; i++) {
            ea += imp[i % C] * (double)(a[i] - g[i]) * (a[i] - g[i]);
            eb += imp[i % C] * (double)(b[i] - g[i]) * (b[i] - g[i]);
        }
        CHECK(ea < 0.9 * eb, "weighted k-means: weighted error %g vs unweighted fit's %g", ea, eb);
        /* heavy outliers: the sparse part keeps them, the dense part no longer stretches */
        memcpy(a, g, sizeof(float) * R * C);
        for (int i = 0; i < R * C; i += 397) a[i] = (i % 2 ? 1 : -1) * 60.0f;
        float *q = malloc(sizeof(float) * R * C);
        const qs_format *sp = qs_format_find("int4-g128-asym-sp0.45", &err);
        qs_format_fake_quantize(sp, a, q, R, C, &err);
        int kept = 0;
        for (int i = 0; i < R * C; i += 397) kept += q[i] == a[i];
        CHECK(kept == (R * C + 396) / 397, "sparse outliers kept exactly: %d", kept);
        CHECK(mse_of("int4-g128-asym-sp0.45", a, R, C) < 0.2 * mse_of("int4-g128-asym", a, R, C), "sparse helps with outliers");
        double n_out = ceil(0.0045 * R * C);
        CHECK(fabs(qs_format_bpw(sp, R, C) - (4 + 20.0 / 128 + n_out * 48 / (R * C) + 32.0 * (R + 1) / (R * C))) < 1e-12,
              "sparse bpw");
        CHECK(fabs(qs_format_bpw(nu, 64, 100) - (3 + 8 * 16 / 100.0)) < 1e-12, "nuq3 bpw");
        free(imp); free(a); free(b); free(q);
    }

    /* invariants on real weights */
    char *p = model_path("stories260K.gguf");
    qs_model *md = NULL;
    CHECK(qs_model_open(&md, p, NULL, &err) == 0, "%s", err.msg);
    if (md) {
        const char *names[] = {"blk.0.attn_q.weight", "blk.2.ffn_down.weight", "blk.4.ffn_up.weight", "token_embd.weight"};
        for (int i = 0; i < 4; i++) {
            const qs_tensor *t = qs_model_find(md, names[i]);
            float *w = malloc(sizeof(float) * (size_t)qs_tensor_numel(t));
            qs_tensor_dequantize_rows(t, 0, t->ne[1], w);
            invariants_on(names[i], w, t->ne[1], t->ne[0], 1);
            free(w);
        }
    }
    char smol[1024];
    snprintf(smol, sizeof smol, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", getenv("QSENSE_CACHE") ? getenv("QSENSE_CACHE") : "");
    qs_model *sm = NULL;
    CHECK(qs_model_open(&sm, smol, NULL, &err) == 0, "%s", err.msg);
    if (sm) {
        const qs_tensor *t = qs_model_find(sm, "blk.10.ffn_down.weight"); /* (576, 1536) */
        int64_t rows = 128;
        float *w = malloc(sizeof(float) * (size_t)(rows * t->ne[0]));
        qs_tensor_dequantize_rows(t, 0, rows, w);
        /* SmolLM2's weights are q4_1 values: q4_k's 16 levels per 32 fit that grid better than q5_k's 32
         * levels, so the K-quant ladder is checked on Gaussian data instead */
        invariants_on("SmolLM2 blk.10.ffn_down (128 rows)", w, rows, t->ne[0], 0);
        free(w);
    }
    microscaling();
    qs_model_close(md);
    qs_model_close(sm);
    free(g);
    free(gq);
    free(p);
    return test_done("test_format_invariants");
}
