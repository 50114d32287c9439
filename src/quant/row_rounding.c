/* Row-block rounding (see row_rounding.h). The scans gather qs_tensor_figures; the sparse
 * threshold is the k-th largest magnitude, found exactly by a 16-bit radix selection on the
 * magnitudes' bit patterns (non-negative floats order as their bits): the first pass counts the
 * high halves, the second the low halves within the bin that holds the k-th value; a third counts
 * each row's values equal to the threshold, so that a block of rows anywhere knows how many of the
 * ties (kept first in row order) fall before it. */
#include "quant/row_rounding.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_dtype.h"
#include "quant/awq.h"
#include "quant/ggml_quant.h"
#include "quant/tensor_scan.h"

#define RADIX 65536

struct qs_row_rounding {
    const qs_format *f;
    int64_t rows, cols;
    int scans;             /* passes the format needs */
    int pass;              /* the pass under way; == scans once the figures are complete */
    int64_t scanned;       /* rows the current pass has seen */
    qs_tensor_figures fig; /* the figures, as complete */
    int64_t ties;          /* sparse: the values equal to the threshold to keep, from row 0 */
    int64_t *equal_before; /* sparse: (rows + 1) values equal to the threshold before each row */
    double clip_err[QS_INT_CLIP_STEPS];
    int64_t *hist; /* sparse: RADIX counters */
    uint32_t high; /* sparse: the high half of the threshold's bits */
    int64_t above; /* sparse: magnitudes counted above the current bin */
    float *tmp;    /* the clip errors' rounding of a block; AWQ's error product */
    size_t tmp_cap;
    /* AWQ: the trial exponents' output errors, then the scales chosen (NULL: plain rounding, for a
     * lookup table without inputs) */
    double awq_err[QS_AWQ_ALPHAS];
    float *awq_wq, *awq_mag, *awq_s;
    size_t awq_cap;
    int awq_plain;
    /* GPTQ: H's factor, made on the first rows rounded; a block's blocks */
    qs_gptq_factor gptq;
    void *gptq_blocks;
    size_t gptq_cap;
};

static int needs_range(const qs_format *f) {
    if (f->family == QS_FAM_INT || f->family == QS_FAM_FP8) return f->granularity == QS_GRAN_TENSOR;
    return f->family == QS_FAM_MX && f->nvfp4;
}

/* GPTQ compensates a row's errors along the row only: given H's factor its rows are independent */
static int gptq_by_rows(const qs_format *f) { return f->gptq && f->family == QS_FAM_GGML; }

int qs_format_row_scans(const qs_format *f) {
    if (qs_format_rows_independent(f) || gptq_by_rows(f)) return 0;
    if (f->awq) return 1; /* the exponent's search */
    if (needs_range(f)) return f->family == QS_FAM_INT && f->clip_search ? 2 : 1;
    return f->family == QS_FAM_SPARSE ? 3 : -1;
}

int qs_format_rounds_by_rows(const qs_format *f) {
    if (qs_format_rows_independent(f) || gptq_by_rows(f)) return 1;
    if (f->awq) return f->base && qs_format_rows_independent(f->base);
    if (!f->ops->fake_quantize_rows) return 0;
    return f->family != QS_FAM_SPARSE || qs_format_rows_independent(f->base);
}

int qs_row_rounding_open(qs_row_rounding **out, const qs_format *f, int64_t rows, int64_t cols, qs_error *err) {
    *out = NULL;
    if (!qs_format_rounds_by_rows(f))
        return qs_errorf(err, QS_ERR_USAGE, "format %s takes a tensor whole, not a block of rows at a time", f->name);
    qs_row_rounding *r = calloc(1, sizeof *r);
    if (!r) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    *r = (qs_row_rounding){.f = f, .rows = rows, .cols = cols, .scans = qs_format_row_scans(f)};
    r->fig.alpha = 1.0f;
    r->fig.threshold = INFINITY;
    if (f->family == QS_FAM_SPARSE) {
        r->hist = calloc(RADIX, sizeof(int64_t));
        r->equal_before = calloc((size_t)rows + 1, sizeof(int64_t));
        if (!r->hist || !r->equal_before) {
            qs_row_rounding_close(r);
            return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
        }
    }
    *out = r;
    return 0;
}

void qs_row_rounding_close(qs_row_rounding *r) {
    if (!r) return;
    free(r->hist);
    free(r->equal_before);
    free(r->tmp);
    free(r->awq_wq);
    free(r->awq_s);
    free(r->awq_mag);
    qs_gptq_factor_free(&r->gptq);
    free(r->gptq_blocks);
    free(r);
}

/* *buf holds at least n floats (or bytes, size 1) */
static int grow(void **buf, size_t *cap, size_t n, size_t size) {
    if (n <= *cap) return 0;
    free(*buf);
    if (!(*buf = malloc(size * n))) {
        *cap = 0;
        return -1;
    }
    *cap = n;
    return 0;
}

static uint32_t magnitude_bits(float x) {
    const float a = fabsf(x);
    uint32_t u;
    memcpy(&u, &a, sizeof u);
    return u;
}

/* the sparse threshold: pass 0 finds its bin, pass 1 the value within it, pass 2 counts the values
 * equal to it row by row */
static void sparse_scan(qs_row_rounding *r, const float *w, int64_t nr) {
    if (r->pass == 2) {
        for (int64_t k = 0; k < nr; k++) {
            int64_t eq = 0;
            for (int64_t c = 0; c < r->cols; c++) eq += fabsf(w[k * r->cols + c]) == r->fig.threshold;
            r->equal_before[r->scanned + k + 1] = r->equal_before[r->scanned + k] + eq;
        }
        return;
    }
    for (int64_t i = 0; i < nr * r->cols; i++) {
        const uint32_t u = magnitude_bits(w[i]);
        if (r->pass == 0)
            r->hist[u >> 16]++;
        else if ((u >> 16) == r->high)
            r->hist[u & 0xffff]++;
    }
}

/* the bin (from the top) where the k-th largest falls, given `above` counted higher; updates it */
static uint32_t bin_of_kth(const int64_t *hist, int64_t k, int64_t *above) {
    for (int b = RADIX - 1; b > 0; b--) {
        if (*above + hist[b] >= k) return (uint32_t)b;
        *above += hist[b];
    }
    return 0;
}

/* a pass is complete: what it measured becomes the figures */
static void finish_pass(qs_row_rounding *r) {
    const qs_format *f = r->f;
    if (f->family == QS_FAM_SPARSE) {
        const int64_t keep = qs_sparse_outliers(f, r->rows * r->cols);
        if (keep <= 0) { /* nothing to keep: no threshold reaches a value */
            r->fig.threshold = INFINITY;
            r->ties = 0;
        } else if (r->pass == 0) {
            r->high = bin_of_kth(r->hist, keep, &r->above);
            memset(r->hist, 0, sizeof(int64_t) * RADIX);
        } else if (r->pass == 1) {
            const uint32_t low = bin_of_kth(r->hist, keep, &r->above), bits = r->high << 16 | low;
            memcpy(&r->fig.threshold, &bits, sizeof bits);
            r->ties = keep - r->above; /* `above` now counts every magnitude above the threshold */
        }
    } else if (f->awq) {
        if (!r->awq_plain) qs_awq_pick(r->awq_err, r->awq_mag, r->cols, r->awq_s, &r->fig.alpha);
    } else if (r->pass == 1) { /* the per-tensor int clipping search */
        r->fig.alpha = qs_int_best_clip(r->clip_err);
    }
    r->pass++;
    r->scanned = 0;
}

/* AWQ's search over the next nr rows: the trial exponents' errors, weighed by the inputs' Gram
 * matrix; without one, a lookup table is rounded plainly, as the whole tensor would be */
static int awq_scan(qs_row_rounding *r, const float *w, int64_t nr, const qs_calib *cal, qs_error *err) {
    const int64_t cols = r->cols;
    const int have = cal && cal->gram && cal->mean_abs;
    if (r->scanned == 0) {
        r->awq_plain = !have;
        if (!have && !(cal && cal->lookup))
            return qs_errorf(err, QS_ERR_USAGE, "format %s needs the inputs' statistics from calibration", r->f->name);
        if (have) {
            r->awq_mag = malloc(sizeof(float) * (size_t)cols);
            r->awq_s = malloc(sizeof(float) * (size_t)cols);
            if (!r->awq_mag || !r->awq_s) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
            memcpy(r->awq_mag, cal->mean_abs, sizeof(float) * (size_t)cols);
        }
    }
    if (r->awq_plain) return 0;
    if (!have) return qs_errorf(err, QS_ERR_USAGE, "format %s: rows scanned without the statistics", r->f->name);
    if (grow((void **)&r->tmp, &r->tmp_cap, (size_t)(nr * cols), sizeof(float)) ||
        grow((void **)&r->awq_wq, &r->awq_cap, (size_t)(nr * cols), sizeof(float)))
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    if (qs_awq_add_errors(r->f->base, w, nr, cols, r->awq_mag, cal->gram, r->awq_wq, r->tmp, r->awq_err))
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory quantizing to %s", r->f->name);
    return 0;
}

int qs_row_rounding_scan(qs_row_rounding *r, int pass, const float *w, int64_t nr, const qs_calib *cal, qs_error *err) {
    if (pass != r->pass || pass >= r->scans || nr < 0 || r->scanned + nr > r->rows)
        return qs_errorf(err, QS_ERR_USAGE, "format %s: scan %d of rows %lld..%lld out of turn", r->f->name, pass,
                         (long long)r->scanned, (long long)(r->scanned + nr));
    const int64_t n = nr * r->cols;
    int rc = 0;
    if (r->f->awq)
        rc = awq_scan(r, w, nr, cal, err);
    else if (r->f->family == QS_FAM_SPARSE)
        sparse_scan(r, w, nr);
    else if (pass == 0)
        qs_int_widen_range(w, n, &r->fig.lo, &r->fig.hi);
    else {
        if (grow((void **)&r->tmp, &r->tmp_cap, (size_t)n, sizeof(float)))
            return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
        qs_int_add_clip_errors(r->f, w, r->tmp, n, r->fig.lo, r->fig.hi, r->clip_err);
    }
    if (rc) return rc;
    if ((r->scanned += nr) == r->rows) finish_pass(r);
    return 0;
}

/* GPTQ's rounding of nr rows: H's factor once, then the rows' blocks, expanded */
static int gptq_round(qs_row_rounding *r, const float *w, float *out, int64_t nr, const qs_calib *cal, qs_error *err) {
    const qs_format *f = r->f;
    if (!cal || !cal->gram) /* a lookup table rounds to nearest; otherwise the statistics are missing */
        return qs_format_fake_quantize_calib(f, w, out, nr, r->cols, cal, err);
    if (!r->gptq.u) {
        const int rc = qs_gptq_factor_make(cal->gram, r->cols, &r->gptq);
        if (rc == -3)
            return qs_errorf(err, QS_ERR_INPUT, "format %s: the Gram matrix of the inputs is unusable", f->name);
        if (rc)
            return qs_errorf(err, QS_ERR_INTERNAL, "out of memory factoring the inputs' Gram matrix for %s", f->name);
    }
    const uint64_t rb = qs_dtype_row_bytes(f->ggml_type, r->cols);
    if (grow(&r->gptq_blocks, &r->gptq_cap, (size_t)(rb * (uint64_t)nr), 1))
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    const int rc = qs_gptq_quantize_factored(f->ggml_type, w, nr, &r->gptq, r->gptq_blocks);
    if (rc)
        return qs_errorf(err, rc == -1 ? QS_ERR_INTERNAL : QS_ERR_USAGE, "format %s cannot round rows of %lld", f->name,
                         (long long)r->cols);
    qs_dtype_get(f->ggml_type)->to_float(r->gptq_blocks, out, nr * r->cols);
    return 0;
}

int qs_row_rounding_round(qs_row_rounding *r, const float *w, float *out, int64_t r0, int64_t nr, const qs_calib *cal,
                          qs_error *err) {
    const qs_format *f = r->f;
    if (r->pass < r->scans || r0 < 0 || nr < 0 || r0 + nr > r->rows)
        return qs_errorf(err, QS_ERR_USAGE, "format %s: rows %lld..%lld of %lld rounded after %d of %d scans", f->name,
                         (long long)r0, (long long)(r0 + nr), (long long)r->rows, r->pass, r->scans);
    if (gptq_by_rows(f)) return gptq_round(r, w, out, nr, cal, err);
    if (r->scans == 0) return qs_format_fake_quantize_calib(f, w, out, nr, r->cols, cal, err);
    if (f->awq) {
        const int bad = r->awq_plain ? f->base->ops->fake_quantize(f->base, w, out, nr, r->cols, NULL)
                                     : qs_awq_apply(f->base, w, out, nr, r->cols, r->awq_s);
        return bad ? qs_errorf(err, QS_ERR_INTERNAL, "out of memory quantizing to %s", f->name) : 0;
    }
    if (r->equal_before) { /* the ties kept in the rows before r0 are spent */
        const int64_t before = r->equal_before[r0];
        r->fig.ties = r->ties > before ? r->ties - before : 0;
    }
    if (f->ops->fake_quantize_rows(f, &r->fig, w, out, nr, r->cols, cal))
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory quantizing to %s", f->name);
    return 0;
}
