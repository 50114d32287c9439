/* The weights analyzer: distribution of one tensor's values. Min, max, absmax, mean, std,
 * kurtosis (Pearson's, 3 for a Gaussian), percentiles 0.1 / 1 / 50 / 99 / 99.9 (nearest rank),
 * fractions beyond 3 and 6 standard deviations from the mean, a 256-bin histogram over
 * [min, max], and the spread of the per-output-row absmax. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzers/analyzer.h"

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Rearranges w[lo, hi) so that w[k] holds the value a full sort would put there, with nothing
 * greater before it and nothing smaller after it (Hoare's selection, median-of-three pivots):
 * linear time where sorting a 263M-value embedding took 40 s. */
static void select_rank(float *w, int64_t lo, int64_t hi, int64_t k) {
    while (hi - lo > 16) {
        const int64_t mid = lo + (hi - lo) / 2;
        float a = w[lo], b = w[mid], c = w[hi - 1];
        const float pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        int64_t i = lo, j = hi - 1;
        while (i <= j) {
            while (w[i] < pivot) i++;
            while (w[j] > pivot) j--;
            if (i <= j) {
                float t = w[i];
                w[i++] = w[j];
                w[j--] = t;
            }
        }
        if (k <= j) hi = j + 1;
        else if (k >= i) lo = i;
        else return; /* w[j + 1 .. i - 1] all equal the pivot */
    }
    qsort(w + lo, (size_t)(hi - lo), sizeof(float), cmp_float);
}

/* nearest-rank percentile p of w[0, n) */
static int64_t rank_of(int64_t n, double p) {
    int64_t k = (int64_t)ceil(p / 100.0 * (double)n) - 1;
    return k < 0 ? 0 : k >= n ? n - 1 : k;
}

static double pct(const float *sorted, int64_t n, double p) { return sorted[rank_of(n, p)]; }

static int applies(const qs_profile *p, int i) {
    (void)p;
    (void)i;
    return 1;
}

static int run(qs_profile *p, int i, qs_error *err) {
    const qs_prof_tensor *pt = &p->tensors[i];
    const int64_t n = pt->rows * pt->cols;
    float *w = qs_profile_weights(p, i);
    if (!w) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory reading %s", pt->t->name);
    double sum = 0, mn = INFINITY, mx = -INFINITY;
    for (int64_t k = 0; k < n; k++) {
        sum += w[k];
        mn = fmin(mn, w[k]);
        mx = fmax(mx, w[k]);
    }
    const double mean = sum / (double)n;
    double m2 = 0, m4 = 0;
    for (int64_t k = 0; k < n; k++) {
        double d = w[k] - mean, d2 = d * d;
        m2 += d2;
        m4 += d2 * d2;
    }
    m2 /= (double)n;
    m4 /= (double)n;
    const double sd = sqrt(m2);
    int64_t beyond3 = 0, beyond6 = 0;
    uint64_t hist[256] = {0};
    const double width = mx > mn ? (mx - mn) / 256.0 : 1.0;
    for (int64_t k = 0; k < n; k++) {
        double z = fabs(w[k] - mean);
        beyond3 += z > 3 * sd;
        beyond6 += z > 6 * sd;
        int b = (int)((w[k] - mn) / width);
        hist[b < 0 ? 0 : b > 255 ? 255 : b]++;
    }
    float *rowmax = malloc(sizeof(float) * (size_t)pt->rows), *sorted_rows = malloc(sizeof(float) * (size_t)pt->rows);
    for (int64_t r = 0; r < pt->rows; r++) {
        float a = 0;
        for (int64_t c = 0; c < pt->cols; c++) a = fmaxf(a, fabsf(w[r * pt->cols + c]));
        rowmax[r] = sorted_rows[r] = a;
    }
    qsort(sorted_rows, (size_t)pt->rows, sizeof(float), cmp_float);
    /* w is our copy: select the percentiles' ranks in increasing order, each in what is left */
    const double ps[5] = {0.1, 1, 50, 99, 99.9};
    double pv[5];
    int64_t lo = 0;
    for (int q = 0; q < 5; q++) {
        const int64_t k = rank_of(n, ps[q]);
        select_rank(w, lo, n, k);
        pv[q] = w[k];
        lo = k; /* what is before k is no greater than w[k]: the next rank is in [k, n) */
    }
    char hist_ds[160], row_ds[160];
    snprintf(hist_ds, sizeof hist_ds, "/weights/%s/hist", pt->t->name);
    snprintf(row_ds, sizeof row_ds, "/weights/%s/row_absmax", pt->t->name);
    qs_db_weight_stats_row row = {
        .run_id = p->run_id, .tensor_id = pt->db_id, .n = n, .min = mn, .max = mx, .absmax = fmax(fabs(mn), fabs(mx)),
        .mean = mean, .std = sd, .kurtosis = m2 > 0 ? m4 / (m2 * m2) : NAN, .p0_1 = pv[0], .p1 = pv[1], .p50 = pv[2],
        .p99 = pv[3], .p99_9 = pv[4],
        .frac_beyond_3sigma = (double)beyond3 / (double)n, .frac_beyond_6sigma = (double)beyond6 / (double)n,
        .row_absmax_min = sorted_rows[0], .row_absmax_median = pct(sorted_rows, pt->rows, 50),
        .row_absmax_max = sorted_rows[pt->rows - 1], .hist_min = mn, .hist_max = mx, .hist_dataset = hist_ds,
        .row_absmax_dataset = row_ds};
    int rc = qs_db_put_weight_stats(p->db, &row, err);
    if (!rc) rc = qs_db_put_array(p->db, p->run_id, hist_ds, "u64", hist, 256, err);
    if (!rc) rc = qs_db_put_array(p->db, p->run_id, row_ds, "f32", rowmax, pt->rows, err);
    free(rowmax);
    free(sorted_rows);
    free(w);
    return rc;
}

const qs_analyzer qs_analyzer_weights = {"weights", 0, applies, run};
