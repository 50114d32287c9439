/* The qerror analyzer: one tensor x every requested format. Formats that cannot store the
 * shape get a row saying why (never silently padded). For the others: MSE, SQNR, max abs
 * error, cosine similarity, and the activation-weighted output error
 * ||(W - W^) X^T||^2 / ||W X^T||^2 over all calibration tokens, computed exactly from the
 * inputs' Gram matrix G = X^T X as sum_r dW_r G dW_r^T / sum_r W_r G W_r^T.
 * Memory: the tensor is streamed from its stored blocks a block of rows at a time (at most
 * QS_PROFILE_BLOCK_BYTES of f32 per buffer) through every format that rounds by rows
 * (quant/row_rounding.h: a per-tensor scale or sparse threshold is found first by scans over the
 * rows, each expanding the tensor again); only AWQ's search and GPTQ make it hold the tensor twice
 * in f32 (the weights and their quantized copy). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzers/analyzer.h"
#include "quant/qerror.h"
#include "quant/row_rounding.h"

static int applies(const qs_profile *p, int i) { return p->tensors[i].rows > 1 && p->tensors[i].cols > 1; }

/* sum_r a_r G a_r^T for a (rows, n), G (n, n) symmetric */
static double quad_form(const float *a, const float *g, int64_t rows, int n, float *scratch) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, n, n, 1, a, n, g, n, 0, scratch, n);
    double s = 0;
    for (int64_t k = 0; k < rows * n; k++) s += (double)scratch[k] * a[k];
    return s;
}

/* One format's sums over the row blocks seen so far */
typedef struct {
    qs_qerror_acc q;
    double out_num; /* sum_r dW_r G dW_r^T */
} format_acc;

/* Buffers of one row block (rows_per_block rows), and the tensor whole where a format needs it */
typedef struct {
    const qs_prof_tensor *pt;
    const float *gram;  /* NULL: no calibrated inputs */
    int64_t block_rows;
    float *w_whole, *wq_whole; /* NULL unless a format takes the tensor whole (AWQ, GPTQ) */
    float *w, *wq, *dw, *scratch;
} streams;

/* The rows [r0, r0 + nr) of the weights: a view of the whole copy, or expanded into s->w */
static const float *weight_rows(streams *s, int64_t r0, int64_t nr) {
    if (s->w_whole) return s->w_whole + r0 * s->pt->cols;
    qs_tensor_dequantize_rows(s->pt->t, r0, nr, s->w);
    return s->w;
}

static void accumulate(streams *s, format_acc *a, const float *w, const float *wq, int64_t nr) {
    const int64_t n = nr * s->pt->cols;
    qs_qerror_add(&a->q, w, wq, n);
    if (!s->gram) return;
    for (int64_t e = 0; e < n; e++) s->dw[e] = w[e] - wq[e];
    a->out_num += quad_form(s->dw, s->gram, nr, (int)s->pt->cols, s->scratch);
}

static int put_row(qs_profile *p, int i, int k, const format_acc *a, double denom, qs_error *err) {
    const qs_prof_tensor *pt = &p->tensors[i];
    qs_qerror q;
    qs_qerror_finish(&a->q, &q);
    qs_db_qerror_row row = {.run_id = p->run_id, .tensor_id = pt->db_id, .format_id = p->format_ids[k], .applicable = 1,
                            .bpw = qs_format_bpw(p->formats[k], pt->rows, pt->cols), .mse = q.mse, .sqnr_db = q.sqnr_db,
                            .max_abs_error = q.max_abs, .cosine = q.cosine,
                            .output_error = denom > 0 ? a->out_num / denom : NAN};
    return qs_db_put_qerror(p->db, &row, err);
}

static int run(qs_profile *p, int i, qs_error *err) {
    const qs_prof_tensor *pt = &p->tensors[i];
    const int64_t rows = pt->rows, cols = pt->cols;
    const qs_act_stats *st = qs_profile_input_stats(p, i);
    int *ok = calloc((size_t)p->n_formats, sizeof(int)), whole = 0, scans = 0, rc = 0;
    format_acc *acc = calloc((size_t)p->n_formats, sizeof(format_acc));
    qs_row_rounding **by_rows = calloc((size_t)p->n_formats, sizeof *by_rows); /* NULL: taken whole */
    if (!ok || !acc || !by_rows) {
        free(ok);
        free(acc);
        free(by_rows);
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory for %s", pt->t->name);
    }
    for (int k = 0; k < p->n_formats && !rc; k++) {
        char why[200] = "";
        const qs_format *f = p->formats[k];
        ok[k] = qs_profile_format_applies(p, i, f, why, sizeof why);
        if (ok[k] && qs_format_rounds_by_rows(f)) {
            rc = qs_row_rounding_open(&by_rows[k], f, rows, cols, err);
            scans = qs_format_row_scans(f) > scans ? qs_format_row_scans(f) : scans;
        } else if (ok[k])
            whole = 1;
        else {
            qs_db_qerror_row row = {.run_id = p->run_id, .tensor_id = pt->db_id, .format_id = p->format_ids[k], .applicable = 0,
                                    .reason = why};
            rc = qs_db_put_qerror(p->db, &row, err);
        }
    }
    int64_t br = QS_PROFILE_BLOCK_BYTES / (4 * cols);
    br = br < 1 ? 1 : br > rows ? rows : br;
    streams s = {.pt = pt, .gram = st && st->n_tokens > 0 ? st->gram : NULL, .block_rows = br};
    const size_t blk = sizeof(float) * (size_t)(br * cols), all = sizeof(float) * (size_t)(rows * cols);
    s.wq = malloc(blk);
    if (whole) {
        s.w_whole = malloc(all);
        s.wq_whole = malloc(all);
        if (s.w_whole) qs_tensor_dequantize_rows(pt->t, 0, rows, s.w_whole);
    } else s.w = malloc(blk);
    if (s.gram) {
        s.dw = malloc(blk);
        s.scratch = malloc(blk);
    }
    if (!rc && (!s.wq || (whole ? !s.w_whole || !s.wq_whole : !s.w) || (s.gram && (!s.dw || !s.scratch))))
        rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory for %s", pt->t->name);
    /* codebook formats weight their fit by the inputs' mean square (llama-imatrix's statistic) */
    qs_calib cal;
    float *importance = NULL;
    if (!rc) rc = qs_profile_calib(p, i, NULL, &cal, &importance, err); /* the pass's X^T X, in memory */
    double denom = 0;
    /* the per-tensor figures of the formats that need them, a pass over the rows each */
    for (int pass = 0; pass < scans && !rc; pass++)
        for (int64_t r0 = 0; r0 < rows && !rc; r0 += br) {
            const int64_t nr = rows - r0 < br ? rows - r0 : br;
            const float *w = weight_rows(&s, r0, nr);
            for (int k = 0; k < p->n_formats && !rc; k++)
                if (by_rows[k] && qs_format_row_scans(p->formats[k]) > pass)
                    rc = qs_row_rounding_scan(by_rows[k], pass, w, nr, &cal, err);
        }
    /* the formats that round by rows, one block of rows at a time, each block expanded once */
    for (int64_t r0 = 0; r0 < rows && !rc; r0 += br) {
        const int64_t nr = rows - r0 < br ? rows - r0 : br;
        const float *w = weight_rows(&s, r0, nr);
        if (s.gram) denom += quad_form(w, s.gram, nr, (int)cols, s.scratch);
        for (int k = 0; k < p->n_formats && !rc; k++) {
            if (!by_rows[k]) continue;
            if ((rc = qs_row_rounding_round(by_rows[k], w, s.wq, r0, nr, &cal, err))) break;
            accumulate(&s, &acc[k], w, s.wq, nr);
        }
    }
    /* the others on the whole tensor, their sums still taken a block of rows at a time */
    for (int k = 0; k < p->n_formats && !rc; k++) {
        if (!ok[k] || by_rows[k]) continue;
        if ((rc = qs_format_fake_quantize_calib(p->formats[k], s.w_whole, s.wq_whole, rows, cols, &cal, err))) break;
        for (int64_t r0 = 0; r0 < rows; r0 += br) {
            const int64_t nr = rows - r0 < br ? rows - r0 : br;
            accumulate(&s, &acc[k], s.w_whole + r0 * cols, s.wq_whole + r0 * cols, nr);
        }
    }
    for (int k = 0; k < p->n_formats && !rc; k++)
        if (ok[k]) rc = put_row(p, i, k, &acc[k], s.gram ? denom : NAN, err);
    free(s.w_whole); free(s.wq_whole); free(s.w); free(s.wq); free(s.dw); free(s.scratch);
    for (int k = 0; k < p->n_formats; k++) qs_row_rounding_close(by_rows[k]);
    free(importance);
    free(ok);
    free(acc);
    free(by_rows);
    return rc;
}

const qs_analyzer qs_analyzer_qerror = {"qerror", 1, applies, run};
