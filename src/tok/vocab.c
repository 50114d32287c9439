/* qs_vocab: the GGUF, llama2.c and Hugging Face loaders, and tokenize() with llama.cpp's
 * special-token partition before the SentencePiece or BPE back-end (see vocab.h). The table
 * the loaders fill is vocab_table.c. */
#include "tok/vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_file.h"
#include "io/gguf.h"
#include "io/model.h"

/* ---- GGUF ---- */

/* a special token id: compared as the unsigned value stored, so 2^31 and above cannot wrap
 * negative and pass; absent keys leave *out as it was */
static int gguf_token_id(const qs_gguf *g, const char *key, int n_tokens, int *out, qs_error *err) {
    uint32_t u;
    int rc = qs_gguf_get_u32(g, key, &u, err);
    if (rc < 0) return rc;
    if (rc == 0 && u >= (uint32_t)n_tokens)
        return qs_errorf(err, QS_ERR_INPUT, "%s: key '%s' is token id %u, out of range for %d tokens", g->map.path, key, u,
                         n_tokens);
    if (rc == 0) *out = (int)u;
    return 0;
}

int qs_vocab_from_gguf(qs_vocab **out, const qs_gguf *g, qs_error *err) {
    *out = NULL;
    const char *path = g->map.path;
    char model[32] = "", pre[64] = "";
    int rc = qs_gguf_get_str(g, "tokenizer.ggml.model", model, sizeof model, err);
    if (rc < 0) return rc;
    if (rc == 1) return qs_errorf(err, QS_ERR_INPUT, "%s: no tokenizer: metadata key 'tokenizer.ggml.model' is missing", path);
    if ((rc = qs_gguf_get_str(g, "tokenizer.ggml.pre", pre, sizeof pre, err)) < 0) return rc;
    const qs_gguf_kv *toks = qs_gguf_find(g, "tokenizer.ggml.tokens");
    if (!toks || toks->type != QS_GGUF_ARRAY || toks->arr_type != QS_GGUF_STRING)
        return qs_errorf(err, QS_ERR_INPUT, "%s: key 'tokenizer.ggml.tokens' is missing or not an array of strings", path);
    if (toks->arr_n == 0 || toks->arr_n > (1u << 24))
        return qs_errorf(err, QS_ERR_INPUT, "%s: key 'tokenizer.ggml.tokens' has %llu entries, expected 1 to 2^24", path,
                         (unsigned long long)toks->arr_n);
    int n = (int)toks->arr_n;
    const qs_gguf_kv *scores = qs_gguf_find(g, "tokenizer.ggml.scores");
    const qs_gguf_kv *types = qs_gguf_find(g, "tokenizer.ggml.token_type");
    if (scores && (scores->type != QS_GGUF_ARRAY || scores->arr_type != QS_GGUF_FLOAT32 || scores->arr_n != toks->arr_n))
        return qs_errorf(err, QS_ERR_INPUT, "%s: key 'tokenizer.ggml.scores' must be %d float32 values", path, n);
    if (types && (types->type != QS_GGUF_ARRAY || types->arr_type != QS_GGUF_INT32 || types->arr_n != toks->arr_n))
        return qs_errorf(err, QS_ERR_INPUT, "%s: key 'tokenizer.ggml.token_type' must be %d int32 values", path, n);
    qs_vocab *v = calloc(1, sizeof *v);
    if (!v || qs_vocab_alloc(v, n)) { qs_vocab_free(v); return qs_errorf(err, QS_ERR_INTERNAL, "out of memory"); }
    for (int i = 0; i < n; i++) {
        float s = scores ? (float)qs_gguf_arr_num(scores, (uint64_t)i) : 0.0f;
        int t = types ? (int)qs_gguf_arr_num(types, (uint64_t)i) : QS_TOK_NORMAL;
        if (qs_vocab_set(v, i, toks->arr_strs[i].ptr, toks->arr_strs[i].len, s, t)) {
            qs_vocab_free(v);
            return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
        }
    }
    if (strcmp(model, "llama") == 0) {
        v->type = QS_VOCAB_SPM;
        v->bos = 1; v->eos = 2; v->unk = 0;
        v->add_bos = 1;
        v->add_space_prefix = 1;
    } else if (strcmp(model, "gpt2") == 0) {
        v->type = QS_VOCAB_BPE;
        v->bos = 11; v->eos = 11; v->unk = -1;
        v->add_bos = 0;
        snprintf(v->pre_name, sizeof v->pre_name, "%s", pre[0] ? pre : "default");
        if (!pre[0] || !strcmp(pre, "default") || !strcmp(pre, "gpt-2") || !strcmp(pre, "gpt2") || !strcmp(pre, "mpt") ||
            !strcmp(pre, "olmo") || !strcmp(pre, "jais"))
            v->pre = QS_PRE_GPT2;
        else if (!strcmp(pre, "smollm") || !strcmp(pre, "starcoder") || !strcmp(pre, "refact") ||
                 !strcmp(pre, "command-r") || !strcmp(pre, "codeshell") || !strcmp(pre, "exaone"))
            v->pre = QS_PRE_DIGITS_GPT2;
        else if (!strcmp(pre, "llama3") || !strcmp(pre, "llama-v3") || !strcmp(pre, "llama-bpe") || !strcmp(pre, "falcon3")) {
            v->pre = QS_PRE_LLAMA3;
            v->add_bos = 1; /* llama.cpp's default for these; the file's add_bos_token still decides */
        } else if (!strcmp(pre, "qwen2") || !strcmp(pre, "deepseek-r1-qwen"))
            v->pre = QS_PRE_QWEN2;
        else {
            qs_vocab_free(v);
            return qs_errorf(err, QS_ERR_INPUT,
                             "%s: pre-tokenizer 'tokenizer.ggml.pre' = '%s' is not supported yet (supported: gpt2, "
                             "smollm, starcoder, refact, command-r, codeshell, exaone, llama-bpe, qwen2)",
                             path, pre);
        }
        const qs_gguf_kv *merges = qs_gguf_find(g, "tokenizer.ggml.merges");
        if (!merges || merges->type != QS_GGUF_ARRAY || merges->arr_type != QS_GGUF_STRING) {
            qs_vocab_free(v);
            return qs_errorf(err, QS_ERR_INPUT, "%s: BPE vocabulary without 'tokenizer.ggml.merges' (array of strings)", path);
        }
        for (uint64_t i = 0; i < merges->arr_n; i++)
            if (qs_vocab_add_merge(v, merges->arr_strs[i].ptr, merges->arr_strs[i].len, (int)i)) {
                qs_vocab_free(v);
                return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
            }
    } else {
        qs_vocab_free(v);
        return qs_errorf(err, QS_ERR_INPUT, "%s: tokenizer model '%s' is not supported (expected 'llama' or 'gpt2')", path,
                         model);
    }
    if ((rc = gguf_token_id(g, "tokenizer.ggml.bos_token_id", n, &v->bos, err)) ||
        (rc = gguf_token_id(g, "tokenizer.ggml.eos_token_id", n, &v->eos, err)) ||
        (rc = gguf_token_id(g, "tokenizer.ggml.unknown_token_id", n, &v->unk, err)) ||
        (rc = qs_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos, err)) < 0 ||
        (rc = qs_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &v->add_eos, err)) < 0 ||
        (rc = qs_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix, err)) < 0) {
        qs_vocab_free(v);
        return rc;
    }
    if ((rc = qs_vocab_finish(v, err))) { qs_vocab_free(v); return rc; }
    *out = v;
    return 0;
}

int qs_vocab_from_gguf_path(qs_vocab **out, const char *path, qs_error *err) {
    qs_gguf *g;
    int rc = qs_gguf_open(&g, path, err);
    if (rc) return rc;
    rc = qs_vocab_from_gguf(out, g, err);
    qs_gguf_close(g);
    return rc;
}

/* ---- llama2.c tokenizer.bin: int32 max_token_length; per token: f32 score, int32 len, bytes ---- */

static int is_byte_piece(const char *s, uint32_t len) {
    return len == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>';
}

int qs_vocab_from_llama2c(qs_vocab **out, const char *path, int n_vocab, qs_error *err) {
    *out = NULL;
    qs_map map;
    int rc = qs_map_open(&map, path, err);
    if (rc) return qs_error_prefix(err, "tokenizer (use --tokenizer FILE for llama2.c models)");
    qs_vocab *v = calloc(1, sizeof *v);
    if (!v || qs_vocab_alloc(v, n_vocab)) {
        qs_map_close(&map);
        qs_vocab_free(v);
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    }
    size_t pos = 4;
    if (map.size < 4) rc = qs_errorf(err, QS_ERR_INPUT, "%s: truncated: no max_token_length header", path);
    for (int i = 0; !rc && i < n_vocab; i++) {
        float score;
        int32_t len;
        if (map.size - pos < 8) {
            rc = qs_errorf(err, QS_ERR_INPUT, "%s: truncated at offset %zu: expected token %d of %d (score and length)",
                           path, pos, i, n_vocab);
            break;
        }
        memcpy(&score, map.data + pos, 4);
        memcpy(&len, map.data + pos + 4, 4);
        pos += 8;
        if (len < 0 || (size_t)len > map.size - pos) {
            rc = qs_errorf(err, QS_ERR_INPUT, "%s: offset %zu: token %d has length %d, past the end of the file", path,
                           pos - 4, i, len);
            break;
        }
        const char *s = (const char *)map.data + pos;
        pos += (size_t)len;
        int t = QS_TOK_NORMAL;
        if (is_byte_piece(s, (uint32_t)len)) t = QS_TOK_BYTE;
        else if (i == 0) t = QS_TOK_UNKNOWN;
        else if (i == 1 || i == 2) t = QS_TOK_CONTROL;
        /* llama2.c's export wrote "\n<s>\n" / "\n</s>\n" for BOS/EOS and replaced U+2581 by ' ':
         * undo both so the pieces equal SentencePiece's (and the GGUF's) */
        char *piece = malloc((size_t)len * 3 + 8);
        if (!piece) { rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory"); break; }
        size_t k = 0;
        if (i == 1 && len == 5 && !memcmp(s, "\n<s>\n", 5)) k = (size_t)sprintf(piece, "<s>");
        else if (i == 2 && len == 6 && !memcmp(s, "\n</s>\n", 6)) k = (size_t)sprintf(piece, "</s>");
        else
            for (int32_t j = 0; j < len; j++) {
                if (s[j] == ' ') { memcpy(piece + k, "\xe2\x96\x81", 3); k += 3; }
                else piece[k++] = s[j];
            }
        if (qs_vocab_set(v, i, piece, k, score, t)) rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
        free(piece);
    }
    if (!rc && pos != map.size)
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: %zu bytes left after %d tokens: the tokenizer does not match the model's vocabulary size",
                       path, map.size - pos, n_vocab);
    qs_map_close(&map);
    if (rc) { qs_vocab_free(v); return rc; }
    /* llama2.c's sentencepiece export: 0 <unk>, 1 <s>, 2 </s>; SPM with a leading space */
    v->type = QS_VOCAB_SPM;
    v->unk = 0; v->bos = 1; v->eos = 2;
    v->add_bos = 1;
    v->add_space_prefix = 1;
    if ((rc = qs_vocab_finish(v, err))) { qs_vocab_free(v); return rc; }
    *out = v;
    return 0;
}

int qs_vocab_for_model(qs_vocab **out, const qs_model *m, qs_error *err) {
    int rc;
    if (m->tokenizer_path) {
        const char *p = m->tokenizer_path;
        size_t n = strlen(p);
        if (n >= 5 && strcmp(p + n - 5, ".json") == 0) rc = qs_vocab_from_hf_json(out, p, err);
        else if (n >= 5 && strcmp(p + n - 5, ".gguf") == 0) rc = qs_vocab_from_gguf_path(out, p, err);
        else rc = qs_vocab_from_llama2c(out, p, m->arch.n_vocab, err);
    } else if (m->gguf) {
        rc = qs_vocab_from_gguf(out, m->gguf, err);
    } else {
        return qs_errorf(err, QS_ERR_INPUT, "%s: no tokenizer found; pass --tokenizer FILE", m->path);
    }
    if (rc) return rc;
    if ((*out)->n_tokens != m->arch.n_vocab) {
        int k = (*out)->n_tokens;
        qs_vocab_free(*out);
        *out = NULL;
        return qs_errorf(err, QS_ERR_INPUT, "%s: the tokenizer has %d tokens but the model's vocabulary is %d",
                         m->tokenizer_path ? m->tokenizer_path : m->path, k, m->arch.n_vocab);
    }
    return 0;
}

/* ---- tokenize ---- */

typedef struct {
    size_t off, len; /* raw text fragment, or... */
    int token;       /* ...a token (>= 0) */
} fragment;

/* Splits text on USER_DEFINED tokens (longest first, leftmost), as llama.cpp's
 * tokenizer_st_partition does when parse_special is false. */
static int partition(const qs_vocab *v, const char *text, size_t n, fragment **frags, size_t *n_frags) {
    size_t cap = 16, k = 0;
    fragment *f = malloc(sizeof(fragment) * cap);
    if (!f) return -1;
    f[k++] = (fragment){0, n, -1};
    for (int u = 0; u < v->n_user_defined; u++) {
        int id = v->user_defined[u];
        const char *piece = v->text[id];
        size_t plen = v->len[id];
        for (size_t i = 0; i < k; i++) {
            if (f[i].token >= 0 || f[i].len < plen) continue;
            const char *start = text + f[i].off;
            const char *hit = memmem(start, f[i].len, piece, plen);
            if (!hit) continue;
            size_t before = (size_t)(hit - start), after = f[i].len - before - plen;
            if (k + 2 > cap) {
                cap *= 2;
                fragment *nf = realloc(f, sizeof(fragment) * cap);
                if (!nf) { free(f); return -1; }
                f = nf;
            }
            fragment rest = {f[i].off + before + plen, after, -1};
            memmove(&f[i + 1], &f[i], sizeof(fragment) * (k - i));
            k++;
            f[i] = (fragment){f[i + 1].off, before, -1};
            f[i + 1] = (fragment){0, 0, id};
            if (after) {
                memmove(&f[i + 3], &f[i + 2], sizeof(fragment) * (k - i - 2));
                f[i + 2] = rest;
                k++;
            }
            if (before == 0) { /* drop the empty fragment */
                memmove(&f[i], &f[i + 1], sizeof(fragment) * (k - i - 1));
                k--;
            }
        }
    }
    *frags = f;
    *n_frags = k;
    return 0;
}

int qs_tokenize(const qs_vocab *v, const char *text, size_t n, int add_special, int **ids, size_t *n_ids, qs_error *err) {
    qs_ids out = {0};
    *ids = NULL;
    *n_ids = 0;
    if (add_special && v->add_bos && v->bos >= 0 && qs_ids_push(&out, v->bos)) goto oom;
    if (n > 0) {
        fragment *frags;
        size_t nf;
        if (partition(v, text, n, &frags, &nf)) goto oom;
        int prev_special = 1;
        for (size_t i = 0; i < nf; i++) {
            if (frags[i].token >= 0) {
                if (qs_ids_push(&out, frags[i].token)) { free(frags); goto oom; }
                prev_special = 1;
                continue;
            }
            int rc;
            if (v->type == QS_VOCAB_SPM) {
                /* llama.cpp prepends a space only at the start or after a special token */
                if (v->add_space_prefix && prev_special) {
                    char *buf = malloc(frags[i].len + 1);
                    if (!buf) { free(frags); goto oom; }
                    buf[0] = ' ';
                    memcpy(buf + 1, text + frags[i].off, frags[i].len);
                    rc = qs_spm_tokenize(v, buf, frags[i].len + 1, &out);
                    free(buf);
                } else {
                    rc = qs_spm_tokenize(v, text + frags[i].off, frags[i].len, &out);
                }
            } else {
                rc = qs_bpe_tokenize(v, text + frags[i].off, frags[i].len, &out);
            }
            prev_special = 0;
            if (rc) { free(frags); goto oom; }
        }
        free(frags);
    }
    if (add_special && v->add_eos && v->eos >= 0 && qs_ids_push(&out, v->eos)) goto oom;
    *ids = out.ids;
    *n_ids = out.n;
    return 0;
oom:
    free(out.ids);
    return qs_errorf(err, QS_ERR_INTERNAL, "out of memory while tokenizing");
}
