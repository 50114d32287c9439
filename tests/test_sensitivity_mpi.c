/* The sensitivity sweep over MPI (analyzers/sweep_mpi.h), on stories260K:
 * - `mpirun -n 2 qsense profile ... --sensitivity` writes the same rows as one process, bit for
 *   bit (every sensitivity and whole-model figure), with formats whose rounding needs the
 *   calibration statistics (q4_0-w: the importance; q4_0-gptq: every X^T X), which the worker
 *   computes again for itself;
 * - a 2-rank run stopped part way (SIGTERM to mpirun after a few seconds) leaves a sound database,
 *   and the same command resumes it to the same rows;
 * - the gradient mode's map, its exact jobs spread over the ranks, is the single process's;
 * - built without MPI, a launch with two ranks is refused by name (exit 2).
 * Wall times of both runs are printed (on this 2-core machine the 2-rank run shares the cores:
 * the figure to compare is in bench/README.md). */
#include <string.h>
#include <time.h>

#include "tests/test_util.h"

static const char *FORMATS = "q8_0,q4_0-w,q4_0-gptq,int3-g32-asym";
/* mpirun as root (CI) and on a machine with fewer slots than ranks */
static const char *MPIRUN = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ASAN_OPTIONS=detect_leaks=0 "
                            "mpirun --oversubscribe -n 2";

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int profile(const char *dir, const char *launcher, const char *db, const char *extra, char **out) {
    char *model = model_path("stories260K.gguf");
    int rc = run_in(dir, out, "%s $Q profile '%s' --db '%s' --formats q8_0 --calib-tokens 512 --sensitivity --eval eval.json"
                    " --sens-formats %s %s --quiet", launcher, model, db, FORMATS, extra);
    free(model);
    return rc;
}

static const char *const ROWS[] = {
    "SELECT t.name, f.name, s.domain, s.applicable, s.n_scored, s.ppl, s.ppl_delta, s.ppl_delta_se, s.kl_mean, s.kl_se, s.kl_p99,"
    " s.top1_agree, s.top1_se FROM sensitivity s JOIN tensors t ON t.id = s.tensor_id JOIN formats f ON f.id = s.format_id"
    " ORDER BY 1, 2, 3",
    "SELECT f.name, w.domain, w.n_quantized, w.bpw, w.ppl, w.kl_mean, w.kl_se, w.kl_p99, w.top1_agree FROM whole_model w JOIN"
    " formats f ON f.id = w.format_id ORDER BY 1, 2",
    "SELECT t.name, f.name, e.domain, e.method, e.kl_mean, e.kl_se FROM sensitivity_estimates e JOIN tensors t ON t.id ="
    " e.tensor_id JOIN formats f ON f.id = e.format_id ORDER BY 1, 2, 3",
    "SELECT method, n_jobs, spearman, median_rel_error FROM estimate_validation"};

static char *dump(const char *dir, const char *db) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, db);
    return db_dump(path, ROWS, 4);
}

int main(void) {
    char *dir = temp_dir(), *out = NULL, *tiny = data_path("tinystories-sample.txt");
    char manifest[1024];
    snprintf(manifest, sizeof manifest, "%s/eval.json", dir);
    FILE *f = fopen(manifest, "w");
    fprintf(f, "{\"name\": \"test\", \"domains\": ["
               "{\"name\": \"legal\", \"files\": [\"/usr/share/common-licenses/GPL-3\"], \"tokens\": 1024},"
               "{\"name\": \"stories\", \"files\": [\"%s\"], \"tokens\": 1024}]}", tiny);
    fclose(f);
    run_in(dir, &out, "$Q --version");
    const int with_mpi = strstr(out, "MPI: ") && !strstr(out, "MPI: not built in");
    printf("%s", out);
    free(out);
    if (!with_mpi) {
        int rc = profile(dir, "OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=0", "one.db", "", &out);
        CHECK(rc == 2 && strstr(out, "built without MPI"), "a 2-rank launch without MPI built in: exit %d: %s", rc, out);
        free(out);
        free(dir), free(tiny);
        return test_done("test_sensitivity_mpi");
    }

    double t0 = now();
    /* one thread, as each of the 2 ranks on this 2-core machine has: some BLAS kernels (OpenBLAS's
     * Zen ones) sum in another order with another thread count, and the weighted and GPTQ
     * formats' rounding then flips on the calibration statistics (~1 % on their KL) */
    int rc = profile(dir, "", "one.db", "--threads 1", &out);
    const double t_one = now() - t0;
    CHECK(rc == 0, "one process: %s", out);
    free(out);
    t0 = now();
    rc = profile(dir, MPIRUN, "two.db", "", &out);
    const double t_two = now() - t0;
    CHECK(rc == 0, "2 ranks: %s", out);
    free(out);
    printf("sweep: one process of 1 thread %.1f s, 2 MPI ranks %.1f s\n", t_one, t_two);
    /* the same rows (within 1e-6 should another BLAS block a rank's passes differently) */
    double worst;
    char *a = dump(dir, "one.db"), *b = dump(dir, "two.db");
    int differ = a && b ? dumps_differ(a, b, 1e-6, &worst) : -1;
    printf("2 ranks vs one process: worst relative difference %.2e\n", worst);
    CHECK(a && b && strlen(a) > 1000 && differ == 0, "2 ranks write the rows one process writes (%d fields differ)", differ);
    free(b);

    /* stopped part way, then resumed */
    char *model = model_path("stories260K.gguf");
    rc = run_in(dir, &out, "timeout -s TERM 3 env %s $Q profile '%s' --db stopped.db --formats q8_0 --calib-tokens 512"
                " --sensitivity --eval eval.json --sens-formats %s --quiet", MPIRUN, model, FORMATS);
    printf("the 2-rank run stopped after 3 s (exit %d)\n", rc);
    free(out);
    free(model);
    rc = profile(dir, MPIRUN, "stopped.db", "", &out);
    CHECK(rc == 0, "resumed 2-rank run: %s", out);
    free(out);
    rc = run_in(dir, &out, "sqlite3 stopped.db 'PRAGMA integrity_check'");
    CHECK(rc == 0 && !strncmp(out, "ok", 2), "the stopped database is sound: %s", out);
    free(out);
    b = dump(dir, "stopped.db");
    CHECK(b && dumps_differ(a, b, 1e-6, &worst) == 0, "the stopped and resumed 2-rank run has the single process's rows");
    free(a), free(b);

    /* the gradient mode: rank 0 estimates, the exact jobs are spread */
    rc = profile(dir, "", "grad-one.db", "--sens-mode gradient --validate 12 --threads 1", &out);
    CHECK(rc == 0, "gradient, one process: %s", out);
    free(out);
    rc = profile(dir, MPIRUN, "grad-two.db", "--sens-mode gradient --validate 12", &out);
    CHECK(rc == 0, "gradient, 2 ranks: %s", out);
    free(out);
    a = dump(dir, "grad-one.db"), b = dump(dir, "grad-two.db");
    differ = a && b ? dumps_differ(a, b, 1e-6, &worst) : -1;
    printf("gradient, 2 ranks vs one process: worst relative difference %.2e\n", worst);
    CHECK(a && b && strstr(a, "gradient") && differ == 0, "the gradient run's rows are the same on 2 ranks (%d fields differ)", differ);
    free(a), free(b);
    free(dir), free(tiny);
    return test_done("test_sensitivity_mpi");
}
