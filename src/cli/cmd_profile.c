/* qsense profile: run the analyzers on a model and store everything in the database. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzers/profile.h"
#include "analyzers/sweep_mpi.h"
#include "cli/cli.h"
#include "core/qs_file.h"
#include "core/qs_parallel.h"
#include "core/qs_progress.h"
#include "quant/act_format.h"
#include "quant/format.h"
#include "store/db.h"
#include "store/measures.h"

static const char *DEFAULT_TEXT = "/usr/share/common-licenses/GPL-3";

static void help(void) {
    printf("usage: qsense profile MODEL [--data FILE|SET] [--formats LIST] [--db PATH] [--threads T] [--ctx N]\n"
           "                      [--calib-tokens N] [--tokenizer FILE] [--mem-budget SIZE] [--quiet]\n"
           "       qsense profile --list-formats\n"
           "\n"
           "Measures every tensor of MODEL and stores the results in an SQLite database (bulk arrays in\n"
           "an HDF5 file beside it): weight statistics and histograms; the inputs of every linear layer\n"
           "over calibration text (per-channel absmax and mean square, outliers, histograms); and for\n"
           "every tensor x format the quantization error (MSE, SQNR, max error, cosine, and the\n"
           "activation-weighted output error ||(W - W^)X||^2 / ||WX||^2). Re-running the same command\n"
           "resumes an interrupted run.\n"
           "\n"
           "  --data FILE|SET    calibration text: a file (default %s), or an\n"
           "                     evaluation set ('debian', 'shared', a manifest .json) whose domains\n"
           "                     are joined\n"
           "  --formats LIST     comma-separated format names, or 'default' (the default)\n"
           "  --db PATH          database (default: MODEL's name + .qsense.db, in this directory)\n"
           "  --threads T        threads (default: all cores)\n"
           "  --ctx N            calibration chunk length in tokens (default 512, or the model's\n"
           "                     training context if smaller)\n"
           "  --calib-tokens N   calibration token budget (default 8192)\n"
           "  --tokenizer FILE   tokenizer for llama2.c models\n"
           "  --mem-budget SIZE  memory the run may hold besides the mapped model file (800M, 16G;\n"
           "                     default 80 %% of physical memory): a run estimated to need more is\n"
           "                     refused before it starts, with the figures\n"
           "\n"
           "  --sensitivity      also measure what quantizing each tensor costs end to end: for every\n"
           "                     matrix x format x evaluation domain, quantize that tensor alone and\n"
           "                     record perplexity delta, KL divergence (mean, p99) and top-1\n"
           "                     agreement vs the unquantized model, with standard errors; plus the\n"
           "                     whole model at each format. Off by default: it costs about\n"
           "                     tensors x formats x domains half-evaluations (minutes on stories260K,\n"
           "                     hours on a 1B model).\n"
           "  --eval SET         evaluation set: 'debian' (default; text every Debian machine has),\n"
           "                     'shared' (../shared/datasets), a manifest .json, or a text file\n"
           "  --sens-formats L   formats for the sweep (default: q8_0 .. int2, 11 formats); a -gptq\n"
           "                     format also stores each input's Gram matrix (inputs^2 floats per\n"
           "                     matrix) so qsense quantize can apply GPTQ plans\n"
           "  --sens-mode M      exact (default): measure every job; calibrated: measure one probe\n"
           "                     format per tensor (the one nearest 4.5 bits) on every domain and\n"
           "                     estimate the other formats from the tensor's KL per unit of output\n"
           "                     error (the analyzers measure every sweep format's output error):\n"
           "                     tensors x domains jobs instead of tensors x formats x domains;\n"
           "                     gradient: estimate every job from one backward pass per chunk\n"
           "                     (KL ~ 1/2 sum of Fisher x output error^2, labels drawn from the\n"
           "                     model; dense layers): minutes where exact takes hours\n"
           "  --act-formats L    also sweep activation formats (W+A deployment): each linear layer's\n"
           "                     input (q/k/v's, attn_output's, gate/up's, down's, the head's) alone\n"
           "                     in each format, rows in site_sensitivity; 'default' = a-int8-token,\n"
           "                     a-fp8-e4m3-token, a-fp8-e4m3-tensor, a-int4-g128, a-nvfp4\n"
           "                     (qsense profile --list-formats); static formats take their scale\n"
           "                     from the calibration pass\n"
           "  --kv-formats L     also sweep KV-cache formats, each layer's cache alone ('default' =\n"
           "                     kv-q8_0, kv-q4_0, kv-fp8-e4m3)\n"
           "  --validate N       calibrated, gradient: also measure N estimated jobs drawn at random\n"
           "                     and record the estimates' rank correlation and relative error\n"
           "  --eval-ctx N       evaluation chunk length (default: --ctx)\n"
           "  --topk K           base log-probabilities kept per position for KL (default 64)\n"
           "  --list-formats     print the format vocabulary with bits per weight and exit\n"
           "  --quiet            no progress on stderr\n",
           DEFAULT_TEXT);
}

static int list_formats(void) {
    printf("%-26s %-10s %s\n", "format", "family", "bits/weight (on a 4096 x 4096 matrix)");
    for (int i = 0; i < qs_format_count(); i++) {
        const qs_format *f = qs_format_at(i);
        printf("%-26s %-10s %.4f\n", f->name, qs_family_name(f->family), qs_format_bpw(f, 4096, 4096));
    }
    printf("\ndefault list: %s\n", qs_format_default_list());
    printf("\n%-26s %-6s %s\n", "activation / KV format", "bits", "(on rows of 4096 values; --act-formats, --kv-formats, ppl --act/--kv-cache)");
    for (int i = 0; i < qs_act_format_count(); i++) {
        const qs_act_format *f = qs_act_format_at(i);
        printf("%-26s %6.3f %s\n", f->name, qs_act_format_bits(f, 4096), f->what);
    }
    printf("\ndefault activation list: %s\ndefault KV-cache list: %s\n", qs_act_format_default_list(0), qs_act_format_default_list(1));
    return 0;
}

typedef struct {
    qs_progress pr;
    const char *phase;
    char label[64];
    int quiet;
} progress_state;

static void on_progress(void *user, const char *what, long done, long total, int jobs_done, int jobs_total) {
    progress_state *s = user;
    if (s->quiet) return;
    if (!strcmp(what, "memory")) { /* the estimate, before any work */
        fprintf(stderr, "profile: memory: about %ld MiB besides the %d MiB model file (budget %ld MiB, --mem-budget)\n", done,
                jobs_done, total);
        if (jobs_total > 0)
            fprintf(stderr, "profile: the sweep's residual caches (%d MiB) do not fit the budget: they go to a scratch file "
                            "beside the database (removed from its folder at once; the kernel pages them)\n", jobs_total);
        return;
    }
    if (!strncmp(what, "sweep mode ", 11)) { /* a full sweep's cost in each mode, from the base run's speed */
        if (s->phase) qs_progress_end(&s->pr);
        s->phase = NULL;
        char a[32];
        qs_progress_format_duration(done, a, sizeof a);
        fprintf(stderr, "profile: a full sweep takes about %s in --sens-mode %s (%d jobs measured)\n", a, what + 11, jobs_done);
        return;
    }
    int jobs = !strcmp(what, "jobs") || !strcmp(what, "sensitivity") || !strcmp(what, "sites");
    if (!s->phase || strcmp(s->phase, what)) {
        if (s->phase) qs_progress_end(&s->pr);
        s->phase = what;
        jobs |= !strcmp(what, "sensitivity");
        char label[64];
        snprintf(label, sizeof label, "profile: %s%s", !strcmp(what, "jobs") ? "analyzers" : what,
                 !strcmp(what, "calibration") ? " chunk" : "");
        snprintf(s->label, sizeof s->label, "%s", label);
        qs_progress_start(&s->pr, s->label, total, 0);
        s->pr.percent_only = jobs;
    }
    char extra[64];
    snprintf(extra, sizeof extra, "job %d/%d", jobs_done, jobs_total);
    qs_progress_update(&s->pr, done, jobs ? extra : NULL);
}

/* the five tensors that lose most at the run's reference format (int4-g128-asym when measured) */
static void print_most_sensitive(const char *db_path, long long run_id) {
    qs_db *db;
    qs_error err = {0};
    if (qs_db_open(&db, db_path, QS_DB_READ, &err)) return;
    qs_db_top_error top[5];
    int n = qs_db_top_output_errors(db, run_id, top, 5);
    for (int i = 0; i < n; i++) {
        if (!i) {
            printf("\nmost sensitive tensors at %s (activation-weighted output error):\n", top[i].format);
            printf("  %-28s %14s %10s\n", "tensor", "output error", "SQNR dB");
        }
        printf("  %-28s %14.6f %10.2f\n", top[i].tensor, top[i].out_err, top[i].sqnr);
    }
    qs_db_close(db);
}

/* mean KL per format over tensors, per domain: the sweep at a glance */
static void print_kl_table(const char *db_path, long long run_id) {
    qs_db *db;
    qs_error err = {0};
    if (qs_db_open(&db, db_path, QS_DB_READ, &err)) return;
    qs_db_sweep_summary *s;
    int n;
    if (!qs_db_sweep_summary_of(db, run_id, &s, &n, &err)) {
        printf("\nKL divergence per format and domain (one tensor at a time: mean, worst; whole model):\n");
        printf("  %-18s %-14s %12s %12s %18s\n", "format", "domain", "mean KL", "worst KL", "whole model KL");
        for (int i = 0; i < n; i++)
            printf("  %-18s %-14s %12.6f %12.6f %10.5f +/- %.5f\n", s[i].format, s[i].domain, s[i].mean_kl, s[i].worst_kl,
                   s[i].whole_kl, s[i].whole_kl_se);
        free(s);
    }
    qs_db_close(db);
}

/* the activation sites per format: mean and worst KL of one site at a time */
static void print_site_table(const char *db_path, long long run_id) {
    qs_db *db;
    qs_error err = {0};
    if (qs_db_open(&db, db_path, QS_DB_READ, &err)) return;
    qs_db_site_summary *s;
    int n;
    if (!qs_db_site_summary_of(db, run_id, &s, &n, &err)) {
        printf("\nKL divergence per activation / KV-cache format (one site at a time, mean over domains):\n");
        printf("  %-12s %-18s %6s %12s %12s  %s\n", "site", "format", "sites", "mean KL", "worst KL", "worst site");
        for (int i = 0; i < n; i++)
            printf("  %-12s %-18s %6d %12.6f %12.6f  %s\n", s[i].kind, s[i].format, s[i].n_sites, s[i].mean_kl, s[i].worst_kl,
                   s[i].worst_site);
        free(s);
    }
    qs_db_close(db);
}

static int cmd_profile_single(qs_profile_options *opt, int quiet);

int cmd_profile(int argc, char **argv) {
    qs_profile_options o = {0};
    o.formats = "default";
    o.calib_tokens = 8192;
    int quiet = 0;
    char db_default[4096];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { help(); return 0; }
        else if (!strcmp(a, "--list-formats")) return list_formats();
        else if (!strcmp(a, "--quiet")) quiet = 1;
        else if (!strcmp(a, "--sensitivity")) o.sensitivity = 1;
        else if (!strcmp(a, "--eval")) { if (!val) return cli_usage("profile", "--eval needs a set or file"); o.eval = val; i++; }
        else if (!strcmp(a, "--sens-formats")) { if (!val) return cli_usage("profile", "--sens-formats needs a list"); o.sens_formats = val; i++; }
        else if (!strcmp(a, "--sens-mode")) { if (!val) return cli_usage("profile", "--sens-mode needs exact, calibrated or gradient"); o.sens_mode = val; i++; }
        else if (!strcmp(a, "--act-formats")) { if (!val) return cli_usage("profile", "--act-formats needs a list"); o.act_formats = val; i++; }
        else if (!strcmp(a, "--kv-formats")) { if (!val) return cli_usage("profile", "--kv-formats needs a list"); o.kv_formats = val; i++; }
        else if (!strcmp(a, "--validate")) { if ((o.validate = cli_int("profile", a, val, 0, 1 << 24)) < 0) return 2; i++; }
        else if (!strcmp(a, "--eval-ctx")) { if ((o.eval_ctx = cli_int("profile", a, val, 4, 1 << 20)) < 0) return 2; i++; }
        else if (!strcmp(a, "--topk")) { if ((o.topk = cli_int("profile", a, val, 1, 1 << 20)) < 0) return 2; i++; }
        else if (!strcmp(a, "--data")) { if (!val) return cli_usage("profile", "--data needs a file"); o.data_path = val; i++; }
        else if (!strcmp(a, "--formats")) { if (!val) return cli_usage("profile", "--formats needs a list"); o.formats = val; i++; }
        else if (!strcmp(a, "--db")) { if (!val) return cli_usage("profile", "--db needs a path"); o.db_path = val; i++; }
        else if (!strcmp(a, "--tokenizer")) { if (!val) return cli_usage("profile", "--tokenizer needs a file"); o.tokenizer_path = val; i++; }
        else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) { if ((o.threads = cli_int("profile", a, val, 1, 1024)) < 0) return 2; i++; }
        else if (!strcmp(a, "--ctx")) { if ((o.ctx = cli_int("profile", a, val, 2, 1 << 20)) < 0) return 2; i++; }
        else if (!strcmp(a, "--mem-budget")) { if ((o.mem_budget = cli_size("profile", a, val)) < 0) return 2; i++; }
        else if (!strcmp(a, "--calib-tokens")) { if ((o.calib_tokens = cli_int("profile", a, val, QS_PROFILE_MIN_CALIB_TOKENS, 1 << 30)) < 0) return 2; i++; }
        else if (a[0] == '-') return cli_usage("profile", "unknown option '%s'", a);
        else if (!o.model_path) o.model_path = a;
        else return cli_usage("profile", "unexpected argument '%s'", a);
    }
    if (!o.model_path) return cli_usage("profile", "missing MODEL");
    qs_error err = {0};
    const qs_format **fl;
    int nf;
    if (qs_format_parse_list(o.formats, &fl, &nf, &err)) return cli_fail(&err);
    free(fl);
    if (o.sens_formats) {
        if (qs_format_parse_list(o.sens_formats, &fl, &nf, &err)) return cli_fail(&err);
        free(fl);
    }
    const qs_act_format **al;
    for (int kv = 0; kv < 2; kv++) {
        const char *list = kv ? o.kv_formats : o.act_formats;
        if (!list) continue;
        if (!o.sensitivity) return cli_usage("profile", "%s sweeps with the sensitivity: add --sensitivity", kv ? "--kv-formats" : "--act-formats");
        if (qs_act_format_parse_list(list, kv, &al, &nf, &err)) return cli_fail(&err);
        free(al);
    }
    if (!o.data_path) o.data_path = DEFAULT_TEXT;
    if (!o.db_path) {
        const char *base = strrchr(o.model_path, '/');
        base = base ? base + 1 : o.model_path;
        if (!*base) base = "model";
        size_t n = strcspn(base, ".");
        snprintf(db_default, sizeof db_default, "%.*s.qsense.db", (int)(n ? n : strlen(base)), base);
        o.db_path = db_default;
    }
    /* under mpirun: rank 0 runs the profile and writes the database, the others measure sweep
     * units for it (analyzers/sweep_mpi.h); the cores of a machine are shared by its ranks */
    if (qs_mpi_init(&argc, &argv, &err)) return cli_fail(&err);
    if (qs_mpi_size() > 1 && !o.sensitivity) {
        qs_mpi_finalize();
        if (qs_mpi_rank() > 0) return 0;
        fprintf(stderr, "profile: several MPI ranks only help the sensitivity sweep (--sensitivity); running on rank 0\n");
        return cmd_profile_single(&o, quiet);
    }
    if (qs_mpi_size() > 1 && o.threads <= 0) {
        const int cores = qs_parallel_default_threads(), local = qs_mpi_local_size();
        o.threads = cores / local > 0 ? cores / local : 1;
    }
    if (qs_mpi_rank() > 0) {
        int rc = qs_profile_serve(&o, &err);
        if (rc) {
            fprintf(stderr, "qsense profile (MPI rank %d): %s\n", qs_mpi_rank(), err.msg);
            qs_mpi_abort(rc);
        }
        qs_mpi_finalize();
        return rc;
    }
    int rc = cmd_profile_single(&o, quiet);
    if (rc) qs_mpi_abort(rc); /* the workers would wait for rank 0 forever */
    qs_mpi_finalize();
    return rc;
}

/* the profile in this process (rank 0 of an MPI run): progress, the run, its summary */
static int cmd_profile_single(qs_profile_options *opt, int quiet) {
    qs_profile_options o = *opt;
    qs_error err = {0};
    progress_state ps = {.quiet = quiet};
    qs_profile_summary s;
    int rc = qs_profile_run(&o, on_progress, &ps, &s, &err);
    if (ps.phase) qs_progress_end(&ps.pr);
    if (rc) return cli_fail(&err);
    printf("profile of %s\n", o.model_path);
    printf("  run %lld %s: %d jobs (%d done before, %d run now), %d tensors x %d formats, %lld calibration tokens\n",
           (long long)s.run_id, s.resumed ? "resumed" : "new", s.jobs_total, s.jobs_done_before, s.jobs_run, s.n_tensors,
           s.n_formats, (long long)s.calib_tokens);
    if (o.sensitivity)
        printf("  sensitivity: %d jobs (%d run now) on evaluation set '%s'\n", s.sens_jobs_total, s.sens_jobs_run, o.eval ? o.eval : "debian");
    if (o.sensitivity && s.site_jobs_total)
        printf("  activation sites: %d jobs (%d run now)\n", s.site_jobs_total, s.site_jobs_run);
    if (o.sensitivity && s.sens_estimated)
        printf("  estimated (%s): %lld costs %s\n", o.sens_mode, (long long)s.sens_estimated,
               !strcmp(o.sens_mode, "gradient") ? "from one backward pass per evaluation chunk" : "from one probe per tensor");
    if (o.sensitivity && s.n_validated)
        printf("  validated on %d exact jobs drawn at random: Spearman %.3f, median relative error %.1f %%\n", s.n_validated,
               s.spearman, 100 * s.median_rel_error);
    printf("  database: %s\n  arrays:   %s\n", o.db_path, s.hdf5_path);
    print_most_sensitive(o.db_path, s.run_id);
    if (o.sensitivity) print_kl_table(o.db_path, s.run_id);
    if (o.sensitivity && s.site_jobs_total) print_site_table(o.db_path, s.run_id);
    return 0;
}
