/* The engine's insides, shared by its forward pass (engine.c) and its backward pass
 * (backward.c) only: nothing outside src/engine includes this. */
#ifndef QS_ENGINE_IMPL_H
#define QS_ENGINE_IMPL_H

#include <math.h>

#include "engine/engine.h"

typedef struct {
    const float *attn_norm, *ffn_norm;
    const float *q_norm, *k_norm;            /* per-head norms of q and k (qk_norm families), else NULL */
    const float *attn_post_norm, *ffn_post_norm; /* post_norms families, else NULL */
    const float *bq, *bk, *bv;               /* biases on q, k, v where the file has them, else NULL */
    int sliding;                             /* 1: sliding-window attention with the sliding RoPE */
    int fused;                               /* 1: QKV and a stacked gate|up in UP (Phi-3) */
    int moe;                                 /* 1: ROUTER and the stacked experts instead of GATE, UP, DOWN */
    const qs_tensor *w[QS_LIN_COUNT]; /* the model's weights, as stored in the file (NULL: not in this layout) */
    const float *over[QS_LIN_COUNT];  /* overrides (f32), or NULL */
} layer;

struct qs_engine {
    const qs_model *m;
    qs_arch a;
    int threads;
    layer *layers;
    const float *output_norm;
    const qs_tensor *output;
    const float *output_over;
    /* a weight stored in another type than f32 is expanded to f32 here, a block of rows at a
     * time, just before its matmul: the model stays as stored (memory: the file's pages, not
     * 4 bytes a weight) */
    float *wbuf;
    size_t wbuf_cap; /* floats */
    int llamacpp_numerics;
    float *xr; /* rounded activations, (cap, max(dim, hidden)) */
    void **owned;
    int n_owned;
    float **capture;
    const float *emb_over;
    const qs_tensor *emb_stored; /* qs_engine_override_embedding_stored, or NULL */
    qs_observe_fn observe;
    void *observe_user;
    qs_site_fn site;
    void *site_user;
    /* scratch, grown on demand */
    int cap;
    int seq, scores_seq; /* the rows are sequences of seq positions (a batch); the scores' capacity */
    float *x, *xb, *q, *k, *v, *att, *h1, *h3, *scores;
    float *fz; /* a fused matrix's output, (cap, max(q + 2 kv, 2 hidden)); only with fused layers */
    int any_fused, any_moe;
    /* mixture of experts: router logits (cap, n_expert), the routed tokens' inputs and outputs
     * (cap, dim), their expert hidden states (cap, expert_ff), the routing (cap, n_expert_used) */
    float *router, *xe, *ye, *he1, *he3, *route_w;
    int *route_e, *picked;
    int64_t *expert_tokens; /* (n_layers, n_expert) */
    double *rope_cos, *rope_sin;         /* (cap, head_dim/2), the global layers' RoPE */
    double *rope_cos_swa, *rope_sin_swa; /* the sliding layers' (their own base), or NULL */
    double matmul_s, expand_s;
    /* qs_engine_transform_weights: tensors whose rows are rewritten as they are expanded */
    struct qse_transform {
        const qs_tensor *t;
        qs_weight_fn fn;
        void *user;
    } * xf;
    int n_xf;
};

/* y = x W^T with W = rows [row0, row0 + out) of the stored tensor t (or of the f32 override):
 * x (n, in), y (n, out); stored types are expanded a block of rows at a time */
void qse_matmul_rows(qs_engine *e, float *y, const float *x, const qs_tensor *t, const float *over, int64_t row0, int n,
                     int in, int out);
/* rows [row0, row0 + nr) of a linear's weights as f32 (in columns each): the override or the
 * f32 tensor in place, else expanded into e->wbuf (nr at most qse_weight_block rows) */
const float *qse_weight_rows(qs_engine *e, const qs_tensor *t, const float *over, int64_t row0, int64_t nr, int in);
/* how many rows of `in` columns one expansion may hold (at most out) */
int64_t qse_weight_block(const qs_engine *e, int in, int64_t out);
/* out = RMSNorm(x) * w row by row, (n, d); out may be x */
void qse_rmsnorm(const qs_engine *e, float *out, const float *x, const float *w, int n, int d, float eps);
/* RoPE on each head of x (n, n_heads * head_dim) in place, position = row; inverse: by -angle */
void qse_rope(const qs_engine *e, float *x, int n, int n_heads, int sliding, int inverse);
/* row t of the attention scores (n of them) turned into probabilities in place over the window's
 * positions [max(0, t - window + 1), t], zero elsewhere; the sum in double. Returns the window's
 * first position. The forward and the backward pass share it, so they see the same P. */
static inline int qse_softmax_causal_row(float *row, int n, int t, int window) {
    const int first = t - window + 1 > 0 ? t - window + 1 : 0;
    for (int i = 0; i < first; i++) row[i] = 0.0f;
    float mx = row[first];
    for (int i = first + 1; i <= t; i++) mx = row[i] > mx ? row[i] : mx;
    double sum = 0.0;
    for (int i = first; i <= t; i++) {
        row[i] = expf(row[i] - mx);
        sum += row[i];
    }
    const float inv = (float)(1.0 / sum);
    for (int i = first; i <= t; i++) row[i] *= inv;
    for (int i = t + 1; i < n; i++) row[i] = 0.0f;
    return first;
}

/* causal attention of e->q, e->k, e->v into e->att (the layer's window when sliding) */
void qse_attention(qs_engine *e, int n, int sliding);
float qse_gelu_tanh(float x);
void qse_add_bias(float *y, const float *b, int n, int d);
void qse_split_columns(const float *src, int n, int w, float *a, int wa, float *b, int wb, float *c, int wc);
/* the scratch for n rows made of sequences of seq positions; 0 or -1 out of memory */
int qse_grow(qs_engine *e, int n, int seq);
/* threads worth waking for `work` element operations */
int qse_par_threads(const qs_engine *e, long work);

#endif
