/* Reading measurements (see measures.h). */
#include "store/measures.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "store/sql.h"

/* Every tensor's KL per format and domain in run ?1: the measured rows, and an estimate where
 * nothing was measured (sensitivity_estimates): what the report and the planner rank by. */
#define KL_ROWS                                                                                                              \
    "(SELECT s.tensor_id, s.format_id, s.domain, s.kl_mean, s.kl_se, 0 AS estimated FROM sensitivity s WHERE s.run_id = ?1" \
    " AND s.applicable UNION ALL SELECT e.tensor_id, e.format_id, e.domain, e.kl_mean, e.kl_se, 1 FROM"                   \
    " sensitivity_estimates e WHERE e.run_id = ?1 AND NOT EXISTS (SELECT 1 FROM sensitivity s2 WHERE s2.run_id = e.run_id" \
    " AND s2.tensor_id = e.tensor_id AND s2.format_id = e.format_id AND s2.domain = e.domain AND s2.applicable))"

int qs_db_formats_measured(qs_db *db, int64_t run, qs_db_measure m, int applicable_only, char (*names)[32], int cap) {
    const char *sql = m == QS_DB_SENSITIVITY
                          ? (applicable_only ? "SELECT DISTINCT f.name FROM " KL_ROWS " x JOIN formats f ON f.id = x.format_id"
                                             : "SELECT DISTINCT f.name FROM (SELECT format_id FROM sensitivity WHERE run_id = ?1"
                                               " UNION ALL SELECT format_id FROM sensitivity_estimates WHERE run_id = ?1) x"
                                               " JOIN formats f ON f.id = x.format_id")
                          : (applicable_only ? "SELECT DISTINCT f.name FROM qerror x JOIN formats f ON f.id = x.format_id"
                                               " WHERE x.run_id = ?1 AND x.applicable"
                                             : "SELECT DISTINCT f.name FROM qerror x JOIN formats f ON f.id = x.format_id"
                                               " WHERE x.run_id = ?1");
    sqlite3_stmt *st = qs_store_prepare(db, sql);
    if (!st) return 0;
    sqlite3_bind_int64(st, 1, run);
    int n = 0;
    while (n < cap && sqlite3_step(st) == SQLITE_ROW) qs_store_text(st, 0, names[n++], sizeof names[0]);
    sqlite3_finalize(st);
    return n;
}

void qs_db_cost_of(qs_db *db, int64_t run, int64_t tensor, const char *format, qs_db_cost *c) {
    c->kl = c->kl_se = c->out_err = c->sqnr = c->bpw = NAN;
    c->has_qerror = 0;
    sqlite3_stmt *st = qs_store_prepare(db, "SELECT avg(s.kl_mean), sqrt(sum(s.kl_se * s.kl_se)) / count(*) FROM " KL_ROWS
                                            " s JOIN formats f ON f.id = s.format_id WHERE s.tensor_id = ?2 AND f.name = ?3");
    if (st) {
        sqlite3_bind_int64(st, 1, run);
        sqlite3_bind_int64(st, 2, tensor);
        sqlite3_bind_text(st, 3, format, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
            c->kl = sqlite3_column_double(st, 0);
            c->kl_se = sqlite3_column_double(st, 1);
        }
        sqlite3_finalize(st);
    }
    st = qs_store_prepare(db, "SELECT q.output_error, q.sqnr_db, q.bpw FROM qerror q JOIN formats f ON f.id = q.format_id"
                              " WHERE q.run_id = ? AND q.tensor_id = ? AND f.name = ? AND q.applicable");
    if (st) {
        sqlite3_bind_int64(st, 1, run);
        sqlite3_bind_int64(st, 2, tensor);
        sqlite3_bind_text(st, 3, format, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            c->has_qerror = 1;
            c->out_err = qs_store_real(st, 0);
            c->sqnr = sqlite3_column_type(st, 1) == SQLITE_NULL ? INFINITY : sqlite3_column_double(st, 1);
            c->bpw = sqlite3_column_double(st, 2);
        }
        sqlite3_finalize(st);
    }
}

static void fill_kl_row(sqlite3_stmt *st, void *row) {
    qs_db_kl_row *r = row;
    qs_store_text(st, 0, r->format, sizeof r->format);
    qs_store_text(st, 1, r->domain, sizeof r->domain);
    r->kl = sqlite3_column_double(st, 2);
    r->estimated = sqlite3_column_int(st, 3);
}

int qs_db_tensor_kls(qs_db *db, int64_t run, int64_t tensor, qs_db_kl_row **out, int *n, qs_error *err) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = qs_store_prepare(db, "SELECT f.name, s.domain, s.kl_mean, s.estimated FROM " KL_ROWS " s JOIN formats f"
                                            " ON f.id = s.format_id WHERE s.tensor_id = ?2 ORDER BY f.name");
    if (!st) return qs_store_fail(db, err, "reading sensitivity");
    sqlite3_bind_int64(st, 1, run);
    sqlite3_bind_int64(st, 2, tensor);
    return qs_store_collect(st, (void **)out, n, sizeof **out, fill_kl_row, err);
}

int qs_db_site_kls(qs_db *db, int64_t run, const char *site, const char *format, qs_db_kl_row **out, int *n, qs_error *err) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = qs_store_prepare(db, "SELECT format, domain, kl_mean, 0 FROM site_sensitivity WHERE run_id = ?1 AND site = ?2"
                                            " AND format = ?3 AND applicable ORDER BY domain");
    if (!st) return qs_store_fail(db, err, "reading site sensitivity");
    sqlite3_bind_int64(st, 1, run);
    sqlite3_bind_text(st, 2, site, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, format, -1, SQLITE_STATIC);
    return qs_store_collect(st, (void **)out, n, sizeof **out, fill_kl_row, err);
}

int qs_db_whole_over_sum(qs_db *db, int64_t run, const char *domain, double *out, int cap) {
    /* the measured rows summed first (in the order they always were), then the estimates */
    sqlite3_stmt *st = qs_store_prepare(db, "SELECT w.kl_mean / (COALESCE((SELECT sum(s.kl_mean) FROM sensitivity s WHERE s.run_id ="
                                            " ?1 AND s.format_id = w.format_id AND s.domain = w.domain AND s.applicable), 0) +"
                                            " COALESCE((SELECT sum(e.kl_mean) FROM " KL_ROWS " e WHERE e.estimated AND e.format_id ="
                                            " w.format_id AND e.domain = w.domain), 0)) FROM whole_model w WHERE w.run_id = ?1 AND"
                                            " w.domain = ?2 AND w.n_quantized > 0 AND w.kl_mean > 0 AND w.kl_mean < 1");
    if (!st) return 0;
    sqlite3_bind_int64(st, 1, run);
    sqlite3_bind_text(st, 2, domain, -1, SQLITE_STATIC);
    int n = 0;
    while (n < cap && sqlite3_step(st) == SQLITE_ROW)
        if (sqlite3_column_type(st, 0) != SQLITE_NULL && sqlite3_column_double(st, 0) > 0) out[n++] = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* the statistics row bound to (run, a, b): a tensor id, or a layer and a kind */
static sqlite3_stmt *stats_row(qs_db *db, const char *sql, int64_t run, int64_t a, const char *kind) {
    sqlite3_stmt *st = qs_store_prepare(db, sql);
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, run);
    sqlite3_bind_int64(st, 2, a);
    if (kind) sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) return st;
    sqlite3_finalize(st);
    return NULL;
}

void qs_db_weight_stats_of(qs_db *db, int64_t run, int64_t tensor, qs_db_weight_stats *w) {
    sqlite3_stmt *st = stats_row(db, "SELECT hist_min, hist_max, absmax, kurtosis, std, mean FROM weight_stats WHERE run_id = ?"
                                     " AND tensor_id = ?", run, tensor, NULL);
    double *v[6] = {&w->hist_min, &w->hist_max, &w->absmax, &w->kurtosis, &w->std, &w->mean};
    for (int k = 0; k < 6; k++) *v[k] = st ? qs_store_real(st, k) : NAN;
    w->found = st != NULL;
    if (st) sqlite3_finalize(st);
}

static void act_from(sqlite3_stmt *st, qs_db_act_stats *a) {
    double *v[6] = {&a->hist_min, &a->hist_max, &a->absmax, &a->dynamic_range_db, &a->n_tokens, &a->n_outlier_channels};
    for (int k = 0; k < 6; k++) *v[k] = st ? qs_store_real(st, k) : NAN;
    a->found = st != NULL;
    if (st) sqlite3_finalize(st);
}

void qs_db_act_stats_of(qs_db *db, int64_t run, int64_t tensor, qs_db_act_stats *a) {
    act_from(stats_row(db, "SELECT hist_min, hist_max, absmax, dynamic_range_db, n_tokens, n_outlier_channels FROM"
                           " activation_stats WHERE run_id = ? AND tensor_id = ?", run, tensor, NULL), a);
}

void qs_db_act_stats_at(qs_db *db, int64_t run, int layer, const char *kind, qs_db_act_stats *a) {
    act_from(stats_row(db, "SELECT a.hist_min, a.hist_max, a.absmax, a.dynamic_range_db, a.n_tokens, a.n_outlier_channels FROM"
                           " activation_stats a JOIN tensors t ON t.id = a.tensor_id WHERE a.run_id = ? AND t.layer = ? AND"
                           " t.kind = ?", run, layer, kind), a);
}

int qs_db_kind_costs(qs_db *db, int64_t run, qs_db_measure m, const char *kind, qs_db_kind_cost *out, int cap) {
    sqlite3_stmt *st = qs_store_prepare(
        db, m == QS_DB_SENSITIVITY
                ? "SELECT f.name, avg(s.kl_mean), min(t.rows), min(t.cols) FROM " KL_ROWS " s JOIN tensors t ON"
                  " t.id = s.tensor_id JOIN formats f ON f.id = s.format_id WHERE t.kind = ?2 GROUP BY f.name"
                : "SELECT f.name, avg(q.output_error), avg(q.bpw), 0 FROM qerror q JOIN tensors t ON t.id = q.tensor_id"
                  " JOIN formats f ON f.id = q.format_id WHERE q.run_id = ? AND t.kind = ? AND q.applicable AND"
                  " q.output_error IS NOT NULL GROUP BY f.name");
    if (!st) return 0;
    sqlite3_bind_int64(st, 1, run);
    sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
    int n = 0;
    while (n < cap && sqlite3_step(st) == SQLITE_ROW) {
        qs_db_kind_cost *q = &out[n++];
        qs_store_text(st, 0, q->format, sizeof q->format);
        q->cost = sqlite3_column_double(st, 1);
        q->bpw = m == QS_DB_SENSITIVITY ? NAN : sqlite3_column_double(st, 2);
        q->rows = m == QS_DB_SENSITIVITY ? sqlite3_column_int64(st, 2) : 0;
        q->cols = sqlite3_column_int64(st, 3);
    }
    sqlite3_finalize(st);
    return n;
}

int qs_db_int4_granularities(qs_db *db, int64_t run, char (*names)[32], int cap) {
    sqlite3_stmt *st = qs_store_prepare(db, "SELECT f.name, avg(q.bpw) FROM qerror q JOIN formats f ON f.id = q.format_id WHERE"
                                            " q.run_id = ? AND f.family = 'int' AND f.bits = 4 AND NOT f.clip_search AND"
                                            " q.applicable GROUP BY f.name ORDER BY avg(q.bpw), f.symmetric DESC");
    if (!st) return 0;
    sqlite3_bind_int64(st, 1, run);
    int n = 0;
    while (n < cap && sqlite3_step(st) == SQLITE_ROW) qs_store_text(st, 0, names[n++], sizeof names[0]);
    sqlite3_finalize(st);
    return n;
}

double qs_db_mean_output_error(qs_db *db, int64_t run, const char *format, const char *kind) {
    sqlite3_stmt *st = qs_store_prepare(db, "SELECT avg(q.output_error) FROM qerror q JOIN formats f ON f.id = q.format_id JOIN"
                                            " tensors t ON t.id = q.tensor_id WHERE q.run_id = ? AND f.name = ? AND t.kind = ?"
                                            " AND q.applicable");
    if (!st) return NAN;
    sqlite3_bind_int64(st, 1, run);
    sqlite3_bind_text(st, 2, format, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
    double v = sqlite3_step(st) == SQLITE_ROW ? qs_store_real(st, 0) : NAN;
    sqlite3_finalize(st);
    return v;
}

static void fill_whole_row(sqlite3_stmt *st, void *row) {
    qs_db_whole_row *r = row;
    qs_store_text(st, 0, r->format, sizeof r->format);
    qs_store_text(st, 1, r->domain, sizeof r->domain);
    double *v[7] = {&r->bpw, &r->n_quantized, &r->kl_mean, &r->kl_se, &r->ppl_delta, &r->ppl_delta_se, &r->top1_agree};
    for (int k = 0; k < 7; k++) *v[k] = sqlite3_column_double(st, 2 + k);
}

int qs_db_whole_model(qs_db *db, int64_t run, qs_db_whole_row **out, int *n, qs_error *err) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = qs_store_prepare(db, "SELECT f.name, w.domain, w.bpw, w.n_quantized, w.kl_mean, w.kl_se, w.ppl_delta,"
                                            " w.ppl_delta_se, w.top1_agree FROM whole_model w JOIN formats f ON f.id = w.format_id"
                                            " WHERE w.run_id = ? AND w.n_quantized > 0 ORDER BY w.bpw DESC, f.name, w.domain");
    if (!st) return qs_store_fail(db, err, "reading whole_model");
    sqlite3_bind_int64(st, 1, run);
    return qs_store_collect(st, (void **)out, n, sizeof **out, fill_whole_row, err);
}

int qs_db_whole_by_format(qs_db *db, int64_t run, qs_db_format_point *out, int cap) {
    sqlite3_stmt *st = qs_store_prepare(db, "SELECT f.name, avg(w.bpw), avg(w.kl_mean) FROM whole_model w JOIN formats f ON"
                                            " f.id = w.format_id WHERE w.run_id = ? AND w.n_quantized > 0 GROUP BY f.name");
    if (!st) return 0;
    sqlite3_bind_int64(st, 1, run);
    int n = 0;
    while (n < cap && sqlite3_step(st) == SQLITE_ROW) {
        qs_store_text(st, 0, out[n].format, sizeof out[n].format);
        out[n].bpw = sqlite3_column_double(st, 1);
        out[n++].kl = sqlite3_column_double(st, 2);
    }
    sqlite3_finalize(st);
    return n;
}

int qs_db_top_output_errors(qs_db *db, int64_t run, qs_db_top_error *out, int cap) {
    sqlite3_stmt *st = qs_store_prepare(
        db, "WITH ref AS (SELECT f.id, f.name FROM formats f JOIN qerror q ON q.format_id = f.id WHERE q.run_id = ?1 "
            "  AND q.applicable = 1 ORDER BY (f.name = 'int4-g128-asym') DESC, f.bits, f.name LIMIT 1) "
            "SELECT t.name, ref.name, q.output_error, q.sqnr_db FROM qerror q JOIN tensors t ON t.id = q.tensor_id "
            "JOIN ref ON ref.id = q.format_id WHERE q.run_id = ?1 AND q.applicable = 1 "
            "ORDER BY COALESCE(q.output_error, -1) DESC, q.sqnr_db ASC LIMIT ?2");
    if (!st) return 0;
    sqlite3_bind_int64(st, 1, run);
    sqlite3_bind_int(st, 2, cap);
    int n = 0;
    while (n < cap && sqlite3_step(st) == SQLITE_ROW) {
        qs_store_text(st, 0, out[n].tensor, sizeof out[n].tensor);
        qs_store_text(st, 1, out[n].format, sizeof out[n].format);
        out[n].out_err = sqlite3_column_double(st, 2);
        out[n++].sqnr = sqlite3_column_double(st, 3);
    }
    sqlite3_finalize(st);
    return n;
}

static void fill_sweep_summary(sqlite3_stmt *st, void *row) {
    qs_db_sweep_summary *r = row;
    qs_store_text(st, 0, r->format, sizeof r->format);
    qs_store_text(st, 1, r->domain, sizeof r->domain);
    r->mean_kl = sqlite3_column_double(st, 2);
    r->worst_kl = sqlite3_column_double(st, 3);
    r->whole_kl = sqlite3_column_double(st, 4);
    r->whole_kl_se = sqlite3_column_double(st, 5);
}

int qs_db_sweep_summary_of(qs_db *db, int64_t run, qs_db_sweep_summary **out, int *n, qs_error *err) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = qs_store_prepare(db, "SELECT f.name, s.domain, avg(s.kl_mean), max(s.kl_mean), w.kl_mean, w.kl_se FROM "
                                            KL_ROWS " s JOIN formats f ON f.id = s.format_id LEFT JOIN whole_model w ON"
                                            " w.run_id = ?1 AND w.format_id = s.format_id AND w.domain = s.domain"
                                            " GROUP BY f.name, s.domain ORDER BY avg(s.kl_mean), s.domain");
    if (!st) return qs_store_fail(db, err, "reading sensitivity");
    sqlite3_bind_int64(st, 1, run);
    return qs_store_collect(st, (void **)out, n, sizeof **out, fill_sweep_summary, err);
}

static void fill_site_summary(sqlite3_stmt *st, void *row) {
    qs_db_site_summary *r = row;
    qs_store_text(st, 0, r->format, sizeof r->format);
    qs_store_text(st, 1, r->kind, sizeof r->kind);
    r->mean_kl = qs_store_real(st, 2);
    r->worst_kl = qs_store_real(st, 3);
    qs_store_text(st, 4, r->worst_site, sizeof r->worst_site);
    r->n_sites = sqlite3_column_int(st, 5);
}

int qs_db_site_summary_of(qs_db *db, int64_t run, qs_db_site_summary **out, int *n, qs_error *err) {
    *out = NULL;
    *n = 0;
    /* per site the mean over domains, then per (format, kind) the mean and the worst site (SQLite
     * takes the bare column `site` from the row that gives max()) */
    sqlite3_stmt *st = qs_store_prepare(db, "SELECT format, kind, avg(kl), max(kl), site, count(*) FROM (SELECT format, kind, site,"
                                            " avg(kl_mean) AS kl FROM site_sensitivity WHERE run_id = ?1 AND applicable"
                                            " GROUP BY format, kind, site) GROUP BY format, kind ORDER BY kind, avg(kl)");
    if (!st) return qs_store_fail(db, err, "reading site sensitivity");
    sqlite3_bind_int64(st, 1, run);
    return qs_store_collect(st, (void **)out, n, sizeof **out, fill_site_summary, err);
}

static void fill_site_cell(sqlite3_stmt *st, void *row) {
    qs_db_site_cell *r = row;
    qs_store_text(st, 0, r->format, sizeof r->format);
    qs_store_text(st, 1, r->kind, sizeof r->kind);
    r->layer = sqlite3_column_int(st, 2);
    r->kl = qs_store_real(st, 3);
}

int qs_db_site_cells(qs_db *db, int64_t run, qs_db_site_cell **out, int *n, qs_error *err) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = qs_store_prepare(db, "SELECT format, kind, layer, CASE WHEN min(applicable) THEN avg(kl_mean) END FROM"
                                            " site_sensitivity WHERE run_id = ?1 GROUP BY site, format ORDER BY CASE kind WHEN 'attn_in' THEN 0 WHEN"
                                            " 'attn_out' THEN 1 WHEN 'ffn_in' THEN 2 WHEN 'ffn_down_in' THEN 3 WHEN 'kv_cache' THEN 4 ELSE 5"
                                            " END, format, layer");
    if (!st) return qs_store_fail(db, err, "reading site sensitivity");
    sqlite3_bind_int64(st, 1, run);
    return qs_store_collect(st, (void **)out, n, sizeof **out, fill_site_cell, err);
}

double qs_db_output_error(qs_db *db, int64_t run, int64_t tensor, int64_t format_id) {
    sqlite3_stmt *st = qs_store_prepare(db, "SELECT output_error FROM qerror WHERE run_id = ? AND tensor_id = ? AND format_id = ?"
                                            " AND applicable");
    if (!st) return NAN;
    sqlite3_bind_int64(st, 1, run);
    sqlite3_bind_int64(st, 2, tensor);
    sqlite3_bind_int64(st, 3, format_id);
    double v = sqlite3_step(st) == SQLITE_ROW ? qs_store_real(st, 0) : NAN;
    sqlite3_finalize(st);
    return v;
}

int qs_db_measured_kl(qs_db *db, int64_t run, int64_t tensor, int64_t format_id, const char *domain, double *kl, double *kl_se) {
    sqlite3_stmt *st = qs_store_prepare(db, "SELECT kl_mean, kl_se FROM sensitivity WHERE run_id = ? AND tensor_id = ? AND"
                                            " format_id = ? AND domain = ? AND applicable");
    if (!st) return 0;
    sqlite3_bind_int64(st, 1, run);
    sqlite3_bind_int64(st, 2, tensor);
    sqlite3_bind_int64(st, 3, format_id);
    sqlite3_bind_text(st, 4, domain, -1, SQLITE_STATIC);
    int found = sqlite3_step(st) == SQLITE_ROW;
    if (found) {
        *kl = qs_store_real(st, 0);
        *kl_se = qs_store_real(st, 1);
    }
    sqlite3_finalize(st);
    return found;
}

int qs_db_estimated_kl(qs_db *db, int64_t run, int64_t tensor, int64_t format_id, const char *domain, const char *method,
                       double *kl) {
    sqlite3_stmt *st = qs_store_prepare(db, "SELECT kl_mean FROM sensitivity_estimates WHERE run_id = ? AND tensor_id = ? AND"
                                            " format_id = ? AND domain = ? AND method = ?");
    if (!st) return 0;
    sqlite3_bind_int64(st, 1, run);
    sqlite3_bind_int64(st, 2, tensor);
    sqlite3_bind_int64(st, 3, format_id);
    sqlite3_bind_text(st, 4, domain, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, method, -1, SQLITE_STATIC);
    int found = sqlite3_step(st) == SQLITE_ROW;
    if (found) *kl = qs_store_real(st, 0);
    sqlite3_finalize(st);
    return found;
}

int qs_db_estimates_of(qs_db *db, int64_t run, qs_db_estimates *out) {
    memset(out, 0, sizeof *out);
    out->spearman = out->median_rel_error = out->p90_rel_error = NAN;
    sqlite3_stmt *st = qs_store_prepare(db, "SELECT method, count(*) FROM sensitivity_estimates WHERE run_id = ? GROUP BY method"
                                            " ORDER BY count(*) DESC LIMIT 1");
    if (!st) return 0;
    sqlite3_bind_int64(st, 1, run);
    if (sqlite3_step(st) == SQLITE_ROW) {
        qs_store_text(st, 0, out->method, sizeof out->method);
        out->n_estimated = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    if (!out->n_estimated) return 0;
    st = qs_store_prepare(db, "SELECT n_jobs, spearman, median_rel_error, p90_rel_error FROM estimate_validation WHERE run_id = ?"
                              " AND method = ?");
    if (st) {
        sqlite3_bind_int64(st, 1, run);
        sqlite3_bind_text(st, 2, out->method, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            out->n_validated = sqlite3_column_int(st, 0);
            out->spearman = qs_store_real(st, 1);
            out->median_rel_error = qs_store_real(st, 2);
            out->p90_rel_error = qs_store_real(st, 3);
        }
        sqlite3_finalize(st);
    }
    st = qs_store_prepare(db, "SELECT count(*) FROM sensitivity WHERE run_id = ? AND applicable");
    if (st) {
        sqlite3_bind_int64(st, 1, run);
        if (sqlite3_step(st) == SQLITE_ROW) out->n_measured = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    return 1;
}

int qs_db_estimate_pairs(qs_db *db, int64_t run, const char *method, double *estimate, double *measured, int cap) {
    sqlite3_stmt *st = qs_store_prepare(db, "SELECT e.kl_mean, s.kl_mean FROM sensitivity_estimates e JOIN sensitivity s ON"
                                            " s.run_id = e.run_id AND s.tensor_id = e.tensor_id AND s.format_id = e.format_id AND"
                                            " s.domain = e.domain AND s.applicable WHERE e.run_id = ? AND e.method = ?"
                                            " ORDER BY s.kl_mean");
    if (!st) return 0;
    sqlite3_bind_int64(st, 1, run);
    sqlite3_bind_text(st, 2, method, -1, SQLITE_STATIC);
    int n = 0;
    while (n < cap && sqlite3_step(st) == SQLITE_ROW) {
        estimate[n] = qs_store_real(st, 0);
        measured[n++] = qs_store_real(st, 1);
    }
    sqlite3_finalize(st);
    return n;
}
