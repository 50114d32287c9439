/* Hugging Face models -> qs_model: config.json for the hyper-parameters (hf_config.c),
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
#include "io/hf_config.h"
#include "io/model.h"

#define MAX_HEADER (256u << 20)

/* HF tensor name -> GGUF name (returns snprintf's length); unknown names are kept as they are (validation refuses them). A
 * multimodal checkpoint's language model ("language_model.model.", "model.language_model.") reads
 * as the text model's. Gemma's four norms per block sit in other places than llama's two. */
static int map_name(const char *hf, int post_norms, char *out, size_t cap) {
    static const struct { const char *hf, *gguf; } fixed[] = {
        {"model.embed_tokens.weight", "token_embd.weight"},
        {"model.norm.weight", "output_norm.weight"},
        {"lm_head.weight", "output.weight"},
    };
    static const struct { const char *hf, *gguf; } per_layer[] = {
        {"input_layernorm.weight", "attn_norm.weight"},
        {"self_attn.q_proj.weight", "attn_q.weight"},
        {"self_attn.k_proj.weight", "attn_k.weight"},
        {"self_attn.v_proj.weight", "attn_v.weight"},
        {"self_attn.o_proj.weight", "attn_output.weight"},
        {"self_attn.qkv_proj.weight", "attn_qkv.weight"},
        {"mlp.gate_up_proj.weight", "ffn_up.weight"},
        {"self_attn.q_proj.bias", "attn_q.bias"},
        {"self_attn.k_proj.bias", "attn_k.bias"},
        {"self_attn.v_proj.bias", "attn_v.bias"},
        {"self_attn.q_norm.weight", "attn_q_norm.weight"},
        {"self_attn.k_norm.weight", "attn_k_norm.weight"},
        {"mlp.gate_proj.weight", "ffn_gate.weight"},
        {"mlp.up_proj.weight", "ffn_up.weight"},
        {"mlp.down_proj.weight", "ffn_down.weight"},
        {"pre_feedforward_layernorm.weight", "ffn_norm.weight"},
        {"post_feedforward_layernorm.weight", "post_ffw_norm.weight"},
    };
    char buf[160];
    if (!strncmp(hf, "language_model.", 15)) hf += 15;
    if (!strncmp(hf, "model.language_model.", 21)) {
        snprintf(buf, sizeof buf, "model.%s", hf + 21);
        hf = buf;
    }
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!strcmp(hf, fixed[i].hf)) return snprintf(out, cap, "%s", fixed[i].gguf);
    int layer, n = 0;
    if (sscanf(hf, "model.layers.%d.%n", &layer, &n) == 1 && n > 0 && layer >= 0) {
        int expert, m = 0;
        char proj[8];
        /* one expert's matrix: named apart until qs_hf_stack_experts stacks them as GGUF does */
        if (sscanf(hf + n, "mlp.experts.%d.%7[a-z]_proj.weight%n", &expert, proj, &m) == 2 && m > 0 && !hf[n + m] &&
            expert >= 0 && (!strcmp(proj, "gate") || !strcmp(proj, "up") || !strcmp(proj, "down")))
            return snprintf(out, cap, "blk.%d.ffn_%s_exps.%d.expert", layer, proj, expert);
        if (!strcmp(hf + n, "mlp.gate.weight") || !strcmp(hf + n, "block_sparse_moe.gate.weight"))
            return snprintf(out, cap, "blk.%d.ffn_gate_inp.weight", layer);
        int wi; /* Mixtral's experts: w1 gate, w3 up, w2 down */
        if (sscanf(hf + n, "block_sparse_moe.experts.%d.w%d.weight%n", &expert, &wi, &m) == 2 && m > 0 && !hf[n + m] &&
            expert >= 0 && wi >= 1 && wi <= 3)
            return snprintf(out, cap, "blk.%d.ffn_%s_exps.%d.expert", layer, wi == 1 ? "gate" : wi == 3 ? "up" : "down", expert);
        if (!strcmp(hf + n, "post_attention_layernorm.weight"))
            return snprintf(out, cap, "blk.%d.%s", layer, post_norms ? "post_attention_norm.weight" : "ffn_norm.weight");
        for (size_t i = 0; i < sizeof per_layer / sizeof per_layer[0]; i++)
            if (!strcmp(hf + n, per_layer[i].hf)) return snprintf(out, cap, "blk.%d.%s", layer, per_layer[i].gguf);
    }
    return snprintf(out, cap, "%s", hf);
}

/* a multimodal checkpoint's vision encoder and projector: not part of the language model */
static int is_vision(const char *hf) {
    static const char *const prefixes[] = {"vision_tower.", "multi_modal_projector.", "model.vision_tower.",
                                           "model.multi_modal_projector."};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (!strncmp(hf, prefixes[i], strlen(prefixes[i]))) return 1;
    return 0;
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
        if (is_vision(it->string)) continue;
        char name[96];
        if (map_name(it->string, m->arch.post_norms, name, sizeof name) >= (int)sizeof name) {
            rc = qs_errorf(err, QS_ERR_INPUT, "%s: tensor name '%.120s' is longer than qsense's %zu bytes", path, it->string,
                           sizeof name - 1);
            break;
        }
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

/* Hugging Face keeps each expert's gate, up and down apart; GGUF (and the engine) stack them as
 * ffn_{gate,up,down}_exps [cols, rows, n_expert]. The stack is a copy owned by the model, in the
 * stored type: for a large MoE that is the experts' size again (convert it to GGUF instead). */
static int stack_experts(qs_model *m, qs_error *err) {
    const qs_arch *a = &m->arch;
    if (a->n_expert <= 0) return 0;
    static const char *const kinds[] = {"gate", "up", "down"};
    char name[96];
    for (int l = 0; l < a->n_layers; l++)
        for (int k = 0; k < 3; k++) {
            qs_tensor *first = NULL;
            uint8_t *buf = NULL;
            for (int x = 0; x < a->n_expert; x++) {
                snprintf(name, sizeof name, "blk.%d.ffn_%s_exps.%d.expert", l, kinds[k], x);
                qs_tensor *t = (qs_tensor *)qs_model_find(m, name);
                if (!t)
                    return qs_errorf(err, QS_ERR_INPUT, "%s: layer %d has no mlp.experts.%d.%s_proj.weight (config.json says %d "
                                     "experts)", m->path, l, x, kinds[k], a->n_expert);
                if (!first) {
                    first = t;
                    if (t->n_dims != 2 || !(buf = qs_model_alloc(m, (size_t)t->nbytes * (size_t)a->n_expert)))
                        return qs_errorf(err, t->n_dims != 2 ? QS_ERR_INPUT : QS_ERR_INTERNAL, "%s: tensor '%s': %s", m->path, name,
                                         t->n_dims != 2 ? "an expert's matrix must have 2 dimensions" : "out of memory");
                } else if (t->type != first->type || t->ne[0] != first->ne[0] || t->ne[1] != first->ne[1] || t->n_dims != 2) {
                    return qs_errorf(err, QS_ERR_INPUT, "%s: expert %d of layer %d's %s_proj differs from expert 0 in type or shape",
                                     m->path, x, l, kinds[k]);
                }
                memcpy(buf + (size_t)x * first->nbytes, t->data, first->nbytes);
                if (t != first) t->name[0] = 0; /* dropped below */
            }
            if (!first) continue;
            snprintf(first->name, sizeof first->name, "blk.%d.ffn_%s_exps.weight", l, kinds[k]);
            first->n_dims = 3;
            first->ne[2] = a->n_expert;
            first->data = buf;
            first->nbytes *= (uint64_t)a->n_expert;
        }
    int kept = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].name[0]) m->tensors[kept++] = m->tensors[i];
    m->n_tensors = kept;
    return 0;
}

int qs_model_load_safetensors(qs_model *m, const char *path, qs_error *err) {
    char *dir = qs_path_is_dir(path) ? strdup(path) : qs_path_dirname(path);
    char *cfg = qs_path_join(dir, "config.json");
    char *index = qs_path_join(dir, "model.safetensors.index.json");
    char *single = qs_path_join(dir, "model.safetensors");
    char *tok = qs_path_join(dir, "tokenizer.json");
    int rc = qs_hf_config_read(m, cfg, err);
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
    if ((rc = qs_hf_shift_norms(m, err)) || (rc = stack_experts(m, err))) goto done;
    if (qs_path_exists(tok)) m->tokenizer_path = strdup(tok);
done:
    free(dir); free(cfg); free(index); free(single); free(tok);
    return rc;
}
