/* Per-tensor sensitivity sweep (see sensitivity.h). */
#include "analyzers/sensitivity.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_file.h"
#include "engine/engine.h"
#include "tok/vocab.h"

typedef struct {
    const qs_eval_domain *src;
    int n_chunks, n_scored;
    int *tokens;     /* (n_chunks, ctx), first of each chunk = BOS */
    int *targets;    /* (n_chunks, ctx): the original next tokens */
    float *cache;    /* (n_chunks, n_layers + 1, ctx, dim); in a scratch file when the profile spills */
    float *logp_true;/* (n_scored) */
    int *top1;       /* (n_scored) */
    int *topk_id;    /* (n_scored, k) */
    float *topk_lp;  /* (n_scored, k) base log-probabilities */
    float *tail;     /* (n_scored) base probability mass outside the top-k */
    double base_nll, base_ppl, base_ppl_se, mean_tail;
} domain;

struct qs_sens {
    qs_profile *p;
    qs_engine *e;
    int ctx, first, k, bos;
    domain *d;
    int n_domains;
    float *logits;   /* (batch, ctx - first, vocab) */
    float *batch;    /* (batch, ctx, dim): the chunks run together (batch_chunks) */
    /* tensors the engine rounds as it reads their rows (qs_engine_transform_weights) */
    struct {
        qs_prof_rows *by_tensor; /* one per profile tensor, open while it is rounded as read */
        int last;                /* the tensor the transform found last */
        int failed;
        char why[256];
    } rr;
};

static int batch_chunks(const qs_sens *s);

int qs_sens_n_domains(const qs_sens *s) { return s->n_domains; }
const char *qs_sens_domain_name(const qs_sens *s, int d) { return s->d[d].src->name; }

static size_t cache_off(const qs_sens *s, int chunk, int layer) {
    const qs_arch *a = &s->p->m->arch;
    return (((size_t)chunk * (size_t)(a->n_layers + 1)) + (size_t)layer) * (size_t)s->ctx * (size_t)a->dim;
}

int qs_sens_ctx(const qs_sens *s) { return s->ctx; }
int qs_sens_first(const qs_sens *s) { return s->first; }
int qs_sens_n_chunks(const qs_sens *s, int d) { return s->d[d].n_chunks; }
int qs_sens_n_scored(const qs_sens *s, int d) { return s->d[d].n_scored; }
const int *qs_sens_tokens(const qs_sens *s, int d, int chunk) { return s->d[d].tokens + (size_t)chunk * s->ctx; }
const float *qs_sens_residual(const qs_sens *s, int d, int chunk, int layer) { return s->d[d].cache + cache_off(s, chunk, layer); }
qs_engine *qs_sens_engine(qs_sens *s) { return s->e; }
qs_profile *qs_sens_profile(qs_sens *s) { return s->p; }

/* log-softmax normalizer of a row: max + log sum exp */
static double log_norm(const float *l, int n) {
    float mx = l[0];
    for (int i = 1; i < n; i++) mx = l[i] > mx ? l[i] : mx;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)(l[i] - mx));
    return mx + log(sum);
}

static int argmax(const float *l, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[b]) b = i;
    return b;
}

/* the k largest entries of l (unordered), by a small min-heap */
static void top_k(const float *l, int n, int k, int *idx) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m < k) {
            int j = m++;
            idx[j] = i;
            while (j > 0 && l[idx[(j - 1) / 2]] > l[idx[j]]) { int t = idx[j]; idx[j] = idx[(j - 1) / 2]; idx[(j - 1) / 2] = t; j = (j - 1) / 2; }
        } else if (l[i] > l[idx[0]]) {
            idx[0] = i;
            int j = 0;
            for (;;) {
                int c = 2 * j + 1;
                if (c >= k) break;
                if (c + 1 < k && l[idx[c + 1]] < l[idx[c]]) c++;
                if (l[idx[c]] >= l[idx[j]]) break;
                int t = idx[j]; idx[j] = idx[c]; idx[c] = t;
                j = c;
            }
        }
    }
}

static int base_domain(qs_sens *s, domain *d, const qs_vocab *v, qs_error *err) {
    const qs_arch *a = &s->p->m->arch;
    int *ids;
    size_t n_ids;
    int rc = qs_tokenize(v, d->src->text, d->src->n_text, 1, &ids, &n_ids, err);
    if (rc) return rc;
    int64_t budget = d->src->tokens < (int64_t)n_ids ? d->src->tokens : (int64_t)n_ids;
    d->n_chunks = (int)(budget / s->ctx);
    if (d->n_chunks < 1) {
        free(ids);
        return qs_errorf(err, QS_ERR_INPUT, "%.300s: evaluation domain '%s' gives %zu tokens; a %d-token chunk needs more",
                         d->src->files ? d->src->files : "?", d->src->name, n_ids, s->ctx);
    }
    const int per = s->ctx - 1 - s->first, k = s->k, V = a->n_vocab;
    d->n_scored = d->n_chunks * per;
    d->tokens = malloc(sizeof(int) * (size_t)d->n_chunks * (size_t)s->ctx);
    d->targets = malloc(sizeof(int) * (size_t)d->n_chunks * (size_t)s->ctx);
    d->cache = s->p->spill_caches ? qs_scratch_map(s->p->db_path, sizeof(float) * cache_off(s, d->n_chunks, 0), err)
                                  : malloc(sizeof(float) * cache_off(s, d->n_chunks, 0));
    if (!d->cache && s->p->spill_caches) {
        free(ids);
        return err->code;
    }
    d->logp_true = malloc(sizeof(float) * (size_t)d->n_scored);
    d->top1 = malloc(sizeof(int) * (size_t)d->n_scored);
    d->topk_id = malloc(sizeof(int) * (size_t)d->n_scored * (size_t)k);
    d->topk_lp = malloc(sizeof(float) * (size_t)d->n_scored * (size_t)k);
    d->tail = malloc(sizeof(float) * (size_t)d->n_scored);
    float **cap = malloc(sizeof(float *) * (size_t)(a->n_layers + 1));
    if (!d->tokens || !d->targets || !d->cache || !d->logp_true || !d->top1 || !d->topk_id || !d->topk_lp || !d->tail || !cap) {
        free(ids);
        free(cap);
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory caching domain '%s' (%d chunks of %d)", d->src->name, d->n_chunks,
                         s->ctx);
    }
    double nll = 0, nll2 = 0, tail_sum = 0;
    for (int c = 0; c < d->n_chunks && !rc; c++) {
        int *tok = d->tokens + (size_t)c * s->ctx;
        memcpy(tok, ids + (size_t)c * s->ctx, sizeof(int) * (size_t)s->ctx);
        memcpy(d->targets + (size_t)c * s->ctx, ids + (size_t)c * s->ctx + 1, sizeof(int) * (size_t)(s->ctx - 1));
        if (s->bos >= 0) tok[0] = s->bos;
        for (int l = 0; l <= a->n_layers; l++) cap[l] = d->cache + cache_off(s, c, l);
        qs_engine_set_capture(s->e, cap);
        rc = qs_engine_forward(s->e, tok, s->ctx, s->first, s->logits, err);
        qs_engine_set_capture(s->e, NULL);
        for (int i = 0; i < per && !rc; i++) {
            const float *row = s->logits + (size_t)i * V;
            const int j = c * per + i, target = d->targets[(size_t)c * s->ctx + s->first + i];
            const double ln = log_norm(row, V);
            d->logp_true[j] = (float)(row[target] - ln);
            d->top1[j] = argmax(row, V);
            int *ti = d->topk_id + (size_t)j * k;
            top_k(row, V, k, ti);
            double in = 0;
            for (int q = 0; q < k; q++) {
                d->topk_lp[(size_t)j * k + q] = (float)(row[ti[q]] - ln);
                in += exp(row[ti[q]] - ln);
            }
            d->tail[j] = (float)fmax(0.0, 1.0 - in);
            tail_sum += d->tail[j];
            nll -= d->logp_true[j];
            nll2 += (double)d->logp_true[j] * d->logp_true[j];
        }
    }
    free(ids);
    free(cap);
    if (rc) return rc;
    const double n = d->n_scored, mean = nll / n, var = nll2 / n - mean * mean;
    d->base_nll = mean;
    d->base_ppl = exp(mean);
    d->base_ppl_se = var > 0 && n > 1 ? sqrt(var / (n - 1)) * d->base_ppl : 0;
    d->mean_tail = tail_sum / n;
    return 0;
}

int qs_sens_new(qs_sens **out, qs_profile *p, const qs_evalset *set, int ctx, int topk, qs_error *err) {
    *out = NULL;
    qs_sens *s = calloc(1, sizeof *s);
    if (!s) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    s->p = p;
    s->ctx = ctx;
    s->first = ctx / 2;
    s->k = topk < p->m->arch.n_vocab ? topk : p->m->arch.n_vocab;
    qs_vocab *v = NULL;
    int rc = qs_vocab_for_model(&v, p->m, err);
    if (!rc) rc = qs_engine_new(&s->e, p->m, p->threads, err);
    if (!rc) {
        s->bos = v->add_bos ? v->bos : -1;
        const int nb = batch_chunks(s) < 64 ? batch_chunks(s) : 64;
        s->logits = malloc(sizeof(float) * (size_t)nb * (size_t)(ctx - s->first) * (size_t)p->m->arch.n_vocab);
        s->batch = malloc(sizeof(float) * (size_t)nb * (size_t)ctx * (size_t)p->m->arch.dim);
        s->d = calloc((size_t)set->n_domains, sizeof(domain));
        s->n_domains = set->n_domains;
        if (!s->logits || !s->batch || !s->d) rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    }
    for (int i = 0; !rc && i < set->n_domains; i++) {
        s->d[i].src = &set->domains[i];
        rc = base_domain(s, &s->d[i], v, err);
    }
    qs_vocab_free(v);
    if (rc) {
        qs_sens_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void qs_sens_free(qs_sens *s) {
    if (!s) return;
    for (int i = 0; i < s->n_domains; i++) {
        domain *d = &s->d[i];
        if (s->p->spill_caches) qs_scratch_unmap(d->cache, sizeof(float) * cache_off(s, d->n_chunks, 0));
        else free(d->cache);
        free(d->tokens); free(d->targets); free(d->logp_true); free(d->top1);
        free(d->topk_id); free(d->topk_lp); free(d->tail);
    }
    free(s->d);
    free(s->logits);
    free(s->batch);
    for (int i = 0; s->rr.by_tensor && i < s->p->n_tensors; i++) qs_profile_rows_close(&s->rr.by_tensor[i]);
    free(s->rr.by_tensor);
    qs_engine_free(s->e);
    free(s);
}

int qs_sens_put_domains(qs_sens *s, qs_error *err) {
    int rc = 0;
    for (int i = 0; i < s->n_domains && !rc; i++) {
        const domain *d = &s->d[i];
        qs_db_eval_domain_row row = {.run_id = s->p->run_id, .name = d->src->name, .sha256 = d->src->sha256, .files = d->src->files,
                                     .n_chunks = d->n_chunks, .ctx = s->ctx, .n_scored = d->n_scored, .topk = s->k,
                                     .base_ppl = d->base_ppl, .base_ppl_se = d->base_ppl_se, .mean_tail_mass = d->mean_tail};
        rc = qs_db_put_eval_domain(s->p->db, &row, err);
    }
    return rc;
}

typedef struct {
    double nll, dnll, dnll2, kl, top1;
    float *kls;
    int n;
} tally;

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* compares chunk c's logits rows (ctx - first of them, from `logits`) with the base */
static void score_chunk(const qs_sens *s, const domain *d, int c, const float *logits, tally *t) {
    const int per = s->ctx - 1 - s->first, V = s->p->m->arch.n_vocab, k = s->k;
    for (int i = 0; i < per; i++) {
        const float *row = logits + (size_t)i * V;
        const int j = c * per + i, target = d->targets[(size_t)c * s->ctx + s->first + i];
        const double ln = log_norm(row, V), lq = row[target] - ln;
        t->nll -= lq;
        const double dn = -lq + d->logp_true[j];
        t->dnll += dn;
        t->dnll2 += dn * dn;
        t->top1 += argmax(row, V) == d->top1[j];
        double kl = 0, in_q = 0;
        for (int q = 0; q < k; q++) {
            const double lb = d->topk_lp[(size_t)j * k + q], lqq = row[d->topk_id[(size_t)j * k + q]] - ln;
            kl += exp(lb) * (lb - lqq);
            in_q += exp(lqq);
        }
        const double tb = d->tail[j], tq = fmax(1e-30, 1.0 - in_q);
        if (tb > 1e-30) kl += tb * (log(tb) - log(tq));
        kl = fmax(0.0, kl);
        t->kls[t->n++] = (float)kl;
        t->kl += kl;
    }
}

static qs_db_eval_figures tally_figures(const domain *d, tally *t) {
    const double n = t->n, mean_d = t->dnll / n, var_d = fmax(0, t->dnll2 / n - mean_d * mean_d);
    const double ppl = exp(t->nll / n);
    double kl_mean = t->kl / n, kl_var = 0;
    for (int i = 0; i < t->n; i++) kl_var += (t->kls[i] - kl_mean) * (t->kls[i] - kl_mean);
    kl_var /= n > 1 ? n - 1 : 1;
    qsort(t->kls, (size_t)t->n, sizeof(float), cmp_float);
    int64_t p99 = (int64_t)ceil(0.99 * n) - 1;
    const double top1 = t->top1 / n;
    qs_db_eval_figures f = {
        .n_scored = t->n, .ppl = ppl, .ppl_delta = ppl - d->base_ppl,
        /* paired: the standard error of the mean NLL difference, through d ppl = ppl d nll */
        .ppl_delta_se = n > 1 ? ppl * sqrt(var_d / (n - 1)) : NAN, .kl_mean = kl_mean, .kl_se = sqrt(kl_var / n),
        .kl_p99 = t->kls[p99 < 0 ? 0 : p99], .top1_agree = top1, .top1_se = sqrt(top1 * (1 - top1) / n)};
    return f;
}

/* where the perturbation of tensor i enters: its layer, 0 for the embedding, n_layers for the head */
static int start_layer(const qs_sens *s, int i) {
    const qs_prof_tensor *pt = &s->p->tensors[i];
    if (!strcmp(pt->kind, "token_embd")) return 0;
    if (pt->linear == QS_LIN_OUTPUT) return s->p->m->arch.n_layers;
    return pt->layer;
}

long qs_sens_cost(const qs_sens *s, int i) {
    long tokens = 0;
    for (int d = 0; d < s->n_domains; d++) tokens += (long)s->d[d].n_chunks * s->ctx;
    return (long)(s->p->m->arch.n_layers + 1 - start_layer(s, i) + 1) * (tokens / (s->n_domains ? s->n_domains : 1));
}

long qs_sens_cost_full(const qs_sens *s) {
    long tokens = 0;
    for (int d = 0; d < s->n_domains; d++) tokens += (long)s->d[d].n_chunks * s->ctx;
    return (long)(s->p->m->arch.n_layers + 2) * (tokens / (s->n_domains ? s->n_domains : 1));
}

static int apply(qs_sens *s, int i, const float *wq, qs_error *err) {
    const qs_prof_tensor *pt = &s->p->tensors[i];
    if (!strcmp(pt->kind, "token_embd")) {
        qs_engine_override_embedding(s->e, wq);
        if (pt->linear == QS_LIN_OUTPUT) return qs_engine_override(s->e, s->p->m->arch.n_layers, QS_LIN_OUTPUT, wq, err);
        return 0;
    }
    if (pt->linear < 0) return qs_errorf(err, QS_ERR_USAGE, "%s is not a matrix the sweep can perturb", pt->t->name);
    return qs_engine_override(s->e, pt->layer, pt->linear, wq, err);
}

/* apply with the candidate in its stored blocks (qs_profile_candidate_blocks) */
static int apply_stored(qs_sens *s, int i, const qs_tensor *st, qs_error *err) {
    const qs_prof_tensor *pt = &s->p->tensors[i];
    int rc = 0;
    if (!strcmp(pt->kind, "token_embd")) {
        rc = qs_engine_override_embedding_stored(s->e, st, err);
        if (!rc && pt->linear == QS_LIN_OUTPUT)
            rc = qs_engine_override_stored(s->e, s->p->m->arch.n_layers, QS_LIN_OUTPUT, st, err);
        return rc;
    }
    if (pt->linear < 0) return qs_errorf(err, QS_ERR_USAGE, "%s is not a matrix the sweep can perturb", pt->t->name);
    return qs_engine_override_stored(s->e, pt->layer, pt->linear, st, err);
}

/* chunks run together: up to 4096 tokens, and their logits in at most 512 MiB */
static int batch_chunks(const qs_sens *s) {
    const double logits = 4.0 * (s->ctx - s->first) * (double)s->p->m->arch.n_vocab;
    int b = 4096 / s->ctx;
    if (b > (int)(512.0 * 1024 * 1024 / logits)) b = (int)(512.0 * 1024 * 1024 / logits);
    return b < 1 ? 1 : b;
}

static int alloc_tallies(const qs_sens *s, uint64_t mask, tally *t, qs_error *err) {
    for (int d = 0; d < s->n_domains; d++)
        if (mask >> d & 1 && !(t[d].kls = malloc(sizeof(float) * (size_t)s->d[d].n_scored)))
            return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    return 0;
}

/* Runs every chunk of the domains in mask from layer `start` (0: from the embeddings) with the
 * current overrides, several chunks of any domains per forward pass, and scores each against
 * its domain's base into t[d]. */
static int run_domains(qs_sens *s, uint64_t mask, int start, tally *t, qs_error *err) {
    const int dim = s->p->m->arch.dim, rows = s->ctx - s->first;
    const size_t V = (size_t)s->p->m->arch.n_vocab;
    int rc = alloc_tallies(s, mask, t, err);
    int bd[64], bc[64], nb = 0; /* the batch: (domain, chunk) pairs */
    const int cap = batch_chunks(s) < 64 ? batch_chunks(s) : 64;
    for (int d = 0; d <= s->n_domains && !rc; d++) {
        const int last = d == s->n_domains;
        for (int c = 0; !last && mask >> d & 1 && c < s->d[d].n_chunks && !rc; c++) {
            float *x = s->batch + (size_t)nb * s->ctx * dim;
            if (start == 0) rc = qs_engine_embed(s->e, s->d[d].tokens + (size_t)c * s->ctx, s->ctx, x, err);
            else memcpy(x, s->d[d].cache + cache_off(s, c, start), sizeof(float) * (size_t)s->ctx * dim);
            bd[nb] = d, bc[nb++] = c;
            if (nb < cap) continue;
            rc = qs_engine_forward_batch_from(s->e, start, s->batch, nb, s->ctx, s->first, s->logits, err);
            for (int k = 0; k < nb && !rc; k++) score_chunk(s, &s->d[bd[k]], bc[k], s->logits + (size_t)k * rows * V, &t[bd[k]]);
            nb = 0;
        }
        if (last && nb && !rc) {
            rc = qs_engine_forward_batch_from(s->e, start, s->batch, nb, s->ctx, s->first, s->logits, err);
            for (int k = 0; k < nb && !rc; k++) score_chunk(s, &s->d[bd[k]], bc[k], s->logits + (size_t)k * rows * V, &t[bd[k]]);
        }
    }
    return rc;
}

static void free_tallies(tally *t, int n) {
    for (int d = 0; d < n; d++) free(t[d].kls);
}

int qs_sens_measure_tensor(qs_sens *s, int i, uint64_t mask, const float *wq, qs_db_eval_figures *figs, qs_error *err) {
    tally t[64] = {{0}};
    int rc = apply(s, i, wq, err);
    if (!rc) rc = run_domains(s, mask, start_layer(s, i), t, err);
    qs_error ignore;
    apply(s, i, NULL, &ignore);
    for (int d = 0; d < s->n_domains && !rc; d++)
        if (mask >> d & 1) figs[d] = tally_figures(&s->d[d], &t[d]);
    free_tallies(t, s->n_domains);
    return rc;
}

int qs_sens_measure_tensor_stored(qs_sens *s, int i, uint64_t mask, const qs_tensor *st, qs_db_eval_figures *figs, qs_error *err) {
    tally t[64] = {{0}};
    int rc = apply_stored(s, i, st, err);
    if (!rc) rc = run_domains(s, mask, start_layer(s, i), t, err);
    qs_error ignore;
    apply_stored(s, i, s->p->tensors[i].t, &ignore); /* the model's own weights back */
    for (int d = 0; d < s->n_domains && !rc; d++)
        if (mask >> d & 1) figs[d] = tally_figures(&s->d[d], &t[d]);
    free_tallies(t, s->n_domains);
    return rc;
}

int qs_sens_measure_as_set(qs_sens *s, int start, uint64_t mask, qs_db_eval_figures *figs, qs_error *err) {
    tally t[64] = {{0}};
    int rc = run_domains(s, mask, start, t, err);
    for (int d = 0; d < s->n_domains && !rc; d++)
        if (mask >> d & 1) figs[d] = tally_figures(&s->d[d], &t[d]);
    free_tallies(t, s->n_domains);
    return rc;
}

int qs_sens_put_tensor(qs_sens *s, int i, int f, int di, const qs_db_eval_figures *fig, qs_error *err) {
    qs_profile *p = s->p;
    return qs_db_put_sensitivity(p->db, p->run_id, p->tensors[i].db_id, p->format_ids_sens[f], s->d[di].src->name, fig, err);
}

int qs_sens_rounds_rows(const qs_format *f, int64_t cols) {
    return !qs_format_has_blocks(f, cols) && qs_format_rounds_by_rows(f);
}

/* the profile tensor the engine's transform was called for */
static int rounded_tensor(qs_sens *s, const qs_tensor *t) {
    const qs_profile *p = s->p;
    if (s->rr.last < p->n_tensors && p->tensors[s->rr.last].t == t && s->rr.by_tensor[s->rr.last].r) return s->rr.last;
    for (int i = 0; i < p->n_tensors; i++)
        if (p->tensors[i].t == t && s->rr.by_tensor[i].r) return s->rr.last = i;
    return -1;
}

/* the engine's transform: a block of rows rounded in place to the tensor's format */
static void round_rows(void *user, const qs_tensor *t, int64_t row0, int64_t n, float *w) {
    qs_sens *s = user;
    const int i = rounded_tensor(s, t);
    qs_error err = {0};
    if (i < 0) snprintf(err.msg, sizeof err.msg, "no rounding is open for it");
    if (i < 0 || qs_profile_rows_round_in_place(&s->rr.by_tensor[i], w, row0, n, t->ne[0], &err)) {
        s->rr.failed = 1;
        snprintf(s->rr.why, sizeof s->rr.why, "%.100s: %.140s", t->name, err.msg);
    }
}

static int rounding_failed(qs_sens *s, qs_error *err) {
    if (!s->rr.failed) return 0;
    s->rr.failed = 0;
    return qs_errorf(err, QS_ERR_INTERNAL, "rounding rows as they are read: %s", s->rr.why);
}

int qs_sens_rounding_failed(qs_sens *s, qs_error *err) { return rounding_failed(s, err); }

int qs_sens_round_rows_as_read(qs_sens *s, int i, const qs_format *f, qs_error *err) {
    const qs_tensor *t = s->p->tensors[i].t;
    if (!s->rr.by_tensor && !(s->rr.by_tensor = calloc((size_t)s->p->n_tensors, sizeof(qs_prof_rows))))
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    qs_prof_rows *pr = &s->rr.by_tensor[i];
    if (!f) return qs_engine_transform_weights(s->e, t, NULL, NULL, err); /* paused: the rounding stays open */
    if (pr->r && pr->f != f) qs_profile_rows_close(pr);
    int rc = pr->r ? 0 : qs_profile_rows_open(s->p, i, f, pr, err); /* its scans read the tensor once */
    if (!rc) rc = qs_engine_transform_weights(s->e, t, round_rows, s, err);
    if (rc) qs_profile_rows_close(pr);
    return rc;
}

void qs_sens_round_rows_close(qs_sens *s, int i) {
    qs_error ignore;
    if (!s->rr.by_tensor || !s->rr.by_tensor[i].r) return;
    qs_engine_transform_weights(s->e, s->p->tensors[i].t, NULL, NULL, &ignore);
    qs_profile_rows_close(&s->rr.by_tensor[i]);
}

/* Tensor i quantized to fmt and put in the engine: rounded as the engine reads its rows where fmt
 * allows (qs_sens_rounds_rows), else as its GGUF blocks where fmt has them (*blocks set), else in
 * f32 (*wq set). */
static int apply_candidate(qs_sens *s, int i, const qs_format *fmt, qs_tensor *st, void **blocks, float **wq,
                           qs_error *err) {
    if (qs_sens_rounds_rows(fmt, s->p->tensors[i].cols)) /* no copy: rounded as read */
        return qs_sens_round_rows_as_read(s, i, fmt, err);
    int rc = qs_profile_candidate_blocks(s->p, i, fmt, st, blocks, err);
    if (!rc) return apply_stored(s, i, st, err);
    if (rc == 1 && !(rc = qs_profile_candidate(s->p, i, fmt, NULL, wq, err))) rc = apply(s, i, *wq, err);
    return rc;
}

/* Undoes apply_candidate and frees the candidate. */
static void restore_candidate(qs_sens *s, int i, void **blocks, float **wq) {
    qs_error ignore;
    qs_sens_round_rows_close(s, i);
    if (*blocks)
        apply_stored(s, i, s->p->tensors[i].t, &ignore);
    else if (*wq)
        apply(s, i, NULL, &ignore);
    free(*blocks);
    free(*wq);
    *blocks = NULL;
    *wq = NULL;
}

/* The whole model in format fmt, layer-major: every chunk of the masked domains passes layer L,
 * with layer L's tensors quantized (in their GGUF blocks where fmt has them, else in f32), before
 * layer L + 1, so one layer's candidates are alive at a time instead of the whole model (an 8B
 * model: 4.5 GB of q4_k blocks, 30 GiB in f32). The chunks' residual streams wait between layers
 * (in the scratch file when the profile spills its caches). The numbers are those of running
 * each chunk through the whole quantized model. lst, lblocks, lwq: one slot per tensor for the candidates. */
static int run_whole_layer_major(qs_sens *s, const qs_format *fmt, const char *quantized, qs_tensor *lst,
                                 void **lblocks, float **lwq, uint64_t mask, tally *t, qs_error *err) {
    qs_profile *p = s->p;
    const int L = p->m->arch.n_layers;
    const size_t per = (size_t)s->ctx * (size_t)p->m->arch.dim;
    int n = 0, emb = -1, head = -1;
    for (int d = 0; d < s->n_domains; d++) n += mask >> d & 1 ? s->d[d].n_chunks : 0;
    for (int i = 0; i < p->n_tensors; i++) {
        if (!quantized[i]) continue;
        if (!strcmp(p->tensors[i].kind, "token_embd"))
            emb = i;
        else if (p->tensors[i].linear == QS_LIN_OUTPUT)
            head = i;
    }
    const size_t bytes = sizeof(float) * per * (size_t)(n ? n : 1);
    float *x = p->spill_caches ? qs_scratch_map(p->db_path, bytes, err) : malloc(bytes);
    if (!x)
        return p->spill_caches ? err->code : qs_errorf(err, QS_ERR_INTERNAL, "out of memory for %d chunks' streams", n);
    int rc = alloc_tallies(s, mask, t, err);
    qs_tensor st = {0};
    void *blocks = NULL;
    float *wq = NULL;
    /* the embedding rows; a tied embedding is the head too, quantized again at the end */
    if (!rc && emb >= 0) rc = apply_candidate(s, emb, fmt, &st, &blocks, &wq, err);
    for (int d = 0, k = 0; d < s->n_domains && !rc; d++)
        for (int c = 0; mask >> d & 1 && c < s->d[d].n_chunks && !rc; c++, k++)
            rc = qs_engine_embed(s->e, s->d[d].tokens + (size_t)c * s->ctx, s->ctx, x + (size_t)k * per, err);
    if (emb >= 0) restore_candidate(s, emb, &blocks, &wq);
    for (int l = 0; l < L && !rc; l++) {
        for (int i = 0; i < p->n_tensors && !rc; i++)
            if (quantized[i] && i != emb && i != head && p->tensors[i].layer == l)
                rc = apply_candidate(s, i, fmt, &lst[i], &lblocks[i], &lwq[i], err);
        /* the chunks in batches: the layer's weights expanded (and rounded) once a batch */
        for (int k = 0, nb = batch_chunks(s); k < n && !rc; k += nb)
            rc = qs_engine_run_layer_batch(s->e, l, x + (size_t)k * per, n - k < nb ? n - k : nb, s->ctx, err);
        for (int i = 0; i < p->n_tensors; i++)
            if (i != emb && i != head) restore_candidate(s, i, &lblocks[i], &lwq[i]);
    }
    const int tail = head >= 0 ? head : emb >= 0 && p->tensors[emb].linear == QS_LIN_OUTPUT ? emb : -1;
    if (!rc && tail >= 0) rc = apply_candidate(s, tail, fmt, &st, &blocks, &wq, err);
    for (int d = 0, k = 0; d < s->n_domains && !rc; d++)
        for (int c = 0; mask >> d & 1 && c < s->d[d].n_chunks && !rc; c++, k++) {
            rc = qs_engine_forward_from(s->e, L, x + (size_t)k * per, s->ctx, s->first, s->logits, err);
            if (!rc) score_chunk(s, &s->d[d], c, s->logits, &t[d]);
        }
    if (tail >= 0) restore_candidate(s, tail, &blocks, &wq);
    if (p->spill_caches)
        qs_scratch_unmap(x, bytes);
    else
        free(x);
    return rc ? rc : rounding_failed(s, err);
}

int qs_sens_measure_tensor_rows(qs_sens *s, int i, uint64_t mask, const qs_format *f, qs_db_eval_figures *figs,
                                qs_error *err) {
    tally t[64] = {{0}};
    qs_tensor st;
    void *blocks = NULL;
    float *wq = NULL;
    int rc = qs_sens_rounds_rows(f, s->p->tensors[i].cols)
                 ? apply_candidate(s, i, f, &st, &blocks, &wq, err)
                 : qs_errorf(err, QS_ERR_USAGE, "%s is not rounded row by row", f->name);
    if (!rc) rc = run_domains(s, mask, start_layer(s, i), t, err);
    restore_candidate(s, i, &blocks, &wq);
    if (!rc) rc = rounding_failed(s, err);
    for (int d = 0; d < s->n_domains && !rc; d++)
        if (mask >> d & 1) figs[d] = tally_figures(&s->d[d], &t[d]);
    free_tallies(t, s->n_domains);
    return rc;
}

int qs_sens_measure_whole(qs_sens *s, int f, uint64_t mask, qs_db_eval_figures *figs, int *n_quantized, double *bpw,
                          qs_error *err) {
    qs_profile *p = s->p;
    const qs_format *fmt = p->formats_sens[f];
    char *quantized = calloc((size_t)p->n_tensors, 1);
    void **blocks = calloc((size_t)p->n_tensors, sizeof(void *));
    float **wq = calloc((size_t)p->n_tensors, sizeof(float *));
    qs_tensor *st = calloc((size_t)p->n_tensors, sizeof(qs_tensor)); /* borrowed by the engine while it runs */
    int rc = quantized && blocks && wq && st ? 0 : qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    int nq = 0;
    double bits = 0, params = 0;
    for (int i = 0; i < p->n_tensors && !rc; i++) {
        const qs_prof_tensor *pt = &p->tensors[i];
        const int matrix = pt->rows > 1 && (pt->linear >= 0 || !strcmp(pt->kind, "token_embd"));
        params += (double)(pt->rows * pt->cols);
        if (!matrix || !qs_profile_format_applies(p, i, fmt, NULL, 0)) {
            bits += 8.0 * (double)pt->t->nbytes; /* stays as stored */
            continue;
        }
        quantized[i] = 1;
        bits += qs_format_bpw(fmt, pt->rows, pt->cols) * (double)(pt->rows * pt->cols);
        nq++;
    }
    tally t[64] = {{0}};
    if (!rc) rc = run_whole_layer_major(s, fmt, quantized, st, blocks, wq, mask, t, err);
    for (int d = 0; d < s->n_domains && !rc; d++)
        if (mask >> d & 1) figs[d] = tally_figures(&s->d[d], &t[d]);
    *n_quantized = nq;
    *bpw = bits / params;
    free_tallies(t, s->n_domains);
    free(quantized);
    free(blocks);
    free(wq);
    free(st);
    return rc;
}

int qs_sens_put_whole(qs_sens *s, int f, int di, int n_quantized, double bpw, const qs_db_eval_figures *fig, qs_error *err) {
    qs_profile *p = s->p;
    return qs_db_put_whole_model(p->db, p->run_id, p->format_ids_sens[f], s->d[di].src->name, n_quantized, bpw, fig, err);
}
