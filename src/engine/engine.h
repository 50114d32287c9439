/* qs_engine: the decoder forward pass (llama and the families of io/arch.h) over a whole chunk
 * of tokens at once (OpenBLAS sgemm for every matmul), from an empty cache, returning logits
 * for the positions asked for.
 * Two seams for the analyzers:
 *   observe:  a callback that sees the input of every linear layer, (n_tokens, n_in);
 *   override: substitute a linear layer's weights (e.g. fake-quantized) without touching the
 *             model. */
#ifndef QS_ENGINE_H
#define QS_ENGINE_H

#include "core/qs_error.h"
#include "io/model.h"

#include <stdint.h>

typedef enum {
    QS_LIN_Q, QS_LIN_K, QS_LIN_V, QS_LIN_O, QS_LIN_GATE, QS_LIN_UP, QS_LIN_DOWN,
    QS_LIN_QKV,    /* q, k and v fused in one matrix (Phi-3): then Q, K and V are absent, and UP
                    * holds gate and up stacked (2 x hidden rows) with GATE absent */
    QS_LIN_ROUTER, /* mixture of experts (qwen3moe): the router, (n_expert, dim), and each */
    QS_LIN_GATE_EXPS, QS_LIN_UP_EXPS, QS_LIN_DOWN_EXPS, /* expert's gate, up, down stacked */
    QS_LIN_OUTPUT, /* the output head; its layer index is n_layers */
    QS_LIN_COUNT
} qs_linear;

/* GGUF name suffix of a linear kind ("attn_q", ..., "output"). */
const char *qs_linear_name(int kind);
/* The kind whose input `kind` reads: K and V read Q's (the attention norm's output), UP reads
 * GATE's (the FFN norm's, observed as GATE's in fused layers too); every other kind its own. */
int qs_linear_input_of(int kind);

/* x: (n_tokens, n_in) row-major, valid during the call only. The expert kinds are observed once
 * per expert that received tokens, with those tokens' inputs only. */
typedef void (*qs_observe_fn)(void *user, int layer, int kind, const float *x, int n_tokens, int n_in);

typedef struct qs_engine qs_engine;

/* Prepares the model for inference. Weights stay as stored in the (mapped) file: f32 ones are
 * used in place, others are expanded to f32 a block of rows at a time (at most 32 MiB) just
 * before each matmul, so memory is the file's pages plus that scratch and the activations, not
 * 4 bytes per weight. n_threads <= 0 means all cores. */
int qs_engine_new(qs_engine **out, const qs_model *m, int n_threads, qs_error *err);
void qs_engine_free(qs_engine *e);

/* Runs tokens[0..n) as one sequence from an empty cache and writes the logits of positions
 * [logits_from, n) to logits: (n - logits_from, n_vocab) row-major. */
int qs_engine_forward(qs_engine *e, const int *tokens, int n, int logits_from, float *logits, qs_error *err);

void qs_engine_set_observer(qs_engine *e, qs_observe_fn fn, void *user);

/* Where deployment quantizes activations (weight + activation formats, the KV cache). A site fn
 * may change, in place, the values a site carries: after the observer saw them, before they are
 * used, so calibration sees exact inputs and the rest of the pass sees quantized ones. */
typedef enum {
    QS_SITE_ATTN_IN,     /* the input of q, k and v (or the fused qkv): (n, dim) */
    QS_SITE_ATTN_OUT,    /* the input of attn_output: (n, n_heads * head_dim) */
    QS_SITE_FFN_IN,      /* the input of gate and up (fused gate|up; MoE: the router and every expert) */
    QS_SITE_FFN_DOWN_IN, /* the input of ffn_down, (n, hidden) (MoE: each expert's, (m, expert_ff)) */
    QS_SITE_HEAD_IN,     /* the output head's input (layer n_layers), (rows, dim) */
    QS_SITE_Q, QS_SITE_K, QS_SITE_V, /* attention after RoPE: queries, and what the KV cache holds:
                                      * keys and values, (n, n_kv_heads * head_dim) */
    QS_SITE_COUNT
} qs_site;
typedef void (*qs_site_fn)(void *user, int layer, int site, float *x, int n, int width);
/* NULL turns it off. With llama.cpp numerics on, its own f16 rounding of q, k, v comes first. */
void qs_engine_set_site_quant(qs_engine *e, qs_site_fn fn, void *user);
/* "attn_in", "attn_out", "ffn_in", "ffn_down_in", "head_in", "q", "k", "v" */
const char *qs_site_name(int site);

/* Mixture of experts: how many tokens the router sent to expert `expert` of `layer` over every
 * forward since the engine was made or the counts were reset (0 for dense layers). */
int64_t qs_engine_expert_tokens(const qs_engine *e, int layer, int expert);
void qs_engine_reset_expert_tokens(qs_engine *e);

/* Uses w ((out, in) row-major f32, borrowed until replaced) for linear (layer, kind); NULL
 * restores the model's own weights. */
int qs_engine_override(qs_engine *e, int layer, int kind, const float *w, qs_error *err);

/* Uses t (a tensor in any stored type, its data borrowed until the engine is freed) in place of
 * the model's weights of linear (layer, kind) (kind QS_LIN_OUTPUT: the output head): expanded
 * block by block like the model's own, so a quantized candidate costs its stored size, not an
 * f32 copy. t must have the replaced tensor's shape. */
int qs_engine_override_stored(qs_engine *e, int layer, int kind, const qs_tensor *t, qs_error *err);
/* The same for the token embedding table (rows looked up by token id). */
int qs_engine_override_embedding_stored(qs_engine *e, const qs_tensor *t, qs_error *err);

/* Rewrites tensor t's rows as the engine reads them: each block of rows [row0, row0 + n) it is
 * about to use, expanded to f32 in w ((n, t->ne[0]), row-major), goes through fn, which may
 * change it in place (a check runs a planned format whose rows are rounded independently this
 * way, without an f32 copy of the model). t is a tensor the engine reads (the model's, or one
 * given to qs_engine_override_stored), matched by address, in every use (a linear, the head, the
 * embedding rows); it then counts as f32 weights (no llama.cpp activation rounding beside it).
 * fn NULL removes the transform. */
typedef void (*qs_weight_fn)(void *user, const qs_tensor *t, int64_t row0, int64_t n, float *w);
int qs_engine_transform_weights(qs_engine *e, const qs_tensor *t, qs_weight_fn fn, void *user, qs_error *err);

/* Prefix cache support for per-tensor sensitivity. With capture set, every forward stores the
 * residual stream entering each layer: capture[l] (n, dim) for l in [0, n_layers), and
 * capture[n_layers] the final hidden state before the output norm (caller-owned buffers of at
 * least n * dim floats each; NULL turns capturing off). */
void qs_engine_set_capture(qs_engine *e, float **capture);

/* Runs layers [layer, n_layers) and the output head from x (n, dim), the residual stream
 * entering `layer` (layer == n_layers: only the output norm and head). Logits as
 * qs_engine_forward. x is not modified. */
int qs_engine_forward_from(qs_engine *e, int layer, const float *x, int n, int logits_from, float *logits, qs_error *err);

/* The same for n_seq independent sequences of seq positions at once, x (n_seq * seq, dim) their
 * streams one after another: every matmul runs once on all of them (a stored weight is expanded
 * once, not once per sequence), attention stays within each sequence. logits: rows [logits_from,
 * seq) of each sequence, (n_seq * (seq - logits_from), n_vocab). */
int qs_engine_forward_batch_from(qs_engine *e, int layer, const float *x, int n_seq, int seq, int logits_from, float *logits,
                                 qs_error *err);

/* Layer-major execution (the profile's calibration pushes every chunk through layer l before
 * layer l + 1, so one layer's statistics are alive at a time):
 * embed writes the embedding rows of tokens into x (n, dim); run_layer applies layer `layer` to
 * x in place, showing its linears' inputs to the observer, or for layer == n_layers only shows
 * the output head its input (the output norm of x; x unchanged, no logits). The same
 * arithmetic as qs_engine_forward, so the numbers are identical. */
int qs_engine_embed(qs_engine *e, const int *tokens, int n, float *x, qs_error *err);
int qs_engine_run_layer(qs_engine *e, int layer, float *x, int n, qs_error *err);
/* run_layer for n_seq independent sequences of seq positions, x (n_seq * seq, dim) one after
 * another: each weight is expanded once for all of them, attention stays within each sequence */
int qs_engine_run_layer_batch(qs_engine *e, int layer, float *x, int n_seq, int seq, qs_error *err);

/* Backward pass (backward.c), for gradient-based sensitivity: the gradient of a loss with respect
 * to every linear's output. fn sees each linear's input x (n, n_in) and d loss / d its output
 * g (n, n_out); W's gradient would be g^T x. Fused layers report QKV and the stacked UP with
 * their outputs' gradients side by side. Computed in exact f32 whatever the numerics setting;
 * mixture-of-experts layers are refused.
 * layer_backward: x (n, dim) the residual stream entering `layer` (as captured), dy (n, dim)
 * d loss / d the stream leaving it; writes dx (n, dim), d loss / d x. */
typedef void (*qs_grad_fn)(void *user, int layer, int kind, const float *x, const float *g, int n, int n_in, int n_out);
int qs_engine_layer_backward(qs_engine *e, int layer, const float *x, const float *dy, float *dx, int n, qs_grad_fn fn,
                             void *user, qs_error *err);
/* The output norm and head: x (n, dim) the final residual stream (capture[n_layers]), rows
 * [from, n) gave logits (n - from, n_vocab) as qs_engine_forward returned them; dlogits holds
 * d loss / d those logits and is turned into d loss / d the head's output (through the logit
 * soft-cap); dx (n, dim) receives d loss / d x (zero on rows before from). */
int qs_engine_head_backward(qs_engine *e, const float *x, int n, int from, const float *logits, float *dlogits, float *dx,
                            qs_grad_fn fn, void *user, qs_error *err);

/* Substitutes the token embedding table ((n_vocab, dim) f32, borrowed); NULL restores. */
void qs_engine_override_embedding(qs_engine *e, const float *emb);

/* Floating-point operations of one forward pass over n tokens (matmuls and attention). */
double qs_engine_flops(const qs_engine *e, int n, int logits_rows);
/* Seconds spent in sgemm for weights, and expanding stored weights to f32, during the last
 * forward (for the benchmark). */
double qs_engine_matmul_seconds(const qs_engine *e);
double qs_engine_expand_seconds(const qs_engine *e);

int qs_engine_threads(const qs_engine *e);

/* on: round activations (and the KV cache to f16) the way llama.cpp's CPU backend does, to
 * reproduce llama-perplexity's figures; off (default): exact f32 evaluation. */
void qs_engine_set_llamacpp_numerics(qs_engine *e, int on);
int qs_engine_n_vocab(const qs_engine *e);
int qs_engine_n_dim(const qs_engine *e);
/* the architecture the engine runs (borrowed: valid while the engine lives) */
const qs_arch *qs_engine_arch(const qs_engine *e);
/* the model's tensors as stored in its file(s), in bytes */
uint64_t qs_engine_weight_bytes(const qs_engine *e);

#endif
