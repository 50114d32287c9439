/* Per-tensor sensitivity on stories260K with an evaluation set of three domains from the
 * shipped debian set's files: every matrix x format x domain gets a row (with a reason where a
 * format does not fit), plus whole-model rows; q8_0 costs far less KL than int2; every figure
 * carries a standard error; two runs give identical numbers, also when a memory budget too
 * small for the sweep's residual caches sends them to a scratch file beside the database (which
 * leaves no file behind); a sweep killed midway resumes without redoing finished jobs and ends
 * with the same rows; bad manifests give exit 3. */
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/test_util.h"

static char dir[512], model[1024], manifest[600];
static const char *FORMATS = "q8_0,q4_0,int4-g128-asym,int2-g64-asym";

static int profile_with(const char *db, const char *extra, char **out) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "'%s' profile '%s' --db '%s' --formats q8_0 --calib-tokens 512 --sensitivity --eval '%s' --sens-formats %s %s",
             qsense_bin(), model, db, manifest, FORMATS, extra);
    return run_cmd(cmd, out);
}

static int profile(const char *db, char **out) { return profile_with(db, "--quiet", out); }

static double q1(const char *db, const char *sql) {
    sqlite3 *h;
    sqlite3_stmt *st;
    double v = NAN;
    sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL);
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_double(st, 0);
    else if (strncmp(sql, "SELECT count(*) FROM jobs", 25)) fprintf(stderr, "query failed: %s: %s\n", sql, sqlite3_errmsg(h));
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

static const char *const DUMP_QUERIES[] = {"SELECT t.name, f.name, s.domain, s.applicable, s.n_scored, s.ppl, s.ppl_delta, s.ppl_delta_se, "
                         "s.kl_mean, s.kl_se, s.kl_p99, s.top1_agree, s.top1_se FROM sensitivity s JOIN tensors t ON "
                         "t.id = s.tensor_id JOIN formats f ON f.id = s.format_id ORDER BY t.name, f.name, s.domain",
                         "SELECT f.name, w.domain, w.n_quantized, w.bpw, w.ppl, w.kl_mean, w.kl_se, w.top1_agree FROM "
                         "whole_model w JOIN formats f ON f.id = w.format_id ORDER BY f.name, w.domain",
                         "SELECT name, sha256, n_scored, base_ppl, base_ppl_se, mean_tail_mass FROM eval_domains ORDER BY name"};

static char *dump(const char *db) { return db_dump(db, DUMP_QUERIES, (int)(sizeof DUMP_QUERIES / sizeof DUMP_QUERIES[0])); }

int main(void) {
    char *d = temp_dir(), *mp = model_path("stories260K.gguf"), *out, db[700], db2[700], kdb[700], cmd[4096];
    snprintf(dir, sizeof dir, "%s", d);
    snprintf(model, sizeof model, "%s", mp);
    snprintf(manifest, sizeof manifest, "%s/eval.json", dir);
    FILE *f = fopen(manifest, "w");
    fprintf(f, "{\"name\": \"test\", \"domains\": ["
               "{\"name\": \"legal\", \"files\": [\"/usr/share/common-licenses/Apache-2.0\"], \"tokens\": 512},"
               "{\"name\": \"c-headers\", \"files\": [\"/usr/include/std*.h\"], \"tokens\": 512},"
               "{\"name\": \"python\", \"files\": [\"/usr/lib/python3*/json/*.py\"], \"tokens\": 512}]}");
    fclose(f);
    snprintf(db, sizeof db, "%s/a.db", dir);
    snprintf(db2, sizeof db2, "%s/b.db", dir);
    snprintf(kdb, sizeof kdb, "%s/k.db", dir);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = profile(db, &out);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(rc == 0 && strstr(out, "sensitivity: 456 jobs (456 run now)") && strstr(out, "KL divergence per format"),
          "profile --sensitivity: exit %d: %s", rc, out);
    free(out);
    /* 37 matrices x 4 formats x 3 domains, and 4 formats x 3 domains of whole-model runs */
    CHECK(q1(db, "SELECT count(*) FROM sensitivity") == 444, "sensitivity rows");
    CHECK(q1(db, "SELECT count(*) FROM sensitivity s JOIN tensors t ON t.id = s.tensor_id WHERE s.applicable = 0") == 5 * 2 * 3,
          "q8_0 and q4_0 do not fit ffn_down (172 wide): 5 layers x 2 formats x 3 domains");
    CHECK(q1(db, "SELECT count(*) FROM whole_model") == 12, "whole-model rows");
    CHECK(q1(db, "SELECT count(*) FROM eval_domains WHERE n_scored = 4 * 63 AND base_ppl > 1 AND base_ppl_se > 0 AND "
                 "mean_tail_mass >= 0 AND mean_tail_mass < 0.5") == 3,
          "three domains, 4 chunks of 128 each, base ppl with its error");
    CHECK(q1(db, "SELECT count(*) FROM sensitivity WHERE applicable AND NOT (kl_mean >= 0 AND kl_se > 0 AND kl_p99 >= 0 AND "
                 "top1_agree BETWEEN 0 AND 1 AND top1_se >= 0 AND ppl_delta_se > 0 AND n_scored = 252)") == 0,
          "every figure present with its standard error");
    double q8 = q1(db, "SELECT avg(kl_mean) FROM sensitivity s JOIN formats f ON f.id = s.format_id WHERE f.name = 'q8_0' AND applicable");
    double i2 = q1(db, "SELECT avg(kl_mean) FROM sensitivity s JOIN formats f ON f.id = s.format_id WHERE f.name = 'int2-g64-asym'");
    CHECK(q8 * 100 < i2 && q8 > 0, "q8_0 mean KL %g should be far below int2's %g", q8, i2);
    CHECK(q1(db, "SELECT count(*) FROM whole_model a JOIN whole_model b ON a.domain = b.domain JOIN formats fa ON "
                 "fa.id = a.format_id JOIN formats fb ON fb.id = b.format_id WHERE fa.name = 'q8_0' AND "
                 "fb.name = 'int2-g64-asym' AND a.kl_mean * 100 < b.kl_mean AND a.top1_agree > b.top1_agree") == 3,
          "whole model: q8_0 far closer to the base than int2 on every domain");
    /* per-tensor KL of one tensor never exceeds the whole model's at the same format by much */
    CHECK(q1(db, "SELECT count(*) FROM sensitivity s JOIN whole_model w ON w.format_id = s.format_id AND w.domain = s.domain "
                 "WHERE s.applicable AND s.kl_mean > w.kl_mean + 5 * (w.kl_se + s.kl_se)") == 0,
          "a single tensor costs more than the whole model");

    /* reproducible; the memory estimate it prints sets the next run's budget */
    rc = profile_with(db2, "--mem-budget 1T", &out);
    long own = -1;
    const char *mem = strstr(out, "profile: memory: about ");
    if (mem) own = strtol(mem + strlen("profile: memory: about "), NULL, 10);
    free(out);
    char *a = dump(db), *b = dump(db2);
    CHECK(strlen(a) > 20000, "the result dump is only %zu bytes", strlen(a));
    CHECK(rc == 0 && !strcmp(a, b), "two runs differ");
    free(b);
    /* a budget 1 MiB under the estimate: the residual caches (3 x 512 tokens x 6 x 64 floats,
     * 2.25 MiB) go to a scratch file; the same rows, and nothing left in the folder */
    char spilled[800], budget[64];
    snprintf(spilled, sizeof spilled, "%s/spilled/c.db", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/spilled'", dir);
    run_cmd(cmd, &out);
    free(out);
    snprintf(budget, sizeof budget, "--mem-budget %ldM", own - 1);
    rc = profile_with(spilled, budget, &out);
    CHECK(own > 2 && rc == 0 && strstr(out, "go to a scratch file beside the database"), "a run over its budget (%s): %s", budget,
          out);
    free(out);
    b = dump(spilled);
    CHECK(b && !strcmp(a, b), "the run with its caches in a scratch file differs");
    free(b);
    snprintf(cmd, sizeof cmd, "%s/spilled", dir);
    CHECK(count_files_matching(cmd, "*scratch*") == 0, "a scratch file was left beside the database");

    /* killed in the sweep, resumed */
    double full_us = (double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3;
    pid_t pid = fork();
    if (pid == 0) {
        int nul = open("/dev/null", O_WRONLY);
        dup2(nul, 1);
        dup2(nul, 2);
        execl(qsense_bin(), qsense_bin(), "profile", model, "--db", kdb, "--formats", "q8_0", "--calib-tokens", "512",
              "--sensitivity", "--eval", manifest, "--sens-formats", FORMATS, "--quiet", (char *)NULL);
        _exit(127);
    }
    /* kill once a good part of the sweep is recorded (polling the database: WAL lets us read
     * while it writes), so the kill lands mid-sweep however fast the machine is today */
    int st = 0, exited = 0;
    for (int waited = 0; waited < 600000; waited += 20) {
        if (waitpid(pid, &st, WNOHANG) == pid) { exited = 1; break; }
        double jobs_now = q1(kdb, "SELECT count(*) FROM jobs WHERE name LIKE 'sensitivity/%'");
        if (jobs_now >= 150) break;
        usleep(20000);
    }
    if (!exited) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    CHECK(WIFSIGNALED(st), "the sweep finished before it could be killed (a full run takes %.0f ms)", full_us / 1e3);
    double done_before = q1(kdb, "SELECT count(*) FROM jobs WHERE name LIKE 'sensitivity/%' OR name LIKE 'whole/%'");
    rc = profile(kdb, &out);
    char expect[128];
    snprintf(expect, sizeof expect, "sensitivity: 456 jobs (%.0f run now)", 456 - done_before);
    CHECK(rc == 0 && done_before > 0 && strstr(out, expect), "resume must run only the %.0f jobs left: %s", 456 - done_before, out);
    free(out);
    char *k = dump(kdb);
    CHECK(!strcmp(a, k), "killed-and-resumed sweep differs from an uninterrupted one");
    free(k);
    free(a);

    /* bad manifests */
    snprintf(cmd, sizeof cmd, "printf '{\"name\": \"x\", \"domains\": [{\"name\": \"a\", \"files\": [\"/nonexistent/*.txt\"], \"tokens\": 64}]}' > '%s/bad.json' && "
             "'%s' profile '%s' --db '%s/x.db' --sensitivity --eval '%s/bad.json'", dir, qsense_bin(), model, dir, dir);
    CHECK(run_cmd(cmd, &out) == 3 && strstr(out, "no file matches '/nonexistent/*.txt'"), "missing files: %s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "printf '{\"name\": ' > '%s/broken.json' && '%s' profile '%s' --db '%s/x.db' --sensitivity --eval '%s/broken.json'",
             dir, qsense_bin(), model, dir, dir);
    CHECK(run_cmd(cmd, &out) == 3 && strstr(out, "broken.json"), "broken manifest: %s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' profile '%s' --db '%s/x.db' --sensitivity --eval nosuchset", qsense_bin(), model, dir);
    CHECK(run_cmd(cmd, &out) == 3 && strstr(out, "nosuchset"), "unknown set: %s", out);
    free(out);

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    run_cmd(cmd, &out);
    free(out);
    free(d);
    free(mp);
    return test_done("test_sensitivity_stories260k");
}
