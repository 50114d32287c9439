/* The candidate of a check (see candidate.h). */
#include "gate/candidate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/format.h"
#include "reports/planner/plan.h"

int qs_check_candidate_engine(const qs_check_options *o, qs_model *ref, qs_model **cand, qs_engine **e, float ***bufs, qs_error *err) {
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
    *bufs = calloc((size_t)ref->n_tensors, sizeof(float *));
    const int L = ref->arch.n_layers;
    for (int i = 0; i < ref->n_tensors && !rc; i++) {
        const qs_tensor *t = &ref->tensors[i];
        const qs_plan_tensor *pt = NULL;
        for (int k = 0; k < p->n_tensors; k++)
            if (!strcmp(p->tensors[k].name, t->name)) pt = &p->tensors[k];
        if (!pt || !strcmp(pt->format, "f32") || t->n_dims < 2) continue;
        const qs_format *f = qs_format_find(pt->format, err);
        if (!f) { rc = QS_ERR_INPUT; break; }
        const int64_t rows = qs_tensor_numel(t) / t->ne[0], n = rows * t->ne[0];
        float *w = malloc(sizeof(float) * (size_t)n), *imp = NULL, *gram = NULL;
        (*bufs)[i] = malloc(sizeof(float) * (size_t)n);
        qs_tensor_dequantize_rows(t, 0, rows, w);
        if (qs_format_needs_calib(f)) {
            if (!o->db) rc = qs_errorf(err, QS_ERR_USAGE, "%s: tensor %s uses %s rounding (%s): give --db, the profile database "
                                       "the plan came from, for the activation statistics", o->plan, t->name,
                                       f->gptq ? "GPTQ" : "weighted", f->name);
            else rc = qs_plan_load_calib(o->db, p->model_fingerprint, t->name, t->ne[0], f->gptq, &imp, &gram, err);
        }
        const qs_calib cal = {imp, gram, !rc && !imp && qs_format_needs_calib(f)}; /* no statistics: an untied embedding */
        if (!rc) rc = qs_format_fake_quantize_calib(f, w, (*bufs)[i], rows, t->ne[0], &cal, err);
        free(w);
        free(imp);
        free(gram);
        int layer, off = 0;
        char kind[32] = "";
        if (!rc && sscanf(t->name, "blk.%d.%n", &layer, &off) == 1 && off > 0) {
            snprintf(kind, sizeof kind, "%.*s", (int)strcspn(t->name + off, "."), t->name + off);
            for (int k = 0; k < QS_LIN_OUTPUT; k++)
                if (!strcmp(kind, qs_linear_name(k))) rc = qs_engine_override(*e, layer, k, (*bufs)[i], err);
        } else if (!rc && !strcmp(t->name, "output.weight")) {
            rc = qs_engine_override(*e, L, QS_LIN_OUTPUT, (*bufs)[i], err);
        } else if (!rc && !strcmp(t->name, "token_embd.weight")) {
            qs_engine_override_embedding(*e, (*bufs)[i]);
            if (ref->arch.tied_output) rc = qs_engine_override(*e, L, QS_LIN_OUTPUT, (*bufs)[i], err);
        }
    }
    qs_plan_free(p);
    return rc;
}
