/* qs_dtype: the element types a model file can hold, as one table of traits indexed by type id
 * (ggml's ids for the ggml types, so GGUF type fields map directly), plus row dequantization.
 * The dequantizers are scalar references that reproduce ggml's dequantize_row_* bit for bit. */
#ifndef QS_DTYPE_H
#define QS_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    QS_DT_F32 = 0,
    QS_DT_F16 = 1,
    QS_DT_Q4_0 = 2,
    QS_DT_Q4_1 = 3,
    QS_DT_Q5_0 = 6,
    QS_DT_Q5_1 = 7,
    QS_DT_Q8_0 = 8,
    QS_DT_Q8_1 = 9,
    QS_DT_Q2_K = 10,
    QS_DT_Q3_K = 11,
    QS_DT_Q4_K = 12,
    QS_DT_Q5_K = 13,
    QS_DT_Q6_K = 14,
    QS_DT_Q8_K = 15,
    QS_DT_IQ2_XXS = 16,
    QS_DT_IQ2_XS = 17,
    QS_DT_IQ3_XXS = 18,
    QS_DT_IQ1_S = 19,
    QS_DT_IQ4_NL = 20,
    QS_DT_IQ3_S = 21,
    QS_DT_IQ2_S = 22,
    QS_DT_IQ4_XS = 23,
    QS_DT_IQ1_M = 29,
    QS_DT_BF16 = 30,
    QS_DT_TQ1_0 = 34,
    QS_DT_TQ2_0 = 35,
    QS_DT_MXFP4 = 39,
    QS_DT_NVFP4 = 40,
    QS_DT_GGML_COUNT = 43,
    /* Not ggml types: llama2.c "version 2" int8 with one fp32 scale per group of
     * qs_tensor.group elements, scales stored apart (qs_tensor.scales). */
    QS_DT_I8_GROUPED = 100,
} qs_dtype;

typedef struct {
    const char *name;   /* "f32", "q4_k", ... (lower case, as llama.cpp prints them) */
    int block_size;     /* elements per block (1 for plain floats) */
    int type_size;      /* bytes per block */
    /* dequantize n elements (n a multiple of block_size) from src to dst */
    void (*to_float)(const void *src, float *dst, int64_t n);
} qs_dtype_traits;

/* Traits of type t, or NULL when qsense cannot read it (unknown id, or a ggml type we don't
 * dequantize: q8_1, q8_k, the integer types). */
const qs_dtype_traits *qs_dtype_get(int t);

/* Name of a type id even when unsupported ("type 23"); returns a static or thread-local string. */
const char *qs_dtype_name(int t);

/* Bytes for n elements of type t (n a multiple of the block size); 0 if unsupported. */
uint64_t qs_dtype_row_bytes(int t, int64_t n);

#endif
