/* The estimated sensitivity modes on stories260K, against the exact sweep of the same model,
 * text and formats (one database each):
 * - what an estimating run measures is what the exact sweep measures (same rows, bit for bit),
 *   and far fewer jobs;
 * - calibrated: every estimate is its probe's measured KL x output error(format) / output
 *   error(probe), recomputed here from the database;
 * - gradient: every (tensor, format, domain) that applies is estimated (but an untied head,
 *   which is measured), with no probe and a standard error;
 * - the estimates rank the exact KLs (over every estimated tensor x format x domain): Spearman
 *   >= 0.9 (the issue measured 0.96-0.985 within each format for calibrated on this model;
 *   gradient measured 0.983 overall, 0.89-0.93 within each format), median relative error
 *   <= 25 % (measured 7-13 % calibrated, 11 % gradient);
 * - --validate N measures N estimated jobs and stores the rank correlation that this test
 *   recomputes from those rows; nothing measured is overwritten;
 * - a rerun resumes with nothing to do; the planner says how many costs were estimated and by
 *   which method, and its plan measures, on held-out text, within 10 % of the KL of the plan
 *   made from the exact map;
 * - the report names the method and the validation figure. */
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_util.h"

static const char *FORMATS = "q8_0,int8-channel-sym,q5_1,q5_0,q4_1,q4_0,int4-g32-asym,int3-g32-asym";

static int profile(const char *model, const char *db, const char *manifest, const char *extra, char **out) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "'%s' profile '%s' --db '%s' --formats q8_0 --calib-tokens 512 --sensitivity --eval '%s' --sens-formats %s %s --quiet",
             qsense_bin(), model, db, manifest, FORMATS, extra);
    return run_cmd(cmd, out);
}

/* (value, index) pairs ranked with ties at their mean rank */
static int cmp_pair(const void *a, const void *b) {
    double x = ((const double *)a)[0], y = ((const double *)b)[0];
    return (x > y) - (x < y);
}

static void rank(const double *x, int n, double *r) {
    double *p = malloc(sizeof(double) * 2 * (size_t)n);
    for (int k = 0; k < n; k++) p[2 * k] = x[k], p[2 * k + 1] = k;
    qsort(p, (size_t)n, 2 * sizeof(double), cmp_pair);
    for (int k = 0; k < n;) {
        int e = k;
        while (e + 1 < n && p[2 * (e + 1)] == p[2 * k]) e++;
        for (int t = k; t <= e; t++) r[(int)p[2 * t + 1]] = 0.5 * (k + e);
        k = e + 1;
    }
    free(p);
}

static double spearman(const double *a, const double *b, int n) {
    double *ra = malloc(sizeof(double) * (size_t)n), *rb = malloc(sizeof(double) * (size_t)n), ma = 0, mb = 0, ab = 0, aa = 0, bb = 0;
    rank(a, n, ra);
    rank(b, n, rb);
    for (int k = 0; k < n; k++) ma += ra[k] / n, mb += rb[k] / n;
    for (int k = 0; k < n; k++) ab += (ra[k] - ma) * (rb[k] - mb), aa += (ra[k] - ma) * (ra[k] - ma), bb += (rb[k] - mb) * (rb[k] - mb);
    free(ra);
    free(rb);
    return ab / sqrt(aa * bb);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* rows of two columns of doubles from a query over the calibrated database with the exact one
 * attached as "ex" */
static int pairs(const char *cal, const char *ex, const char *sql, double **a, double **b) {
    sqlite3 *h;
    sqlite3_stmt *st;
    int n = 0, cap = 1024;
    *a = malloc(sizeof(double) * (size_t)cap);
    *b = malloc(sizeof(double) * (size_t)cap);
    sqlite3_open_v2(cal, &h, SQLITE_OPEN_READONLY, NULL);
    char attach[1200];
    snprintf(attach, sizeof attach, "ATTACH DATABASE 'file:%s?mode=ro' AS ex", ex);
    if (ex) sqlite3_exec(h, attach, NULL, NULL, NULL);
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "query failed: %s\n", sqlite3_errmsg(h));
        sqlite3_close(h);
        return 0;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (n == cap) {
            cap *= 2;
            *a = realloc(*a, sizeof(double) * (size_t)cap);
            *b = realloc(*b, sizeof(double) * (size_t)cap);
        }
        (*a)[n] = sqlite3_column_double(st, 0);
        (*b)[n++] = sqlite3_column_double(st, 1);
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    return n;
}

static double q1(const char *db, const char *sql) {
    double *a, *b, v = NAN;
    if (pairs(db, NULL, sql, &a, &b) > 0) v = a[0];
    free(a);
    free(b);
    return v;
}

/* the mean KL over the held-out domains of the plan made from db, as qsense check measures it */
static double plan_kl(const char *dir, const char *db, const char *model, const char *held, const char *name) {
    char *out;
    int rc = run_in(dir, &out, "'%s' plan --db '%s' --budget-bpw 7 --out %s.json > %s.plan.out && '%s' check --plan %s.json --base '%s'"
                    " --data '%s' --ctx 128 --thresholds th.json", qsense_bin(), db, name, name, qsense_bin(), name, model, held);
    CHECK(rc == 0, "plan + check of %s: %s", name, out);
    double sum = 0;
    int n = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        char dom[64], verdict[16];
        double kl, p99, ratio, top1;
        if (sscanf(line, "%63s %lf %lf %lf %lf%% %15s", dom, &kl, &p99, &ratio, &top1, verdict) == 6) sum += kl, n++;
    }
    free(out);
    CHECK(n == 2, "%s: %d domains measured", name, n);
    return n ? sum / n : NAN;
}

/* an estimating run (mode) in its own database, checked against the exact one (ex) */
static void check_mode(const char *mode, const char *dir, const char *model, const char *manifest, const char *held, const char *ex,
                       double kl_exact) {
    char cal[700], extra[128], want[64];
    snprintf(cal, sizeof cal, "%s/%s.db", dir, mode);
    snprintf(extra, sizeof extra, "--sens-mode %s --validate 40", mode);
    snprintf(want, sizeof want, "estimated (%s)", mode);
    char *out;
    double *a, *b;
    int rc, n;
    rc = profile(model, cal, manifest, extra, &out);
    CHECK(rc == 0 && strstr(out, want) && strstr(out, "validated on 40 exact jobs"), "%s sweep: %s", mode, out);
    free(out);

    /* what the calibrated run measured, the exact run measured identically */
    n = pairs(cal, ex,
                  "SELECT s.kl_mean, x.kl_mean FROM sensitivity s JOIN tensors t ON t.id = s.tensor_id JOIN formats f ON f.id ="
                  " s.format_id JOIN ex.tensors xt ON xt.name = t.name JOIN ex.formats xf ON xf.name = f.name JOIN ex.sensitivity x"
                  " ON x.tensor_id = xt.id AND x.format_id = xf.id AND x.domain = s.domain WHERE s.applicable",
                  &a, &b);
    /* the same jobs, but the BLAS may sum a pass of other chunks in another order (bit for bit with
     * OpenBLAS's SkylakeX kernels, within ~1e-5 with its Zen kernels) */
    int same = 0;
    double worst = 0;
    for (int k = 0; k < n; k++) {
        same += close_rel(a[k], b[k], 1e-3);
        if (a[k] != b[k]) worst = fmax(worst, fabs(a[k] - b[k]) / fmax(fabs(a[k]), fabs(b[k])));
    }
    printf("%s: %d measured rows, worst relative difference from the exact sweep's %.2e\n", mode, n, worst);
    CHECK(n >= 40 && same == n, "%s: %d of %d measured rows equal the exact sweep's (within 1e-3)", mode, same, n);
    free(a);
    free(b);
    CHECK(q1(cal, "SELECT count(*) FROM sensitivity WHERE applicable") < 0.4 * q1(ex, "SELECT count(*) FROM sensitivity WHERE applicable"),
          "the %s run measures far fewer jobs", mode);

    if (!strcmp(mode, "calibrated")) { /* every estimate is the probe's KL scaled by the output errors */
        n = pairs(cal, NULL,
                  "SELECT e.kl_mean, s.kl_mean * qf.output_error / qp.output_error FROM sensitivity_estimates e JOIN sensitivity s ON"
                  " s.run_id = e.run_id AND s.tensor_id = e.tensor_id AND s.format_id = e.probe_format_id AND s.domain = e.domain AND"
                  " s.applicable JOIN qerror qf ON qf.run_id = e.run_id AND qf.tensor_id = e.tensor_id AND qf.format_id = e.format_id"
                  " JOIN qerror qp ON qp.run_id = e.run_id AND qp.tensor_id = e.tensor_id AND qp.format_id = e.probe_format_id"
                  " WHERE e.method = 'calibrated'",
                  &a, &b);
        int exact_formula = 0;
        for (int k = 0; k < n; k++) exact_formula += fabs(a[k] - b[k]) <= 1e-12 * fabs(b[k]);
        CHECK(n > 300 && n == (int)q1(cal, "SELECT count(*) FROM sensitivity_estimates"), "%d estimates joined to their probe", n);
        CHECK(exact_formula == n, "%d of %d estimates = KL(probe) x error(format) / error(probe)", exact_formula, n);
        free(a);
        free(b);
    } else { /* gradient: every job that applies, no probe, a standard error */
        const double n_est = q1(cal, "SELECT count(*) FROM sensitivity_estimates WHERE method = 'gradient' AND probe_format_id IS NULL"
                                     " AND kl_se > 0 AND kl_mean > 0");
        const double n_all = q1(cal, "SELECT count(*) FROM sensitivity_estimates");
        const double n_exact = q1(ex, "SELECT count(*) FROM sensitivity s JOIN tensors t ON t.id = s.tensor_id WHERE s.applicable"
                                      " AND t.name != 'output.weight'");
        CHECK(n_est == n_all && n_all == n_exact, "%g gradient estimates with a standard error of %g, for %g exact jobs", n_est, n_all,
              n_exact);
    }

    /* against the exact map */
    n = pairs(cal, ex,
              "SELECT e.kl_mean, x.kl_mean FROM sensitivity_estimates e JOIN tensors t ON t.id = e.tensor_id JOIN formats f ON"
              " f.id = e.format_id JOIN ex.tensors xt ON xt.name = t.name JOIN ex.formats xf ON xf.name = f.name JOIN"
              " ex.sensitivity x ON x.tensor_id = xt.id AND x.format_id = xf.id AND x.domain = e.domain AND x.applicable",
              &a, &b);
    double rho = spearman(a, b, n), *rel = malloc(sizeof(double) * (size_t)(n + 1));
    int n_rel = 0;
    for (int k = 0; k < n; k++)
        if (b[k] > 0) rel[n_rel++] = fabs(a[k] - b[k]) / b[k];
    qsort(rel, (size_t)n_rel, sizeof *rel, cmp_double);
    printf("%s estimates vs the exact sweep: %d jobs, Spearman %.4f, median relative error %.1f %%\n", mode, n, rho,
           100 * rel[n_rel / 2]);
    CHECK(n > 300 && rho >= 0.9, "Spearman %.4f over %d estimated jobs", rho, n);
    CHECK(rel[n_rel / 2] <= 0.25, "median relative error %.3f", rel[n_rel / 2]);
    free(rel);
    free(a);
    free(b);

    /* the stored validation figure is what the validated jobs say */
    n = pairs(cal, NULL,
              "SELECT e.kl_mean, s.kl_mean FROM sensitivity_estimates e JOIN sensitivity s ON s.run_id = e.run_id AND s.tensor_id ="
              " e.tensor_id AND s.format_id = e.format_id AND s.domain = e.domain AND s.applicable",
              &a, &b);
    const double stored = q1(cal, "SELECT spearman FROM estimate_validation WHERE n_jobs = 40");
    CHECK(n == 40 && fabs(spearman(a, b, n) - stored) < 1e-9, "validation: %d jobs, Spearman %.6f recomputed, %.6f stored", n,
          spearman(a, b, n), stored);
    free(a);
    free(b);

    rc = profile(model, cal, manifest, extra, &out);
    CHECK(rc == 0 && strstr(out, "(0 run now)") && strstr(out, "validated on 40"), "%s: a rerun resumes with nothing to do: %s", mode,
          out);
    free(out);

    /* plans from both maps, measured on held-out text */
    const double kl_cal = plan_kl(dir, cal, model, held, mode);
    char said[128];
    snprintf(said, sizeof said, " estimated (the run's --sens-mode %s", mode);
    rc = run_in(dir, &out, "cat %s.plan.out", mode);
    CHECK(strstr(out, said), "the planner says which costs were estimated, and how: %s", out);
    free(out);
    printf("plan KL on held-out text: from the exact map %.5f, from the %s map %.5f\n", kl_exact, mode, kl_cal);
    CHECK(kl_cal <= 1.10 * kl_exact, "the %s map's plan measures %.5f, the exact map's %.5f", mode, kl_cal, kl_exact);

    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' report --db '%s' --text", qsense_bin(), cal);
    rc = run_cmd(cmd, &out);
    char named[64];
    snprintf(named, sizeof named, "estimated (%s", mode);
    CHECK(rc == 0 && strstr(out, named) && strstr(out, "validated on 40 exact jobs"), "report: %s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' report --db '%s' --out '%s/report-%s'", qsense_bin(), cal, dir, mode);
    rc = run_cmd(cmd, &out);
    free(out);
    char vdat[800], vpng[800];
    snprintf(vdat, sizeof vdat, "%s/report-%s/plot-data/validation.dat", dir, mode);
    snprintf(vpng, sizeof vpng, "%s/report-%s/validation.png", dir, mode);
    FILE *f = fopen(vdat, "r");
    int lines = 0;
    for (char line[256]; f && fgets(line, sizeof line, f);) lines += line[0] != '#';
    if (f) fclose(f);
    FILE *png = fopen(vpng, "rb");
    CHECK(rc == 0 && lines == 40 && png, "the report draws the 40 validation jobs (exit %d, %d points, png %s)", rc, lines,
          png ? "written" : "missing");
    if (png) fclose(png);
}

int main(void) {
    char *dir = temp_dir(), *model = model_path("stories260K.gguf"), *out, manifest[600], held[600], ex[700], th[700];
    snprintf(manifest, sizeof manifest, "%s/eval.json", dir);
    snprintf(held, sizeof held, "%s/held.json", dir);
    snprintf(th, sizeof th, "%s/th.json", dir);
    snprintf(ex, sizeof ex, "%s/exact.db", dir);
    char *tiny = data_path("tinystories-sample.txt"), *wiki = data_path("wiki.test.tokens");
    FILE *f = fopen(manifest, "w");
    fprintf(f, "{\"name\": \"test\", \"domains\": ["
               "{\"name\": \"legal\", \"files\": [\"/usr/share/common-licenses/GPL-3\"], \"tokens\": 1024},"
               "{\"name\": \"stories\", \"files\": [\"%s\"], \"tokens\": 1024}]}", tiny);
    fclose(f);
    f = fopen(held, "w");
    fprintf(f, "{\"name\": \"held\", \"domains\": [{\"name\": \"wiki\", \"files\": [\"%s\"], \"tokens\": 4096},"
               "{\"name\": \"python\", \"files\": [\"/usr/lib/python3*/argparse.py\"], \"tokens\": 4096}]}", wiki);
    fclose(f);
    f = fopen(th, "w");
    fprintf(f, "{\"default\": {\"max_kl\": 100}}");
    fclose(f);

    int rc = profile(model, ex, manifest, "", &out);
    CHECK(rc == 0, "exact sweep: %s", out);
    free(out);
    double kl_exact = plan_kl(dir, ex, model, held, "exact");
    check_mode("calibrated", dir, model, manifest, held, ex, kl_exact);
    check_mode("gradient", dir, model, manifest, held, ex, kl_exact);
    rc = profile(model, ex, manifest, "--validate 5", &out);
    CHECK(rc == 2, "--validate without an estimating --sens-mode is a usage error (exit %d)", rc);
    free(out);
    free(tiny);
    free(wiki);
    free(model);
    free(dir);
    return test_done("test_sensitivity_estimates");
}
