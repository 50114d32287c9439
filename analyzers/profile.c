/* The profile driver (see profile.h). Jobs are named "<analyzer>/<tensor>"; the calibration
 * pass runs only if a pending job needs activations, and is deterministic, so a resumed run
 * sees exactly the statistics an uninterrupted one would. */
#include "analyzers/profile.h"
#include "analyzers/profile_memory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzers/analyzer.h"
#include "analyzers/calibration.h"
#include "analyzers/profile_sweep.h"
#include "analyzers/sensitivity.h"
#include "analyzers/sweep_mpi.h"
#include "core/qs_dtype.h"
#include "core/qs_file.h"
#include "core/qs_path.h"
#include "core/qs_sha256.h"
#include "engine/engine.h"
#include "io/evalset.h"
#include "store/h5export.h"
#include "tok/vocab.h"

#define QS_SENS_DEFAULT_FORMATS "q8_0,int8-channel-sym,q6_k,q5_0,q4_k,q4_0,int4-g128-asym,q3_k,int3-g128-asym,q2_k,int2-g64-asym"

static const qs_analyzer *const ANALYZERS[] = {&qs_analyzer_weights, &qs_analyzer_activations, &qs_analyzer_qerror};
#define N_ANALYZERS 3

/* the layer whose inputs a job needs observed first (-1: none) */
static int job_layer(const qs_profile *p, const qs_analyzer *a, int i) {
    const qs_prof_tensor *pt = &p->tensors[i];
    if (!a->needs_activations || pt->linear < 0) return -1;
    return pt->linear == QS_LIN_OUTPUT ? p->m->arch.n_layers : pt->layer;
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
        for (int k = 0; k < QS_LIN_OUTPUT; k++)
            if (!strcmp(kind, qs_linear_name(k))) pt->linear = k;
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

/* the options with their defaults filled in: ctx 512, capped by the training context */
static qs_profile_options with_defaults(const qs_profile_options *opt, const qs_model *m) {
    qs_profile_options o = *opt;
    if (o.ctx <= 0) o.ctx = m->arch.ctx_train > 0 && m->arch.ctx_train < 512 ? m->arch.ctx_train : 512;
    if (o.calib_tokens <= 0) o.calib_tokens = 8192;
    if (!o.eval) o.eval = "debian";
    if (!o.sens_formats) o.sens_formats = QS_SENS_DEFAULT_FORMATS;
    if (o.eval_ctx <= 0) o.eval_ctx = o.ctx;
    if (o.topk <= 0) o.topk = 64;
    if (!o.sens_mode) o.sens_mode = "exact";
    return o;
}

/* what one profile run holds while it works */
typedef struct {
    qs_profile p;
    qs_model *m;
    qs_evalset *evalset; /* the sweep's evaluation set (NULL without --sensitivity) */
    qs_vocab *v;
    char *text;          /* the calibration text */
    size_t n_text;
    int *ids;
    size_t n_ids;
    char model_fp[65], text_fp[65];
    int64_t model_id;
} run_state;

static int check_sweep_mode(const qs_profile_options *opt, qs_error *err) {
    if (strcmp(opt->sens_mode, "exact") && strcmp(opt->sens_mode, "calibrated") && strcmp(opt->sens_mode, "gradient"))
        return qs_errorf(err, QS_ERR_USAGE, "--sens-mode must be exact, calibrated or gradient, not '%s'", opt->sens_mode);
    if (opt->validate > 0 && !strcmp(opt->sens_mode, "exact"))
        return qs_errorf(err, QS_ERR_USAGE, "--validate checks estimates: it needs --sens-mode calibrated or gradient");
    return 0;
}

/* the calibrated sweep estimates from output errors: the analyzers measure every sweep format */
static int add_sweep_formats(qs_profile *p, qs_error *err) {
    const qs_format **all = realloc(p->formats, sizeof *all * (size_t)(p->n_formats + p->n_formats_sens + 1));
    if (!all) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    p->formats = all;
    for (int k = 0; k < p->n_formats_sens; k++) {
        int have = 0;
        for (int m = 0; m < p->n_formats; m++) have |= p->formats[m] == p->formats_sens[k];
        if (!have) p->formats[p->n_formats++] = p->formats_sens[k];
    }
    return 0;
}

/* How many tokens each evaluation domain's text gives, so that the estimate counts what a short
 * text will use rather than its budget */
static int count_eval_tokens(run_state *r, qs_error *err) {
    int rc = r->v ? 0 : qs_vocab_for_model(&r->v, r->m, err);
    for (int d = 0; !rc && d < r->evalset->n_domains; d++) {
        qs_eval_domain *dom = &r->evalset->domains[d];
        int *ids = NULL;
        size_t n = 0;
        if (!(rc = qs_tokenize(r->v, dom->text, dom->n_text, 1, &ids, &n, err))) dom->n_text_tokens = (int64_t)n;
        free(ids);
    }
    return rc;
}

/* The formats, the evaluation set, and the refusal of a run that cannot fit (now, with the
 * figures, not killed hours later); then the calibration text and the fingerprints. */
static int prepare(run_state *r, const qs_profile_options *opt, qs_profile_progress_fn progress, void *user, qs_error *err) {
    qs_profile *p = &r->p;
    int rc;
    if (opt->sensitivity) {
        if ((rc = qs_format_parse_list(opt->sens_formats, &p->formats_sens, &p->n_formats_sens, err))) return rc;
        if ((rc = qs_evalset_load(&r->evalset, opt->eval, QS_DATASETS_DIR, 4096, err))) return rc;
        if (opt->act_formats && (rc = qs_act_format_parse_list(opt->act_formats, 0, &p->act_formats, &p->n_act_formats, err)))
            return qs_error_prefix(err, "--act-formats"), rc;
        if (opt->kv_formats && (rc = qs_act_format_parse_list(opt->kv_formats, 1, &p->kv_formats, &p->n_kv_formats, err)))
            return qs_error_prefix(err, "--kv-formats"), rc;
    }
    if ((rc = qs_format_parse_list(opt->formats, &p->formats, &p->n_formats, err))) return rc;
    if (opt->sensitivity && (rc = check_sweep_mode(opt, err))) return rc;
    if (opt->sensitivity && !strcmp(opt->sens_mode, "calibrated") && (rc = add_sweep_formats(p, err))) return rc;
    for (int k = 0; k < p->n_formats; k++) p->store_gram |= p->formats[k]->gptq || p->formats[k]->awq;
    int sweep_gram = 0; /* a sweep format rounds with the inputs' Gram matrices */
    for (int k = 0; opt->sensitivity && k < p->n_formats_sens; k++)
        sweep_gram |= p->formats_sens[k]->gptq || p->formats_sens[k]->awq;
    p->store_gram |= sweep_gram;
    p->keep_gram = p->keep_gram && sweep_gram; /* an MPI worker set it: it has no database to read them from */
    if (opt->sensitivity && (rc = count_eval_tokens(r, err))) return rc;
    if ((rc = qs_profile_check_memory(r->m, opt, r->evalset, p->keep_gram, &p->spill_caches, err))) return rc;
    p->db_path = opt->db_path;
    if (progress) {
        qs_profile_memory est;
        qs_profile_estimate_memory(r->m, opt, r->evalset, p->keep_gram, &est);
        const double mib = 1024.0 * 1024.0;
        progress(user, "memory", (long)((est.own - (p->spill_caches ? est.sens_cache : 0)) / mib),
                 (long)(qs_profile_memory_budget(opt) / mib), (int)(est.file / mib), p->spill_caches ? (int)(est.sens_cache / mib) : 0);
    }
    if ((rc = calibration_text(opt->data_path, &r->text, &r->n_text, err))) return rc;
    if (r->n_text == 0) return qs_errorf(err, QS_ERR_INPUT, "%s: the calibration text is empty", opt->data_path);
    if (progress) progress(user, "fingerprint", 0, 1, 0, 0);
    if ((rc = qs_model_fingerprint(r->m, r->model_fp, err))) return rc;
    qs_sha256_hex(r->text, r->n_text, r->text_fp);
    /* NaN/Inf weights would poison every statistic: refuse before the database is touched */
    return qs_model_check_finite(r->m, err);
}

/* The run's settings as JSON: everything that changes its numbers. */
static void settings_json(const run_state *r, const qs_profile_options *opt, char *out, size_t cap) {
    const qs_profile *p = &r->p;
    size_t k = (size_t)snprintf(out, cap,
                                "{\"model_sha256\": \"%s\", \"data\": \"%s\", \"data_sha256\": \"%s\", \"ctx\": %d, "
                                "\"calib_tokens\": %d, \"qsense_version\": \"%s\", \"formats\": \"",
                                r->model_fp, opt->data_path, r->text_fp, opt->ctx, opt->calib_tokens, QS_VERSION);
#define APPEND(...) (k += k < cap ? (size_t)snprintf(out + k, cap - k, __VA_ARGS__) : 0)
    for (int f = 0; f < p->n_formats; f++) APPEND(f ? ",%s" : "%s", p->formats[f]->name);
    APPEND("\"");
    if (opt->sensitivity) {
        const qs_evalset *set = r->evalset;
        APPEND(", \"sensitivity\": {\"eval\": \"%s\", \"ctx\": %d, \"topk\": %d, \"domains\": [", set->name, opt->eval_ctx, opt->topk);
        for (int d = 0; d < set->n_domains; d++)
            APPEND("%s{\"name\": \"%s\", \"tokens\": %lld, \"sha256\": \"%s\"}", d ? ", " : "", set->domains[d].name,
                   (long long)set->domains[d].tokens, set->domains[d].sha256);
        APPEND("], \"formats\": \"");
        for (int f = 0; f < p->n_formats_sens; f++) APPEND(f ? ",%s" : "%s", p->formats_sens[f]->name);
        APPEND("\"");
        /* the exact mode's settings are as they were before there were modes: its runs resume */
        if (strcmp(opt->sens_mode, "exact")) APPEND(", \"mode\": \"%s\", \"validate\": %d", opt->sens_mode, opt->validate);
        /* only when asked for, so the runs before there were site formats resume */
        for (int f = 0; f < p->n_act_formats; f++) APPEND(f ? ",%s" : ", \"act_formats\": \"%s", p->act_formats[f]->name);
        if (p->n_act_formats) APPEND("\"");
        for (int f = 0; f < p->n_kv_formats; f++) APPEND(f ? ",%s" : ", \"kv_formats\": \"%s", p->kv_formats[f]->name);
        if (p->n_kv_formats) APPEND("\"");
        APPEND("}");
    }
    APPEND("}");
#undef APPEND
}

static int put_formats(qs_db *db, const qs_format *const *formats, int n, int64_t **ids, qs_error *err) {
    *ids = calloc((size_t)n + 1, sizeof(int64_t));
    if (!*ids) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    int rc = 0;
    for (int k = 0; k < n && !rc; k++) {
        const qs_format *f = formats[k];
        rc = qs_db_put_format(db, f->name, qs_family_name(f->family), f->bits, qs_granularity_name(f), f->group, f->symmetric,
                              f->clip_search, &(*ids)[k], err);
    }
    return rc;
}

/* what each tensor is (its layer, kind and linear), in the model's order */
static int classify_all(run_state *r, qs_error *err) {
    qs_profile *p = &r->p;
    p->tensors = calloc((size_t)r->m->n_tensors + 1, sizeof(qs_prof_tensor));
    p->n_tensors = r->m->n_tensors;
    if (!p->tensors) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    for (int i = 0; i < r->m->n_tensors; i++) classify(r->m, &r->m->tensors[i], &p->tensors[i]);
    return 0;
}

/* The model, its formats and tensors, and the run (found again by the key of its settings, so a
 * rerun resumes), in one transaction. */
static int register_run(run_state *r, const qs_profile_options *opt, qs_profile_summary *sum, qs_error *err) {
    qs_profile *p = &r->p;
    const qs_model *m = r->m;
    qs_db *db = p->db;
    int64_t params = 0;
    for (int i = 0; i < m->n_tensors; i++) params += qs_tensor_numel(&m->tensors[i]);
    qs_db_model dm = {r->model_fp, opt->model_path, m->format, m->arch.arch, params, m->arch.n_layers, m->arch.dim,
                      m->arch.hidden_dim, m->arch.n_heads, m->arch.n_kv_heads, m->arch.n_vocab};
    int rc = qs_db_begin(db, err);
    if (rc) return rc;
    rc = qs_db_put_model(db, &dm, &r->model_id, err);
    if (!rc) rc = put_formats(db, p->formats, p->n_formats, &p->format_ids, err);
    if (!rc && opt->sensitivity) rc = put_formats(db, p->formats_sens, p->n_formats_sens, &p->format_ids_sens, err);
    for (int i = 0; i < m->n_tensors && !rc; i++) {
        rc = qs_db_put_tensor(db, r->model_id, m->tensors[i].name, p->tensors[i].layer, p->tensors[i].kind, p->tensors[i].rows,
                              p->tensors[i].cols, qs_dtype_name(m->tensors[i].type), &p->tensors[i].db_id, err);
    }
    char settings[8192], keysrc[8192], key[65];
    settings_json(r, opt, settings, sizeof settings);
    snprintf(keysrc, sizeof keysrc, "%s", settings);
    /* the text's path does not change the numbers; its content does */
    char *dp = strstr(keysrc, "\"data\": \"");
    if (dp) memset(dp + 9, '_', strcspn(dp + 9, "\""));
    qs_sha256_hex(keysrc, strlen(keysrc), key);
    if (!rc) rc = qs_db_get_run(db, key, r->model_id, settings, &p->run_id, &sum->resumed, err);
    if (rc) {
        qs_db_rollback(db);
        return rc;
    }
    if ((rc = qs_db_commit(db, err))) return rc;
    sum->run_id = p->run_id;
    sum->n_tensors = p->n_tensors;
    sum->n_formats = p->n_formats;
    return 0;
}

/* The analyzer jobs the database does not have yet, in the order of the layer whose inputs they
 * need (none first), so the calibration advances a layer at a time and a layer's X^T X is freed
 * after its jobs. */
typedef struct {
    int n;
    char (*name)[160];
    int *analyzer, *tensor, *layer; /* in run order */
    long *cost;                     /* work estimate, for an honest ETA */
    int need_activations;
} job_list;

static void jobs_free(job_list *j) {
    free(j->name);
    free(j->analyzer);
    free(j->tensor);
    free(j->layer);
    free(j->cost);
    memset(j, 0, sizeof *j);
}

static int pending_jobs(const qs_profile *p, qs_profile_summary *sum, job_list *out, qs_error *err) {
    memset(out, 0, sizeof *out);
    const size_t cap = (size_t)p->n_tensors * N_ANALYZERS + 1;
    job_list j = {0, malloc(sizeof(*j.name) * cap), malloc(sizeof(int) * cap), malloc(sizeof(int) * cap),
                  malloc(sizeof(int) * cap), malloc(sizeof(long) * cap), 0};
    int *found_a = malloc(sizeof(int) * cap), *found_t = malloc(sizeof(int) * cap), n_found = 0, rc = 0;
    if (!j.name || !j.analyzer || !j.tensor || !j.layer || !j.cost || !found_a || !found_t)
        rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    for (int a = 0; a < N_ANALYZERS && !rc; a++)
        for (int i = 0; i < p->n_tensors; i++) {
            if (!ANALYZERS[a]->applies(p, i)) continue;
            sum->jobs_total++;
            char name[160];
            snprintf(name, sizeof name, "%s/%s", ANALYZERS[a]->name, p->tensors[i].t->name);
            int done = qs_db_job_done(p->db, p->run_id, name, err);
            if (done < 0) { rc = done; break; }
            if (done) { sum->jobs_done_before++; continue; }
            found_a[n_found] = a;
            found_t[n_found++] = i;
            j.need_activations |= ANALYZERS[a]->needs_activations;
        }
    const int L = p->m->arch.n_layers;
    for (int l = -1; l <= L && !rc; l++)
        for (int k = 0; k < n_found; k++) {
            const qs_analyzer *a = ANALYZERS[found_a[k]];
            if (job_layer(p, a, found_t[k]) != l) continue;
            const qs_prof_tensor *pt = &p->tensors[found_t[k]];
            snprintf(j.name[j.n], sizeof j.name[0], "%s/%s", a->name, pt->t->name);
            j.analyzer[j.n] = found_a[k];
            j.tensor[j.n] = found_t[k];
            j.layer[j.n] = l;
            /* values touched, times the formats for the output error */
            long c = a == &qs_analyzer_qerror ? (long)(pt->rows * pt->cols) * (p->n_formats + 1) * 4
                   : a == &qs_analyzer_activations ? (long)pt->cols : (long)(pt->rows * pt->cols);
            j.cost[j.n++] = c > 0 ? c : 1;
        }
    free(found_a);
    free(found_t);
    if (rc) jobs_free(&j);
    *out = j;
    return rc;
}

/* The calibration pass, opened: the text tokenized, the statistics allocated (p->want_gram set) */
static int open_calibration(run_state *r, const qs_profile_options *opt, qs_calib_cursor *cur, int64_t *tokens, qs_error *err) {
    qs_profile *p = &r->p;
    int rc = r->v ? 0 : qs_vocab_for_model(&r->v, r->m, err);
    if (!rc) rc = qs_tokenize(r->v, r->text, r->n_text, 1, &r->ids, &r->n_ids, err);
    if (!rc && r->n_ids < QS_PROFILE_MIN_CALIB_TOKENS)
        rc = qs_errorf(err, QS_ERR_INPUT,
                       "%s: the calibration text gives only %zu tokens; activation statistics need at least %d (give a "
                       "longer --data text)", opt->data_path, r->n_ids, QS_PROFILE_MIN_CALIB_TOKENS);
    if (!rc && !(p->acts = calloc((size_t)(r->m->arch.n_layers + 1) * QS_LIN_COUNT, sizeof(qs_act_stats))))
        rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    if (!rc) rc = qs_calib_open(cur, p, opt, r->ids, r->n_ids, r->v->add_bos ? r->v->bos : -1, tokens, err);
    return rc;
}

/* 1 when a sweep format rounds with the inputs' statistics (weighted, GPTQ) */
static int sweep_needs_statistics(const qs_profile *p, const qs_profile_options *opt) {
    int need = 0;
    for (int f = 0; opt->sensitivity && f < p->n_formats_sens; f++) need |= qs_format_needs_calib(p->formats_sens[f]);
    for (int f = 0; opt->sensitivity && f < p->n_act_formats; f++) need |= p->act_formats[f]->is_static; /* their ranges */
    return need;
}

/* Runs the pending analyzer jobs, each in its own transaction, advancing the calibration pass
 * (when a job or the sweep needs activations) just before the first job of each layer. */
static int run_jobs(run_state *r, const qs_profile_options *opt, qs_profile_progress_fn progress, void *user,
                    qs_profile_summary *sum, qs_error *err) {
    qs_profile *p = &r->p;
    const int L = r->m->arch.n_layers;
    job_list jobs;
    int rc = pending_jobs(p, sum, &jobs, err);
    if (rc) return rc;
    p->want_gram = calloc((size_t)L + 1, 1);
    if (!p->want_gram) rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    for (int k = 0; k < jobs.n && !rc; k++)
        if (jobs.layer[k] >= 0) p->want_gram[jobs.layer[k]] = 1;
    /* the analyzers store a layer's Gram matrices in the database with its jobs and free them
     * after (an 8B model's would be 32 GB together); a GPTQ or AWQ sweep format reads them back */
    /* weighted-rounding and GPTQ formats in the sweep need the inputs' statistics even when every
     * analyzer job is done (a resumed run): the calibration is deterministic, so recompute it */
    const int sweep_needs_acts = sweep_needs_statistics(p, opt);
    qs_calib_cursor cur = {0};
    if (!rc && (jobs.need_activations || sweep_needs_acts)) rc = open_calibration(r, opt, &cur, &sum->calib_tokens, err);
    long total_cost = 0, done_cost = 0, layer_cost = 0;
    for (int k = 0; k < jobs.n; k++) total_cost += jobs.cost[k];
    if (cur.e) { /* advancing the calibration one layer: its tokens times the layer's weights */
        const qs_arch *ar = &r->m->arch;
        double per_layer = (double)ar->dim * ((double)ar->n_heads * ar->head_dim * 2 + (double)ar->n_kv_heads * ar->head_dim * 2 +
                                              3.0 * ar->hidden_dim);
        layer_cost = (long)(per_layer * (double)sum->calib_tokens / 64);
        total_cost += layer_cost * (L + 1);
    }
    for (int k = 0; k < jobs.n && !rc; k++) {
        if (progress) progress(user, "jobs", done_cost, total_cost, k, jobs.n);
        if (cur.e && jobs.layer[k] >= cur.next) {
            done_cost += layer_cost * (jobs.layer[k] + 1 - cur.next);
            if ((rc = qs_calib_advance(&cur, jobs.layer[k], err))) break;
        }
        done_cost += jobs.cost[k];
        if ((rc = qs_db_begin(p->db, err))) break;
        rc = ANALYZERS[jobs.analyzer[k]]->run(p, jobs.tensor[k], err);
        if (!rc) rc = qs_db_mark_job(p->db, p->run_id, jobs.name[k], err);
        if (rc) {
            qs_db_rollback(p->db);
            qs_error_prefix(err, "job %s", jobs.name[k]);
            break;
        }
        if ((rc = qs_db_commit(p->db, err))) break;
        sum->jobs_run++;
        const int l = jobs.layer[k];
        if (l >= 0 && (k + 1 == jobs.n || jobs.layer[k + 1] != l)) qs_calib_free_grams(p, l);
    }
    /* the sweep rounds with every layer's statistics */
    if (!rc && cur.e && sweep_needs_acts) rc = qs_calib_advance(&cur, L, err);
    qs_calib_close(&cur);
    if (!rc && progress) progress(user, "jobs", total_cost > 0 ? total_cost : 1, total_cost > 0 ? total_cost : 1, jobs.n, jobs.n);
    jobs_free(&jobs);
    return rc;
}

static void run_state_free(run_state *r) {
    qs_profile *p = &r->p;
    if (p->acts) {
        for (int i = 0; i < (r->m->arch.n_layers + 1) * QS_LIN_COUNT; i++) {
            free(p->acts[i].ch_absmax);
            free(p->acts[i].ch_sum_sq);
            free(p->acts[i].ch_sum_abs);
            free(p->acts[i].gram);
        }
        free(p->acts);
    }
    free(p->want_gram);
    free(p->tensors);
    free(p->formats);
    free(p->format_ids);
    free(p->formats_sens);
    free(p->act_formats);
    free(p->kv_formats);
    free(p->format_ids_sens);
    qs_evalset_free(r->evalset);
    free(r->ids);
    free(r->text);
    qs_vocab_free(r->v);
    qs_db_close(p->db);
    qs_model_close(r->m);
}

int qs_profile_run(const qs_profile_options *options, qs_profile_progress_fn progress, void *user, qs_profile_summary *sum,
                   qs_error *err) {
    memset(sum, 0, sizeof *sum);
    run_state r = {0};
    qs_model_options mo = {options->tokenizer_path};
    int rc = qs_model_open(&r.m, options->model_path, &mo, err);
    if (rc) return rc;
    r.p.m = r.m;
    r.p.threads = options->threads;
    const qs_profile_options o = with_defaults(options, r.m), *opt = &o;
    if (!(rc = prepare(&r, opt, progress, user, err)) && !(rc = classify_all(&r, err)) &&
        !(rc = qs_db_open(&r.p.db, opt->db_path, QS_DB_CREATE, err)) &&
        !(rc = register_run(&r, opt, sum, err)) && !(rc = run_jobs(&r, opt, progress, user, sum, err)) && opt->sensitivity)
        rc = qs_profile_sweep(&r.p, opt, r.evalset, progress, user, sum, err);
    if (!rc) { /* the run's arrays, then the run marked done */
        snprintf(sum->hdf5_path, sizeof sum->hdf5_path, "%s.run%lld.h5", opt->db_path, (long long)r.p.run_id);
        int64_t nd;
        if (!(rc = qs_h5_export_run(r.p.db, r.p.run_id, sum->hdf5_path, &nd, err)))
            rc = qs_db_finish_run(r.p.db, r.p.run_id, sum->hdf5_path, err);
    }
    run_state_free(&r);
    return rc;
}

int qs_profile_serve(const qs_profile_options *options, qs_error *err) {
    run_state r = {0};
    qs_model_options mo = {options->tokenizer_path};
    qs_sens *s = NULL;
    int rc = qs_model_open(&r.m, options->model_path, &mo, err);
    if (!rc) {
        r.p.m = r.m;
        r.p.threads = options->threads;
        r.p.keep_gram = 1; /* no database to read a tensor's back from: prepare keeps it where the sweep needs them */
        const qs_profile_options o = with_defaults(options, r.m), *opt = &o;
        if (!(rc = prepare(&r, opt, NULL, NULL, err)) && !(rc = classify_all(&r, err)) && sweep_needs_statistics(&r.p, opt)) {
            /* every layer's statistics, as rank 0's sweep rounds with (all X^T X only for GPTQ, AWQ) */
            qs_calib_cursor cur = {0};
            int64_t tokens;
            r.p.want_gram = calloc((size_t)r.m->arch.n_layers + 1, 1);
            if (!r.p.want_gram) rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
            else if (r.p.keep_gram)
                memset(r.p.want_gram, 1, (size_t)r.m->arch.n_layers + 1);
            if (!rc) rc = open_calibration(&r, opt, &cur, &tokens, err);
            if (!rc) rc = qs_calib_advance(&cur, r.m->arch.n_layers, err);
            qs_calib_close(&cur);
            if (!rc) qs_calib_normalize_grams(&r.p); /* bit for bit the matrices rank 0 reads from its database */
        }
        if (!rc) rc = qs_sens_new(&s, &r.p, r.evalset, opt->eval_ctx, opt->topk, err);
    }
    if (!rc) rc = qs_sweep_mpi_serve(s, err);
    else qs_sweep_mpi_fail(err->msg);
    qs_sens_free(s);
    run_state_free(&r);
    return rc;
}
