/* Check runs in the database (see checks.h). */
#include "store/checks.h"

#include <math.h>
#include <stdio.h>

#include "store/profile_rows.h"
#include "store/sql.h"

int qs_db_put_check_run(qs_db *db, const qs_db_check_run *r, int64_t *id, qs_error *err) {
    *id = 0;
    sqlite3_stmt *st = qs_store_prepare(db, "INSERT INTO check_runs (git_commit, candidate, candidate_sha256, reference_sha256,"
                                            " eval_set, passed) VALUES (?,?,?,?,?,?)");
    if (!st) return qs_store_fail(db, err, "recording the check");
    sqlite3_bind_text(st, 1, r->git_commit, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->candidate, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->candidate_sha256, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r->reference_sha256, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, r->eval_set, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 6, r->passed);
    int ok = sqlite3_step(st) == SQLITE_DONE;
    if (!ok) {
        int rc = qs_store_fail(db, err, "recording the check");
        sqlite3_finalize(st);
        return rc;
    }
    sqlite3_finalize(st);
    *id = sqlite3_last_insert_rowid(db->h);
    return 0;
}

int qs_db_put_check_result(qs_db *db, int64_t check_id, const char *domain, const char *metric, double value,
                           double threshold, double baseline, int passed, qs_error *err) {
    qs_db_value row[] = {{"check_id", 2, (double)check_id, NULL}, {"domain", 1, 0, domain}, {"metric", 1, 0, metric},
                         {"value", 0, value, NULL}, {"threshold", 0, threshold, NULL}, {"baseline", 0, baseline, NULL},
                         {"passed", 2, passed, NULL}};
    return qs_db_put_row(db, "check_results", row, 7, err);
}

double qs_db_check_baseline(qs_db *db, const char *reference_sha256, const char *eval_set, const char *domain,
                            const char *metric) {
    sqlite3_stmt *st = qs_store_prepare(db, "SELECT value FROM check_results WHERE domain = ? AND metric = ? AND check_id ="
                                            " (SELECT id FROM check_runs WHERE reference_sha256 = ? AND eval_set = ? AND"
                                            " passed = 1 ORDER BY id DESC LIMIT 1)");
    if (!st) return NAN;
    sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, metric, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, reference_sha256, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, eval_set, -1, SQLITE_STATIC);
    double v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_double(st, 0) : NAN;
    sqlite3_finalize(st);
    return v;
}

int qs_db_checked_files(qs_db *db, const char *reference_sha256, qs_db_checked_file *out, int cap) {
    sqlite3_stmt *st = qs_store_prepare(db, "SELECT k.candidate, k.eval_set, k.created, avg(r.value), count(*) FROM check_runs k"
                                            " JOIN check_results r ON r.check_id = k.id WHERE k.reference_sha256 = ? AND"
                                            " k.candidate_sha256 != '' AND r.metric = 'kl_mean' AND k.id = (SELECT max(k2.id)"
                                            " FROM check_runs k2 WHERE k2.candidate = k.candidate AND k2.reference_sha256 ="
                                            " k.reference_sha256) GROUP BY k.id ORDER BY k.id");
    if (!st) return 0;
    sqlite3_bind_text(st, 1, reference_sha256, -1, SQLITE_STATIC);
    int n = 0;
    while (n < cap && sqlite3_step(st) == SQLITE_ROW) {
        qs_db_checked_file *k = &out[n++];
        qs_store_text(st, 0, k->path, sizeof k->path);
        qs_store_text(st, 1, k->eval_set, sizeof k->eval_set);
        qs_store_text(st, 2, k->created, sizeof k->created);
        k->kl = sqlite3_column_double(st, 3);
        k->n_domains = sqlite3_column_int(st, 4);
    }
    sqlite3_finalize(st);
    return n;
}
