/* The work queue both merge algorithms share (llama.cpp's llm_symbol / bigram priority queue):
 * text split into symbols linked left-right, and a max-heap of candidate pairs ordered by
 * priority (higher first) then by left position (smaller first). SPM uses the merged token's
 * score as priority, BPE the negated merge rank. */
#ifndef QS_MERGE_QUEUE_H
#define QS_MERGE_QUEUE_H

#include <stddef.h>

typedef struct {
    int prev, next;
    size_t off, n; /* the symbol is text[off, off + n); n == 0 once merged away */
} qs_symbol;

typedef struct {
    int left, right;
    double priority;
    size_t size; /* bytes of the merged pair when queued: a stale entry no longer matches */
} qs_bigram;

typedef struct {
    qs_bigram *a;
    size_t n, cap;
} qs_merge_queue;

/* Splits text[0, n) into UTF-8 characters (malloc'd array, caller frees); *count symbols. */
qs_symbol *qs_symbols_split(const char *text, size_t n, int *count);

int qs_merge_queue_push(qs_merge_queue *q, qs_bigram b); /* 0, or -1 when out of memory */
qs_bigram qs_merge_queue_pop(qs_merge_queue *q);         /* q->n must be > 0 */

/* Pops pairs until the queue is empty, merging each still-valid pair, and calls
 * requeue(ctx, left, right) for the new neighbour pairs (it queues them if they may merge).
 * Returns 0, or -1 if requeue failed. */
int qs_merge_run(qs_merge_queue *q, qs_symbol *sy, int (*requeue)(void *ctx, int left, int right), void *ctx);

#endif
