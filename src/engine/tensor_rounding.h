/* A stored tensor rounded to a format without ever being whole in f32: read (and expanded) a
 * block of rows at a time, each block rounded as the whole tensor would be. For the commands that
 * put a quantized candidate in place of a tensor (the profile's sweep, `qsense check --plan`). */
#ifndef QS_TENSOR_ROUNDING_H
#define QS_TENSOR_ROUNDING_H

#include "core/qs_error.h"
#include "io/model.h"
#include "quant/format.h"

/* Rows of f32 expanded at a time: at most 32 MiB (an 8B model's embedding is 2 GB in f32) */
int64_t qs_tensor_rows_per_block(const qs_tensor *t);

/* t in f's GGUF blocks (qs_format_has_blocks), into dst (rows x qs_dtype_row_bytes): the rows of
 * a block type round independently given the statistics; GPTQ's given the factor of cal->gram,
 * made once. 0, or an error naming the tensor (QS_ERR_INPUT: an unusable Gram matrix). */
int qs_tensor_to_blocks(const qs_tensor *t, const qs_format *f, const qs_calib *cal, void *dst, qs_error *err);

/* t rounded to f (qs_format_rounds_by_rows: after f's scans over the rows, with cal) as f32
 * values into dst (rows x cols). 0 or an error. */
int qs_tensor_round_f32(const qs_tensor *t, const qs_format *f, const qs_calib *cal, float *dst, qs_error *err);

#endif
