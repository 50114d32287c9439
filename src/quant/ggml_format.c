/* llama.cpp block types as qs_formats: applicable when the row length is a multiple of the
 * block size (never padded), quantized with ggml_quant.c and dequantized with qs_dtype. */
#include <stdio.h>
#include <stdlib.h>

#include "core/qs_dtype.h"
#include "quant/format.h"
#include "quant/ggml_quant.h"

static int ggml_applies(const qs_format *f, int64_t rows, int64_t cols, char *why, size_t cap) {
    const qs_dtype_traits *tr = qs_dtype_get(f->ggml_type);
    if (rows > 0 && cols > 0 && cols % tr->block_size == 0) return 1;
    if (why) snprintf(why, cap, "rows of %lld values are not a multiple of the %s block size %d", (long long)cols, tr->name, tr->block_size);
    return 0;
}

static double ggml_bpw(const qs_format *f, int64_t rows, int64_t cols) {
    (void)rows; (void)cols;
    const qs_dtype_traits *tr = qs_dtype_get(f->ggml_type);
    return 8.0 * tr->type_size / tr->block_size;
}

/* The "-w" formats round with the importance (uniform when the caller has none); the "-gptq"
 * formats compensate errors with the inputs' Gram matrix (required, except for a lookup table,
 * which they round to nearest); the others reproduce llama-quantize without an imatrix. */
int qs_format_quantize_blocks(const qs_format *f, const float *w, int64_t rows, int64_t cols, const qs_calib *cal, void *blocks) {
    /* AWQ's blocks hold W diag(s), which only a model with 1/s folded in computes right */
    if ((f->family != QS_FAM_GGML && f->family != QS_FAM_FLOAT16) || f->awq || !qs_dtype_row_bytes(f->ggml_type, cols)) return -2;
    if (f->gptq && !(cal && cal->lookup && !cal->gram)) {
        if (!cal || !cal->gram) return -2;
        const int rc = qs_gptq_quantize(f->ggml_type, w, rows, cols, cal->gram, blocks);
        return rc == -3 ? -3 : rc ? -1 : 0;
    }
    const float *importance = cal ? cal->importance : NULL;
    float *ones = NULL;
    if (f->weighted && !importance) {
        if (!(ones = malloc(sizeof(float) * (size_t)cols))) return -1;
        for (int64_t c = 0; c < cols; c++) ones[c] = 1.0f;
        importance = ones;
    }
    const uint64_t rb = qs_dtype_row_bytes(f->ggml_type, cols);
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *row = (uint8_t *)blocks + rb * (uint64_t)r;
        if (f->weighted) qs_ggml_quantize_weighted(f->ggml_type, w + r * cols, row, 1, cols, importance);
        else qs_ggml_quantize(f->ggml_type, w + r * cols, row, cols);
    }
    free(ones);
    return 0;
}

static int ggml_fake(const qs_format *f, const float *w, float *out, int64_t rows, int64_t cols, const qs_calib *cal) {
    const qs_dtype_traits *tr = qs_dtype_get(f->ggml_type);
    const uint64_t rb = qs_dtype_row_bytes(f->ggml_type, cols);
    /* GPTQ works on the whole matrix; the others row by row, holding one row of blocks */
    const int whole = f->gptq && !(cal && cal->lookup && !cal->gram);
    void *blocks = malloc(whole ? rb * (size_t)rows : rb);
    if (!blocks) return -1;
    int rc = 0;
    if (whole) {
        if (!(rc = qs_format_quantize_blocks(f, w, rows, cols, cal, blocks))) tr->to_float(blocks, out, rows * cols);
    } else {
        for (int64_t r = 0; r < rows && !rc; r++)
            if (!(rc = qs_format_quantize_blocks(f, w + r * cols, 1, cols, cal, blocks))) tr->to_float(blocks, out + r * cols, cols);
    }
    free(blocks);
    return rc;
}

const qs_format_ops qs_ggml_ops = {ggml_applies, ggml_bpw, ggml_fake, NULL};
