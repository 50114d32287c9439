/* qs_format: the registry of number formats, one descriptor per named format, and the single
 * vocabulary of names used by the CLI, the database, plans and reports:
 *   int{2..8}-{tensor|channel|g32|g64|g128}-{sym|asym}[-mse]   uniform integer, round to nearest,
 *        min/max scales ("-mse": per-group MSE-optimal clipping search); channel = output row,
 *        groups run along the input dimension (a last partial group is allowed)
 *   q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k   llama.cpp block types, byte-exact
 *   q4_0-w q4_1-w q5_0-w q5_1-w q2_k-w .. q6_k-w       the same blocks with activation-weighted
 *                                                      rounding (llama-quantize --imatrix's search,
 *                                                      importance = the inputs' mean square)
 *   q2_k-gptq .. q8_0-gptq (every block type above)    the same blocks with GPTQ error
 *                                                      compensation (needs the inputs' Gram matrix)
 *   iq4_nl iq4_xs [-w]                                 llama.cpp's 4-bit non-uniform grid (32-blocks;
 *                                                      256-blocks with 6-bit sub-scales), byte-exact,
 *                                                      "-w" with the importance as llama.cpp's imatrix
 *   iq3_s iq3_xxs iq2_s iq1_m [-w]                     llama.cpp's lattice i-quants (codebooks of 4
 *   iq2_xs-w iq2_xxs-w iq1_s-w                         or 8 values), byte-exact; the last three only
 *                                                      weighted: llama.cpp refuses them without an
 *                                                      imatrix (ggml_iq_quant.c, ggml_iq1_quant.c)
 *   mxfp4 nvfp4                                        llama.cpp's E2M1 types (E8M0 scale per 32;
 *                                                      unsigned E4M3 scale per 16, no tensor scale)
 *   tq1_0 tq2_0                                        llama.cpp's ternary types (1.69 and 2.06 bpw)
 *   f16 bf16                                           IEEE half, bfloat16 (round to even)
 *   fp8-e4m3 fp8-e5m2 [-channel]                       fp8 with an fp32 scale per tensor/row,
 *                                                      round to nearest even, saturating
 *   nf4-g{32,64,128}                                   NormalFloat4 with an fp32 absmax per group
 *   nuq{3,4}-channel                                   non-uniform (SqueezeLLM-style): a per-row
 *                                                      codebook of 2^b fp16 values from k-means,
 *                                                      weighted by the inputs' mean square if known
 *   ocp-mxfp4 mxfp6-e2m3 mxfp6-e3m2 mxfp8-e4m3         OCP microscaling: 32-value blocks with an
 *   mxfp8-e5m2                                         E8M0 (power of two) scale, ties to even
 *   nvidia-nvfp4                                       E2M1 values, an E4M3 scale per 16 and an
 *                                                      f32 scale per tensor, as ModelOpt stores it
 *                                                      (mx_quant.c; "mxfp4"/"nvfp4" are the GGUF types)
 *   int4-g128-sym/asym q4_0 q4_1 q4_k iq4_nl iq4_xs [-awq]  AWQ: per-input-channel scales searched
 *                                                      on the calibration inputs, folded into what
 *                                                      feeds the layer when written (awq.h)
 *   <format>-sp0.45                                    dense-and-sparse: the top 0.45 % magnitudes
 *                                                      kept in fp16 (CSR indices), the rest in <format>
 * A weight matrix is (rows = output features, cols = input features), row-major.
 * Analyzers iterate the registry; nothing else switches on format names. */
#ifndef QS_FORMAT_H
#define QS_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "core/qs_error.h"

typedef enum {
    QS_FAM_INT, QS_FAM_GGML, QS_FAM_FLOAT16, QS_FAM_FP8, QS_FAM_NF4, QS_FAM_NONUNIFORM, QS_FAM_SPARSE, QS_FAM_MX
} qs_family;
typedef enum { QS_GRAN_TENSOR, QS_GRAN_CHANNEL, QS_GRAN_GROUP } qs_granularity;

typedef struct qs_format qs_format;

/* What calibration tells a quantizer about a matrix's inputs; any field may be NULL.
 * importance: (cols) the inputs' mean square; gram: (cols, cols) X^T X, any positive multiple;
 * mean_abs: (cols) the inputs' mean absolute value;
 * lookup: the matrix is a table read by index (an untied token embedding), it has no inputs:
 * GPTQ formats round it to nearest, as their plain block type does. */
typedef struct {
    const float *importance;
    const float *gram;
    int lookup;
    const float *mean_abs; /* (cols) the inputs' mean absolute value (AWQ's statistic) */
} qs_calib;

/* What a format with a per-tensor figure takes from the whole tensor before it rounds any row
 * (gathered by scans over the rows: row_rounding.h) */
typedef struct {
    float lo, hi;    /* min(w, 0) and max(w, 0) over the tensor (its absmax is max(-lo, hi)) */
    float alpha;     /* a per-tensor "-mse" int format: the range factor with the lowest squared error */
    float threshold; /* dense-and-sparse: magnitudes above it are kept in fp16 ... */
    int64_t ties;    /* ... and as many of those equal to it as this says, first in row order; the
                      * rows' rounding counts them down */
} qs_tensor_figures;

typedef struct {
    /* 1 when the format can store a (rows, cols) matrix; else 0 and a reason in why */
    int (*applies)(const qs_format *f, int64_t rows, int64_t cols, char *why, size_t cap);
    /* true storage cost in bits per weight: values, scales, zero points, codebooks, indices */
    double (*bits_per_weight)(const qs_format *f, int64_t rows, int64_t cols);
    /* out = dequantize(quantize(w)); w and out (rows, cols); out may equal w. cal (or NULL):
     * formats that fit a codebook or weighted scales use cal->importance, GPTQ formats need
     * cal->gram, the others ignore it. Returns 0, -1 when out of memory, -2 when the format
     * needs calibration it was not given, -3 when that calibration is unusable (a Gram matrix
     * with a non-finite value, or not positive definite even with heavy dampening). */
    int (*fake_quantize)(const qs_format *f, const float *w, float *out, int64_t rows, int64_t cols,
                         const qs_calib *cal);
    /* NULL, or for a format with a per-tensor figure: the same for a block of the tensor's rows,
     * given the whole tensor's figures; the blocks, taken in row order, give exactly what
     * fake_quantize gives on the whole tensor */
    int (*fake_quantize_rows)(const qs_format *f, qs_tensor_figures *t, const float *w, float *out, int64_t rows,
                              int64_t cols, const qs_calib *cal);
} qs_format_ops;

struct qs_format {
    char name[32];
    int family;      /* qs_family */
    int bits;        /* bits per stored value */
    int granularity; /* qs_granularity (INT, FP8, NF4) */
    int group;       /* group length along the input dimension (QS_GRAN_GROUP) */
    int symmetric;   /* INT */
    int clip_search; /* INT: MSE-optimal clipping per group */
    int ggml_type;   /* GGML and FLOAT16: the qs_dtype of the stored values */
    int weighted;    /* GGML: activation-weighted rounding (needs the importance to matter) */
    int gptq;        /* GGML: GPTQ error compensation (needs the inputs' Gram matrix) */
    int awq;         /* AWQ rounding of `base` (awq.h: needs the inputs' mean square and Gram matrix) */
    int fp8_exp;     /* FP8: exponent bits (4: e4m3, 5: e5m2) */
    int elem_exp, elem_mant; /* MX: the element format's exponent and mantissa bits */
    int nvfp4;       /* MX: NVIDIA's variant (E4M3 block scales, an f32 tensor scale) */
    double sparse_pct;        /* SPARSE: percent of values kept in fp16 */
    const qs_format *base;    /* SPARSE: the dense part's format; AWQ: the format it rounds with */
    const qs_format_ops *ops;
};

/* Every named format, in a stable order. */
int qs_format_count(void);
const qs_format *qs_format_at(int i);

/* The format called name, or NULL (with a message listing the vocabulary) */
const qs_format *qs_format_find(const char *name, qs_error *err);

/* Parses a comma-separated list ("int4-g128-asym,q4_k,fp8-e4m3"); "default" expands to the
 * default sweep. *out is malloc'd (caller frees). */
int qs_format_parse_list(const char *list, const qs_format ***out, int *n, qs_error *err);
const char *qs_format_default_list(void);

static inline int qs_format_applies(const qs_format *f, int64_t rows, int64_t cols, char *why, size_t cap) {
    return f->ops->applies(f, rows, cols, why, cap);
}
static inline double qs_format_bpw(const qs_format *f, int64_t rows, int64_t cols) {
    return f->ops->bits_per_weight(f, rows, cols);
}
/* Returns 0, or QS_ERR_USAGE when the format does not apply to the shape. */
int qs_format_fake_quantize(const qs_format *f, const float *w, float *out, int64_t rows, int64_t cols, qs_error *err);
/* The same with per-input-column importance (NULL = uniform). */
int qs_format_fake_quantize_weighted(const qs_format *f, const float *w, float *out, int64_t rows, int64_t cols,
                                     const float *importance, qs_error *err);
/* The same with everything calibration measured (cal may be NULL); a GPTQ format without
 * cal->gram is a QS_ERR_INPUT naming what is missing. */
int qs_format_fake_quantize_calib(const qs_format *f, const float *w, float *out, int64_t rows, int64_t cols,
                                  const qs_calib *cal, qs_error *err);
/* The blocks a format with a GGUF type stores (llama.cpp block types, f16, bf16: f->ggml_type),
 * rows of qs_dtype_row_bytes(f->ggml_type, cols) bytes at blocks; cal as for fake quantizing.
 * Returns 0, -1 out of memory, -2 for a format without a GGUF type (or the shape does not fit,
 * or a GPTQ format without cal->gram, or an AWQ format: its blocks need the scales folded), -3 an unusable Gram matrix. (ggml_format.c) */
/* 1 when qs_format_quantize_blocks can give f's blocks for rows of `cols` values (a GGUF type that
 * fits the width; not AWQ, whose blocks need the scales folded); cols <= 0: whatever the width */
int qs_format_has_blocks(const qs_format *f, int64_t cols);
int qs_format_quantize_blocks(const qs_format *f, const float *w, int64_t rows, int64_t cols, const qs_calib *cal, void *blocks);

/* 1 when quantizing a block of a matrix's rows gives exactly those rows of quantizing the whole
 * matrix (no per-tensor scale, threshold or search), so the analyzers may stream it a block of
 * rows at a time; 0 for per-tensor int/fp8 scales, NVIDIA's tensor scale, dense-and-sparse's
 * global threshold, AWQ's per-tensor search and GPTQ (kept whole). test_format_invariants
 * checks it for every format that says 1. */
int qs_format_rows_independent(const qs_format *f);
/* 1 when the format's result depends on the inputs' statistics (weighted or GPTQ rounding) */
static inline int qs_format_needs_calib(const qs_format *f) { return f->weighted || f->gptq || f->awq; }

/* 1 if a plan may keep a tensor in this plain float type: "f32" (not a registered format: the
 * identity) or a registered 16-bit float ("f16", "bf16"). */
int qs_format_is_float(const char *name);
/* The ggml type name a format is stored as in a GGUF ("q4_0" for q4_0, q4_0-w and q4_0-gptq;
 * "f16", "bf16", "f32" for themselves), or the name itself for formats no GGUF type holds. */
const char *qs_format_stored_type(const char *name);

/* "int", "ggml", "float16", "fp8", "nf4", "nonuniform", "sparse" */
const char *qs_family_name(int family);
/* "tensor", "channel", "group", or NULL when the family has no granularity */
const char *qs_granularity_name(const qs_format *f);

#endif
