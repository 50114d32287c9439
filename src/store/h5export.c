/* HDF5 export of staged arrays (see h5export.h). Dataset paths like
 * "/weights/blk.0.attn_q.weight/hist" become groups and a 1-D dataset. */
#include "store/h5export.h"

#include <hdf5.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/qs_output.h"
#include "store/sql.h"

int qs_h5_export_run(qs_db *db, int64_t run_id, const char *path, int64_t *n_datasets, qs_error *err) {
    qs_output *out;
    int rc = qs_output_open(&out, path, "HDF5 file", 1, err);
    if (rc) return rc;
    const char *tmp = qs_output_tmp_path(out);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* errors are reported through qs_error, not printed */
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        qs_output_discard(out);
        return qs_errorf(err, QS_ERR_INPUT, "%s: cannot create the HDF5 file", path);
    }
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    sqlite3_stmt *st;
    *n_datasets = 0;
    if (sqlite3_prepare_v2(db->h, "SELECT dataset, dtype, n, data FROM arrays WHERE run_id = ? ORDER BY dataset",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: %s", qs_db_path(db), sqlite3_errmsg(db->h));
    } else {
        sqlite3_bind_int64(st, 1, run_id);
        while (!rc && sqlite3_step(st) == SQLITE_ROW) {
            const char *name = (const char *)sqlite3_column_text(st, 0), *dtype = (const char *)sqlite3_column_text(st, 1);
            hsize_t n = (hsize_t)sqlite3_column_int64(st, 2);
            const void *data = sqlite3_column_blob(st, 3);
            int es = !strcmp(dtype ? dtype : "", "f32") ? 4 : 8;
            if (!name || !dtype || sqlite3_column_int64(st, 2) < 0 ||
                (sqlite3_uint64)sqlite3_column_bytes(st, 3) != (sqlite3_uint64)n * (sqlite3_uint64)es) {
                rc = qs_errorf(err, QS_ERR_INPUT, "%s: array %s holds %d bytes, not %lld values of its type: the database is "
                               "damaged", qs_db_path(db), name ? name : "?", sqlite3_column_bytes(st, 3), (long long)n);
                break;
            }
            hid_t type = !strcmp(dtype, "f32") ? H5T_NATIVE_FLOAT : !strcmp(dtype, "f64") ? H5T_NATIVE_DOUBLE : H5T_NATIVE_UINT64;
            hid_t space = H5Screate_simple(1, &n, NULL);
            hid_t ds = H5Dcreate2(f, name, type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
            if (ds < 0 || H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
                rc = qs_errorf(err, QS_ERR_INPUT, "%s: cannot write dataset %s (disk full?)", path, name);
            if (ds >= 0) H5Dclose(ds);
            H5Sclose(space);
            (*n_datasets)++;
        }
        sqlite3_finalize(st);
    }
    H5Pclose(lcpl);
    if (H5Fclose(f) < 0 && !rc) rc = qs_errorf(err, QS_ERR_INPUT, "%s: cannot finish the HDF5 file (disk full?)", path);
    if (rc) {
        qs_output_discard(out);
        return rc;
    }
    return qs_output_commit(out, err);
}
