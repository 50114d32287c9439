/* The qerror analyzer: one tensor x every requested format. Formats that cannot store the
 * shape get a row saying why (never silently padded). For the others: MSE, SQNR, max abs
 * error, cosine similarity, and the activation-weighted output error
 * ||(W - W^) X^T||^2 / ||W X^T||^2 over all calibration tokens, computed exactly from the
 * inputs' Gram matrix G = X^T X as sum_r dW_r G dW_r^T / sum_r W_r G W_r^T. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzers/analyzer.h"
#include "quant/qerror.h"

static int applies(const qs_profile *p, int i) { return p->tensors[i].rows > 1 && p->tensors[i].cols > 1; }

/* sum_r a_r G a_r^T for a (rows, n), G (n, n) symmetric */
static double quad_form(const float *a, const float *g, int64_t rows, int n, float *scratch) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, n, n, 1, a, n, g, n, 0, scratch, n);
    double s = 0;
    for (int64_t k = 0; k < rows * n; k++) s += (double)scratch[k] * a[k];
    return s;
}

static int run(qs_profile *p, int i, qs_error *err) {
    const qs_prof_tensor *pt = &p->tensors[i];
    const int64_t n = pt->rows * pt->cols;
    const qs_act_stats *s = qs_profile_input_stats(p, i);
    float *w = qs_profile_weights(p, i), *wq = malloc(sizeof(float) * (size_t)n), *dw = malloc(sizeof(float) * (size_t)n);
    float *scratch = s ? malloc(sizeof(float) * (size_t)n) : NULL;
    if (!w || !wq || !dw || (s && !scratch)) {
        free(w); free(wq); free(dw); free(scratch);
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory for %s", pt->t->name);
    }
    const double denom = s ? quad_form(w, s->gram, pt->rows, (int)pt->cols, scratch) : NAN;
    /* codebook formats weight their fit by the inputs' mean square (llama-imatrix's statistic) */
    qs_calib cal;
    float *importance = qs_profile_calib(p, i, &cal);
    int rc = 0;
    for (int k = 0; k < p->n_formats && !rc; k++) {
        const qs_format *f = p->formats[k];
        char why[200] = "";
        if (!qs_profile_format_applies(p, i, f, why, sizeof why)) {
            qs_db_qerror_row row = {.run_id = p->run_id, .tensor_id = pt->db_id, .format_id = p->format_ids[k], .applicable = 0,
                                    .reason = why};
            rc = qs_db_put_qerror(p->db, &row, err);
            continue;
        }
        if ((rc = qs_format_fake_quantize_calib(f, w, wq, pt->rows, pt->cols, &cal, err))) break;
        qs_qerror q;
        qs_qerror_compute(w, wq, n, &q);
        double out_err = NAN;
        if (s && denom > 0) {
            for (int64_t e = 0; e < n; e++) dw[e] = w[e] - wq[e];
            out_err = quad_form(dw, s->gram, pt->rows, (int)pt->cols, scratch) / denom;
        }
        qs_db_qerror_row row = {.run_id = p->run_id, .tensor_id = pt->db_id, .format_id = p->format_ids[k], .applicable = 1,
                                .bpw = qs_format_bpw(f, pt->rows, pt->cols), .mse = q.mse, .sqnr_db = q.sqnr_db,
                                .max_abs_error = q.max_abs, .cosine = q.cosine, .output_error = out_err};
        rc = qs_db_put_qerror(p->db, &row, err);
    }
    free(w); free(wq); free(dw); free(scratch); free(importance);
    return rc;
}

const qs_analyzer qs_analyzer_qerror = {"qerror", 1, applies, run};
