/* SentencePiece-BPE as llama.cpp's llm_tokenizer_spm does it: spaces become U+2581, the text
 * is split into UTF-8 characters, and adjacent pairs whose concatenation is a token are merged,
 * highest token score first (leftmost on ties), until no pair is a token. Pieces that are not
 * tokens fall back to <0xXX> byte tokens. */
#include <stdlib.h>
#include <string.h>

#include "tok/merge_queue.h"
#include "tok/vocab.h"

typedef struct {
    const qs_vocab *v;
    const char *text;
    qs_symbol *sy;
    qs_merge_queue *q;
} spm_ctx;

/* Queues the pair (left, right) if it may merge: with SentencePiece scores when the pair's
 * concatenation is a token; with HF merge ranks (tokenizer.json vocabularies) when
 * "left right" is a merge, lower rank first. */
static int try_add(void *ctx, int left, int right) {
    const spm_ctx *c = ctx;
    const qs_vocab *v = c->v;
    const qs_symbol *sy = c->sy;
    if (left < 0 || right < 0) return 0;
    size_t n = sy[left].n + sy[right].n;
    if (v->merges) {
        char stack[256], *key = n + 2 <= sizeof stack ? stack : malloc(n + 2);
        if (!key) return -1;
        memcpy(key, c->text + sy[left].off, sy[left].n);
        key[sy[left].n] = ' ';
        memcpy(key + sy[left].n + 1, c->text + sy[right].off, sy[right].n);
        int rank = qs_strmap_get(v->merges, key, n + 1);
        if (key != stack) free(key);
        if (rank < 0) return 0;
        return qs_merge_queue_push(c->q, (qs_bigram){left, right, -(double)rank, n});
    }
    int id = qs_strmap_get(v->to_id, c->text + sy[left].off, n);
    if (id < 0) return 0;
    return qs_merge_queue_push(c->q, (qs_bigram){left, right, v->scores[id], n});
}

static int byte_token(const qs_vocab *v, uint8_t c) {
    static const char hex[] = "0123456789ABCDEF";
    char buf[7] = {'<', '0', 'x', hex[c >> 4], hex[c & 15], '>', 0};
    int id = qs_strmap_get(v->to_id, buf, 6);
    if (id >= 0) return id;
    char one = (char)c;
    id = qs_strmap_get(v->to_id, &one, 1);
    return id >= 0 ? id : v->unk;
}

int qs_spm_tokenize(const qs_vocab *v, const char *raw, size_t raw_n, qs_ids *out) {
    /* escape: ' ' -> U+2581 (3 bytes) */
    size_t spaces = 0;
    for (size_t i = 0; i < raw_n; i++) spaces += raw[i] == ' ';
    size_t n = raw_n + 2 * spaces;
    char *text = malloc(n + 1);
    qs_symbol *sy = NULL;
    qs_merge_queue q = {0};
    int rc = -1, ns = 0;
    if (!text) goto done;
    for (size_t i = 0, k = 0; i < raw_n; i++) {
        if (raw[i] == ' ') { memcpy(text + k, "\xe2\x96\x81", 3); k += 3; }
        else text[k++] = raw[i];
    }
    if (!(sy = qs_symbols_split(text, n, &ns))) goto done;
    spm_ctx c = {v, text, sy, &q};
    for (int i = 1; i < ns; i++)
        if (try_add(&c, i - 1, i)) goto done;
    if (qs_merge_run(&q, sy, try_add, &c)) goto done;
    for (int i = ns > 0 ? 0 : -1; i != -1; i = sy[i].next) {
        int id = qs_strmap_get(v->to_id, text + sy[i].off, sy[i].n);
        if (id >= 0) {
            if (qs_ids_push(out, id)) goto done;
            continue;
        }
        for (size_t j = 0; j < sy[i].n; j++)
            if (qs_ids_push(out, byte_token(v, (uint8_t)text[sy[i].off + j]))) goto done;
    }
    rc = 0;
done:
    free(text);
    free(sy);
    free(q.a);
    return rc;
}
