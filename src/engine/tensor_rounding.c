/* A stored tensor rounded a block of rows at a time (see tensor_rounding.h). */
#include "engine/tensor_rounding.h"

#include <stdlib.h>

#include "core/qs_dtype.h"
#include "quant/ggml_quant.h"
#include "quant/row_rounding.h"

int64_t qs_tensor_rows_per_block(const qs_tensor *t) {
    const int64_t cols = t->ne[0], rows = qs_tensor_numel(t) / cols;
    const int64_t step = ((int64_t)32 << 20) / (int64_t)(sizeof(float) * (size_t)cols);
    return step < 1 ? 1 : step > rows ? rows : step;
}

int qs_tensor_to_blocks(const qs_tensor *t, const qs_format *f, const qs_calib *cal, void *dst, qs_error *err) {
    const int64_t cols = t->ne[0], rows = qs_tensor_numel(t) / cols, step = qs_tensor_rows_per_block(t);
    const size_t row_bytes = qs_dtype_row_bytes(f->ggml_type, cols);
    float *w = malloc(sizeof(float) * (size_t)(step * cols));
    qs_gptq_factor g = {0};
    const int gptq = f->gptq && cal && cal->gram; /* without: a lookup table, rounded to nearest */
    int rc = w ? (gptq ? qs_gptq_factor_make(cal->gram, cols, &g) : 0) : -1;
    for (int64_t r0 = 0; !rc && r0 < rows; r0 += step) {
        const int64_t n = rows - r0 < step ? rows - r0 : step;
        qs_tensor_dequantize_rows(t, r0, n, w);
        uint8_t *out = (uint8_t *)dst + (size_t)r0 * row_bytes;
        rc = gptq ? qs_gptq_quantize_factored(f->ggml_type, w, n, &g, out)
                  : qs_format_quantize_blocks(f, w, n, cols, cal, out);
    }
    free(w);
    qs_gptq_factor_free(&g);
    if (rc == -3) return qs_errorf(err, QS_ERR_INPUT, "tensor %s: the Gram matrix of its inputs is unusable", t->name);
    if (rc == -1) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory quantizing %s", t->name);
    if (rc) return qs_errorf(err, QS_ERR_INTERNAL, "tensor %s: quantizing to %s failed", t->name, f->name);
    return 0;
}

int qs_tensor_round_f32(const qs_tensor *t, const qs_format *f, const qs_calib *cal, float *dst, qs_error *err) {
    const int64_t cols = t->ne[0], rows = qs_tensor_numel(t) / cols, step = qs_tensor_rows_per_block(t);
    qs_row_rounding *r = NULL;
    int rc = qs_row_rounding_open(&r, f, rows, cols, err);
    const int scans = rc ? 0 : qs_format_row_scans(f);
    float *w = rc ? NULL : malloc(sizeof(float) * (size_t)(step * cols));
    if (!rc && !w) rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory quantizing %s", t->name);
    for (int pass = 0; pass <= scans && !rc; pass++) /* the scans, then the rounding */
        for (int64_t r0 = 0; r0 < rows && !rc; r0 += step) {
            const int64_t n = rows - r0 < step ? rows - r0 : step;
            qs_tensor_dequantize_rows(t, r0, n, w);
            rc = pass < scans ? qs_row_rounding_scan(r, pass, w, n, cal, err)
                              : qs_row_rounding_round(r, w, dst + (size_t)r0 * (size_t)cols, r0, n, cal, err);
        }
    free(w);
    qs_row_rounding_close(r);
    if (rc) qs_error_prefix(err, "tensor %s", t->name);
    return rc;
}
