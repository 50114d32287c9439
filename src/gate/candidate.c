/* The candidate of a check (see candidate.h). */
#include "gate/candidate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/qs_dtype.h"
#include "engine/site_quant.h"
#include "engine/tensor_rounding.h"
#include "quant/format.h"
#include "quant/row_rounding.h"
#include "reports/planner/plan.h"
#include "reports/planner/plan_act.h"

void qs_check_overrides_free(qs_check_overrides *ov) {
    for (int i = 0; ov->bufs && i < ov->n; i++) free(ov->bufs[i]);
    free(ov->bufs);
    free(ov->stored);
    for (int i = 0; ov->rows && i < ov->n; i++) qs_row_rounding_close(ov->rows[i]);
    free(ov->rows);
    for (int i = 0; ov->stats && i < ov->n; i++) {
        free(ov->stats[i].importance);
        free(ov->stats[i].mean_abs);
    }
    free(ov->stats);
    free(ov->scratch);
    qs_site_quant_free(ov->sites);
    memset(ov, 0, sizeof *ov);
}

/* the engine's transform for a tensor planned in a format that rounds by rows: its expanded rows
 * rounded in place (through a copy) */
static void round_rows(void *user, const qs_tensor *t, int64_t row0, int64_t n, float *w) {
    qs_check_overrides *ov = user;
    qs_error err = {0};
    const size_t need = (size_t)n * (size_t)t->ne[0];
    if (need > ov->scratch_cap) {
        free(ov->scratch);
        ov->scratch_cap = (ov->scratch = malloc(sizeof(float) * need)) ? need : 0;
    }
    if (!ov->scratch)
        snprintf(err.msg, sizeof err.msg, "out of memory");
    else
        memcpy(ov->scratch, w, sizeof(float) * need);
    const struct qs_check_stats *st = &ov->stats[t - ov->ref->tensors];
    const qs_calib cal = {st->importance, NULL, st->lookup, st->mean_abs};
    if (!ov->scratch || qs_row_rounding_round(ov->rows[t - ov->ref->tensors], ov->scratch, w, row0, n, &cal, &err)) {
        ov->failed = 1;
        snprintf(ov->why, sizeof ov->why, "%.100s: %.140s", t->name, err.msg);
    }
}

/* a format check can apply to rows as the engine reads them: no GGUF blocks (those are held at
 * their stored size), rounded by rows (after scans for a per-tensor figure or AWQ's scales) */
static int rounds_rows(const qs_format *f, const qs_tensor *t) {
    return !qs_format_has_blocks(f, t->ne[0]) && qs_format_rounds_by_rows(f);
}

/* tensor t's rounding to f by rows, its scans run over the reference's rows with its statistics */
static int open_rows(const qs_tensor *t, const qs_format *f, const qs_calib *cal, qs_row_rounding **out,
                     qs_error *err) {
    const int64_t cols = t->ne[0], rows = qs_tensor_numel(t) / cols;
    int rc = qs_row_rounding_open(out, f, rows, cols, err);
    const int scans = rc ? 0 : qs_format_row_scans(f);
    const int64_t step = qs_tensor_rows_per_block(t);
    float *w = scans > 0 ? malloc(sizeof(float) * (size_t)(step * cols)) : NULL;
    if (scans > 0 && !w) rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory scanning %s", t->name);
    for (int pass = 0; pass < scans && !rc; pass++)
        for (int64_t r0 = 0; r0 < rows && !rc; r0 += step) {
            const int64_t nr = rows - r0 < step ? rows - r0 : step;
            qs_tensor_dequantize_rows(t, r0, nr, w);
            rc = qs_row_rounding_scan(*out, pass, w, nr, cal, err);
        }
    free(w);
    return rc;
}

/* the f32 copies a plan's row-rounded tensors would take: over the budget, they are rounded on the fly */
static int round_on_the_fly(const qs_check_options *o, const qs_model *ref, const qs_plan *p) {
    double bytes = 0;
    for (int i = 0; i < ref->n_tensors; i++) {
        const qs_tensor *t = &ref->tensors[i];
        const qs_plan_tensor *pt = qs_plan_find(p, t->name);
        const qs_format *f = pt && t->n_dims >= 2 ? qs_format_find(pt->format, NULL) : NULL;
        if (f && rounds_rows(f, t)) bytes += 4.0 * (double)qs_tensor_numel(t);
    }
    const double budget = o->mem_budget > 0 ? (double)o->mem_budget
                                            : 0.8 * (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    return bytes > budget;
}

/* tensor t of the reference in format f, into ov's slot i: blocks when f has a GGUF type, else
 * f32 values; the statistics weighted and GPTQ rounding need come from --db */
static int quantize_one(const qs_check_options *o, const qs_plan *p, const qs_tensor *t, const qs_format *f,
                        qs_check_overrides *ov, int i, int on_the_fly, qs_error *err) {
    const int64_t rows = qs_tensor_numel(t) / t->ne[0], n = rows * t->ne[0];
    /* AWQ: f32, its own scales applied both ways (a written file folds a group's scales instead) */
    const int blocks = qs_format_has_blocks(f, t->ne[0]);
    float *imp = NULL, *gram = NULL, *mag = NULL;
    int rc = 0;
    if (qs_format_needs_calib(f)) {
        if (!o->db) rc = qs_errorf(err, QS_ERR_USAGE, "%s: tensor %s uses %s rounding (%s): give --db, the profile database "
                                   "the plan came from, for the activation statistics", o->plan, t->name,
                                   f->gptq ? "GPTQ" : f->awq ? "AWQ" : "weighted", f->name);
        else rc = qs_plan_load_calib(o->db, p->model_fingerprint, t->name, t->ne[0], f->gptq || f->awq, &imp, &gram, err);
        if (!rc && f->awq && imp) rc = qs_plan_load_mean_abs(o->db, p->model_fingerprint, t->name, t->ne[0], &mag, err);
    }
    const qs_calib cal = {imp, gram, !rc && !imp && qs_format_needs_calib(f), mag}; /* no statistics: an untied embedding */
    if (!rc && on_the_fly &&
        rounds_rows(f, t)) { /* rounded as the engine reads the rows: refuse a misfit now, not mid-run */
        char why[256];
        if (!qs_format_applies(f, rows, t->ne[0], why, sizeof why))
            rc = qs_errorf(err, QS_ERR_INPUT, "%s: tensor %s: %s", o->plan, t->name, why);
        else
            rc = open_rows(t, f, &cal, &ov->rows[i], err);
        ov->stats[i] = (struct qs_check_stats){imp, mag, cal.lookup}; /* the rows round with them; X^T X is spent */
        free(gram);
        return rc;
    }
    ov->bufs[i] =
        rc ? NULL
           : malloc(blocks ? qs_dtype_row_bytes(f->ggml_type, t->ne[0]) * (size_t)rows : sizeof(float) * (size_t)n);
    if (!rc && !ov->bufs[i]) rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory for %s", t->name);
    /* a block of rows at a time: an 8B model's embedding would be 2 GB in f32 */
    if (!rc && blocks) {
        rc = qs_tensor_to_blocks(t, f, &cal, ov->bufs[i], err);
        ov->stored[i] = *t;
        ov->stored[i].type = f->ggml_type;
        ov->stored[i].data = ov->bufs[i];
        ov->stored[i].nbytes = qs_dtype_row_bytes(f->ggml_type, t->ne[0]) * (uint64_t)rows;
        ov->stored[i].scales = NULL;
    } else if (!rc && qs_format_rounds_by_rows(f)) {
        rc = qs_tensor_round_f32(t, f, &cal, ov->bufs[i], err);
    } else if (!rc) { /* a format that takes the tensor whole */
        float *w = malloc(sizeof(float) * (size_t)n);
        if (w) qs_tensor_dequantize_rows(t, 0, rows, w);
        rc = w ? qs_format_fake_quantize_calib(f, w, ov->bufs[i], rows, t->ne[0], &cal, err)
               : qs_errorf(err, QS_ERR_INTERNAL, "out of memory for %s", t->name);
        free(w);
    }
    free(imp);
    free(gram);
    free(mag);
    return rc;
}

/* hands slot i to the engine in place of tensor t (a linear, the head or the embedding table) */
static int substitute(qs_engine *e, const qs_model *ref, const qs_tensor *t, qs_check_overrides *ov, int i,
                      qs_error *err) {
    if (ov->rows[i]) return qs_engine_transform_weights(e, t, round_rows, ov, err); /* every use of t */
    const qs_tensor *st = ov->stored[i].data ? &ov->stored[i] : NULL;
    const float *f32 = st ? NULL : ov->bufs[i];
    const int L = ref->arch.n_layers;
    int layer, off = 0, rc = 0;
    if (sscanf(t->name, "blk.%d.%n", &layer, &off) == 1 && off > 0) {
        char kind[32];
        snprintf(kind, sizeof kind, "%.*s", (int)strcspn(t->name + off, "."), t->name + off);
        for (int k = 0; k < QS_LIN_OUTPUT && !rc; k++)
            if (!strcmp(kind, qs_linear_name(k)))
                rc = st ? qs_engine_override_stored(e, layer, k, st, err) : qs_engine_override(e, layer, k, f32, err);
        return rc;
    }
    const int embedding = !strcmp(t->name, "token_embd.weight");
    if (embedding) {
        if (st) rc = qs_engine_override_embedding_stored(e, st, err);
        else qs_engine_override_embedding(e, f32);
    }
    if (!rc && (!strcmp(t->name, "output.weight") || (embedding && ref->arch.tied_output)))
        rc = st ? qs_engine_override_stored(e, L, QS_LIN_OUTPUT, st, err) : qs_engine_override(e, L, QS_LIN_OUTPUT, f32, err);
    return rc;
}

/* a static activation format's range: the largest |x| the profile's calibration saw at the
 * tensor's input (what the planner's site sweep used) */
static int calibrated_absmax(const qs_check_options *o, const qs_plan *p, const qs_model *ref, const char *tensor, float *absmax,
                             qs_error *err) {
    const qs_tensor *t = qs_model_find(ref, tensor);
    if (!o->db)
        return qs_errorf(err, QS_ERR_USAGE, "%s: the static activation format on %s takes its scale from calibration: give --db with "
                                            "the database the plan came from", p->source_path, tensor);
    if (!t) return qs_errorf(err, QS_ERR_INPUT, "%s: no tensor %s in the model", p->source_path, tensor);
    return qs_plan_load_input_absmax(o->db, p->model_fingerprint, tensor, t->ne[0], absmax, err);
}

/* a W+A plan: each planned input group's activation format at its site; a static format with the
 * calibrated range of its input */
static int apply_acts(const qs_check_options *o, const qs_model *ref, qs_engine *e, const qs_plan *p, qs_check_overrides *ov,
                      qs_error *err) {
    static const char *const kinds[] = {"attn_in", "attn_out", "ffn_in", "ffn_down_in"};
    static const int sites[] = {QS_SITE_ATTN_IN, QS_SITE_ATTN_OUT, QS_SITE_FFN_IN, QS_SITE_FFN_DOWN_IN};
    int rc = 0;
    for (int i = 0; i < p->n_tensors && !rc; i++) {
        const qs_plan_tensor *t = &p->tensors[i];
        char site[64], kind[32];
        int layer;
        if (!t->act[0]) continue;
        if (!qs_plan_act_site(t->name, site, sizeof site) || sscanf(site, "blk.%d.%31s", &layer, kind) != 2)
            return qs_errorf(err, QS_ERR_INPUT, "%s: 'act' on %s, whose input a W+A plan does not quantize", p->source_path, t->name);
        const qs_act_format *f = qs_act_format_find(t->act, err);
        if (!f) return QS_ERR_INPUT;
        float absmax = NAN;
        if (f->is_static && (rc = calibrated_absmax(o, p, ref, t->name, &absmax, err))) return rc;
        if (!ov->sites && (rc = qs_site_quant_new(&ov->sites, e, err))) return rc;
        for (int k = 0; k < 4; k++)
            if (!strcmp(kind, kinds[k])) rc = qs_site_quant_set_input(ov->sites, layer, sites[k], f, absmax, err);
    }
    if (!rc && ov->sites) qs_site_quant_attach(e, ov->sites);
    return rc;
}

int qs_check_candidate_engine(const qs_check_options *o, qs_model *ref, qs_model **cand, qs_engine **e, qs_check_overrides *ov,
                              qs_error *err) {
    memset(ov, 0, sizeof *ov);
    if (!o->plan) {
        int rc = qs_model_open(cand, o->candidate, NULL, err);
        if (!rc) rc = qs_engine_new(e, *cand, o->threads, err);
        return rc;
    }
    qs_plan *p;
    int rc = qs_plan_read_json(&p, o->plan, err);
    if (rc) return rc;
    char fp[65];
    if ((rc = qs_model_fingerprint(ref, fp, err)) || (rc = qs_engine_new(e, ref, o->threads, err))) {
        qs_plan_free(p);
        return rc;
    }
    if (strcmp(fp, p->model_fingerprint)) {
        qs_plan_free(p);
        return qs_errorf(err, QS_ERR_INPUT, "%s: the plan was made for the model with sha256 %.16s..., not %s", o->plan,
                         p->model_fingerprint, o->reference);
    }
    ov->n = ref->n_tensors;
    ov->bufs = calloc((size_t)ref->n_tensors, sizeof(void *));
    ov->stored = calloc((size_t)ref->n_tensors, sizeof(qs_tensor));
    ov->rows = calloc((size_t)ref->n_tensors, sizeof(qs_row_rounding *));
    ov->stats = calloc((size_t)ref->n_tensors, sizeof *ov->stats);
    ov->ref = ref;
    if (!ov->bufs || !ov->stored || !ov->rows || !ov->stats) rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    const int on_the_fly = round_on_the_fly(o, ref, p);
    for (int i = 0; i < ref->n_tensors && !rc; i++) {
        const qs_tensor *t = &ref->tensors[i];
        const qs_plan_tensor *pt = qs_plan_find(p, t->name);
        if (!pt || !strcmp(pt->format, "f32") || t->n_dims < 2) continue;
        const qs_format *f = qs_format_find(pt->format, err);
        if (!f) rc = QS_ERR_INPUT;
        if (!rc) rc = quantize_one(o, p, t, f, ov, i, on_the_fly, err);
        if (!rc) rc = substitute(*e, ref, t, ov, i, err);
    }
    if (!rc) rc = apply_acts(o, ref, *e, p, ov, err);
    qs_plan_free(p);
    return rc;
}
