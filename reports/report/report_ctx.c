/* Loading a run for the report (see report_ctx.h). */
#include "reports/report/report_ctx.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"
#include "quant/format.h"
#include "store/checks.h"
#include "store/measures.h"
#include "store/plans.h"
#include "store/runs.h"

static void read_settings(rp_ctx *c, const char *json) {
    cJSON *j = cJSON_Parse(json ? json : "");
    if (!j) return;
    cJSON *v;
    if (cJSON_IsString(v = cJSON_GetObjectItem(j, "data"))) snprintf(c->calib_data, sizeof c->calib_data, "%s", v->valuestring);
    if (cJSON_IsString(v = cJSON_GetObjectItem(j, "qsense_version"))) snprintf(c->version, sizeof c->version, "%s", v->valuestring);
    if (cJSON_IsNumber(v = cJSON_GetObjectItem(j, "ctx"))) c->ctx = v->valueint;
    if (cJSON_IsNumber(v = cJSON_GetObjectItem(j, "calib_tokens"))) c->calib_tokens = v->valueint;
    cJSON *s = cJSON_GetObjectItem(j, "sensitivity");
    if (cJSON_IsObject(s)) {
        if (cJSON_IsString(v = cJSON_GetObjectItem(s, "eval"))) snprintf(c->eval_set, sizeof c->eval_set, "%s", v->valuestring);
        if (cJSON_IsNumber(v = cJSON_GetObjectItem(s, "ctx"))) c->eval_ctx = v->valueint;
    }
    cJSON_Delete(j);
}

/* the newest finished run, else the newest; or the one asked for */
static int pick_run(rp_ctx *c, int64_t want, qs_error *err) {
    qs_db_run r;
    int found = qs_db_find_run(c->db, want, QS_DB_RUN_NEWEST_FINISHED, &r, err);
    if (found < 0) return found;
    if (!found) {
        if (want) return qs_errorf(err, QS_ERR_INPUT, "%s: no run with id %lld (see: sqlite3 %s 'SELECT id, started FROM runs')",
                                   c->db_path, (long long)want, c->db_path);
        return qs_errorf(err, QS_ERR_INPUT, "%s: the database holds no profile run yet; run qsense profile MODEL --db %s first",
                         c->db_path, c->db_path);
    }
    c->run_id = r.id;
    c->model_id = r.model_id;
    read_settings(c, r.settings);
    snprintf(c->status, sizeof c->status, "%s", r.status);
    snprintf(c->started, sizeof c->started, "%s", r.started);
    snprintf(c->finished, sizeof c->finished, "%s", r.finished);
    snprintf(c->model_path, sizeof c->model_path, "%s", r.model_path);
    snprintf(c->fingerprint, sizeof c->fingerprint, "%s", r.fingerprint);
    snprintf(c->model_format, sizeof c->model_format, "%s", r.model_format);
    snprintf(c->arch, sizeof c->arch, "%s", r.arch);
    c->n_params = r.n_params;
    c->n_layers = r.n_layers;
    c->dim = r.dim;
    c->hidden_dim = r.hidden_dim;
    c->n_heads = r.n_heads;
    c->n_kv_heads = r.n_kv_heads;
    c->n_vocab = r.n_vocab;
    qs_db_run_free(&r);
    return 0;
}

static int load_tensors(rp_ctx *c, qs_error *err) {
    qs_db_tensor *t;
    int n, rc = qs_db_tensors(c->db, c->model_id, QS_DB_BY_LAYER, &t, &n, err);
    if (rc) return rc;
    c->t = calloc((size_t)n + 1, sizeof(rp_tensor));
    if (!c->t) {
        free(t);
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        rp_tensor *x = &c->t[i];
        x->id = t[i].id;
        snprintf(x->name, sizeof x->name, "%s", t[i].name);
        snprintf(x->kind, sizeof x->kind, "%s", t[i].kind);
        snprintf(x->stored, sizeof x->stored, "%s", t[i].stored);
        x->layer = t[i].layer;
        x->rows = t[i].rows;
        x->cols = t[i].cols;
        x->kl = x->kl_se = x->out_err = x->sqnr = NAN;
    }
    c->n_tensors = n;
    free(t);
    return 0;
}

static void load_domains(rp_ctx *c) {
    qs_db_domain d[RP_MAX_DOMAINS];
    c->n_domains = qs_db_domains(c->db, c->run_id, d, RP_MAX_DOMAINS);
    for (int i = 0; i < c->n_domains; i++) {
        snprintf(c->domains[i], sizeof c->domains[0], "%.63s", d[i].name);
        c->base_ppl[i] = d[i].base_ppl;
        c->n_scored[i] = d[i].n_scored;
    }
}

/* The format the pictures focus on: the user's, else a 4-bit one people ship, measured by the
 * sweep if there was one. */
static int choose_format(rp_ctx *c, const char *want, qs_error *err) {
    const char *table = c->has_sensitivity ? "sensitivity" : "qerror";
    char names[256][32];
    int n_names = qs_db_formats_measured(c->db, c->run_id, c->has_sensitivity ? QS_DB_SENSITIVITY : QS_DB_QERROR, 1, names, 256);
    static const char *prefer[] = {"q4_k", "q4_0", "int4-g128-asym", "int4-g128-sym", "q5_0", "q8_0"};
    int best_rank = 99, found_want = 0;
    double best_dist = 1e9;
    char measured[512] = "";
    for (int i = 0; i < n_names; i++) {
        const char *name = names[i];
        if (strlen(measured) + strlen(name) + 3 < sizeof measured) {
            if (*measured) strcat(measured, ", ");
            strcat(measured, name);
        }
        if (want) {
            if (!strcmp(want, name)) found_want = 1;
            continue;
        }
        int rank = 98;
        for (int k = 0; k < (int)(sizeof prefer / sizeof *prefer); k++)
            if (!strcmp(prefer[k], name)) rank = k;
        const qs_format *f = qs_format_find(name, NULL);
        double dist = f ? fabs((double)f->bits - 4.5) : 1e8;
        if (rank < best_rank || (rank == best_rank && dist < best_dist)) {
            best_rank = rank;
            best_dist = dist;
            snprintf(c->format, sizeof c->format, "%s", name);
        }
    }
    if (want && !found_want)
        return qs_errorf(err, QS_ERR_USAGE, "--format %s: run %lld has no %s rows for it (measured: %s)", want, (long long)c->run_id,
                         table, *measured ? measured : "none");
    if (want) snprintf(c->format, sizeof c->format, "%s", want);
    return 0;
}

static void load_costs(rp_ctx *c) {
    double bits = 0, params = 0;
    for (int i = 0; i < c->n_tensors; i++) {
        rp_tensor *t = &c->t[i];
        qs_db_cost k;
        qs_db_cost_of(c->db, c->run_id, t->id, c->format, &k);
        t->kl = k.kl;
        t->kl_se = k.kl_se;
        if (k.has_qerror) {
            t->out_err = k.out_err;
            t->sqnr = k.sqnr;
            bits += k.bpw * (double)(t->rows * t->cols);
            params += (double)(t->rows * t->cols);
        }
    }
    c->format_bpw = params > 0 ? bits / params : NAN;
    if (!(params > 0)) {
        const qs_format *f = qs_format_find(c->format, NULL);
        c->format_bpw = f ? (double)f->bits : NAN;
    }
}

int rp_ctx_open(rp_ctx *c, const qs_report_options *o, qs_error *err) {
    memset(c, 0, sizeof *c);
    c->db_path = o->db_path;
    int rc = qs_db_open(&c->db, o->db_path, QS_DB_READ, err);
    if (rc) return rc;
    if ((rc = pick_run(c, o->run_id, err)) || (rc = load_tensors(c, err))) {
        rp_ctx_close(c);
        return rc;
    }
    load_domains(c);
    qs_db_run_contents k;
    qs_db_run_contents_of(c->db, c->run_id, &k);
    c->has_sensitivity = k.has_sensitivity;
    c->has_whole = k.has_whole_model;
    c->has_activations = k.has_activations;
    c->n_qformats = k.n_qerror_formats;
    c->n_sformats = k.n_sensitivity_formats;
    c->plan_id = k.newest_plan;
    qs_db_estimates_of(c->db, c->run_id, &c->est);
    if (!c->n_qformats && !c->n_sformats) {
        snprintf(c->format, sizeof c->format, "%s", o->format ? o->format : "");
    } else if ((rc = choose_format(c, o->format, err))) {
        rp_ctx_close(c);
        return rc;
    }
    load_costs(c);
    return 0;
}

void rp_ctx_close(rp_ctx *c) {
    free(c->t);
    qs_db_close(c->db);
    c->t = NULL;
    c->db = NULL;
}

double rp_cost(const rp_ctx *c, const rp_tensor *t) { return c->has_sensitivity ? t->kl : t->out_err; }
const char *rp_cost_name(const rp_ctx *c) { return c->has_sensitivity ? "KL" : "output error"; }

static const rp_ctx *sort_ctx;
static int by_cost_desc(const void *a, const void *b) {
    double x = rp_cost(sort_ctx, &sort_ctx->t[*(const int *)a]), y = rp_cost(sort_ctx, &sort_ctx->t[*(const int *)b]);
    return (x < y) - (x > y);
}

int rp_ranked(const rp_ctx *c, int *idx) {
    int n = 0;
    for (int i = 0; i < c->n_tensors; i++)
        if (c->t[i].rows > 1 && !isnan(rp_cost(c, &c->t[i]))) idx[n++] = i;
    sort_ctx = c;
    qsort(idx, (size_t)n, sizeof *idx, by_cost_desc);
    return n;
}

int rp_plan_load(const rp_ctx *c, rp_plan *p) {
    memset(p, 0, sizeof *p);
    qs_db_plan pl;
    if (!c->plan_id || !qs_db_get_plan(c->db, c->plan_id, &pl)) return 0;
    p->id = pl.id;
    snprintf(p->path, sizeof p->path, "%s", pl.path);
    snprintf(p->created, sizeof p->created, "%s", pl.created);
    snprintf(p->target, sizeof p->target, "%s", pl.target);
    snprintf(p->weights, sizeof p->weights, "%s", pl.domain_weights);
    p->budget_bytes = pl.budget_bytes;
    p->tensor_bytes = pl.tensor_bytes;
    p->bpw = pl.bpw;
    p->predicted = pl.predicted_kl;
    /* format counts from the plan itself */
    cJSON *j = cJSON_Parse(pl.plan_json ? pl.plan_json : "");
    qs_db_plan_free(&pl);
    char names[32][32];
    int counts[32] = {0}, nn = 0;
    cJSON *t, *tensors = j ? cJSON_GetObjectItem(j, "tensors") : NULL;
    cJSON_ArrayForEach(t, tensors) {
        cJSON *f = cJSON_GetObjectItem(t, "format");
        if (!cJSON_IsString(f)) continue;
        int k = 0;
        while (k < nn && strcmp(names[k], f->valuestring)) k++;
        if (k == nn && nn < 32) snprintf(names[nn++], sizeof names[0], "%s", f->valuestring);
        if (k < 32) counts[k]++;
    }
    cJSON *corr = j ? cJSON_GetObjectItem(cJSON_GetObjectItem(j, "predicted"), "per_domain_corrected") : NULL;
    size_t off = 0;
    for (int k = 0; k < nn && off < sizeof p->formats - 48; k++)
        off += (size_t)snprintf(p->formats + off, sizeof p->formats - off, "%s%s x%d", k ? ", " : "", names[k], counts[k]);
    qs_db_plan_domain d[RP_MAX_DOMAINS * 2];
    p->n_domains = qs_db_plan_domains(c->db, p->id, d, RP_MAX_DOMAINS * 2);
    for (int i = 0; i < p->n_domains; i++) {
        rp_plan_domain *x = &p->d[i];
        snprintf(x->domain, sizeof x->domain, "%.63s", d[i].domain);
        x->predicted = d[i].predicted;
        x->measured = d[i].measured;
        x->measured_p99 = d[i].measured_p99;
        x->ppl_ratio = d[i].ppl_ratio;
        x->top1 = d[i].top1;
        cJSON *cv = corr ? cJSON_GetObjectItemCaseSensitive(corr, x->domain) : NULL;
        x->corrected = cJSON_IsNumber(cv) ? cv->valuedouble : NAN;
    }
    cJSON_Delete(j);
    return 1;
}

int rp_checked_files(const rp_ctx *c, rp_checked *out, int cap) {
    qs_db_checked_file k[64];
    int n = qs_db_checked_files(c->db, c->fingerprint, k, cap < 64 ? cap : 64);
    for (int i = 0; i < n; i++) {
        rp_checked *x = &out[i];
        snprintf(x->path, sizeof x->path, "%.1023s", k[i].path);
        snprintf(x->eval_set, sizeof x->eval_set, "%s", k[i].eval_set);
        snprintf(x->created, sizeof x->created, "%s", k[i].created);
        x->kl = k[i].kl;
        x->n_domains = k[i].n_domains;
        x->bpw = NAN; /* the file's tensor bits per weight, when it is still there */
        qs_gguf *g;
        if (c->n_params > 0 && qs_gguf_open(&g, x->path, NULL) == 0) {
            double bytes = 0;
            for (uint64_t t = 0; t < g->n_tensors; t++) bytes += (double)g->tensors[t].nbytes;
            x->bpw = 8 * bytes / (double)c->n_params;
            qs_gguf_close(g);
        }
    }
    return n;
}

void rp_estimates_sentence(const rp_ctx *c, char *out, size_t cap) {
    const qs_db_estimates *e = &c->est;
    const char *how = !strcmp(e->method, "gradient")
                          ? "one backward pass per evaluation chunk: each format's output error weighted by the Fisher information"
                          : "one probe format per tensor measured, the others scaled by their output error";
    int k = snprintf(out, cap, "%lld of the per-tensor costs measured, %lld estimated (%s: %s)", (long long)e->n_measured,
                     (long long)e->n_estimated, e->method, how);
    if (k < 0 || (size_t)k >= cap) return;
    if (e->n_validated)
        snprintf(out + k, cap - (size_t)k, "; validated on %d exact jobs drawn at random: Spearman %.3f, relative error median "
                 "%.1f %%, 90th percentile %.1f %%", e->n_validated, e->spearman, 100 * e->median_rel_error, 100 * e->p90_rel_error);
    else
        snprintf(out + k, cap - (size_t)k, "; not validated (qsense profile ... --validate N measures N of them exactly)");
}
