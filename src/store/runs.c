/* Reading runs (see runs.h). */
#include "store/runs.h"

#include <stdlib.h>
#include <string.h>

#include "store/sql.h"

static int64_t scalar(qs_db *db, const char *sql, int64_t a) {
    sqlite3_stmt *st = qs_store_prepare(db, sql);
    int64_t v = 0;
    if (!st) return 0;
    sqlite3_bind_int64(st, 1, a);
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

int qs_db_find_run(qs_db *db, int64_t id, qs_db_run_choice choice, qs_db_run *r, qs_error *err) {
    memset(r, 0, sizeof *r);
    const char *sql = id ? "SELECT r.id, r.model_id, r.settings, r.status, r.started, COALESCE(r.finished, '') FROM runs r WHERE r.id = ?"
                      : choice == QS_DB_RUN_NEWEST_FINISHED
                          ? "SELECT r.id, r.model_id, r.settings, r.status, r.started, COALESCE(r.finished, '') FROM runs r "
                            "ORDER BY (r.status = 'done') DESC, r.id DESC LIMIT 1"
                          : "SELECT r.id, r.model_id, r.settings, r.status, r.started, COALESCE(r.finished, '') FROM runs r "
                            "WHERE EXISTS (SELECT 1 FROM sensitivity s WHERE s.run_id = r.id) ORDER BY r.id DESC LIMIT 1";
    sqlite3_stmt *st = qs_store_prepare(db, sql);
    if (!st) return qs_store_fail(db, err, "reading runs");
    if (id) sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : qs_store_fail(db, err, "reading runs");
    }
    r->id = sqlite3_column_int64(st, 0);
    r->model_id = sqlite3_column_int64(st, 1);
    const unsigned char *settings = sqlite3_column_text(st, 2);
    r->settings = strdup(settings ? (const char *)settings : "");
    qs_store_text(st, 3, r->status, sizeof r->status);
    qs_store_text(st, 4, r->started, sizeof r->started);
    qs_store_text(st, 5, r->finished, sizeof r->finished);
    sqlite3_finalize(st);
    st = qs_store_prepare(db, "SELECT path, fingerprint, format, arch, n_params, n_layers, dim, hidden_dim, n_heads, n_kv_heads,"
                              " n_vocab FROM models WHERE id = ?");
    if (!st) { /* an error leaves nothing to free */
        free(r->settings);
        r->settings = NULL;
        return qs_store_fail(db, err, "reading models");
    }
    sqlite3_bind_int64(st, 1, r->model_id);
    if (sqlite3_step(st) == SQLITE_ROW) {
        qs_store_text(st, 0, r->model_path, sizeof r->model_path);
        qs_store_text(st, 1, r->fingerprint, sizeof r->fingerprint);
        qs_store_text(st, 2, r->model_format, sizeof r->model_format);
        qs_store_text(st, 3, r->arch, sizeof r->arch);
        r->n_params = sqlite3_column_int64(st, 4);
        int *ints[6] = {&r->n_layers, &r->dim, &r->hidden_dim, &r->n_heads, &r->n_kv_heads, &r->n_vocab};
        for (int i = 0; i < 6; i++) *ints[i] = sqlite3_column_int(st, 5 + i);
    }
    sqlite3_finalize(st);
    return 1;
}

void qs_db_run_free(qs_db_run *r) {
    free(r->settings);
    r->settings = NULL;
}

int qs_db_tensors(qs_db *db, int64_t model_id, qs_db_tensor_order order, qs_db_tensor **out, int *n, qs_error *err) {
    *out = NULL;
    *n = 0;
    int cap = (int)scalar(db, "SELECT count(*) FROM tensors WHERE model_id = ?", model_id);
    sqlite3_stmt *st = qs_store_prepare(db, order == QS_DB_BY_LAYER
                                                ? "SELECT id, name, kind, COALESCE(layer, -1), rows, cols, stored_type FROM tensors"
                                                  " WHERE model_id = ? ORDER BY COALESCE(layer, -1), id"
                                                : "SELECT id, name, kind, COALESCE(layer, -1), rows, cols, stored_type FROM tensors"
                                                  " WHERE model_id = ? ORDER BY id");
    if (!st) return qs_store_fail(db, err, "reading tensors");
    qs_db_tensor *t = calloc((size_t)cap + 1, sizeof *t);
    if (!t) {
        sqlite3_finalize(st);
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    }
    sqlite3_bind_int64(st, 1, model_id);
    int k = 0;
    while (k < cap && sqlite3_step(st) == SQLITE_ROW) {
        qs_db_tensor *x = &t[k++];
        x->id = sqlite3_column_int64(st, 0);
        qs_store_text(st, 1, x->name, sizeof x->name);
        qs_store_text(st, 2, x->kind, sizeof x->kind);
        x->layer = sqlite3_column_int(st, 3);
        x->rows = sqlite3_column_int64(st, 4);
        x->cols = sqlite3_column_int64(st, 5);
        qs_store_text(st, 6, x->stored, sizeof x->stored);
    }
    sqlite3_finalize(st);
    *out = t;
    *n = k;
    return 0;
}

int qs_db_domains(qs_db *db, int64_t run_id, qs_db_domain *out, int cap) {
    sqlite3_stmt *st = qs_store_prepare(db, "SELECT name, base_ppl, n_scored FROM eval_domains WHERE run_id = ? ORDER BY name");
    if (!st) return 0;
    sqlite3_bind_int64(st, 1, run_id);
    int n = 0;
    while (n < cap && sqlite3_step(st) == SQLITE_ROW) {
        qs_store_text(st, 0, out[n].name, sizeof out[n].name);
        out[n].base_ppl = sqlite3_column_double(st, 1);
        out[n++].n_scored = sqlite3_column_int(st, 2);
    }
    sqlite3_finalize(st);
    return n;
}

void qs_db_run_contents_of(qs_db *db, int64_t run, qs_db_run_contents *c) {
    c->has_sensitivity = scalar(db, "SELECT count(*) FROM sensitivity WHERE run_id = ? AND applicable", run) > 0 ||
                         scalar(db, "SELECT count(*) FROM sensitivity_estimates WHERE run_id = ?", run) > 0;
    c->has_whole_model = scalar(db, "SELECT count(*) FROM whole_model WHERE run_id = ?", run) > 0;
    c->has_activations = scalar(db, "SELECT count(*) FROM activation_stats WHERE run_id = ?", run) > 0;
    c->n_qerror_formats = (int)scalar(db, "SELECT count(DISTINCT format_id) FROM qerror WHERE run_id = ?", run);
    c->n_sensitivity_formats = (int)scalar(db, "SELECT count(DISTINCT format_id) FROM (SELECT format_id FROM sensitivity WHERE"
                                               " run_id = ?1 UNION ALL SELECT format_id FROM sensitivity_estimates WHERE run_id = ?1)", run);
    c->newest_plan = scalar(db, "SELECT id FROM plans WHERE run_id = ? ORDER BY id DESC LIMIT 1", run);
}
