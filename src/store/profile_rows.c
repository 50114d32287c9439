/* The profile's writes (see profile_rows.h). */
#include "store/profile_rows.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "store/sql.h"

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
    if (f < 0) return qs_store_fail(db, err, "reading models");
    if (f) return 0;
    sqlite3_stmt *st;
    const char *sql = "INSERT INTO models (fingerprint, path, format, arch, n_params, n_layers, dim, hidden_dim, n_heads,"
                      " n_kv_heads, n_vocab) VALUES (?,?,?,?,?,?,?,?,?,?,?)";
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK) return qs_store_fail(db, err, "preparing models");
    sqlite3_bind_text(st, 1, m->fingerprint, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, m->path, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, m->format, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, m->arch, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 5, m->n_params);
    int ints[6] = {m->n_layers, m->dim, m->hidden_dim, m->n_heads, m->n_kv_heads, m->n_vocab};
    for (int i = 0; i < 6; i++) sqlite3_bind_int(st, 6 + i, ints[i]);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return qs_store_fail(db, err, "inserting a model");
    *id = sqlite3_last_insert_rowid(db->h);
    return 0;
}

int qs_db_get_run(qs_db *db, const char *key, int64_t model_id, const char *settings_json, int64_t *run_id,
                  int *resumed, qs_error *err) {
    int f = lookup_id(db, "SELECT id FROM runs WHERE key = ?", key, 0, run_id);
    if (f < 0) return qs_store_fail(db, err, "reading runs");
    *resumed = f;
    if (f) return 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->h, "INSERT INTO runs (key, model_id, settings) VALUES (?,?,?)", -1, &st, NULL) != SQLITE_OK)
        return qs_store_fail(db, err, "preparing runs");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, model_id);
    sqlite3_bind_text(st, 3, settings_json, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return qs_store_fail(db, err, "inserting a run");
    *run_id = sqlite3_last_insert_rowid(db->h);
    return 0;
}

int qs_db_finish_run(qs_db *db, int64_t run_id, const char *hdf5_path, qs_error *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->h, "UPDATE runs SET status = 'done', finished = datetime('now'), hdf5_path = ? WHERE id = ?",
                           -1, &st, NULL) != SQLITE_OK)
        return qs_store_fail(db, err, "preparing run update");
    sqlite3_bind_text(st, 1, hdf5_path, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, run_id);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : qs_store_fail(db, err, "finishing a run");
}

int qs_db_put_tensor(qs_db *db, int64_t model_id, const char *name, int layer, const char *kind, int64_t rows,
                     int64_t cols, const char *stored_type, int64_t *id, qs_error *err) {
    int f = lookup_id(db, "SELECT id FROM tensors WHERE name = ? AND model_id = ?", name, model_id, id);
    if (f < 0) return qs_store_fail(db, err, "reading tensors");
    if (f) return 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->h, "INSERT INTO tensors (model_id, name, layer, kind, rows, cols, stored_type) VALUES (?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK)
        return qs_store_fail(db, err, "preparing tensors");
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
    if (rc != SQLITE_DONE) return qs_store_fail(db, err, "inserting a tensor");
    *id = sqlite3_last_insert_rowid(db->h);
    return 0;
}

int qs_db_put_format(qs_db *db, const char *name, const char *family, int bits, const char *granularity, int group,
                     int symmetric, int clip_search, int64_t *id, qs_error *err) {
    int f = lookup_id(db, "SELECT id FROM formats WHERE name = ?", name, 0, id);
    if (f < 0) return qs_store_fail(db, err, "reading formats");
    if (f) return 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->h, "INSERT INTO formats (name, family, bits, granularity, group_size, symmetric, clip_search)"
                           " VALUES (?,?,?,?,?,?,?)", -1, &st, NULL) != SQLITE_OK)
        return qs_store_fail(db, err, "preparing formats");
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
    if (rc != SQLITE_DONE) return qs_store_fail(db, err, "inserting a format");
    *id = sqlite3_last_insert_rowid(db->h);
    return 0;
}

int qs_db_job_done(qs_db *db, int64_t run_id, const char *job, qs_error *err) {
    int64_t one;
    int f = lookup_id(db, "SELECT 1 FROM jobs WHERE name = ? AND run_id = ?", job, run_id, &one);
    return f < 0 ? qs_store_fail(db, err, "reading jobs") : f;
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
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK) return qs_store_fail(db, err, table);
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
    return rc == SQLITE_DONE ? 0 : qs_store_fail(db, err, table);
}

int qs_db_put_array(qs_db *db, int64_t run_id, const char *dataset, const char *dtype, const void *data, int64_t n,
                    qs_error *err) {
    int es = strcmp(dtype, "f32") == 0 ? 4 : 8;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->h, "INSERT OR REPLACE INTO arrays (run_id, dataset, dtype, n, data) VALUES (?,?,?,?,?)", -1,
                           &st, NULL) != SQLITE_OK)
        return qs_store_fail(db, err, "arrays");
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, dataset, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, dtype, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, n);
    sqlite3_bind_blob64(st, 5, data, (sqlite3_uint64)(n * es), SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : qs_store_fail(db, err, "staging an array");
}
