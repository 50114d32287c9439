/* qsense check (see check.h).
 * Thresholds file (docs/check.md):
 *   {"default": {"max_kl": 0.05, "max_kl_p99": 0.5, "max_ppl_ratio": 1.03, "min_top1": 0.90},
 *    "domains": {"legal": {"max_kl": 0.08}},
 *    "baseline": {"tolerance": 0.10}}
 * Every key is optional; unknown keys are errors (a typo must not silently disable a gate). With
 * "baseline", each metric must also be no worse than in the last passing run on the same
 * reference and evaluation set, by more than the relative tolerance. */
#include "check.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_file.h"
#include "core/qs_json.h"
#include "core/qs_output.h"
#include "engine/compare.h"
#include "io/gguf.h"
#include "io/evalset.h"
#include "io/model.h"
#include "plan.h"
#include "quant/format.h"
#include "store/db.h"
#include "tok/vocab.h"

enum { M_KL, M_KL_P99, M_PPL_RATIO, M_TOP1, N_METRICS };
static const char *const METRIC[N_METRICS] = {"kl_mean", "kl_p99", "ppl_ratio", "top1"};
static const char *const LIMIT_KEY[N_METRICS] = {"max_kl", "max_kl_p99", "max_ppl_ratio", "min_top1"};
static const int HIGHER_IS_WORSE[N_METRICS] = {1, 1, 1, 0};

typedef struct {
    double limit[N_METRICS]; /* NAN: no gate */
} limits;

static int parse_limits(cJSON *o, limits *l, const char *path, const char *where, qs_error *err) {
    if (!cJSON_IsObject(o)) return qs_errorf(err, QS_ERR_INPUT, "%s: '%s' must be an object", path, where);
    for (cJSON *it = o->child; it; it = it->next) {
        int k = 0;
        while (k < N_METRICS && strcmp(it->string, LIMIT_KEY[k])) k++;
        if (k == N_METRICS)
            return qs_errorf(err, QS_ERR_INPUT, "%s: unknown key '%s' in '%s' (expected max_kl, max_kl_p99, max_ppl_ratio, min_top1)",
                             path, it->string, where);
        if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0))
            return qs_errorf(err, QS_ERR_INPUT, "%s: '%s.%s' must be a non-negative number", path, where, it->string);
        l->limit[k] = it->valuedouble;
    }
    return 0;
}

typedef struct {
    limits def;
    cJSON *root;
    double tolerance; /* NAN: no baseline */
} thresholds;

static int load_thresholds(const char *path, thresholds *t, qs_error *err) {
    for (int k = 0; k < N_METRICS; k++) t->def.limit[k] = NAN;
    t->tolerance = NAN;
    t->root = NULL;
    if (!path) { /* defaults: the figures a q4-class quantization of a healthy model meets */
        t->def.limit[M_KL] = 0.1;
        t->def.limit[M_PPL_RATIO] = 1.05;
        t->def.limit[M_TOP1] = 0.8;
        return 0;
    }
    char *text;
    size_t n_text;
    int rc = qs_read_file(path, &text, &n_text, err);
    if (rc) return qs_error_prefix(err, "thresholds");
    t->root = qs_json_parse(text, n_text, path, 0, err);
    free(text);
    if (!t->root) return QS_ERR_INPUT;
    if (!cJSON_IsObject(t->root)) return qs_errorf(err, QS_ERR_INPUT, "%s: not a JSON object", path);
    for (cJSON *it = t->root->child; it; it = it->next) {
        if (!strcmp(it->string, "default")) {
            if ((rc = parse_limits(it, &t->def, path, "default", err))) return rc;
        } else if (!strcmp(it->string, "domains")) {
            if (!cJSON_IsObject(it)) return qs_errorf(err, QS_ERR_INPUT, "%s: 'domains' must be an object", path);
            for (cJSON *d = it->child; d; d = d->next) {
                limits tmp;
                char where[128];
                snprintf(where, sizeof where, "domains.%s", d->string);
                if ((rc = parse_limits(d, &tmp, path, where, err))) return rc;
            }
        } else if (!strcmp(it->string, "baseline")) {
            cJSON *tol = cJSON_GetObjectItemCaseSensitive(it, "tolerance");
            if (!cJSON_IsObject(it) || !cJSON_IsNumber(tol) || !(tol->valuedouble >= 0))
                return qs_errorf(err, QS_ERR_INPUT, "%s: 'baseline' must be {\"tolerance\": number >= 0}", path);
            t->tolerance = tol->valuedouble;
        } else {
            return qs_errorf(err, QS_ERR_INPUT, "%s: unknown key '%s' (expected default, domains, baseline)", path, it->string);
        }
    }
    return 0;
}

/* a domain the set does not have would gate nothing: a typo must not switch the gate off */
static int check_threshold_domains(const thresholds *t, const qs_evalset *set, const char *path, qs_error *err) {
    cJSON *doms = t->root ? cJSON_GetObjectItemCaseSensitive(t->root, "domains") : NULL;
    for (cJSON *d = doms ? doms->child : NULL; d; d = d->next) {
        int found = 0;
        for (int i = 0; i < set->n_domains && !found; i++) found = !strcmp(set->domains[i].name, d->string);
        if (found) continue;
        char names[512] = "";
        size_t k = 0;
        for (int i = 0; i < set->n_domains && k < sizeof names - 70; i++)
            k += (size_t)snprintf(names + k, sizeof names - k, "%s%s", i ? ", " : "", set->domains[i].name);
        return qs_errorf(err, QS_ERR_INPUT, "%s: domains.%s: the evaluation set '%s' has no domain '%s' (it has: %s)", path,
                         d->string, set->name, d->string, names);
    }
    return 0;
}

static limits limits_for(const thresholds *t, const char *domain, const char *path) {
    limits l = t->def;
    cJSON *doms = t->root ? cJSON_GetObjectItemCaseSensitive(t->root, "domains") : NULL;
    cJSON *d = doms ? cJSON_GetObjectItemCaseSensitive(doms, domain) : NULL;
    if (d) parse_limits(d, &l, path, domain, NULL);
    return l;
}

static void git_commit(char *out, size_t cap) {
    out[0] = 0;
    FILE *p = popen("git rev-parse HEAD 2>/dev/null", "r");
    if (!p) return;
    if (fgets(out, (int)cap, p)) out[strcspn(out, "\n")] = 0;
    pclose(p);
}

static void xml_escape(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

typedef struct {
    char domain[64];
    double value[N_METRICS], limit[N_METRICS], baseline[N_METRICS];
    int failed[N_METRICS];
} result;

/* the values of the last passing run on the same reference and set */
static void load_baseline(qs_db *db, const char *ref_sha, const char *set, result *r, int n) {
    sqlite3_stmt *st;
    const char *sql = "SELECT value FROM check_results WHERE domain = ? AND metric = ? AND check_id = (SELECT id FROM "
                      "check_runs WHERE reference_sha256 = ? AND eval_set = ? AND passed = 1 ORDER BY id DESC LIMIT 1)";
    if (sqlite3_prepare_v2(qs_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK) return;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < N_METRICS; k++) {
            sqlite3_reset(st);
            sqlite3_bind_text(st, 1, r[i].domain, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, 2, METRIC[k], -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, ref_sha, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, 4, set, -1, SQLITE_TRANSIENT);
            r[i].baseline[k] = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_double(st, 0) : NAN;
        }
    sqlite3_finalize(st);
}

/* engine for the candidate: a model file, or the reference with the plan's formats applied in memory */
static int candidate_engine(const qs_check_options *o, qs_model *ref, qs_model **cand, qs_engine **e, float ***bufs, qs_error *err) {
    if (!o->plan) {
        int rc = qs_model_open(cand, o->candidate, NULL, err);
        if (!rc) rc = qs_engine_new(e, *cand, o->threads, err);
        return rc;
    }
    qs_plan *p;
    int rc = qs_plan_read_json(&p, o->plan, err);
    if (rc) return rc;
    char fp[65];
    if ((rc = qs_model_fingerprint(ref, fp, err)) || (rc = qs_engine_new(e, ref, o->threads, err))) {
        qs_plan_free(p);
        return rc;
    }
    if (strcmp(fp, p->model_fingerprint)) {
        qs_plan_free(p);
        return qs_errorf(err, QS_ERR_INPUT, "%s: the plan was made for the model with sha256 %.16s..., not %s", o->plan,
                         p->model_fingerprint, o->reference);
    }
    *bufs = calloc((size_t)ref->n_tensors, sizeof(float *));
    const int L = ref->arch.n_layers;
    for (int i = 0; i < ref->n_tensors && !rc; i++) {
        const qs_tensor *t = &ref->tensors[i];
        const qs_plan_tensor *pt = NULL;
        for (int k = 0; k < p->n_tensors; k++)
            if (!strcmp(p->tensors[k].name, t->name)) pt = &p->tensors[k];
        if (!pt || !strcmp(pt->format, "f32") || t->n_dims < 2) continue;
        const qs_format *f = qs_format_find(pt->format, err);
        if (!f) { rc = QS_ERR_INPUT; break; }
        const int64_t rows = qs_tensor_numel(t) / t->ne[0], n = rows * t->ne[0];
        float *w = malloc(sizeof(float) * (size_t)n), *imp = NULL, *gram = NULL;
        (*bufs)[i] = malloc(sizeof(float) * (size_t)n);
        qs_tensor_dequantize_rows(t, 0, rows, w);
        if (qs_format_needs_calib(f)) {
            if (!o->db) rc = qs_errorf(err, QS_ERR_USAGE, "%s: tensor %s uses %s rounding (%s): give --db, the profile database "
                                       "the plan came from, for the activation statistics", o->plan, t->name,
                                       f->gptq ? "GPTQ" : "weighted", f->name);
            else rc = qs_plan_load_calib(o->db, p->model_fingerprint, t->name, t->ne[0], f->gptq, &imp, &gram, err);
        }
        const qs_calib cal = {imp, gram, !rc && !imp && qs_format_needs_calib(f)}; /* no statistics: an untied embedding */
        if (!rc) rc = qs_format_fake_quantize_calib(f, w, (*bufs)[i], rows, t->ne[0], &cal, err);
        free(w);
        free(imp);
        free(gram);
        int layer, off = 0;
        char kind[32] = "";
        if (!rc && sscanf(t->name, "blk.%d.%n", &layer, &off) == 1 && off > 0) {
            snprintf(kind, sizeof kind, "%.*s", (int)strcspn(t->name + off, "."), t->name + off);
            for (int k = 0; k < QS_LIN_OUTPUT; k++)
                if (!strcmp(kind, qs_linear_name(k))) rc = qs_engine_override(*e, layer, k, (*bufs)[i], err);
        } else if (!rc && !strcmp(t->name, "output.weight")) {
            rc = qs_engine_override(*e, L, QS_LIN_OUTPUT, (*bufs)[i], err);
        } else if (!rc && !strcmp(t->name, "token_embd.weight")) {
            qs_engine_override_embedding(*e, (*bufs)[i]);
            if (ref->arch.tied_output) rc = qs_engine_override(*e, L, QS_LIN_OUTPUT, (*bufs)[i], err);
        }
    }
    qs_plan_free(p);
    return rc;
}

int qs_check_run(const qs_check_options *o, qs_check_summary *sum, qs_error *err) {
    memset(sum, 0, sizeof *sum);
    thresholds th;
    int rc = load_thresholds(o->thresholds, &th, err);
    qs_model *ref = NULL, *cand = NULL;
    qs_engine *re = NULL, *ce = NULL;
    qs_vocab *v = NULL;
    qs_evalset *set = NULL;
    qs_db *db = NULL;
    float **bufs = NULL;
    result *res = NULL;
    if (rc) goto out;
    if ((rc = qs_evalset_load(&set, o->data, QS_DATASETS_DIR, 4096, err)) || (rc = check_threshold_domains(&th, set, o->thresholds, err)))
        goto out;
    if ((rc = qs_model_open(&ref, o->reference, NULL, err)) || (rc = qs_vocab_for_model(&v, ref, err)) ||
        (rc = qs_engine_new(&re, ref, o->threads, err)) || (rc = candidate_engine(o, ref, &cand, &ce, &bufs, err)))
        goto out;
    /* every input is open now: refuse outputs over them before the long evaluation, not after */
    if (o->db) qs_input_note(o->db);
    if ((o->junit && (rc = qs_output_check(o->junit, "--junit", err))) ||
        (o->markdown && (rc = qs_output_check(o->markdown, "--markdown", err))))
        goto out;
    if (o->junit && o->markdown && qs_same_file(o->junit, o->markdown)) {
        rc = qs_errorf(err, QS_ERR_USAGE, "--junit and --markdown name the same file (%s); give each its own", o->junit);
        goto out;
    }
    qs_engine_set_llamacpp_numerics(re, o->llamacpp_numerics);
    qs_engine_set_llamacpp_numerics(ce, o->llamacpp_numerics);
    res = calloc((size_t)set->n_domains, sizeof(result));
    for (int d = 0; d < set->n_domains && !rc; d++) {
        const qs_eval_domain *dom = &set->domains[d];
        int *ids;
        size_t n_ids;
        if ((rc = qs_tokenize(v, dom->text, dom->n_text, 1, &ids, &n_ids, err))) break;
        size_t use = (size_t)dom->tokens < n_ids ? (size_t)dom->tokens : n_ids;
        qs_compare_result r;
        rc = qs_compare_run(re, ce, ids, use, o->ctx, v->add_bos ? v->bos : -1, 0, NULL, NULL, &r, err);
        free(ids);
        if (rc) {
            qs_error_prefix(err, "%.300s: domain '%s'", dom->files ? dom->files : o->data, dom->name);
            break;
        }
        snprintf(res[d].domain, sizeof res[d].domain, "%s", dom->name);
        res[d].value[M_KL] = r.kl_mean;
        res[d].value[M_KL_P99] = r.kl_p99;
        res[d].value[M_PPL_RATIO] = r.ppl_ratio;
        res[d].value[M_TOP1] = r.same_top1;
        limits l = limits_for(&th, dom->name, o->thresholds);
        memcpy(res[d].limit, l.limit, sizeof l.limit);
    }
    if (rc) goto out;
    char ref_sha[65], cand_sha[65] = "", commit[64];
    if ((rc = qs_model_fingerprint(ref, ref_sha, err))) goto out;
    if (cand && (rc = qs_model_fingerprint(cand, cand_sha, err))) goto out;
    if (o->db) {
        if ((rc = qs_db_open(&db, o->db, QS_DB_CREATE, err))) goto out;
        if (!isnan(th.tolerance)) load_baseline(db, ref_sha, set->name, res, set->n_domains);
    } else if (!isnan(th.tolerance)) {
        rc = qs_errorf(err, QS_ERR_USAGE, "baseline thresholds need --db (the runs to compare with)");
        goto out;
    }
    for (int d = 0; d < set->n_domains; d++)
        for (int k = 0; k < N_METRICS; k++) {
            double v2 = res[d].value[k], lim = res[d].limit[k], base = res[d].baseline[k];
            if (isnan(th.tolerance)) base = NAN;
            res[d].baseline[k] = base;
            int bad = 0, gated = 0;
            if (!isnan(lim)) gated = 1, bad |= HIGHER_IS_WORSE[k] ? v2 > lim : v2 < lim;
            if (!isnan(base)) {
                gated = 1;
                /* kl and ppl-ratio excess worsen upward; top-1 downward */
                if (k == M_PPL_RATIO) bad |= (v2 - 1) > (base - 1) * (1 + th.tolerance) + 1e-12 && v2 > base;
                else if (HIGHER_IS_WORSE[k]) bad |= v2 > base * (1 + th.tolerance) + 1e-12;
                else bad |= v2 < base * (1 - th.tolerance) - 1e-12;
            }
            if (!gated) continue;
            res[d].failed[k] = bad;
            sum->n_checks++;
            sum->n_failed += bad;
        }
    /* the first run of a baseline-only gate has nothing to compare with yet: it records the baseline */
    if (sum->n_checks == 0 && isnan(th.tolerance)) {
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: these thresholds gate nothing on the evaluation set '%s' (no limit and no "
                       "baseline applies to any domain): a gate that cannot fail is refused", o->thresholds ? o->thresholds : "thresholds",
                       set->name);
        goto out;
    }
    git_commit(commit, sizeof commit);
    if (db) {
        qs_db_begin(db, NULL);
        sqlite3_stmt *st;
        sqlite3_prepare_v2(qs_db_handle(db),
                           "INSERT INTO check_runs (git_commit, candidate, candidate_sha256, reference_sha256, eval_set, passed)"
                           " VALUES (?,?,?,?,?,?)", -1, &st, NULL);
        sqlite3_bind_text(st, 1, commit, -1, SQLITE_TRANSIENT);
        /* absolute, so reports run elsewhere can still find the file */
        char *abs = realpath(o->plan ? o->plan : o->candidate, NULL);
        sqlite3_bind_text(st, 2, abs ? abs : o->plan ? o->plan : o->candidate, -1, SQLITE_TRANSIENT);
        free(abs);
        sqlite3_bind_text(st, 3, cand_sha, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, ref_sha, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 5, set->name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 6, sum->n_failed == 0);
        int ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
        int64_t id = sqlite3_last_insert_rowid(qs_db_handle(db));
        /* a plan (given, or named inside the candidate GGUF by qsense quantize) that the database
         * knows gets its measured figures beside the predicted ones */
        char plan_sha[65] = "";
        if (o->plan) {
            qs_plan *pl;
            if (qs_plan_read_json(&pl, o->plan, NULL) == 0) {
                memcpy(plan_sha, pl->plan_sha256, sizeof plan_sha);
                qs_plan_free(pl);
            }
        } else if (cand && cand->gguf) {
            qs_gguf_get_str(cand->gguf, "qsense.plan.sha256", plan_sha, sizeof plan_sha, NULL);
        }
        for (int d = 0; d < set->n_domains && ok && plan_sha[0]; d++) {
            qs_plan_measured pm = {res[d].value[M_KL], res[d].value[M_KL_P99], res[d].value[M_PPL_RATIO], res[d].value[M_TOP1]};
            ok = qs_plan_record_measured(db, plan_sha, id, res[d].domain, &pm, err) >= 0;
        }
        for (int d = 0; d < set->n_domains && ok; d++)
            for (int k = 0; k < N_METRICS; k++) {
                qs_db_value row[] = {{"check_id", 2, (double)id, NULL}, {"domain", 1, 0, res[d].domain},
                                     {"metric", 1, 0, METRIC[k]}, {"value", 0, res[d].value[k], NULL},
                                     {"threshold", 0, res[d].limit[k], NULL}, {"baseline", 0, res[d].baseline[k], NULL},
                                     {"passed", 2, !res[d].failed[k], NULL}};
                ok = qs_db_put_row(db, "check_results", row, 7, err) == 0;
            }
        if (ok) qs_db_commit(db, NULL);
        else qs_db_rollback(db);
    }
    if (o->junit) {
        qs_output *out;
        if ((rc = qs_output_open(&out, o->junit, "--junit", 0, err))) goto out;
        FILE *f = qs_output_stream(out);
        fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"qsense check\" tests=\"%d\" failures=\"%d\">\n",
                sum->n_checks, sum->n_failed);
        for (int d = 0; d < set->n_domains; d++)
            for (int k = 0; k < N_METRICS; k++) {
                if (isnan(res[d].limit[k]) && isnan(res[d].baseline[k])) continue;
                fprintf(f, "  <testcase classname=\"qsense.check.");
                xml_escape(f, res[d].domain);
                fprintf(f, "\" name=\"%s\">", METRIC[k]);
                if (res[d].failed[k]) {
                    char msg[512];
                    snprintf(msg, sizeof msg, "%s on domain %s: %.6g, threshold %s %.6g%s", METRIC[k], res[d].domain,
                             res[d].value[k], HIGHER_IS_WORSE[k] ? "<=" : ">=", res[d].limit[k],
                             isnan(res[d].baseline[k]) ? "" : " (or baseline within tolerance)");
                    fprintf(f, "<failure message=\"");
                    xml_escape(f, msg);
                    fprintf(f, "\"/>");
                }
                fprintf(f, "</testcase>\n");
            }
        fprintf(f, "</testsuite>\n");
        if ((rc = qs_output_commit(out, err))) goto out;
    }
    if (o->markdown) {
        qs_output *out;
        if ((rc = qs_output_open(&out, o->markdown, "--markdown", 0, err))) goto out;
        FILE *f = qs_output_stream(out);
        fprintf(f, "### qsense check: %s\n\n%s vs %s on `%s`%s%s\n\n| domain | KL | KL p99 | PPL ratio | top-1 | verdict |\n| --- | --- | --- | --- | --- | --- |\n",
                sum->n_failed ? "FAILED" : "passed", o->plan ? o->plan : o->candidate, o->reference, set->name,
                commit[0] ? ", commit " : "", commit);
        for (int d = 0; d < set->n_domains; d++) {
            int bad = 0;
            for (int k = 0; k < N_METRICS; k++) bad |= res[d].failed[k];
            fprintf(f, "| %s | %.5f%s | %.4f%s | %.4f%s | %.2f %%%s | %s |\n", res[d].domain, res[d].value[M_KL],
                    res[d].failed[M_KL] ? " **(fail)**" : "", res[d].value[M_KL_P99], res[d].failed[M_KL_P99] ? " **(fail)**" : "",
                    res[d].value[M_PPL_RATIO], res[d].failed[M_PPL_RATIO] ? " **(fail)**" : "", 100 * res[d].value[M_TOP1],
                    res[d].failed[M_TOP1] ? " **(fail)**" : "", bad ? "fail" : "pass");
        }
        if ((rc = qs_output_commit(out, err))) goto out;
    }
    printf("%-16s %10s %10s %10s %8s  %s\n", "domain", "KL", "KL p99", "PPL ratio", "top-1", "verdict");
    for (int d = 0; d < set->n_domains; d++) {
        int bad = 0;
        for (int k = 0; k < N_METRICS; k++) bad |= res[d].failed[k];
        printf("%-16s %10.5f %10.4f %10.4f %7.2f%%  %s\n", res[d].domain, res[d].value[M_KL], res[d].value[M_KL_P99],
               res[d].value[M_PPL_RATIO], 100 * res[d].value[M_TOP1], bad ? "FAIL" : "pass");
    }
    printf("%d checks, %d failed\n", sum->n_checks, sum->n_failed);
out:
    if (bufs && ref)
        for (int i = 0; i < ref->n_tensors; i++) free(bufs[i]);
    free(bufs);
    free(res);
    cJSON_Delete(th.root);
    qs_engine_free(ce);
    qs_engine_free(re);
    qs_vocab_free(v);
    qs_model_close(cand);
    qs_model_close(ref);
    qs_evalset_free(set);
    qs_db_close(db);
    return rc;
}
