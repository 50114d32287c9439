/* qsense quantize: applies a plan to a model and writes a GGUF v3 that llama.cpp loads: the
 * planned ggml block types (byte-exact llama.cpp encodings), f16/f32 where planned,
 * general.file_type set to "guessed" (a mix) and the plan's prediction recorded under qsense.*.
 * From a GGUF the metadata and tokenizer are carried over; from a llama2.c checkpoint or a
 * Hugging Face llama they are written from the model and its tokenizer (gguf_model_meta.h),
 * attn_q / attn_k rows reordered for llama.cpp's RoPE where needed. A plan made for another
 * model is refused. */
#ifndef QS_QUANTIZE_H
#define QS_QUANTIZE_H

#include "core/qs_error.h"
#include "reports/planner/plan.h"

typedef struct {
    int64_t tensor_bytes, file_bytes;
    int n_quantized;
} qs_quantize_result;

typedef struct {
    const char *tokenizer_path; /* a llama2.c tokenizer.bin (NULL: the one beside the model) */
    const char *db_path;        /* the profile database, for the statistics that weighted ("-w") and
                                   GPTQ ("-gptq") formats need; NULL when the plan has none */
    int threads;                /* rows are rounded on this many threads (0: every core) */
    int quiet;                  /* no progress line on stderr */
    int64_t block_bytes;        /* f32 rows expanded at a time, at most (0: 32 MiB); tests make it small */
} qs_quantize_options;

/* The output is written as it is made: the header first, then each tensor's blocks, a block of
 * rows at a time, so memory stays about one tensor's f32 rows whatever the model's size. */
int qs_quantize_gguf(const char *model_path, const qs_plan *plan, const char *out_path, const qs_quantize_options *opt,
                     qs_quantize_result *res, qs_error *err);

#endif
