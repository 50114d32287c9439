/* The profile's writes: the model, the run, its tensors and formats, the jobs done and the
 * arrays staged for the run's HDF5 file, all inside the caller's transaction (see db.h); the
 * analyzers' rows are measure_rows.h. */
#ifndef QS_STORE_PROFILE_ROWS_H
#define QS_STORE_PROFILE_ROWS_H

#include <stdint.h>

#include "store/db.h"

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

/* Stages an array for the run's HDF5 file: dtype "f32", "f64" or "u64"; n elements. */
int qs_db_put_array(qs_db *db, int64_t run_id, const char *dataset, const char *dtype, const void *data, int64_t n,
                    qs_error *err);

#endif
