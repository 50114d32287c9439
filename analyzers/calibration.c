/* The calibration pass (see calibration.h): the engine's observer accumulates the statistics of
 * every linear layer's inputs, layer by layer over all calibration chunks. */
#include "analyzers/calibration.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

static void observe(void *user, int layer, int kind, const float *x, int n, int n_in) {
    qs_profile *p = user;
    if (qs_linear_input_of(kind) != kind) return; /* inputs shared by several linears are collected once */
    qs_act_stats *s = &p->acts[layer * QS_LIN_COUNT + kind];
    if (!s->ch_absmax) {
        s->n_in = n_in;
        s->min = INFINITY;
        s->max = -INFINITY;
        s->ch_absmax = calloc((size_t)n_in, sizeof(float));
        s->ch_sum_sq = calloc((size_t)n_in, sizeof(double));
        s->ch_sum_abs = calloc((size_t)n_in, sizeof(double));
        /* X^T X (n_in^2 floats: an 8B model's FFN input, 784 MiB) only where a pending job uses it */
        s->gram = p->want_gram[layer] ? calloc((size_t)n_in * (size_t)n_in, sizeof(float)) : NULL;
        float amax = 0;
        for (int64_t k = 0; k < (int64_t)n * n_in; k++) amax = fmaxf(amax, fabsf(x[k]));
        s->hist_range = amax > 0 ? 2 * amax : 1; /* fixed from the first batch; beyond it: end bins */
    }
    if (!s->ch_absmax || !s->ch_sum_sq || !s->ch_sum_abs || (p->want_gram[layer] && !s->gram)) return;
    for (int t = 0; t < n; t++) {
        const float *r = x + (size_t)t * n_in;
        for (int c = 0; c < n_in; c++) {
            float v = r[c];
            s->sum += v;
            s->sum_sq += (double)v * v;
            s->ch_sum_sq[c] += (double)v * v;
            s->ch_sum_abs[c] += fabs((double)v);
            if (fabsf(v) > s->ch_absmax[c]) s->ch_absmax[c] = fabsf(v);
            if (v < s->min) s->min = v;
            if (v > s->max) s->max = v;
            int b = (int)((v + s->hist_range) / (2 * s->hist_range) * 256);
            s->hist[b < 0 ? 0 : b > 255 ? 255 : b]++;
        }
    }
    /* G += X^T X: (n_in, n) x (n, n_in) */
    if (s->gram) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n_in, n_in, n, 1, x, n_in, x, n_in, 1, s->gram, n_in);
    s->n_tokens += n;
}


void qs_calib_close(qs_calib_cursor *c) {
    if (c->p) c->p->calib_engine = NULL;
    qs_engine_free(c->e);
    free(c->x);
    memset(c, 0, sizeof *c);
}

int qs_calib_open(qs_calib_cursor *c, qs_profile *p, const qs_profile_options *opt, const int *ids, size_t n_ids, int bos,
                      int64_t *used, qs_error *err) {
    memset(c, 0, sizeof *c);
    int rc = qs_engine_new(&c->e, p->m, opt->threads, err);
    if (rc) return rc;
    qs_engine_set_observer(c->e, observe, p);
    c->p = p;
    p->calib_engine = c->e;
    int ctx = opt->ctx;
    int n_chunks = (int)(n_ids / (size_t)ctx);
    if (n_chunks == 0) n_chunks = 1, ctx = (int)n_ids;
    if ((int64_t)n_chunks * ctx > opt->calib_tokens) n_chunks = (int)((opt->calib_tokens + ctx - 1) / ctx);
    const size_t dim = (size_t)p->m->arch.dim;
    int *chunk = malloc(sizeof(int) * (size_t)ctx);
    c->x = malloc(sizeof(float) * (size_t)n_chunks * (size_t)ctx * dim);
    c->n_chunks = n_chunks;
    c->ctx = ctx;
    if (!chunk || !c->x) {
        free(chunk);
        qs_calib_close(c);
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory for %d calibration chunks of %d tokens", n_chunks, ctx);
    }
    for (int k = 0; k < n_chunks && !rc; k++) {
        memcpy(chunk, ids + (size_t)k * ctx, sizeof(int) * (size_t)ctx);
        if (bos >= 0) chunk[0] = bos;
        rc = qs_engine_embed(c->e, chunk, ctx, c->x + (size_t)k * ctx * dim, err);
    }
    free(chunk);
    *used = (int64_t)n_chunks * ctx;
    if (rc) qs_calib_close(c);
    return rc;
}

int qs_calib_advance(qs_calib_cursor *c, int layer, qs_error *err) {
    const size_t chunk_floats = (size_t)c->ctx * (size_t)qs_engine_n_dim(c->e);
    for (; c->next <= layer; c->next++)
        for (int k = 0; k < c->n_chunks; k++) {
            int rc = qs_engine_run_layer(c->e, c->next, c->x + (size_t)k * chunk_floats, c->ctx, err);
            if (rc) return rc;
        }
    return 0;
}

void qs_calib_free_grams(qs_profile *p, int layer) {
    for (int k = 0; k < QS_LIN_COUNT; k++) {
        free(p->acts[layer * QS_LIN_COUNT + k].gram);
        p->acts[layer * QS_LIN_COUNT + k].gram = NULL;
    }
}

void qs_calib_normalize_grams(qs_profile *p) {
    for (int i = 0; p->acts && i < (p->m->arch.n_layers + 1) * QS_LIN_COUNT; i++) {
        qs_act_stats *s = &p->acts[i];
        for (int64_t k = 0; s->gram && s->n_tokens > 0 && k < (int64_t)s->n_in * s->n_in; k++)
            s->gram[k] = (float)(s->gram[k] / (double)s->n_tokens);
    }
}
