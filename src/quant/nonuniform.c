/* Non-uniform formats (SqueezeLLM-style) and dense-and-sparse variants (see format.h).
 * nuq{b}-channel: each output row gets its own codebook of 2^b values, fitted by 1-D k-means
 * weighted by the importance of each input column (the inputs' mean square when the caller has
 * activation statistics, else uniform); centroids stored in fp16. Storage: b bits per weight plus
 * 2^b fp16 centroids per row.
 * <base>-sp<p>: the p % largest magnitudes of the tensor are kept exactly (fp16 values in CSR:
 * 16-bit value + 32-bit column index each, 32-bit row pointers); the rest is quantized with the
 * base format after the outliers are taken out (so they no longer stretch its ranges). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_half.h"
#include "core/qs_parallel.h"
#include "quant/format.h"
#include "quant/tensor_scan.h"

typedef struct {
    float v, w;
} vw;

static int cmp_vw(const void *a, const void *b) {
    float x = ((const vw *)a)->v, y = ((const vw *)b)->v;
    return (x > y) - (x < y);
}

static float h16(float x) { return qs_f16_to_f32(qs_f32_to_f16(x)); }

/* Lloyd iterations from the centroids in c (ascending); returns the weighted squared error */
static double lloyd(const vw *s, int64_t n, int k, float *c) {
    double err = 0;
    for (int iter = 0; iter < 50; iter++) {
        int changed = 0;
        int64_t start = 0;
        err = 0;
        for (int j = 0; j < k; j++) {
            /* the cluster of centroid j: values up to the midpoint to the next centroid */
            float hi = j + 1 < k ? 0.5f * (c[j] + c[j + 1]) : INFINITY;
            int64_t end = start;
            double sw = 0, swv = 0, swvv = 0;
            while (end < n && s[end].v <= hi) {
                sw += s[end].w;
                swv += (double)s[end].w * s[end].v;
                swvv += (double)s[end].w * s[end].v * s[end].v;
                end++;
            }
            if (sw > 0) {
                float nc = (float)(swv / sw);
                if (nc != c[j]) changed = 1;
                err += swvv - 2 * (double)c[j] * swv + (double)c[j] * c[j] * sw; /* with the old centroid */
                c[j] = nc;
            }
            start = end;
        }
        for (int j = 1; j < k; j++) /* keep centroids sorted (an empty cluster keeps its place) */
            if (c[j] < c[j - 1]) { float t = c[j]; c[j] = c[j - 1]; c[j - 1] = t; changed = 1; }
        if (!changed) break;
    }
    return err;
}

/* weighted 1-D k-means on sorted values: k centroids (ascending). Lloyd's algorithm only finds
 * a local optimum, so it starts twice, from weighted quantiles and from a uniform grid over
 * [min, max], and keeps the better fit: never worse than refining the uniform grid. */
static void kmeans_1d(const vw *s, int64_t n, int k, float *c) {
    float a[256], b[256];
    double total = 0, acc = 0;
    for (int64_t i = 0; i < n; i++) total += s[i].w;
    int64_t i = 0;
    for (int j = 0; j < k; j++) {
        double target = total * (j + 0.5) / k;
        while (i < n - 1 && acc + s[i].w < target) acc += s[i++].w;
        a[j] = s[i].v;
        b[j] = k > 1 ? s[0].v + (s[n - 1].v - s[0].v) * (float)j / (float)(k - 1) : s[0].v;
    }
    double ea = lloyd(s, n, k, a), eb = lloyd(s, n, k, b);
    memcpy(c, ea <= eb ? a : b, sizeof(float) * (size_t)k);
}

static float nearest(const float *c, int k, float x) {
    float best = c[0], bd = fabsf(x - c[0]);
    for (int j = 1; j < k; j++) {
        float d = fabsf(x - c[j]);
        if (d < bd) { bd = d; best = c[j]; }
    }
    return best;
}

typedef struct {
    const qs_format *f;
    const float *w, *importance;
    float *out;
    int64_t cols;
    int failed;
} nu_job;

static void nu_rows(void *ctx, long r0, long r1) {
    nu_job *j = ctx;
    const int k = 1 << j->f->bits;
    const int64_t cols = j->cols;
    vw *s = malloc(sizeof(vw) * (size_t)cols);
    float c[256];
    if (!s) { j->failed = 1; return; }
    for (long r = r0; r < r1; r++) {
        const float *x = j->w + r * cols;
        for (int64_t i = 0; i < cols; i++) {
            s[i].v = x[i];
            s[i].w = j->importance ? j->importance[i] + 1e-12f : 1.0f;
        }
        qsort(s, (size_t)cols, sizeof(vw), cmp_vw);
        kmeans_1d(s, cols, k, c);
        for (int q = 0; q < k; q++) c[q] = h16(c[q]);
        for (int64_t i = 0; i < cols; i++) j->out[r * cols + i] = nearest(c, k, x[i]);
    }
    free(s);
}

static int nu_fake(const qs_format *f, const float *w, float *out, int64_t rows, int64_t cols, const qs_calib *cal) {
    const float *importance = cal ? cal->importance : NULL;
    /* rows are independent: each output row keeps its own codebook. w == out is safe: a row is
     * read into s before it is written */
    nu_job j = {f, w, importance, out, cols, 0};
    qs_parallel_for((long)rows, qs_parallel_default_threads(), nu_rows, &j);
    return j.failed ? -1 : 0;
}

static int nu_applies(const qs_format *f, int64_t rows, int64_t cols, char *why, size_t cap) {
    (void)f; (void)why; (void)cap;
    return rows > 0 && cols > 0;
}

static double nu_bpw(const qs_format *f, int64_t rows, int64_t cols) {
    (void)rows;
    return f->bits + (double)(1 << f->bits) * 16.0 / (double)cols;
}

const qs_format_ops qs_nonuniform_ops = {nu_applies, nu_bpw, nu_fake, NULL};

/* ---- dense and sparse ---- */

static int64_t n_outliers(const qs_format *f, int64_t n) { return (int64_t)ceil(f->sparse_pct / 100.0 * (double)n); }

int64_t qs_sparse_outliers(const qs_format *f, int64_t n) { return n_outliers(f, n); }

/* the k-th largest value of a[0..n) (k >= 1), by quickselect; a is reordered */
static float kth_largest(float *a, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1, target = k - 1;
    while (lo < hi) {
        float pivot = a[lo + (hi - lo) / 2];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] > pivot) i++;
            while (a[j] < pivot) j--;
            if (i <= j) {
                float t = a[i]; a[i] = a[j]; a[j] = t;
                i++;
                j--;
            }
        }
        if (target <= j) hi = j;
        else if (target >= i) lo = i;
        else return a[target];
    }
    return a[target];
}

/* w's values above the threshold, then those equal to it while *ties lasts, in order, kept in
 * fp16; the rest (outliers zeroed) rounded by the base format */
static int split_and_round(const qs_format *f, const float *w, float *out, int64_t rows, int64_t cols,
                           const qs_calib *cal, float thr, int64_t *ties) {
    const int64_t n = rows * cols;
    float *dense = calloc((size_t)n, sizeof(float));
    unsigned char *is_out = malloc((size_t)n);
    if (!dense || !is_out) {
        free(dense);
        free(is_out);
        return -1;
    }
    for (int64_t i = 0; i < n; i++) {
        int o = fabsf(w[i]) > thr || (fabsf(w[i]) == thr && *ties > 0 && (*ties)-- > 0);
        is_out[i] = (unsigned char)o;
        dense[i] = o ? 0.0f : w[i];
    }
    int rc = f->base->ops->fake_quantize(f->base, dense, out, rows, cols, cal);
    for (int64_t i = 0; i < n; i++)
        if (is_out[i]) out[i] = h16(w[i]);
    free(dense);
    free(is_out);
    return rc;
}

static int sp_fake(const qs_format *f, const float *w, float *out, int64_t rows, int64_t cols, const qs_calib *cal) {
    const int64_t n = rows * cols, keep = n_outliers(f, n);
    float *mags = calloc((size_t)n, sizeof(float));
    if (!mags) return -1;
    for (int64_t i = 0; i < n; i++) mags[i] = fabsf(w[i]);
    const float thr = keep > 0 ? kth_largest(mags, n, keep) : INFINITY;
    free(mags);
    /* exactly `keep` outliers: all above the threshold, then ties at it in order */
    int64_t above = 0;
    for (int64_t i = 0; i < n; i++) above += fabsf(w[i]) > thr;
    int64_t ties = keep - above;
    return split_and_round(f, w, out, rows, cols, cal, thr, &ties);
}

/* a block of rows, with the whole tensor's threshold and the ties still to keep (the base formats
 * round rows independently) */
static int sp_fake_rows(const qs_format *f, qs_tensor_figures *t, const float *w, float *out, int64_t rows,
                        int64_t cols, const qs_calib *cal) {
    return split_and_round(f, w, out, rows, cols, cal, t->threshold, &t->ties);
}

static int sp_applies(const qs_format *f, int64_t rows, int64_t cols, char *why, size_t cap) {
    return f->base->ops->applies(f->base, rows, cols, why, cap);
}

static double sp_bpw(const qs_format *f, int64_t rows, int64_t cols) {
    const double n = (double)rows * (double)cols;
    return f->base->ops->bits_per_weight(f->base, rows, cols) + (double)n_outliers(f, rows * cols) * (16 + 32) / n +
           32.0 * (double)(rows + 1) / n;
}

const qs_format_ops qs_sparse_ops = {sp_applies, sp_bpw, sp_fake, sp_fake_rows};
