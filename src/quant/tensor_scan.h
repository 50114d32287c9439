/* What the row-block rounding (row_rounding.c) needs from the format modules to gather a
 * tensor's figures (format.h, qs_tensor_figures) over its rows: internal to src/quant. */
#ifndef QS_TENSOR_SCAN_H
#define QS_TENSOR_SCAN_H

#include <stdint.h>

#include "quant/format.h"

/* the "-mse" int formats' clipping search: range factors 1, 0.975, ..., 0.5 */
#define QS_INT_CLIP_STEPS 21

/* lo = min(x, 0), hi = max(x, 0) over x[0..n), widening what they hold (int_quant.c) */
void qs_int_widen_range(const float *x, int64_t n, float *lo, float *hi);
/* err[k] += the squared error of x[0..n) rounded with the tensor's range [lo, hi] shrunk by step
 * k's factor, added element by element (so spans in turn sum as the whole does); tmp: n floats */
void qs_int_add_clip_errors(const qs_format *f, const float *x, float *tmp, int64_t n, float lo, float hi,
                            double err[QS_INT_CLIP_STEPS]);
/* the factor with the lowest error, the first on a tie (as the whole tensor's search picks) */
float qs_int_best_clip(const double err[QS_INT_CLIP_STEPS]);

/* how many of n values a dense-and-sparse format keeps in fp16 (nonuniform.c) */
int64_t qs_sparse_outliers(const qs_format *f, int64_t n);

#endif
