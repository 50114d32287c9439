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

static double pct(const float *sorted, int64_t n, double p) {
    int64_t k = (int64_t)ceil(p / 100.0 * (double)n) - 1;
    if (k < 0) k = 0;
    if (k >= n) k = n - 1;
    return sorted[k];
}

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
    qsort(w, (size_t)n, sizeof(float), cmp_float); /* w is our copy: sort it for the percentiles */
    char hist_ds[160], row_ds[160];
    snprintf(hist_ds, sizeof hist_ds, "/weights/%s/hist", pt->t->name);
    snprintf(row_ds, sizeof row_ds, "/weights/%s/row_absmax", pt->t->name);
    qs_db_weight_stats_row row = {
        .run_id = p->run_id, .tensor_id = pt->db_id, .n = n, .min = mn, .max = mx, .absmax = fmax(fabs(mn), fabs(mx)),
        .mean = mean, .std = sd, .kurtosis = m2 > 0 ? m4 / (m2 * m2) : NAN, .p0_1 = pct(w, n, 0.1), .p1 = pct(w, n, 1),
        .p50 = pct(w, n, 50), .p99 = pct(w, n, 99), .p99_9 = pct(w, n, 99.9),
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
