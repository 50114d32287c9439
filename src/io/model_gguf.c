/* GGUF -> qs_model: hyper-parameters from "{arch}.*" keys, tensors borrowed from the map,
 * metadata summarized for inspect. The vocabulary stays in the GGUF for src/tok to read. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_dtype.h"
#include "io/arch.h"
#include "io/gguf.h"
#include "io/model.h"

static void summarize(const qs_gguf_kv *kv, char *buf, size_t cap) {
    switch (kv->type) {
    case QS_GGUF_STRING: {
        int n = kv->str.len > 120 ? 120 : (int)kv->str.len;
        snprintf(buf, cap, "%.*s%s", n, kv->str.ptr, kv->str.len > 120 ? "..." : "");
        for (char *p = buf; *p; p++)
            if (*p == '\n' || *p == '\t' || *p == '\r') *p = ' ';
        break;
    }
    case QS_GGUF_ARRAY:
        if (kv->arr_type == QS_GGUF_STRING && kv->arr_n > 0) {
            int n = kv->arr_strs[0].len > 24 ? 24 : (int)kv->arr_strs[0].len;
            snprintf(buf, cap, "[%llu strings: \"%.*s\", ...]", (unsigned long long)kv->arr_n, n, kv->arr_strs[0].ptr);
        } else if (qs_gguf_scalar_size(kv->arr_type) && kv->arr_n > 0) {
            snprintf(buf, cap, "[%llu %s: %g, ...]", (unsigned long long)kv->arr_n, qs_gguf_type_name(kv->arr_type),
                     qs_gguf_arr_num(kv, 0));
        } else {
            snprintf(buf, cap, "[%llu %s]", (unsigned long long)kv->arr_n, qs_gguf_type_name(kv->arr_type));
        }
        for (char *p = buf; *p; p++)
            if ((unsigned char)*p < 32) *p = ' ';
        break;
    case QS_GGUF_FLOAT32: case QS_GGUF_FLOAT64: snprintf(buf, cap, "%g", kv->v.f); break;
    case QS_GGUF_BOOL: snprintf(buf, cap, "%s", kv->v.u ? "true" : "false"); break;
    case QS_GGUF_INT8: case QS_GGUF_INT16: case QS_GGUF_INT32: case QS_GGUF_INT64:
        snprintf(buf, cap, "%lld", (long long)kv->v.i);
        break;
    default: snprintf(buf, cap, "%llu", (unsigned long long)kv->v.u);
    }
}

static int get_int(const qs_gguf *g, const char *arch, const char *suffix, int *out, int required, qs_error *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    uint32_t v;
    int rc = qs_gguf_get_u32(g, key, &v, err);
    if (rc < 0) return rc;
    if (rc == 1) {
        if (required) return qs_errorf(err, QS_ERR_INPUT, "%s: metadata key '%s' is missing", g->map.path, key);
        return 0;
    }
    if (v > (1u << 30)) return qs_errorf(err, QS_ERR_INPUT, "%s: key '%s' = %u is implausibly large", g->map.path, key, v);
    *out = (int)v;
    return 0;
}

static int get_f32(const qs_gguf *g, const char *arch, const char *suffix, float *out, qs_error *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int rc = qs_gguf_get_f32(g, key, out, err);
    return rc < 0 ? rc : 0;
}

/* linear RoPE scaling of the global layers (rope.scaling.factor, or the older scale_linear);
 * the other scalings (YaRN, LongRoPE) change the frequencies per dimension: refused */
static int read_rope_scaling(const qs_gguf *g, qs_arch *a, qs_error *err) {
    char key[128], type[32] = "linear";
    snprintf(key, sizeof key, "%s.rope.scaling.type", a->arch);
    int rc = qs_gguf_get_str(g, key, type, sizeof type, err);
    if (rc < 0) return rc;
    float factor = 0.0f;
    if ((rc = get_f32(g, a->arch, "rope.scaling.factor", &factor, err))) return rc;
    if (factor == 0.0f && (rc = get_f32(g, a->arch, "rope.scale_linear", &factor, err))) return rc;
    if (strcmp(type, "linear") && strcmp(type, "none") && factor != 0.0f && factor != 1.0f)
        return qs_errorf(err, QS_ERR_INPUT, "%s: %s = '%s': only linear RoPE scaling is supported", g->map.path, key, type);
    if (!(factor >= 0.0f && factor < 1e6f))
        return qs_errorf(err, QS_ERR_INPUT, "%s: RoPE scaling factor %g is not plausible", g->map.path, factor);
    a->rope_scale = factor == 0.0f ? 1.0f : 1.0f / factor;
    return 0;
}

/* attention.sliding_window_pattern: a period (every period-th layer global) or, as llama.cpp also
 * reads it, one bool per layer (true: sliding) */
static int read_swa_layers(qs_model *m, const qs_gguf *g, int *period, qs_error *err) {
    qs_arch *a = &m->arch;
    char key[128];
    snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", a->arch);
    const qs_gguf_kv *kv = qs_gguf_find(g, key);
    if (!kv || kv->type != QS_GGUF_ARRAY) return get_int(g, a->arch, "attention.sliding_window_pattern", period, 0, err);
    if (kv->arr_type != QS_GGUF_BOOL || kv->arr_n != (uint64_t)a->n_layers)
        return qs_errorf(err, QS_ERR_INPUT, "%s: offset %llu: '%s' must be a number or %d bools (one per layer)", g->map.path,
                         (unsigned long long)kv->offset, key, a->n_layers);
    unsigned char *f = qs_model_alloc(m, (size_t)a->n_layers);
    if (!f) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    for (int l = 0; l < a->n_layers; l++) f[l] = kv->arr_data[l] != 0;
    a->swa_layers = f;
    return 0;
}

int qs_model_load_gguf(qs_model *m, const char *path, qs_error *err) {
    qs_gguf *g;
    int rc = qs_gguf_open(&g, path, err);
    if (rc) return rc;
    m->gguf = g;
    snprintf(m->format, sizeof m->format, "gguf v%u", g->version);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        char key[96], val[160];
        int n = g->kv[i].key.len > 95 ? 95 : (int)g->kv[i].key.len;
        memcpy(key, g->kv[i].key.ptr, (size_t)n);
        key[n] = 0;
        summarize(&g->kv[i], val, sizeof val);
        qs_model_add_meta(m, key, "%s", val);
    }
    qs_arch *a = &m->arch;
    char arch_name[32];
    rc = qs_gguf_get_str(g, "general.architecture", arch_name, sizeof arch_name, err);
    if (rc < 0) return rc;
    if (rc == 1) return qs_errorf(err, QS_ERR_INPUT, "%s: metadata key 'general.architecture' is missing", path);
    if ((rc = qs_model_set_family(m, arch_name, err))) return rc;
    if ((rc = get_int(g, a->arch, "embedding_length", &a->dim, 1, err)) ||
        (rc = get_int(g, a->arch, "feed_forward_length", &a->hidden_dim, 1, err)) ||
        (rc = get_int(g, a->arch, "block_count", &a->n_layers, 1, err)) ||
        (rc = get_int(g, a->arch, "attention.head_count", &a->n_heads, 1, err)) ||
        (rc = get_int(g, a->arch, "context_length", &a->ctx_train, 0, err)))
        return rc;
    a->n_kv_heads = a->n_heads;
    if ((rc = get_int(g, a->arch, "attention.head_count_kv", &a->n_kv_heads, 0, err))) return rc;
    a->norm_eps = 1e-5f;
    a->rope_base = 10000.0f;
    if ((rc = get_f32(g, a->arch, "attention.layer_norm_rms_epsilon", &a->norm_eps, err)) ||
        (rc = get_f32(g, a->arch, "rope.freq_base", &a->rope_base, err)) ||
        (rc = get_f32(g, a->arch, "rope.freq_base_swa", &a->rope_base_swa, err)) ||
        (rc = get_f32(g, a->arch, "final_logit_softcapping", &a->logit_softcap, err)))
        return rc;
    a->head_dim = a->n_heads > 0 ? a->dim / a->n_heads : 0;
    int v_head_dim = 0;
    if ((rc = get_int(g, a->arch, "attention.key_length", &a->head_dim, 0, err)) ||
        (rc = get_int(g, a->arch, "attention.value_length", &v_head_dim, 0, err)) ||
        (rc = get_int(g, a->arch, "attention.sliding_window", &a->n_swa, 0, err)))
        return rc;
    if (qs_arch_desc_find(a->arch)->gguf_swa != 1) a->n_swa = 0; /* as llama.cpp: that family's window is not applied */
    if (v_head_dim && v_head_dim != a->head_dim)
        return qs_errorf(err, QS_ERR_INPUT, "%s: attention.key_length %d differs from value_length %d; not supported", path,
                         a->head_dim, v_head_dim);
    if ((rc = read_rope_scaling(g, a, err))) return rc;
    int n_rot = a->head_dim;
    if ((rc = get_int(g, a->arch, "rope.dimension_count", &n_rot, 0, err))) return rc;
    if (n_rot != a->head_dim)
        return qs_errorf(err, QS_ERR_INPUT, "%s: %s.rope.dimension_count %d: RoPE on part of a %d-wide head is not supported",
                         path, a->arch, n_rot, a->head_dim);
    /* a mixture of experts: qwen3moe always; llama when the file has experts (Mixtral), whose
     * experts are feed_forward_length wide. llama.cpp renormalizes the top-k weights for both. */
    const int moe_family = qs_arch_desc_find(a->arch)->moe;
    a->expert_ff = a->hidden_dim;
    if ((rc = get_int(g, a->arch, "expert_count", &a->n_expert, moe_family, err)) ||
        (rc = get_int(g, a->arch, "expert_used_count", &a->n_expert_used, moe_family || a->n_expert > 0, err)) ||
        (rc = get_int(g, a->arch, "expert_feed_forward_length", &a->expert_ff, moe_family, err)))
        return rc;
    a->expert_norm = a->n_expert > 0;
    int swa_period = -1;
    if ((rc = read_swa_layers(m, g, &swa_period, err))) return rc;
    /* Gemma 3 27B scales q by 1/sqrt(dim / heads), not 1/sqrt(head_dim) (Google's gemma_pytorch
     * config, query_pre_attn_scalar; llama.cpp keys it on the 62-layer size as GGUF has no key) */
    if (!strcmp(a->arch, "gemma3") && a->n_layers == 62 && a->n_heads > 0)
        a->attn_scale = 1.0f / sqrtf((float)(a->dim / a->n_heads));
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const qs_gguf_tensor *gt = &g->tensors[i];
        char name[96];
        if (gt->name.len >= sizeof name)
            return qs_errorf(err, QS_ERR_INPUT, "%s: tensor %llu has a name of %llu bytes, longer than %zu", path,
                             (unsigned long long)i, (unsigned long long)gt->name.len, sizeof name - 1);
        memcpy(name, gt->name.ptr, gt->name.len);
        name[gt->name.len] = 0;
        qs_tensor *t = qs_model_add_tensor(m, name);
        if (!t) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
        t->type = gt->type;
        t->n_dims = (int)gt->n_dims;
        memcpy(t->ne, gt->ne, sizeof t->ne);
        t->data = gt->data;
        t->nbytes = gt->nbytes;
        t->file_offset = g->data_offset + gt->offset;
    }
    /* Llama 3.1's long-context RoPE: per-frequency divisors, one f32 per rotated pair */
    const qs_tensor *rf = qs_model_find(m, "rope_freqs.weight");
    if (rf) {
        if (rf->type != QS_DT_F32 || rf->n_dims != 1 || rf->ne[0] != a->head_dim / 2)
            return qs_errorf(err, QS_ERR_INPUT, "%s: tensor 'rope_freqs.weight' must be %d f32 values (one per rotated pair)",
                             path, a->head_dim / 2);
        a->rope_freqs = (const float *)rf->data;
    }
    const qs_tensor *emb = qs_model_find(m, "token_embd.weight");
    a->n_vocab = emb ? (int)emb->ne[1] : 0;
    a->tied_output = qs_model_find(m, "output.weight") == NULL;
    return qs_model_finish_family(m, swa_period, err);
}
