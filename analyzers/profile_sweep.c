/* The profile's sensitivity sweep (see profile_sweep.h). */
#include "analyzers/profile_sweep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzers/sensitivity.h"

static int is_sweep_matrix(const qs_prof_tensor *pt) {
    return pt->rows > 1 && (pt->linear >= 0 || !strcmp(pt->kind, "token_embd"));
}

int qs_profile_sweep(qs_profile *p, const qs_profile_options *opt, const qs_evalset *set,
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
