/* Reading the arrays a profile staged (table arrays in docs/schema.md): histograms for the
 * report, and the calibration's per-channel activation energies and Gram matrices that weighted
 * and GPTQ rounding need. */
#ifndef QS_STORE_ARRAYS_H
#define QS_STORE_ARRAYS_H

#include <stdint.h>

#include "store/db.h"

/* The f32 array called dataset holding exactly n values, from the newest run of the model with
 * this fingerprint: 1 and *out malloc'd, 0 when there is none, or a negative error. */
int qs_db_model_f32_array(qs_db *db, const char *model_fingerprint, const char *dataset, int64_t n, float **out,
                          qs_error *err);

/* The array called dataset staged by run run_id with this dtype ("u64" or "f32", elem bytes an
 * element): malloc'd with its length in *n, NULL when absent or not n whole elements. */
void *qs_db_run_array(qs_db *db, int64_t run_id, const char *dataset, const char *dtype, int elem, int64_t *n);

/* The f32 array called dataset staged by run run_id, read into out when it holds exactly n
 * values (a Gram matrix read back without a second copy): 1, 0 when there is none of that
 * length, or a negative error. */
int qs_db_run_f32_array_into(qs_db *db, int64_t run_id, const char *dataset, float *out, int64_t n, qs_error *err);

#endif
