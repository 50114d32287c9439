/* The weights analyzer: distribution of one tensor's values. Min, max, absmax, mean, std,
 * kurtosis (Pearson's, 3 for a Gaussian), percentiles 0.1 / 1 / 50 / 99 / 99.9 (nearest rank),
 * fractions beyond 3 and 6 standard deviations from the mean, a 256-bin histogram over
 * [min, max], and the spread of the per-output-row absmax. The tensor is read from its stored
 * blocks a block of rows at a time, three times (sums; moments; tails), never expanded whole. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzers/analyzer.h"

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* nearest-rank percentile p of n values: the rank (0-based) */
static int64_t rank_of(int64_t n, double p) {
    int64_t k = (int64_t)ceil(p / 100.0 * (double)n) - 1;
    return k < 0 ? 0 : k >= n ? n - 1 : k;
}

static double pct(const float *sorted, int64_t n, double p) { return sorted[rank_of(n, p)]; }

/* A float's bits as an unsigned key in the floats' order (negatives reversed below positives):
 * exact percentiles of a tensor streamed by rows, by radix selection on the key's high then low
 * 16 bits (two passes, 256 KiB histograms), with no copy of the tensor to sort or partition. */
static uint32_t key_of(float v) {
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u & 0x80000000u ? ~u : u | 0x80000000u;
}

static float value_of(uint32_t key) {
    const uint32_t u = key & 0x80000000u ? key & 0x7fffffffu : ~key;
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* The bucket of hist[65536] holding rank *k, and *k made the rank within that bucket */
static uint32_t bucket_of(const uint64_t *hist, int64_t *k) {
    uint32_t b = 0;
    while ((int64_t)hist[b] <= *k) *k -= (int64_t)hist[b++];
    return b;
}

enum { N_PCT = 5, N_BUCKETS = 65536 };

typedef struct {
    const qs_prof_tensor *pt;
    float *buf;
    int64_t block_rows;
} row_stream;

/* Calls visit(ctx, values, n, first_row, n_rows) for each block of rows, in order */
static void for_each_block(row_stream *s, void (*visit)(void *, const float *, int64_t, int64_t, int64_t), void *ctx) {
    for (int64_t r0 = 0; r0 < s->pt->rows; r0 += s->block_rows) {
        const int64_t nr = s->pt->rows - r0 < s->block_rows ? s->pt->rows - r0 : s->block_rows;
        qs_tensor_dequantize_rows(s->pt->t, r0, nr, s->buf);
        visit(ctx, s->buf, nr * s->pt->cols, r0, nr);
    }
}

typedef struct {
    int64_t cols;
    double sum, mn, mx, mean, m2, m4, sd, width;
    int64_t beyond3, beyond6;
    uint64_t hist[256];
    uint64_t *high;           /* (N_BUCKETS) counts of the keys' high 16 bits */
    uint64_t *low;            /* (N_PCT x N_BUCKETS) low 16 bits within each percentile's bucket */
    uint32_t bucket[N_PCT];   /* each percentile's high 16 bits */
    float *rowmax;
} moments;

static void pass_sums(void *ctx, const float *w, int64_t n, int64_t r0, int64_t nr) {
    moments *m = ctx;
    for (int64_t k = 0; k < n; k++) {
        m->sum += w[k];
        m->mn = fmin(m->mn, w[k]);
        m->mx = fmax(m->mx, w[k]);
        m->high[key_of(w[k]) >> 16]++;
    }
    for (int64_t r = 0; r < nr; r++) {
        float a = 0;
        for (int64_t c = 0; c < m->cols; c++) a = fmaxf(a, fabsf(w[r * m->cols + c]));
        m->rowmax[r0 + r] = a;
    }
}

static void pass_moments(void *ctx, const float *w, int64_t n, int64_t r0, int64_t nr) {
    (void)r0, (void)nr;
    moments *m = ctx;
    for (int64_t k = 0; k < n; k++) {
        const double d = w[k] - m->mean, d2 = d * d;
        m->m2 += d2;
        m->m4 += d2 * d2;
        const uint32_t key = key_of(w[k]);
        for (int q = 0; q < N_PCT; q++)
            if (key >> 16 == m->bucket[q]) m->low[(size_t)q * N_BUCKETS + (key & 0xffffu)]++;
    }
}

static void pass_tails(void *ctx, const float *w, int64_t n, int64_t r0, int64_t nr) {
    (void)r0, (void)nr;
    moments *m = ctx;
    for (int64_t k = 0; k < n; k++) {
        const double z = fabs(w[k] - m->mean);
        m->beyond3 += z > 3 * m->sd;
        m->beyond6 += z > 6 * m->sd;
        const int b = (int)((w[k] - m->mn) / m->width);
        m->hist[b < 0 ? 0 : b > 255 ? 255 : b]++;
    }
}

static int applies(const qs_profile *p, int i) {
    (void)p;
    (void)i;
    return 1;
}

static int run(qs_profile *p, int i, qs_error *err) {
    const qs_prof_tensor *pt = &p->tensors[i];
    const int64_t n = pt->rows * pt->cols;
    int64_t br = QS_PROFILE_BLOCK_BYTES / (4 * pt->cols);
    br = br < 1 ? 1 : br > pt->rows ? pt->rows : br;
    row_stream s = {pt, malloc(sizeof(float) * (size_t)(br * pt->cols)), br};
    moments m = {.cols = pt->cols, .mn = INFINITY, .mx = -INFINITY, .high = calloc(N_BUCKETS, sizeof(uint64_t)),
                 .low = calloc((size_t)N_PCT * N_BUCKETS, sizeof(uint64_t)), .rowmax = malloc(sizeof(float) * (size_t)pt->rows)};
    float *sorted_rows = malloc(sizeof(float) * (size_t)pt->rows);
    int rc = 0;
    if (!s.buf || !m.high || !m.low || !m.rowmax || !sorted_rows)
        rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory reading %s", pt->t->name);
    const double ps[N_PCT] = {0.1, 1, 50, 99, 99.9};
    int64_t within[N_PCT];
    double pv[N_PCT];
    if (!rc) {
        for_each_block(&s, pass_sums, &m);
        m.mean = m.sum / (double)n;
        for (int q = 0; q < N_PCT; q++) {
            within[q] = rank_of(n, ps[q]);
            m.bucket[q] = bucket_of(m.high, &within[q]);
        }
        for_each_block(&s, pass_moments, &m);
        m.m2 /= (double)n;
        m.m4 /= (double)n;
        m.sd = sqrt(m.m2);
        for (int q = 0; q < N_PCT; q++) {
            int64_t k = within[q];
            const uint32_t lowbits = bucket_of(m.low + (size_t)q * N_BUCKETS, &k);
            pv[q] = value_of(m.bucket[q] << 16 | lowbits);
        }
        m.width = m.mx > m.mn ? (m.mx - m.mn) / 256.0 : 1.0;
        for_each_block(&s, pass_tails, &m);
        memcpy(sorted_rows, m.rowmax, sizeof(float) * (size_t)pt->rows);
        qsort(sorted_rows, (size_t)pt->rows, sizeof(float), cmp_float);
    }
    char hist_ds[160], row_ds[160];
    snprintf(hist_ds, sizeof hist_ds, "/weights/%s/hist", pt->t->name);
    snprintf(row_ds, sizeof row_ds, "/weights/%s/row_absmax", pt->t->name);
    if (!rc) {
        qs_db_weight_stats_row row = {
            .run_id = p->run_id, .tensor_id = pt->db_id, .n = n, .min = m.mn, .max = m.mx, .absmax = fmax(fabs(m.mn), fabs(m.mx)),
            .mean = m.mean, .std = m.sd, .kurtosis = m.m2 > 0 ? m.m4 / (m.m2 * m.m2) : NAN, .p0_1 = pv[0], .p1 = pv[1],
            .p50 = pv[2], .p99 = pv[3], .p99_9 = pv[4], .frac_beyond_3sigma = (double)m.beyond3 / (double)n,
            .frac_beyond_6sigma = (double)m.beyond6 / (double)n, .row_absmax_min = sorted_rows[0],
            .row_absmax_median = pct(sorted_rows, pt->rows, 50), .row_absmax_max = sorted_rows[pt->rows - 1], .hist_min = m.mn,
            .hist_max = m.mx, .hist_dataset = hist_ds, .row_absmax_dataset = row_ds};
        rc = qs_db_put_weight_stats(p->db, &row, err);
    }
    if (!rc) rc = qs_db_put_array(p->db, p->run_id, hist_ds, "u64", m.hist, 256, err);
    if (!rc) rc = qs_db_put_array(p->db, p->run_id, row_ds, "f32", m.rowmax, pt->rows, err);
    free(s.buf);
    free(m.high);
    free(m.low);
    free(m.rowmax);
    free(sorted_rows);
    return rc;
}

const qs_analyzer qs_analyzer_weights = {"weights", 0, applies, run};
