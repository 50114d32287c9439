/* Making a plan from the measurements (see plan.h): the newest run with a sensitivity sweep, its
 * per-tensor KL per format and domain turned into options (domain-weighted cost, true storage),
 * filtered by target and rounding, and handed to the solver (plan_solver.h). */
#include "reports/planner/plan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_dtype.h"
#include "quant/act_format.h"
#include "quant/format.h"
#include "reports/planner/plan_act.h"
#include "reports/planner/plan_solver.h"
#include "store/measures.h"
#include "store/runs.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* How far the per-tensor costs are from adding up, per domain: for each format quantized over
 * the whole model, its measured KL over the sum of its per-tensor KLs; the median over formats
 * with whole-model KL below 1 nat (beyond that the model is broken and errors saturate). On
 * stories260K it is 1.03-1.05: quantizing everything costs a little more than the sum. */
static void measure_additivity(qs_db *db, qs_plan *p) {
    for (int d = 0; d < p->n_domains; d++) {
        double r[64];
        int n = qs_db_whole_over_sum(db, p->run_id, p->domains[d], r, 64);
        qsort(r, (size_t)n, sizeof *r, cmp_double);
        p->additivity[d] = n ? (n % 2 ? r[n / 2] : 0.5 * (r[n / 2 - 1] + r[n / 2])) : NAN;
    }
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

/* whether the runtime the plan is for can load the format on this tensor */
static int target_allows(const char *target, const char *tensor, const qs_format *f) {
    if (!strcmp(target, "any")) return 1;
    if (!strcmp(target, "llama.cpp")) return f->family == QS_FAM_GGML || f->family == QS_FAM_FLOAT16;
    return qs_plan_llmc_expressible(tensor, f->name);
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

static int check_options(const qs_plan_options *opt, qs_error *err) {
    if (opt->rounding && strcmp(opt->rounding, "auto") && strcmp(opt->rounding, "rtn") && strcmp(opt->rounding, "weighted") &&
        strcmp(opt->rounding, "gptq"))
        return qs_errorf(err, QS_ERR_USAGE, "--rounding must be auto, rtn, weighted or gptq, not '%s'", opt->rounding);
    const char *target = opt->target ? opt->target : "llama.cpp";
    if (strcmp(target, "llama.cpp") && strcmp(target, "any") && strcmp(target, "llm-compressor"))
        return qs_errorf(err, QS_ERR_USAGE, "--target must be llama.cpp, llm-compressor or any, not '%s'", target);
    if (opt->act) {
        const qs_act_format *a = qs_act_format_find(opt->act, err);
        if (!a) return QS_ERR_USAGE;
        if (a->kv) return qs_errorf(err, QS_ERR_USAGE, "--act %s is a KV-cache format; --act takes an activation format", opt->act);
        if (!strcmp(target, "llama.cpp"))
            return qs_errorf(err, QS_ERR_USAGE, "--act: llama.cpp does not quantize activations this way; plan a W+A model with "
                                                "--target llm-compressor (or any)");
    }
    return 0;
}

/* the newest run with sensitivity rows, its model, domains and (weighted) domain weights */
static int load_run(qs_db *db, const qs_plan_options *opt, qs_plan *p, int64_t *model_id, qs_error *err) {
    qs_db_run r;
    int found = qs_db_find_run(db, 0, QS_DB_RUN_NEWEST_WITH_SENSITIVITY, &r, err);
    if (found < 0) return found;
    if (!found)
        return qs_errorf(err, QS_ERR_INPUT, "%s: no sensitivity measurements; run qsense profile MODEL --sensitivity first",
                         opt->db_path);
    p->run_id = r.id;
    *model_id = r.model_id;
    snprintf(p->model_fingerprint, sizeof p->model_fingerprint, "%s", r.fingerprint);
    snprintf(p->model_path, sizeof p->model_path, "%s", r.model_path);
    qs_db_run_free(&r);
    qs_db_domain d[QS_PLAN_MAX_DOMAINS];
    p->n_domains = qs_db_domains(db, p->run_id, d, QS_PLAN_MAX_DOMAINS);
    for (int i = 0; i < p->n_domains; i++) snprintf(p->domains[i], sizeof p->domains[0], "%.63s", d[i].name);
    int rc = parse_weights(opt->domain_weights, p, err);
    if (rc) return rc;
    double wsum = 0;
    for (int i = 0; i < p->n_domains; i++) wsum += p->domain_weights[i];
    if (!(wsum > 0)) return qs_errorf(err, QS_ERR_USAGE, "--domain-weights: the weights sum to zero");
    snprintf(p->weights_spec, sizeof p->weights_spec, "%s", opt->domain_weights ? opt->domain_weights : "");
    return 0;
}

/* the weighted ("-w") and GPTQ ("-gptq") formats the run measured, as "name,name,..."; refuses a
 * --rounding the sweep cannot serve */
static int measured_roundings(qs_db *db, const qs_plan_options *opt, int64_t run_id, char *measured, size_t cap,
                              qs_error *err) {
    char names[256][32];
    int n = qs_db_formats_measured(db, run_id, QS_DB_SENSITIVITY, 0, names, 256), n_weighted = 0, n_gptq = 0;
    measured[0] = 0;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        int gptq = len > 5 && !strcmp(names[i] + len - 5, "-gptq"), weighted = len > 2 && !strcmp(names[i] + len - 2, "-w");
        if ((!gptq && !weighted) || strlen(measured) + len + 2 > cap) continue;
        strcat(measured, names[i]);
        strcat(measured, ",");
        n_gptq += gptq;
        n_weighted += weighted;
    }
    if (opt->rounding && !strcmp(opt->rounding, "weighted") && !n_weighted)
        return qs_errorf(err, QS_ERR_INPUT, "%s: --rounding weighted, but the sweep measured no weighted format; run qsense profile "
                         "--sensitivity with --sens-formats including q4_0-w, q4_1-w, q5_0-w or q5_1-w", opt->db_path);
    if (opt->rounding && !strcmp(opt->rounding, "gptq") && !n_gptq)
        return qs_errorf(err, QS_ERR_INPUT, "%s: --rounding gptq, but the sweep measured no GPTQ format; run qsense profile "
                         "--sensitivity with --sens-formats including q4_0-gptq, q5_0-gptq, q4_k-gptq ...", opt->db_path);
    return 0;
}

/* One tensor's options: every format the sweep measured on it that the target and rounding
 * allow, at its domain-weighted KL; then the floats, lossless when unmeasured. */
static int tensor_choices(qs_db *db, const qs_plan_options *opt, qs_plan *p, int64_t tensor_id, const char *measured,
                          const qs_plan_tensor *t, qs_plan_choices *c, qs_error *err) {
    const double n = (double)(t->rows * t->cols);
    if (t->rows <= 1) { /* vectors (norms) stay f32, as llama.cpp keeps them */
        qs_plan_choices_add(c, "f32", 0, 4 * n, NULL, 0);
        return 0;
    }
    qs_db_kl_row *rows;
    int nr, rc = qs_db_tensor_kls(db, p->run_id, tensor_id, &rows, &nr, err);
    if (rc) return rc;
    double wsum = 0;
    for (int d = 0; d < p->n_domains; d++) wsum += p->domain_weights[d];
    for (int i = 0; i < nr;) { /* the rows come grouped by format */
        int j = i, seen = 0;
        double dcost[QS_PLAN_MAX_DOMAINS] = {0};
        for (; j < nr && !strcmp(rows[j].format, rows[i].format); j++)
            for (int d = 0; d < p->n_domains; d++)
                if (!strcmp(p->domains[d], rows[j].domain)) {
                    dcost[d] = rows[j].kl, seen = 1;
                    if (rows[j].estimated) p->n_costs_estimated++;
                    else p->n_costs_measured++;
                }
        const qs_format *f = qs_format_find(rows[i].format, NULL);
        if (f && seen && target_allows(p->target, t->name, f) && rounding_allows(opt->rounding, f, measured)) {
            double cost = 0;
            for (int d = 0; d < p->n_domains; d++) cost += p->domain_weights[d] * dcost[d];
            qs_plan_choices_add(c, rows[i].format, cost / wsum, qs_format_bpw(f, t->rows, t->cols) * n / 8, dcost, p->n_domains);
        }
        i = j;
    }
    free(rows);
    qs_plan_choices_add(c, "f16", 0, 2 * n, NULL, 0);
    qs_plan_choices_add(c, "f32", 0, 4 * n, NULL, 0);
    return 0;
}

/* the model's tensors and, for each, its options */
static int load_choices(qs_db *db, const qs_plan_options *opt, qs_plan *p, int64_t model_id, qs_plan_choices **out,
                        qs_error *err) {
    char measured[1024];
    int rc = measured_roundings(db, opt, p->run_id, measured, sizeof measured, err);
    if (rc) return rc;
    qs_db_tensor *t;
    int n;
    if ((rc = qs_db_tensors(db, model_id, QS_DB_BY_ID, &t, &n, err))) return rc;
    p->tensors = calloc((size_t)n + 1, sizeof *p->tensors);
    *out = calloc((size_t)n + 1, sizeof **out);
    if (!p->tensors || !*out) rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    for (int i = 0; i < n && !rc; i++) {
        qs_plan_tensor *x = &p->tensors[i];
        snprintf(x->name, sizeof x->name, "%s", t[i].name);
        x->rows = t[i].rows;
        x->cols = t[i].cols;
        p->n_tensors = i + 1;
        p->total_params += (double)(x->rows * x->cols);
        rc = tensor_choices(db, opt, p, t[i].id, measured, x, &(*out)[i], err);
    }
    free(t);
    return rc;
}

/* the front, then the picks for the budget, written into the plan */
static int choose(qs_plan *p, const qs_plan_options *opt, qs_plan_choices *c, qs_error *err) {
    p->n_curve = qs_plan_trace_front(c, p->n_tensors, &p->curve);
    if (p->n_curve < 0) {
        p->n_curve = 0;
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    }
    p->budget_bytes = opt->budget_bytes > 0 ? opt->budget_bytes : opt->budget_bpw * p->total_params / 8;
    double total;
    if (qs_plan_pick_for_budget(c, p->n_tensors, p->budget_bytes, &total))
        return qs_errorf(err, QS_ERR_USAGE, "the budget of %.0f bytes is below the smallest plan the measured formats allow (%.0f bytes)",
                         p->budget_bytes, total);
    p->total_bytes = total;
    for (int i = 0; i < p->n_tensors; i++) {
        const qs_plan_choices *ci = &c[i];
        qs_plan_tensor *t = &p->tensors[i];
        snprintf(t->format, sizeof t->format, "%s", ci->fmt[ci->pick]);
        t->bytes = ci->bytes[ci->pick];
        t->cost = ci->cost[ci->pick];
        p->predicted_kl += t->cost;
        for (int d = 0; d < p->n_domains; d++) p->predicted_kl_domain[d] += ci->dcost[ci->pick][d];
    }
    return 0;
}

int qs_plan_make(qs_plan **out, const qs_plan_options *opt, qs_error *err) {
    *out = NULL;
    int rc = check_options(opt, err);
    if (rc) return rc;
    qs_db *db;
    if ((rc = qs_db_open(&db, opt->db_path, QS_DB_READ, err))) return rc;
    qs_plan *p = calloc(1, sizeof *p);
    qs_plan_choices *c = NULL;
    int64_t model_id = 0;
    if (!p) rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    else {
        snprintf(p->target, sizeof p->target, "%s", opt->target ? opt->target : "llama.cpp");
        snprintf(p->act, sizeof p->act, "%s", opt->act ? opt->act : "");
    }
    qs_plan_groups groups = {0};
    if (!rc) rc = load_run(db, opt, p, &model_id, err);
    if (!rc) rc = load_choices(db, opt, p, model_id, &c, err);
    if (!rc && opt->act) rc = qs_plan_group_by_input(db, opt, p, c, &groups, err);
    if (!rc) rc = choose(p, opt, c, err);
    if (!rc && opt->act) qs_plan_spread_groups(p, &groups);
    qs_plan_groups_free(&groups);
    if (!rc) measure_additivity(db, p);
    qs_db_estimates est;
    if (!rc && p->n_costs_estimated && qs_db_estimates_of(db, p->run_id, &est)) snprintf(p->est_method, sizeof p->est_method, "%s", est.method);
    free(c);
    qs_db_close(db);
    if (rc) {
        qs_plan_free(p);
        return rc;
    }
    *out = p;
    return 0;
}
