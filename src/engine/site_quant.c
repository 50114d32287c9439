/* Activation and KV-cache formats at the engine's sites (see site_quant.h). */
#include "engine/site_quant.h"

#include <math.h>
#include <stdlib.h>

#include "engine/act_round.h"
#include "engine/engine_impl.h"
#include "quant/format.h"

struct qs_site_quant {
    int n_layers;
    int widths[QS_SITE_COUNT];
    const qs_act_format **fmt; /* [(n_layers + 1) * QS_SITE_COUNT]; the cache's at QS_SITE_K */
    float *absmax;             /* the same shape: static formats' calibrated ranges */
    int llamacpp, failed;
};

int qs_site_width(const qs_engine *e, int site) {
    const qs_arch *a = &e->a;
    switch (site) {
    case QS_SITE_ATTN_OUT: return a->n_heads * a->head_dim;
    case QS_SITE_FFN_DOWN_IN: return a->n_expert > 0 ? a->expert_ff : a->hidden_dim;
    case QS_SITE_Q: case QS_SITE_K: case QS_SITE_V: return a->head_dim;
    default: return a->dim;
    }
}

int qs_site_quant_new(qs_site_quant **out, const qs_engine *e, qs_error *err) {
    qs_site_quant *q = calloc(1, sizeof *q);
    const size_t n = (size_t)(e->a.n_layers + 1) * QS_SITE_COUNT;
    if (q) q->fmt = calloc(n, sizeof *q->fmt), q->absmax = malloc(sizeof(float) * n);
    if (!q || !q->fmt || !q->absmax) {
        qs_site_quant_free(q);
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    }
    q->n_layers = e->a.n_layers;
    for (int s = 0; s < QS_SITE_COUNT; s++) q->widths[s] = qs_site_width(e, s);
    for (size_t i = 0; i < n; i++) q->absmax[i] = NAN;
    *out = q;
    return 0;
}

void qs_site_quant_free(qs_site_quant *q) {
    if (!q) return;
    free(q->fmt);
    free(q->absmax);
    free(q);
}

void qs_site_quant_clear(qs_site_quant *q) {
    for (size_t i = 0; i < (size_t)(q->n_layers + 1) * QS_SITE_COUNT; i++) q->fmt[i] = NULL, q->absmax[i] = NAN;
}

void qs_site_quant_set_llamacpp_numerics(qs_site_quant *q, int on) { q->llamacpp = on; }

int qs_site_quant_set_input(qs_site_quant *q, int layer, int site, const qs_act_format *f, float absmax, qs_error *err) {
    if (site < QS_SITE_ATTN_IN || site > QS_SITE_HEAD_IN)
        return qs_errorf(err, QS_ERR_USAGE, "site %d is not a linear layer's input", site);
    const int head = site == QS_SITE_HEAD_IN;
    if (layer < -1 || layer > q->n_layers || (layer >= 0 && (layer == q->n_layers) != head))
        return qs_errorf(err, QS_ERR_USAGE, "no %s site at layer %d", qs_site_name(site), layer);
    if (f) {
        char why[160];
        if (f->kv) return qs_errorf(err, QS_ERR_USAGE, "%s is a KV-cache format, not one for a linear layer's input", f->name);
        if (!qs_act_format_applies(f, q->widths[site], why, sizeof why))
            return qs_errorf(err, QS_ERR_USAGE, "%s does not apply to %s (%d values a token): %s", f->name, qs_site_name(site),
                             q->widths[site], why);
        if (f->is_static && !(absmax >= 0 && isfinite(absmax)))
            return qs_errorf(err, QS_ERR_USAGE, "%s takes a static scale from calibration; %s of layer %d has no calibrated range",
                             f->name, qs_site_name(site), layer);
    }
    const int first = head ? q->n_layers : layer < 0 ? 0 : layer, last = head ? q->n_layers : layer < 0 ? q->n_layers - 1 : layer;
    for (int l = first; l <= last; l++) {
        q->fmt[(size_t)l * QS_SITE_COUNT + site] = f;
        q->absmax[(size_t)l * QS_SITE_COUNT + site] = absmax;
    }
    return 0;
}

int qs_site_quant_set_kv(qs_site_quant *q, int layer, const qs_act_format *f, qs_error *err) {
    if (layer < -1 || layer >= q->n_layers) return qs_errorf(err, QS_ERR_USAGE, "no KV cache at layer %d", layer);
    if (f) {
        char why[160];
        if (!f->kv) return qs_errorf(err, QS_ERR_USAGE, "%s is an activation format, not a KV-cache one", f->name);
        if (!qs_act_format_applies(f, q->widths[QS_SITE_K], why, sizeof why))
            return qs_errorf(err, QS_ERR_USAGE, "%s does not apply to this model's KV cache (heads of %d values): %s", f->name,
                             q->widths[QS_SITE_K], why);
    }
    for (int l = layer < 0 ? 0 : layer; l <= (layer < 0 ? q->n_layers - 1 : layer); l++)
        q->fmt[(size_t)l * QS_SITE_COUNT + QS_SITE_K] = f;
    return 0;
}

/* llama.cpp (since its PR 21038) rotates the keys, queries and values of a quantized cache by an
 * orthonormal Walsh-Hadamard matrix (H = H^T = H^-1) in chunks of n along each head when head_dim
 * is a multiple of 64: keys and queries by the largest power-of-two multiple of 64 dividing
 * head_dim, values by 64, and the attention output back. Outliers spread over the chunk, so the
 * blocks quantize far better. Rotating, quantizing and rotating back is the same attention up to
 * f32 rounding. 0: no rotation. */
static int rotation(const qs_site_quant *q, const qs_act_format *f, int site) {
    const int hd = q->widths[QS_SITE_K];
    if (f->kind != QS_AF_BLOCKS || f->bits >= 16 || hd % 64) return 0;
    if (site == QS_SITE_V) return 64;
    int n = 64;
    while (hd % (2 * n) == 0) n *= 2;
    return n;
}

/* x[0..n) = H x, H the normalized n x n Walsh-Hadamard matrix (n a power of two): the butterflies
 * of the fast transform */
static void hadamard(float *x, int n) {
    for (int h = 1; h < n; h *= 2)
        for (int i = 0; i < n; i += 2 * h)
            for (int j = i; j < i + h; j++) {
                const float a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
    const float norm = 1.0f / sqrtf((float)n);
    for (int i = 0; i < n; i++) x[i] *= norm;
}

static void rotate_rows(float *x, int64_t n_values, int chunk) {
    for (int64_t i = 0; i < n_values; i += chunk) hadamard(x + i, chunk);
}

int qs_site_quant_failed(qs_site_quant *q) {
    const int f = q->failed;
    q->failed = 0;
    return f ? -1 : 0;
}

static void on_site(void *user, int layer, int site, float *x, int n, int width) {
    qs_site_quant *q = user;
    const size_t at = (size_t)layer * QS_SITE_COUNT;
    if (site == QS_SITE_Q) { /* ggml converts the (rotated) queries to the cache's dot-product type */
        const qs_act_format *kv = q->fmt[at + QS_SITE_K];
        if (q->llamacpp && kv && kv->kind == QS_AF_BLOCKS) {
            const int type = qs_format_find(kv->weight_format, NULL)->ggml_type, rot = rotation(q, kv, QS_SITE_K);
            if (rot) rotate_rows(x, (int64_t)n * width, rot);
            for (int t = 0; t < n; t++) qs_act_round(type, x + (size_t)t * width, x + (size_t)t * width, width);
            if (rot) rotate_rows(x, (int64_t)n * width, rot);
        }
        return;
    }
    const qs_act_format *f = q->fmt[at + (site == QS_SITE_V ? QS_SITE_K : site)];
    if (!f) return;
    const int rot = site == QS_SITE_K || site == QS_SITE_V ? rotation(q, f, site) : 0;
    if (rot) rotate_rows(x, (int64_t)n * width, rot);
    if (qs_act_format_apply(f, x, n, width, q->absmax[at + site]) != 0) q->failed = 1;
    if (rot) rotate_rows(x, (int64_t)n * width, rot);
}

void qs_site_quant_attach(qs_engine *e, qs_site_quant *q) { qs_engine_set_site_quant(e, q ? on_site : NULL, q); }
