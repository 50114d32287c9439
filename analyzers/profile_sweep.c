/* The profile's sensitivity sweep (see profile_sweep.h). */
#include "analyzers/profile_sweep.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "analyzers/sens_gradient.h"
#include "analyzers/sensitivity.h"
#include "analyzers/sweep_mpi.h"
#include "analyzers/sweep_sites.h"
#include "analyzers/sweep_units.h"
#include "engine/engine.h"
#include "store/measures.h"

#define CALIBRATED "calibrated"

typedef enum { MODE_EXACT, MODE_CALIBRATED, MODE_GRADIENT } sweep_mode;

static sweep_mode mode_of(const qs_profile_options *opt) {
    if (!opt->sens_mode) return MODE_EXACT;
    return !strcmp(opt->sens_mode, CALIBRATED) ? MODE_CALIBRATED : !strcmp(opt->sens_mode, QS_SENS_GRADIENT) ? MODE_GRADIENT : MODE_EXACT;
}

static int is_sweep_matrix(const qs_prof_tensor *pt) {
    return pt->rows > 1 && (pt->linear >= 0 || !strcmp(pt->kind, "token_embd"));
}

/* Which jobs the sweep measures and which costs it estimates. Index (i, f, d) is
 * (i * nf + f) * nd + d; tensor index n_tensors stands for the whole model. */
typedef struct {
    int nt, nf, nd; /* nt = n_tensors + 1 */
    unsigned char *measure;  /* [nt * nf * nd] */
    unsigned char *estimate; /* [nt * nf]: estimated from the probe on every domain */
    int *probe;              /* [nt]: the probe format, -1 for none */
    double *out_err;         /* [nt * nf] */
    int *validate, n_validate; /* (i, f, d) indices drawn to check the estimates */
} sweep_jobs;

static void jobs_free(sweep_jobs *j) {
    free(j->measure);
    free(j->estimate);
    free(j->probe);
    free(j->out_err);
    free(j->validate);
}


/* The calibrated mode's probe for tensor i: the applicable format with a known, positive output
 * error nearest 4.5 bits per weight (an error large enough to measure well, small enough not to
 * saturate); the formats with an output error are marked for estimation, the rest measured. */
static void plan_tensor(const qs_profile *p, sweep_jobs *j, int i) {
    const qs_prof_tensor *pt = &p->tensors[i];
    double best = INFINITY;
    j->probe[i] = -1;
    for (int f = 0; f < j->nf; f++) {
        const qs_format *fmt = p->formats_sens[f];
        double e = qs_profile_format_applies(p, i, fmt, NULL, 0)
                       ? qs_db_output_error(p->db, p->run_id, pt->db_id, p->format_ids_sens[f])
                       : NAN;
        j->out_err[(size_t)i * j->nf + f] = e;
        if (!(e > 0) || !isfinite(e)) continue;
        double dist = fabs(qs_format_bpw(fmt, pt->rows, pt->cols) - 4.5);
        if (dist < best) best = dist, j->probe[i] = f;
    }
    for (int f = 0; f < j->nf; f++) {
        const double e = j->out_err[(size_t)i * j->nf + f];
        const int est = j->probe[i] >= 0 && f != j->probe[i] && e > 0 && isfinite(e);
        j->estimate[(size_t)i * j->nf + f] = (unsigned char)est;
        for (int d = 0; d < j->nd; d++) j->measure[((size_t)i * j->nf + f) * j->nd + d] = (unsigned char)!est;
    }
}

/* The gradient mode estimates every format that applies to tensor i, except an untied output
 * head's: perturbing the head alone is measured exactly for the price of the head. */
static void plan_tensor_gradient(const qs_profile *p, sweep_jobs *j, int i) {
    const qs_prof_tensor *pt = &p->tensors[i];
    const int head = pt->linear == QS_LIN_OUTPUT && strcmp(pt->kind, "token_embd");
    for (int f = 0; f < j->nf; f++) {
        const int est = !head && qs_profile_format_applies(p, i, p->formats_sens[f], NULL, 0);
        j->estimate[(size_t)i * j->nf + f] = (unsigned char)est;
        for (int d = 0; d < j->nd; d++) j->measure[((size_t)i * j->nf + f) * j->nd + d] = (unsigned char)!est;
    }
}

/* N of the estimated jobs, drawn with a fixed seed (a resumed run draws the same), measured too */
static int draw_validation(sweep_jobs *j, int n, qs_error *err) {
    size_t n_est = 0;
    for (size_t k = 0; k < (size_t)j->nt * j->nf; k++) n_est += j->estimate[k] ? (size_t)j->nd : 0;
    if (n <= 0 || n_est == 0) return 0;
    int *all = malloc(sizeof(int) * n_est);
    if (!all) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    size_t m = 0;
    for (size_t k = 0; k < (size_t)j->nt * j->nf; k++)
        for (int d = 0; d < j->nd && j->estimate[k]; d++) all[m++] = (int)(k * (size_t)j->nd + (size_t)d);
    if ((size_t)n > m) n = (int)m;
    uint64_t state = 0x9E3779B97F4A7C15ull;
    for (int k = 0; k < n; k++) { /* a partial Fisher-Yates shuffle */
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        size_t r = (size_t)k + (size_t)((state >> 33) % (uint64_t)(m - (size_t)k));
        int t = all[k];
        all[k] = all[r];
        all[r] = t;
        j->measure[all[k]] = 1;
    }
    j->validate = all;
    j->n_validate = n;
    return 0;
}

static int plan_jobs(const qs_profile *p, const qs_profile_options *opt, int n_domains, sweep_jobs *j, qs_error *err) {
    memset(j, 0, sizeof *j);
    j->nt = p->n_tensors + 1;
    j->nf = p->n_formats_sens;
    j->nd = n_domains;
    j->measure = calloc((size_t)j->nt * j->nf * j->nd + 1, 1);
    j->estimate = calloc((size_t)j->nt * j->nf + 1, 1);
    j->probe = malloc(sizeof(int) * (size_t)j->nt);
    j->out_err = malloc(sizeof(double) * ((size_t)j->nt * j->nf + 1));
    if (!j->measure || !j->estimate || !j->probe || !j->out_err) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    const sweep_mode mode = mode_of(opt);
    if (mode == MODE_GRADIENT && p->m->arch.n_expert > 0)
        return qs_errorf(err, QS_ERR_USAGE,
                         "%s has mixture-of-experts layers, which the gradient estimate does not handle yet: use --sens-mode "
                         "calibrated or exact",
                         p->m->path);
    for (int i = 0; i < j->nt; i++) {
        j->probe[i] = -1;
        if (i < p->n_tensors && !is_sweep_matrix(&p->tensors[i])) continue;
        if (mode == MODE_CALIBRATED && i < p->n_tensors) {
            plan_tensor(p, j, i);
            continue;
        }
        if (mode == MODE_GRADIENT && i < p->n_tensors) {
            plan_tensor_gradient(p, j, i);
            continue;
        }
        memset(j->measure + (size_t)i * j->nf * j->nd, 1, (size_t)j->nf * j->nd);
    }
    return mode != MODE_EXACT ? draw_validation(j, opt->validate, err) : 0;
}

/* The calibrated estimates, from the probes' measured rows, in one transaction. */
static int write_estimates(qs_profile *p, const qs_evalset *set, const sweep_jobs *j, qs_profile_summary *sum, qs_error *err) {
    int rc = qs_db_begin(p->db, err);
    for (int i = 0; i < p->n_tensors && !rc; i++) {
        const int pf = j->probe[i];
        if (pf < 0) continue;
        const double pe = j->out_err[(size_t)i * j->nf + pf];
        for (int d = 0; d < j->nd && !rc; d++) {
            double kl, kl_se;
            if (!qs_db_measured_kl(p->db, p->run_id, p->tensors[i].db_id, p->format_ids_sens[pf], set->domains[d].name, &kl, &kl_se))
                continue; /* the probe did not apply after all: its row says so, and nothing is estimated */
            for (int f = 0; f < j->nf && !rc; f++) {
                if (!j->estimate[(size_t)i * j->nf + f]) continue;
                const double scale = j->out_err[(size_t)i * j->nf + f] / pe;
                rc = qs_db_put_estimate(p->db, p->run_id, p->tensors[i].db_id, p->format_ids_sens[f], set->domains[d].name,
                                        CALIBRATED, kl * scale, kl_se * scale, p->format_ids_sens[pf], err);
                sum->sens_estimated++;
            }
        }
    }
    if (!rc) rc = qs_db_mark_job(p->db, p->run_id, "estimates/" CALIBRATED, err);
    if (rc) {
        qs_db_rollback(p->db);
        return rc;
    }
    return qs_db_commit(p->db, err);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    double v;
    int i;
} ranked;

static int cmp_ranked(const void *a, const void *b) { return cmp_double(&((const ranked *)a)->v, &((const ranked *)b)->v); }

static void ranks(const double *x, int n, double *r, ranked *tmp) {
    for (int k = 0; k < n; k++) tmp[k] = (ranked){x[k], k};
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_ranked);
    for (int k = 0; k < n;) {
        int e = k;
        while (e + 1 < n && tmp[e + 1].v == tmp[k].v) e++;
        for (int t = k; t <= e; t++) r[tmp[t].i] = 0.5 * (k + e);
        k = e + 1;
    }
}

double qs_spearman(const double *a, const double *b, int n) {
    if (n < 3) return NAN;
    double *ra = malloc(sizeof(double) * (size_t)n), *rb = malloc(sizeof(double) * (size_t)n);
    ranked *tmp = malloc(sizeof(ranked) * (size_t)n);
    double rho = NAN;
    if (ra && rb && tmp) {
        ranks(a, n, ra, tmp);
        ranks(b, n, rb, tmp);
        double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
        for (int k = 0; k < n; k++) ma += ra[k] / n, mb += rb[k] / n;
        for (int k = 0; k < n; k++) {
            sab += (ra[k] - ma) * (rb[k] - mb);
            saa += (ra[k] - ma) * (ra[k] - ma);
            sbb += (rb[k] - mb) * (rb[k] - mb);
        }
        rho = saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : NAN;
    }
    free(ra);
    free(rb);
    free(tmp);
    return rho;
}

/* The estimates against the validation jobs' measured KL: rank correlation and relative error. */
static int write_validation(qs_profile *p, const qs_evalset *set, const sweep_jobs *j, const char *method,
                            qs_profile_summary *sum, qs_error *err) {
    double *est = malloc(sizeof(double) * (size_t)j->n_validate), *exact = malloc(sizeof(double) * (size_t)j->n_validate);
    double *rel = malloc(sizeof(double) * (size_t)j->n_validate);
    if (!est || !exact || !rel) {
        free(est), free(exact), free(rel);
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    }
    int n = 0, n_rel = 0;
    for (int k = 0; k < j->n_validate; k++) {
        const int idx = j->validate[k], d = idx % j->nd, f = (idx / j->nd) % j->nf, i = idx / j->nd / j->nf;
        const int64_t tid = p->tensors[i].db_id, fid = p->format_ids_sens[f];
        double e, x, se;
        if (!qs_db_estimated_kl(p->db, p->run_id, tid, fid, set->domains[d].name, method, &e) ||
            !qs_db_measured_kl(p->db, p->run_id, tid, fid, set->domains[d].name, &x, &se))
            continue;
        est[n] = e;
        exact[n++] = x;
        if (x > 0) rel[n_rel++] = fabs(e - x) / x;
    }
    qsort(rel, (size_t)n_rel, sizeof *rel, cmp_double);
    sum->n_validated = n;
    sum->spearman = qs_spearman(est, exact, n);
    sum->median_rel_error = n_rel ? rel[n_rel / 2] : NAN;
    const double p90 = n_rel ? rel[(int)ceil(0.9 * n_rel) - 1] : NAN;
    int rc = qs_db_begin(p->db, err);
    char job[64];
    snprintf(job, sizeof job, "validation/%s", method);
    if (!rc) rc = qs_db_put_validation(p->db, p->run_id, method, n, sum->spearman, sum->median_rel_error, p90, err);
    if (!rc) rc = qs_db_mark_job(p->db, p->run_id, job, err);
    if (rc) qs_db_rollback(p->db);
    else rc = qs_db_commit(p->db, err);
    free(est);
    free(exact);
    free(rel);
    return rc;
}

/* a job's share of the work, for the ETA: a format that does not apply only writes its row */
static long job_cost(const qs_profile *p, const qs_sens *s, int i, int f) {
    if (i == p->n_tensors) return qs_sens_cost_full(s) * 2;
    return qs_profile_format_applies(p, i, p->formats_sens[f], NULL, 0) ? qs_sens_cost(s, i) : 0;
}

/* What a full sweep costs in each mode, from the base run's speed (it evaluated every domain
 * once: nd full evaluations), so a user can choose: one progress event "sweep mode <name>" per
 * mode with done = its seconds and jobs_done = the jobs it measures. The gradient mode costs
 * about a forward and two backward passes (~4 evaluations) plus one matmul per linear and format
 * (~1 evaluation per format), and measures the whole-model and output-head jobs. */
static void report_modes(const qs_profile *p, const qs_profile_options *opt, const qs_sens *s, int nd, double base_seconds,
                         qs_profile_progress_fn progress, void *user) {
    const double per_unit = base_seconds / ((double)nd * (double)qs_sens_cost_full(s));
    double exact = 0, calibrated = 0, gradient = 0, full = (double)qs_sens_cost_full(s);
    int n_exact = 0, n_cal = 0, n_grad = 0;
    for (int i = 0; i < p->n_tensors; i++) {
        const qs_prof_tensor *pt = &p->tensors[i];
        if (!is_sweep_matrix(pt)) continue;
        int applicable = 0;
        for (int f = 0; f < p->n_formats_sens; f++)
            if (qs_profile_format_applies(p, i, p->formats_sens[f], NULL, 0)) applicable++;
        exact += (double)applicable * nd * (double)qs_sens_cost(s, i);
        n_exact += applicable * nd;
        if (applicable) calibrated += (double)nd * (double)qs_sens_cost(s, i), n_cal += nd;
        if (pt->linear == QS_LIN_OUTPUT && strcmp(pt->kind, "token_embd"))
            gradient += (double)applicable * nd * (double)qs_sens_cost(s, i), n_grad += applicable * nd;
    }
    /* the whole-model jobs, in every mode */
    const double whole = (double)p->n_formats_sens * nd * 2 * full; /* as job_cost counts them */
    exact += whole;
    calibrated += whole;
    gradient += whole + (4.0 + p->n_formats_sens) * nd * full;
    n_exact += p->n_formats_sens * nd;
    n_cal += p->n_formats_sens * nd + opt->validate;
    n_grad += p->n_formats_sens * nd + opt->validate;
    const double validation = (double)opt->validate * (n_exact ? exact / n_exact : 0);
    calibrated += validation;
    gradient += validation;
    progress(user, "sweep mode exact", (long)(exact * per_unit), 0, n_exact, 0);
    progress(user, "sweep mode calibrated", (long)(calibrated * per_unit), 0, n_cal, 0);
    if (p->m->arch.n_expert == 0) progress(user, "sweep mode gradient", (long)(gradient * per_unit), 0, n_grad, 0);
}

/* progress and the tally of what measure() writes */
typedef struct {
    qs_profile *p;
    qs_sens *s;
    qs_profile_progress_fn progress;
    void *user;
    qs_profile_summary *sum;
    long done_cost, total;
    int job, n_pending;
} measure_ctx;

static int write_result(void *user, const qs_sweep_result *r, qs_error *err) {
    measure_ctx *c = user;
    int rc = qs_sweep_result_write(c->s, r, err);
    if (rc) return rc;
    c->done_cost += job_cost(c->p, c->s, r->i, r->f);
    c->job++;
    c->sum->sens_jobs_run++;
    if (c->progress) c->progress(c->user, "sensitivity", c->done_cost, c->total, c->job, c->n_pending);
    return 0;
}

/* Measures the pending jobs as units (a candidate quantized once for its domains), in this
 * process or spread over MPI ranks (sweep_mpi.h). */
static int measure(qs_profile *p, const qs_evalset *set, qs_sens *s, const unsigned char *pending, int n_pending,
                   qs_profile_progress_fn progress, void *user, qs_profile_summary *sum, qs_error *err) {
    const int nd = set->n_domains, nf = p->n_formats_sens;
    if (nd > QS_SWEEP_MAX_DOMAINS)
        return qs_errorf(err, QS_ERR_USAGE, "the evaluation set has %d domains; the sweep takes at most %d", nd, QS_SWEEP_MAX_DOMAINS);
    measure_ctx c = {p, s, progress, user, sum, 0, 0, 0, n_pending};
    qs_sweep_unit *units = malloc(sizeof *units * ((size_t)(p->n_tensors + 1) * nf + 1));
    if (!units) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    int n_units = 0;
    for (int i = 0; i <= p->n_tensors; i++)
        for (int f = 0; f < nf; f++) {
            uint64_t mask = 0;
            for (int d = 0; d < nd; d++)
                if (pending[((size_t)i * nf + f) * nd + d]) mask |= (uint64_t)1 << d, c.total += job_cost(p, s, i, f);
            if (mask) units[n_units++] = (qs_sweep_unit){i, f, mask};
        }
    if (progress) progress(user, "sensitivity", 0, c.total, 0, n_pending);
    int rc = qs_sweep_mpi_run(s, units, n_units, write_result, &c, err);
    free(units);
    if (!rc && progress) progress(user, "sensitivity", c.total, c.total, n_pending, n_pending);
    return rc;
}

/* The base run every mode needs (each domain evaluated once, its caches kept), the modes'
 * costs reported from its speed, and the eval_domains rows. */
static int open_sens(qs_profile *p, const qs_profile_options *opt, const qs_evalset *set, qs_profile_progress_fn progress,
                     void *user, qs_sens **out, qs_error *err) {
    if (progress) progress(user, "sensitivity base", 0, 1, 0, 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = qs_sens_new(out, p, set, opt->eval_ctx, opt->topk, err);
    if (rc) return rc;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (progress)
        report_modes(p, opt, *out, set->n_domains, (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec),
                     progress, user);
    if (!(rc = qs_db_begin(p->db, err))) {
        if (!(rc = qs_sens_put_domains(*out, err))) rc = qs_db_commit(p->db, err);
        else qs_db_rollback(p->db);
    }
    return rc;
}

int qs_profile_sweep(qs_profile *p, const qs_profile_options *opt, const qs_evalset *set, qs_profile_progress_fn progress,
                     void *user, qs_profile_summary *sum, qs_error *err) {
    sum->spearman = sum->median_rel_error = NAN;
    sweep_jobs j;
    int rc = plan_jobs(p, opt, set->n_domains, &j, err), n_pending = 0;
    const sweep_mode mode = mode_of(opt);
    /* which of the jobs to measure remain */
    char name[512];
    const size_t n_keys = (size_t)j.nt * j.nf * j.nd;
    for (size_t k = 0; k < n_keys && !rc; k++) {
        if (!j.measure[k]) continue;
        const int d = (int)(k % (size_t)j.nd), f = (int)(k / (size_t)j.nd % (size_t)j.nf), i = (int)(k / (size_t)j.nd / (size_t)j.nf);
        qs_sweep_job_name(name, sizeof name, p, set->domains[d].name, i, f);
        sum->sens_jobs_total++;
        int done = qs_db_job_done(p->db, p->run_id, name, err);
        if (done < 0) rc = done;
        else if (done) j.measure[k] = 0;
        else n_pending++;
    }
    int gradient_due = 0;
    if (!rc && mode == MODE_GRADIENT) {
        int done = qs_db_job_done(p->db, p->run_id, "estimates/" QS_SENS_GRADIENT, err);
        if (done < 0) rc = done;
        else gradient_due = !done;
    }
    int site_pending = 0;
    if (!rc) rc = qs_sweep_sites_count(p, set, &sum->site_jobs_total, &site_pending, err);
    qs_sens *s = NULL;
    if (!rc && (n_pending || gradient_due || site_pending)) rc = open_sens(p, opt, set, progress, user, &s, err);
    if (!rc && gradient_due) /* the map first: the exact jobs (whole model, validation) follow */
        rc = qs_sens_gradient(s, j.estimate, progress, user, &sum->sens_estimated, err);
    else if (!rc && mode == MODE_GRADIENT)
        for (size_t k = 0; k < (size_t)j.nt * j.nf; k++) sum->sens_estimated += j.estimate[k] ? j.nd : 0;
    if (!rc && n_pending) rc = measure(p, set, s, j.measure, n_pending, progress, user, sum, err);
    else if (!rc) rc = qs_sweep_mpi_run(s, NULL, 0, NULL, NULL, err); /* MPI workers: nothing for them, released */
    if (!rc && site_pending) rc = qs_sweep_sites_run(s, set, progress, user, &sum->site_jobs_run, err);
    qs_sens_free(s);
    if (!rc && mode == MODE_CALIBRATED) {
        int done = qs_db_job_done(p->db, p->run_id, "estimates/" CALIBRATED, err);
        if (done < 0) rc = done;
        else if (!done) rc = write_estimates(p, set, &j, sum, err);
        else /* a resumed run: the estimates are there */
            for (size_t k = 0; k < (size_t)j.nt * j.nf; k++) sum->sens_estimated += j.estimate[k] ? j.nd : 0;
    }
    if (!rc && mode != MODE_EXACT && j.n_validate)
        rc = write_validation(p, set, &j, mode == MODE_GRADIENT ? QS_SENS_GRADIENT : CALIBRATED, sum, err);
    jobs_free(&j);
    return rc;
}
