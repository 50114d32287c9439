/* Hugging Face models -> qs_model: config.json for the hyper-parameters (LlamaForCausalLM),
 * one model.safetensors or shards listed in model.safetensors.index.json, tokenizer.json
 * beside them. safetensors: u64 header length, a JSON header {name: {dtype, shape,
 * data_offsets: [begin, end]}}, then the raw data. Tensor names are mapped to GGUF's. HF stores
 * q/k projections for "rotate half" RoPE, so these models run with the NEOX layout. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_dtype.h"
#include "core/qs_json.h"
#include "core/qs_path.h"
#include "io/model.h"

#define MAX_HEADER (256u << 20)

/* HF tensor name -> GGUF name; unknown names are kept as they are */
static void map_name(const char *hf, char *out, size_t cap) {
    static const struct { const char *hf, *gguf; } fixed[] = {
        {"model.embed_tokens.weight", "token_embd.weight"},
        {"model.norm.weight", "output_norm.weight"},
        {"lm_head.weight", "output.weight"},
    };
    static const struct { const char *hf, *gguf; } per_layer[] = {
        {"input_layernorm.weight", "attn_norm.weight"},
        {"post_attention_layernorm.weight", "ffn_norm.weight"},
        {"self_attn.q_proj.weight", "attn_q.weight"},
        {"self_attn.k_proj.weight", "attn_k.weight"},
        {"self_attn.v_proj.weight", "attn_v.weight"},
        {"self_attn.o_proj.weight", "attn_output.weight"},
        {"mlp.gate_proj.weight", "ffn_gate.weight"},
        {"mlp.up_proj.weight", "ffn_up.weight"},
        {"mlp.down_proj.weight", "ffn_down.weight"},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!strcmp(hf, fixed[i].hf)) { snprintf(out, cap, "%s", fixed[i].gguf); return; }
    int layer, n = 0;
    if (sscanf(hf, "model.layers.%d.%n", &layer, &n) == 1 && n > 0 && layer >= 0) {
        for (size_t i = 0; i < sizeof per_layer / sizeof per_layer[0]; i++)
            if (!strcmp(hf + n, per_layer[i].hf)) { snprintf(out, cap, "blk.%d.%s", layer, per_layer[i].gguf); return; }
    }
    snprintf(out, cap, "%s", hf);
}

typedef struct {
    uint64_t begin, end;
    const char *name;
} span;

static int by_begin(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* two tensors sharing bytes would make one's weights depend on the other's: refuse */
static int check_overlaps(span *s, int n, const char *path, qs_error *err) {
    qsort(s, (size_t)n, sizeof *s, by_begin);
    for (int i = 1; i < n; i++)
        if (s[i].begin < s[i - 1].end && s[i].end > s[i].begin)
            return qs_errorf(err, QS_ERR_INPUT, "%s: tensors '%s' and '%s' overlap in the data section (bytes %llu..%llu)", path,
                             s[i - 1].name, s[i].name, (unsigned long long)s[i].begin,
                             (unsigned long long)(s[i].end < s[i - 1].end ? s[i].end : s[i - 1].end));
    return 0;
}

static int load_shard(qs_model *m, const char *path, qs_error *err) {
    const qs_map *map;
    int rc = qs_model_add_map(m, path, &map, err);
    if (rc) return rc;
    if (map->size < 8) return qs_errorf(err, QS_ERR_INPUT, "%s: truncated: %zu bytes, a safetensors header needs 8", path, map->size);
    uint64_t hlen;
    memcpy(&hlen, map->data, 8);
    if (hlen > map->size - 8 || hlen > MAX_HEADER)
        return qs_errorf(err, QS_ERR_INPUT, "%s: offset 0: header length %llu exceeds the file (%zu bytes) or %u MiB", path,
                         (unsigned long long)hlen, map->size, MAX_HEADER >> 20);
    cJSON *h = qs_json_parse((const char *)map->data + 8, (size_t)hlen, path, 8, err);
    if (!h) return QS_ERR_INPUT;
    if (!cJSON_IsObject(h)) {
        cJSON_Delete(h);
        return qs_errorf(err, QS_ERR_INPUT, "%s: the %llu-byte JSON header at offset 8 is not a valid JSON object", path,
                         (unsigned long long)hlen);
    }
    const uint64_t data0 = 8 + hlen, avail = map->size - data0;
    rc = 0;
    int n_spans = 0;
    span *spans = calloc((size_t)cJSON_GetArraySize(h) + 1, sizeof *spans);
    if (!spans) rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    for (cJSON *it = h->child; it && !rc; it = it->next) {
        if (!strcmp(it->string, "__metadata__")) continue;
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        cJSON *shape = cJSON_GetObjectItemCaseSensitive(it, "shape");
        cJSON *offs = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2) {
            rc = qs_errorf(err, QS_ERR_INPUT, "%s: tensor '%s': expected dtype, shape and data_offsets [begin, end]", path,
                           it->string);
            break;
        }
        int type, es;
        if (!strcmp(dt->valuestring, "F32")) type = QS_DT_F32, es = 4;
        else if (!strcmp(dt->valuestring, "F16")) type = QS_DT_F16, es = 2;
        else if (!strcmp(dt->valuestring, "BF16")) type = QS_DT_BF16, es = 2;
        else {
            rc = qs_errorf(err, QS_ERR_INPUT, "%s: tensor '%s' has dtype %s; supported: F32, F16, BF16", path, it->string,
                           dt->valuestring);
            break;
        }
        int nd = cJSON_GetArraySize(shape);
        if (nd < 1 || nd > 4) {
            rc = qs_errorf(err, QS_ERR_INPUT, "%s: tensor '%s' has %d dimensions, expected 1 to 4", path, it->string, nd);
            break;
        }
        char name[96];
        map_name(it->string, name, sizeof name);
        qs_tensor *t = qs_model_add_tensor(m, name);
        if (!t) { rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory"); break; }
        t->type = type;
        t->n_dims = nd;
        uint64_t numel = 1;
        for (int d = 0; d < nd; d++) {
            cJSON *x = cJSON_GetArrayItem(shape, nd - 1 - d); /* row-major [rows, cols] -> ne0 = cols */
            double v = cJSON_IsNumber(x) ? x->valuedouble : -1;
            if (!(v >= 1 && v <= 9.0e15) || v != floor(v) || numel > (UINT64_MAX / 8) / (uint64_t)v) {
                rc = qs_errorf(err, QS_ERR_INPUT, "%s: tensor '%s': dimension %d is not a positive integer of sane size", path,
                               it->string, nd - 1 - d);
                break;
            }
            t->ne[d] = (int64_t)v;
            numel *= (uint64_t)v;
        }
        if (rc) break;
        cJSON *b = cJSON_GetArrayItem(offs, 0), *e = cJSON_GetArrayItem(offs, 1);
        double bv = cJSON_IsNumber(b) ? b->valuedouble : -1, ev = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (!(bv >= 0 && ev >= bv && ev <= (double)avail) || bv != floor(bv) || ev != floor(ev) || (uint64_t)ev - (uint64_t)bv != numel * (uint64_t)es) {
            rc = qs_errorf(err, QS_ERR_INPUT,
                           "%s: tensor '%s': data_offsets [%.0f, %.0f] must span %llu bytes inside the %llu-byte data section",
                           path, it->string, bv, ev, (unsigned long long)(numel * (uint64_t)es), (unsigned long long)avail);
            break;
        }
        t->data = map->data + data0 + (uint64_t)bv;
        t->nbytes = numel * (uint64_t)es;
        t->file_offset = data0 + (uint64_t)bv;
        spans[n_spans++] = (span){(uint64_t)bv, (uint64_t)ev, it->string};
    }
    if (!rc) rc = check_overlaps(spans, n_spans, path, err);
    free(spans);
    cJSON_Delete(h);
    return rc;
}

static int cfg_int(cJSON *cfg, const char *key, int *out, int required, const char *path, qs_error *err) {
    cJSON *x = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!x || cJSON_IsNull(x)) {
        if (required) return qs_errorf(err, QS_ERR_INPUT, "%s: key '%s' is missing", path, key);
        return 0;
    }
    if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 1e9 || x->valuedouble != (double)(int)x->valuedouble)
        return qs_errorf(err, QS_ERR_INPUT, "%s: key '%s' must be a non-negative integer", path, key);
    *out = x->valueint;
    return 0;
}

static int load_config(qs_model *m, const char *path, qs_error *err) {
    char *text;
    size_t n_text;
    int rc = qs_read_file(path, &text, &n_text, err);
    if (rc) return qs_error_prefix(err, "Hugging Face model needs config.json");
    cJSON *cfg = qs_json_parse(text, n_text, path, 0, err);
    free(text);
    if (!cfg) return QS_ERR_INPUT;
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return qs_errorf(err, QS_ERR_INPUT, "%s: not a valid JSON object", path);
    }
    qs_arch *a = &m->arch;
    cJSON *mt = cJSON_GetObjectItemCaseSensitive(cfg, "model_type");
    cJSON *archs = cJSON_GetObjectItemCaseSensitive(cfg, "architectures");
    cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    int llama = (cJSON_IsString(mt) && !strcmp(mt->valuestring, "llama")) ||
                (cJSON_IsString(a0) && !strcmp(a0->valuestring, "LlamaForCausalLM"));
    if (!llama) {
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: model_type '%s' is not supported (only llama / LlamaForCausalLM)", path,
                       cJSON_IsString(mt) ? mt->valuestring : "?");
        goto done;
    }
    if ((rc = qs_model_set_family(m, "llama", err))) goto done;
    if ((rc = cfg_int(cfg, "hidden_size", &a->dim, 1, path, err)) ||
        (rc = cfg_int(cfg, "intermediate_size", &a->hidden_dim, 1, path, err)) ||
        (rc = cfg_int(cfg, "num_hidden_layers", &a->n_layers, 1, path, err)) ||
        (rc = cfg_int(cfg, "num_attention_heads", &a->n_heads, 1, path, err)) ||
        (rc = cfg_int(cfg, "vocab_size", &a->n_vocab, 1, path, err)) ||
        (rc = cfg_int(cfg, "max_position_embeddings", &a->ctx_train, 0, path, err)))
        goto done;
    a->n_kv_heads = a->n_heads;
    if ((rc = cfg_int(cfg, "num_key_value_heads", &a->n_kv_heads, 0, path, err))) goto done;
    a->head_dim = a->n_heads ? a->dim / a->n_heads : 0;
    int head_dim = a->head_dim;
    if ((rc = cfg_int(cfg, "head_dim", &head_dim, 0, path, err))) goto done;
    if (head_dim != a->head_dim) {
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: head_dim %d differs from hidden_size / num_attention_heads = %d; not supported",
                       path, head_dim, a->head_dim);
        goto done;
    }
    cJSON *eps = cJSON_GetObjectItemCaseSensitive(cfg, "rms_norm_eps");
    cJSON *theta = cJSON_GetObjectItemCaseSensitive(cfg, "rope_theta");
    cJSON *scaling = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    cJSON *tie = cJSON_GetObjectItemCaseSensitive(cfg, "tie_word_embeddings");
    const char *wrong = eps && !cJSON_IsNull(eps) && !cJSON_IsNumber(eps)             ? "rms_norm_eps"
                        : theta && !cJSON_IsNull(theta) && !cJSON_IsNumber(theta)     ? "rope_theta"
                        : tie && !cJSON_IsBool(tie)                                   ? "tie_word_embeddings"
                                                                                      : NULL;
    if (wrong) {
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: key '%s' has the wrong type (expected a %s)", path, wrong,
                       strcmp(wrong, "tie_word_embeddings") ? "number" : "boolean");
        goto done;
    }
    if ((cJSON_IsNumber(eps) && !(eps->valuedouble > 0 && eps->valuedouble < 1)) ||
        (cJSON_IsNumber(theta) && !(theta->valuedouble > 0 && theta->valuedouble < 1e12))) {
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: key '%s' is out of range", path,
                       cJSON_IsNumber(eps) && !(eps->valuedouble > 0 && eps->valuedouble < 1) ? "rms_norm_eps" : "rope_theta");
        goto done;
    }
    a->norm_eps = cJSON_IsNumber(eps) ? (float)eps->valuedouble : 1e-6f;
    a->rope_base = cJSON_IsNumber(theta) ? (float)theta->valuedouble : 10000.0f;
    a->rope_type = QS_ROPE_NEOX;
    a->tied_output = cJSON_IsTrue(tie);
    if (scaling && !cJSON_IsNull(scaling)) {
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: rope_scaling is set; scaled RoPE is not supported yet", path);
        goto done;
    }
    for (cJSON *it = cfg->child; it; it = it->next) {
        if (cJSON_IsString(it)) qs_model_add_meta(m, it->string, "%s", it->valuestring);
        else if (cJSON_IsNumber(it)) qs_model_add_meta(m, it->string, "%g", it->valuedouble);
        else if (cJSON_IsBool(it)) qs_model_add_meta(m, it->string, "%s", cJSON_IsTrue(it) ? "true" : "false");
    }
done:
    cJSON_Delete(cfg);
    return rc;
}

int qs_model_load_safetensors(qs_model *m, const char *path, qs_error *err) {
    char *dir = qs_path_is_dir(path) ? strdup(path) : qs_path_dirname(path);
    char *cfg = qs_path_join(dir, "config.json");
    char *index = qs_path_join(dir, "model.safetensors.index.json");
    char *single = qs_path_join(dir, "model.safetensors");
    char *tok = qs_path_join(dir, "tokenizer.json");
    int rc = load_config(m, cfg, err);
    snprintf(m->format, sizeof m->format, "safetensors");
    if (rc) goto done;
    const char *idx_path = NULL;
    size_t n = strlen(path);
    if (n > 22 && !strcmp(path + n - 23, ".safetensors.index.json")) idx_path = path;
    else if (qs_path_is_dir(path) && qs_path_exists(index)) idx_path = index;
    if (idx_path) {
        char *text;
        size_t n_text;
        if ((rc = qs_read_file(idx_path, &text, &n_text, err))) goto done;
        cJSON *j = qs_json_parse(text, n_text, idx_path, 0, err);
        free(text);
        if (!j) {
            rc = QS_ERR_INPUT;
            goto done;
        }
        cJSON *wm = j ? cJSON_GetObjectItemCaseSensitive(j, "weight_map") : NULL;
        if (!cJSON_IsObject(wm)) {
            cJSON_Delete(j);
            rc = qs_errorf(err, QS_ERR_INPUT, "%s: expected a JSON object with a 'weight_map' object", idx_path);
            goto done;
        }
        /* each distinct shard once, in order of first mention */
        char **seen = NULL;
        int n_seen = 0;
        for (cJSON *it = wm->child; it && !rc; it = it->next) {
            if (!cJSON_IsString(it) || strchr(it->valuestring, '/') || !strcmp(it->valuestring, "..")) {
                rc = qs_errorf(err, QS_ERR_INPUT, "%s: weight_map['%s'] must be a file name in the same directory", idx_path,
                               it->string);
                break;
            }
            int dup = 0;
            for (int i = 0; i < n_seen; i++) dup |= !strcmp(seen[i], it->valuestring);
            if (dup) continue;
            char **ns = realloc(seen, sizeof(char *) * (size_t)(n_seen + 1));
            if (!ns) { rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory"); break; }
            seen = ns;
            seen[n_seen++] = it->valuestring;
            char *shard = qs_path_join(dir, it->valuestring);
            rc = load_shard(m, shard, err);
            free(shard);
        }
        free(seen);
        cJSON_Delete(j);
        if (rc) goto done;
    } else {
        const char *file = qs_path_is_dir(path) ? single : path;
        if ((rc = load_shard(m, file, err))) goto done;
    }
    if (!m->arch.tied_output && !qs_model_find(m, "output.weight")) m->arch.tied_output = 1;
    if (qs_path_exists(tok)) m->tokenizer_path = strdup(tok);
done:
    free(dir); free(cfg); free(index); free(single); free(tok);
    return rc;
}
