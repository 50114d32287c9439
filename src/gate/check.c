/* qsense check (see check.h): measure every domain, judge each metric, record the run, write
 * the CI files. */
#include "gate/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_output.h"
#include "core/qs_path.h"
#include "engine/compare.h"
#include "gate/candidate.h"
#include "gate/check_outputs.h"
#include "gate/thresholds.h"
#include "io/evalset.h"
#include "io/gguf.h"
#include "io/model.h"
#include "reports/planner/plan.h"
#include "store/checks.h"
#include "store/db.h"
#include "tok/vocab.h"

void qs_check_summary_free(qs_check_summary *sum) {
    free(sum->d);
    sum->d = NULL;
}

static void git_commit(char *out, size_t cap) {
    out[0] = 0;
    FILE *p = popen("git rev-parse HEAD 2>/dev/null", "r");
    if (!p) return;
    if (fgets(out, (int)cap, p)) out[strcspn(out, "\n")] = 0;
    pclose(p);
}

/* everything a check holds while it runs */
typedef struct {
    qs_thresholds th;
    qs_evalset *set;
    qs_model *ref, *cand;
    qs_engine *re, *ce;
    qs_vocab *v;
    qs_check_overrides ov;
    qs_db *db;
    char ref_sha[65], cand_sha[65];
} check_state;

/* The models, their engines and the set; outputs refused now if they would land on an input. */
static int open_inputs(check_state *c, const qs_check_options *o, qs_error *err) {
    int rc;
    if ((rc = qs_evalset_load(&c->set, o->data, QS_DATASETS_DIR, 4096, err)) ||
        (rc = qs_thresholds_check_domains(&c->th, c->set, o->thresholds, err)))
        return rc;
    if ((rc = qs_model_open(&c->ref, o->reference, NULL, err)) || (rc = qs_vocab_for_model(&c->v, c->ref, err)) ||
        (rc = qs_engine_new(&c->re, c->ref, o->threads, err)) ||
        (rc = qs_check_candidate_engine(o, c->ref, &c->cand, &c->ce, &c->ov, err)))
        return rc;
    /* every input is open now: refuse outputs over them before the long evaluation, not after */
    if (o->db) qs_input_note(o->db);
    if ((o->junit && (rc = qs_output_check(o->junit, "--junit", err))) ||
        (o->markdown && (rc = qs_output_check(o->markdown, "--markdown", err))))
        return rc;
    if (o->junit && o->markdown && qs_same_file(o->junit, o->markdown))
        return qs_errorf(err, QS_ERR_USAGE, "--junit and --markdown name the same file (%s); give each its own", o->junit);
    qs_engine_set_llamacpp_numerics(c->re, o->llamacpp_numerics);
    qs_engine_set_llamacpp_numerics(c->ce, o->llamacpp_numerics);
    return 0;
}

/* the candidate against the reference on every domain, with each domain's limits */
static int measure(check_state *c, const qs_check_options *o, qs_check_summary *sum, qs_error *err) {
    sum->d = calloc((size_t)c->set->n_domains + 1, sizeof(qs_check_domain));
    if (!sum->d) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    sum->n_domains = c->set->n_domains;
    snprintf(sum->set_name, sizeof sum->set_name, "%s", c->set->name);
    for (int d = 0; d < c->set->n_domains; d++) {
        const qs_eval_domain *dom = &c->set->domains[d];
        qs_check_domain *x = &sum->d[d];
        int *ids;
        size_t n_ids;
        int rc = qs_tokenize(c->v, dom->text, dom->n_text, 1, &ids, &n_ids, err);
        if (rc) return rc;
        size_t use = (size_t)dom->tokens < n_ids ? (size_t)dom->tokens : n_ids;
        qs_compare_result r;
        rc = qs_compare_run(c->re, c->ce, ids, use, o->ctx, c->v->add_bos ? c->v->bos : -1, 0, 0, NULL, NULL, &r, err);
        free(ids);
        if (!rc && c->ov.failed)
            rc = qs_errorf(err, QS_ERR_INTERNAL, "rounding the planned tensors' rows: %s", c->ov.why);
        if (rc) return qs_error_prefix(err, "%.300s: domain '%s'", dom->files ? dom->files : o->data, dom->name);
        snprintf(x->domain, sizeof x->domain, "%s", dom->name);
        x->value[QS_CHECK_KL] = r.kl_mean;
        x->value[QS_CHECK_KL_P99] = r.kl_p99;
        x->value[QS_CHECK_PPL_RATIO] = r.ppl_ratio;
        x->value[QS_CHECK_TOP1] = r.same_top1;
        qs_check_limits l = qs_thresholds_for(&c->th, dom->name, o->thresholds);
        memcpy(x->limit, l.limit, sizeof l.limit);
        for (int k = 0; k < QS_CHECK_N_METRICS; k++) x->baseline[k] = NAN;
    }
    return 0;
}

/* the values of the last passing run on the same reference and set, when the thresholds ask */
static int load_baselines(check_state *c, const qs_check_options *o, qs_check_summary *sum, qs_error *err) {
    if (!o->db) return isnan(c->th.tolerance) ? 0 : qs_errorf(err, QS_ERR_USAGE, "baseline thresholds need --db (the runs to compare with)");
    int rc = qs_db_open(&c->db, o->db, QS_DB_CREATE, err);
    if (rc || isnan(c->th.tolerance)) return rc;
    for (int d = 0; d < sum->n_domains; d++)
        for (int k = 0; k < QS_CHECK_N_METRICS; k++)
            sum->d[d].baseline[k] = qs_db_check_baseline(c->db, c->ref_sha, c->set->name, sum->d[d].domain, qs_check_metric_name(k));
    return 0;
}

/* each metric against its limit and its baseline (within the tolerance) */
static void judge(const qs_thresholds *th, qs_check_summary *sum) {
    for (int d = 0; d < sum->n_domains; d++)
        for (int k = 0; k < QS_CHECK_N_METRICS; k++) {
            qs_check_domain *x = &sum->d[d];
            double v = x->value[k], lim = x->limit[k], base = x->baseline[k];
            int bad = 0, gated = 0;
            if (!isnan(lim)) gated = 1, bad |= qs_check_higher_is_worse(k) ? v > lim : v < lim;
            if (!isnan(base)) {
                gated = 1;
                /* kl and ppl-ratio excess worsen upward; top-1 downward */
                if (k == QS_CHECK_PPL_RATIO) bad |= (v - 1) > (base - 1) * (1 + th->tolerance) + 1e-12 && v > base;
                else if (qs_check_higher_is_worse(k)) bad |= v > base * (1 + th->tolerance) + 1e-12;
                else bad |= v < base * (1 - th->tolerance) - 1e-12;
            }
            if (!gated) continue;
            x->failed[k] = bad;
            sum->n_checks++;
            sum->n_failed += bad;
        }
}

/* The run and its figures in one transaction; a plan the database knows (given, or named inside
 * the candidate GGUF by qsense quantize) gets its measured figures beside the predicted ones. */
static void record(check_state *c, const qs_check_options *o, const qs_check_summary *sum, qs_error *err) {
    if (qs_db_begin(c->db, NULL)) return;
    /* absolute, so reports run elsewhere can still find the file */
    char *abs = realpath(o->plan ? o->plan : o->candidate, NULL);
    qs_db_check_run run = {sum->commit, abs ? abs : o->plan ? o->plan : o->candidate, c->cand_sha, c->ref_sha, c->set->name,
                           sum->n_failed == 0};
    int64_t id;
    int ok = qs_db_put_check_run(c->db, &run, &id, err) == 0;
    free(abs);
    char plan_sha[65] = "";
    if (o->plan) {
        qs_plan *pl;
        if (qs_plan_read_json(&pl, o->plan, NULL) == 0) {
            memcpy(plan_sha, pl->plan_sha256, sizeof plan_sha);
            qs_plan_free(pl);
        }
    } else if (c->cand && c->cand->gguf) {
        qs_gguf_get_str(c->cand->gguf, "qsense.plan.sha256", plan_sha, sizeof plan_sha, NULL);
    }
    for (int d = 0; d < sum->n_domains && ok && plan_sha[0]; d++) {
        const qs_check_domain *x = &sum->d[d];
        qs_plan_measured pm = {x->value[QS_CHECK_KL], x->value[QS_CHECK_KL_P99], x->value[QS_CHECK_PPL_RATIO], x->value[QS_CHECK_TOP1]};
        ok = qs_plan_record_measured(c->db, plan_sha, id, x->domain, &pm, err) >= 0;
    }
    for (int d = 0; d < sum->n_domains && ok; d++)
        for (int k = 0; k < QS_CHECK_N_METRICS && ok; k++) {
            const qs_check_domain *x = &sum->d[d];
            ok = qs_db_put_check_result(c->db, id, x->domain, qs_check_metric_name(k), x->value[k], x->limit[k], x->baseline[k], !x->failed[k],
                                        err) == 0;
        }
    if (ok) qs_db_commit(c->db, NULL);
    else qs_db_rollback(c->db);
}

static void check_state_free(check_state *c) {
    qs_check_overrides_free(&c->ov);
    qs_thresholds_free(&c->th);
    qs_engine_free(c->ce);
    qs_engine_free(c->re);
    qs_vocab_free(c->v);
    qs_model_close(c->cand);
    qs_model_close(c->ref);
    qs_evalset_free(c->set);
    qs_db_close(c->db);
}

int qs_check_run(const qs_check_options *o, qs_check_summary *sum, qs_error *err) {
    memset(sum, 0, sizeof *sum);
    check_state c = {0};
    int rc = qs_thresholds_load(o->thresholds, &c.th, err);
    if (!rc) rc = open_inputs(&c, o, err);
    if (!rc) rc = measure(&c, o, sum, err);
    if (!rc) rc = qs_model_fingerprint(c.ref, c.ref_sha, err);
    if (!rc && c.cand) rc = qs_model_fingerprint(c.cand, c.cand_sha, err);
    if (!rc) rc = load_baselines(&c, o, sum, err);
    if (!rc) {
        if (isnan(c.th.tolerance))
            for (int d = 0; d < sum->n_domains; d++)
                for (int k = 0; k < QS_CHECK_N_METRICS; k++) sum->d[d].baseline[k] = NAN;
        judge(&c.th, sum);
        /* the first run of a baseline-only gate has nothing to compare with yet: it records the baseline */
        if (sum->n_checks == 0 && isnan(c.th.tolerance))
            rc = qs_errorf(err, QS_ERR_INPUT, "%s: these thresholds gate nothing on the evaluation set '%s' (no limit and no "
                           "baseline applies to any domain): a gate that cannot fail is refused",
                           o->thresholds ? o->thresholds : "thresholds", c.set->name);
    }
    if (!rc) {
        git_commit(sum->commit, sizeof sum->commit);
        if (c.db) record(&c, o, sum, err);
        if (o->junit) rc = qs_check_write_junit(sum, o->junit, err);
        if (!rc && o->markdown) rc = qs_check_write_markdown(sum, o, o->markdown, err);
    }
    check_state_free(&c);
    if (rc) qs_check_summary_free(sum);
    return rc;
}
