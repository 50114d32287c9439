/* Rounding a (rows, cols) matrix a block of rows at a time, so that a large tensor is never held
 * whole in f32. Formats whose rows round independently (qs_format_rows_independent) need nothing
 * more; a format with a per-tensor figure first scans the rows, in order, every row once per pass:
 *   a per-tensor int scale, per-tensor fp8, nvidia-nvfp4     its range: one pass
 *   a per-tensor int "-mse" format                          its range, then every clipping
 *                                                           factor's squared error: two passes
 *   dense-and-sparse                                        the outlier threshold, by radix
 *                                                           selection of the magnitudes, and the
 *                                                           values tied at it, row by row: three
 *   AWQ ("-awq" over a row-independent base)                every trial exponent's output error:
 *                                                           one pass, with the inputs' statistics
 * then rounds any block of rows with those figures, exactly as the whole tensor would be rounded
 * (test_row_rounding). GPTQ needs no scan: it factors the inputs' Gram matrix when it rounds its
 * first rows (cols^2 floats, kept), then compensates each row along itself. */
#ifndef QS_ROW_ROUNDING_H
#define QS_ROW_ROUNDING_H

#include <stdint.h>

#include "core/qs_error.h"
#include "quant/format.h"

typedef struct qs_row_rounding qs_row_rounding;

/* 1 when f rounds a block of rows at a time, after its scans if it has any */
int qs_format_rounds_by_rows(const qs_format *f);

/* Scans f needs over the rows before it rounds any (0 for a row-independent format) */
int qs_format_row_scans(const qs_format *f);

/* A rounding of a (rows, cols) matrix in f; QS_ERR_USAGE when f does not round by rows */
int qs_row_rounding_open(qs_row_rounding **out, const qs_format *f, int64_t rows, int64_t cols, qs_error *err);
void qs_row_rounding_close(qs_row_rounding *r);

/* Scan `pass` (0 .. qs_format_row_scans - 1) over the next nr rows, w (nr, cols); every row once
 * per pass, in order, the passes in turn. QS_ERR_USAGE out of turn. cal: the tensor's statistics
 * as for rounding (AWQ's search needs gram and mean_abs, or lookup), the same on every call. */
int qs_row_rounding_scan(qs_row_rounding *r, int pass, const float *w, int64_t nr, const qs_calib *cal, qs_error *err);

/* out = the rounding of rows [r0, r0 + nr), which w holds (out must not alias w: a
 * dense-and-sparse format reads w after writing out); after the scans, any rows in any order (the
 * engine reads an embedding's rows by token). cal as for qs_format_fake_quantize_calib. */
int qs_row_rounding_round(qs_row_rounding *r, const float *w, float *out, int64_t r0, int64_t nr, const qs_calib *cal,
                          qs_error *err);

#endif
