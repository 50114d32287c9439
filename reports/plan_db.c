/* Plans in the results database: `qsense plan` records each plan it writes (identified by the
 * sha256 of the plan file), its predicted cost per domain and the size/cost Pareto front, so the
 * report can draw them and `qsense check --plan` can put measured figures beside the predicted
 * ones (tables plans, plan_domains, pareto in docs/schema.md). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_file.h"
#include "core/qs_sha256.h"
#include "engine/engine.h"
#include "plan.h"
#include "quant/format.h"
#include "core/qs_dtype.h"
#include "store/db.h"

/* sqlite3_step, keeping the first failure's message (finalize clears it) */
static int stepped(sqlite3 *h, sqlite3_stmt *st, char *why, size_t cap) {
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW && !why[0]) snprintf(why, cap, "%s", sqlite3_errmsg(h));
    return rc;
}

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
    sqlite3 *h = qs_db_handle(db);
    char why[300] = "";
    if ((rc = qs_db_begin(db, err))) goto out;
    sqlite3_stmt *st;
    /* the same plan written again (same bytes) keeps its id and any measured figures */
    sqlite3_prepare_v2(h, "INSERT INTO plans (run_id, sha256, path, target, domain_weights, budget_bytes,"
                          " tensor_bytes, bpw, predicted_kl, plan_json) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (sha256) DO UPDATE"
                          " SET path = excluded.path, created = datetime('now')", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, p->run_id);
    sqlite3_bind_text(st, 2, sha, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, plan_path, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, p->target, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, p->weights_spec, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 6, p->budget_bytes);
    sqlite3_bind_double(st, 7, p->total_bytes);
    sqlite3_bind_double(st, 8, p->total_params > 0 ? 8 * p->total_bytes / p->total_params : 0);
    sqlite3_bind_double(st, 9, p->predicted_kl);
    sqlite3_bind_text(st, 10, text, (int)n, SQLITE_STATIC);
    int ok = stepped(h, st, why, sizeof why) == SQLITE_DONE;
    sqlite3_finalize(st);
    *plan_id = 0;
    sqlite3_prepare_v2(h, "SELECT id FROM plans WHERE sha256 = ?", -1, &st, NULL);
    sqlite3_bind_text(st, 1, sha, -1, SQLITE_STATIC);
    if (ok && stepped(h, st, why, sizeof why) == SQLITE_ROW) *plan_id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    ok = ok && *plan_id > 0;
    sqlite3_prepare_v2(h, "INSERT INTO plan_domains (plan_id, domain, predicted_kl) VALUES (?,?,?) ON CONFLICT (plan_id, domain)"
                          " DO UPDATE SET predicted_kl = excluded.predicted_kl", -1, &st, NULL);
    for (int d = 0; d < p->n_domains && ok; d++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, *plan_id);
        sqlite3_bind_text(st, 2, p->domains[d], -1, SQLITE_STATIC);
        sqlite3_bind_double(st, 3, p->predicted_kl_domain[d]);
        ok = stepped(h, st, why, sizeof why) == SQLITE_DONE;
    }
    sqlite3_finalize(st);
    /* the front depends on the run, the target and the weights, not on the budget */
    sqlite3_prepare_v2(h, "DELETE FROM pareto WHERE run_id = ? AND target = ? AND domain_weights = ?", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, p->run_id);
    sqlite3_bind_text(st, 2, p->target, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, p->weights_spec, -1, SQLITE_STATIC);
    ok = ok && stepped(h, st, why, sizeof why) == SQLITE_DONE;
    sqlite3_finalize(st);
    for (int i = 0; i < p->n_curve && ok; i++) {
        qs_db_value row[] = {{"run_id", 2, (double)p->run_id, NULL},
                             {"target", 1, 0, p->target},
                             {"domain_weights", 1, 0, p->weights_spec},
                             {"point", 2, i, NULL},
                             {"tensor_bytes", 0, p->curve[i].bytes, NULL},
                             {"bpw", 0, p->total_params > 0 ? 8 * p->curve[i].bytes / p->total_params : 0, NULL},
                             {"predicted_kl", 0, p->curve[i].kl, NULL}};
        ok = qs_db_put_row(db, "pareto", row, 7, err) == 0;
    }
    if (ok) {
        rc = qs_db_commit(db, err);
    } else {
        if (why[0]) qs_errorf(err, QS_ERR_INPUT, "%s: cannot record the plan: %s", db_path, why);
        qs_db_rollback(db);
        rc = err->code ? err->code : QS_ERR_INPUT;
    }
out:
    qs_db_close(db);
    free(text);
    return rc;
}

int qs_plan_record_measured(qs_db *db, const char *plan_sha256, int64_t check_id, const char *domain,
                            const qs_plan_measured *m, qs_error *err) {
    sqlite3 *h = qs_db_handle(db);
    sqlite3_stmt *st;
    int64_t plan_id = 0;
    if (sqlite3_prepare_v2(h, "SELECT id FROM plans WHERE sha256 = ?", -1, &st, NULL) != SQLITE_OK)
        return qs_errorf(err, QS_ERR_INPUT, "%s: reading plans: %s", qs_db_path(db), sqlite3_errmsg(h));
    sqlite3_bind_text(st, 1, plan_sha256, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) plan_id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (!plan_id) return 0;
    sqlite3_prepare_v2(h, "INSERT INTO plan_domains (plan_id, domain, check_id, measured_kl, measured_kl_p99,"
                          " measured_ppl_ratio, measured_top1) VALUES (?,?,?,?,?,?,?) ON CONFLICT (plan_id, domain) DO UPDATE SET"
                          " check_id = excluded.check_id, measured_kl = excluded.measured_kl,"
                          " measured_kl_p99 = excluded.measured_kl_p99, measured_ppl_ratio = excluded.measured_ppl_ratio,"
                          " measured_top1 = excluded.measured_top1", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, plan_id);
    sqlite3_bind_text(st, 2, domain, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, check_id);
    sqlite3_bind_double(st, 4, m->kl_mean);
    sqlite3_bind_double(st, 5, m->kl_p99);
    sqlite3_bind_double(st, 6, m->ppl_ratio);
    sqlite3_bind_double(st, 7, m->top1);
    int ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    return ok ? 1 : qs_errorf(err, QS_ERR_INPUT, "%s: recording measured plan figures: %s", qs_db_path(db), sqlite3_errmsg(h));
}

const char *qs_plan_stored_type(const char *fmt) {
    const qs_format *f = qs_format_find(fmt, NULL);
    return f && (f->family == QS_FAM_GGML || f->family == QS_FAM_FLOAT16) ? qs_dtype_name(f->ggml_type) : fmt;
}

int qs_plan_needs_importance(const qs_plan *p) {
    for (int i = 0; i < p->n_tensors; i++) {
        const qs_format *f = qs_format_find(p->tensors[i].format, NULL);
        if (f && qs_format_needs_calib(f)) return 1;
    }
    return 0;
}

/* The f32 array called dataset with n values from the newest run of the model in db: 1 and
 * *out malloc'd, 0 when there is none, or a negative error. */
static int load_f32_array(qs_db *db, const char *model_fingerprint, const char *dataset, int64_t n, float **out, qs_error *err) {
    *out = NULL;
    sqlite3_stmt *st;
    sqlite3_prepare_v2(qs_db_handle(db), "SELECT a.n, a.data FROM arrays a JOIN runs r ON r.id = a.run_id JOIN models m ON"
                                         " m.id = r.model_id WHERE m.fingerprint = ? AND a.dataset = ? AND a.dtype = 'f32'"
                                         " ORDER BY r.id DESC LIMIT 1", -1, &st, NULL);
    sqlite3_bind_text(st, 1, model_fingerprint, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, dataset, -1, SQLITE_STATIC);
    int rc = 0;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) == n && sqlite3_column_bytes(st, 1) == n * 4) {
        *out = malloc(sizeof(float) * (size_t)n);
        if (*out) memcpy(*out, sqlite3_column_blob(st, 1), sizeof(float) * (size_t)n);
        rc = *out ? 1 : qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    }
    sqlite3_finalize(st);
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
    int found = load_f32_array(db, model_fingerprint, dataset, cols, importance, err);
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
        found = load_f32_array(db, model_fingerprint, dataset, cols * cols, gram, err);
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
