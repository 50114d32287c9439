/* The backward pass of the decoder (see engine.h): the gradient of a loss with respect to every
 * linear layer's output, a layer at a time, for the gradient-based sensitivity estimate.
 * Each call first recomputes the layer's forward pass from the residual stream it is given
 * (keeping what the derivatives need: cheaper in memory than storing every layer's
 * intermediates for a whole evaluation), then walks it backwards:
 *   x1 = x + post(attn(norm(x)))       y = x1 + post(ffn(norm(x1)))
 * Shapes are written next to each matmul; g (n, out) times W (out, in) gives (n, in). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_parallel.h"
#include "engine/engine_impl.h"
#include "io/arch.h"

/* dx (n, in) (+)= g (n, out) W, W the linear's rows [row0, row0 + out), a block of rows at a time */
static void matmul_back(qs_engine *e, float *dx, const float *g, const qs_tensor *t, const float *over, int n, int in,
                        int out, int accumulate) {
    const int64_t block = qse_weight_block(e, in, out);
    for (int64_t r0 = 0; r0 < out; r0 += block) {
        const int nr = (int)(out - r0 < block ? out - r0 : block);
        const float *w = qse_weight_rows(e, t, over, r0, nr, in);
        const float beta = accumulate || r0 > 0 ? 1.0f : 0.0f;
        /* (n, nr) columns [r0, r0 + nr) of g times (nr, in) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, nr, 1.0f, g + r0, out, w, in, beta, dx, in);
    }
}

/* y = x s w with s = 1 / sqrt(mean(x^2) + eps), row by row (n, d): dx (+)= s (w dy) - x s^3 / d
 * sum_j (w_j dy_j x_j) */
static void rms_back(const float *x, const float *w, const float *dy, float *dx, int n, int d, float eps, int accumulate) {
    for (size_t t = 0; t < (size_t)n; t++) {
        const float *xr = x + t * d, *gr = dy + t * d;
        float *o = dx + t * d;
        double ss = 0.0, dot = 0.0;
        for (int i = 0; i < d; i++) {
            ss += (double)xr[i] * xr[i];
            dot += (double)w[i] * gr[i] * xr[i];
        }
        const double s = 1.0 / sqrt(ss / d + eps), c = s * s * s * dot / d;
        for (int i = 0; i < d; i++) {
            const float v = (float)(s * w[i] * gr[i] - c * xr[i]);
            o[i] = accumulate ? o[i] + v : v;
        }
    }
}

/* the gated activation's two inputs' gradients from dh, in place: h1 (gate) becomes d gate,
 * h3 (up) becomes d up; dh is d(act(gate) * up) */
static void glu_back(int act, float *h1, float *h3, const float *dh, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float g = h1[i], u = h3[i];
        float a, da;
        if (act == QS_ACT_GELU_TANH) {
            const float c = 0.79788456080286535588f, th = tanhf(c * g * (1.0f + 0.044715f * g * g));
            a = 0.5f * g * (1.0f + th);
            da = 0.5f * (1.0f + th) + 0.5f * g * (1.0f - th * th) * c * (1.0f + 3.0f * 0.044715f * g * g);
        } else {
            const float sg = 1.0f / (1.0f + expf(-g));
            a = g * sg;
            da = sg * (1.0f + g * (1.0f - sg));
        }
        h1[i] = dh[i] * u * da;
        h3[i] = dh[i] * a;
    }
}

/* attention's backward for the q heads of each kv head (a thread owns a kv head's dk, dv) */
typedef struct {
    qs_engine *e;
    int n, window;
    const float *q, *k, *v, *datt; /* q (n, qd) and k (n, kvd) after RoPE; datt (n, qd) */
    float *dq, *dk, *dv;           /* dk, dv zeroed by the caller */
    float *buf;                    /* (threads, 2, n, n) */
} attn_back_job;

static void attention_back_heads(void *ctx, long g0, long g1) {
    const attn_back_job *j = ctx;
    const qs_arch *a = &j->e->a;
    const int n = j->n, hd = a->head_dim, qd = a->n_heads * hd, kvd = a->n_kv_heads * hd;
    const int group = a->n_heads / a->n_kv_heads;
    const float scale = a->attn_scale;
    float *P = j->buf + (size_t)qs_parallel_thread_index() * 2 * n * n, *dP = P + (size_t)n * n;
    for (long hk = g0; hk < g1; hk++) {
        const float *kh = j->k + hk * hd, *vh = j->v + hk * hd;
        float *dkh = j->dk + hk * hd, *dvh = j->dv + hk * hd;
        for (long h = hk * group; h < (hk + 1) * group; h++) {
            const float *qh = j->q + h * hd, *dah = j->datt + h * hd;
            /* P = softmax(scale Q_h K^T) over each row's window, as the forward computes it */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, hd, scale, qh, qd, kh, kvd, 0.0f, P, n);
            for (int t = 0; t < n; t++) qse_softmax_causal_row(P + (size_t)t * n, n, t, j->window);
            /* dP = dAtt_h V^T (n, n); dV += P^T dAtt_h (n, hd) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, hd, 1.0f, dah, qd, vh, kvd, 0.0f, dP, n);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, hd, n, 1.0f, P, n, dah, qd, 1.0f, dvh, kvd);
            /* dS = P (dP - rowsum(P dP)), into dP */
            for (int t = 0; t < n; t++) {
                const float *pr = P + (size_t)t * n;
                float *dr = dP + (size_t)t * n;
                double s = 0.0;
                for (int i = 0; i <= t; i++) s += (double)pr[i] * dr[i];
                for (int i = 0; i < n; i++) dr[i] = pr[i] * (float)(dr[i] - s);
            }
            /* dQ_h = scale dS K (n, hd); dK += scale dS^T Q_h (n, hd) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd, n, scale, dP, n, kh, kvd, 0.0f, j->dq + h * hd, qd);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, hd, n, scale, dP, n, qh, qd, 1.0f, dkh, kvd);
        }
    }
}

static void grad(qs_grad_fn fn, void *user, int l, int kind, const float *x, const float *g, int n, int in, int out) {
    if (fn) fn(user, l, kind, x, g, n, in, out);
}

/* the buffers of one layer's backward pass */
enum { XN1, QPRE, KPRE, O, AOUT, X1, XN2, H1, H3, F, DF, DH, DGU, DXN, DX1, DO, DATT, DQ, DK, DV, DQKV, ABUF, N_BUF };

int qs_engine_layer_backward(qs_engine *e, int l, const float *x, const float *dy, float *dx, int n, qs_grad_fn fn,
                             void *user, qs_error *err) {
    const qs_arch *a = &e->a;
    if (n <= 0 || l < 0 || l >= a->n_layers)
        return qs_errorf(err, QS_ERR_USAGE, "layer_backward: bad range (layer %d, n %d)", l, n);
    const layer *L = &e->layers[l];
    if (L->moe)
        return qs_errorf(
            err, QS_ERR_USAGE,
            "layer %d has experts: the backward pass (gradient sensitivity) does not handle mixture-of-experts "
            "layers yet; use --sens-mode calibrated or exact",
            l);
    if (qse_grow(e, n, n)) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory for a %d-token chunk", n);
    const int dim = a->dim, qd = a->n_heads * a->head_dim, kvd = a->n_kv_heads * a->head_dim, hid = a->hidden_dim;
    const size_t N = (size_t)n, wqkv = (size_t)qd + 2 * (size_t)kvd;
    const size_t sizes[N_BUF] = {
        [XN1] = N * dim, [QPRE] = N * qd, [KPRE] = N * kvd, [O] = N * dim, [AOUT] = N * dim, [X1] = N * dim, [XN2] = N * dim,
        [H1] = N * hid, [H3] = N * hid, [F] = N * dim, [DF] = N * dim, [DH] = N * hid, [DGU] = N * 2 * hid, [DXN] = N * dim,
        [DX1] = N * dim, [DO] = N * dim, [DATT] = N * qd, [DQ] = N * qd, [DK] = N * kvd, [DV] = N * kvd, [DQKV] = N * wqkv,
        [ABUF] = (size_t)e->threads * 2 * N * N};
    float *b[N_BUF];
    int oom = 0;
    for (int i = 0; i < N_BUF; i++) oom |= !(b[i] = malloc(sizeof(float) * (sizes[i] ? sizes[i] : 1)));
    if (oom) {
        for (int i = 0; i < N_BUF; i++) free(b[i]);
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory for the backward pass of a %d-token chunk", n);
    }
    const int numerics = e->llamacpp_numerics; /* gradients of the exact f32 model */
    e->llamacpp_numerics = 0;
    openblas_set_num_threads(e->threads);
    const float eps = a->norm_eps;
    const int window = L->sliding && a->n_swa < n ? a->n_swa : n;

    /* forward, keeping what the derivatives need */
    qse_rmsnorm(e, b[XN1], x, L->attn_norm, n, dim, eps);
    if (L->fused) {
        qse_matmul_rows(e, e->fz, b[XN1], L->w[QS_LIN_QKV], L->over[QS_LIN_QKV], 0, n, dim, (int)wqkv); /* (n, dim) x (q+2kv, dim)^T */
        qse_split_columns(e->fz, n, (int)wqkv, e->q, qd, e->k, kvd, e->v, kvd);
    } else {
        qse_matmul_rows(e, e->q, b[XN1], L->w[QS_LIN_Q], L->over[QS_LIN_Q], 0, n, dim, qd);
        qse_matmul_rows(e, e->k, b[XN1], L->w[QS_LIN_K], L->over[QS_LIN_K], 0, n, dim, kvd);
        qse_matmul_rows(e, e->v, b[XN1], L->w[QS_LIN_V], L->over[QS_LIN_V], 0, n, dim, kvd);
    }
    qse_add_bias(e->q, L->bq, n, qd);
    qse_add_bias(e->k, L->bk, n, kvd);
    qse_add_bias(e->v, L->bv, n, kvd);
    if (L->q_norm) {
        memcpy(b[QPRE], e->q, sizeof(float) * N * qd);
        memcpy(b[KPRE], e->k, sizeof(float) * N * kvd);
        qse_rmsnorm(e, e->q, e->q, L->q_norm, n * a->n_heads, a->head_dim, eps);
        qse_rmsnorm(e, e->k, e->k, L->k_norm, n * a->n_kv_heads, a->head_dim, eps);
    }
    qse_rope(e, e->q, n, a->n_heads, L->sliding, 0);
    qse_rope(e, e->k, n, a->n_kv_heads, L->sliding, 0);
    qse_attention(e, n, L->sliding); /* e->att (n, qd) */
    qse_matmul_rows(e, b[O], e->att, L->w[QS_LIN_O], L->over[QS_LIN_O], 0, n, qd, dim); /* (n, qd) x (dim, qd)^T */
    if (L->attn_post_norm) qse_rmsnorm(e, b[AOUT], b[O], L->attn_post_norm, n, dim, eps);
    else memcpy(b[AOUT], b[O], sizeof(float) * N * dim);
    for (size_t i = 0; i < N * dim; i++) b[X1][i] = x[i] + b[AOUT][i];
    qse_rmsnorm(e, b[XN2], b[X1], L->ffn_norm, n, dim, eps);
    if (L->fused) { /* gate | up stacked in UP */
        qse_matmul_rows(e, e->fz, b[XN2], L->w[QS_LIN_UP], L->over[QS_LIN_UP], 0, n, dim, 2 * hid);
        qse_split_columns(e->fz, n, 2 * hid, b[H1], hid, b[H3], hid, NULL, 0);
    } else {
        qse_matmul_rows(e, b[H1], b[XN2], L->w[QS_LIN_GATE], L->over[QS_LIN_GATE], 0, n, dim, hid);
        qse_matmul_rows(e, b[H3], b[XN2], L->w[QS_LIN_UP], L->over[QS_LIN_UP], 0, n, dim, hid);
    }
    float *h = e->h1; /* act(gate) * up, the down projection's input */
    for (size_t i = 0; i < N * hid; i++) {
        const float g = b[H1][i];
        const float act = a->ffn_act == QS_ACT_GELU_TANH ? qse_gelu_tanh(g) : g / (1.0f + expf(-g));
        h[i] = act * b[H3][i];
    }
    if (L->ffn_post_norm) qse_matmul_rows(e, b[F], h, L->w[QS_LIN_DOWN], L->over[QS_LIN_DOWN], 0, n, hid, dim);

    /* backward: the FFN */
    const float *df = dy;
    if (L->ffn_post_norm) {
        rms_back(b[F], L->ffn_post_norm, dy, b[DF], n, dim, eps, 0);
        df = b[DF];
    }
    grad(fn, user, l, QS_LIN_DOWN, h, df, n, hid, dim);
    matmul_back(e, b[DH], df, L->w[QS_LIN_DOWN], L->over[QS_LIN_DOWN], n, hid, dim, 0); /* (n, dim) x (dim, hid) */
    glu_back(a->ffn_act, b[H1], b[H3], b[DH], N * hid); /* H1: d gate, H3: d up */
    if (L->fused) {
        for (size_t t = 0; t < N; t++) {
            memcpy(b[DGU] + t * 2 * hid, b[H1] + t * hid, sizeof(float) * (size_t)hid);
            memcpy(b[DGU] + t * 2 * hid + hid, b[H3] + t * hid, sizeof(float) * (size_t)hid);
        }
        grad(fn, user, l, QS_LIN_UP, b[XN2], b[DGU], n, dim, 2 * hid);
        matmul_back(e, b[DXN], b[DGU], L->w[QS_LIN_UP], L->over[QS_LIN_UP], n, dim, 2 * hid, 0);
    } else {
        grad(fn, user, l, QS_LIN_GATE, b[XN2], b[H1], n, dim, hid);
        grad(fn, user, l, QS_LIN_UP, b[XN2], b[H3], n, dim, hid);
        matmul_back(e, b[DXN], b[H1], L->w[QS_LIN_GATE], L->over[QS_LIN_GATE], n, dim, hid, 0);
        matmul_back(e, b[DXN], b[H3], L->w[QS_LIN_UP], L->over[QS_LIN_UP], n, dim, hid, 1);
    }
    memcpy(b[DX1], dy, sizeof(float) * N * dim);
    rms_back(b[X1], L->ffn_norm, b[DXN], b[DX1], n, dim, eps, 1);

    /* backward: attention */
    const float *dout = b[DX1];
    if (L->attn_post_norm) {
        rms_back(b[O], L->attn_post_norm, b[DX1], b[DO], n, dim, eps, 0);
        dout = b[DO];
    }
    grad(fn, user, l, QS_LIN_O, e->att, dout, n, qd, dim);
    matmul_back(e, b[DATT], dout, L->w[QS_LIN_O], L->over[QS_LIN_O], n, qd, dim, 0); /* (n, dim) x (dim, qd) */
    memset(b[DK], 0, sizeof(float) * N * kvd);
    memset(b[DV], 0, sizeof(float) * N * kvd);
    attn_back_job aj = {e, n, window, e->q, e->k, e->v, b[DATT], b[DQ], b[DK], b[DV], b[ABUF]};
    openblas_set_num_threads(1);
    qs_parallel_for(a->n_kv_heads, qse_par_threads(e, (long)n * n * a->n_heads * a->head_dim), attention_back_heads, &aj);
    openblas_set_num_threads(e->threads);
    qse_rope(e, b[DQ], n, a->n_heads, L->sliding, 1); /* RoPE's transpose: the inverse rotation */
    qse_rope(e, b[DK], n, a->n_kv_heads, L->sliding, 1);
    if (L->q_norm) { /* per head: rows of head_dim */
        rms_back(b[QPRE], L->q_norm, b[DQ], b[DQ], n * a->n_heads, a->head_dim, eps, 0);
        rms_back(b[KPRE], L->k_norm, b[DK], b[DK], n * a->n_kv_heads, a->head_dim, eps, 0);
    }
    if (L->fused) {
        for (size_t t = 0; t < N; t++) {
            float *r = b[DQKV] + t * wqkv;
            memcpy(r, b[DQ] + t * qd, sizeof(float) * (size_t)qd);
            memcpy(r + qd, b[DK] + t * kvd, sizeof(float) * (size_t)kvd);
            memcpy(r + qd + kvd, b[DV] + t * kvd, sizeof(float) * (size_t)kvd);
        }
        grad(fn, user, l, QS_LIN_QKV, b[XN1], b[DQKV], n, dim, (int)wqkv);
        matmul_back(e, b[DXN], b[DQKV], L->w[QS_LIN_QKV], L->over[QS_LIN_QKV], n, dim, (int)wqkv, 0);
    } else {
        grad(fn, user, l, QS_LIN_Q, b[XN1], b[DQ], n, dim, qd);
        grad(fn, user, l, QS_LIN_K, b[XN1], b[DK], n, dim, kvd);
        grad(fn, user, l, QS_LIN_V, b[XN1], b[DV], n, dim, kvd);
        matmul_back(e, b[DXN], b[DQ], L->w[QS_LIN_Q], L->over[QS_LIN_Q], n, dim, qd, 0);
        matmul_back(e, b[DXN], b[DK], L->w[QS_LIN_K], L->over[QS_LIN_K], n, dim, kvd, 1);
        matmul_back(e, b[DXN], b[DV], L->w[QS_LIN_V], L->over[QS_LIN_V], n, dim, kvd, 1);
    }
    memcpy(dx, b[DX1], sizeof(float) * N * dim);
    rms_back(x, L->attn_norm, b[DXN], dx, n, dim, eps, 1);
    e->llamacpp_numerics = numerics;
    for (int i = 0; i < N_BUF; i++) free(b[i]);
    return 0;
}

int qs_engine_head_backward(qs_engine *e, const float *x, int n, int from, const float *logits, float *dlogits, float *dx,
                            qs_grad_fn fn, void *user, qs_error *err) {
    const qs_arch *a = &e->a;
    if (n <= 0 || from < 0 || from >= n)
        return qs_errorf(err, QS_ERR_USAGE, "head_backward: bad range (n %d, logits from %d)", n, from);
    if (qse_grow(e, n, n)) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory for a %d-token chunk", n);
    const int dim = a->dim, rows = n - from, V = a->n_vocab;
    float *hn = malloc(sizeof(float) * (size_t)rows * dim), *dhn = malloc(sizeof(float) * (size_t)rows * dim);
    if (!hn || !dhn) {
        free(hn);
        free(dhn);
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory for the head's backward pass");
    }
    openblas_set_num_threads(e->threads);
    const float *xf = x + (size_t)from * dim;
    qse_rmsnorm(e, hn, xf, e->output_norm, rows, dim, a->norm_eps);
    if (a->logit_softcap > 0) { /* z = c tanh(u / c): dz/du = 1 - (z / c)^2 */
        const float c = a->logit_softcap;
        for (size_t i = 0; i < (size_t)rows * V; i++) dlogits[i] *= 1.0f - (logits[i] / c) * (logits[i] / c);
    }
    grad(fn, user, a->n_layers, QS_LIN_OUTPUT, hn, dlogits, rows, dim, V);
    matmul_back(e, dhn, dlogits, e->output, e->output_over, rows, dim, V, 0); /* (rows, V) x (V, dim) */
    memset(dx, 0, sizeof(float) * (size_t)from * dim);
    rms_back(xf, e->output_norm, dhn, dx + (size_t)from * dim, rows, dim, a->norm_eps, 0);
    free(hn);
    free(dhn);
    return 0;
}
