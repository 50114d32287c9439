/* The planner (see plan.h): a multiple-choice knapsack solved by a Lagrangian sweep (every
 * tensor takes the option minimizing cost + lambda * bytes; lambda bisected to the budget) and
 * then a greedy pass that spends what is left on the best cost-per-byte upgrades. Costs are the
 * measured per-tensor KL (domain-weighted means); sizes are the formats' true storage. */
#include "plan.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_dtype.h"
#include "core/qs_file.h"
#include "core/qs_json.h"
#include "core/qs_output.h"
#include "core/qs_sha256.h"
#include "core/qs_strmap.h"
#include "io/gguf.h"
#include "io/model.h"
#include "quant/format.h"
#include "store/db.h"

#define MAX_OPTS 64

typedef struct {
    int n;
    char fmt[MAX_OPTS][32];
    double cost[MAX_OPTS], bytes[MAX_OPTS], dcost[MAX_OPTS][16];
    int pick;
} options;

void qs_plan_free(qs_plan *p) {
    if (!p) return;
    free(p->tensors);
    free(p->curve);
    free(p);
}

static void add_opt(options *o, const char *fmt, double cost, double bytes, const double *dcost, int nd) {
    for (int i = 0; i < o->n; i++)
        if (!strcmp(o->fmt[i], fmt)) return;
    if (o->n == MAX_OPTS) return;
    snprintf(o->fmt[o->n], sizeof o->fmt[0], "%s", fmt);
    o->cost[o->n] = cost;
    o->bytes[o->n] = bytes;
    for (int d = 0; d < nd; d++) o->dcost[o->n][d] = dcost ? dcost[d] : 0;
    o->n++;
}

static double solve(options *o, int n, double lambda) {
    double total = 0;
    for (int i = 0; i < n; i++) {
        int best = 0;
        for (int k = 1; k < o[i].n; k++) {
            double a = o[i].cost[k] + lambda * o[i].bytes[k], b = o[i].cost[best] + lambda * o[i].bytes[best];
            if (a < b || (a == b && o[i].bytes[k] < o[i].bytes[best])) best = k;
        }
        o[i].pick = best;
        total += o[i].bytes[best];
    }
    return total;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* How far the per-tensor costs are from adding up, per domain: for each format quantized over
 * the whole model, its measured KL over the sum of its per-tensor KLs; the median over formats
 * with whole-model KL below 1 nat (beyond that the model is broken and errors saturate). On
 * stories260K it is 1.03-1.05: quantizing everything costs a little more than the sum. */
static void measure_additivity(sqlite3 *h, qs_plan *p) {
    sqlite3_stmt *st;
    sqlite3_prepare_v2(h, "SELECT w.kl_mean / (SELECT sum(s.kl_mean) FROM sensitivity s WHERE s.run_id = w.run_id AND"
                          " s.format_id = w.format_id AND s.domain = w.domain AND s.applicable) FROM whole_model w"
                          " WHERE w.run_id = ? AND w.domain = ? AND w.n_quantized > 0 AND w.kl_mean > 0 AND w.kl_mean < 1",
                       -1, &st, NULL);
    for (int d = 0; d < p->n_domains; d++) {
        double r[64];
        int n = 0;
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, p->run_id);
        sqlite3_bind_text(st, 2, p->domains[d], -1, SQLITE_STATIC);
        while (n < 64 && sqlite3_step(st) == SQLITE_ROW)
            if (sqlite3_column_type(st, 0) != SQLITE_NULL && sqlite3_column_double(st, 0) > 0) r[n++] = sqlite3_column_double(st, 0);
        qsort(r, (size_t)n, sizeof *r, cmp_double);
        p->additivity[d] = n ? (n % 2 ? r[n / 2] : 0.5 * (r[n / 2 - 1] + r[n / 2])) : NAN;
    }
    sqlite3_finalize(st);
}

/* --rounding: rtn keeps round-to-nearest formats only; weighted (gptq) uses a block type's "-w"
 * ("-gptq") variant wherever the sweep measured one, and another rounding of that type only
 * where it did not (weighted never takes GPTQ); auto keeps every variant and lets cost decide.
 * measured: "name,name,..." of the weighted and GPTQ formats the run measured. */
static int rounding_allows(const char *rounding, const qs_format *f, const char *measured) {
    if (!rounding || !strcmp(rounding, "auto")) return 1;
    if (!strcmp(rounding, "rtn")) return !qs_format_needs_calib(f);
    if (f->family != QS_FAM_GGML) return 1;
    const int want_gptq = !strcmp(rounding, "gptq");
    if (want_gptq ? f->gptq : f->weighted) return 1;
    if (!want_gptq && f->gptq) return 0;
    char variant[48];
    snprintf(variant, sizeof variant, "%s%s,", qs_dtype_name(f->ggml_type), want_gptq ? "-gptq" : "-w");
    return strstr(measured, variant) == NULL;
}

/* The Pareto front for the report: a geometric sweep of lambda from "bytes are free" to "only
 * bytes matter"; each distinct solution is a vertex of the front's convex hull. */
static void trace_front(qs_plan *p, options *o) {
    int cap = 0;
    for (int s = 0; s <= 400; s++) {
        double lambda = s == 0 ? 0 : pow(10.0, -20.0 + 0.06 * s), bytes = solve(o, p->n_tensors, lambda), kl = 0;
        for (int i = 0; i < p->n_tensors; i++) kl += o[i].cost[o[i].pick];
        if (p->n_curve && fabs(p->curve[p->n_curve - 1].bytes - bytes) < 0.5) {
            p->curve[p->n_curve - 1].kl = kl;
            continue;
        }
        if (p->n_curve == cap) {
            cap = cap ? 2 * cap : 64;
            p->curve = realloc(p->curve, sizeof *p->curve * (size_t)cap);
        }
        p->curve[p->n_curve].bytes = bytes;
        p->curve[p->n_curve++].kl = kl;
    }
    /* largest first as swept; the contract is smallest first */
    for (int i = 0, j = p->n_curve - 1; i < j; i++, j--) {
        struct qs_plan_point t = p->curve[i];
        p->curve[i] = p->curve[j];
        p->curve[j] = t;
    }
}

static int parse_weights(const char *spec, qs_plan *p, qs_error *err) {
    for (int d = 0; d < p->n_domains; d++) p->domain_weights[d] = 1;
    if (!spec) return 0;
    char *copy = strdup(spec), *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        char *end = NULL;
        double w = eq ? strtod(eq + 1, &end) : NAN;
        if (!eq || !end || *end || !(w >= 0)) {
            rc = qs_errorf(err, QS_ERR_USAGE, "--domain-weights: '%s' is not name=weight", tok);
            break;
        }
        *eq = 0;
        int found = 0;
        for (int d = 0; d < p->n_domains; d++)
            if (!strcmp(p->domains[d], tok)) p->domain_weights[d] = w, found = 1;
        if (!found) rc = qs_errorf(err, QS_ERR_USAGE, "--domain-weights: no evaluation domain '%s' in the database", tok);
    }
    free(copy);
    return rc;
}

int qs_plan_make(qs_plan **out, const qs_plan_options *opt, qs_error *err) {
    *out = NULL;
    if (opt->rounding && strcmp(opt->rounding, "auto") && strcmp(opt->rounding, "rtn") && strcmp(opt->rounding, "weighted") &&
        strcmp(opt->rounding, "gptq"))
        return qs_errorf(err, QS_ERR_USAGE, "--rounding must be auto, rtn, weighted or gptq, not '%s'", opt->rounding);
    qs_db *db;
    int rc = qs_db_open(&db, opt->db_path, QS_DB_READ, err);
    if (rc) return rc;
    sqlite3 *h = qs_db_handle(db);
    qs_plan *p = calloc(1, sizeof *p);
    options *o = NULL;
    sqlite3_stmt *st = NULL;
    snprintf(p->target, sizeof p->target, "%s", opt->target ? opt->target : "llama.cpp");
    if (strcmp(p->target, "llama.cpp") && strcmp(p->target, "any") && strcmp(p->target, "llm-compressor")) {
        rc = qs_errorf(err, QS_ERR_USAGE, "--target must be llama.cpp, llm-compressor or any, not '%s'", p->target);
        goto done;
    }
    /* the newest run with sensitivity measurements */
    int64_t model_id = 0;
    if (sqlite3_prepare_v2(h, "SELECT r.id, r.model_id, m.fingerprint, m.path FROM runs r JOIN models m ON m.id = r.model_id "
                              "WHERE EXISTS (SELECT 1 FROM sensitivity s WHERE s.run_id = r.id) ORDER BY r.id DESC LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: no sensitivity measurements; run qsense profile MODEL --sensitivity first", opt->db_path);
        goto done;
    }
    p->run_id = sqlite3_column_int64(st, 0);
    model_id = sqlite3_column_int64(st, 1);
    snprintf(p->model_fingerprint, sizeof p->model_fingerprint, "%s", sqlite3_column_text(st, 2));
    snprintf(p->model_path, sizeof p->model_path, "%s", sqlite3_column_text(st, 3));
    sqlite3_finalize(st);
    st = NULL;
    sqlite3_prepare_v2(h, "SELECT name FROM eval_domains WHERE run_id = ? ORDER BY name", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, p->run_id);
    while (sqlite3_step(st) == SQLITE_ROW && p->n_domains < 16)
        snprintf(p->domains[p->n_domains++], sizeof p->domains[0], "%s", sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    st = NULL;
    if ((rc = parse_weights(opt->domain_weights, p, err))) goto done;
    double wsum = 0;
    for (int d = 0; d < p->n_domains; d++) wsum += p->domain_weights[d];
    if (!(wsum > 0)) {
        rc = qs_errorf(err, QS_ERR_USAGE, "--domain-weights: the weights sum to zero");
        goto done;
    }
    /* tensors */
    sqlite3_prepare_v2(h, "SELECT id, name, rows, cols FROM tensors WHERE model_id = ? ORDER BY id", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, model_id);
    int cap = 64;
    p->tensors = malloc(sizeof(qs_plan_tensor) * (size_t)cap);
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)cap);
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (p->n_tensors == cap) {
            cap *= 2;
            p->tensors = realloc(p->tensors, sizeof(qs_plan_tensor) * (size_t)cap);
            ids = realloc(ids, sizeof(int64_t) * (size_t)cap);
        }
        qs_plan_tensor *t = &p->tensors[p->n_tensors];
        memset(t, 0, sizeof *t);
        ids[p->n_tensors] = sqlite3_column_int64(st, 0);
        snprintf(t->name, sizeof t->name, "%s", sqlite3_column_text(st, 1));
        t->rows = sqlite3_column_int64(st, 2);
        t->cols = sqlite3_column_int64(st, 3);
        p->n_tensors++;
    }
    sqlite3_finalize(st);
    st = NULL;
    /* the weighted ("-w") and GPTQ ("-gptq") formats this run measured */
    char measured[1024] = "";
    int n_weighted = 0, n_gptq = 0;
    sqlite3_prepare_v2(h, "SELECT DISTINCT f.name FROM sensitivity s JOIN formats f ON f.id = s.format_id WHERE s.run_id = ?"
                          " AND (f.name LIKE '%-w' OR f.name LIKE '%-gptq')", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, p->run_id);
    while (sqlite3_step(st) == SQLITE_ROW && strlen(measured) < sizeof measured - 40) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        strcat(measured, name);
        strcat(measured, ",");
        if (strstr(name, "-gptq")) n_gptq++;
        else n_weighted++;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (opt->rounding && !strcmp(opt->rounding, "weighted") && !n_weighted) {
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: --rounding weighted, but the sweep measured no weighted format; run qsense profile "
                       "--sensitivity with --sens-formats including q4_0-w, q4_1-w, q5_0-w or q5_1-w", opt->db_path);
        goto done;
    }
    if (opt->rounding && !strcmp(opt->rounding, "gptq") && !n_gptq) {
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: --rounding gptq, but the sweep measured no GPTQ format; run qsense profile "
                       "--sensitivity with --sens-formats including q4_0-gptq, q5_0-gptq, q4_k-gptq ...", opt->db_path);
        goto done;
    }
    o = calloc((size_t)p->n_tensors, sizeof(options));
    sqlite3_prepare_v2(h, "SELECT f.name, s.domain, s.kl_mean FROM sensitivity s JOIN formats f ON f.id = s.format_id "
                          "WHERE s.run_id = ? AND s.tensor_id = ? AND s.applicable ORDER BY f.name", -1, &st, NULL);
    double total_params = 0;
    for (int i = 0; i < p->n_tensors; i++) {
        qs_plan_tensor *t = &p->tensors[i];
        const double n = (double)(t->rows * t->cols);
        total_params += n;
        if (t->rows <= 1) { /* vectors (norms) stay f32, as llama.cpp keeps them */
            add_opt(&o[i], "f32", 0, 4 * n, NULL, 0);
            continue;
        }
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, p->run_id);
        sqlite3_bind_int64(st, 2, ids[i]);
        char cur[32] = "";
        double dcost[16] = {0};
        int seen = 0;
        for (int step;;) {
            step = sqlite3_step(st);
            const char *fname = step == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
            if (cur[0] && (!fname || strcmp(fname, cur))) {
                const qs_format *f = qs_format_find(cur, NULL);
                int ok = f && (!strcmp(p->target, "any") ||
                               (!strcmp(p->target, "llama.cpp") && (f->family == QS_FAM_GGML || f->family == QS_FAM_FLOAT16)) ||
                               (!strcmp(p->target, "llm-compressor") && qs_plan_llmc_expressible(t->name, cur)));
                ok = ok && rounding_allows(opt->rounding, f, measured);
                if (ok && seen) {
                    double c = 0;
                    for (int d = 0; d < p->n_domains; d++) c += p->domain_weights[d] * dcost[d];
                    add_opt(&o[i], cur, c / wsum, qs_format_bpw(f, t->rows, t->cols) * n / 8, dcost, p->n_domains);
                }
                memset(dcost, 0, sizeof dcost);
                seen = 0;
            }
            if (!fname) break;
            snprintf(cur, sizeof cur, "%s", fname);
            const char *dom = (const char *)sqlite3_column_text(st, 1);
            for (int d = 0; d < p->n_domains; d++)
                if (!strcmp(p->domains[d], dom)) dcost[d] = sqlite3_column_double(st, 2), seen = 1;
        }
        /* floats are always possible; unmeasured, they count as lossless */
        add_opt(&o[i], "f16", 0, 2 * n, NULL, 0);
        add_opt(&o[i], "f32", 0, 4 * n, NULL, 0);
    }
    sqlite3_finalize(st);
    st = NULL;
    free(ids);
    p->total_params = total_params;
    snprintf(p->weights_spec, sizeof p->weights_spec, "%s", opt->domain_weights ? opt->domain_weights : "");
    trace_front(p, o);
    p->budget_bytes = opt->budget_bytes > 0 ? opt->budget_bytes : opt->budget_bpw * total_params / 8;
    double lo = 0, hi = 1;
    if (solve(o, p->n_tensors, 1e12) > p->budget_bytes) {
        rc = qs_errorf(err, QS_ERR_USAGE, "the budget of %.0f bytes is below the smallest plan the measured formats allow (%.0f bytes)",
                       p->budget_bytes, solve(o, p->n_tensors, 1e12));
        goto done;
    }
    while (solve(o, p->n_tensors, hi) > p->budget_bytes) hi *= 2;
    for (int it = 0; it < 200; it++) {
        double mid = 0.5 * (lo + hi);
        if (solve(o, p->n_tensors, mid) > p->budget_bytes) lo = mid;
        else hi = mid;
    }
    double total = solve(o, p->n_tensors, hi);
    /* greedy: spend the slack on the upgrades with the best KL saved per byte */
    for (;;) {
        int bi = -1, bk = -1;
        double best = 0;
        for (int i = 0; i < p->n_tensors; i++)
            for (int k = 0; k < o[i].n; k++) {
                double db = o[i].bytes[k] - o[i].bytes[o[i].pick], dc = o[i].cost[o[i].pick] - o[i].cost[k];
                if (db <= 0 || dc <= 0 || total + db > p->budget_bytes) continue;
                if (dc / db > best) best = dc / db, bi = i, bk = k;
            }
        if (bi < 0) break;
        total += o[bi].bytes[bk] - o[bi].bytes[o[bi].pick];
        o[bi].pick = bk;
    }
    p->total_bytes = total;
    for (int i = 0; i < p->n_tensors; i++) {
        const options *oi = &o[i];
        qs_plan_tensor *t = &p->tensors[i];
        snprintf(t->format, sizeof t->format, "%s", oi->fmt[oi->pick]);
        t->bytes = oi->bytes[oi->pick];
        t->cost = oi->cost[oi->pick];
        p->predicted_kl += t->cost;
        for (int d = 0; d < p->n_domains; d++) p->predicted_kl_domain[d] += oi->dcost[oi->pick][d];
    }
    measure_additivity(h, p);
done:
    if (st) sqlite3_finalize(st);
    free(o);
    qs_db_close(db);
    if (rc) {
        qs_plan_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int qs_plan_write_json(const qs_plan *p, const char *path, qs_error *err) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "qsense_plan_version", "1");
    cJSON_AddStringToObject(j, "qsense_version", QS_VERSION);
    cJSON *m = cJSON_AddObjectToObject(j, "model");
    cJSON_AddStringToObject(m, "sha256", p->model_fingerprint);
    cJSON_AddStringToObject(m, "path", p->model_path);
    cJSON_AddStringToObject(j, "target", p->target);
    cJSON_AddNumberToObject(j, "budget_tensor_bytes", p->budget_bytes);
    cJSON_AddNumberToObject(j, "tensor_bytes", p->total_bytes);
    cJSON *pred = cJSON_AddObjectToObject(j, "predicted");
    cJSON_AddStringToObject(pred, "metric", "mean KL divergence, sum of per-tensor costs");
    cJSON_AddNumberToObject(pred, "kl_total", p->predicted_kl);
    cJSON *pd = cJSON_AddObjectToObject(pred, "per_domain");
    for (int d = 0; d < p->n_domains; d++) cJSON_AddNumberToObject(pd, p->domains[d], p->predicted_kl_domain[d]);
    /* the same, corrected by the measured additivity of each domain (when the sweep measured it) */
    cJSON *add = cJSON_CreateObject(), *pdc = cJSON_CreateObject();
    double total_c = 0, wsum = 0;
    int have = 0;
    for (int d = 0; d < p->n_domains; d++) {
        if (isnan(p->additivity[d])) continue;
        cJSON_AddNumberToObject(add, p->domains[d], p->additivity[d]);
        cJSON_AddNumberToObject(pdc, p->domains[d], p->predicted_kl_domain[d] * p->additivity[d]);
        total_c += p->domain_weights[d] * p->predicted_kl_domain[d] * p->additivity[d];
        wsum += p->domain_weights[d];
        have++;
    }
    if (have == p->n_domains && have > 0) {
        cJSON_AddItemToObject(pred, "additivity", add);
        cJSON_AddItemToObject(pred, "per_domain_corrected", pdc);
        cJSON_AddNumberToObject(pred, "kl_total_corrected", total_c / wsum);
    } else {
        cJSON_Delete(add);
        cJSON_Delete(pdc);
    }
    cJSON *w = cJSON_AddObjectToObject(j, "domain_weights");
    for (int d = 0; d < p->n_domains; d++) cJSON_AddNumberToObject(w, p->domains[d], p->domain_weights[d]);
    cJSON *ts = cJSON_AddArrayToObject(j, "tensors");
    for (int i = 0; i < p->n_tensors; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "name", p->tensors[i].name);
        cJSON_AddStringToObject(t, "format", p->tensors[i].format);
        cJSON_AddNumberToObject(t, "bytes", p->tensors[i].bytes);
        cJSON_AddNumberToObject(t, "predicted_kl", p->tensors[i].cost);
        cJSON_AddItemToArray(ts, t);
    }
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    qs_output *o;
    int rc = qs_output_open(&o, path, "the plan", 0, err);
    if (!rc) {
        fprintf(qs_output_stream(o), "%s\n", text);
        rc = qs_output_commit(o, err);
    }
    free(text);
    return rc;
}

int qs_plan_read_json(qs_plan **out, const char *path, qs_error *err) {
    *out = NULL;
    char *text;
    size_t n_text;
    int rc = qs_read_file(path, &text, &n_text, err);
    if (rc) return qs_error_prefix(err, "plan");
    cJSON *j = qs_json_parse(text, n_text, path, 0, err);
    char file_sha[65];
    qs_sha256_hex(text, n_text, file_sha);
    free(text);
    if (!j) return QS_ERR_INPUT;
    qs_plan *p = calloc(1, sizeof *p);
    memcpy(p->plan_sha256, file_sha, sizeof file_sha);
    cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model"), *sha = m ? cJSON_GetObjectItemCaseSensitive(m, "sha256") : NULL;
    cJSON *ts = cJSON_GetObjectItemCaseSensitive(j, "tensors"), *target = cJSON_GetObjectItemCaseSensitive(j, "target");
    cJSON *ver = cJSON_GetObjectItemCaseSensitive(j, "qsense_plan_version");
    if (!cJSON_IsString(ver) || strcmp(ver->valuestring, "1")) {
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: key 'qsense_plan_version' must be \"1\"", path);
    } else if (!cJSON_IsString(sha) || strlen(sha->valuestring) != 64) {
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: key 'model.sha256' must be a 64-character sha256", path);
    } else if (!cJSON_IsArray(ts) || cJSON_GetArraySize(ts) == 0) {
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: key 'tensors' must be a non-empty array", path);
    } else {
        snprintf(p->source_path, sizeof p->source_path, "%s", path);
        snprintf(p->model_fingerprint, sizeof p->model_fingerprint, "%s", sha->valuestring);
        snprintf(p->target, sizeof p->target, "%s", cJSON_IsString(target) ? target->valuestring : "any");
        p->n_tensors = cJSON_GetArraySize(ts);
        p->tensors = calloc((size_t)p->n_tensors, sizeof(qs_plan_tensor));
        int i = 0;
        cJSON *t;
        qs_strmap *seen = qs_strmap_new((size_t)p->n_tensors);
        if (!seen || !p->tensors) rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
        cJSON_ArrayForEach(t, ts) {
            if (rc) break;
            cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name"), *f = cJSON_GetObjectItemCaseSensitive(t, "format");
            if (!cJSON_IsString(n) || !cJSON_IsString(f) || strlen(n->valuestring) >= sizeof p->tensors[0].name) {
                rc = qs_errorf(err, QS_ERR_INPUT, "%s: tensors[%d] needs a string 'name' and 'format'", path, i);
                break;
            }
            if (strcmp(f->valuestring, "f32") && !qs_format_find(f->valuestring, NULL)) {
                rc = qs_errorf(err, QS_ERR_INPUT, "%s: tensors[%d] ('%s'): unknown format '%s'", path, i, n->valuestring, f->valuestring);
                break;
            }
            int first = qs_strmap_get(seen, n->valuestring, strlen(n->valuestring));
            if (first >= 0) {
                rc = qs_errorf(err, QS_ERR_INPUT, "%s: tensors[%d] names '%s' again (first at tensors[%d]); each tensor once", path,
                               i, n->valuestring, first);
                break;
            }
            qs_strmap_put(seen, n->valuestring, strlen(n->valuestring), i);
            snprintf(p->tensors[i].name, sizeof p->tensors[i].name, "%s", n->valuestring);
            snprintf(p->tensors[i].format, sizeof p->tensors[i].format, "%s", f->valuestring);
            i++;
        }
        qs_strmap_free(seen);
    }
    cJSON_Delete(j);
    if (rc) {
        qs_plan_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

const qs_plan_tensor *qs_plan_find(const qs_plan *p, const char *tensor) {
    for (int k = 0; k < p->n_tensors; k++)
        if (!strcmp(p->tensors[k].name, tensor)) return &p->tensors[k];
    return NULL;
}

int qs_plan_check_model(const qs_plan *p, const qs_model *m, qs_error *err) {
    for (int k = 0; k < p->n_tensors; k++)
        if (!qs_model_find(m, p->tensors[k].name))
            return qs_errorf(err, QS_ERR_INPUT, "%s: tensors[%d] names '%s', which %s does not have; is the plan for this model?",
                             p->source_path[0] ? p->source_path : "the plan", k, p->tensors[k].name, m->path);
    return 0;
}

int qs_plan_verify_gguf(const qs_plan *p, const char *gguf_path, int *n_diff, qs_error *err) {
    qs_gguf *g;
    *n_diff = 0;
    int rc = qs_gguf_open(&g, gguf_path, err);
    if (rc) return rc;
    char msg[900] = "";
    size_t k = 0;
    for (int i = 0; i < p->n_tensors; i++) {
        const qs_gguf_tensor *t = qs_gguf_find_tensor(g, p->tensors[i].name);
        const char *have = t ? qs_dtype_name(t->type) : "missing";
        if (strcmp(have, qs_plan_stored_type(p->tensors[i].format))) {
            if (k < sizeof msg - 100)
                k += (size_t)snprintf(msg + k, sizeof msg - k, "%s%s is %s, plan says %s", *n_diff ? "; " : "", p->tensors[i].name,
                                      have, p->tensors[i].format);
            (*n_diff)++;
        }
    }
    qs_gguf_close(g);
    if (*n_diff) return qs_errorf(err, QS_ERR_INPUT, "%s: %d tensors differ from the plan: %s", gguf_path, *n_diff, msg);
    return 0;
}
