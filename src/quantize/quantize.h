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

/* tokenizer_path: a llama2.c tokenizer.bin (NULL: the one beside the model); db_path: the
 * profile database, for the statistics that weighted ("-w") and GPTQ ("-gptq") formats need;
 * may be NULL when the plan has none. */
int qs_quantize_gguf(const char *model_path, const char *tokenizer_path, const qs_plan *plan, const char *db_path,
                     const char *out_path, qs_quantize_result *res, qs_error *err);

#endif
