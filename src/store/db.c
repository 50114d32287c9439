/* qs_db (see db.h): schema, migrations, and the few writes the analyzers need. */
#include "db.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct qs_db {
    sqlite3 *h;
    char *path;
};

/* Migration k brings the schema from version k to k + 1. Never edit a shipped migration: add
 * one. */
static const char *const MIGRATIONS[] = {
    /* 0 -> 1 */
    "CREATE TABLE models ("
    "  id INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL UNIQUE, path TEXT, format TEXT, arch TEXT,"
    "  n_params INTEGER, n_layers INTEGER, dim INTEGER, hidden_dim INTEGER, n_heads INTEGER, n_kv_heads INTEGER,"
    "  n_vocab INTEGER, created TEXT NOT NULL DEFAULT (datetime('now')));"
    "CREATE TABLE runs ("
    "  id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, model_id INTEGER NOT NULL REFERENCES models(id),"
    "  settings TEXT NOT NULL, hdf5_path TEXT, status TEXT NOT NULL DEFAULT 'running',"
    "  started TEXT NOT NULL DEFAULT (datetime('now')), finished TEXT);"
    "CREATE TABLE tensors ("
    "  id INTEGER PRIMARY KEY, model_id INTEGER NOT NULL REFERENCES models(id), name TEXT NOT NULL,"
    "  layer INTEGER, kind TEXT NOT NULL, rows INTEGER NOT NULL, cols INTEGER NOT NULL, stored_type TEXT NOT NULL,"
    "  UNIQUE (model_id, name));"
    "CREATE TABLE formats ("
    "  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, family TEXT NOT NULL, bits INTEGER, granularity TEXT,"
    "  group_size INTEGER, symmetric INTEGER, clip_search INTEGER);"
    "CREATE TABLE jobs ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id), name TEXT NOT NULL,"
    "  finished TEXT NOT NULL DEFAULT (datetime('now')), PRIMARY KEY (run_id, name));"
    "CREATE TABLE weight_stats ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id), tensor_id INTEGER NOT NULL REFERENCES tensors(id),"
    "  n INTEGER, min REAL, max REAL, absmax REAL, mean REAL, std REAL, kurtosis REAL,"
    "  p0_1 REAL, p1 REAL, p50 REAL, p99 REAL, p99_9 REAL, frac_beyond_3sigma REAL, frac_beyond_6sigma REAL,"
    "  row_absmax_min REAL, row_absmax_median REAL, row_absmax_max REAL, hist_min REAL, hist_max REAL,"
    "  hist_dataset TEXT, row_absmax_dataset TEXT, PRIMARY KEY (run_id, tensor_id));"
    "CREATE TABLE activation_stats ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id), tensor_id INTEGER NOT NULL REFERENCES tensors(id),"
    "  n_tokens INTEGER, min REAL, max REAL, absmax REAL, mean REAL, std REAL, dynamic_range_db REAL,"
    "  channel_absmax_median REAL, channel_absmax_max REAL, n_outlier_channels INTEGER, outlier_channels TEXT,"
    "  hist_min REAL, hist_max REAL, hist_dataset TEXT, channel_absmax_dataset TEXT, channel_mean_sq_dataset TEXT,"
    "  PRIMARY KEY (run_id, tensor_id));"
    "CREATE TABLE qerror ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id), tensor_id INTEGER NOT NULL REFERENCES tensors(id),"
    "  format_id INTEGER NOT NULL REFERENCES formats(id), applicable INTEGER NOT NULL, reason TEXT, bpw REAL,"
    "  mse REAL, sqnr_db REAL, max_abs_error REAL, cosine REAL, output_error REAL,"
    "  PRIMARY KEY (run_id, tensor_id, format_id));"
    "CREATE TABLE arrays ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id), dataset TEXT NOT NULL, dtype TEXT NOT NULL,"
    "  n INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (run_id, dataset));",
    /* 1 -> 2: per-tensor sensitivity on evaluation domains */
    "CREATE TABLE eval_domains ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id), name TEXT NOT NULL, sha256 TEXT NOT NULL, files TEXT,"
    "  n_chunks INTEGER, ctx INTEGER, n_scored INTEGER, base_ppl REAL, base_ppl_se REAL, topk INTEGER,"
    "  mean_tail_mass REAL, PRIMARY KEY (run_id, name));"
    "CREATE TABLE sensitivity ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id), tensor_id INTEGER NOT NULL REFERENCES tensors(id),"
    "  format_id INTEGER NOT NULL REFERENCES formats(id), domain TEXT NOT NULL, applicable INTEGER NOT NULL,"
    "  n_scored INTEGER, ppl REAL, ppl_delta REAL, ppl_delta_se REAL, kl_mean REAL, kl_se REAL, kl_p99 REAL,"
    "  top1_agree REAL, top1_se REAL, PRIMARY KEY (run_id, tensor_id, format_id, domain));"
    "CREATE TABLE whole_model ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id), format_id INTEGER NOT NULL REFERENCES formats(id),"
    "  domain TEXT NOT NULL, n_quantized INTEGER, bpw REAL, n_scored INTEGER, ppl REAL, ppl_delta REAL,"
    "  ppl_delta_se REAL, kl_mean REAL, kl_se REAL, kl_p99 REAL, top1_agree REAL, top1_se REAL,"
    "  PRIMARY KEY (run_id, format_id, domain));",
    /* 2 -> 3: the regression gate's history */
    "CREATE TABLE check_runs ("
    "  id INTEGER PRIMARY KEY, created TEXT NOT NULL DEFAULT (datetime('now')), git_commit TEXT, candidate TEXT,"
    "  candidate_sha256 TEXT, reference_sha256 TEXT NOT NULL, eval_set TEXT NOT NULL, passed INTEGER NOT NULL);"
    "CREATE TABLE check_results ("
    "  check_id INTEGER NOT NULL REFERENCES check_runs(id), domain TEXT NOT NULL, metric TEXT NOT NULL,"
    "  value REAL, threshold REAL, baseline REAL, passed INTEGER NOT NULL, PRIMARY KEY (check_id, domain, metric));",
    /* 3 -> 4: plans, their predicted and measured cost, and the size/cost Pareto front */
    "CREATE TABLE plans ("
    "  id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id), sha256 TEXT NOT NULL UNIQUE, path TEXT,"
    "  created TEXT NOT NULL DEFAULT (datetime('now')), target TEXT NOT NULL, domain_weights TEXT,"
    "  budget_bytes REAL, tensor_bytes REAL, bpw REAL, predicted_kl REAL, plan_json TEXT NOT NULL);"
    "CREATE TABLE plan_domains ("
    "  plan_id INTEGER NOT NULL REFERENCES plans(id), domain TEXT NOT NULL, predicted_kl REAL,"
    "  check_id INTEGER REFERENCES check_runs(id), measured_kl REAL, measured_kl_p99 REAL, measured_ppl_ratio REAL,"
    "  measured_top1 REAL, PRIMARY KEY (plan_id, domain));"
    "CREATE TABLE pareto ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id), target TEXT NOT NULL, domain_weights TEXT NOT NULL,"
    "  point INTEGER NOT NULL, tensor_bytes REAL NOT NULL, bpw REAL NOT NULL, predicted_kl REAL NOT NULL,"
    "  PRIMARY KEY (run_id, target, domain_weights, point));",
};
#define N_MIGRATIONS ((int)(sizeof MIGRATIONS / sizeof MIGRATIONS[0]))

/* what a failed write most likely means, for the user: SQLite says only "disk I/O error" */
static const char *write_hint(qs_db *db) {
    switch (sqlite3_errcode(db->h) & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
        return " (the disk is full or a file size limit was reached?); the database is intact and keeps every finished "
               "job: free space and run the same command again to resume";
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN: return " (is the file or its directory read-only?)";
    default: return "";
    }
}

static int sql_err(qs_db *db, qs_error *err, const char *what) {
    return qs_errorf(err, QS_ERR_INPUT, "%s: %s: %s%s", db->path, what, sqlite3_errmsg(db->h), write_hint(db));
}

int qs_db_exec(qs_db *db, const char *sql, qs_error *err) {
    char *msg = NULL;
    if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = qs_errorf(err, QS_ERR_INPUT, "%s: %s%s", db->path, msg ? msg : "SQL error", write_hint(db));
        sqlite3_free(msg);
        return rc;
    }
    return 0;
}

static int user_version(qs_db *db, int *v) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->h, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK) return -1;
    int rc = sqlite3_step(st) == SQLITE_ROW ? (*v = sqlite3_column_int(st, 0), 0) : -1;
    sqlite3_finalize(st);
    return rc;
}

int qs_db_open(qs_db **out, const char *path, qs_error *err) {
    *out = NULL;
    qs_db *db = calloc(1, sizeof *db);
    if (!db) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    db->path = strdup(path);
    if (sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        int rc = qs_errorf(err, QS_ERR_INPUT, "%s: cannot open the database: %s", path, db->h ? sqlite3_errmsg(db->h) : "?");
        qs_db_close(db);
        return rc;
    }
    sqlite3_busy_timeout(db->h, 10000);
    int v = 0, rc = 0;
    if (user_version(db, &v) != 0) {
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: not a qsense database (or unreadable): %s", path, sqlite3_errmsg(db->h));
    } else if (v > N_MIGRATIONS) {
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: schema version %d is newer than this qsense (%d); upgrade qsense", path, v,
                       N_MIGRATIONS);
    } else if ((rc = qs_db_exec(db, "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;", err)) == 0) {
        for (; v < N_MIGRATIONS && !rc; v++) {
            char sql[64];
            snprintf(sql, sizeof sql, "PRAGMA user_version=%d;", v + 1);
            if ((rc = qs_db_exec(db, "BEGIN IMMEDIATE;", err)) == 0) {
                if ((rc = qs_db_exec(db, MIGRATIONS[v], err)) == 0 && (rc = qs_db_exec(db, sql, err)) == 0)
                    rc = qs_db_exec(db, "COMMIT;", err);
                else
                    qs_db_exec(db, "ROLLBACK;", NULL);
            }
        }
    }
    if (rc) {
        qs_db_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

void qs_db_close(qs_db *db) {
    if (!db) return;
    if (db->h) sqlite3_close(db->h);
    free(db->path);
    free(db);
}

const char *qs_db_path(const qs_db *db) { return db->path; }
struct sqlite3 *qs_db_handle(qs_db *db) { return db->h; }

int qs_db_begin(qs_db *db, qs_error *err) { return qs_db_exec(db, "BEGIN IMMEDIATE;", err); }
int qs_db_commit(qs_db *db, qs_error *err) { return qs_db_exec(db, "COMMIT;", err); }
void qs_db_rollback(qs_db *db) { qs_db_exec(db, "ROLLBACK;", NULL); }

static int lookup_id(qs_db *db, const char *sql, const char *a, int64_t b, int64_t *id) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    sqlite3_bind_text(st, 1, a, -1, SQLITE_TRANSIENT);
    if (sqlite3_bind_parameter_count(st) > 1) sqlite3_bind_int64(st, 2, b);
    int rc = sqlite3_step(st);
    int found = rc == SQLITE_ROW;
    if (found) *id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return found ? 1 : (rc == SQLITE_DONE ? 0 : -1);
}

int qs_db_put_model(qs_db *db, const qs_db_model *m, int64_t *id, qs_error *err) {
    int f = lookup_id(db, "SELECT id FROM models WHERE fingerprint = ?", m->fingerprint, 0, id);
    if (f < 0) return sql_err(db, err, "reading models");
    if (f) return 0;
    sqlite3_stmt *st;
    const char *sql = "INSERT INTO models (fingerprint, path, format, arch, n_params, n_layers, dim, hidden_dim, n_heads,"
                      " n_kv_heads, n_vocab) VALUES (?,?,?,?,?,?,?,?,?,?,?)";
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK) return sql_err(db, err, "preparing models");
    sqlite3_bind_text(st, 1, m->fingerprint, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, m->path, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, m->format, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, m->arch, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 5, m->n_params);
    int ints[6] = {m->n_layers, m->dim, m->hidden_dim, m->n_heads, m->n_kv_heads, m->n_vocab};
    for (int i = 0; i < 6; i++) sqlite3_bind_int(st, 6 + i, ints[i]);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return sql_err(db, err, "inserting a model");
    *id = sqlite3_last_insert_rowid(db->h);
    return 0;
}

int qs_db_get_run(qs_db *db, const char *key, int64_t model_id, const char *settings_json, int64_t *run_id,
                  int *resumed, qs_error *err) {
    int f = lookup_id(db, "SELECT id FROM runs WHERE key = ?", key, 0, run_id);
    if (f < 0) return sql_err(db, err, "reading runs");
    *resumed = f;
    if (f) return 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->h, "INSERT INTO runs (key, model_id, settings) VALUES (?,?,?)", -1, &st, NULL) != SQLITE_OK)
        return sql_err(db, err, "preparing runs");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, model_id);
    sqlite3_bind_text(st, 3, settings_json, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return sql_err(db, err, "inserting a run");
    *run_id = sqlite3_last_insert_rowid(db->h);
    return 0;
}

int qs_db_finish_run(qs_db *db, int64_t run_id, const char *hdf5_path, qs_error *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->h, "UPDATE runs SET status = 'done', finished = datetime('now'), hdf5_path = ? WHERE id = ?",
                           -1, &st, NULL) != SQLITE_OK)
        return sql_err(db, err, "preparing run update");
    sqlite3_bind_text(st, 1, hdf5_path, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, run_id);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : sql_err(db, err, "finishing a run");
}

int qs_db_put_tensor(qs_db *db, int64_t model_id, const char *name, int layer, const char *kind, int64_t rows,
                     int64_t cols, const char *stored_type, int64_t *id, qs_error *err) {
    int f = lookup_id(db, "SELECT id FROM tensors WHERE name = ? AND model_id = ?", name, model_id, id);
    if (f < 0) return sql_err(db, err, "reading tensors");
    if (f) return 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->h, "INSERT INTO tensors (model_id, name, layer, kind, rows, cols, stored_type) VALUES (?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK)
        return sql_err(db, err, "preparing tensors");
    sqlite3_bind_int64(st, 1, model_id);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
    if (layer >= 0) sqlite3_bind_int(st, 3, layer);
    else sqlite3_bind_null(st, 3);
    sqlite3_bind_text(st, 4, kind, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 5, rows);
    sqlite3_bind_int64(st, 6, cols);
    sqlite3_bind_text(st, 7, stored_type, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return sql_err(db, err, "inserting a tensor");
    *id = sqlite3_last_insert_rowid(db->h);
    return 0;
}

int qs_db_put_format(qs_db *db, const char *name, const char *family, int bits, const char *granularity, int group,
                     int symmetric, int clip_search, int64_t *id, qs_error *err) {
    int f = lookup_id(db, "SELECT id FROM formats WHERE name = ?", name, 0, id);
    if (f < 0) return sql_err(db, err, "reading formats");
    if (f) return 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->h, "INSERT INTO formats (name, family, bits, granularity, group_size, symmetric, clip_search)"
                           " VALUES (?,?,?,?,?,?,?)", -1, &st, NULL) != SQLITE_OK)
        return sql_err(db, err, "preparing formats");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, family, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 3, bits);
    if (granularity) sqlite3_bind_text(st, 4, granularity, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, 4);
    if (group) sqlite3_bind_int(st, 5, group);
    else sqlite3_bind_null(st, 5);
    sqlite3_bind_int(st, 6, symmetric);
    sqlite3_bind_int(st, 7, clip_search);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return sql_err(db, err, "inserting a format");
    *id = sqlite3_last_insert_rowid(db->h);
    return 0;
}

int qs_db_job_done(qs_db *db, int64_t run_id, const char *job, qs_error *err) {
    int64_t one;
    int f = lookup_id(db, "SELECT 1 FROM jobs WHERE name = ? AND run_id = ?", job, run_id, &one);
    return f < 0 ? sql_err(db, err, "reading jobs") : f;
}

int qs_db_mark_job(qs_db *db, int64_t run_id, const char *job, qs_error *err) {
    qs_db_value v[2] = {{"run_id", 2, (double)run_id, NULL}, {"name", 1, 0, job}};
    return qs_db_put_row(db, "jobs", v, 2, err);
}

int qs_db_put_row(qs_db *db, const char *table, const qs_db_value *vals, int n, qs_error *err) {
    char sql[4096];
    int k = snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO %s (", table);
    for (int i = 0; i < n; i++) k += snprintf(sql + k, sizeof sql - (size_t)k, i ? ", %s" : "%s", vals[i].col);
    k += snprintf(sql + k, sizeof sql - (size_t)k, ") VALUES (");
    for (int i = 0; i < n; i++) k += snprintf(sql + k, sizeof sql - (size_t)k, i ? ", ?" : "?");
    snprintf(sql + k, sizeof sql - (size_t)k, ")");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK) return sql_err(db, err, table);
    for (int i = 0; i < n; i++) {
        if (vals[i].is_text == 1) {
            if (vals[i].text) sqlite3_bind_text(st, i + 1, vals[i].text, -1, SQLITE_TRANSIENT);
            else sqlite3_bind_null(st, i + 1);
        } else if (isnan(vals[i].num) || isinf(vals[i].num)) {
            sqlite3_bind_null(st, i + 1); /* SQLite has no inf/NaN: NULL means "not defined" */
        } else if (vals[i].is_text == 2) {
            sqlite3_bind_int64(st, i + 1, (sqlite3_int64)vals[i].num);
        } else {
            sqlite3_bind_double(st, i + 1, vals[i].num);
        }
    }
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : sql_err(db, err, table);
}

int qs_db_put_array(qs_db *db, int64_t run_id, const char *dataset, const char *dtype, const void *data, int64_t n,
                    qs_error *err) {
    int es = strcmp(dtype, "f32") == 0 ? 4 : 8;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->h, "INSERT OR REPLACE INTO arrays (run_id, dataset, dtype, n, data) VALUES (?,?,?,?,?)", -1,
                           &st, NULL) != SQLITE_OK)
        return sql_err(db, err, "arrays");
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, dataset, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, dtype, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, n);
    sqlite3_bind_blob64(st, 5, data, (sqlite3_uint64)(n * es), SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : sql_err(db, err, "staging an array");
}
