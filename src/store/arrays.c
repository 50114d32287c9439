/* Reading staged arrays (see arrays.h). */
#include "store/arrays.h"

#include <stdlib.h>
#include <string.h>

#include "store/sql.h"

int qs_db_model_f32_array(qs_db *db, const char *model_fingerprint, const char *dataset, int64_t n, float **out,
                          qs_error *err) {
    *out = NULL;
    sqlite3_stmt *st = qs_store_prepare(db, "SELECT a.n, a.data FROM arrays a JOIN runs r ON r.id = a.run_id JOIN models m ON"
                                            " m.id = r.model_id WHERE m.fingerprint = ? AND a.dataset = ? AND a.dtype = 'f32'"
                                            " ORDER BY r.id DESC LIMIT 1");
    if (!st) return qs_store_fail(db, err, "reading arrays");
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

void *qs_db_run_array(qs_db *db, int64_t run_id, const char *dataset, const char *dtype, int elem, int64_t *n) {
    void *out = NULL;
    *n = 0;
    sqlite3_stmt *st = qs_store_prepare(db, "SELECT n, data FROM arrays WHERE run_id = ? AND dataset = ? AND dtype = ?");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, dataset, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, dtype, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        int64_t k = sqlite3_column_int64(st, 0);
        if (k > 0 && sqlite3_column_bytes(st, 1) == k * elem && (out = malloc((size_t)(k * elem)))) {
            memcpy(out, sqlite3_column_blob(st, 1), (size_t)(k * elem)); /* little-endian, as this machine */
            *n = k;
        }
    }
    sqlite3_finalize(st);
    return out;
}

int qs_db_run_f32_array_into(qs_db *db, int64_t run_id, const char *dataset, float *out, int64_t n, qs_error *err) {
    sqlite3_stmt *st =
        qs_store_prepare(db, "SELECT n, data FROM arrays WHERE run_id = ? AND dataset = ? AND dtype = 'f32'");
    if (!st) return qs_store_fail(db, err, "reading arrays");
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, dataset, -1, SQLITE_STATIC);
    int found = 0;
    const int step = sqlite3_step(st);
    if (step == SQLITE_ROW && sqlite3_column_int64(st, 0) == n && sqlite3_column_bytes(st, 1) == n * 4) {
        memcpy(out, sqlite3_column_blob(st, 1), sizeof(float) * (size_t)n); /* little-endian, as this machine */
        found = 1;
    }
    sqlite3_finalize(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE) return qs_store_fail(db, err, "reading arrays");
    return found;
}
