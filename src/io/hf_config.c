/* Hugging Face config.json -> qs_arch (see hf_config.h). Keys and defaults follow transformers'
 * configuration_<family>.py; a setting the engine would not honour (another activation, YaRN,
 * attention soft-capping, bidirectional attention) is refused by name rather than ignored. */
#include "io/hf_config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_dtype.h"
#include "core/qs_file.h"
#include "core/qs_json.h"
#include "io/arch.h"

/* One Hugging Face model_type: the family it runs as and transformers' defaults for the keys a
 * config may leave out (0: the key is required). */
typedef struct {
    const char *hf_type, *family;
    int n_heads, n_kv_heads, head_dim, n_vocab, tied;
    double eps, theta;
    const char *act;   /* the hidden_act the family's kernels compute */
    int swa_all;       /* a sliding_window, when set, applies to every layer (Mistral) */
    float norm_shift;  /* RMSNorm weights stored as w for a scale of (shift + w) (Gemma: 1) */
    int experts;       /* 0 dense; 1 Qwen's MoE keys (num_experts, moe_intermediate_size, norm_topk_prob);
                        * 2 Mixtral's (num_local_experts, intermediate_size, always renormalized) */
} hf_family;

static const hf_family FAMILIES[] = {
    {"llama", "llama", 0, 0, 0, 0, 0, 1e-6, 10000.0, "silu", 0, 0.0f, 0},
    {"mistral", "llama", 0, 0, 0, 0, 0, 1e-6, 10000.0, "silu", 1, 0.0f, 0},
    {"mixtral", "llama", 0, 0, 0, 0, 0, 1e-5, 1e6, "silu", 1, 0.0f, 2},
    {"qwen2", "qwen2", 0, 0, 0, 0, 0, 1e-6, 10000.0, "silu", 0, 0.0f, 0},
    {"qwen3", "qwen3", 0, 0, 0, 0, 0, 1e-6, 10000.0, "silu", 0, 0.0f, 0},
    {"gemma3_text", "gemma3", 8, 4, 256, 262208, 1, 1e-6, 1e6, "gelu_pytorch_tanh", 0, 1.0f, 0},
    {"phi3", "phi3", 0, 0, 0, 0, 0, 1e-5, 10000.0, "silu", 1, 0.0f, 0},
    {"qwen3_moe", "qwen3moe", 0, 0, 0, 0, 0, 1e-6, 10000.0, "silu", 0, 0.0f, 1},
};
#define SUPPORTED "llama, mistral, qwen2, qwen3, gemma3_text (and gemma3's text_config), phi3, qwen3_moe, mixtral"

static const hf_family *find_family(const char *hf_type) {
    for (size_t i = 0; hf_type && i < sizeof FAMILIES / sizeof FAMILIES[0]; i++)
        if (!strcmp(FAMILIES[i].hf_type, hf_type)) return &FAMILIES[i];
    return NULL;
}

/* The number at key into *out: 0; 1 when the key is absent or null (out untouched); an error when
 * it is another type or outside [lo, hi]. */
static int get_num(const cJSON *o, const char *key, double lo, double hi, double *out, const char *path, qs_error *err) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!x || cJSON_IsNull(x)) return 1;
    if (!cJSON_IsNumber(x)) return qs_errorf(err, QS_ERR_INPUT, "%s: key '%s' has the wrong type (expected a number)", path, key);
    if (!(x->valuedouble >= lo && x->valuedouble <= hi))
        return qs_errorf(err, QS_ERR_INPUT, "%s: key '%s' = %g is out of range (expected [%g, %g])", path, key, x->valuedouble,
                         lo, hi);
    *out = x->valuedouble;
    return 0;
}

/* The non-negative integer at key into *out; a missing key is an error only when required. */
static int get_int(const cJSON *o, const char *key, int required, int *out, const char *path, qs_error *err) {
    double v;
    int rc = get_num(o, key, 0, 1e9, &v, path, err);
    if (rc < 0) return rc;
    if (rc == 1) return required ? qs_errorf(err, QS_ERR_INPUT, "%s: key '%s' is missing", path, key) : 0;
    if (v != floor(v)) return qs_errorf(err, QS_ERR_INPUT, "%s: key '%s' must be an integer", path, key);
    *out = (int)v;
    return 0;
}

static const char *get_str(const cJSON *o, const char *key) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

/* Llama 3's long-context RoPE as per-frequency divisors (the rope_freqs tensor llama.cpp's
 * converter writes): wavelengths shorter than original/high_freq_factor keep their frequency,
 * longer than original/low_freq_factor are divided by factor, and those between are blended. */
static int llama3_freqs(qs_model *m, const cJSON *p, const char *path, qs_error *err) {
    qs_arch *a = &m->arch;
    double factor = 8.0, low = 1.0, high = 4.0, orig = 8192.0;
    int rc;
    if ((rc = get_num(p, "factor", 1e-6, 1e6, &factor, path, err)) < 0 || (rc = get_num(p, "low_freq_factor", 1e-6, 1e6, &low, path, err)) < 0 ||
        (rc = get_num(p, "high_freq_factor", 1e-6, 1e6, &high, path, err)) < 0 ||
        (rc = get_num(p, "original_max_position_embeddings", 1, 1e9, &orig, path, err)) < 0)
        return rc;
    if (!(high > low)) return qs_errorf(err, QS_ERR_INPUT, "%s: llama3 RoPE scaling needs high_freq_factor > low_freq_factor", path);
    const int half = a->head_dim / 2;
    float *div = qs_model_alloc(m, sizeof(float) * (size_t)half);
    if (!div) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    for (int i = 0; i < half; i++) {
        const double freq = pow((double)a->rope_base, -2.0 * i / a->head_dim), wavelen = 2.0 * M_PI / freq;
        if (wavelen < orig / high) div[i] = 1.0f;
        else if (wavelen > orig / low) div[i] = (float)factor;
        else {
            const double smooth = (orig / wavelen - low) / (high - low);
            div[i] = (float)(1.0 / ((1.0 - smooth) / factor + smooth));
        }
    }
    a->rope_freqs = div;
    return 0;
}

/* RoPE of the global layers (and of Gemma's sliding ones): rope_theta, rope_local_base_freq and
 * rope_scaling (transformers 4) or rope_parameters, flat or per layer type (transformers 5). */
static int read_rope(qs_model *m, const cJSON *cfg, const char *path, qs_error *err) {
    qs_arch *a = &m->arch;
    double theta = a->rope_base, theta_swa = a->rope_base_swa;
    int rc;
    if ((rc = get_num(cfg, "rope_theta", 1.0001, 1e12, &theta, path, err)) < 0 ||
        (rc = get_num(cfg, "rope_local_base_freq", 1.0001, 1e12, &theta_swa, path, err)) < 0)
        return rc;
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(cfg, "rope_parameters");
    const cJSON *scaling = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    const cJSON *global = NULL, *sliding = NULL;
    if (params && !cJSON_IsNull(params)) {
        if (!cJSON_IsObject(params)) return qs_errorf(err, QS_ERR_INPUT, "%s: key 'rope_parameters' must be an object", path);
        const cJSON *full = cJSON_GetObjectItemCaseSensitive(params, "full_attention");
        global = cJSON_IsObject(full) ? full : params;
        sliding = cJSON_GetObjectItemCaseSensitive(params, "sliding_attention");
    }
    if (scaling && !cJSON_IsNull(scaling)) {
        if (!cJSON_IsObject(scaling)) return qs_errorf(err, QS_ERR_INPUT, "%s: key 'rope_scaling' must be an object or null", path);
        if (!global) global = scaling;
    }
    if (cJSON_IsObject(sliding)) {
        if ((rc = get_num(sliding, "rope_theta", 1.0001, 1e12, &theta_swa, path, err)) < 0) return rc;
        const char *t = get_str(sliding, "rope_type");
        if (t && strcmp(t, "default"))
            return qs_errorf(err, QS_ERR_INPUT, "%s: rope_parameters.sliding_attention.rope_type '%s': only default RoPE on "
                             "sliding layers is supported", path, t);
    }
    if (global && (rc = get_num(global, "rope_theta", 1.0001, 1e12, &theta, path, err)) < 0) return rc;
    double partial = 1.0;
    if ((rc = get_num(cfg, "partial_rotary_factor", 0, 1, &partial, path, err)) < 0 ||
        (global && (rc = get_num(global, "partial_rotary_factor", 0, 1, &partial, path, err)) < 0))
        return rc;
    if (partial != 1.0)
        return qs_errorf(err, QS_ERR_INPUT, "%s: partial_rotary_factor %g: RoPE on part of each head is not supported", path,
                         partial);
    a->rope_base = (float)theta;
    /* a family without a RoPE of its own for sliding layers (Mistral) slides with the global one */
    a->rope_base_swa = theta_swa > 0.0 ? (float)theta_swa : (float)theta;
    if (!global) return 0;
    const char *type = get_str(global, "rope_type");
    if (!type) type = get_str(global, "type");
    if (!type || !strcmp(type, "default")) return 0;
    if (!strcmp(type, "linear")) {
        double factor = 1.0;
        if ((rc = get_num(global, "factor", 1e-6, 1e6, &factor, path, err)) < 0) return rc;
        a->rope_scale = (float)(1.0 / factor);
        return 0;
    }
    if (!strcmp(type, "llama3")) return llama3_freqs(m, global, path, err);
    return qs_errorf(err, QS_ERR_INPUT, "%s: RoPE scaling '%s' is not supported (qsense runs default, linear and llama3)", path,
                     type);
}

/* Which layers slide and how far: layer_types when the config lists them, else Gemma's
 * sliding_window_pattern, else (Mistral) every layer once sliding_window is set. */
static int read_sliding(qs_model *m, const cJSON *cfg, const hf_family *f, const char *path, qs_error *err) {
    qs_arch *a = &m->arch;
    const qs_arch_desc *d = qs_arch_desc_find(f->family);
    const cJSON *bidir = cJSON_GetObjectItemCaseSensitive(cfg, "use_bidirectional_attention");
    if (cJSON_IsTrue(bidir))
        return qs_errorf(err, QS_ERR_INPUT, "%s: use_bidirectional_attention is set: qsense measures causal language models", path);
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(cfg, "layer_types");
    const cJSON *use = cJSON_GetObjectItemCaseSensitive(cfg, "use_sliding_window");
    int n_sliding = 0;
    unsigned char *flags = qs_model_alloc(m, (size_t)a->n_layers);
    if (!flags) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    if (types && !cJSON_IsNull(types)) {
        if (!cJSON_IsArray(types) || cJSON_GetArraySize(types) != a->n_layers)
            return qs_errorf(err, QS_ERR_INPUT, "%s: key 'layer_types' must list the %d layers", path, a->n_layers);
        for (int l = 0; l < a->n_layers; l++) {
            const cJSON *t = cJSON_GetArrayItem(types, l);
            const char *s = cJSON_IsString(t) ? t->valuestring : "?";
            if (strcmp(s, "sliding_attention") && strcmp(s, "full_attention"))
                return qs_errorf(err, QS_ERR_INPUT, "%s: layer_types[%d] = '%s': expected sliding_attention or full_attention", path,
                                 l, s);
            n_sliding += flags[l] = !strcmp(s, "sliding_attention");
        }
    } else if (d->swa_period > 0) {
        int period = d->swa_period, rc;
        if ((rc = get_int(cfg, "sliding_window_pattern", 0, &period, path, err))) return rc;
        for (int l = 0; l < a->n_layers; l++) n_sliding += flags[l] = period == 0 || (l + 1) % period != 0;
    } else if (f->swa_all) {
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(cfg, "sliding_window");
        if (w && !cJSON_IsNull(w))
            for (int l = 0; l < a->n_layers; l++) n_sliding += flags[l] = 1;
    } else if (cJSON_IsTrue(use)) {
        return qs_errorf(err, QS_ERR_INPUT, "%s: use_sliding_window is set without layer_types; qsense cannot tell which layers "
                         "slide", path);
    }
    if (!n_sliding) return 0;
    int window = d->swa_period > 0 ? 4096 : 0, rc;
    if ((rc = get_int(cfg, "sliding_window", window == 0, &window, path, err))) return rc;
    if (window < 1) return qs_errorf(err, QS_ERR_INPUT, "%s: key 'sliding_window' must be at least 1", path);
    a->n_swa = window;
    a->swa_layers = flags;
    return 0;
}

/* A mixture of experts: how many, how many per token, their size and whether the chosen ones'
 * weights are renormalized. Every layer must be sparse (what qsense's validation expects). */
static int read_experts(qs_arch *a, const cJSON *cfg, int keys, const char *path, qs_error *err) {
    int step = 1, rc;
    if (keys == 2) { /* Mixtral: every expert intermediate_size wide, the top-k always renormalized */
        a->expert_ff = a->hidden_dim;
        a->expert_norm = 1;
        return (rc = get_int(cfg, "num_local_experts", 1, &a->n_expert, path, err)) ? rc
               : get_int(cfg, "num_experts_per_tok", 1, &a->n_expert_used, path, err);
    }
    if ((rc = get_int(cfg, "num_experts", 1, &a->n_expert, path, err)) ||
        (rc = get_int(cfg, "num_experts_per_tok", 1, &a->n_expert_used, path, err)) ||
        (rc = get_int(cfg, "moe_intermediate_size", 1, &a->expert_ff, path, err)) ||
        (rc = get_int(cfg, "decoder_sparse_step", 0, &step, path, err)))
        return rc;
    const cJSON *dense = cJSON_GetObjectItemCaseSensitive(cfg, "mlp_only_layers");
    if (step != 1 || (cJSON_IsArray(dense) && cJSON_GetArraySize(dense) > 0))
        return qs_errorf(err, QS_ERR_INPUT, "%s: decoder_sparse_step / mlp_only_layers make some layers dense: qsense runs "
                         "models whose every layer is a mixture of experts", path);
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(cfg, "norm_topk_prob");
    if (norm && !cJSON_IsBool(norm)) return qs_errorf(err, QS_ERR_INPUT, "%s: key 'norm_topk_prob' must be a boolean", path);
    a->expert_norm = cJSON_IsTrue(norm); /* transformers' default: false */
    return 0;
}

/* The model_type's family, looking through a multimodal Gemma 3's text_config. */
static const hf_family *resolve(const cJSON *root, const cJSON **cfg, const char *path, qs_error *err) {
    const char *type = get_str(root, "model_type");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    *cfg = root;
    if (type && !strcmp(type, "gemma3") && cJSON_IsObject(text)) {
        *cfg = text;
        type = get_str(text, "model_type");
        if (!type) type = "gemma3_text";
    }
    const hf_family *f = find_family(type);
    if (!f && !type) {
        const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
        const cJSON *first = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
        if (cJSON_IsString(first) && !strcmp(first->valuestring, "LlamaForCausalLM")) f = find_family("llama");
    }
    if (!f)
        qs_errorf(err, QS_ERR_INPUT, "%s: model_type '%s' is not supported (qsense reads: " SUPPORTED ")", path,
                  type ? type : "(none)");
    return f;
}

static int read_config(qs_model *m, const cJSON *root, const char *path, qs_error *err) {
    const cJSON *cfg;
    const hf_family *f = resolve(root, &cfg, path, err);
    if (!f) return QS_ERR_INPUT;
    int rc = qs_model_set_family(m, f->family, err);
    if (rc) return rc;
    qs_arch *a = &m->arch;
    a->n_heads = f->n_heads;
    a->n_vocab = f->n_vocab;
    if ((rc = get_int(cfg, "hidden_size", 1, &a->dim, path, err)) ||
        (rc = get_int(cfg, "intermediate_size", 1, &a->hidden_dim, path, err)) ||
        (rc = get_int(cfg, "num_hidden_layers", 1, &a->n_layers, path, err)) ||
        (rc = get_int(cfg, "num_attention_heads", !f->n_heads, &a->n_heads, path, err)) ||
        (rc = get_int(cfg, "vocab_size", !f->n_vocab, &a->n_vocab, path, err)) ||
        (rc = get_int(cfg, "max_position_embeddings", 0, &a->ctx_train, path, err)) ||
        (rc = get_int(cfg, "original_max_position_embeddings", 0, &a->ctx_orig, path, err)))
        return rc;
    if (a->n_layers < 1 || a->n_layers > 4096 || a->n_heads < 1)
        return qs_errorf(err, QS_ERR_INPUT, "%s: num_hidden_layers %d / num_attention_heads %d out of range", path, a->n_layers,
                         a->n_heads);
    a->n_kv_heads = f->n_kv_heads ? f->n_kv_heads : a->n_heads;
    a->head_dim = f->head_dim ? f->head_dim : a->dim / a->n_heads;
    if ((rc = get_int(cfg, "num_key_value_heads", 0, &a->n_kv_heads, path, err)) ||
        (rc = get_int(cfg, "head_dim", 0, &a->head_dim, path, err)))
        return rc;
    if (f->experts && (rc = read_experts(a, cfg, f->experts, path, err))) return rc;
    double eps = f->eps;
    if ((rc = get_num(cfg, "rms_norm_eps", 1e-12, 0.5, &eps, path, err)) < 0) return rc;
    a->norm_eps = (float)eps;
    a->rope_base = (float)f->theta;
    /* Hugging Face keeps q and k as "rotate half" pairs: RoPE on halves, whatever the family */
    a->rope_type = QS_ROPE_NEOX;
    if ((rc = read_rope(m, cfg, path, err)) || (rc = read_sliding(m, cfg, f, path, err))) return rc;
    const char *act = get_str(cfg, "hidden_activation");
    if (!act) act = get_str(cfg, "hidden_act");
    /* transformers' ACT2FN names: "swish" is silu, "gelu_pytorch_tanh" the tanh approximation */
    if (act && strcmp(act, f->act) && !(!strcmp(f->act, "silu") && !strcmp(act, "swish")))
        return qs_errorf(err, QS_ERR_INPUT, "%s: activation '%s': a %s model runs %s", path, act, f->hf_type, f->act);
    double scalar = 0.0, softcap = 0.0;
    if ((rc = get_num(cfg, "query_pre_attn_scalar", 1e-6, 1e9, &scalar, path, err)) < 0 ||
        (rc = get_num(cfg, "final_logit_softcapping", 0, 1e6, &softcap, path, err)) < 0)
        return rc;
    if (f->norm_shift != 0.0f && scalar == 0.0) scalar = 256.0; /* Gemma 3's default */
    if (scalar > 0.0) a->attn_scale = (float)(1.0 / sqrt(scalar));
    a->logit_softcap = (float)softcap;
    const cJSON *attn_cap = cJSON_GetObjectItemCaseSensitive(cfg, "attn_logit_softcapping");
    if (attn_cap && !cJSON_IsNull(attn_cap))
        return qs_errorf(err, QS_ERR_INPUT, "%s: attn_logit_softcapping is set; soft-capped attention scores are not supported", path);
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    if (!tie) tie = cJSON_GetObjectItemCaseSensitive(cfg, "tie_word_embeddings");
    if (tie && !cJSON_IsBool(tie)) return qs_errorf(err, QS_ERR_INPUT, "%s: key 'tie_word_embeddings' must be a boolean", path);
    a->tied_output = tie ? cJSON_IsTrue(tie) : f->tied;
    for (const cJSON *it = cfg->child; it; it = it->next) {
        if (cJSON_IsString(it)) qs_model_add_meta(m, it->string, "%s", it->valuestring);
        else if (cJSON_IsNumber(it)) qs_model_add_meta(m, it->string, "%g", it->valuedouble);
        else if (cJSON_IsBool(it)) qs_model_add_meta(m, it->string, "%s", cJSON_IsTrue(it) ? "true" : "false");
    }
    return 0;
}

int qs_hf_config_read(qs_model *m, const char *path, qs_error *err) {
    char *text;
    size_t n_text;
    int rc = qs_read_file(path, &text, &n_text, err);
    if (rc) return qs_error_prefix(err, "Hugging Face model needs config.json");
    cJSON *cfg = qs_json_parse(text, n_text, path, 0, err);
    free(text);
    if (!cfg) return QS_ERR_INPUT;
    rc = cJSON_IsObject(cfg) ? read_config(m, cfg, path, err) : qs_errorf(err, QS_ERR_INPUT, "%s: not a valid JSON object", path);
    cJSON_Delete(cfg);
    return rc;
}

int qs_hf_shift_norms(qs_model *m, qs_error *err) {
    const hf_family *f = NULL;
    for (size_t i = 0; i < sizeof FAMILIES / sizeof FAMILIES[0]; i++)
        if (!strcmp(FAMILIES[i].family, m->arch.arch) && FAMILIES[i].norm_shift != 0.0f) f = &FAMILIES[i];
    if (!f) return 0;
    for (int i = 0; i < m->n_tensors; i++) {
        qs_tensor *t = &m->tensors[i];
        const size_t n = strlen(t->name);
        if (n < 11 || strcmp(t->name + n - 11, "norm.weight") || t->n_dims != 1) continue;
        float *w = qs_model_alloc(m, sizeof(float) * (size_t)t->ne[0]);
        if (!w || qs_tensor_dequantize_rows(t, 0, 1, w)) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
        for (int64_t k = 0; k < t->ne[0]; k++) w[k] += f->norm_shift;
        t->data = (const uint8_t *)w;
        t->type = QS_DT_F32;
        t->nbytes = sizeof(float) * (uint64_t)t->ne[0];
    }
    return 0;
}
