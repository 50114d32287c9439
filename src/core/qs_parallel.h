/* qs_parallel_for: a small pool of worker threads that sleep between jobs. OpenMP's workers
 * spin after each parallel region, and on a 2-core machine that spinning steals the cores
 * OpenBLAS's own threads need (measured: 224 vs 375 tokens/s on SmolLM2); these workers block
 * on a condition variable instead. */
#ifndef QS_PARALLEL_H
#define QS_PARALLEL_H

/* fn(ctx, begin, end) is called on disjoint ranges covering [0, n), from up to `threads`
 * threads (the caller's included); returns when all are done. Not reentrant. */
typedef void (*qs_range_fn)(void *ctx, long begin, long end);
void qs_parallel_for(long n, int threads, qs_range_fn fn, void *ctx);

/* The number of cores (the default thread count). */
int qs_parallel_default_threads(void);

/* Index of the calling thread inside a qs_parallel_for job (0 = the caller). */
int qs_parallel_thread_index(void);

#endif
