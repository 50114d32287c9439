/* Chunks through the layers together (see chunk_pass.h). */
#include "engine/chunk_pass.h"

#include <stdlib.h>
#include <string.h>

int qs_chunk_batch(const qs_engine *e, int n_ctx, int n_chunks) {
    const qs_arch *a = qs_engine_arch(e);
    /* the engine's activations per row: the stream, its norm, q, k, v, the attention output and
     * the two FFN halves (engine.c's qse_grow) */
    const double row = 4.0 * (4.0 * a->dim + 2.0 * a->n_kv_heads * a->head_dim + 2.0 * a->n_heads * a->head_dim +
                              2.0 * (a->n_expert > 0 ? a->expert_ff : a->hidden_dim));
    double budget = 0.5 * (double)qs_engine_weight_bytes(e);
    if (budget > QS_CHUNK_BATCH_BYTES) budget = QS_CHUNK_BATCH_BYTES;
    double rows = budget / row;
    if (rows > QS_CHUNK_BATCH_ROWS) rows = QS_CHUNK_BATCH_ROWS;
    int b = (int)(rows / n_ctx);
    if (b > n_chunks) b = n_chunks;
    return b < 1 ? 1 : b;
}

int qs_chunks_through_layers(qs_engine *e, const int *tokens, int n_seq, int n_ctx, int bos, float *x,
                             void (*after_layer)(void *user, int layers_done), void *user, qs_error *err) {
    const int L = qs_engine_arch(e)->n_layers;
    const size_t per = (size_t)n_ctx * (size_t)qs_engine_arch(e)->dim;
    int *chunk = malloc(sizeof(int) * (size_t)n_ctx);
    if (!chunk) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory for a chunk of %d tokens", n_ctx);
    int rc = 0;
    for (int k = 0; k < n_seq && !rc; k++) {
        memcpy(chunk, tokens + (size_t)k * n_ctx, sizeof(int) * (size_t)n_ctx);
        if (bos >= 0) chunk[0] = bos;
        rc = qs_engine_embed(e, chunk, n_ctx, x + (size_t)k * per, err);
    }
    free(chunk);
    for (int l = 0; l < L && !rc; l++) {
        rc = qs_engine_run_layer_batch(e, l, x, n_seq, n_ctx, err);
        if (!rc && after_layer) after_layer(user, l + 1);
    }
    return rc;
}
