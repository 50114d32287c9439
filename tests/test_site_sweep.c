/* qsense profile --act-formats / --kv-formats on stories260K (debian set): one row per activation
 * site x format x domain (4 input sites per layer and the head's; a KV cache per layer); a
 * cache format whose blocks do not fit the 8-value heads is a row that says so, not a failure;
 * every site loses more in int4 per 128 than in int8 per token (a finer grid on the same inputs);
 * the static int8 format's rows differ from the dynamic one's; the same command again resumes
 * with nothing to run and the same rows; the table is printed; the options need --sensitivity. */
#include <string.h>

#include "tests/test_util.h"

static const char *QUERY[] = {
    "SELECT site, layer, kind, format, domain, applicable, reason, bits, n_scored, ppl, kl_mean, kl_p99, top1_agree FROM "
    "site_sensitivity ORDER BY site, format, domain"};

static double one(const char *db, const char *sql) {
    char *out, cmd[4096];
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' \"%s\"", db, sql);
    const int rc = run_cmd(cmd, &out);
    const double v = rc == 0 && *out ? atof(out) : NAN;
    free(out);
    return v;
}

int main(void) {
    char *dir = temp_dir(), *model = model_path("stories260K.gguf"), *out;
    const char *cmd = "$Q profile '%s' --db s.db --formats q8_0 --sensitivity --sens-formats q8_0 --calib-tokens 1024 "
                      "--act-formats a-int8-token,a-int8-tensor,a-int4-g128 --kv-formats kv-q8_0,kv-fp8-e4m3 --quiet";
    int rc = run_in(dir, &out, cmd, model);
    CHECK(rc == 0, "profile: exit %d: %s", rc, out);
    CHECK(strstr(out, "activation sites: 219 jobs (219 run now)") && strstr(out, "worst site"), "summary: %s", out);
    free(out);
    char db[4096];
    snprintf(db, sizeof db, "%s/s.db", dir);
    /* (5 layers x 4 inputs + the head) x 3 formats + 5 caches x 2 formats, on 3 domains */
    CHECK(one(db, "SELECT count(*) FROM site_sensitivity") == 3 * (21 * 3 + 5 * 2), "rows");
    CHECK(one(db, "SELECT count(*) FROM site_sensitivity WHERE format = 'kv-q8_0' AND NOT applicable AND reason LIKE '%heads of 8%'") ==
              15, "kv-q8_0 does not fit 8-value heads, and the rows say so");
    CHECK(one(db, "SELECT count(*) FROM site_sensitivity WHERE format = 'kv-fp8-e4m3' AND applicable AND kl_mean > 0") == 15,
          "fp8 caches measured");
    CHECK(one(db, "SELECT count(*) FROM site_sensitivity a JOIN site_sensitivity b ON a.site = b.site AND a.domain = b.domain"
                  " WHERE a.format = 'a-int8-token' AND b.format = 'a-int4-g128' AND a.kl_mean < b.kl_mean AND a.kl_mean > 0") == 63,
          "int8 per token costs less than int4 per 128 at every site and domain");
    CHECK(one(db, "SELECT count(*) FROM site_sensitivity a JOIN site_sensitivity b ON a.site = b.site AND a.domain = b.domain"
                  " WHERE a.format = 'a-int8-token' AND b.format = 'a-int8-tensor' AND a.kl_mean != b.kl_mean") == 63,
          "the static scale is not the dynamic one");
    CHECK(one(db, "SELECT min(bits) FROM site_sensitivity WHERE format = 'a-int8-token'") > 8, "per-token scales cost bits");
    /* resume: nothing left, the same rows */
    char *before = db_dump(db, QUERY, 1);
    rc = run_in(dir, &out, cmd, model);
    CHECK(rc == 0 && strstr(out, "activation sites: 219 jobs (0 run now)"), "resume: exit %d: %s", rc, out);
    free(out);
    char *after = db_dump(db, QUERY, 1);
    CHECK(before && after && !strcmp(before, after), "rows unchanged by the resumed run");
    free(before), free(after);
    rc = run_in(dir, &out, "$Q profile '%s' --db t.db --act-formats a-int8-token", model);
    CHECK(rc == 2 && strstr(out, "--sensitivity"), "--act-formats without --sensitivity: exit %d: %s", rc, out);
    free(out);
    rc = run_in(dir, &out, "$Q profile '%s' --db t.db --sensitivity --kv-formats a-int8-token", model);
    CHECK(rc == 2 && strstr(out, "activation format"), "an activation format as a cache: exit %d: %s", rc, out);
    free(out);
    free(dir), free(model);
    return test_done("test_site_sweep");
}
