/* qs_model: the one in-memory description of a model, whatever file it came from (GGUF,
 * llama2.c checkpoint, Hugging Face safetensors). Above src/io nothing knows the file format:
 * the engine, tokenizer and analyzers see hyper-parameters, a tensor table with GGUF-style
 * names (token_embd.weight, blk.3.attn_q.weight, ...) and, for inspect, metadata strings. */
#ifndef QS_MODEL_H
#define QS_MODEL_H

#include <stdint.h>

#include "core/qs_error.h"
#include "core/qs_file.h"

struct qs_gguf;
struct qs_vocab;

typedef enum { QS_ROPE_NORM = 0, QS_ROPE_NEOX = 2 } qs_rope_type;

typedef struct {
    char arch[32];     /* "llama" */
    int n_vocab;
    int dim;           /* embedding length */
    int hidden_dim;    /* feed-forward length */
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim;      /* dim / n_heads */
    int ctx_train;     /* context length the model was trained with (0 = unknown) */
    int ctx_orig;      /* the context before long-context training (Phi-3's original_max_position_embeddings; 0: none) */
    float norm_eps;
    float rope_base;
    int rope_type;     /* qs_rope_type: NORM rotates adjacent pairs, NEOX rotates halves */
    int tied_output;   /* 1 when the output head reuses token_embd */
    /* what the family puts around the seven linears (io/arch.h; llama: all off) */
    int ffn_act;       /* qs_ffn_act */
    int qk_norm;       /* per-head RMSNorm of q and k before RoPE */
    int post_norms;    /* RMSNorm of the attention and FFN outputs before the residual adds */
    float embed_scale; /* token embeddings are multiplied by this (1: none) */
    float attn_scale;  /* scale of q k^T (default 1/sqrt(head_dim)) */
    float logit_softcap; /* logits -> c * tanh(logits / c) when > 0 */
    float rope_scale;  /* positions multiplied by this in the global layers' RoPE (linear scaling) */
    const float *rope_freqs; /* head_dim/2 divisors of the global layers' RoPE frequencies (Llama 3.1's
                              * long-context scaling; GGUF's rope_freqs.weight), or NULL */
    int n_swa;         /* sliding-window width of the sliding layers (0: none) */
    float rope_base_swa; /* RoPE base of the sliding layers */
    const unsigned char *swa_layers; /* n_layers flags (1: sliding), owned by the model; NULL: none */
    /* mixture of experts (0 experts: dense) */
    int n_expert;      /* experts per MoE layer */
    int n_expert_used; /* experts each token is routed to (top-k) */
    int expert_ff;     /* each expert's feed-forward length */
    int expert_norm;   /* 1: the chosen experts' router probabilities are renormalized to sum 1 */
} qs_arch;

typedef struct {
    char name[96];
    int type;          /* qs_dtype */
    int n_dims;
    int64_t ne[4];     /* ne[0] = row length (input features), ne[1] = rows (output features) */
    const uint8_t *data; /* borrowed from a map, or owned by the model */
    uint64_t nbytes;
    uint64_t file_offset; /* absolute offset in its file, for messages and inspect */
    const float *scales;  /* QS_DT_I8_GROUPED only: one scale per group */
    int group;            /* QS_DT_I8_GROUPED only */
} qs_tensor;

typedef struct {
    char key[96];
    char value[160];   /* printable summary (arrays shortened) */
} qs_meta;

typedef struct qs_model {
    char *path;
    char format[16];   /* "gguf", "llama2c", "llama2c-v1", "llama2c-v2", "safetensors" */
    qs_arch arch;
    int n_tensors;
    qs_tensor *tensors;
    int n_meta;
    qs_meta *meta;
    struct qs_gguf *gguf;   /* set for GGUF models (the tokenizer reads its vocab) */
    qs_map **maps;          /* extra maps (llama2.c, safetensors shards) */
    int n_maps;
    void **owned;           /* allocations freed with the model */
    int n_owned;
    char *tokenizer_path;   /* tokenizer file found beside the model, if any */
} qs_model;

typedef struct {
    const char *tokenizer_path; /* --tokenizer (llama2.c: tokenizer.bin; else optional) */
} qs_model_options;

/* Opens a model: a .gguf file, a llama2.c .bin checkpoint, or a directory (or .safetensors /
 * index file) holding a Hugging Face model. Detects the format from the content. */
int qs_model_open(qs_model **out, const char *path, const qs_model_options *opt, qs_error *err);
void qs_model_close(qs_model *m);

/* sha256 (hex) of the content of every file the weights come from: the GGUF file, the llama2.c
 * checkpoint, every safetensors shard in order. */
int qs_model_fingerprint(const qs_model *m, char out[65], qs_error *err);

/* Tensor by name, or NULL. */
const qs_tensor *qs_model_find(const qs_model *m, const char *name);

/* Dequantizes rows [row0, row0+nrows) of t into dst (nrows * ne[0] floats). */
int qs_tensor_dequantize_rows(const qs_tensor *t, int64_t row0, int64_t nrows, float *dst);
int64_t qs_tensor_numel(const qs_tensor *t);

/* QS_ERR_INPUT naming the first tensor with NaN or Inf values (count, first row and column),
 * else 0. Reads every weight: the engine and profile call it before measuring anything. */
int qs_model_check_finite(const qs_model *m, qs_error *err);

/* Checks the tensor table against arch: every tensor its family's forward pass needs is
 * present with the right shape. Names the first missing or mis-shaped tensor. */
int qs_model_validate(const qs_model *m, qs_error *err);
/* Sets the family's fields of m->arch (io/arch.h) from its name, with the defaults a file may
 * override afterwards; QS_ERR_INPUT naming the supported families when the name is unknown. */
int qs_model_set_family(qs_model *m, const char *arch_name, qs_error *err);
/* Resolves what depends on the hyper-parameters once the loader has read them: the embedding
 * scale, the default attention scale, and which layers slide (swa_period < 0: the family's
 * default; the loader passes the file's pattern when it has one). */
int qs_model_finish_family(qs_model *m, int swa_period, qs_error *err);

/* Internal helpers for the loaders */
int qs_model_add_meta(qs_model *m, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void *qs_model_alloc(qs_model *m, size_t bytes);
/* Maps path for the model's lifetime; *map stays valid until qs_model_close. */
int qs_model_add_map(qs_model *m, const char *path, const qs_map **map, qs_error *err);
qs_tensor *qs_model_add_tensor(qs_model *m, const char *name);

int qs_model_load_gguf(qs_model *m, const char *path, qs_error *err);
int qs_model_load_llama2c(qs_model *m, const char *path, qs_error *err);
int qs_model_load_safetensors(qs_model *m, const char *path, qs_error *err);

#endif
