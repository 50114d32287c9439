/* The calibration pass of a profile, layer-major: every chunk's residual stream is kept (chunks
 * x ctx x dim floats), and advancing to layer l pushes all of them through the layers before it, so the
 * statistics of layer l's inputs are complete while later layers' are not yet allocated. The
 * arithmetic and its order per statistic are the chunk-major forward pass's: same numbers. */
#ifndef QS_CALIBRATION_H
#define QS_CALIBRATION_H

#include <stddef.h>
#include <stdint.h>

#include "analyzers/analyzer.h"
#include "analyzers/profile.h"
#include "engine/engine.h"

typedef struct {
    qs_engine *e;
    float *x;        /* (n_chunks * ctx, dim) */
    int n_chunks, ctx;
    int next;        /* the layer whose inputs are observed next; n_layers: the output head's */
    qs_profile *p;   /* whose calib_engine this engine is while open */
} qs_calib_cursor;

/* Embeds up to opt->calib_tokens of ids in chunks of opt->ctx (bos >= 0 replaces each chunk's
 * first token) with an observer that fills p->acts (allocated by the caller, one entry per layer
 * and linear kind; X^T X only where p->want_gram says); *used: the tokens that will be seen. */
int qs_calib_open(qs_calib_cursor *c, qs_profile *p, const qs_profile_options *opt, const int *ids, size_t n_ids, int bos,
                  int64_t *used, qs_error *err);
/* Observes the inputs of layers [c->next, layer] (layer n_layers: the output head's). */
int qs_calib_advance(qs_calib_cursor *c, int layer, qs_error *err);
void qs_calib_close(qs_calib_cursor *c);
/* Frees the X^T X matrices of one layer's inputs (after the last job that needed them). */
void qs_calib_free_grams(qs_profile *p, int layer);
/* Divides every X^T X held by the token count, exactly as the activations analyzer stores it
 * (what the sweep reads back), for a process that keeps them in memory instead. */
void qs_calib_normalize_grams(qs_profile *p);

#endif
