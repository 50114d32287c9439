/* The gradient-based sensitivity estimate (see sens_gradient.h). Layer-major: the gradient of
 * the residual stream for every evaluation chunk is carried down one layer at a time, so only
 * one layer's inputs and output gradients are alive, and each layer's candidates are scored
 * while they are. */
#include "analyzers/sens_gradient.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analyzers/analyzer.h"
#include "engine/engine.h"

/* one layer's linear inputs (stored under the kind whose input they are: qs_linear_input_of)
 * and output gradients, for every evaluation token: rows (chunk, position) */
typedef struct {
    float *x[QS_LIN_COUNT], *g[QS_LIN_COUNT];
    size_t cap_x[QS_LIN_COUNT], cap_g[QS_LIN_COUNT]; /* floats */
    size_t rows, row0;
    int fail;
} collect;

static int grow_to(float **buf, size_t *cap, size_t need) {
    if (*cap >= need) return 0;
    float *n = realloc(*buf, sizeof(float) * need);
    if (!n) return -1;
    *buf = n;
    *cap = need;
    return 0;
}

static void on_grad(void *user, int layer, int kind, const float *x, const float *g, int n, int n_in, int n_out) {
    (void)layer;
    collect *c = user;
    const int xi = qs_linear_input_of(kind);
    if (grow_to(&c->x[xi], &c->cap_x[xi], c->rows * (size_t)n_in) || grow_to(&c->g[kind], &c->cap_g[kind], c->rows * (size_t)n_out)) {
        c->fail = 1;
        return;
    }
    memcpy(c->x[xi] + c->row0 * (size_t)n_in, x, sizeof(float) * (size_t)n * (size_t)n_in);
    memcpy(c->g[kind] + c->row0 * (size_t)n_out, g, sizeof(float) * (size_t)n * (size_t)n_out);
}

typedef struct {
    qs_sens *s;
    qs_profile *p;
    qs_engine *e;
    const qs_arch *a;
    int nd, nf, ctx, first, per, n_chunks; /* n_chunks: over all domains */
    int *chunk_domain, *chunk_index;       /* [n_chunks] */
    const unsigned char *estimate;
    double *kc;    /* [n_tensors][nf][n_chunks]: each chunk's KL estimate (mean per scored position) */
    float *dr;     /* (n_chunks * ctx, dim): d loss / d the residual stream at the current layer */
    float *logits, *dl, *lq; /* (ctx - first, vocab) */
    collect col;
} grad_run;

static double *kc_of(grad_run *r, int i, int f) { return r->kc + ((size_t)i * r->nf + f) * (size_t)r->n_chunks; }

static uint64_t splitmix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* row <- softmax(row) in place; returns nothing (double sums) */
static void softmax(float *row, int n) {
    float mx = row[0];
    for (int i = 1; i < n; i++) mx = row[i] > mx ? row[i] : mx;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += row[i] = expf(row[i] - mx);
    const float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) row[i] *= inv;
}

/* The head's backward pass for every chunk: labels drawn from the base model's distribution
 * (a fixed seed per domain, chunk and position), d loss / d logits = p - e_y on the scored
 * rows, 0 on the last (it has no next token); r->dr gets the gradient of the final stream. */
static int head_pass(grad_run *r, qs_error *err) {
    const int V = r->a->n_vocab, rows = r->ctx - r->first, nl = r->a->n_layers;
    for (int k = 0; k < r->n_chunks; k++) {
        const int d = r->chunk_domain[k], c = r->chunk_index[k];
        const float *x = qs_sens_residual(r->s, d, c, nl);
        int rc = qs_engine_forward_from(r->e, nl, x, r->ctx, r->first, r->logits, err);
        if (rc) return rc;
        for (int i = 0; i < rows; i++) {
            float *g = r->dl + (size_t)i * V;
            if (i >= r->per) {
                memset(g, 0, sizeof(float) * (size_t)V);
                continue;
            }
            memcpy(g, r->logits + (size_t)i * V, sizeof(float) * (size_t)V);
            softmax(g, V);
            const double u = (double)(splitmix(((uint64_t)d << 48) ^ ((uint64_t)c << 24) ^ (uint64_t)i) >> 11) / 9007199254740992.0;
            double cum = 0;
            int y = V - 1;
            for (int j = 0; j < V; j++)
                if ((cum += g[j]) > u) {
                    y = j;
                    break;
                }
            g[y] -= 1.0f;
        }
        rc = qs_engine_head_backward(r->e, x, r->ctx, r->first, r->logits, r->dl, r->dr + (size_t)k * r->ctx * r->a->dim, NULL,
                                     NULL, err);
        if (rc) return rc;
    }
    return 0;
}

/* Tensor i's candidate: a block of rows at a time where the format rounds by rows (after its scans
 * for a per-tensor figure), else the whole tensor at once */
typedef struct {
    const qs_format *f;
    qs_prof_rows rows; /* .r NULL: whole */
    qs_calib cal;      /* the whole tensor's rounding */
    float *cal_buf;
} candidate;

static int candidate_open(const grad_run *r, int i, const qs_format *f, candidate *c, qs_error *err) {
    *c = (candidate){.f = f};
    if (qs_format_rounds_by_rows(f)) return qs_profile_rows_open(r->p, i, f, &c->rows, err);
    return qs_profile_calib(r->p, i, f, &c->cal, &c->cal_buf, err);
}

static void candidate_close(candidate *c) {
    qs_profile_rows_close(&c->rows);
    free(c->cal_buf);
}

/* Rows [r0, r0 + n) of tensor i's candidate error dW = Q(W) - W in f32 ((n, cols) into dw; w is
 * scratch); every row at once unless the candidate rounds by rows */
static int candidate_error_rows(const grad_run *r, int i, candidate *c, int64_t r0, int64_t n, float *w, float *dw,
                                qs_error *err) {
    const qs_prof_tensor *pt = &r->p->tensors[i];
    qs_tensor_dequantize_rows(pt->t, r0, n, w);
    int rc = c->rows.r ? qs_profile_rows_round(&c->rows, w, dw, r0, n, err)
                       : qs_format_fake_quantize_calib(c->f, w, dw, n, pt->cols, &c->cal, err);
    for (size_t j = 0; !rc && j < (size_t)n * (size_t)pt->cols; j++) dw[j] -= w[j];
    return rc;
}

/* rows of tensor i scored at a time: a block of QS_PROFILE_BLOCK_BYTES where the format rounds by
 * rows (an 8B model's 525M-value head is never whole in f32), else all */
static int64_t rows_per_block(const grad_run *r, int i, const qs_format *f) {
    const qs_prof_tensor *pt = &r->p->tensors[i];
    if (!qs_format_rounds_by_rows(f)) return pt->rows;
    const int64_t b = QS_PROFILE_BLOCK_BYTES / (int64_t)(sizeof(float) * (size_t)pt->cols);
    return b < 1 ? 1 : b > pt->rows ? pt->rows : b;
}

/* a linear of the current layer: 1/2 sum g^2 (X dW^T)^2 per chunk, over its scored positions,
 * summed over blocks of dW's rows (dY's columns) */
static int score_linear(grad_run *r, int i, int f, float *dy, qs_error *err) {
    const qs_prof_tensor *pt = &r->p->tensors[i];
    const qs_format *fmt = r->p->formats_sens[f];
    const int in = (int)pt->cols, out = (int)pt->rows, kind = pt->linear;
    const float *X = r->col.x[qs_linear_input_of(kind)], *G = r->col.g[kind];
    if (!X || !G) return qs_errorf(err, QS_ERR_INTERNAL, "%s: the backward pass did not reach it", pt->t->name);
    const int64_t step = rows_per_block(r, i, fmt);
    candidate c;
    int rc = candidate_open(r, i, fmt, &c, err);
    float *w = malloc(sizeof(float) * (size_t)(step * in)), *dw = malloc(sizeof(float) * (size_t)(step * in));
    if (!rc && (!w || !dw)) rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory scoring %s", pt->t->name);
    double *kc = kc_of(r, i, f);
    for (int64_t r0 = 0; r0 < out && !rc; r0 += step) {
        const int n = (int)(out - r0 < step ? out - r0 : step);
        if ((rc = candidate_error_rows(r, i, &c, r0, n, w, dw, err))) break;
        for (int k = 0; k < r->n_chunks; k++) {
            const size_t row0 = (size_t)k * r->ctx;
            /* dY[:, r0:r0+n] = X dW[r0:r0+n]^T: (ctx, in) x (n, in)^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r->ctx, n, in, 1.0f, X + row0 * in, in, dw, in, 0.0f,
                        dy, n);
            double s = 0;
            for (int t = 0; t < r->ctx; t++) {
                const float *g = G + (row0 + (size_t)t) * out + r0, *d = dy + (size_t)t * n;
                for (int j = 0; j < n; j++) s += (double)(g[j] * g[j]) * (double)(d[j] * d[j]);
            }
            kc[k] += 0.5 * s / r->per;
        }
    }
    candidate_close(&c);
    free(w);
    free(dw);
    return rc;
}

/* the embedding table: x_0 = scale E[token], so dX = scale dE[token], weighted by the gradient
 * entering the first layer (r->dr at the end); only the rows of the evaluation's tokens matter,
 * each rounded alone where the format's rows round independently */
static int score_embedding(grad_run *r, int i, int f, qs_error *err) {
    const int dim = r->a->dim;
    const qs_format *fmt = r->p->formats_sens[f];
    const int by_row = qs_format_rounds_by_rows(fmt);
    candidate c;
    float *w = NULL, *dw = NULL;
    int rc = by_row ? candidate_open(r, i, fmt, &c, err) : 0;
    if (by_row) {
        w = malloc(sizeof(float) * (size_t)dim);
        dw = malloc(sizeof(float) * (size_t)dim);
        if (!rc && (!w || !dw)) rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    } else if (!(rc = qs_profile_candidate(r->p, i, fmt, &w, &dw, err))) {
        for (size_t j = 0; j < (size_t)r->p->tensors[i].rows * (size_t)dim; j++) dw[j] -= w[j];
    }
    double *kc = kc_of(r, i, f);
    const double sc = r->a->embed_scale;
    for (int k = 0; k < r->n_chunks && !rc; k++) {
        const int *tok = qs_sens_tokens(r->s, r->chunk_domain[k], r->chunk_index[k]);
        double s = 0;
        for (int t = 0; t < r->ctx && !rc; t++) {
            const float *g = r->dr + ((size_t)k * r->ctx + t) * dim;
            const float *d = dw + (by_row ? 0 : (size_t)tok[t] * dim);
            if (by_row) rc = candidate_error_rows(r, i, &c, tok[t], 1, w, dw, err);
            for (int j = 0; j < dim && !rc; j++) {
                const double dx = sc * (double)d[j];
                s += (double)g[j] * g[j] * dx * dx;
            }
        }
        kc[k] += 0.5 * s / r->per;
    }
    if (by_row) candidate_close(&c);
    free(w);
    free(dw);
    return rc;
}

/* a tied table's head: the exact KL of the perturbed logits over the whole vocabulary */
static int score_tied_head(grad_run *r, int i, int f, qs_error *err) {
    const int V = r->a->n_vocab, nl = r->a->n_layers;
    const qs_format *fmt = r->p->formats_sens[f];
    const qs_tensor *t = r->p->tensors[i].t;
    /* the candidate rounded as the engine reads the rows where the format allows, else in f32 */
    const int rows = qs_sens_rounds_rows(fmt, t->ne[0]);
    float *wq = NULL;
    int rc = rows ? 0 : qs_profile_candidate(r->p, i, fmt, NULL, &wq, err);
    double *kc = kc_of(r, i, f);
    for (int k = 0; k < r->n_chunks && !rc; k++) {
        const float *x = qs_sens_residual(r->s, r->chunk_domain[k], r->chunk_index[k], nl);
        rc = qs_engine_forward_from(r->e, nl, x, r->ctx, r->first, r->logits, err);
        if (!rc)
            rc = rows ? qs_sens_round_rows_as_read(r->s, i, fmt, err)
                      : qs_engine_override(r->e, nl, QS_LIN_OUTPUT, wq, err);
        if (!rc) rc = qs_engine_forward_from(r->e, nl, x, r->ctx, r->first, r->lq, err);
        qs_error ignore;
        if (rows)
            qs_sens_round_rows_as_read(r->s, i, NULL, &ignore); /* paused: the next chunk's base run */
        else
            qs_engine_override(r->e, nl, QS_LIN_OUTPUT, NULL, &ignore);
        double s = 0;
        for (int t = 0; t < r->per && !rc; t++) {
            float *pb = r->logits + (size_t)t * V, *pq = r->lq + (size_t)t * V;
            softmax(pb, V);
            softmax(pq, V);
            for (int j = 0; j < V; j++)
                if (pb[j] > 0) s += (double)pb[j] * (log((double)pb[j]) - log(fmax((double)pq[j], 1e-45)));
        }
        kc[k] += s / r->per;
    }
    if (!rc && rows) rc = qs_sens_rounding_failed(r->s, err);
    if (rows) qs_sens_round_rows_close(r->s, i);
    free(wq);
    return rc;
}

static int each_format(grad_run *r, int i, int (*fn)(grad_run *, int, int, qs_error *), qs_error *err) {
    int rc = 0;
    for (int f = 0; f < r->nf && !rc; f++)
        if (r->estimate[(size_t)i * r->nf + f]) rc = fn(r, i, f, err);
    return rc;
}

/* the layer's backward pass for every chunk (collecting its linears' inputs and gradients,
 * carrying r->dr down through it), then its tensors scored */
static int layer_pass(grad_run *r, int l, float *tmp, float *dy, qs_error *err) {
    const int dim = r->a->dim;
    int rc = 0;
    r->col.rows = (size_t)r->n_chunks * r->ctx;
    for (int k = 0; k < r->n_chunks && !rc; k++) {
        float *dr = r->dr + (size_t)k * r->ctx * dim;
        r->col.row0 = (size_t)k * r->ctx;
        rc = qs_engine_layer_backward(r->e, l, qs_sens_residual(r->s, r->chunk_domain[k], r->chunk_index[k], l), dr, tmp, r->ctx,
                                      on_grad, &r->col, err);
        if (!rc && r->col.fail)
            rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory keeping layer %d's inputs and gradients for %zu tokens", l,
                           r->col.rows);
        if (!rc) memcpy(dr, tmp, sizeof(float) * (size_t)r->ctx * dim);
    }
    for (int i = 0; i < r->p->n_tensors && !rc; i++) {
        const qs_prof_tensor *pt = &r->p->tensors[i];
        if (pt->layer != l || pt->linear < 0 || pt->linear == QS_LIN_OUTPUT) continue;
        for (int f = 0; f < r->nf && !rc; f++)
            if (r->estimate[(size_t)i * r->nf + f]) rc = score_linear(r, i, f, dy, err);
    }
    return rc;
}

static int write_rows(grad_run *r, int64_t *n_written, qs_error *err) {
    qs_profile *p = r->p;
    int rc = qs_db_begin(p->db, err);
    for (int i = 0; i < p->n_tensors && !rc; i++)
        for (int f = 0; f < r->nf && !rc; f++) {
            if (!r->estimate[(size_t)i * r->nf + f]) continue;
            const double *kc = kc_of(r, i, f);
            for (int d = 0; d < r->nd && !rc; d++) {
                double sum = 0, sum2 = 0;
                int n = 0;
                for (int k = 0; k < r->n_chunks; k++)
                    if (r->chunk_domain[k] == d) sum += kc[k], sum2 += kc[k] * kc[k], n++;
                const double mean = sum / n, var = n > 1 ? fmax(0, (sum2 - n * mean * mean) / (n - 1)) : NAN;
                rc = qs_db_put_estimate(p->db, p->run_id, p->tensors[i].db_id, p->format_ids_sens[f], qs_sens_domain_name(r->s, d),
                                        QS_SENS_GRADIENT, mean, sqrt(var / n), 0, err);
                ++*n_written;
            }
        }
    if (!rc) rc = qs_db_mark_job(p->db, p->run_id, "estimates/" QS_SENS_GRADIENT, err);
    if (rc) {
        qs_db_rollback(p->db);
        return rc;
    }
    return qs_db_commit(p->db, err);
}

int qs_sens_gradient(qs_sens *s, const unsigned char *estimate, qs_profile_progress_fn progress, void *user, int64_t *n_written,
                     qs_error *err) {
    grad_run r = {.s = s, .p = qs_sens_profile(s), .e = qs_sens_engine(s), .estimate = estimate};
    r.a = &r.p->m->arch;
    r.nd = qs_sens_n_domains(s);
    r.nf = r.p->n_formats_sens;
    r.ctx = qs_sens_ctx(s);
    r.first = qs_sens_first(s);
    r.per = r.ctx - 1 - r.first;
    *n_written = 0;
    for (int d = 0; d < r.nd; d++) r.n_chunks += qs_sens_n_chunks(s, d);
    const int dim = r.a->dim, V = r.a->n_vocab, nl = r.a->n_layers;
    const size_t rows = (size_t)(r.ctx - r.first);
    int widest = V > dim ? V : dim;
    for (int i = 0; i < r.p->n_tensors; i++) widest = r.p->tensors[i].rows > widest ? (int)r.p->tensors[i].rows : widest;
    r.chunk_domain = malloc(sizeof(int) * (size_t)r.n_chunks);
    r.chunk_index = malloc(sizeof(int) * (size_t)r.n_chunks);
    r.kc = calloc((size_t)r.p->n_tensors * r.nf * r.n_chunks + 1, sizeof(double));
    r.dr = malloc(sizeof(float) * (size_t)r.n_chunks * r.ctx * dim);
    r.logits = malloc(sizeof(float) * rows * V);
    r.dl = malloc(sizeof(float) * rows * V);
    r.lq = malloc(sizeof(float) * rows * V);
    float *tmp = malloc(sizeof(float) * (size_t)r.ctx * dim), *dy = malloc(sizeof(float) * (size_t)r.ctx * widest);
    int rc = 0;
    if (!r.chunk_domain || !r.chunk_index || !r.kc || !r.dr || !r.logits || !r.dl || !r.lq || !tmp || !dy)
        rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory for the gradient pass (%d chunks of %d tokens)", r.n_chunks, r.ctx);
    for (int d = 0, k = 0; d < r.nd && !rc; d++)
        for (int c = 0; c < qs_sens_n_chunks(s, d); c++, k++) r.chunk_domain[k] = d, r.chunk_index[k] = c;
    /* progress in layers: the head, each block, the embedding */
    if (!rc && progress) progress(user, "gradient", 0, nl + 2, 0, 0);
    if (!rc) rc = head_pass(&r, err);
    for (int i = 0; i < r.p->n_tensors && !rc; i++) /* a tied table's head part */
        if (r.p->tensors[i].linear == QS_LIN_OUTPUT && !strcmp(r.p->tensors[i].kind, "token_embd"))
            rc = each_format(&r, i, score_tied_head, err);
    for (int l = nl - 1; l >= 0 && !rc; l--) {
        if (progress) progress(user, "gradient", nl - l, nl + 2, 0, 0);
        rc = layer_pass(&r, l, tmp, dy, err);
    }
    for (int i = 0; i < r.p->n_tensors && !rc; i++)
        if (!strcmp(r.p->tensors[i].kind, "token_embd")) rc = each_format(&r, i, score_embedding, err);
    if (!rc && progress) progress(user, "gradient", nl + 2, nl + 2, 0, 0);
    if (!rc) rc = write_rows(&r, n_written, err);
    for (int k = 0; k < QS_LIN_COUNT; k++) free(r.col.x[k]), free(r.col.g[k]);
    free(r.chunk_domain), free(r.chunk_index), free(r.kc), free(r.dr), free(r.logits), free(r.dl), free(r.lq);
    free(tmp), free(dy);
    return rc;
}

double qs_sens_gradient_memory(const qs_model *m, double tokens) {
    const qs_arch *a = &m->arch;
    const double qd = (double)a->n_heads * a->head_dim, kvd = (double)a->n_kv_heads * a->head_dim, hid = a->hidden_dim;
    /* inputs: the two norms' outputs, attention's, the down projection's; gradients of every output */
    const double per_token = a->dim + a->dim + qd + hid + (qd + 2 * kvd + a->dim + 2 * hid + a->dim) + a->dim;
    return 4.0 * tokens * per_token;
}
