/* Exports a run's staged arrays (the `arrays` table) to one HDF5 file, written to PATH.tmp and
 * renamed into place, so the HDF5 file is always complete: the database stays the transactional
 * source of truth and the HDF5 file can be regenerated from it at any time. */
#ifndef QS_H5EXPORT_H
#define QS_H5EXPORT_H

#include <stdint.h>

#include "store/db.h"

int qs_h5_export_run(qs_db *db, int64_t run_id, const char *path, int64_t *n_datasets, qs_error *err);

#endif
