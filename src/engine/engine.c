/* qs_engine: the decoder forward pass (see engine.h); what a family adds around the seven
 * linears (q/k norms, post-norms, biases, GeGLU, sliding windows) is switched by qs_arch
 * fields. Shapes are written next to each matmul; x is the residual stream, (n, dim).
 * Numerics follow llama.cpp: RMSNorm sums squares in double, softmax sums in double, RoPE
 * angles in double. */
#include "engine/engine.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/qs_dtype.h"
#include "core/qs_parallel.h"
#include <unistd.h>
#include "engine/act_round.h"
#include "io/arch.h"
#include "engine/engine_impl.h"

static const char *const LIN_NAMES[QS_LIN_COUNT] = {
    "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "attn_qkv",
    "ffn_gate_inp", "ffn_gate_exps", "ffn_up_exps", "ffn_down_exps", "output"};

const char *qs_linear_name(int kind) { return kind >= 0 && kind < QS_LIN_COUNT ? LIN_NAMES[kind] : "?"; }

int qs_linear_input_of(int kind) {
    return kind == QS_LIN_K || kind == QS_LIN_V ? QS_LIN_Q
           : kind == QS_LIN_UP                  ? QS_LIN_GATE
           : kind == QS_LIN_UP_EXPS             ? QS_LIN_GATE_EXPS
                                                : kind;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *own(qs_engine *e, size_t bytes) {
    void **no = realloc(e->owned, sizeof(void *) * (size_t)(e->n_owned + 1));
    if (!no) return NULL;
    e->owned = no;
    void *p = malloc(bytes ? bytes : 1);
    if (p) e->owned[e->n_owned++] = p;
    return p;
}

/* the most floats one block of expanded weight rows may take: 8 Mi floats (32 MiB); a larger
 * matrix (an 8B model's FFN, its output head) runs as several sgemm calls over row blocks */
#define WBUF_MAX_FLOATS ((size_t)8 << 20)

/* 1 if t can be used in place as f32 (row-major, aligned) */
static int f32_in_place(const qs_tensor *t) { return t->type == QS_DT_F32 && ((uintptr_t)t->data % 4) == 0; }

/* f32 view of a small tensor (norm weights): the map itself for f32, else a dequantized copy */
static const float *as_f32(qs_engine *e, const qs_tensor *t, qs_error *err) {
    if (t->type == QS_DT_F32 && ((uintptr_t)t->data % 4) == 0) return (const float *)t->data;
    int64_t n = qs_tensor_numel(t);
    float *buf = own(e, (size_t)n * sizeof(float));
    if (!buf) {
        qs_errorf(err, QS_ERR_INTERNAL, "out of memory dequantizing %s (%lld values)", t->name, (long long)n);
        return NULL;
    }
    if (qs_tensor_dequantize_rows(t, 0, t->ne[1] * t->ne[2] * t->ne[3], buf)) {
        qs_errorf(err, QS_ERR_INPUT, "%s: cannot dequantize tensor %s of type %s", e->m->path, t->name,
                  qs_dtype_name(t->type));
        return NULL;
    }
    return buf;
}

int qs_engine_new(qs_engine **out, const qs_model *m, int n_threads, qs_error *err) {
    *out = NULL;
    int frc = qs_model_check_finite(m, err);
    if (frc) return frc;
    qs_engine *e = calloc(1, sizeof *e);
    if (!e) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    e->m = m;
    e->a = m->arch;
    e->threads = n_threads > 0 ? n_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    e->layers = calloc((size_t)e->a.n_layers, sizeof(layer));
    if (!e->layers) { free(e); return qs_errorf(err, QS_ERR_INTERNAL, "out of memory"); }
    char name[96];
    for (int l = 0; l < e->a.n_layers; l++) {
        layer *L = &e->layers[l];
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        if (!(L->attn_norm = as_f32(e, qs_model_find(m, name), err))) goto fail;
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
        if (!(L->ffn_norm = as_f32(e, qs_model_find(m, name), err))) goto fail;
        /* what the family adds around the linears (qs_model_validate checked they exist) */
        struct { const float **dst; const char *suffix; int wanted; } extra[] = {
            {&L->q_norm, "attn_q_norm.weight", e->a.qk_norm},      {&L->k_norm, "attn_k_norm.weight", e->a.qk_norm},
            {&L->attn_post_norm, "post_attention_norm.weight", e->a.post_norms},
            {&L->ffn_post_norm, "post_ffw_norm.weight", e->a.post_norms},
            {&L->bq, "attn_q.bias", -1}, {&L->bk, "attn_k.bias", -1}, {&L->bv, "attn_v.bias", -1}, /* where present */
        };
        for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
            if (!extra[i].wanted) continue;
            snprintf(name, sizeof name, "blk.%d.%s", l, extra[i].suffix);
            const qs_tensor *t = qs_model_find(m, name);
            if (!t && extra[i].wanted < 0) continue;
            if (!t) goto missing;
            if (!(*extra[i].dst = as_f32(e, t, err))) goto fail;
        }
        L->sliding = e->a.n_swa > 0 && e->a.swa_layers && e->a.swa_layers[l];
        snprintf(name, sizeof name, "blk.%d.attn_qkv.weight", l);
        L->fused = qs_model_find(m, name) != NULL;
        snprintf(name, sizeof name, "blk.%d.ffn_gate_inp.weight", l);
        L->moe = qs_model_find(m, name) != NULL && e->a.n_expert > 0;
        e->any_fused |= L->fused;
        e->any_moe |= L->moe;
        for (int k = 0; k < QS_LIN_OUTPUT; k++) {
            const int attn_absent = L->fused ? (k == QS_LIN_Q || k == QS_LIN_K || k == QS_LIN_V) : k == QS_LIN_QKV;
            const int expert_kind = k >= QS_LIN_ROUTER && k <= QS_LIN_DOWN_EXPS;
            const int ffn_absent = L->moe ? (k == QS_LIN_GATE || k == QS_LIN_UP || k == QS_LIN_DOWN)
                                          : expert_kind || (L->fused && k == QS_LIN_GATE);
            if (attn_absent || ffn_absent) continue;
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, LIN_NAMES[k]);
            if (!(L->w[k] = qs_model_find(m, name))) goto missing;
            if (!f32_in_place(L->w[k]) && L->w[k]->type != QS_DT_I8_GROUPED && !qs_dtype_get(L->w[k]->type)) goto missing;
        }
    }
    if (!(e->output_norm = as_f32(e, qs_model_find(m, "output_norm.weight"), err))) goto fail;
    if (!(e->output = qs_model_find(m, e->a.tied_output ? "token_embd.weight" : "output.weight"))) goto missing;
    if (e->any_moe && !(e->expert_tokens = own(e, sizeof(int64_t) * (size_t)e->a.n_layers * (size_t)e->a.n_expert))) {
        qs_engine_free(e);
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    }
    if (e->expert_tokens) memset(e->expert_tokens, 0, sizeof(int64_t) * (size_t)e->a.n_layers * (size_t)e->a.n_expert);
    /* the scratch for expanded rows: the largest weight not usable in place, up to the cap */
    size_t need = 0;
    for (int l = 0; l < e->a.n_layers; l++)
        for (int k = 0; k < QS_LIN_OUTPUT; k++)
            if (e->layers[l].w[k] && !f32_in_place(e->layers[l].w[k]) && (size_t)qs_tensor_numel(e->layers[l].w[k]) > need)
                need = (size_t)qs_tensor_numel(e->layers[l].w[k]);
    if (!f32_in_place(e->output) && (size_t)qs_tensor_numel(e->output) > need) need = (size_t)qs_tensor_numel(e->output);
    e->wbuf_cap = need < WBUF_MAX_FLOATS ? need : WBUF_MAX_FLOATS;
    if (e->wbuf_cap && !(e->wbuf = malloc(e->wbuf_cap * sizeof(float)))) {
        qs_engine_free(e);
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory for %zu MiB of weight scratch", e->wbuf_cap >> 18);
    }
    *out = e;
    return 0;
missing:
    qs_engine_free(e);
    return qs_errorf(err, QS_ERR_INPUT, "%s: a linear weight is missing or of a type qsense cannot expand", m->path);
fail:
    qs_engine_free(e);
    return err ? err->code : QS_ERR_INTERNAL;
}

static void free_scratch(qs_engine *e) {
    free(e->x); free(e->xb); free(e->q); free(e->k); free(e->v); free(e->att);
    free(e->h1); free(e->h3); free(e->scores); free(e->rope_cos); free(e->rope_sin); free(e->xr);
    free(e->rope_cos_swa); free(e->rope_sin_swa); free(e->fz);
    free(e->router); free(e->xe); free(e->ye); free(e->he1); free(e->he3); free(e->route_w); free(e->route_e); free(e->picked);
    e->router = e->xe = e->ye = e->he1 = e->he3 = e->route_w = NULL;
    e->scores = NULL;
    e->scores_seq = 0;
    e->route_e = e->picked = NULL;
}

void qs_engine_free(qs_engine *e) {
    if (!e) return;
    for (int i = 0; i < e->n_owned; i++) free(e->owned[i]);
    free(e->owned);
    free(e->layers);
    free(e->wbuf);
    free(e->xf);
    free_scratch(e);
    free(e);
}

void qs_engine_set_observer(qs_engine *e, qs_observe_fn fn, void *user) {
    e->observe = fn;
    e->observe_user = user;
}

int qs_engine_override(qs_engine *e, int layer_i, int kind, const float *w, qs_error *err) {
    if (kind == QS_LIN_OUTPUT) {
        e->output_over = w;
        return 0;
    }
    if (layer_i < 0 || layer_i >= e->a.n_layers || kind < 0 || kind >= QS_LIN_OUTPUT || !e->layers[layer_i].w[kind])
        return qs_errorf(err, QS_ERR_USAGE, "no linear layer %d/%s to override", layer_i, qs_linear_name(kind));
    e->layers[layer_i].over[kind] = w;
    return 0;
}

static int same_shape(const qs_tensor *a, const qs_tensor *b, qs_error *err) {
    if (a->ne[0] == b->ne[0] && qs_tensor_numel(a) == qs_tensor_numel(b)) return 0;
    return qs_errorf(err, QS_ERR_USAGE, "tensor %s: a replacement of %lld values in rows of %lld for %lld in rows of %lld", a->name,
                     (long long)qs_tensor_numel(b), (long long)b->ne[0], (long long)qs_tensor_numel(a), (long long)a->ne[0]);
}

/* grows the scratch that expanded rows go to, for a replacement stored in another type than the
 * model's weights (an f32 model has none), or a tensor whose rows are transformed as read */
static int fit_wbuf_for(qs_engine *e, const qs_tensor *t, qs_error *err) {
    const size_t need = (size_t)qs_tensor_numel(t) < WBUF_MAX_FLOATS ? (size_t)qs_tensor_numel(t) : WBUF_MAX_FLOATS;
    if (need <= e->wbuf_cap) return 0;
    float *grown = realloc(e->wbuf, need * sizeof(float));
    if (!grown) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory for %zu MiB of weight scratch", need >> 18);
    e->wbuf = grown;
    e->wbuf_cap = need;
    return 0;
}

static int fit_wbuf(qs_engine *e, const qs_tensor *t, qs_error *err) {
    if (f32_in_place(t)) return 0;
    return fit_wbuf_for(e, t, err);
}

int qs_engine_override_stored(qs_engine *e, int layer_i, int kind, const qs_tensor *t, qs_error *err) {
    const int grown = fit_wbuf(e, t, err);
    if (grown) return grown;
    if (kind == QS_LIN_OUTPUT) {
        int rc = same_shape(e->output, t, err);
        if (!rc) e->output = t, e->output_over = NULL;
        return rc;
    }
    if (layer_i < 0 || layer_i >= e->a.n_layers || kind < 0 || kind >= QS_LIN_OUTPUT || !e->layers[layer_i].w[kind])
        return qs_errorf(err, QS_ERR_USAGE, "no linear layer %d/%s to override", layer_i, qs_linear_name(kind));
    layer *L = &e->layers[layer_i];
    int rc = same_shape(L->w[kind], t, err);
    if (!rc) L->w[kind] = t, L->over[kind] = NULL;
    return rc;
}

static const struct qse_transform *transform_of(const qs_engine *e, const qs_tensor *t) {
    for (int i = 0; i < e->n_xf; i++)
        if (e->xf[i].t == t) return &e->xf[i];
    return NULL;
}

int qs_engine_transform_weights(qs_engine *e, const qs_tensor *t, qs_weight_fn fn, void *user, qs_error *err) {
    struct qse_transform *x = (struct qse_transform *)transform_of(e, t);
    if (!fn) {
        if (x) *x = e->xf[--e->n_xf];
        return 0;
    }
    int rc = fit_wbuf_for(e, t, err); /* an f32 tensor is copied there too, not used in place */
    if (rc) return rc;
    if (!x) {
        struct qse_transform *grown = realloc(e->xf, sizeof *grown * (size_t)(e->n_xf + 1));
        if (!grown) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
        e->xf = grown;
        x = &e->xf[e->n_xf++];
    }
    *x = (struct qse_transform){t, fn, user};
    return 0;
}

int qs_engine_override_embedding_stored(qs_engine *e, const qs_tensor *t, qs_error *err) {
    const qs_tensor *emb = qs_model_find(e->m, "token_embd.weight");
    int rc = emb ? same_shape(emb, t, err) : qs_errorf(err, QS_ERR_USAGE, "the model has no token_embd.weight");
    if (!rc) e->emb_stored = t, e->emb_over = NULL;
    return rc;
}

int64_t qs_engine_expert_tokens(const qs_engine *e, int layer, int expert) {
    if (!e->expert_tokens || layer < 0 || layer >= e->a.n_layers || expert < 0 || expert >= e->a.n_expert) return 0;
    return e->expert_tokens[(size_t)layer * e->a.n_expert + expert];
}

void qs_engine_reset_expert_tokens(qs_engine *e) {
    if (e->expert_tokens) memset(e->expert_tokens, 0, sizeof(int64_t) * (size_t)e->a.n_layers * (size_t)e->a.n_expert);
}

int qs_engine_threads(const qs_engine *e) { return e->threads; }
void qs_engine_set_llamacpp_numerics(qs_engine *e, int on) { e->llamacpp_numerics = on; }
int qs_engine_n_vocab(const qs_engine *e) { return e->a.n_vocab; }
int qs_engine_n_dim(const qs_engine *e) { return e->a.dim; }
const qs_arch *qs_engine_arch(const qs_engine *e) { return &e->a; }

uint64_t qs_engine_weight_bytes(const qs_engine *e) {
    uint64_t sum = 0;
    for (int i = 0; i < e->m->n_tensors; i++) sum += e->m->tensors[i].nbytes;
    return sum;
}
double qs_engine_matmul_seconds(const qs_engine *e) { return e->matmul_s; }
double qs_engine_expand_seconds(const qs_engine *e) { return e->expand_s; }

double qs_engine_flops(const qs_engine *e, int n, int logits_rows) {
    const qs_arch *a = &e->a;
    double qd = (double)a->n_heads * a->head_dim, kvd = (double)a->n_kv_heads * a->head_dim;
    double per_tok = 2.0 * (a->dim * qd + 2 * a->dim * kvd + qd * a->dim + 3.0 * a->dim * a->hidden_dim);
    /* causal attention: QK^T and PV over (n, n) per head, full square as computed */
    double attn = 2.0 * 2.0 * (double)n * n * qd;
    return a->n_layers * (per_tok * n + attn) + 2.0 * a->dim * (double)a->n_vocab * logits_rows;
}

/* RoPE angles p * scale * base^(-2i/d) / freqs[i] for positions [0, n), in double like llama.cpp
 * (freqs: per-frequency divisors, or NULL) */
static void rope_table(double *c, double *s, size_t n, int head_dim, float base, float scale, const float *freqs) {
    const size_t half = (size_t)head_dim / 2;
    for (size_t p = 0; p < n; p++)
        for (size_t i = 0; i < half; i++) {
            double theta = (double)p * (double)scale * pow((double)base, -2.0 * (double)i / (double)head_dim);
            if (freqs) theta /= (double)freqs[i];
            c[p * half + i] = cos(theta);
            s[p * half + i] = sin(theta);
        }
}

/* the attention scores: one (seq, seq) buffer per thread */
static int grow_scores(qs_engine *e, int seq) {
    if (seq <= e->scores_seq) return 0;
    free(e->scores);
    e->scores = malloc((size_t)e->threads * (size_t)seq * (size_t)seq * 4);
    e->scores_seq = e->scores ? seq : 0;
    return e->scores ? 0 : -1;
}

int qse_grow(qs_engine *e, int n, int seq) {
    e->seq = seq;
    if (n <= e->cap) return grow_scores(e, seq);
    free_scratch(e);
    const qs_arch *a = &e->a;
    size_t N = (size_t)n, qd = (size_t)a->n_heads * a->head_dim, kvd = (size_t)a->n_kv_heads * a->head_dim;
    size_t wide = qd > (size_t)a->dim ? qd : (size_t)a->dim;
    e->x = malloc(N * a->dim * 4);
    e->xb = malloc(N * wide * 4);
    e->q = malloc(N * qd * 4);
    e->k = malloc(N * kvd * 4);
    e->v = malloc(N * kvd * 4);
    e->att = malloc(N * qd * 4);
    e->h1 = malloc(N * a->hidden_dim * 4);
    e->h3 = malloc(N * a->hidden_dim * 4);
    const size_t fused_w = qd + 2 * kvd > 2 * (size_t)a->hidden_dim ? qd + 2 * kvd : 2 * (size_t)a->hidden_dim;
    e->fz = e->any_fused ? malloc(N * fused_w * 4) : NULL;
    if (e->any_moe) {
        const size_t E = (size_t)a->n_expert, K = (size_t)a->n_expert_used, F = (size_t)a->expert_ff;
        e->router = malloc(N * E * 4);
        e->xe = malloc(N * a->dim * 4);
        e->ye = malloc(N * a->dim * 4);
        e->he1 = malloc(N * F * 4);
        e->he3 = malloc(N * F * 4);
        e->route_w = malloc(N * K * 4);
        e->route_e = malloc(N * K * sizeof(int));
        e->picked = malloc(N * sizeof(int));
    }
    size_t half = (size_t)a->head_dim / 2;
    e->rope_cos = malloc(N * half * sizeof(double));
    e->rope_sin = malloc(N * half * sizeof(double));
    size_t widest = wide > (size_t)a->hidden_dim ? wide : (size_t)a->hidden_dim;
    e->xr = malloc(N * widest * 4);
    const int any_sliding = a->n_swa > 0 && a->swa_layers;
    if (any_sliding) {
        e->rope_cos_swa = malloc(N * half * sizeof(double));
        e->rope_sin_swa = malloc(N * half * sizeof(double));
    }
    if (!e->xr || !e->x || !e->xb || !e->q || !e->k || !e->v || !e->att || !e->h1 || !e->h3 || !e->rope_cos ||
        (e->any_fused && !e->fz) ||
        (e->any_moe && (!e->router || !e->xe || !e->ye || !e->he1 || !e->he3 || !e->route_w || !e->route_e || !e->picked)) ||
        !e->rope_sin || (any_sliding && (!e->rope_cos_swa || !e->rope_sin_swa))) {
        free_scratch(e);
        e->x = e->xb = e->q = e->k = e->v = e->att = e->h1 = e->h3 = e->scores = e->fz = NULL;
        e->scores_seq = 0;
        e->rope_cos = e->rope_sin = e->rope_cos_swa = e->rope_sin_swa = NULL;
        e->xr = NULL;
        e->cap = 0;
        return -1;
    }
    rope_table(e->rope_cos, e->rope_sin, N, a->head_dim, a->rope_base, a->rope_scale, a->rope_freqs);
    if (any_sliding) rope_table(e->rope_cos_swa, e->rope_sin_swa, N, a->head_dim, a->rope_base_swa, 1.0f, NULL);
    e->cap = n;
    return grow_scores(e, seq);
}

/* threads worth waking for `work` element operations: below ~64k the wake-ups cost more */
int qse_par_threads(const qs_engine *e, long work) { return work < (1L << 16) ? 1 : e->threads; }

/* expands rows [r0, r0 + nr) of a stored weight into dst, rows split over the threads */
typedef struct {
    const qs_tensor *t;
    int64_t r0;
    float *dst;
} expand_job;

static void expand_rows(void *ctx, long i0, long i1) {
    const expand_job *j = ctx;
    qs_tensor_dequantize_rows(j->t, j->r0 + i0, i1 - i0, j->dst + (size_t)i0 * (size_t)j->t->ne[0]);
}

/* y = x W^T: x (n, in), W (out, in), y (n, out). W is the override (f32) when given, else the
 * stored tensor: used in place when f32, else expanded block by block into e->wbuf and
 * multiplied into y's matching columns. The stored type decides the optional llama.cpp
 * activation rounding (an override is exact f32: none). */

int64_t qse_weight_block(const qs_engine *e, int in, int64_t out) {
    int64_t block = (int64_t)(e->wbuf_cap / (size_t)in);
    if (block > out) block = out;
    return block < 1 ? 1 : block;
}

const float *qse_weight_rows(qs_engine *e, const qs_tensor *t, const float *over, int64_t row0, int64_t nr, int in) {
    if (over) return over + row0 * in;
    const struct qse_transform *xf = transform_of(e, t);
    if (!xf && f32_in_place(t)) return (const float *)t->data + row0 * in;
    expand_job j = {t, row0, e->wbuf};
    qs_parallel_for((long)nr, (long)nr * in >= (1L << 22) ? e->threads : 1, expand_rows, &j);
    if (xf) xf->fn(xf->user, t, row0, nr, e->wbuf);
    return e->wbuf;
}

static void matmul(qs_engine *e, float *y, const float *x, const qs_tensor *t, const float *over, int n, int in, int out) {
    qse_matmul_rows(e, y, x, t, over, 0, n, in, out);
}

/* the same with W = rows [row0, row0 + out) of the stored tensor (or of the override): one
 * expert's matrix inside a stacked ffn_*_exps tensor */
void qse_matmul_rows(qs_engine *e, float *y, const float *x, const qs_tensor *t, const float *over, int64_t row0, int n,
                        int in, int out) {
    const struct qse_transform *xf = over ? NULL : transform_of(e, t);
    const int wtype = over || xf ? QS_DT_F32 : t->type;
    if (e->llamacpp_numerics) {
        int rounded = 0;
        for (int i = 0; i < n; i++)
            rounded |= qs_act_round(wtype, x + (size_t)i * in, e->xr + (size_t)i * in, in);
        if (rounded) x = e->xr;
    }
    const float *w = over ? over + row0 * in : f32_in_place(t) && !xf ? (const float *)t->data + row0 * in : NULL;
    double t0 = now_s();
    if (w) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
        e->matmul_s += now_s() - t0;
        return;
    }
    int64_t block = (int64_t)(e->wbuf_cap / (size_t)in);
    if (block > out) block = out;
    if (block < 1) block = 1;
    for (int64_t r0 = 0; r0 < out; r0 += block) {
        const int nr = (int)(out - r0 < block ? out - r0 : block);
        expand_job j = {t, row0 + r0, e->wbuf};
        /* all threads only for large blocks: between sgemm calls OpenBLAS's workers spin for a
         * while, and on small blocks the pool's wake-ups lose to them (SmolLM2: one thread is as
         * fast; an 8B model's 32 MiB blocks: 2 threads save 6 % of the forward) */
        qs_parallel_for(nr, (long)nr * in >= (1L << 22) ? e->threads : 1, expand_rows, &j);
        if (xf) xf->fn(xf->user, t, row0 + r0, nr, e->wbuf);
        double t1 = now_s();
        e->expand_s += t1 - t0;
        /* y[:, r0:r0+nr] = x W[r0:r0+nr]^T: (n, in) x (nr, in)^T, into y's columns (ldc = out) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, nr, in, 1.0f, x, in, e->wbuf, in, 0.0f, y + r0, out);
        t0 = now_s();
        e->matmul_s += t0 - t1;
    }
}

/* out[i] = x[i] / rms(x) * w, row by row; x, out: (n, d) */
typedef struct {
    float *out;
    const float *x, *w;
    int d;
    float eps;
} norm_job;

static void rmsnorm_rows(void *ctx, long t0, long t1) {
    const norm_job *j = ctx;
    for (long t = t0; t < t1; t++) {
        const float *xr = j->x + (size_t)t * j->d;
        float *o = j->out + (size_t)t * j->d;
        double sum = 0.0;
        for (int i = 0; i < j->d; i++) sum += (double)(xr[i] * xr[i]);
        const float mean = (float)(sum / j->d);
        const float scale = 1.0f / sqrtf(mean + j->eps);
        for (int i = 0; i < j->d; i++) o[i] = (xr[i] * scale) * j->w[i];
    }
}


void qse_rmsnorm(const qs_engine *e, float *out, const float *x, const float *w, int n, int d, float eps) {
    norm_job j = {out, x, w, d, eps};
    qs_parallel_for(n, qse_par_threads(e, (long)n * d), rmsnorm_rows, &j);
}

/* rotates each head of x: (n, n_heads * head_dim) in place, position p = row */
typedef struct {
    const qs_engine *e;
    float *x;
    int n_heads;
    const double *cos, *sin; /* the layer's table */
    int inverse;             /* rotate by -angle: the transpose, for the backward pass */
} rope_job;

static void rope_rows(void *ctx, long t0, long t1) {
    const rope_job *j = ctx;
    const qs_engine *e = j->e;
    const int hd = e->a.head_dim, half = hd / 2, neox = e->a.rope_type == QS_ROPE_NEOX;
    for (long t = t0; t < t1; t++) {
        const size_t pos = (size_t)(t % e->seq); /* rows are sequences of e->seq positions, one after another */
        const double *c = j->cos + pos * half, *s = j->sin + pos * half;
        for (int h = 0; h < j->n_heads; h++) {
            float *v = j->x + (size_t)t * j->n_heads * hd + (size_t)h * hd;
            for (int i = 0; i < half; i++) {
                /* NORM: pairs (2i, 2i+1); NEOX: pairs (i, i + half) */
                int i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
                float x0 = v[i0], x1 = v[i1];
                float cs = (float)c[i], sn = j->inverse ? -(float)s[i] : (float)s[i];
                v[i0] = x0 * cs - x1 * sn;
                v[i1] = x0 * sn + x1 * cs;
            }
        }
    }
}

void qse_rope(const qs_engine *e, float *x, int n, int n_heads, int sliding, int inverse) {
    rope_job j = {e, x, n_heads, sliding ? e->rope_cos_swa : e->rope_cos, sliding ? e->rope_sin_swa : e->rope_sin, inverse};
    qs_parallel_for(n, qse_par_threads(e, (long)n * n_heads * e->a.head_dim), rope_rows, &j);
}

/* causal grouped-query attention: q (n, qd), k/v (n, kvd) -> att (n, qd); heads in parallel,
 * each thread with its own (n, n) score buffer and single-threaded sgemm */
typedef struct {
    qs_engine *e;
    int n;
    int window; /* a position sees the last `window` positions, itself included (n: all) */
} attn_job;

static void attention_heads(void *ctx, long h0, long h1) {
    const attn_job *j = ctx;
    qs_engine *e = j->e;
    const int n = e->seq; /* each sequence attends within itself */
    const qs_arch *a = &e->a;
    const int hd = a->head_dim, qd = a->n_heads * hd, kvd = a->n_kv_heads * hd;
    const int group = a->n_heads / a->n_kv_heads;
    const float scale = a->attn_scale;
    const int window = j->window;
    float *S = e->scores + (size_t)qs_parallel_thread_index() * n * n;
    for (long h = h0; h < h1; h++)
        for (size_t s0 = 0; s0 < (size_t)j->n; s0 += (size_t)n) {
            const float *qh = e->q + s0 * qd + (size_t)h * hd, *kh = e->k + s0 * kvd + (size_t)(h / group) * hd;
            const float *vh = e->v + s0 * kvd + (size_t)(h / group) * hd;
            /* S = scale * Q_h K_h^T: (n, n) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, hd, scale, qh, qd, kh, kvd, 0.0f, S, n);
            for (int t = 0; t < n; t++) {
                float *row = S + (size_t)t * n;
                const int first = qse_softmax_causal_row(row, n, t, window);
                if (e->llamacpp_numerics) qs_round_f16(row + first, t + 1 - first); /* meets the f16 V cache */
            }
            /* att_h = S V_h: (n, hd) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd, n, 1.0f, S, n, vh, kvd, 0.0f,
                        e->att + s0 * qd + (size_t)h * hd, qd);
        }
}

void qse_attention(qs_engine *e, int n, int sliding) {
    attn_job j = {e, n, sliding && e->a.n_swa < e->seq ? e->a.n_swa : e->seq};
    openblas_set_num_threads(1);
    qs_parallel_for(e->a.n_heads, qse_par_threads(e, (long)n * e->seq * e->a.n_heads * e->a.head_dim), attention_heads, &j);
    openblas_set_num_threads(e->threads);
}

typedef struct {
    float *g;
    const float *u;
    int act;        /* qs_ffn_act */
    int f16_table;  /* GELU as llama.cpp's CPU backend computes it (llamacpp_numerics) */
} glu_job;

/* GELU, tanh approximation (Gemma's gelu_pytorch_tanh) */
float qse_gelu_tanh(float x) {
    const float c = 0.79788456080286535588f; /* sqrt(2 / pi) */
    return 0.5f * x * (1.0f + tanhf(c * x * (1.0f + 0.044715f * x * x)));
}

/* llama.cpp's CPU GELU on f32: the input rounded to f16 looks up a table of f16 results, with
 * x <= -10 -> 0 and x >= 10 -> x */
static float gelu_f16_table(float x) {
    if (x <= -10.0f) return 0.0f;
    if (x >= 10.0f) return x;
    float h = x, y;
    qs_round_f16(&h, 1);
    y = qse_gelu_tanh(h);
    qs_round_f16(&y, 1);
    return y;
}

static void glu_range(void *ctx, long i0, long i1) {
    const glu_job *j = ctx;
    for (long i = i0; i < i1; i++) {
        float g = j->g[i];
        if (j->act == QS_ACT_GELU_TANH) j->g[i] = (j->f16_table ? gelu_f16_table(g) : qse_gelu_tanh(g)) * j->u[i];
        else j->g[i] = g / (1.0f + expf(-g)) * j->u[i]; /* SwiGLU: silu(gate) * up */
    }
}

void qse_add_bias(float *y, const float *b, int n, int d) {
    if (!b) return;
    for (size_t t = 0; t < (size_t)n; t++)
        for (int i = 0; i < d; i++) y[t * (size_t)d + i] += b[i];
}


/* src (n, wa + wb + wc) -> a (n, wa), b (n, wb), c (n, wc): a fused matrix's output, split */
void qse_split_columns(const float *src, int n, int w, float *a, int wa, float *b, int wb, float *c, int wc) {
    for (size_t t = 0; t < (size_t)n; t++) {
        const float *row = src + t * (size_t)w;
        memcpy(a + t * (size_t)wa, row, sizeof(float) * (size_t)wa);
        memcpy(b + t * (size_t)wb, row + wa, sizeof(float) * (size_t)wb);
        if (c) memcpy(c + t * (size_t)wc, row + wa + wb, sizeof(float) * (size_t)wc);
    }
}

static void observe(qs_engine *e, int l, int kind, const float *x, int n, int in) {
    if (e->observe) e->observe(e->observe_user, l, kind, x, n, in);
}

static void site(qs_engine *e, int l, int which, float *x, int n, int width) {
    if (e->site) e->site(e->site_user, l, which, x, n, width);
}

void qs_engine_set_site_quant(qs_engine *e, qs_site_fn fn, void *user) {
    e->site = fn;
    e->site_user = user;
}

const char *qs_site_name(int which) {
    static const char *names[QS_SITE_COUNT] = {"attn_in", "attn_out", "ffn_in", "ffn_down_in", "head_in", "q", "k", "v"};
    return which >= 0 && which < QS_SITE_COUNT ? names[which] : "?";
}

void qs_engine_set_capture(qs_engine *e, float **capture) { e->capture = capture; }
void qs_engine_override_embedding(qs_engine *e, const float *emb) { e->emb_over = emb; }

static int run_layers(qs_engine *e, int first, int n, int logits_from, float *logits);
int qs_engine_embed(qs_engine *e, const int *tokens, int n, float *x, qs_error *err);

int qs_engine_forward(qs_engine *e, const int *tokens, int n, int logits_from, float *logits, qs_error *err) {
    if (n <= 0 || logits_from < 0 || logits_from > n)
        return qs_errorf(err, QS_ERR_USAGE, "forward: bad token range (n %d, logits from %d)", n, logits_from);
    if (qse_grow(e, n, n)) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory for a %d-token chunk", n);
    int rc = qs_engine_embed(e, tokens, n, e->x, err);
    return rc ? rc : run_layers(e, 0, n, logits_from, logits);
}

int qs_engine_forward_batch_from(qs_engine *e, int layer, const float *x, int n_seq, int seq, int logits_from, float *logits,
                                 qs_error *err) {
    if (n_seq <= 0 || seq <= 0 || logits_from < 0 || logits_from > seq || layer < 0 || layer > e->a.n_layers)
        return qs_errorf(err, QS_ERR_USAGE, "forward_batch_from: bad range (layer %d, %d x %d, logits from %d)", layer, n_seq, seq,
                         logits_from);
    const int n = n_seq * seq;
    if (qse_grow(e, n, seq)) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory for %d chunks of %d tokens", n_seq, seq);
    memcpy(e->x, x, sizeof(float) * (size_t)n * (size_t)e->a.dim);
    return run_layers(e, layer, n, logits_from, logits);
}

int qs_engine_forward_from(qs_engine *e, int layer, const float *x, int n, int logits_from, float *logits, qs_error *err) {
    if (n <= 0 || logits_from < 0 || logits_from > n || layer < 0 || layer > e->a.n_layers)
        return qs_errorf(err, QS_ERR_USAGE, "forward_from: bad range (layer %d, n %d, logits from %d)", layer, n, logits_from);
    if (qse_grow(e, n, n)) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory for a %d-token chunk", n);
    memcpy(e->x, x, sizeof(float) * (size_t)n * (size_t)e->a.dim);
    return run_layers(e, layer, n, logits_from, logits);
}

/* Mixture-of-experts FFN on e->xb (n, dim), the FFN norm's output, into e->xb: the router's
 * softmax over the experts, the n_expert_used most probable (ties to the lower index, as a
 * stable top-k), their weights renormalized to sum 1 where the family says so, and each expert's
 * SwiGLU on the tokens routed to it, weighted and summed (llama.cpp's build_moe_ffn,
 * transformers' Qwen3MoeSparseMoeBlock). */
static void moe_ffn(qs_engine *e, int l, int n) {
    const qs_arch *a = &e->a;
    const layer *L = &e->layers[l];
    const int dim = a->dim, E = a->n_expert, K = a->n_expert_used, F = a->expert_ff;
    observe(e, l, QS_LIN_ROUTER, e->xb, n, dim);
    site(e, l, QS_SITE_FFN_IN, e->xb, n, dim); /* the router's and every expert's input */
    matmul(e, e->router, e->xb, L->w[QS_LIN_ROUTER], L->over[QS_LIN_ROUTER], n, dim, E); /* (n, dim) x (E, dim)^T */
    for (int t = 0; t < n; t++) {
        const float *r = e->router + (size_t)t * E;
        float mx = r[0];
        for (int i = 1; i < E; i++) mx = r[i] > mx ? r[i] : mx;
        double sum = 0.0;
        for (int i = 0; i < E; i++) sum += exp((double)(r[i] - mx));
        float *w = e->route_w + (size_t)t * K;
        int *idx = e->route_e + (size_t)t * K;
        double wsum = 0.0;
        for (int k = 0; k < K; k++) { /* the k-th most probable expert not taken yet */
            int best = -1;
            for (int i = 0; i < E; i++) {
                int taken = 0;
                for (int j = 0; j < k; j++) taken |= idx[j] == i;
                if (!taken && (best < 0 || r[i] > r[best])) best = i;
            }
            idx[k] = best;
            w[k] = (float)(exp((double)(r[best] - mx)) / sum);
            wsum += w[k];
        }
        if (a->expert_norm)
            for (int k = 0; k < K; k++) w[k] = (float)(w[k] / wsum);
    }
    memset(e->ye, 0, sizeof(float) * (size_t)n * dim); /* the weighted sum, (n, dim) */
    for (int x = 0; x < E; x++) {
        int m = 0; /* gather the tokens routed to expert x */
        for (int t = 0; t < n; t++)
            for (int k = 0; k < K; k++)
                if (e->route_e[(size_t)t * K + k] == x) {
                    e->picked[m] = t * K + k;
                    memcpy(e->xe + (size_t)m * dim, e->xb + (size_t)t * dim, sizeof(float) * (size_t)dim);
                    m++;
                }
        if (!m) continue;
        e->expert_tokens[(size_t)l * E + x] += m;
        observe(e, l, QS_LIN_GATE_EXPS, e->xe, m, dim);
        observe(e, l, QS_LIN_UP_EXPS, e->xe, m, dim);
        /* expert x's rows of the stacked tensors: (m, dim) x (F, dim)^T */
        qse_matmul_rows(e, e->he1, e->xe, L->w[QS_LIN_GATE_EXPS], L->over[QS_LIN_GATE_EXPS], (int64_t)x * F, m, dim, F);
        qse_matmul_rows(e, e->he3, e->xe, L->w[QS_LIN_UP_EXPS], L->over[QS_LIN_UP_EXPS], (int64_t)x * F, m, dim, F);
        glu_job gj = {e->he1, e->he3, a->ffn_act, e->llamacpp_numerics};
        qs_parallel_for((long)m * F, qse_par_threads(e, (long)m * F * 8), glu_range, &gj);
        observe(e, l, QS_LIN_DOWN_EXPS, e->he1, m, F);
        site(e, l, QS_SITE_FFN_DOWN_IN, e->he1, m, F);
        /* (m, F) x (dim, F)^T: expert x's down rows [x dim, (x + 1) dim) */
        qse_matmul_rows(e, e->xe, e->he1, L->w[QS_LIN_DOWN_EXPS], L->over[QS_LIN_DOWN_EXPS], (int64_t)x * dim, m, F, dim);
        for (int i = 0; i < m; i++) {
            const int t = e->picked[i] / K;
            const float w = e->route_w[e->picked[i]];
            for (int d = 0; d < dim; d++) e->ye[(size_t)t * dim + d] += w * e->xe[(size_t)i * dim + d];
        }
    }
    memcpy(e->xb, e->ye, sizeof(float) * (size_t)n * dim);
}

static void dense_ffn(qs_engine *e, int l, int n);

/* layer l on the residual stream in e->x (n, dim), in place */
static void layer_forward(qs_engine *e, int l, int n) {
    const qs_arch *a = &e->a;
    const int dim = a->dim, qd = a->n_heads * a->head_dim, kvd = a->n_kv_heads * a->head_dim;
    const layer *L = &e->layers[l];
    qse_rmsnorm(e, e->xb, e->x, L->attn_norm, n, dim, a->norm_eps);
    if (L->fused) {
        const int w = qd + 2 * kvd;
        observe(e, l, QS_LIN_QKV, e->xb, n, dim);
        site(e, l, QS_SITE_ATTN_IN, e->xb, n, dim);
        matmul(e, e->fz, e->xb, L->w[QS_LIN_QKV], L->over[QS_LIN_QKV], n, dim, w); /* (n, dim) x (q+2kv, dim)^T */
        qse_split_columns(e->fz, n, w, e->q, qd, e->k, kvd, e->v, kvd);
    } else {
        observe(e, l, QS_LIN_Q, e->xb, n, dim);
        observe(e, l, QS_LIN_K, e->xb, n, dim);
        observe(e, l, QS_LIN_V, e->xb, n, dim);
        site(e, l, QS_SITE_ATTN_IN, e->xb, n, dim);
        matmul(e, e->q, e->xb, L->w[QS_LIN_Q], L->over[QS_LIN_Q], n, dim, qd);  /* (n, dim) x (qd, dim)^T */
        matmul(e, e->k, e->xb, L->w[QS_LIN_K], L->over[QS_LIN_K], n, dim, kvd); /* (n, dim) x (kvd, dim)^T */
        matmul(e, e->v, e->xb, L->w[QS_LIN_V], L->over[QS_LIN_V], n, dim, kvd);
    }
    qse_add_bias(e->q, L->bq, n, qd);
    qse_add_bias(e->k, L->bk, n, kvd);
    qse_add_bias(e->v, L->bv, n, kvd);
    if (L->q_norm) { /* each head of q and k normalized on its own: rows of head_dim */
        qse_rmsnorm(e, e->q, e->q, L->q_norm, n * a->n_heads, a->head_dim, a->norm_eps);
        qse_rmsnorm(e, e->k, e->k, L->k_norm, n * a->n_kv_heads, a->head_dim, a->norm_eps);
    }
    qse_rope(e, e->q, n, a->n_heads, L->sliding, 0);
    qse_rope(e, e->k, n, a->n_kv_heads, L->sliding, 0);
    if (e->llamacpp_numerics) { /* llama.cpp's f16 KV cache; Q meets K as f16 */
        qs_round_f16(e->q, (int64_t)n * qd);
        qs_round_f16(e->k, (int64_t)n * kvd);
        qs_round_f16(e->v, (int64_t)n * kvd);
    }
    site(e, l, QS_SITE_Q, e->q, n, qd);
    site(e, l, QS_SITE_K, e->k, n, kvd);
    site(e, l, QS_SITE_V, e->v, n, kvd);
    qse_attention(e, n, L->sliding);
    observe(e, l, QS_LIN_O, e->att, n, qd);
    site(e, l, QS_SITE_ATTN_OUT, e->att, n, qd);
    matmul(e, e->xb, e->att, L->w[QS_LIN_O], L->over[QS_LIN_O], n, qd, dim); /* (n, qd) x (dim, qd)^T */
    if (L->attn_post_norm) qse_rmsnorm(e, e->xb, e->xb, L->attn_post_norm, n, dim, a->norm_eps);
    for (size_t i = 0; i < (size_t)n * dim; i++) e->x[i] += e->xb[i];
    qse_rmsnorm(e, e->xb, e->x, L->ffn_norm, n, dim, a->norm_eps);
    if (L->moe) moe_ffn(e, l, n); /* e->xb -> e->xb */
    else dense_ffn(e, l, n);
    if (L->ffn_post_norm) qse_rmsnorm(e, e->xb, e->xb, L->ffn_post_norm, n, dim, a->norm_eps);
    for (size_t i = 0; i < (size_t)n * dim; i++) e->x[i] += e->xb[i];
}

/* the dense FFN on e->xb (n, dim), the FFN norm's output, into e->xb */
static void dense_ffn(qs_engine *e, int l, int n) {
    const qs_arch *a = &e->a;
    const int dim = a->dim, hid = a->hidden_dim;
    const layer *L = &e->layers[l];
    observe(e, l, QS_LIN_GATE, e->xb, n, dim);
    observe(e, l, QS_LIN_UP, e->xb, n, dim);
    site(e, l, QS_SITE_FFN_IN, e->xb, n, dim);
    if (L->fused) { /* gate and up stacked: rows [0, hid) gate, [hid, 2 hid) up */
        matmul(e, e->fz, e->xb, L->w[QS_LIN_UP], L->over[QS_LIN_UP], n, dim, 2 * hid); /* (n, dim) x (2hid, dim)^T */
        qse_split_columns(e->fz, n, 2 * hid, e->h1, hid, e->h3, hid, NULL, 0);
    } else {
        matmul(e, e->h1, e->xb, L->w[QS_LIN_GATE], L->over[QS_LIN_GATE], n, dim, hid); /* (n, dim) x (hid, dim)^T */
        matmul(e, e->h3, e->xb, L->w[QS_LIN_UP], L->over[QS_LIN_UP], n, dim, hid);
    }
    glu_job gj = {e->h1, e->h3, a->ffn_act, e->llamacpp_numerics};
    qs_parallel_for((long)n * hid, qse_par_threads(e, (long)n * hid * 8), glu_range, &gj);
    observe(e, l, QS_LIN_DOWN, e->h1, n, hid);
    site(e, l, QS_SITE_FFN_DOWN_IN, e->h1, n, hid);
    matmul(e, e->xb, e->h1, L->w[QS_LIN_DOWN], L->over[QS_LIN_DOWN], n, hid, dim); /* (n, hid) x (dim, hid)^T */
}

/* layers [first, n_layers) and the head, on the residual stream in e->x */
static int run_layers(qs_engine *e, int first, int n, int logits_from, float *logits) {
    const qs_arch *a = &e->a;
    openblas_set_num_threads(e->threads);
    e->matmul_s = e->expand_s = 0;
    const int dim = a->dim;
    for (int l = first; l < a->n_layers; l++) {
        if (e->capture) memcpy(e->capture[l], e->x, sizeof(float) * (size_t)n * (size_t)dim);
        layer_forward(e, l, n);
    }
    if (e->capture) memcpy(e->capture[a->n_layers], e->x, sizeof(float) * (size_t)n * (size_t)dim);
    const int n_seq = n / e->seq, per = e->seq - logits_from, rows = n_seq * per;
    if (rows > 0) {
        for (int q = 0; q < n_seq; q++) /* each sequence's rows [logits_from, seq), side by side */
            qse_rmsnorm(e, e->xb + (size_t)q * per * dim, e->x + ((size_t)q * e->seq + (size_t)logits_from) * dim, e->output_norm,
                        per, dim, a->norm_eps);
        observe(e, a->n_layers, QS_LIN_OUTPUT, e->xb, rows, dim);
        site(e, a->n_layers, QS_SITE_HEAD_IN, e->xb, rows, dim);
        matmul(e, logits, e->xb, e->output, e->output_over, rows, dim, a->n_vocab); /* (rows, dim) x (n_vocab, dim)^T */
        if (a->logit_softcap > 0) {
            const float c = a->logit_softcap;
            for (size_t i = 0; i < (size_t)rows * a->n_vocab; i++) logits[i] = c * tanhf(logits[i] / c);
        }
    }
    return 0;
}

int qs_engine_embed(qs_engine *e, const int *tokens, int n, float *x, qs_error *err) {
    const qs_arch *a = &e->a;
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= a->n_vocab)
            return qs_errorf(err, QS_ERR_INPUT, "token id %d at position %d is outside the vocabulary (%d)", tokens[t], t,
                             a->n_vocab);
    const qs_tensor *emb = e->emb_stored ? e->emb_stored : qs_model_find(e->m, "token_embd.weight");
    for (int t = 0; t < n; t++) {
        if (e->emb_over) memcpy(x + (size_t)t * a->dim, e->emb_over + (size_t)tokens[t] * a->dim, sizeof(float) * (size_t)a->dim);
        else {
            qs_tensor_dequantize_rows(emb, tokens[t], 1, x + (size_t)t * a->dim);
            const struct qse_transform *xf = transform_of(e, emb);
            if (xf) xf->fn(xf->user, emb, tokens[t], 1, x + (size_t)t * a->dim);
        }
        if (a->embed_scale != 1.0f)
            for (int i = 0; i < a->dim; i++) x[(size_t)t * a->dim + i] *= a->embed_scale;
    }
    return 0;
}

int qs_engine_run_layer(qs_engine *e, int layer, float *x, int n, qs_error *err) {
    return qs_engine_run_layer_batch(e, layer, x, 1, n, err);
}

int qs_engine_run_layer_batch(qs_engine *e, int layer, float *x, int n_seq, int seq, qs_error *err) {
    const int n = n_seq * seq;
    if (n_seq <= 0 || seq <= 0 || layer < 0 || layer > e->a.n_layers)
        return qs_errorf(err, QS_ERR_USAGE, "run_layer: bad range (layer %d, %d x %d)", layer, n_seq, seq);
    if (qse_grow(e, n, seq))
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory for %d chunks of %d tokens", n_seq, seq);
    openblas_set_num_threads(e->threads);
    const size_t bytes = sizeof(float) * (size_t)n * (size_t)e->a.dim;
    memcpy(e->x, x, bytes);
    if (layer < e->a.n_layers) {
        layer_forward(e, layer, n);
        memcpy(x, e->x, bytes);
    } else { /* the head's input only: the output norm, shown to the observer */
        qse_rmsnorm(e, e->xb, e->x, e->output_norm, n, e->a.dim, e->a.norm_eps);
        observe(e, e->a.n_layers, QS_LIN_OUTPUT, e->xb, n, e->a.dim);
    }
    return 0;
}
