/* SentencePiece-BPE as llama.cpp's llm_tokenizer_spm does it: spaces become U+2581, the text
 * is split into UTF-8 characters, and adjacent pairs whose concatenation is a token are merged,
 * highest token score first (leftmost on ties), until no pair is a token. Pieces that are not
 * tokens fall back to <0xXX> byte tokens. */
#include <stdlib.h>
#include <string.h>

#include "unicode.h"
#include "vocab.h"

typedef struct {
    int prev, next;
    size_t off, n; /* piece = text[off, off+n) */
} symbol;

typedef struct {
    int left, right;
    float score;
    size_t size;
} bigram;

typedef struct {
    bigram *a;
    size_t n, cap;
} heap;

/* a ranks before b: higher score, then smaller left index */
static int before(const bigram *a, const bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int heap_push(heap *h, bigram b) {
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 64;
        bigram *na = realloc(h->a, sizeof(bigram) * nc);
        if (!na) return -1;
        h->a = na;
        h->cap = nc;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&b, &h->a[p])) break;
        h->a[i] = h->a[p];
        i = p;
    }
    h->a[i] = b;
    return 0;
}

static bigram heap_pop(heap *h) {
    bigram top = h->a[0], last = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && before(&h->a[c + 1], &h->a[c])) c++;
        if (!before(&h->a[c], &last)) break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n) h->a[i] = last;
    return top;
}

/* Queues the pair (left, right) if it may merge: with SentencePiece scores when the pair's
 * concatenation is a token; with HF merge ranks (tokenizer.json vocabularies) when
 * "left right" is a merge, lower rank first. */
static int try_add(const qs_vocab *v, const char *text, symbol *sy, heap *h, int left, int right) {
    if (left < 0 || right < 0) return 0;
    size_t n = sy[left].n + sy[right].n;
    if (v->merges) {
        char stack[256], *key = n + 2 <= sizeof stack ? stack : malloc(n + 2);
        if (!key) return -1;
        memcpy(key, text + sy[left].off, sy[left].n);
        key[sy[left].n] = ' ';
        memcpy(key + sy[left].n + 1, text + sy[right].off, sy[right].n);
        int rank = qs_strmap_get(v->merges, key, n + 1);
        if (key != stack) free(key);
        if (rank < 0) return 0;
        return heap_push(h, (bigram){left, right, -(float)rank, n});
    }
    int id = qs_strmap_get(v->to_id, text + sy[left].off, n);
    if (id < 0) return 0;
    return heap_push(h, (bigram){left, right, v->scores[id], n});
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
    symbol *sy = malloc(sizeof(symbol) * (n + 1));
    heap h = {0};
    int rc = -1;
    if (!text || !sy) goto done;
    for (size_t i = 0, k = 0; i < raw_n; i++) {
        if (raw[i] == ' ') { memcpy(text + k, "\xe2\x96\x81", 3); k += 3; }
        else text[k++] = raw[i];
    }
    int ns = 0;
    for (size_t off = 0; off < n; ns++) {
        size_t len = (size_t)qs_utf8_len((uint8_t)text[off]);
        if (len > n - off) len = n - off;
        sy[ns] = (symbol){ns - 1, -1, off, len};
        off += len;
        sy[ns].next = off == n ? -1 : ns + 1;
    }
    for (int i = 1; i < ns; i++)
        if (try_add(v, text, sy, &h, i - 1, i)) goto done;
    while (h.n) {
        bigram b = heap_pop(&h);
        symbol *l = &sy[b.left], *r = &sy[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sy[r->next].prev = b.left;
        if (try_add(v, text, sy, &h, l->prev, b.left) || try_add(v, text, sy, &h, b.left, l->next)) goto done;
    }
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
    free(h.a);
    return rc;
}
