/* The sweep's units of work (see sweep_units.h). A unit's domains run in the same forward
 * passes, so its results arrive together when it is done. */
#include "analyzers/sweep_units.h"

#include <stdio.h>
#include <stdlib.h>

void qs_sweep_job_name(char *out, size_t cap, const qs_profile *p, const char *domain, int i, int f) {
    if (i < p->n_tensors)
        snprintf(out, cap, "sensitivity/%s/%s/%s", p->tensors[i].t->name, p->formats_sens[f]->name, domain);
    else
        snprintf(out, cap, "whole/%s/%s", p->formats_sens[f]->name, domain);
}

int qs_sweep_unit_measure(qs_sens *s, const qs_sweep_unit *u, qs_sweep_result_fn fn, void *user, qs_error *err) {
    qs_profile *p = qs_sens_profile(s);
    const qs_format *fmt = p->formats_sens[u->f];
    float *wq = NULL;
    void *blocks = NULL;
    qs_tensor st;
    int rc = 0;
    /* the candidate rounded row by row as the engine reads it where the format allows, else in its
     * GGUF type's blocks where it has one (the engine expands them as it does the model's), else in
     * f32 */
    int rows = 0;
    if (u->i < p->n_tensors && qs_profile_format_applies(p, u->i, fmt, NULL, 0)) {
        rows = qs_sens_rounds_rows(fmt, p->tensors[u->i].cols);
        rc = rows ? 0 : qs_profile_candidate_blocks(p, u->i, fmt, &st, &blocks, err);
        if (rc == 1) rc = qs_profile_candidate(p, u->i, fmt, NULL, &wq, err);
    }
    qs_db_eval_figures figs[QS_SWEEP_MAX_DOMAINS];
    int nq = 0;
    double bpw = 0;
    if (!rc && u->i == p->n_tensors) rc = qs_sens_measure_whole(s, u->f, u->domains, figs, &nq, &bpw, err);
    else if (!rc && rows)
        rc = qs_sens_measure_tensor_rows(s, u->i, u->domains, fmt, figs, err);
    else if (!rc && blocks) rc = qs_sens_measure_tensor_stored(s, u->i, u->domains, &st, figs, err);
    else if (!rc && wq) rc = qs_sens_measure_tensor(s, u->i, u->domains, wq, figs, err);
    for (int d = 0; d < qs_sens_n_domains(s) && !rc; d++) {
        if (!(u->domains >> d & 1)) continue;
        qs_sweep_result r = {.i = u->i,
                             .f = u->f,
                             .d = d,
                             .applicable = u->i == p->n_tensors || rows || wq != NULL || blocks != NULL,
                             .n_quantized = nq,
                             .bpw = bpw};
        if (r.applicable) r.fig = figs[d];
        rc = fn(user, &r, err);
    }
    free(wq);
    free(blocks);
    return rc;
}

int qs_sweep_result_write(qs_sens *s, const qs_sweep_result *r, qs_error *err) {
    qs_profile *p = qs_sens_profile(s);
    char name[512];
    qs_sweep_job_name(name, sizeof name, p, qs_sens_domain_name(s, r->d), r->i, r->f);
    int rc = qs_db_begin(p->db, err);
    if (rc) return rc;
    if (r->i == p->n_tensors) rc = qs_sens_put_whole(s, r->f, r->d, r->n_quantized, r->bpw, &r->fig, err);
    else rc = qs_sens_put_tensor(s, r->i, r->f, r->d, r->applicable ? &r->fig : NULL, err);
    if (!rc) rc = qs_db_mark_job(p->db, p->run_id, name, err);
    if (rc) {
        qs_db_rollback(p->db);
        qs_error_prefix(err, "job %s", name);
        return rc;
    }
    return qs_db_commit(p->db, err);
}
