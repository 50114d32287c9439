/* Plans in the database (see plans.h). */
#include "store/plans.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/profile_rows.h"
#include "store/sql.h"

/* sqlite3_step, keeping the first failure's message (finalize clears it) */
static int stepped(qs_db *db, sqlite3_stmt *st, char *why, size_t cap) {
    int rc = st ? sqlite3_step(st) : SQLITE_ERROR;
    if (rc != SQLITE_DONE && rc != SQLITE_ROW && !why[0]) snprintf(why, cap, "%s", sqlite3_errmsg(db->h));
    return rc;
}

int qs_db_put_plan(qs_db *db, const qs_db_plan_record *r, int64_t *plan_id, qs_error *err) {
    *plan_id = 0;
    int rc = qs_db_begin(db, err);
    if (rc) return rc;
    char why[300] = "";
    sqlite3_stmt *st = qs_store_prepare(db, "INSERT INTO plans (run_id, sha256, path, target, domain_weights, budget_bytes,"
                                            " tensor_bytes, bpw, predicted_kl, plan_json) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT"
                                            " (sha256) DO UPDATE SET path = excluded.path, created = datetime('now')");
    if (st) {
        sqlite3_bind_int64(st, 1, r->run_id);
        sqlite3_bind_text(st, 2, r->sha256, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, r->path, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, r->target, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, r->domain_weights, -1, SQLITE_STATIC);
        sqlite3_bind_double(st, 6, r->budget_bytes);
        sqlite3_bind_double(st, 7, r->tensor_bytes);
        sqlite3_bind_double(st, 8, r->bpw);
        sqlite3_bind_double(st, 9, r->predicted_kl);
        sqlite3_bind_text(st, 10, r->plan_json, (int)r->plan_json_len, SQLITE_STATIC);
    }
    int ok = stepped(db, st, why, sizeof why) == SQLITE_DONE;
    sqlite3_finalize(st);
    st = qs_store_prepare(db, "SELECT id FROM plans WHERE sha256 = ?");
    if (st) sqlite3_bind_text(st, 1, r->sha256, -1, SQLITE_STATIC);
    if (ok && stepped(db, st, why, sizeof why) == SQLITE_ROW) *plan_id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    ok = ok && *plan_id > 0;
    st = qs_store_prepare(db, "INSERT INTO plan_domains (plan_id, domain, predicted_kl) VALUES (?,?,?) ON CONFLICT (plan_id,"
                              " domain) DO UPDATE SET predicted_kl = excluded.predicted_kl");
    for (int d = 0; d < r->n_domains && ok; d++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, *plan_id);
        sqlite3_bind_text(st, 2, r->domains[d], -1, SQLITE_STATIC);
        sqlite3_bind_double(st, 3, r->predicted_kl_domain[d]);
        ok = stepped(db, st, why, sizeof why) == SQLITE_DONE;
    }
    sqlite3_finalize(st);
    /* the front depends on the run, the target and the weights, not on the budget */
    st = qs_store_prepare(db, "DELETE FROM pareto WHERE run_id = ? AND target = ? AND domain_weights = ?");
    if (st) {
        sqlite3_bind_int64(st, 1, r->run_id);
        sqlite3_bind_text(st, 2, r->target, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, r->domain_weights, -1, SQLITE_STATIC);
    }
    ok = ok && stepped(db, st, why, sizeof why) == SQLITE_DONE;
    sqlite3_finalize(st);
    for (int i = 0; i < r->n_points && ok; i++) {
        qs_db_value row[] = {{"run_id", 2, (double)r->run_id, NULL},
                             {"target", 1, 0, r->target},
                             {"domain_weights", 1, 0, r->domain_weights},
                             {"point", 2, i, NULL},
                             {"tensor_bytes", 0, r->points[i].tensor_bytes, NULL},
                             {"bpw", 0, r->points[i].bpw, NULL},
                             {"predicted_kl", 0, r->points[i].predicted_kl, NULL}};
        ok = qs_db_put_row(db, "pareto", row, 7, err) == 0;
    }
    if (ok) return qs_db_commit(db, err);
    if (why[0]) qs_errorf(err, QS_ERR_INPUT, "%s: cannot record the plan: %s", db->path, why);
    qs_db_rollback(db);
    return err && err->code ? err->code : QS_ERR_INPUT;
}

int qs_db_put_plan_measured(qs_db *db, const char *plan_sha256, int64_t check_id, const char *domain, double kl_mean,
                            double kl_p99, double ppl_ratio, double top1, qs_error *err) {
    int64_t plan_id = 0;
    sqlite3_stmt *st = qs_store_prepare(db, "SELECT id FROM plans WHERE sha256 = ?");
    if (!st) return qs_store_fail(db, err, "reading plans");
    sqlite3_bind_text(st, 1, plan_sha256, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) plan_id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (!plan_id) return 0;
    st = qs_store_prepare(db, "INSERT INTO plan_domains (plan_id, domain, check_id, measured_kl, measured_kl_p99,"
                              " measured_ppl_ratio, measured_top1) VALUES (?,?,?,?,?,?,?) ON CONFLICT (plan_id, domain) DO UPDATE"
                              " SET check_id = excluded.check_id, measured_kl = excluded.measured_kl,"
                              " measured_kl_p99 = excluded.measured_kl_p99, measured_ppl_ratio = excluded.measured_ppl_ratio,"
                              " measured_top1 = excluded.measured_top1");
    if (!st) return qs_store_fail(db, err, "recording measured plan figures");
    sqlite3_bind_int64(st, 1, plan_id);
    sqlite3_bind_text(st, 2, domain, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, check_id);
    sqlite3_bind_double(st, 4, kl_mean);
    sqlite3_bind_double(st, 5, kl_p99);
    sqlite3_bind_double(st, 6, ppl_ratio);
    sqlite3_bind_double(st, 7, top1);
    int ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    return ok ? 1 : qs_store_fail(db, err, "recording measured plan figures");
}

int qs_db_get_plan(qs_db *db, int64_t plan_id, qs_db_plan *p) {
    memset(p, 0, sizeof *p);
    sqlite3_stmt *st = qs_store_prepare(db, "SELECT id, COALESCE(path, ''), created, target, COALESCE(domain_weights, ''),"
                                            " budget_bytes, tensor_bytes, bpw, predicted_kl, plan_json, (SELECT avg(measured_kl)"
                                            " FROM plan_domains d WHERE d.plan_id = p.id AND measured_kl IS NOT NULL) FROM"
                                            " plans p WHERE id = ?");
    if (!st) return 0;
    sqlite3_bind_int64(st, 1, plan_id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return 0;
    }
    p->id = sqlite3_column_int64(st, 0);
    qs_store_text(st, 1, p->path, sizeof p->path);
    qs_store_text(st, 2, p->created, sizeof p->created);
    qs_store_text(st, 3, p->target, sizeof p->target);
    qs_store_text(st, 4, p->domain_weights, sizeof p->domain_weights);
    p->budget_bytes = sqlite3_column_double(st, 5);
    p->tensor_bytes = sqlite3_column_double(st, 6);
    p->bpw = sqlite3_column_double(st, 7);
    p->predicted_kl = sqlite3_column_double(st, 8);
    const unsigned char *json = sqlite3_column_text(st, 9);
    p->plan_json = strdup(json ? (const char *)json : "");
    p->mean_measured_kl = qs_store_real(st, 10);
    sqlite3_finalize(st);
    return 1;
}

void qs_db_plan_free(qs_db_plan *p) {
    free(p->plan_json);
    p->plan_json = NULL;
}

int qs_db_plan_domains(qs_db *db, int64_t plan_id, qs_db_plan_domain *out, int cap) {
    sqlite3_stmt *st = qs_store_prepare(db, "SELECT domain, predicted_kl, measured_kl, measured_kl_p99, measured_ppl_ratio,"
                                            " measured_top1 FROM plan_domains WHERE plan_id = ? ORDER BY predicted_kl IS NULL,"
                                            " domain");
    if (!st) return 0;
    sqlite3_bind_int64(st, 1, plan_id);
    int n = 0;
    while (n < cap && sqlite3_step(st) == SQLITE_ROW) {
        qs_db_plan_domain *d = &out[n++];
        qs_store_text(st, 0, d->domain, sizeof d->domain);
        double *v[5] = {&d->predicted, &d->measured, &d->measured_p99, &d->ppl_ratio, &d->top1};
        for (int k = 0; k < 5; k++) *v[k] = qs_store_real(st, 1 + k);
    }
    sqlite3_finalize(st);
    return n;
}

int qs_db_pareto(qs_db *db, int64_t run, const char *target, const char *weights, qs_db_plan_point *out, int cap,
                 char *target_out, size_t target_cap) {
    if (target_cap) target_out[0] = 0;
    sqlite3_stmt *st = qs_store_prepare(db, "SELECT bpw, predicted_kl, target FROM pareto WHERE run_id = ? AND (? = '' OR"
                                            " (target = ? AND domain_weights = ?)) ORDER BY target, domain_weights, point");
    if (!st) return 0;
    sqlite3_bind_int64(st, 1, run);
    sqlite3_bind_text(st, 2, target, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, target, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, weights, -1, SQLITE_STATIC);
    int n = 0, rows = 0;
    char first[64] = "";
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 2);
        if (!rows++) snprintf(first, sizeof first, "%s", t ? t : "");
        if (strcmp(first, t ? t : "")) break;
        if (sqlite3_column_double(st, 1) > 0 && n < cap)
            out[n++] = (qs_db_plan_point){NAN, sqlite3_column_double(st, 0), sqlite3_column_double(st, 1)};
    }
    sqlite3_finalize(st);
    snprintf(target_out, target_cap, "%s", first);
    return n;
}
