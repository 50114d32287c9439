/* Quantizers for llama.cpp's block types, reproducing llama-quantize without an imatrix
 * (ggml_quantize_chunk with no importance) byte for byte: the legacy and K types, the
 * i-quants but iq2_xxs, iq2_xs and iq1_s (which need an importance: weighted only), mxfp4,
 * nvfp4, tq1_0, tq2_0. Dequantization is qs_dtype's (bit-exact too).
 * Each function quantizes n values (n a multiple of the block size) into blocks at dst. */
#ifndef QS_GGML_QUANT_H
#define QS_GGML_QUANT_H

#include <stdint.h>

/* Quantizes n floats (a multiple of the type's block size) into dst; returns 0, or -1 when the
 * type has no quantizer here. dst needs qs_dtype_row_bytes(type, n) bytes. */
int qs_ggml_quantize(int type, const float *src, void *dst, int64_t n);

/* 1 if qs_ggml_quantize supports the type */
int qs_ggml_can_quantize(int type);

/* Activation-weighted rounding (llama-quantize with an imatrix): nrows rows of n_per_row values,
 * importance[n_per_row] per input column (the inputs' mean square). Same block layout as
 * qs_ggml_quantize. q4_0, q4_1, q5_0, q5_1, q2_k .. q6_k, every i-quant, and q8_0 (which
 * llama.cpp leaves unweighted); returns -1 for other types (mxfp4, nvfp4 and the ternary types
 * ignore an imatrix in llama.cpp). (ggml_quant_weighted.c) */
int qs_ggml_quantize_weighted(int type, const float *src, void *dst, int64_t nrows, int64_t n_per_row, const float *importance);
int qs_ggml_can_quantize_weighted(int type);

/* Element codes (ggml_codes.c): the largest stored code of a type (-1: not handled), and
 * setting element e's code inside one block, leaving its scales and other elements alone. For
 * fixed scales each element dequantizes affinely in its code. q4_0 .. q8_0, q2_k .. q6_k. */
int qs_ggml_code_max(int type);
void qs_ggml_code_set(int type, void *block, int e, int code);

/* GPTQ error compensation (gptq.c): quantizes W (rows, cols) into rows of blocks at dst
 * (rows x qs_dtype_row_bytes(type, cols) bytes), minimising ||(W - W^) X||^2 for inputs whose
 * Gram matrix X^T X (cols, cols; any positive multiple) is gram. Returns 0, -1 when out of
 * memory, -2 when the type or shape is not supported, -3 when gram has a non-finite value or
 * cannot be factored even with heavy dampening. */
int qs_gptq_quantize(int type, const float *w, int64_t rows, int64_t cols, const float *gram, void *dst);
int qs_gptq_supports(int type);

/* The same in two steps, so a large matrix can be quantized a block of rows at a time (its rows
 * are compensated independently, given H): the factor of H, made once (cols^2 floats, and twice
 * that in doubles while it is made), then any rows with it, giving the blocks the whole matrix
 * would get. make: 0, -1 out of memory, -3 as above. quantize: 0, -1, -2 as above. */
typedef struct {
    int64_t cols;
    float *u;   /* (cols, cols) upper triangular, (H + dampening)^-1 = U^T U */
    float *imp; /* (cols) the block scales' fit importance: H's diagonal, normalized */
} qs_gptq_factor;
int qs_gptq_factor_make(const float *gram, int64_t cols, qs_gptq_factor *out);
void qs_gptq_factor_free(qs_gptq_factor *g);
int qs_gptq_quantize_factored(int type, const float *w, int64_t rows, const qs_gptq_factor *g, void *dst);

#endif
