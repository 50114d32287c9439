/* Plans in the results database: `qsense plan` records each plan it writes (identified by the
 * sha256 of the plan file), its predicted cost per domain and the size/cost Pareto front, so the
 * report can draw them and `qsense check --plan` can put measured figures beside the predicted
 * ones (tables plans, plan_domains, pareto in docs/schema.md). */
#include "reports/planner/plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_dtype.h"
#include "core/qs_file.h"
#include "core/qs_sha256.h"
#include "engine/engine.h"
#include "quant/format.h"
#include "store/arrays.h"
#include "store/db.h"
#include "store/plans.h"

int qs_plan_record(const qs_plan *p, const char *db_path, const char *plan_path, int64_t *plan_id, qs_error *err) {
    char *text;
    size_t n;
    int rc = qs_read_file(plan_path, &text, &n, err);
    if (rc) return rc;
    char sha[65];
    qs_sha256_hex(text, n, sha);
    qs_db *db;
    if ((rc = qs_db_open(&db, db_path, QS_DB_WRITE, err))) {
        free(text);
        return rc;
    }
    qs_db_plan_point *front = calloc((size_t)p->n_curve + 1, sizeof *front);
    if (!front) rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    for (int i = 0; i < p->n_curve && front; i++)
        front[i] = (qs_db_plan_point){p->curve[i].bytes, p->total_params > 0 ? 8 * p->curve[i].bytes / p->total_params : 0,
                                      p->curve[i].kl};
    qs_db_plan_record r = {
        .run_id = p->run_id, .sha256 = sha, .path = plan_path, .target = p->target, .domain_weights = p->weights_spec,
        .budget_bytes = p->budget_bytes, .tensor_bytes = p->total_bytes,
        .bpw = p->total_params > 0 ? 8 * p->total_bytes / p->total_params : 0, .predicted_kl = p->predicted_kl,
        .plan_json = text, .plan_json_len = n, .n_domains = p->n_domains, .domains = (const char (*)[64])p->domains,
        .predicted_kl_domain = p->predicted_kl_domain, .n_points = p->n_curve, .points = front};
    if (!rc) rc = qs_db_put_plan(db, &r, plan_id, err);
    free(front);
    qs_db_close(db);
    free(text);
    return rc;
}

int qs_plan_record_measured(qs_db *db, const char *plan_sha256, int64_t check_id, const char *domain,
                            const qs_plan_measured *m, qs_error *err) {
    return qs_db_put_plan_measured(db, plan_sha256, check_id, domain, m->kl_mean, m->kl_p99, m->ppl_ratio, m->top1, err);
}

int qs_plan_needs_importance(const qs_plan *p) {
    for (int i = 0; i < p->n_tensors; i++) {
        const qs_format *f = qs_format_find(p->tensors[i].format, NULL);
        if (f && qs_format_needs_calib(f)) return 1;
    }
    return 0;
}

/* the per-input-channel array /activations/<tensor>/<what> (cols floats, malloc'd) of the model's
 * profile; QS_ERR_INPUT naming it, and what it is for, when the database lacks it */
static int load_input_array(const char *db_path, const char *model_fingerprint, const char *tensor, const char *what, int64_t cols,
                            const char *missing, float **out, qs_error *err) {
    *out = NULL;
    qs_db *db;
    int rc = qs_db_open(&db, db_path, QS_DB_READ, err);
    if (rc) return rc;
    char dataset[200];
    snprintf(dataset, sizeof dataset, "/activations/%s/%s", tensor, what);
    const int found = qs_db_model_f32_array(db, model_fingerprint, dataset, cols, out, err);
    if (found < 0) rc = found;
    else if (!found)
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: no %s (%s) for the model with sha256 %.16s...", db_path, missing, dataset,
                       model_fingerprint);
    qs_db_close(db);
    return rc;
}

int qs_plan_load_mean_abs(const char *db_path, const char *model_fingerprint, const char *tensor, int64_t cols, float **mean_abs,
                          qs_error *err) {
    return load_input_array(db_path, model_fingerprint, tensor, "channel_mean_abs", cols,
                            "mean |x| of the inputs: AWQ rounding needs a profile run of this model by this version of qsense",
                            mean_abs, err);
}

int qs_plan_load_input_absmax(const char *db_path, const char *model_fingerprint, const char *tensor, int64_t cols, float *absmax,
                              qs_error *err) {
    float *ch;
    const int rc = load_input_array(db_path, model_fingerprint, tensor, "channel_absmax", cols, "calibrated range of the inputs",
                                    &ch, err);
    *absmax = 0;
    for (int64_t c = 0; !rc && c < cols; c++) *absmax = ch[c] > *absmax ? ch[c] : *absmax;
    free(ch);
    return rc;
}

int qs_plan_load_calib(const char *db_path, const char *model_fingerprint, const char *tensor, int64_t cols, int want_gram,
                       float **importance, float **gram, qs_error *err) {
    *importance = NULL;
    if (gram) *gram = NULL;
    qs_db *db;
    int rc = qs_db_open(&db, db_path, QS_DB_READ, err);
    if (rc) return rc;
    char dataset[200];
    snprintf(dataset, sizeof dataset, "/activations/%s/channel_mean_sq", tensor);
    int found = qs_db_model_f32_array(db, model_fingerprint, dataset, cols, importance, err);
    if (found < 0) rc = found;
    else if (!found && strcmp(tensor, "token_embd.weight")) /* an untied embedding has no inputs: weighed uniformly */
        rc = qs_errorf(err, QS_ERR_INPUT,
                       "%s: no activation statistics (%s, %lld values) for the model with sha256 %.16s...: weighted "
                       "rounding needs the database of a qsense profile run of this model",
                       db_path, dataset, (long long)cols, model_fingerprint);
    if (!rc && want_gram && *importance) { /* (a lookup table has neither) */
        /* matrices that read another's inputs (attn_k, attn_v: attn_q's) are stored under it */
        int layer, off = 0, kind = -1;
        if (sscanf(tensor, "blk.%d.%n", &layer, &off) == 1 && off > 0)
            for (int k = 0; k < QS_LIN_OUTPUT; k++) {
                const char *kn = qs_linear_name(k);
                if (!strncmp(tensor + off, kn, strlen(kn)) && !strcmp(tensor + off + strlen(kn), ".weight")) kind = k;
            }
        if (kind >= 0)
            snprintf(dataset, sizeof dataset, "/activations/blk.%d.%s.weight/gram", layer, qs_linear_name(qs_linear_input_of(kind)));
        else snprintf(dataset, sizeof dataset, "/activations/%s/gram", tensor);
        found = qs_db_model_f32_array(db, model_fingerprint, dataset, cols * cols, gram, err);
        if (found == 0 && kind >= 0 && qs_linear_input_of(kind) != kind) { /* a fused layout keeps its own */
            snprintf(dataset, sizeof dataset, "/activations/%s/gram", tensor);
            found = qs_db_model_f32_array(db, model_fingerprint, dataset, cols * cols, gram, err);
        }
        if (found < 0) rc = found;
        else if (!found)
            rc = qs_errorf(err, QS_ERR_INPUT,
                           "%s: no Gram matrix of the inputs (%s, %lld x %lld) for the model with sha256 %.16s...: GPTQ "
                           "rounding needs a profile run that swept a -gptq format (qsense profile --sensitivity "
                           "--sens-formats ...,q4_k-gptq)", db_path, dataset, (long long)cols, (long long)cols, model_fingerprint);
    }
    if (rc) {
        free(*importance);
        *importance = NULL;
        if (gram) { free(*gram); *gram = NULL; }
    }
    qs_db_close(db);
    return rc;
}
