/* qs_db: the results database (SQLite). A versioned schema, migrated forward on open, in WAL
 * mode; every job's rows are written inside one transaction, so a killed run loses at most the
 * job in flight and a re-run resumes. Bulk arrays are staged in the `arrays` table in the same
 * transaction and exported to one HDF5 file per run (see h5export.h). docs/schema.md documents
 * every table. The store decides nothing: callers say what to write. */
#ifndef QS_DB_H
#define QS_DB_H

#include <stdint.h>

#include "../core/qs_error.h"

typedef struct qs_db qs_db;

#define QS_DB_SCHEMA_VERSION 5
/* PRAGMA application_id of a qsense database ("QSNS"): the marker that tells ours from another
 * program's SQLite file (databases from before version 5 are recognised by their tables) */
#define QS_DB_APPLICATION_ID 0x51534E53

typedef enum {
    QS_DB_READ,   /* read-only: never creates, migrates, or switches the journal; a read-only file or
                   * directory is fine */
    QS_DB_WRITE,  /* an existing qsense database, migrated forward (plan records its plans) */
    QS_DB_CREATE, /* as WRITE, and a missing or empty file becomes a new database (profile, check) */
} qs_db_mode;

/* Opens a qsense database. Refuses, without writing a byte, a file that is not one (another
 * program's SQLite file, or not SQLite at all), one from a newer qsense, and one that fails
 * SQLite's integrity check (once per file and process). Creating the schema is one transaction
 * that re-reads the version under the write lock, so two processes starting on a new file agree. */
int qs_db_open(qs_db **out, const char *path, qs_db_mode mode, qs_error *err);
void qs_db_close(qs_db *db);
const char *qs_db_path(const qs_db *db);

int qs_db_begin(qs_db *db, qs_error *err);
int qs_db_commit(qs_db *db, qs_error *err);
void qs_db_rollback(qs_db *db);

/* Executes SQL with no result rows (for callers' own statements and tests). */
int qs_db_exec(qs_db *db, const char *sql, qs_error *err);

typedef struct {
    const char *fingerprint, *path, *format, *arch;
    int64_t n_params;
    int n_layers, dim, hidden_dim, n_heads, n_kv_heads, n_vocab;
} qs_db_model;

/* Inserts the model if its fingerprint is new; returns its id in *id. */
int qs_db_put_model(qs_db *db, const qs_db_model *m, int64_t *id, qs_error *err);

/* Finds the run with this key or creates it (status "running"); *resumed = 1 if it existed. */
int qs_db_get_run(qs_db *db, const char *key, int64_t model_id, const char *settings_json, int64_t *run_id,
                  int *resumed, qs_error *err);
int qs_db_finish_run(qs_db *db, int64_t run_id, const char *hdf5_path, qs_error *err);

int qs_db_put_tensor(qs_db *db, int64_t model_id, const char *name, int layer, const char *kind, int64_t rows,
                     int64_t cols, const char *stored_type, int64_t *id, qs_error *err);
int qs_db_put_format(qs_db *db, const char *name, const char *family, int bits, const char *granularity, int group,
                     int symmetric, int clip_search, int64_t *id, qs_error *err);

/* Jobs: 1 if done, 0 if not (negative on error). */
int qs_db_job_done(qs_db *db, int64_t run_id, const char *job, qs_error *err);
int qs_db_mark_job(qs_db *db, int64_t run_id, const char *job, qs_error *err);

/* Generic row writer: INSERT OR REPLACE INTO table (cols...) VALUES (...). values are given as
 * doubles except those listed as text (NULL for SQL NULL via isnan). */
typedef struct {
    const char *col;
    int is_text;  /* 1: text, 2: integer, 0: real */
    double num;   /* NAN -> NULL */
    const char *text;
} qs_db_value;
int qs_db_put_row(qs_db *db, const char *table, const qs_db_value *vals, int n, qs_error *err);

/* Stages an array for the run's HDF5 file: dtype "f32", "f64" or "u64"; n elements. */
int qs_db_put_array(qs_db *db, int64_t run_id, const char *dataset, const char *dtype, const void *data, int64_t n,
                    qs_error *err);

/* Raw handle for readers (reports, tests). */
struct sqlite3 *qs_db_handle(qs_db *db);

#endif
