/* Loading a run for the report (see report_ctx.h). */
#include "report_ctx.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"
#include "quant/format.h"

static void copy_col(char *dst, size_t cap, sqlite3_stmt *st, int col) {
    const unsigned char *s = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", s ? (const char *)s : "");
}

static int64_t scalar(sqlite3 *h, const char *sql, int64_t a) {
    sqlite3_stmt *st;
    int64_t v = 0;
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK) return 0;
    if (sqlite3_bind_parameter_count(st) > 0) sqlite3_bind_int64(st, 1, a);
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

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
    sqlite3_stmt *st;
    const char *sql = want ? "SELECT r.id, r.model_id, r.settings, r.status, r.started, COALESCE(r.finished, '') FROM runs r WHERE r.id = ?"
                           : "SELECT r.id, r.model_id, r.settings, r.status, r.started, COALESCE(r.finished, '') FROM runs r "
                             "ORDER BY (r.status = 'done') DESC, r.id DESC LIMIT 1";
    if (sqlite3_prepare_v2(c->h, sql, -1, &st, NULL) != SQLITE_OK)
        return qs_errorf(err, QS_ERR_INPUT, "%s: reading runs: %s", c->db_path, sqlite3_errmsg(c->h));
    if (want) sqlite3_bind_int64(st, 1, want);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        if (want) return qs_errorf(err, QS_ERR_INPUT, "%s: no run with id %lld (see: sqlite3 %s 'SELECT id, started FROM runs')",
                                   c->db_path, (long long)want, c->db_path);
        return qs_errorf(err, QS_ERR_INPUT, "%s: the database holds no profile run yet; run qsense profile MODEL --db %s first",
                         c->db_path, c->db_path);
    }
    c->run_id = sqlite3_column_int64(st, 0);
    c->model_id = sqlite3_column_int64(st, 1);
    read_settings(c, (const char *)sqlite3_column_text(st, 2));
    copy_col(c->status, sizeof c->status, st, 3);
    copy_col(c->started, sizeof c->started, st, 4);
    copy_col(c->finished, sizeof c->finished, st, 5);
    sqlite3_finalize(st);
    sqlite3_prepare_v2(c->h, "SELECT path, fingerprint, format, arch, n_params, n_layers, dim, hidden_dim, n_heads, n_kv_heads,"
                             " n_vocab FROM models WHERE id = ?", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, c->model_id);
    if (sqlite3_step(st) == SQLITE_ROW) {
        copy_col(c->model_path, sizeof c->model_path, st, 0);
        copy_col(c->fingerprint, sizeof c->fingerprint, st, 1);
        copy_col(c->model_format, sizeof c->model_format, st, 2);
        copy_col(c->arch, sizeof c->arch, st, 3);
        c->n_params = sqlite3_column_int64(st, 4);
        int *ints[6] = {&c->n_layers, &c->dim, &c->hidden_dim, &c->n_heads, &c->n_kv_heads, &c->n_vocab};
        for (int i = 0; i < 6; i++) *ints[i] = sqlite3_column_int(st, 5 + i);
    }
    sqlite3_finalize(st);
    return 0;
}

static void load_tensors(rp_ctx *c) {
    sqlite3_stmt *st;
    c->n_tensors = (int)scalar(c->h, "SELECT count(*) FROM tensors WHERE model_id = ?", c->model_id);
    c->t = calloc((size_t)c->n_tensors + 1, sizeof(rp_tensor));
    sqlite3_prepare_v2(c->h, "SELECT id, name, kind, COALESCE(layer, -1), rows, cols, stored_type FROM tensors WHERE model_id = ?"
                             " ORDER BY COALESCE(layer, -1), id", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, c->model_id);
    int n = 0;
    while (n < c->n_tensors && sqlite3_step(st) == SQLITE_ROW) {
        rp_tensor *t = &c->t[n++];
        t->id = sqlite3_column_int64(st, 0);
        copy_col(t->name, sizeof t->name, st, 1);
        copy_col(t->kind, sizeof t->kind, st, 2);
        t->layer = sqlite3_column_int(st, 3);
        t->rows = sqlite3_column_int64(st, 4);
        t->cols = sqlite3_column_int64(st, 5);
        copy_col(t->stored, sizeof t->stored, st, 6);
        t->kl = t->kl_se = t->out_err = t->sqnr = NAN;
    }
    c->n_tensors = n;
    sqlite3_finalize(st);
}

static void load_domains(rp_ctx *c) {
    sqlite3_stmt *st;
    sqlite3_prepare_v2(c->h, "SELECT name, base_ppl, n_scored FROM eval_domains WHERE run_id = ? ORDER BY name", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, c->run_id);
    while (c->n_domains < RP_MAX_DOMAINS && sqlite3_step(st) == SQLITE_ROW) {
        copy_col(c->domains[c->n_domains], sizeof c->domains[0], st, 0);
        c->base_ppl[c->n_domains] = sqlite3_column_double(st, 1);
        c->n_scored[c->n_domains++] = sqlite3_column_int(st, 2);
    }
    sqlite3_finalize(st);
}

/* The format the pictures focus on: the user's, else a 4-bit one people ship, measured by the
 * sweep if there was one. */
static int choose_format(rp_ctx *c, const char *want, qs_error *err) {
    const char *table = c->has_sensitivity ? "sensitivity" : "qerror";
    char sql[300];
    snprintf(sql, sizeof sql, "SELECT DISTINCT f.name FROM %s x JOIN formats f ON f.id = x.format_id WHERE x.run_id = ? AND x.applicable", table);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(c->h, sql, -1, &st, NULL);
    sqlite3_bind_int64(st, 1, c->run_id);
    static const char *prefer[] = {"q4_k", "q4_0", "int4-g128-asym", "int4-g128-sym", "q5_0", "q8_0"};
    int best_rank = 99, found_want = 0;
    double best_dist = 1e9;
    char measured[512] = "";
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
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
    sqlite3_finalize(st);
    if (want && !found_want)
        return qs_errorf(err, QS_ERR_USAGE, "--format %s: run %lld has no %s rows for it (measured: %s)", want, (long long)c->run_id,
                         table, *measured ? measured : "none");
    if (want) snprintf(c->format, sizeof c->format, "%s", want);
    return 0;
}

static void load_costs(rp_ctx *c) {
    sqlite3_stmt *st;
    sqlite3_prepare_v2(c->h, "SELECT avg(s.kl_mean), sqrt(sum(s.kl_se * s.kl_se)) / count(*) FROM sensitivity s JOIN formats f ON"
                             " f.id = s.format_id WHERE s.run_id = ? AND s.tensor_id = ? AND f.name = ? AND s.applicable", -1, &st, NULL);
    sqlite3_stmt *q;
    sqlite3_prepare_v2(c->h, "SELECT q.output_error, q.sqnr_db, q.bpw FROM qerror q JOIN formats f ON f.id = q.format_id"
                             " WHERE q.run_id = ? AND q.tensor_id = ? AND f.name = ? AND q.applicable", -1, &q, NULL);
    double bits = 0, params = 0;
    for (int i = 0; i < c->n_tensors; i++) {
        rp_tensor *t = &c->t[i];
        sqlite3_stmt *both[2] = {st, q};
        for (int k = 0; k < 2; k++) {
            sqlite3_reset(both[k]);
            sqlite3_bind_int64(both[k], 1, c->run_id);
            sqlite3_bind_int64(both[k], 2, t->id);
            sqlite3_bind_text(both[k], 3, c->format, -1, SQLITE_STATIC);
        }
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
            t->kl = sqlite3_column_double(st, 0);
            t->kl_se = sqlite3_column_double(st, 1);
        }
        if (sqlite3_step(q) == SQLITE_ROW) {
            if (sqlite3_column_type(q, 0) != SQLITE_NULL) t->out_err = sqlite3_column_double(q, 0);
            t->sqnr = sqlite3_column_type(q, 1) == SQLITE_NULL ? INFINITY : sqlite3_column_double(q, 1);
            bits += sqlite3_column_double(q, 2) * (double)(t->rows * t->cols);
            params += (double)(t->rows * t->cols);
        }
    }
    sqlite3_finalize(st);
    sqlite3_finalize(q);
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
    c->h = qs_db_handle(c->db);
    if ((rc = pick_run(c, o->run_id, err))) {
        rp_ctx_close(c);
        return rc;
    }
    load_tensors(c);
    load_domains(c);
    c->has_sensitivity = scalar(c->h, "SELECT count(*) FROM sensitivity WHERE run_id = ? AND applicable", c->run_id) > 0;
    c->has_whole = scalar(c->h, "SELECT count(*) FROM whole_model WHERE run_id = ?", c->run_id) > 0;
    c->has_activations = scalar(c->h, "SELECT count(*) FROM activation_stats WHERE run_id = ?", c->run_id) > 0;
    c->n_qformats = (int)scalar(c->h, "SELECT count(DISTINCT format_id) FROM qerror WHERE run_id = ?", c->run_id);
    c->n_sformats = (int)scalar(c->h, "SELECT count(DISTINCT format_id) FROM sensitivity WHERE run_id = ?", c->run_id);
    c->plan_id = scalar(c->h, "SELECT id FROM plans WHERE run_id = ? ORDER BY id DESC LIMIT 1", c->run_id);
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
    if (!c->plan_id) return 0;
    sqlite3_stmt *st;
    sqlite3_prepare_v2(c->h, "SELECT id, COALESCE(path, ''), created, target, COALESCE(domain_weights, ''), budget_bytes, tensor_bytes,"
                             " bpw, predicted_kl, plan_json FROM plans WHERE id = ?", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, c->plan_id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return 0;
    }
    p->id = sqlite3_column_int64(st, 0);
    copy_col(p->path, sizeof p->path, st, 1);
    copy_col(p->created, sizeof p->created, st, 2);
    copy_col(p->target, sizeof p->target, st, 3);
    copy_col(p->weights, sizeof p->weights, st, 4);
    p->budget_bytes = sqlite3_column_double(st, 5);
    p->tensor_bytes = sqlite3_column_double(st, 6);
    p->bpw = sqlite3_column_double(st, 7);
    p->predicted = sqlite3_column_double(st, 8);
    /* format counts from the plan itself */
    cJSON *j = cJSON_Parse((const char *)sqlite3_column_text(st, 9));
    sqlite3_finalize(st);
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
    char *ct = corr ? cJSON_PrintUnformatted(corr) : NULL;
    cJSON *cj = ct ? cJSON_Parse(ct) : NULL;
    free(ct);
    cJSON_Delete(j);
    size_t off = 0;
    for (int k = 0; k < nn && off < sizeof p->formats - 48; k++)
        off += (size_t)snprintf(p->formats + off, sizeof p->formats - off, "%s%s x%d", k ? ", " : "", names[k], counts[k]);
    sqlite3_prepare_v2(c->h, "SELECT domain, predicted_kl, measured_kl, measured_kl_p99, measured_ppl_ratio, measured_top1 FROM"
                             " plan_domains WHERE plan_id = ? ORDER BY predicted_kl IS NULL, domain", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, p->id);
    while (p->n_domains < RP_MAX_DOMAINS * 2 && sqlite3_step(st) == SQLITE_ROW) {
        rp_plan_domain *d = &p->d[p->n_domains++];
        copy_col(d->domain, sizeof d->domain, st, 0);
        double *v[5] = {&d->predicted, &d->measured, &d->measured_p99, &d->ppl_ratio, &d->top1};
        for (int k = 0; k < 5; k++) *v[k] = sqlite3_column_type(st, 1 + k) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 1 + k);
        cJSON *cv = cj ? cJSON_GetObjectItemCaseSensitive(cj, d->domain) : NULL;
        d->corrected = cJSON_IsNumber(cv) ? cv->valuedouble : NAN;
    }
    sqlite3_finalize(st);
    cJSON_Delete(cj);
    return 1;
}

int rp_checked_files(const rp_ctx *c, rp_checked *out, int cap) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->h, "SELECT k.candidate, k.eval_set, k.created, avg(r.value), count(*) FROM check_runs k JOIN"
                                 " check_results r ON r.check_id = k.id WHERE k.reference_sha256 = ? AND k.candidate_sha256 != ''"
                                 " AND r.metric = 'kl_mean' AND k.id = (SELECT max(k2.id) FROM check_runs k2 WHERE"
                                 " k2.candidate = k.candidate AND k2.reference_sha256 = k.reference_sha256) GROUP BY k.id"
                                 " ORDER BY k.id", -1, &st, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(st, 1, c->fingerprint, -1, SQLITE_STATIC);
    int n = 0;
    while (n < cap && sqlite3_step(st) == SQLITE_ROW) {
        rp_checked *k = &out[n++];
        copy_col(k->path, sizeof k->path, st, 0);
        copy_col(k->eval_set, sizeof k->eval_set, st, 1);
        copy_col(k->created, sizeof k->created, st, 2);
        k->kl = sqlite3_column_double(st, 3);
        k->n_domains = sqlite3_column_int(st, 4);
        k->bpw = NAN;
        qs_gguf *g;
        if (c->n_params > 0 && qs_gguf_open(&g, k->path, NULL) == 0) {
            double bytes = 0;
            for (uint64_t i = 0; i < g->n_tensors; i++) bytes += (double)g->tensors[i].nbytes;
            k->bpw = 8 * bytes / (double)c->n_params;
            qs_gguf_close(g);
        }
    }
    sqlite3_finalize(st);
    return n;
}
