/* Hugging Face tokenizer.json -> qs_vocab. Two shapes of "BPE" model are understood:
 *  - byte-level (pre_tokenizer ByteLevel, optionally after Digits): GPT-2 BPE;
 *  - byte_fallback with "▁" for spaces (llama's SentencePiece converted by HF): the SPM
 *    algorithm, with pairs merged by merge rank as HF does.
 * added_tokens become CONTROL (special) or USER_DEFINED tokens; bos/eos come from
 * tokenizer_config.json beside the file when present. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_file.h"
#include "core/qs_json.h"
#include "core/qs_path.h"
#include "tok/vocab.h"

/* 1 if node, or a member of its "pretokenizers" / "normalizers" sequence, has this type */
static int has_type(cJSON *node, const char *type) {
    if (!cJSON_IsObject(node)) return 0;
    cJSON *t = cJSON_GetObjectItemCaseSensitive(node, "type");
    if (cJSON_IsString(t) && !strcmp(t->valuestring, type)) return 1;
    const char *lists[] = {"pretokenizers", "normalizers"};
    for (int i = 0; i < 2; i++) {
        cJSON *seq = cJSON_GetObjectItemCaseSensitive(node, lists[i]);
        if (cJSON_IsArray(seq))
            for (cJSON *c = seq->child; c; c = c->next)
                if (has_type(c, type)) return 1;
    }
    return 0;
}

/* the Regex of the first Split in a pre-tokenizer (or Sequence of them), or NULL */
static const char *split_regex(cJSON *node) {
    if (!cJSON_IsObject(node)) return NULL;
    cJSON *t = cJSON_GetObjectItemCaseSensitive(node, "type");
    if (cJSON_IsString(t) && !strcmp(t->valuestring, "Split")) {
        cJSON *re = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(node, "pattern"), "Regex");
        return cJSON_IsString(re) ? re->valuestring : NULL;
    }
    cJSON *seq = cJSON_GetObjectItemCaseSensitive(node, "pretokenizers");
    if (cJSON_IsArray(seq))
        for (cJSON *c = seq->child; c; c = c->next) {
            const char *r = split_regex(c);
            if (r) return r;
        }
    return NULL;
}

/* Llama 3's and Qwen2's Split patterns, as their tokenizer.json files write them; the two
 * differ only in how many digits make a word */
static const char LLAMA3_REGEX[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                   "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_REGEX[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                                  "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static const char *token_content(cJSON *x) {
    if (cJSON_IsString(x)) return x->valuestring;
    cJSON *c = cJSON_IsObject(x) ? cJSON_GetObjectItemCaseSensitive(x, "content") : NULL;
    return cJSON_IsString(c) ? c->valuestring : NULL;
}

/* tokenizer_config.json beside the tokenizer, when there is one (an invalid one is an error) */
static int read_config(qs_vocab *v, const char *tok_path, qs_error *err) {
    char *dir = qs_path_dirname(tok_path), *cfg_path = qs_path_join(dir, "tokenizer_config.json"), *text;
    free(dir);
    size_t n;
    int rc = 0;
    if (qs_path_exists(cfg_path) && !(rc = qs_read_file(cfg_path, &text, &n, err))) {
        cJSON *cfg = qs_json_parse(text, n, cfg_path, 0, err);
        free(text);
        if (!cfg) rc = QS_ERR_INPUT;
        if (cfg) {
            const char *bos = token_content(cJSON_GetObjectItemCaseSensitive(cfg, "bos_token"));
            const char *eos = token_content(cJSON_GetObjectItemCaseSensitive(cfg, "eos_token"));
            cJSON *add_bos = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
            if (bos) v->bos = qs_strmap_get(v->to_id, bos, strlen(bos));
            if (eos) v->eos = qs_strmap_get(v->to_id, eos, strlen(eos));
            if (cJSON_IsBool(add_bos)) v->add_bos = cJSON_IsTrue(add_bos);
            if (v->bos < 0) v->add_bos = 0;
            cJSON_Delete(cfg);
        }
    }
    free(cfg_path);
    return rc;
}

int qs_vocab_from_hf_json(qs_vocab **out, const char *path, qs_error *err) {
    *out = NULL;
    char *text;
    size_t n_text;
    int rc = qs_read_file(path, &text, &n_text, err);
    if (rc) return qs_error_prefix(err, "tokenizer");
    cJSON *j = qs_json_parse(text, n_text, path, 0, err);
    free(text);
    qs_vocab *v = NULL;
    if (!j) return QS_ERR_INPUT;
    cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    cJSON *type = model ? cJSON_GetObjectItemCaseSensitive(model, "type") : NULL;
    cJSON *vocab = model ? cJSON_GetObjectItemCaseSensitive(model, "vocab") : NULL;
    cJSON *merges = model ? cJSON_GetObjectItemCaseSensitive(model, "merges") : NULL;
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE") || !cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) {
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: expected model.type \"BPE\" with a vocab object and a merges array", path);
        goto fail;
    }
    cJSON *added = cJSON_GetObjectItemCaseSensitive(j, "added_tokens");
    int n = 0;
    for (cJSON *it = vocab->child; it; it = it->next) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= (1 << 24) || it->valuedouble != (double)it->valueint) {
            rc = qs_errorf(err, QS_ERR_INPUT, "%s: model.vocab['%s'] must be an id from 0 to 2^24", path, it->string);
            goto fail;
        }
        if (it->valueint + 1 > n) n = it->valueint + 1;
    }
    if (cJSON_IsArray(added))
        for (cJSON *it = added->child; it; it = it->next) {
            cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
            if (cJSON_IsNumber(id) && id->valuedouble >= 0 && id->valuedouble < (1 << 24) && id->valueint + 1 > n)
                n = id->valueint + 1;
        }
    if (n == 0) {
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: the vocabulary is empty", path);
        goto fail;
    }
    v = calloc(1, sizeof *v);
    if (!v || qs_vocab_alloc(v, n)) { rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory"); goto fail; }
    for (cJSON *it = vocab->child; it; it = it->next) {
        if (v->text[it->valueint]) {
            rc = qs_errorf(err, QS_ERR_INPUT, "%s: model.vocab gives id %d to two pieces ('%s' and '%s')", path, it->valueint,
                           v->text[it->valueint], it->string);
            goto fail;
        }
        if (qs_vocab_set(v, it->valueint, it->string, strlen(it->string), 0.0f, QS_TOK_NORMAL)) {
            rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
            goto fail;
        }
    }
    if (cJSON_IsArray(added))
        for (cJSON *it = added->child; it; it = it->next) {
            cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
            cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
            if (!cJSON_IsNumber(id) || !cJSON_IsString(content) || id->valueint < 0 || id->valueint >= n) continue;
            int special = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "special"));
            if (qs_vocab_set(v, id->valueint, content->valuestring, strlen(content->valuestring), 0.0f,
                             special ? QS_TOK_CONTROL : QS_TOK_USER_DEFINED)) {
                rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
                goto fail;
            }
        }
    for (int i = 0; i < n; i++)
        if (!v->text[i]) {
            char buf[32];
            snprintf(buf, sizeof buf, "[qsense-unused-%d]", i);
            if (qs_vocab_set(v, i, buf, strlen(buf), 0.0f, QS_TOK_UNUSED)) {
                rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
                goto fail;
            }
        }
    int rank = 0;
    for (cJSON *it = merges->child; it; it = it->next, rank++) {
        char buf[1024];
        if (cJSON_IsString(it)) snprintf(buf, sizeof buf, "%s", it->valuestring);
        else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(it->child) &&
                 cJSON_IsString(it->child->next))
            snprintf(buf, sizeof buf, "%s %s", it->child->valuestring, it->child->next->valuestring);
        else {
            rc = qs_errorf(err, QS_ERR_INPUT, "%s: model.merges[%d] must be \"left right\" or [left, right]", path, rank);
            goto fail;
        }
        if (qs_vocab_add_merge(v, buf, strlen(buf), rank)) { rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory"); goto fail; }
    }
    cJSON *pre = cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer");
    cJSON *norm = cJSON_GetObjectItemCaseSensitive(j, "normalizer");
    int byte_fallback = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback"));
    if (has_type(pre, "ByteLevel")) {
        v->type = QS_VOCAB_BPE;
        v->pre = has_type(pre, "Digits") ? QS_PRE_DIGITS_GPT2 : QS_PRE_GPT2;
        snprintf(v->pre_name, sizeof v->pre_name, "%s", v->pre == QS_PRE_DIGITS_GPT2 ? "digits+gpt2" : "gpt2");
        if (has_type(pre, "Split")) {
            const char *re = split_regex(pre);
            if (re && !strcmp(re, LLAMA3_REGEX) && !has_type(pre, "Digits")) {
                v->pre = QS_PRE_LLAMA3;
                snprintf(v->pre_name, sizeof v->pre_name, "llama-bpe");
            } else if (re && !strcmp(re, QWEN2_REGEX) && !has_type(pre, "Digits")) {
                v->pre = QS_PRE_QWEN2;
                snprintf(v->pre_name, sizeof v->pre_name, "qwen2");
            } else {
                rc = qs_errorf(err, QS_ERR_INPUT,
                               "%s: pre_tokenizer has a Split with a pattern qsense does not know (it knows GPT-2's, Llama "
                               "3's and Qwen2's): %.80s",
                               path, re ? re : "(not a regex)");
                goto fail;
            }
        }
    } else if (byte_fallback) {
        v->type = QS_VOCAB_SPM; /* merges by rank: see spm.c */
        v->add_space_prefix = has_type(norm, "Prepend") || has_type(pre, "Metaspace");
        v->add_bos = 1;
        for (int i = 0; i < n; i++)
            if (v->len[i] == 6 && !memcmp(v->text[i], "<0x", 3) && v->text[i][5] == '>') v->ttype[i] = QS_TOK_BYTE;
    } else {
        rc = qs_errorf(err, QS_ERR_INPUT,
                       "%s: unsupported tokenizer: BPE with neither a ByteLevel pre-tokenizer nor byte_fallback", path);
        goto fail;
    }
    if ((rc = qs_vocab_finish(v, err))) goto fail;
    v->bos = qs_strmap_get(v->to_id, "<s>", 3);
    v->eos = qs_strmap_get(v->to_id, "</s>", 4);
    v->unk = qs_strmap_get(v->to_id, "<unk>", 5);
    if ((rc = read_config(v, path, err))) goto fail;
    cJSON_Delete(j);
    *out = v;
    return 0;
fail:
    qs_vocab_free(v);
    cJSON_Delete(j);
    return rc;
}
