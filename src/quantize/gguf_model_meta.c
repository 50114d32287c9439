/* GGUF metadata for models read from llama2.c or Hugging Face files (see gguf_model_meta.h).
 * Key names and value types follow llama.cpp's loader: counts and token ids u32, epsilon and
 * RoPE base f32, flags bool, token scores f32[], token types i32[]. */
#include "quantize/gguf_model_meta.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_json.h"
#include "core/qs_path.h"
#include "io/arch.h"

/* the model's name for general.name: its file or directory name without the extension */
static void model_name(const qs_model *m, char *out, size_t cap) {
    const char *p = m->path;
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && p[b - 1] != '/') b--;
    size_t e = n;
    for (size_t k = b; k < n; k++)
        if (p[k] == '.') e = k;
    if (e == b) e = n;
    snprintf(out, cap, "%.*s", (int)(e - b), p + b);
}

/* tokenizer.chat_template from the tokenizer_config.json beside a Hugging Face tokenizer.json,
 * when it has one (chat models need it in llama.cpp); a missing or odd file adds nothing */
static int put_chat_template(qs_gguf_writer *w, const qs_model *m) {
    if (!m->tokenizer_path) return 0;
    char *dir = qs_path_dirname(m->tokenizer_path), *path = qs_path_join(dir, "tokenizer_config.json"), *text = NULL;
    free(dir);
    int rc = 0;
    size_t n;
    if (qs_path_exists(path) && qs_read_file(path, &text, &n, NULL) == 0) {
        /* read strictly already when the tokenizer was loaded; here only the template is taken */
        cJSON *cfg = qs_json_parse(text, n, path, 0, NULL);
        cJSON *tpl = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "chat_template") : NULL;
        if (cJSON_IsString(tpl)) rc = qs_gguf_add_str(w, "tokenizer.chat_template", tpl->valuestring);
        cJSON_Delete(cfg);
        free(text);
    }
    free(path);
    return rc;
}

/* llama.cpp's name for a byte-level pre-tokenizer (tokenizer.ggml.pre) */
static const char *pre_name(int pre) {
    switch (pre) {
    case QS_PRE_DIGITS_GPT2: return "smollm";
    case QS_PRE_LLAMA3: return "llama-bpe";
    case QS_PRE_QWEN2: return "qwen2";
    default: return "gpt-2";
    }
}

static int put_tokenizer(qs_gguf_writer *w, const qs_vocab *v, const qs_model *m, qs_error *err) {
    const int n = v->n_tokens;
    const char **text = malloc(sizeof(char *) * (size_t)n);
    size_t *lens = malloc(sizeof(size_t) * (size_t)n);
    int32_t *types = malloc(sizeof(int32_t) * (size_t)n);
    int rc = text && lens && types ? 0 : -1;
    for (int i = 0; !rc && i < n; i++) {
        text[i] = v->text[i];
        lens[i] = v->len[i];
        types[i] = v->ttype[i];
    }
    if (!rc && v->type == QS_VOCAB_SPM) {
        if (v->merges) {
            free(text); free(lens); free(types);
            return qs_errorf(err, QS_ERR_INPUT, "%s: its tokenizer.json is a SentencePiece-style BPE merged by rank; a llama.cpp "
                             "'llama' vocabulary merges by token score, which that file does not give: convert this model "
                             "with llama.cpp's convert_hf_to_gguf.py, then profile and quantize the GGUF", m->path);
        }
        rc = qs_gguf_add_str(w, "tokenizer.ggml.model", "llama") || qs_gguf_add_arr_str(w, "tokenizer.ggml.tokens", text, lens, (size_t)n) ||
             qs_gguf_add_arr_f32(w, "tokenizer.ggml.scores", v->scores, (size_t)n) ||
             qs_gguf_add_arr_i32(w, "tokenizer.ggml.token_type", types, (size_t)n);
    } else if (!rc) {
        /* byte-level BPE: GPT-2's pre-tokenizer, GPT-2's with every digit split apart first
         * ("smollm" to llama.cpp), Llama 3's and Qwen2's */
        const char **merges = (const char **)v->merge_list;
        size_t *mlen = malloc(sizeof(size_t) * (size_t)(v->n_merges + 1));
        for (int i = 0; mlen && i < v->n_merges; i++) mlen[i] = strlen(merges[i]);
        rc = !mlen || qs_gguf_add_str(w, "tokenizer.ggml.model", "gpt2") ||
             qs_gguf_add_str(w, "tokenizer.ggml.pre", pre_name(v->pre)) ||
             qs_gguf_add_arr_str(w, "tokenizer.ggml.tokens", text, lens, (size_t)n) ||
             qs_gguf_add_arr_i32(w, "tokenizer.ggml.token_type", types, (size_t)n) ||
             qs_gguf_add_arr_str(w, "tokenizer.ggml.merges", merges, mlen, (size_t)v->n_merges);
        free(mlen);
    }
    if (!rc && v->bos >= 0) rc = qs_gguf_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos);
    if (!rc && v->eos >= 0) rc = qs_gguf_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos);
    if (!rc && v->unk >= 0) rc = qs_gguf_add_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)v->unk);
    if (!rc)
        rc = qs_gguf_add_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos) ||
             qs_gguf_add_bool(w, "tokenizer.ggml.add_eos_token", v->add_eos) ||
             qs_gguf_add_bool(w, "tokenizer.ggml.add_space_prefix", v->add_space_prefix);
    free(text);
    free(lens);
    free(types);
    if (!rc) rc = put_chat_template(w, m);
    return rc ? qs_errorf(err, QS_ERR_INTERNAL, "out of memory writing the tokenizer") : 0;
}

/* The family's hyper-parameters under "{arch}.", as llama.cpp's loader reads them. What a GGUF of
 * that family cannot say is refused rather than written wrong: an attention scale other than
 * llama.cpp's rule for the family. A llama-family model with a sliding window (Mistral) is written
 * without it, as llama.cpp's converter does (its llama graph has none; Mistral's window, 4096,
 * lies beyond the contexts qsense evaluates); Phi-3's is written as the converter does, and
 * llama.cpp does not apply it. */
static int put_hparams(qs_gguf_writer *w, const qs_model *m, qs_error *err) {
    const qs_arch *a = &m->arch;
    const qs_arch_desc *d = qs_arch_desc_find(a->arch);
    char k[128];
#define KEY(suffix) (snprintf(k, sizeof k, "%s.%s", a->arch, suffix), k)
    if (!d) return qs_errorf(err, QS_ERR_INPUT, "%s: architecture '%s': qsense cannot write it as GGUF", m->path, a->arch);
    double want_scale = 1.0 / sqrt((double)a->head_dim);
    if (!strcmp(a->arch, "gemma3") && a->n_layers == 62) want_scale = 1.0 / sqrt((double)(a->dim / a->n_heads));
    if (fabs(a->attn_scale - want_scale) > 1e-6 * want_scale)
        return qs_errorf(err, QS_ERR_INPUT, "%s: attention scale %g: a %s GGUF implies %g (llama.cpp has no key for it)", m->path,
                         a->attn_scale, a->arch, want_scale);
    char name[256];
    model_name(m, name, sizeof name);
    int rc = qs_gguf_add_str(w, "general.architecture", a->arch) || qs_gguf_add_str(w, "general.name", name) ||
             qs_gguf_add_u32(w, KEY("vocab_size"), (uint32_t)a->n_vocab) ||
             qs_gguf_add_u32(w, KEY("embedding_length"), (uint32_t)a->dim) ||
             qs_gguf_add_u32(w, KEY("feed_forward_length"), (uint32_t)a->hidden_dim) ||
             qs_gguf_add_u32(w, KEY("block_count"), (uint32_t)a->n_layers) ||
             qs_gguf_add_u32(w, KEY("attention.head_count"), (uint32_t)a->n_heads) ||
             qs_gguf_add_u32(w, KEY("attention.head_count_kv"), (uint32_t)a->n_kv_heads) ||
             qs_gguf_add_u32(w, KEY("rope.dimension_count"), (uint32_t)a->head_dim) ||
             qs_gguf_add_f32(w, KEY("rope.freq_base"), a->rope_base) ||
             qs_gguf_add_f32(w, KEY("attention.layer_norm_rms_epsilon"), a->norm_eps);
    if (!rc && a->ctx_train > 0) rc = qs_gguf_add_u32(w, KEY("context_length"), (uint32_t)a->ctx_train);
    if (!rc)
        rc = qs_gguf_add_u32(w, KEY("attention.key_length"), (uint32_t)a->head_dim) ||
             qs_gguf_add_u32(w, KEY("attention.value_length"), (uint32_t)a->head_dim);
    if (!rc && a->rope_scale != 1.0f)
        rc = qs_gguf_add_str(w, KEY("rope.scaling.type"), "linear") || qs_gguf_add_f32(w, KEY("rope.scaling.factor"), 1.0f / a->rope_scale);
    if (!rc && a->logit_softcap > 0.0f) rc = qs_gguf_add_f32(w, KEY("final_logit_softcapping"), a->logit_softcap);
    if (a->n_expert > 0 && !a->expert_norm)
        return qs_errorf(err, QS_ERR_INPUT, "%s: the router's top-k weights are not renormalized (norm_topk_prob false): a %s "
                         "GGUF always renormalizes them", m->path, a->arch);
    if (!rc && a->n_expert > 0)
        rc = qs_gguf_add_u32(w, KEY("expert_count"), (uint32_t)a->n_expert) ||
             qs_gguf_add_u32(w, KEY("expert_used_count"), (uint32_t)a->n_expert_used) ||
             qs_gguf_add_u32(w, KEY("expert_feed_forward_length"), (uint32_t)a->expert_ff);
    if (!rc && a->ctx_orig > 0) rc = qs_gguf_add_u32(w, KEY("rope.scaling.original_context_length"), (uint32_t)a->ctx_orig);
    if (!rc && d->gguf_swa == 2) rc = qs_gguf_add_u32(w, KEY("attention.sliding_window"), (uint32_t)a->n_swa);
    if (!rc && a->n_swa > 0 && a->swa_layers && d->gguf_swa == 1)
        rc = qs_gguf_add_u32(w, KEY("attention.sliding_window"), (uint32_t)a->n_swa) ||
             qs_gguf_add_arr_bool(w, KEY("attention.sliding_window_pattern"), a->swa_layers, (size_t)a->n_layers) ||
             qs_gguf_add_f32(w, KEY("rope.freq_base_swa"), a->rope_base_swa);
#undef KEY
    return rc ? qs_errorf(err, QS_ERR_INTERNAL, "out of memory writing metadata") : 0;
}

int qs_gguf_put_model_meta(qs_gguf_writer *w, const qs_model *m, const qs_vocab *v, qs_error *err) {
    if (v->n_tokens != m->arch.n_vocab)
        return qs_errorf(err, QS_ERR_INPUT, "%s: the tokenizer has %d tokens but the model's vocabulary is %d", m->path,
                         v->n_tokens, m->arch.n_vocab);
    int rc = put_hparams(w, m, err);
    return rc ? rc : put_tokenizer(w, v, m, err);
}

int qs_llama_needs_row_order(const qs_model *m, const char *name) {
    const qs_arch_desc *d = qs_arch_desc_find(m->arch.arch);
    if (m->gguf || m->arch.rope_type != QS_ROPE_NEOX || !d || d->rope_type == QS_ROPE_NEOX) return 0;
    const char *dot = strchr(name, '.');
    const char *kind = dot ? strchr(dot + 1, '.') : NULL;
    return kind && (!strcmp(kind, ".attn_q.weight") || !strcmp(kind, ".attn_k.weight") || !strcmp(kind, ".attn_q.bias") ||
                    !strcmp(kind, ".attn_k.bias"));
}

int qs_llama_rows_for_gguf(float *w, int64_t rows, int64_t cols, int head_dim) {
    if (head_dim <= 0 || head_dim % 2 || rows % head_dim) return -1;
    float *head = malloc(sizeof(float) * (size_t)head_dim * (size_t)cols);
    if (!head) return -1;
    const int half = head_dim / 2;
    for (int64_t h = 0; h < rows / head_dim; h++) {
        float *base = w + h * head_dim * cols;
        memcpy(head, base, sizeof(float) * (size_t)head_dim * (size_t)cols);
        for (int s = 0; s < 2; s++)
            for (int j = 0; j < half; j++)
                memcpy(base + (2 * j + s) * cols, head + ((int64_t)s * half + j) * cols, sizeof(float) * (size_t)cols);
    }
    free(head);
    return 0;
}
