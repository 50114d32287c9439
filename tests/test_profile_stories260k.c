/* `qsense profile` on stories260K fills the database with everything issue 3 lists, for every
 * tensor; the numbers obey the invariants (error falls as bits rise, output error ~0 for f16);
 * the activation statistics equal an independent collection through the engine's observer and
 * the HDF5 file holds them; re-running resumes (no job runs twice); runs killed with SIGKILL at
 * random moments and re-run end with exactly the rows of an uninterrupted run, and the database
 * passes PRAGMA integrity_check; bad arguments get exit codes 2/3 with clear messages. */
#include <hdf5.h>
#include <signal.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include "core/qs_file.h"
#include "engine/engine.h"
#include "io/model.h"
#include "tests/test_util.h"
#include "tok/vocab.h"

static char dir[512], model[1024], cmd_buf[4096];
static const char *FORMATS = "int2-g64-asym,int3-g64-asym,int4-g64-asym,int5-g64-asym,int6-g64-asym,int8-g64-asym,"
                             "int4-tensor-sym,int4-channel-sym,int4-g32-sym,q4_0,q8_0,q5_0,f16,fp8-e4m3,nf4-g64";

static int profile(const char *db, const char *extra, char **out) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' profile '%s' --db '%s' --formats %s --calib-tokens 2048 --quiet %s", qsense_bin(), model,
             db, FORMATS, extra ? extra : "");
    return run_cmd(cmd, out);
}

static double q1(sqlite3 *h, const char *sql) {
    sqlite3_stmt *st;
    double v = NAN;
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_double(st, 0);
    else fprintf(stderr, "query failed: %s: %s\n", sql, sqlite3_errmsg(h));
    sqlite3_finalize(st);
    return v;
}

/* every result row, by tensor and format name, as text (run ids excluded) */
static const char *const DUMP_QUERIES[] = {
        "SELECT t.name, w.* FROM weight_stats w JOIN tensors t ON t.id = w.tensor_id ORDER BY t.name",
        "SELECT t.name, a.* FROM activation_stats a JOIN tensors t ON t.id = a.tensor_id ORDER BY t.name",
        "SELECT t.name, f.name, q.* FROM qerror q JOIN tensors t ON t.id = q.tensor_id JOIN formats f ON f.id = q.format_id "
        "ORDER BY t.name, f.name",
        "SELECT dataset, dtype, n, hex(data) FROM arrays ORDER BY dataset"};

static char *dump(const char *db) { return db_dump(db, DUMP_QUERIES, (int)(sizeof DUMP_QUERIES / sizeof DUMP_QUERIES[0])); }

/* channel mean squares of blk.1's attention input, collected independently */
static double *ref_mean_sq;
static long ref_tokens;
static void observe(void *user, int layer, int kind, const float *x, int n, int n_in) {
    (void)user;
    if (layer != 1 || kind != QS_LIN_Q) return;
    for (int t = 0; t < n; t++)
        for (int c = 0; c < n_in; c++) ref_mean_sq[c] += (double)x[t * n_in + c] * x[t * n_in + c];
    ref_tokens += n;
}

int main(void) {
    char *d = temp_dir();
    snprintf(dir, sizeof dir, "%s", d);
    char *mp = model_path("stories260K.gguf");
    snprintf(model, sizeof model, "%s", mp);
    char db[600], *out;
    snprintf(db, sizeof db, "%s/full.db", dir);

    /* a full run */
    int rc = profile(db, NULL, &out);
    CHECK(rc == 0 && strstr(out, "run 1 new") && strstr(out, "most sensitive tensors"), "profile: exit %d: %s", rc, out);
    free(out);
    sqlite3 *h;
    CHECK(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK, "open db");
    CHECK(q1(h, "SELECT count(*) FROM weight_stats") == 48, "weight_stats rows: every tensor");
    CHECK(q1(h, "SELECT count(*) FROM activation_stats") == 36, "activation_stats rows: 5 layers x 7 linears + output");
    CHECK(q1(h, "SELECT count(*) FROM qerror") == 37 * 15, "qerror rows: 37 matrices x 15 formats");
    CHECK(q1(h, "SELECT count(*) FROM qerror q JOIN tensors t ON t.id = q.tensor_id JOIN formats f ON f.id = q.format_id "
                "WHERE t.kind = 'ffn_down' AND f.name IN ('q4_0', 'q8_0', 'q5_0') AND applicable = 0 "
                "AND reason LIKE '%172%'") == 15,
          "ffn_down (172 wide) is not applicable to 32-blocks, with the reason");
    CHECK(q1(h, "SELECT count(*) FROM weight_stats WHERE std > 0 AND kurtosis > 1 AND p0_1 <= p1 AND p1 <= p50 AND "
                "p50 <= p99 AND p99 <= p99_9 AND absmax >= p99_9 AND hist_dataset IS NOT NULL") == 48,
          "weight statistics of every tensor present and ordered");
    /* error falls as bits rise, for every matrix */
    CHECK(q1(h, "SELECT count(*) FROM qerror a JOIN qerror b ON a.tensor_id = b.tensor_id JOIN formats fa ON fa.id = a.format_id "
                "JOIN formats fb ON fb.id = b.format_id WHERE fa.family = 'int' AND fb.family = 'int' AND fa.group_size = 64 "
                "AND fb.group_size = 64 AND fb.bits > fa.bits AND fa.symmetric = 0 AND fb.symmetric = 0 "
                "AND NOT (b.mse < a.mse AND (b.output_error < a.output_error OR b.output_error IS NULL))") == 0,
          "more bits never give more error");
    CHECK(q1(h, "SELECT max(output_error) FROM qerror q JOIN formats f ON f.id = q.format_id WHERE f.name = 'f16'") < 1e-6,
          "f16's output error is ~0");
    CHECK(q1(h, "SELECT count(*) FROM qerror q JOIN tensors t ON t.id = q.tensor_id WHERE t.kind != 'token_embd' AND "
                "applicable = 1 AND output_error IS NULL") == 0,
          "every linear has an activation-weighted output error");
    CHECK(q1(h, "SELECT n_tokens FROM activation_stats a JOIN tensors t ON t.id = a.tensor_id WHERE t.name = 'output.weight'") == 2048,
          "the output head saw every calibration token");

    /* activation statistics: independent collection over the same 16 chunks of 128 */
    qs_model *m;
    qs_vocab *v;
    qs_engine *e;
    qs_error err = {0};
    char *text;
    size_t n, n_ids;
    int *ids;
    CHECK(qs_model_open(&m, model, NULL, &err) == 0 && qs_vocab_for_model(&v, m, &err) == 0 &&
              qs_read_file("/usr/share/common-licenses/GPL-3", &text, &n, &err) == 0 &&
              qs_tokenize(v, text, n, 1, &ids, &n_ids, &err) == 0 && qs_engine_new(&e, m, 0, &err) == 0,
          "%s", err.msg);
    ref_mean_sq = calloc(64, sizeof(double));
    qs_engine_set_observer(e, observe, NULL);
    float *logits = malloc(sizeof(float) * 512 * 128);
    for (int c = 0; c < 16; c++) {
        int chunk[128];
        memcpy(chunk, ids + c * 128, sizeof chunk);
        chunk[0] = v->bos;
        qs_engine_forward(e, chunk, 128, 0, logits, &err);
    }
    char h5[700];
    snprintf(h5, sizeof h5, "%s.run1.h5", db);
    hid_t f = H5Fopen(h5, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(f >= 0, "open %s", h5);
    float msq[64] = {0};
    hid_t ds = f >= 0 ? H5Dopen2(f, "/activations/blk.1.attn_q.weight/channel_mean_sq", H5P_DEFAULT) : -1;
    CHECK(ds >= 0 && H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, msq) >= 0, "read channel_mean_sq");
    double worst = 0;
    for (int c = 0; c < 64; c++) worst = fmax(worst, fabs(msq[c] - ref_mean_sq[c] / ref_tokens) / (ref_mean_sq[c] / ref_tokens));
    CHECK(ref_tokens == 2048 && worst < 1e-5, "channel mean squares differ from an independent collection by %g", worst);
    if (ds >= 0) H5Dclose(ds);
    if (f >= 0) H5Fclose(f);
    free(logits); free(ids); free(text); free(ref_mean_sq);
    qs_engine_free(e);
    qs_vocab_free(v);
    qs_model_close(m);
    sqlite3_close(h);

    /* resume: nothing runs twice, nothing changes */
    char *before = dump(db);
    CHECK(strlen(before) > 100000, "the result dump is only %zu bytes", strlen(before));
    rc = profile(db, NULL, &out);
    CHECK(rc == 0 && strstr(out, "resumed") && strstr(out, ", 0 run now"), "re-run must resume: %s", out);
    free(out);
    char *after = dump(db);
    CHECK(!strcmp(before, after), "a resumed run changed the results");
    free(after);

    /* killed at random moments, then re-run: the same rows as the uninterrupted run. Four rounds
     * from an empty database, each killed 5 times at random moments early in a run. */
    char kdb[600];
    snprintf(kdb, sizeof kdb, "%s/killed.db", dir);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = profile(kdb, NULL, &out);
    free(out);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double full_us = (double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3;
    srand((unsigned)time(NULL));
    int kills = 0;
    for (int round = 0; round < 4; round++) {
        snprintf(cmd_buf, sizeof cmd_buf, "rm -f '%s' '%s-wal' '%s-shm' '%s'.run*", kdb, kdb, kdb, kdb);
        run_cmd(cmd_buf, &out);
        free(out);
        for (int k = 0; k < 5; k++) {
            pid_t pid = fork();
            if (pid == 0) {
                int nul = open("/dev/null", O_WRONLY);
                dup2(nul, 1);
                dup2(nul, 2);
                execl(qsense_bin(), qsense_bin(), "profile", model, "--db", kdb, "--formats", FORMATS, "--calib-tokens", "2048",
                      "--quiet", (char *)NULL);
                _exit(127);
            }
            /* within the first 40 % of a full run's time: each kill leaves work for the next */
            usleep((useconds_t)(rand() % (int)(full_us > 2500 ? full_us * 0.4 : 1000)));
            kill(pid, SIGKILL);
            int st;
            waitpid(pid, &st, 0);
            kills += WIFSIGNALED(st);
        }
        rc = profile(kdb, NULL, &out);
        CHECK(rc == 0, "completing after kills: %s", out);
        free(out);
        char *killed = dump(kdb);
        CHECK(!strcmp(before, killed), "round %d: killed-and-resumed results differ from an uninterrupted run", round);
        free(killed);
    }
    printf("%d of 20 runs interrupted by SIGKILL (a full run takes %.0f ms)\n", kills, full_us / 1e3);
    CHECK(kills >= 8, "only %d of 20 runs were actually interrupted (a full run takes %.0f ms)", kills, full_us / 1e3);
    sqlite3 *hk;
    sqlite3_open_v2(kdb, &hk, SQLITE_OPEN_READONLY, NULL);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(hk, "PRAGMA integrity_check", -1, &st, NULL);
    CHECK(sqlite3_step(st) == SQLITE_ROW && !strcmp((const char *)sqlite3_column_text(st, 0), "ok"), "integrity_check");
    sqlite3_finalize(st);
    sqlite3_close(hk);

    /* a full disk (a file size limit; SIGXFSZ ignored, so writes fail with EFBIG) at several
     * points of a run: a clear error naming the database, an intact database, and a rerun
     * without the limit completes with the uninterrupted run's results */
    const int limits_kb[] = {16, 96, 200, 320};
    for (int k = 0; k < 4; k++) {
        snprintf(cmd_buf, sizeof cmd_buf, "rm -f '%s' '%s-wal' '%s-shm' '%s'.run*", kdb, kdb, kdb, kdb);
        run_cmd(cmd_buf, &out);
        free(out);
        snprintf(cmd_buf, sizeof cmd_buf, "bash -c \"trap '' XFSZ; ulimit -f %d; exec '%s' profile '%s' --db '%s' --formats %s "
                 "--calib-tokens 2048 --quiet\" 2>&1", limits_kb[k], qsense_bin(), model, kdb, FORMATS);
        rc = run_cmd(cmd_buf, &out);
        CHECK(rc == 3 && strstr(out, kdb) && strstr(out, "file size limit") && strstr(out, "run the same command again"),
              "limit %d KB: exit %d: %s", limits_kb[k], rc, out);
        CHECK(!strstr(out, "Sanitizer") && !strstr(out, "Segmentation"), "limit %d KB crashed: %s", limits_kb[k], out);
        free(out);
        sqlite3 *hf;
        sqlite3_open_v2(kdb, &hf, SQLITE_OPEN_READWRITE, NULL);
        sqlite3_stmt *ic;
        sqlite3_prepare_v2(hf, "PRAGMA integrity_check", -1, &ic, NULL);
        CHECK(sqlite3_step(ic) == SQLITE_ROW && !strcmp((const char *)sqlite3_column_text(ic, 0), "ok"),
              "limit %d KB: integrity_check after the failed write", limits_kb[k]);
        sqlite3_finalize(ic);
        sqlite3_close(hf);
        rc = profile(kdb, NULL, &out);
        CHECK(rc == 0, "limit %d KB: rerunning without the limit: %s", limits_kb[k], out);
        free(out);
        char *resumed = dump(kdb);
        CHECK(!strcmp(before, resumed), "limit %d KB: resumed results differ from an uninterrupted run", limits_kb[k]);
        free(resumed);
    }
    free(before);

    /* bad arguments */
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' profile '%s' --db '%s/x.db' --formats int4-g128-asym,int9-g1", qsense_bin(), model, dir);
    CHECK(run_cmd(cmd, &out) == 2 && strstr(out, "unknown format 'int9-g1'"), "bad format name: %s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' profile '%s' --db '%s/x.db' --data /nonexistent.txt", qsense_bin(), model, dir);
    CHECK(run_cmd(cmd, &out) == 3 && strstr(out, "/nonexistent.txt"), "missing data: %s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' profile '%s' --db /nonexistent/dir/x.db", qsense_bin(), model);
    CHECK(run_cmd(cmd, &out) == 3 && strstr(out, "/nonexistent/dir/x.db"), "unwritable database: %s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "printf 'not a database at all, just text......................................' > '%s/junk.db' && "
             "'%s' profile '%s' --db '%s/junk.db'", dir, qsense_bin(), model, dir);
    CHECK(run_cmd(cmd, &out) == 3 && strstr(out, "junk.db"), "junk database: %s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' profile '%s' --db '%s/set.db' --data debian --formats q8_0 --quiet", qsense_bin(), model, dir);
    CHECK(run_cmd(cmd, &out) == 0 && strstr(out, "run 1 new"), "calibration from the debian evaluation set: %s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' profile --list-formats", qsense_bin());
    CHECK(run_cmd(cmd, &out) == 0 && strstr(out, "int4-g128-asym") && strstr(out, "q4_k") && strstr(out, "4.5000"),
          "--list-formats: %.300s", out);
    free(out);

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    run_cmd(cmd, &out);
    free(out);
    free(d);
    free(mp);
    return test_done("test_profile_stories260k");
}
