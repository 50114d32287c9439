/* The activation-site sweep (see sweep_sites.h). */
#include "analyzers/sweep_sites.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/site_quant.h"
#include "store/measures.h"

/* A site: the input sites of each layer, then its KV cache (site == QS_SITE_K), then the head. */
typedef struct {
    int layer, site;
} site_ref;

static int n_sites(const qs_profile *p) { return p->m->arch.n_layers * 5 + 1; }

static site_ref site_at(const qs_profile *p, int k) {
    const int L = p->m->arch.n_layers;
    if (k == L * 5) return (site_ref){L, QS_SITE_HEAD_IN};
    static const int order[5] = {QS_SITE_ATTN_IN, QS_SITE_ATTN_OUT, QS_SITE_FFN_IN, QS_SITE_FFN_DOWN_IN, QS_SITE_K};
    return (site_ref){k / 5, order[k % 5]};
}

static const char *kind_of(site_ref r) { return r.site == QS_SITE_K ? "kv_cache" : qs_site_name(r.site); }

static void site_name(char *out, size_t cap, site_ref r) {
    if (r.site == QS_SITE_HEAD_IN) snprintf(out, cap, "output.head_in");
    else snprintf(out, cap, "blk.%d.%s", r.layer, kind_of(r));
}

static int n_formats_at(const qs_profile *p, site_ref r) { return r.site == QS_SITE_K ? p->n_kv_formats : p->n_act_formats; }
static const qs_act_format *format_at(const qs_profile *p, site_ref r, int f) {
    return r.site == QS_SITE_K ? p->kv_formats[f] : p->act_formats[f];
}

static void job_name(char *out, size_t cap, site_ref r, const qs_act_format *f, const char *domain) {
    char site[64];
    site_name(site, sizeof site, r);
    snprintf(out, cap, "site/%s/%s/%s", site, f->name, domain);
}

/* the calibrated range of a site's input: the linear whose input it is (NAN when not measured) */
static float site_absmax(const qs_profile *p, site_ref r) {
    if (!p->acts) return NAN;
    const qs_arch *a = &p->m->arch;
    const int moe = a->n_expert > 0, fused = qs_model_find(p->m, "blk.0.attn_qkv.weight") != NULL;
    int kind;
    switch (r.site) {
    case QS_SITE_ATTN_IN: kind = fused ? QS_LIN_QKV : QS_LIN_Q; break;
    case QS_SITE_ATTN_OUT: kind = QS_LIN_O; break;
    case QS_SITE_FFN_IN: kind = moe ? QS_LIN_ROUTER : fused ? QS_LIN_UP : QS_LIN_GATE; break;
    case QS_SITE_FFN_DOWN_IN: kind = moe ? QS_LIN_DOWN_EXPS : QS_LIN_DOWN; break;
    default: kind = QS_LIN_OUTPUT;
    }
    const qs_act_stats *st = &p->acts[(size_t)r.layer * QS_LIN_COUNT + kind];
    return st->n_tokens > 0 ? fmaxf(fabsf(st->min), fabsf(st->max)) : NAN;
}

int qs_sweep_sites_count(qs_profile *p, const qs_evalset *set, int *total, int *pending, qs_error *err) {
    *total = *pending = 0;
    char name[512];
    for (int k = 0; k < n_sites(p); k++) {
        const site_ref r = site_at(p, k);
        for (int f = 0; f < n_formats_at(p, r); f++)
            for (int d = 0; d < set->n_domains; d++) {
                job_name(name, sizeof name, r, format_at(p, r, f), set->domains[d].name);
                const int done = qs_db_job_done(p->db, p->run_id, name, err);
                if (done < 0) return done;
                ++*total;
                *pending += !done;
            }
    }
    return 0;
}

/* one (site, format) on its pending domains: rows and job marks, one transaction per domain */
static int measure_one(qs_sens *s, qs_site_quant *q, site_ref r, const qs_act_format *f, uint64_t mask, qs_error *err) {
    qs_profile *p = qs_sens_profile(s);
    char why[sizeof err->msg] = "", site[64], name[512];
    site_name(site, sizeof site, r);
    const int width = qs_site_width(qs_sens_engine(s), r.site);
    int rc = r.site == QS_SITE_K ? qs_site_quant_set_kv(q, r.layer, f, err)
                                 : qs_site_quant_set_input(q, r.layer, r.site, f, site_absmax(p, r), err);
    const int applies = rc == 0;
    if (!applies) { /* not an error of the run: the row says why */
        snprintf(why, sizeof why, "%s", err->msg);
        rc = 0;
    }
    qs_db_eval_figures figs[64];
    if (applies) {
        const int start = r.site == QS_SITE_HEAD_IN ? p->m->arch.n_layers : r.layer;
        rc = qs_sens_measure_as_set(s, start, mask, figs, err);
        if (!rc && qs_site_quant_failed(q)) rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory quantizing %s", site);
        qs_site_quant_clear(q);
    }
    for (int d = 0; d < qs_sens_n_domains(s) && !rc; d++) {
        if (!(mask >> d & 1)) continue;
        job_name(name, sizeof name, r, f, qs_sens_domain_name(s, d));
        qs_db_site_row row = {p->run_id, site, kind_of(r), f->name, qs_sens_domain_name(s, d), applies ? NULL : why, r.layer,
                              qs_act_format_bits(f, width)};
        if ((rc = qs_db_begin(p->db, err))) break;
        rc = qs_db_put_site_sensitivity(p->db, &row, applies ? &figs[d] : NULL, err);
        if (!rc) rc = qs_db_mark_job(p->db, p->run_id, name, err);
        if (rc) {
            qs_db_rollback(p->db);
            qs_error_prefix(err, "job %s", name);
        } else rc = qs_db_commit(p->db, err);
    }
    return rc;
}

int qs_sweep_sites_run(qs_sens *s, const qs_evalset *set, qs_profile_progress_fn progress, void *user, int *jobs_run,
                       qs_error *err) {
    qs_profile *p = qs_sens_profile(s);
    qs_engine *e = qs_sens_engine(s);
    qs_site_quant *q;
    int rc = qs_site_quant_new(&q, e, err), total = 0, pending = 0, done = 0;
    if (!rc) rc = qs_sweep_sites_count(p, set, &total, &pending, err);
    if (rc || !pending) {
        qs_site_quant_free(q);
        return rc;
    }
    qs_site_quant_attach(e, q);
    char name[512];
    if (progress) progress(user, "sites", 0, pending, 0, pending);
    for (int k = 0; k < n_sites(p) && !rc; k++) {
        const site_ref r = site_at(p, k);
        for (int f = 0; f < n_formats_at(p, r) && !rc; f++) {
            uint64_t mask = 0;
            for (int d = 0; d < set->n_domains && !rc; d++) {
                job_name(name, sizeof name, r, format_at(p, r, f), set->domains[d].name);
                const int jd = qs_db_job_done(p->db, p->run_id, name, err);
                if (jd < 0) rc = jd;
                else if (!jd) mask |= (uint64_t)1 << d;
            }
            if (!mask || rc) continue;
            rc = measure_one(s, q, r, format_at(p, r, f), mask, err);
            for (int d = 0; d < set->n_domains; d++) done += (int)(mask >> d & 1);
            if (progress) progress(user, "sites", done, pending, done, pending);
        }
    }
    qs_site_quant_attach(e, NULL);
    qs_site_quant_free(q);
    *jobs_run += done;
    return rc;
}
