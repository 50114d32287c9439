/* The profile driver (see profile.h). Jobs are named "<analyzer>/<tensor>"; the calibration
 * pass runs only if a pending job needs activations, and is deterministic, so a resumed run
 * sees exactly the statistics an uninterrupted one would. */
#include "profile.h"
#include "profile_memory.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer.h"
#include "core/qs_dtype.h"
#include "core/qs_file.h"
#include "core/qs_sha256.h"
#include "engine/engine.h"
#include "io/evalset.h"
#include "sensitivity.h"
#include "store/h5export.h"
#include "tok/vocab.h"

#define QS_SENS_DEFAULT_FORMATS "q8_0,int8-channel-sym,q6_k,q5_0,q4_k,q4_0,int4-g128-asym,q3_k,int3-g128-asym,q2_k,int2-g64-asym"

static const qs_analyzer *const ANALYZERS[] = {&qs_analyzer_weights, &qs_analyzer_activations, &qs_analyzer_qerror};
#define N_ANALYZERS 3


const qs_act_stats *qs_profile_input_stats(const qs_profile *p, int i) {
    const qs_prof_tensor *pt = &p->tensors[i];
    if (!p->acts || pt->linear < 0) return NULL;
    int layer = pt->linear == QS_LIN_OUTPUT ? p->m->arch.n_layers : pt->layer;
    return &p->acts[layer * QS_LIN_COUNT + qs_linear_input_of(pt->linear)];
}

float *qs_profile_importance(const qs_profile *p, int i) {
    const qs_act_stats *s = qs_profile_input_stats(p, i);
    const int64_t cols = p->tensors[i].cols;
    float *imp = s && s->ch_sum_sq && s->n_tokens > 0 ? malloc(sizeof(float) * (size_t)cols) : NULL;
    if (imp)
        for (int64_t c = 0; c < cols; c++) imp[c] = (float)(s->ch_sum_sq[c] / (double)s->n_tokens);
    return imp;
}

float *qs_profile_calib(const qs_profile *p, int i, qs_calib *cal) {
    const qs_act_stats *s = qs_profile_input_stats(p, i);
    cal->importance = qs_profile_importance(p, i);
    cal->gram = s && s->n_tokens > 0 ? s->gram : NULL;
    cal->lookup = p->tensors[i].linear < 0;
    return (float *)cal->importance;
}

int qs_profile_format_applies(const qs_profile *p, int i, const qs_format *f, char *why, size_t cap) {
    const qs_prof_tensor *pt = &p->tensors[i];
    if (!qs_format_applies(f, pt->rows, pt->cols, why, cap)) return 0;
    const qs_act_stats *s = qs_profile_input_stats(p, i);
    if (f->gptq && pt->linear >= 0 && !(s && s->n_tokens > 0 && s->gram)) {
        if (why) snprintf(why, cap, "GPTQ needs the Gram matrix of the inputs, and %s has no calibrated inputs", pt->t->name);
        return 0;
    }
    return 1;
}

float *qs_profile_weights(const qs_profile *p, int i) {
    const qs_prof_tensor *pt = &p->tensors[i];
    float *w = malloc(sizeof(float) * (size_t)(pt->rows * pt->cols));
    if (w) qs_tensor_dequantize_rows(pt->t, 0, pt->rows, w);
    return w;
}

/* ---- calibration: accumulate every linear input ---- */

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
        /* X^T X (n_in^2 floats: an 8B model's FFN input, 784 MiB) only where a pending job uses it */
        s->gram = p->want_gram[layer] ? calloc((size_t)n_in * (size_t)n_in, sizeof(float)) : NULL;
        float amax = 0;
        for (int64_t k = 0; k < (int64_t)n * n_in; k++) amax = fmaxf(amax, fabsf(x[k]));
        s->hist_range = amax > 0 ? 2 * amax : 1; /* fixed from the first batch; beyond it: end bins */
    }
    if (!s->ch_absmax || !s->ch_sum_sq || (p->want_gram[layer] && !s->gram)) return;
    for (int t = 0; t < n; t++) {
        const float *r = x + (size_t)t * n_in;
        for (int c = 0; c < n_in; c++) {
            float v = r[c];
            s->sum += v;
            s->sum_sq += (double)v * v;
            s->ch_sum_sq[c] += (double)v * v;
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

/* The calibration pass, layer-major: every chunk's residual stream is kept (chunks x ctx x dim
 * floats), and advancing to layer l pushes all of them through the layers before it, so the
 * statistics of layer l's inputs are complete while later layers' are not yet allocated. The
 * arithmetic and its order per statistic are the chunk-major forward pass's: same numbers. */
typedef struct {
    qs_engine *e;
    float *x;        /* (n_chunks * ctx, dim) */
    int n_chunks, ctx;
    int next;        /* the layer whose inputs are observed next; n_layers: the output head's */
} calib_cursor;

static void calib_close(calib_cursor *c) {
    qs_engine_free(c->e);
    free(c->x);
    memset(c, 0, sizeof *c);
}

static int calib_open(calib_cursor *c, qs_profile *p, const qs_profile_options *opt, const int *ids, size_t n_ids, int bos,
                      int64_t *used, qs_error *err) {
    memset(c, 0, sizeof *c);
    int rc = qs_engine_new(&c->e, p->m, opt->threads, err);
    if (rc) return rc;
    qs_engine_set_observer(c->e, observe, p);
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
        calib_close(c);
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory for %d calibration chunks of %d tokens", n_chunks, ctx);
    }
    for (int k = 0; k < n_chunks && !rc; k++) {
        memcpy(chunk, ids + (size_t)k * ctx, sizeof(int) * (size_t)ctx);
        if (bos >= 0) chunk[0] = bos;
        rc = qs_engine_embed(c->e, chunk, ctx, c->x + (size_t)k * ctx * dim, err);
    }
    free(chunk);
    *used = (int64_t)n_chunks * ctx;
    if (rc) calib_close(c);
    return rc;
}

/* observes the inputs of layers [c->next, layer] (layer n_layers: the output head's) */
static int calib_advance(calib_cursor *c, int layer, qs_error *err) {
    const size_t chunk_floats = (size_t)c->ctx * (size_t)qs_engine_n_dim(c->e);
    for (; c->next <= layer; c->next++)
        for (int k = 0; k < c->n_chunks; k++) {
            int rc = qs_engine_run_layer(c->e, c->next, c->x + (size_t)k * chunk_floats, c->ctx, err);
            if (rc) return rc;
        }
    return 0;
}

/* the layer whose inputs a job needs observed first (-1: none) */
static int job_layer(const qs_profile *p, const qs_analyzer *a, int i) {
    const qs_prof_tensor *pt = &p->tensors[i];
    if (!a->needs_activations || pt->linear < 0) return -1;
    return pt->linear == QS_LIN_OUTPUT ? p->m->arch.n_layers : pt->layer;
}

static void free_grams(qs_profile *p, int layer) {
    for (int k = 0; k < QS_LIN_COUNT; k++) {
        free(p->acts[layer * QS_LIN_COUNT + k].gram);
        p->acts[layer * QS_LIN_COUNT + k].gram = NULL;
    }
}

/* ---- set-up ---- */

/* The calibration text: a text file, or an evaluation set (a shipped name or a manifest), whose
 * domains are joined in order. */
static int calibration_text(const char *spec, char **text, size_t *n, qs_error *err) {
    size_t len = strlen(spec);
    int is_set = (len > 5 && !strcmp(spec + len - 5, ".json")) || (!strchr(spec, '/') && !qs_path_exists(spec));
    if (!is_set) return qs_read_file(spec, text, n, err);
    qs_evalset *set;
    int rc = qs_evalset_load(&set, spec, QS_DATASETS_DIR, 4096, err);
    if (rc) return rc;
    size_t total = 0;
    for (int d = 0; d < set->n_domains; d++) total += set->domains[d].n_text + 1;
    *text = malloc(total + 1);
    if (!*text) {
        qs_evalset_free(set);
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    }
    size_t k = 0;
    for (int d = 0; d < set->n_domains; d++) {
        memcpy(*text + k, set->domains[d].text, set->domains[d].n_text);
        k += set->domains[d].n_text;
        (*text)[k++] = '\n';
    }
    (*text)[k] = 0;
    *n = k;
    qs_evalset_free(set);
    return 0;
}

static void classify(const qs_model *m, const qs_tensor *t, qs_prof_tensor *pt) {
    static const char *lin[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    pt->t = t;
    pt->layer = -1;
    pt->linear = -1;
    pt->cols = t->ne[0];
    pt->rows = qs_tensor_numel(t) / t->ne[0];
    static char kinds[4096][24];
    static int n_kinds;
    char kind[24] = "";
    int layer, off = 0;
    if (sscanf(t->name, "blk.%d.%n", &layer, &off) == 1 && off > 0) {
        pt->layer = layer;
        snprintf(kind, sizeof kind, "%.*s", (int)(strcspn(t->name + off, ".")), t->name + off);
        for (int k = 0; k < 7; k++)
            if (!strcmp(kind, lin[k])) pt->linear = k;
    } else {
        snprintf(kind, sizeof kind, "%.*s", (int)strcspn(t->name, "."), t->name);
        if (!strcmp(kind, "output") || (!strcmp(kind, "token_embd") && m->arch.tied_output)) pt->linear = QS_LIN_OUTPUT;
    }
    /* interned so the pointer lives as long as the process */
    for (int k = 0; k < n_kinds; k++)
        if (!strcmp(kinds[k], kind)) { pt->kind = kinds[k]; return; }
    if (n_kinds < 4096) {
        snprintf(kinds[n_kinds], sizeof kinds[0], "%s", kind);
        pt->kind = kinds[n_kinds++];
    } else {
        pt->kind = "other";
    }
}

/* ---- the sensitivity sweep: jobs "sensitivity/<tensor>/<format>/<domain>" and
 * "whole/<format>/<domain>", one transaction each ---- */

static int is_sweep_matrix(const qs_prof_tensor *pt) {
    return pt->rows > 1 && (pt->linear >= 0 || !strcmp(pt->kind, "token_embd"));
}

static int sensitivity_sweep(qs_profile *p, const qs_profile_options *opt, const qs_evalset *set,
                             qs_profile_progress_fn progress, void *user, qs_profile_summary *sum, qs_error *err) {
    const int nd = set->n_domains, nf = p->n_formats_sens;
    char name[512];
    /* which jobs remain */
    unsigned char *pending = calloc((size_t)(p->n_tensors + 1) * (size_t)nf * (size_t)nd, 1);
    if (!pending) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    int n_pending = 0, rc = 0;
    for (int i = 0; i <= p->n_tensors && !rc; i++) {
        if (i < p->n_tensors && !is_sweep_matrix(&p->tensors[i])) continue;
        for (int f = 0; f < nf; f++)
            for (int d = 0; d < nd && !rc; d++) {
                if (i < p->n_tensors)
                    snprintf(name, sizeof name, "sensitivity/%s/%s/%s", p->tensors[i].t->name, p->formats_sens[f]->name, set->domains[d].name);
                else
                    snprintf(name, sizeof name, "whole/%s/%s", p->formats_sens[f]->name, set->domains[d].name);
                sum->sens_jobs_total++;
                int done = qs_db_job_done(p->db, p->run_id, name, err);
                if (done < 0) rc = done;
                else if (!done) {
                    pending[((size_t)i * nf + f) * nd + d] = 1;
                    n_pending++;
                }
            }
    }
    if (rc || n_pending == 0) {
        free(pending);
        return rc;
    }
    qs_sens *s;
    if (progress) progress(user, "sensitivity base", 0, 1, 0, 0);
    if ((rc = qs_sens_new(&s, p, set, opt->eval_ctx, opt->topk, err))) {
        free(pending);
        return rc;
    }
    if (!(rc = qs_db_begin(p->db, err))) {
        if (!(rc = qs_sens_put_domains(s, err))) rc = qs_db_commit(p->db, err);
        else qs_db_rollback(p->db);
    }
    long total = 0, done_cost = 0;
    for (int i = 0; i <= p->n_tensors; i++)
        for (int f = 0; f < nf; f++)
            for (int d = 0; d < nd; d++)
                if (pending[((size_t)i * nf + f) * nd + d]) total += i < p->n_tensors ? qs_sens_cost(s, i) : qs_sens_cost(s, 0) * 2;
    int job = 0;
    for (int i = 0; i <= p->n_tensors && !rc; i++)
        for (int f = 0; f < nf && !rc; f++) {
            int any = 0;
            for (int d = 0; d < nd; d++) any |= pending[((size_t)i * nf + f) * nd + d];
            if (!any) continue;
            const qs_format *fmt = p->formats_sens[f];
            float *wq = NULL, *w = NULL;
            if (i < p->n_tensors) {
                const qs_prof_tensor *pt = &p->tensors[i];
                if (qs_profile_format_applies(p, i, fmt, NULL, 0)) {
                    w = qs_profile_weights(p, i);
                    wq = malloc(sizeof(float) * (size_t)(pt->rows * pt->cols));
                    qs_calib cal;
                    float *imp = qs_profile_calib(p, i, &cal);
                    if (!w || !wq) rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
                    else rc = qs_format_fake_quantize_calib(fmt, w, wq, pt->rows, pt->cols, &cal, err);
                    free(imp);
                }
            }
            for (int d = 0; d < nd && !rc; d++) {
                if (!pending[((size_t)i * nf + f) * nd + d]) continue;
                if (progress) progress(user, "sensitivity", done_cost, total, job, n_pending);
                if (i < p->n_tensors)
                    snprintf(name, sizeof name, "sensitivity/%s/%s/%s", p->tensors[i].t->name, fmt->name, set->domains[d].name);
                else
                    snprintf(name, sizeof name, "whole/%s/%s", fmt->name, set->domains[d].name);
                if ((rc = qs_db_begin(p->db, err))) break;
                rc = i < p->n_tensors ? qs_sens_run_tensor(s, i, f, d, wq, err) : qs_sens_run_whole(s, f, d, err);
                if (!rc) rc = qs_db_mark_job(p->db, p->run_id, name, err);
                if (rc) {
                    qs_db_rollback(p->db);
                    qs_error_prefix(err, "job %s", name);
                    break;
                }
                if ((rc = qs_db_commit(p->db, err))) break;
                done_cost += i < p->n_tensors ? qs_sens_cost(s, i) : qs_sens_cost(s, 0) * 2;
                job++;
                sum->sens_jobs_run++;
            }
            free(w);
            free(wq);
        }
    if (!rc && progress) progress(user, "sensitivity", total, total, n_pending, n_pending);
    qs_sens_free(s);
    free(pending);
    return rc;
}

int qs_profile_run(const qs_profile_options *opt, qs_profile_progress_fn progress, void *user, qs_profile_summary *sum,
                   qs_error *err) {
    memset(sum, 0, sizeof *sum);
    qs_profile p = {0};
    qs_evalset *evalset = NULL;
    qs_model *m = NULL;
    qs_vocab *v = NULL;
    qs_db *db = NULL;
    char *text = NULL;
    int *ids = NULL;
    size_t n_text = 0, n_ids = 0;
    int rc;
    qs_model_options mo = {opt->tokenizer_path};
    if ((rc = qs_model_open(&m, opt->model_path, &mo, err))) return rc;
    p.m = m;
    p.threads = opt->threads;
    qs_profile_options o2 = *opt; /* default ctx: 512, capped by the training context */
    if (o2.ctx <= 0) o2.ctx = m->arch.ctx_train > 0 && m->arch.ctx_train < 512 ? m->arch.ctx_train : 512;
    if (o2.calib_tokens <= 0) o2.calib_tokens = 8192;
    if (!o2.eval) o2.eval = "debian";
    if (!o2.sens_formats) o2.sens_formats = QS_SENS_DEFAULT_FORMATS;
    if (o2.eval_ctx <= 0) o2.eval_ctx = o2.ctx;
    if (o2.topk <= 0) o2.topk = 64;
    opt = &o2;
    if (opt->sensitivity) {
        if ((rc = qs_format_parse_list(opt->sens_formats, &p.formats_sens, &p.n_formats_sens, err))) goto out;
        if ((rc = qs_evalset_load(&evalset, opt->eval, QS_DATASETS_DIR, 4096, err))) goto out;
    }
    if ((rc = qs_format_parse_list(opt->formats, &p.formats, &p.n_formats, err))) goto out;
    /* a run that cannot fit is refused now, with the figures, not killed hours later */
    int all_grams = 0;
    for (int k2 = 0; k2 < p.n_formats; k2++) all_grams |= p.formats[k2]->gptq;
    for (int k2 = 0; opt->sensitivity && k2 < p.n_formats_sens; k2++) all_grams |= p.formats_sens[k2]->gptq;
    if ((rc = qs_profile_check_memory(m, opt, evalset, all_grams, err))) goto out;
    if (progress) {
        qs_profile_memory est;
        qs_profile_estimate_memory(m, opt, evalset, all_grams, &est);
        const double mib = 1024.0 * 1024.0;
        progress(user, "memory", (long)(est.own / mib), (long)(qs_profile_memory_budget(opt) / mib), (int)(est.file / mib), 0);
    }
    if ((rc = calibration_text(opt->data_path, &text, &n_text, err))) goto out;
    if (n_text == 0) {
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: the calibration text is empty", opt->data_path);
        goto out;
    }
    char model_fp[65], text_fp[65];
    if (progress) progress(user, "fingerprint", 0, 1, 0, 0);
    if ((rc = qs_model_fingerprint(m, model_fp, err))) goto out;
    qs_sha256_hex(text, n_text, text_fp);
    /* NaN/Inf weights would poison every statistic: refuse before the database is touched */
    if ((rc = qs_model_check_finite(m, err))) goto out;
    if ((rc = qs_db_open(&db, opt->db_path, QS_DB_CREATE, err))) goto out;
    p.db = db;
    int64_t params = 0;
    for (int i = 0; i < m->n_tensors; i++) params += qs_tensor_numel(&m->tensors[i]);
    qs_db_model dm = {model_fp, opt->model_path, m->format, m->arch.arch, params, m->arch.n_layers, m->arch.dim,
                      m->arch.hidden_dim, m->arch.n_heads, m->arch.n_kv_heads, m->arch.n_vocab};
    int64_t model_id;
    if ((rc = qs_db_begin(db, err))) goto out;
    if ((rc = qs_db_put_model(db, &dm, &model_id, err))) goto rollback;
    p.format_ids = calloc((size_t)p.n_formats, sizeof(int64_t));
    for (int k = 0; k < p.n_formats && !rc; k++) {
        const qs_format *f = p.formats[k];
        rc = qs_db_put_format(db, f->name, qs_family_name(f->family), f->bits, qs_granularity_name(f), f->group, f->symmetric, f->clip_search,
                              &p.format_ids[k], err);
    }
    if (opt->sensitivity) {
        p.format_ids_sens = calloc((size_t)p.n_formats_sens, sizeof(int64_t));
        for (int k2 = 0; k2 < p.n_formats_sens && !rc; k2++) {
            const qs_format *f = p.formats_sens[k2];
            rc = qs_db_put_format(db, f->name, qs_family_name(f->family), f->bits, qs_granularity_name(f), f->group,
                                  f->symmetric, f->clip_search, &p.format_ids_sens[k2], err);
        }
    }
    for (int k2 = 0; k2 < p.n_formats; k2++) p.store_gram |= p.formats[k2]->gptq;
    for (int k2 = 0; opt->sensitivity && k2 < p.n_formats_sens; k2++) p.store_gram |= p.formats_sens[k2]->gptq;
    p.tensors = calloc((size_t)m->n_tensors, sizeof(qs_prof_tensor));
    p.n_tensors = m->n_tensors;
    for (int i = 0; i < m->n_tensors && !rc; i++) {
        classify(m, &m->tensors[i], &p.tensors[i]);
        rc = qs_db_put_tensor(db, model_id, m->tensors[i].name, p.tensors[i].layer, p.tensors[i].kind, p.tensors[i].rows,
                              p.tensors[i].cols, qs_dtype_name(m->tensors[i].type), &p.tensors[i].db_id, err);
    }
    if (rc) goto rollback;
    /* the run's identity: everything that changes its numbers */
    char settings[8192], key[65];
    int k = snprintf(settings, sizeof settings,
                     "{\"model_sha256\": \"%s\", \"data\": \"%s\", \"data_sha256\": \"%s\", \"ctx\": %d, "
                     "\"calib_tokens\": %d, \"qsense_version\": \"%s\", \"formats\": \"",
                     model_fp, opt->data_path, text_fp, opt->ctx, opt->calib_tokens, QS_VERSION);
    for (int f = 0; f < p.n_formats; f++) k += snprintf(settings + k, sizeof settings - (size_t)k, f ? ",%s" : "%s", p.formats[f]->name);
    k += snprintf(settings + k, sizeof settings - (size_t)k, "\"");
    if (opt->sensitivity) {
        k += snprintf(settings + k, sizeof settings - (size_t)k, ", \"sensitivity\": {\"eval\": \"%s\", \"ctx\": %d, \"topk\": %d, \"domains\": [",
                      evalset->name, opt->eval_ctx, opt->topk);
        for (int d = 0; d < evalset->n_domains; d++)
            k += snprintf(settings + k, sizeof settings - (size_t)k, "%s{\"name\": \"%s\", \"tokens\": %lld, \"sha256\": \"%s\"}",
                          d ? ", " : "", evalset->domains[d].name, (long long)evalset->domains[d].tokens, evalset->domains[d].sha256);
        k += snprintf(settings + k, sizeof settings - (size_t)k, "], \"formats\": \"");
        for (int f = 0; f < p.n_formats_sens; f++)
            k += snprintf(settings + k, sizeof settings - (size_t)k, f ? ",%s" : "%s", p.formats_sens[f]->name);
        k += snprintf(settings + k, sizeof settings - (size_t)k, "\"}");
    }
    snprintf(settings + k, sizeof settings - (size_t)k, "}");
    char keysrc[8192];
    snprintf(keysrc, sizeof keysrc, "%s", settings);
    /* the text's path does not change the numbers; its content does */
    char *dp = strstr(keysrc, "\"data\": \"");
    if (dp) memset(dp + 9, '_', strcspn(dp + 9, "\""));
    qs_sha256_hex(keysrc, strlen(keysrc), key);
    if ((rc = qs_db_get_run(db, key, model_id, settings, &p.run_id, &sum->resumed, err))) goto rollback;
    if ((rc = qs_db_commit(db, err))) goto out;
    sum->run_id = p.run_id;
    sum->n_tensors = p.n_tensors;
    sum->n_formats = p.n_formats;

    /* pending jobs */
    int n_jobs = 0, need_acts = 0;
    const int L = m->arch.n_layers;
    char (*jobs)[160] = malloc(sizeof(*jobs) * (size_t)(p.n_tensors * N_ANALYZERS));
    int *job_a = malloc(sizeof(int) * (size_t)(p.n_tensors * N_ANALYZERS)), *job_t = malloc(sizeof(int) * (size_t)(p.n_tensors * N_ANALYZERS));
    for (int a = 0; a < N_ANALYZERS; a++)
        for (int i = 0; i < p.n_tensors; i++) {
            if (!ANALYZERS[a]->applies(&p, i)) continue;
            sum->jobs_total++;
            char name[160];
            snprintf(name, sizeof name, "%s/%s", ANALYZERS[a]->name, m->tensors[i].name);
            int done = qs_db_job_done(db, p.run_id, name, err);
            if (done < 0) { rc = done; break; }
            if (done) { sum->jobs_done_before++; continue; }
            snprintf(jobs[n_jobs], sizeof jobs[0], "%s", name);
            job_a[n_jobs] = a;
            job_t[n_jobs++] = i;
            need_acts |= ANALYZERS[a]->needs_activations;
        }
    /* jobs in the order of the layer whose inputs they need (none first), so the calibration
     * advances a layer at a time and a layer's X^T X is freed after its jobs; GPTQ formats keep
     * every layer's (the sweep and the stored arrays need them) */
    int *order = malloc(sizeof(int) * (size_t)(n_jobs + 1)), *jl = malloc(sizeof(int) * (size_t)(n_jobs + 1)), n_ord = 0;
    p.want_gram = calloc((size_t)L + 1, 1);
    if (!order || !jl || !p.want_gram) { rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory"); goto jobs_out; }
    for (int l = -1; l <= L; l++)
        for (int j = 0; j < n_jobs; j++)
            if (job_layer(&p, ANALYZERS[job_a[j]], job_t[j]) == l) jl[n_ord] = l, order[n_ord++] = j;
    for (int k = 0; k < n_jobs; k++)
        if (jl[k] >= 0) p.want_gram[jl[k]] = 1;
    if (p.store_gram) memset(p.want_gram, 1, (size_t)L + 1);
    /* weighted-rounding and GPTQ formats in the sweep need the inputs' statistics even when every
     * analyzer job is done (a resumed run): the calibration is deterministic, so recompute it */
    int sweep_needs_acts = 0;
    for (int f = 0; opt->sensitivity && f < p.n_formats_sens; f++) sweep_needs_acts |= qs_format_needs_calib(p.formats_sens[f]);
    need_acts |= sweep_needs_acts;
    calib_cursor cur = {0};
    if (!rc && need_acts) {
        if ((rc = qs_vocab_for_model(&v, m, err)) || (rc = qs_tokenize(v, text, n_text, 1, &ids, &n_ids, err))) goto jobs_out;
        if (n_ids < QS_PROFILE_MIN_CALIB_TOKENS) {
            rc = qs_errorf(err, QS_ERR_INPUT,
                           "%s: the calibration text gives only %zu tokens; activation statistics need at least %d (give a "
                           "longer --data text)", opt->data_path, n_ids, QS_PROFILE_MIN_CALIB_TOKENS);
            goto jobs_out;
        }
        p.acts = calloc((size_t)(L + 1) * QS_LIN_COUNT, sizeof(qs_act_stats));
        if (!p.acts) { rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory"); goto jobs_out; }
        if ((rc = calib_open(&cur, &p, opt, ids, n_ids, v->add_bos ? v->bos : -1, &sum->calib_tokens, err))) goto jobs_out;
    }
    /* work estimate per job, for an honest ETA: values touched, times the formats for qerror;
     * advancing the calibration one layer: its tokens times the layer's weights */
    long *cost = malloc(sizeof(long) * (size_t)(n_jobs + 1)), total_cost = 0, done_cost = 0, layer_cost = 0;
    for (int j = 0; j < n_jobs; j++) {
        const qs_prof_tensor *pt = &p.tensors[job_t[j]];
        long c = ANALYZERS[job_a[j]] == &qs_analyzer_qerror ? (long)(pt->rows * pt->cols) * (p.n_formats + 1) * 4
               : ANALYZERS[job_a[j]] == &qs_analyzer_activations ? (long)pt->cols : (long)(pt->rows * pt->cols);
        cost[j] = c > 0 ? c : 1;
        total_cost += cost[j];
    }
    if (cur.e) {
        const qs_arch *ar = &m->arch;
        double per_layer = (double)ar->dim * ((double)ar->n_heads * ar->head_dim * 2 + (double)ar->n_kv_heads * ar->head_dim * 2 +
                                              3.0 * ar->hidden_dim);
        layer_cost = (long)(per_layer * (double)sum->calib_tokens / 64);
        total_cost += layer_cost * (L + 1);
    }
    for (int k = 0; k < n_ord && !rc; k++) {
        const int j = order[k];
        if (progress) progress(user, "jobs", done_cost, total_cost, k, n_jobs);
        if (cur.e && jl[k] >= cur.next) {
            done_cost += layer_cost * (jl[k] + 1 - cur.next);
            if ((rc = calib_advance(&cur, jl[k], err))) break;
        }
        done_cost += cost[j];
        if ((rc = qs_db_begin(db, err))) break;
        rc = ANALYZERS[job_a[j]]->run(&p, job_t[j], err);
        if (!rc) rc = qs_db_mark_job(db, p.run_id, jobs[j], err);
        if (rc) {
            qs_db_rollback(db);
            qs_error_prefix(err, "job %s", jobs[j]);
            break;
        }
        if ((rc = qs_db_commit(db, err))) break;
        sum->jobs_run++;
        if (jl[k] >= 0 && !p.store_gram && (k + 1 == n_ord || jl[k + 1] != jl[k])) free_grams(&p, jl[k]);
    }
    /* the sweep rounds with every layer's statistics */
    if (!rc && cur.e && sweep_needs_acts) rc = calib_advance(&cur, L, err);
    calib_close(&cur);
    if (!rc && progress) progress(user, "jobs", total_cost > 0 ? total_cost : 1, total_cost > 0 ? total_cost : 1, n_jobs, n_jobs);
    free(cost);
    if (!rc && opt->sensitivity) rc = sensitivity_sweep(&p, opt, evalset, progress, user, sum, err);
    if (!rc) {
        snprintf(sum->hdf5_path, sizeof sum->hdf5_path, "%s.run%lld.h5", opt->db_path, (long long)p.run_id);
        int64_t nd;
        if (!(rc = qs_h5_export_run(db, p.run_id, sum->hdf5_path, &nd, err))) rc = qs_db_finish_run(db, p.run_id, sum->hdf5_path, err);
    }
jobs_out:
    free(jobs);
    free(job_a);
    free(job_t);
    free(order);
    free(jl);
    goto out;
rollback:
    qs_db_rollback(db);
out:
    if (p.acts) {
        for (int i = 0; i < (m->arch.n_layers + 1) * QS_LIN_COUNT; i++) {
            free(p.acts[i].ch_absmax);
            free(p.acts[i].ch_sum_sq);
            free(p.acts[i].gram);
        }
        free(p.acts);
    }
    free(p.want_gram);
    free(p.tensors);
    free(p.formats);
    free(p.format_ids);
    free(p.formats_sens);
    free(p.format_ids_sens);
    qs_evalset_free(evalset);
    free(ids);
    free(text);
    qs_vocab_free(v);
    qs_db_close(db);
    qs_model_close(m);
    return rc;
}
