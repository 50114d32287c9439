/* Symbol splitting and the bigram work queue shared by spm.c and bpe.c (see merge_queue.h). */
#include "tok/merge_queue.h"

#include <stdlib.h>

#include "tok/unicode.h"

qs_symbol *qs_symbols_split(const char *text, size_t n, int *count) {
    qs_symbol *sy = malloc(sizeof(qs_symbol) * (n + 1));
    if (!sy) return NULL;
    int ns = 0;
    for (size_t off = 0; off < n; ns++) {
        size_t len = (size_t)qs_utf8_len((unsigned char)text[off]);
        if (len > n - off) len = n - off;
        sy[ns] = (qs_symbol){ns - 1, -1, off, len};
        off += len;
        sy[ns].next = off == n ? -1 : ns + 1;
    }
    *count = ns;
    return sy;
}

static int before(const qs_bigram *a, const qs_bigram *b) {
    return a->priority > b->priority || (a->priority == b->priority && a->left < b->left);
}

int qs_merge_queue_push(qs_merge_queue *q, qs_bigram b) {
    if (q->n == q->cap) {
        size_t nc = q->cap ? q->cap * 2 : 64;
        qs_bigram *na = realloc(q->a, sizeof(qs_bigram) * nc);
        if (!na) return -1;
        q->a = na;
        q->cap = nc;
    }
    size_t i = q->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&b, &q->a[p])) break;
        q->a[i] = q->a[p];
        i = p;
    }
    q->a[i] = b;
    return 0;
}

qs_bigram qs_merge_queue_pop(qs_merge_queue *q) {
    qs_bigram top = q->a[0], last = q->a[--q->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->n) break;
        if (c + 1 < q->n && before(&q->a[c + 1], &q->a[c])) c++;
        if (!before(&q->a[c], &last)) break;
        q->a[i] = q->a[c];
        i = c;
    }
    if (q->n) q->a[i] = last;
    return top;
}

int qs_merge_run(qs_merge_queue *q, qs_symbol *sy, int (*requeue)(void *ctx, int left, int right), void *ctx) {
    while (q->n) {
        qs_bigram b = qs_merge_queue_pop(q);
        qs_symbol *l = &sy[b.left], *r = &sy[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sy[r->next].prev = b.left;
        if (requeue(ctx, l->prev, b.left) || requeue(ctx, b.left, l->next)) return -1;
    }
    return 0;
}
