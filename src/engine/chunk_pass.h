/* Consecutive chunks of a token stream through the layers together (layer-major): every chunk
 * passes layer l before any passes layer l + 1, so each stored weight is expanded once per batch
 * (a file larger than memory is read once per batch), not once per chunk. The arithmetic of
 * every chunk is that of running it alone. Used by perplexity and the base-vs-candidate
 * comparison; the sensitivity sweep batches its own cached streams. */
#ifndef QS_CHUNK_PASS_H
#define QS_CHUNK_PASS_H

#include "engine/engine.h"

/* Chunks per batch: as many as fit the engine's activations in QS_CHUNK_BATCH_BYTES and in half
 * the model's stored size (a batch pays off by expanding each weight once for more tokens; its
 * activations should not cost more memory than the weights' pages do), at most
 * QS_CHUNK_BATCH_ROWS tokens (where sgemm stops gaining), at least one, at most n_chunks. */
#define QS_CHUNK_BATCH_BYTES (512.0 * 1024 * 1024)
#define QS_CHUNK_BATCH_ROWS 4096
int qs_chunk_batch(const qs_engine *e, int n_ctx, int n_chunks);

/* Embeds n_seq chunks of n_ctx tokens, tokens[0 .. n_seq * n_ctx) one after another (the first
 * token of each replaced by bos when bos >= 0), into x (n_seq * n_ctx, dim) and runs every layer
 * on them; x then holds the streams entering the output norm (qs_engine_forward_from with
 * layer = n_layers gives each chunk's logits). after_layer (may be NULL) is called with the
 * layers done. */
int qs_chunks_through_layers(qs_engine *e, const int *tokens, int n_seq, int n_ctx, int bos, float *x,
                             void (*after_layer)(void *user, int layers_done), void *user, qs_error *err);

#endif
