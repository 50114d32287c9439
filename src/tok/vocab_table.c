/* The vocabulary table (see vocab.h): what every loader fills (pieces, scores, merges) and the
 * growing id arrays the tokenizers push to. It calls no loader and no tokenizer. */
#include "tok/vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_strmap.h"

int qs_ids_push(qs_ids *a, int id) {
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 256;
        int *ni = realloc(a->ids, sizeof(int) * nc);
        if (!ni) return -1;
        a->ids = ni;
        a->cap = nc;
    }
    a->ids[a->n++] = id;
    return 0;
}

void qs_vocab_free(qs_vocab *v) {
    if (!v) return;
    if (v->text)
        for (int i = 0; i < v->n_tokens; i++) free(v->text[i]);
    free(v->text);
    free(v->len);
    free(v->scores);
    free(v->ttype);
    free(v->user_defined);
    qs_strmap_free(v->to_id);
    qs_strmap_free(v->merges);
    for (int i = 0; v->merge_list && i < v->n_merges; i++) free(v->merge_list[i]);
    free(v->merge_list);
    free(v);
}

int qs_vocab_alloc(qs_vocab *v, int n) {
    v->n_tokens = n;
    v->text = calloc((size_t)n, sizeof(char *));
    v->len = calloc((size_t)n, sizeof(uint32_t));
    v->scores = calloc((size_t)n, sizeof(float));
    v->ttype = calloc((size_t)n, sizeof(int));
    v->to_id = qs_strmap_new((size_t)n);
    v->bos = v->eos = v->unk = -1;
    return (v->text && v->len && v->scores && v->ttype && v->to_id) ? 0 : -1;
}

int qs_vocab_set(qs_vocab *v, int id, const char *piece, size_t len, float score, int ttype) {
    free(v->text[id]); /* a later definition of the same id replaces the earlier one */
    v->text[id] = malloc(len + 1);
    if (!v->text[id]) return -1;
    memcpy(v->text[id], piece, len);
    v->text[id][len] = 0;
    v->len[id] = (uint32_t)len;
    v->scores[id] = score;
    v->ttype[id] = ttype;
    return 0;
}

int qs_vocab_add_merge(qs_vocab *v, const char *merge, size_t len, int rank) {
    if (!v->merges && !(v->merges = qs_strmap_new(65536))) return -1;
    /* keep the first rank of a duplicate merge, as a priority would */
    if (qs_strmap_get(v->merges, merge, len) >= 0) return 0;
    if (v->n_merges == v->merge_cap) {
        const int cap = v->merge_cap ? 2 * v->merge_cap : 1024;
        char **l = realloc(v->merge_list, sizeof(char *) * (size_t)cap);
        if (!l) return -1;
        v->merge_list = l;
        v->merge_cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy) return -1;
    memcpy(copy, merge, len);
    copy[len] = 0;
    v->merge_list[v->n_merges++] = copy;
    return qs_strmap_put(v->merges, merge, len, rank);
}

static int cmp_len_desc(const void *a, const void *b, void *ctx) {
    const qs_vocab *v = ctx;
    int x = *(const int *)a, y = *(const int *)b;
    if (v->len[x] != v->len[y]) return v->len[x] < v->len[y] ? 1 : -1;
    return x - y;
}

int qs_vocab_finish(qs_vocab *v, qs_error *err) {
    /* later duplicates do not override earlier ids: llama.cpp maps text -> last id, but
     * vocabularies we load have unique pieces; keep last to match llama.cpp exactly */
    for (int i = 0; i < v->n_tokens; i++)
        if (qs_strmap_put(v->to_id, v->text[i], v->len[i], i)) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    int n = 0;
    for (int i = 0; i < v->n_tokens; i++) n += v->ttype[i] == QS_TOK_USER_DEFINED && v->len[i] > 0;
    if (n) {
        v->user_defined = malloc(sizeof(int) * (size_t)n);
        if (!v->user_defined) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
        for (int i = 0; i < v->n_tokens; i++)
            if (v->ttype[i] == QS_TOK_USER_DEFINED && v->len[i] > 0) v->user_defined[v->n_user_defined++] = i;
        qsort_r(v->user_defined, (size_t)n, sizeof(int), cmp_len_desc, v);
    }
    return 0;
}
