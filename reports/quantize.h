/* qsense quantize: applies a plan to a GGUF model and writes a GGUF v3 that llama.cpp loads:
 * the planned ggml block types (byte-exact llama.cpp encodings), f16/f32 where planned, the
 * metadata and tokenizer carried over, general.file_type set to "guessed" (a mix) and the plan's
 * prediction recorded under qsense.*. A plan made for another model is refused. */
#ifndef QS_QUANTIZE_H
#define QS_QUANTIZE_H

#include "core/qs_error.h"
#include "plan.h"

typedef struct {
    int64_t tensor_bytes, file_bytes;
    int n_quantized;
} qs_quantize_result;

/* db_path: the profile database, for the activation statistics that weighted-rounding ("-w")
 * formats need; may be NULL when the plan has none. */
int qs_quantize_gguf(const char *model_path, const qs_plan *plan, const char *db_path, const char *out_path, qs_quantize_result *res,
                     qs_error *err);

#endif
