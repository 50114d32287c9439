/* What the analyzers and the sweep ask of the profile they work on (see analyzer.h): a tensor's
 * calibrated inputs, its importance vector, whether a format applies, its weights as floats. Kept
 * apart from the driver (profile.c), which calls the analyzers: they call only this. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzers/analyzer.h"
#include "core/qs_dtype.h"
#include "engine/engine.h"
#include "engine/tensor_rounding.h"
#include "store/arrays.h"

const qs_act_stats *qs_profile_input_stats(const qs_profile *p, int i) {
    const qs_prof_tensor *pt = &p->tensors[i];
    if (!p->acts || pt->linear < 0) return NULL;
    int layer = pt->linear == QS_LIN_OUTPUT ? p->m->arch.n_layers : pt->layer;
    return &p->acts[layer * QS_LIN_COUNT + qs_linear_input_of(pt->linear)];
}

float *qs_profile_importance(const qs_profile *p, int i) {
    const qs_act_stats *s = qs_profile_input_stats(p, i);
    const int64_t cols = p->tensors[i].cols;
    float *imp = s && s->ch_sum_sq && s->n_tokens > 0 ? malloc(sizeof(float) * (size_t)cols) : NULL;
    if (imp)
        for (int64_t c = 0; c < cols; c++) imp[c] = (float)(s->ch_sum_sq[c] / (double)s->n_tokens);
    return imp;
}

/* Where the analyzers stored tensor i's Gram matrix (activations.c): under the matrix that owns
 * its inputs (K and V under Q, UP under GATE) when the model has it, else under its own name. */
static void gram_dataset(const qs_profile *p, int i, char *out, size_t cap) {
    const qs_prof_tensor *pt = &p->tensors[i];
    const int owner_kind = qs_linear_input_of(pt->linear);
    char owner[96];
    snprintf(owner, sizeof owner, "blk.%d.%s.weight", pt->layer, qs_linear_name(owner_kind));
    const int own = owner_kind == pt->linear || !qs_model_find(p->m, owner);
    snprintf(out, cap, "/activations/%s/gram", own ? pt->t->name : owner);
}

int qs_profile_calib(const qs_profile *p, int i, const qs_format *f, qs_calib *cal, float **buf, qs_error *err) {
    const qs_act_stats *s = qs_profile_input_stats(p, i);
    const int64_t cols = p->tensors[i].cols;
    *cal = (qs_calib){.lookup = p->tensors[i].linear < 0};
    *buf = NULL;
    if (!(s && s->ch_sum_sq && s->ch_sum_abs && s->n_tokens > 0)) return 0;
    /* the analyzers free each layer's X^T X after its jobs (an 8B model's are 32 GB together):
     * a GPTQ or AWQ format in the sweep reads the run's stored copy back, the one quantize reads */
    const int read_gram = f && (f->gptq || f->awq) && p->db && p->store_gram && cols == s->n_in;
    float *b = malloc(sizeof(float) * (size_t)(2 * cols + (read_gram ? cols * cols : 0)));
    if (!b) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory for the statistics of %s", p->tensors[i].t->name);
    for (int64_t c = 0; c < cols; c++) {
        b[c] = (float)(s->ch_sum_sq[c] / (double)s->n_tokens);
        b[cols + c] = (float)(s->ch_sum_abs[c] / (double)s->n_tokens);
    }
    cal->importance = b;
    cal->mean_abs = b + cols;
    cal->gram = read_gram ? NULL : s->gram;
    *buf = b;
    if (!read_gram) return 0;
    char ds[200];
    gram_dataset(p, i, ds, sizeof ds);
    const int found = qs_db_run_f32_array_into(p->db, p->run_id, ds, b + 2 * cols, cols * cols, err);
    if (found < 0) return found;
    if (!found)
        return qs_errorf(err, QS_ERR_INPUT,
                         "%s: run %lld has no Gram matrix %s (%lld x %lld) for %s; profile into a new database",
                         p->db_path ? p->db_path : "the database", (long long)p->run_id, ds, (long long)cols,
                         (long long)cols, f->name);
    cal->gram = b + 2 * cols;
    return 0;
}

/* Where AWQ's 1/s can go when the model is written (quantize/awq_fold.c): the RMSNorm before
 * q/k/v (or the fused qkv) and gate/up, v's rows before attn_output (one row per input channel
 * only without grouped-query sharing), up's rows before down; nowhere for experts and the head. */
static int awq_foldable(const qs_model *m, int linear) {
    switch (linear) {
    case QS_LIN_Q: case QS_LIN_K: case QS_LIN_V: case QS_LIN_QKV: case QS_LIN_GATE: case QS_LIN_UP: case QS_LIN_DOWN: return 1;
    case QS_LIN_O: return m->arch.n_heads == m->arch.n_kv_heads;
    default: return 0;
    }
}

int qs_profile_format_applies(const qs_profile *p, int i, const qs_format *f, char *why, size_t cap) {
    const qs_prof_tensor *pt = &p->tensors[i];
    if (!qs_format_applies(f, pt->rows, pt->cols, why, cap)) return 0;
    const qs_act_stats *s = qs_profile_input_stats(p, i);
    if ((f->gptq || f->awq) && pt->linear >= 0 && !(s && s->n_tokens > 0 && (s->gram || (p->db && p->store_gram)))) {
        if (why) snprintf(why, cap, "%s needs the Gram matrix of the inputs, and %s has no calibrated inputs", f->gptq ? "GPTQ" : "AWQ",
                          pt->t->name);
        return 0;
    }
    if (f->awq && !awq_foldable(p->m, pt->linear)) {
        if (why) snprintf(why, cap, "AWQ's scales for %s could not be folded into what feeds it", pt->t->name);
        return 0;
    }
    return 1;
}

float *qs_profile_weights(const qs_profile *p, int i) {
    const qs_prof_tensor *pt = &p->tensors[i];
    float *w = malloc(sizeof(float) * (size_t)(pt->rows * pt->cols));
    if (w) qs_tensor_dequantize_rows(pt->t, 0, pt->rows, w);
    return w;
}

int qs_profile_candidate(const qs_profile *p, int i, const qs_format *f, float **w_out, float **wq, qs_error *err) {
    const qs_prof_tensor *pt = &p->tensors[i];
    float *w = qs_profile_weights(p, i);
    *wq = malloc(sizeof(float) * (size_t)(pt->rows * pt->cols));
    qs_calib cal;
    float *imp = NULL;
    int rc = !w || !*wq ? qs_errorf(err, QS_ERR_INTERNAL, "out of memory quantizing %s", pt->t->name)
                        : qs_profile_calib(p, i, f, &cal, &imp, err);
    if (!rc) rc = qs_format_fake_quantize_calib(f, w, *wq, pt->rows, pt->cols, &cal, err);
    free(imp);
    if (rc) {
        free(*wq);
        *wq = NULL;
    }
    if (w_out && !rc) *w_out = w;
    else free(w);
    return rc;
}

int qs_profile_candidate_blocks(const qs_profile *p, int i, const qs_format *f, qs_tensor *st, void **blocks, qs_error *err) {
    const qs_prof_tensor *pt = &p->tensors[i];
    *blocks = NULL;
    if (!qs_format_has_blocks(f, pt->cols)) return 1;
    const size_t row_bytes = qs_dtype_row_bytes(f->ggml_type, pt->cols);
    void *b = malloc(row_bytes * (size_t)pt->rows);
    qs_calib cal;
    float *imp = NULL;
    int rc = b ? qs_profile_calib(p, i, f, &cal, &imp, err)
               : qs_errorf(err, QS_ERR_INTERNAL, "out of memory quantizing %s", pt->t->name);
    if (!rc) rc = qs_tensor_to_blocks(pt->t, f, &cal, b, err); /* a block of rows at a time */
    free(imp);
    if (rc) {
        free(b);
        return rc;
    }
    *st = *pt->t;
    st->type = f->ggml_type;
    st->data = b;
    st->nbytes = row_bytes * (uint64_t)pt->rows;
    st->scales = NULL;
    *blocks = b;
    return 0;
}

int qs_profile_rows_open(const qs_profile *p, int i, const qs_format *f, qs_prof_rows *out, qs_error *err) {
    const qs_prof_tensor *pt = &p->tensors[i];
    *out = (qs_prof_rows){0};
    int rc = qs_row_rounding_open(&out->r, f, pt->rows, pt->cols, err);
    const int scans = rc ? 0 : qs_format_row_scans(f);
    if (!rc) { /* the statistics before the scans: AWQ's search weighs its errors with them */
        out->f = f;
        rc = qs_profile_calib(p, i, f, &out->cal, &out->cal_buf, err);
    }
    const int64_t step = qs_tensor_rows_per_block(pt->t);
    float *w = scans > 0 ? malloc(sizeof(float) * (size_t)(step * pt->cols)) : NULL;
    if (scans > 0 && !w) rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory scanning %s", pt->t->name);
    for (int pass = 0; pass < scans && !rc; pass++)
        for (int64_t r0 = 0; r0 < pt->rows && !rc; r0 += step) {
            const int64_t n = pt->rows - r0 < step ? pt->rows - r0 : step;
            qs_tensor_dequantize_rows(pt->t, r0, n, w);
            rc = qs_row_rounding_scan(out->r, pass, w, n, &out->cal, err);
        }
    free(w);
    if (!rc && f->awq && out->cal.gram) { /* AWQ's scales are chosen: its rounding needs X^T X no more */
        out->cal.gram = NULL;
        float *b = realloc(out->cal_buf, sizeof(float) * (size_t)(2 * pt->cols)); /* cols^2 floats less */
        if (b) {
            out->cal_buf = b;
            out->cal.importance = b;
            out->cal.mean_abs = b + pt->cols;
        }
    }
    if (rc) qs_profile_rows_close(out);
    return rc;
}

int qs_profile_rows_round(qs_prof_rows *pr, const float *w, float *out, int64_t r0, int64_t n, qs_error *err) {
    return qs_row_rounding_round(pr->r, w, out, r0, n, &pr->cal, err);
}

int qs_profile_rows_round_in_place(qs_prof_rows *pr, float *w, int64_t r0, int64_t n, int64_t cols, qs_error *err) {
    const size_t need = (size_t)n * (size_t)cols;
    if (need > pr->copy_cap) {
        free(pr->copy);
        if (!(pr->copy = malloc(sizeof(float) * need))) {
            pr->copy_cap = 0;
            return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
        }
        pr->copy_cap = need;
    }
    memcpy(pr->copy, w, sizeof(float) * need);
    return qs_row_rounding_round(pr->r, pr->copy, w, r0, n, &pr->cal, err);
}

void qs_profile_rows_close(qs_prof_rows *pr) {
    qs_row_rounding_close(pr->r);
    free(pr->cal_buf);
    free(pr->copy);
    *pr = (qs_prof_rows){0};
}
