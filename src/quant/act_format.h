/* Activation and KV-cache formats: what weight + activation deployment (vLLM, TensorRT, llm-
 * compressor's W8A8 / FP8 / W4A4 schemes) and quantized KV caches (llama.cpp's -ctk/-ctv, vLLM's
 * fp8 cache) do to the values flowing between layers, simulated in f32 (quantize, dequantize).
 * A separate vocabulary from the weight formats (format.h), prefixed so the names never clash:
 *   a-int8-token        int8 symmetric, an f32 scale per token computed on the fly (dynamic)
 *   a-int8-tensor       int8 symmetric, one static scale per tensor input from calibration
 *   a-fp8-e4m3-token    fp8 e4m3, dynamic per-token f32 scale (absmax / 448)
 *   a-fp8-e4m3-tensor   fp8 e4m3, one static scale from calibration
 *   a-int4-g128         int4 symmetric, dynamic f32 scale per group of 128 (W4A4)
 *   a-mxfp4             OCP MXFP4 per token: E2M1, an E8M0 scale per 32 values (W4A4)
 *   a-nvfp4             NVFP4 per token: E2M1, an E4M3 scale per 16 and an f32 scale per token
 *   kv-f16 kv-q8_0 kv-q4_0 kv-q4_1 kv-q5_0 kv-q5_1 kv-iq4_nl
 *                       llama.cpp's cache types: each token's keys (after RoPE) and values
 *                       stored in those blocks, as ggml_quantize_chunk writes them
 *   kv-fp8-e4m3 kv-fp8-e5m2
 *                       vLLM's fp8 cache as it runs without calibrated scales (k_scale =
 *                       v_scale = 1: a plain saturating cast)
 * Rounding is to nearest with ties to even throughout (vLLM's kernels round so). */
#ifndef QS_ACT_FORMAT_H
#define QS_ACT_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "core/qs_error.h"

typedef enum { QS_AF_INT, QS_AF_FP8, QS_AF_ROW_FORMAT, QS_AF_BLOCKS } qs_act_kind;

typedef struct {
    char name[24];
    int kv;              /* 1: a KV-cache format (keys and values), 0: a linear layer's input */
    int kind;            /* qs_act_kind */
    int bits;            /* bits per stored value */
    int group;           /* QS_AF_INT: values per scale along a token's row (0: the whole row) */
    int is_static;       /* one scale per tensor input, from calibration's absmax */
    int fp8_exp;         /* QS_AF_FP8: 4 (e4m3) or 5 (e5m2) */
    float fixed_scale;   /* QS_AF_FP8 in a KV cache: the scale it runs with (1: uncalibrated) */
    const char *weight_format; /* ROW_FORMAT and BLOCKS: the weight format applied to each token's row */
    const char *what;    /* one line for --list-formats */
} qs_act_format;

int qs_act_format_count(void);
const qs_act_format *qs_act_format_at(int i);
/* The format called name, or NULL with the vocabulary in the message. */
const qs_act_format *qs_act_format_find(const char *name, qs_error *err);
/* A comma-separated list; kv says which vocabulary (a format of the other is refused by name).
 * "default" expands to the default list of that vocabulary. *out malloc'd. */
int qs_act_format_parse_list(const char *list, int kv, const qs_act_format ***out, int *n, qs_error *err);
const char *qs_act_format_default_list(int kv);

/* 1 when the format can hold rows of `width` values (block formats need whole blocks), else 0
 * and why. */
int qs_act_format_applies(const qs_act_format *f, int width, char *why, size_t cap);
/* Storage in bits per value, scales included, for rows of `width` values. */
double qs_act_format_bits(const qs_act_format *f, int width);

/* x (n, width), row = token, replaced in place by dequantize(quantize(x)). absmax: the
 * calibrated range of this input, which static formats take their scale from (ignored by the
 * others). Returns 0, -1 out of memory, -2 the format does not apply to the width, -3 a static
 * format without a usable absmax. */
int qs_act_format_apply(const qs_act_format *f, float *x, int64_t n, int width, float absmax);

#endif
