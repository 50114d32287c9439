/* What a GGUF must say about a model that did not come from a GGUF file (a llama2.c checkpoint,
 * a Hugging Face safetensors model), so that `qsense quantize` can write one that llama.cpp
 * loads: the family's hyper-parameters ({arch}.*), the tokenizer (tokenizer.ggml.*), and the
 * row order llama.cpp's llama RoPE expects of attn_q / attn_k. */
#ifndef QS_GGUF_MODEL_META_H
#define QS_GGUF_MODEL_META_H

#include <stdint.h>

#include "core/qs_error.h"
#include "io/gguf_write.h"
#include "io/model.h"
#include "tok/vocab.h"

/* Adds general.architecture, general.name and the {arch}.* keys from m->arch (head length,
 * sliding-window layers and their RoPE base, linear RoPE scaling, logit soft-cap where the model
 * has them), and the tokenizer.ggml.* keys from v: SentencePiece vocabularies as "llama" (tokens,
 * scores, types), byte-level BPE as "gpt2" (tokens, types, merges; pre-tokenizer gpt2, smollm,
 * llama-bpe or qwen2). QS_ERR_INPUT when the model or vocabulary cannot be expressed (an attention
 * scale the family's GGUF cannot carry; a SentencePiece vocabulary from a tokenizer.json, whose
 * merge ranks llama.cpp's SentencePiece tokenizer cannot use). */
int qs_gguf_put_model_meta(qs_gguf_writer *w, const qs_model *m, const qs_vocab *v, qs_error *err);

/* 1 when tensor `name` of m must have its rows reordered for llama.cpp (attn_q / attn_k, weight or
 * bias, of a model whose RoPE rotates halves, as Hugging Face's llama does, written as a family
 * whose GGUF rotates adjacent pairs: llama); then qs_llama_rows_for_gguf does it in place. */
int qs_llama_needs_row_order(const qs_model *m, const char *name);
/* w: (rows, cols), rows = n_heads x head_dim; within each head, row s * head_dim/2 + j moves to
 * 2j + s (what llama.cpp's convert_hf_to_gguf.py does to the weights). */
int qs_llama_rows_for_gguf(float *w, int64_t rows, int64_t cols, int head_dim);

#endif
