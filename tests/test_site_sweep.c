/* qsense profile --act-formats / --kv-formats on stories260K (debian set): one row per activation
 * site x format x domain (4 input sites per layer and the head's; a KV cache per layer); a
 * cache format whose blocks do not fit the 8-value heads is a row that says so, not a failure;
 * every site loses more in int4 per 128 than in int8 per token (a finer grid on the same inputs);
 * the static int8 format's rows differ from the dynamic one's; the same command again resumes
 * with nothing to run and the same rows; the table is printed and the report draws the sites'
 * heatmap; the options need --sensitivity.
 * Then a W8A8 plan (plan --act a-int8-token --target llm-compressor): the linears sharing an
 * input are planned together (q/k/v and gate/up take one format and the activation format, or
 * all stay 16-bit); qsense check --plan applies the activation format too, and measures within
 * 25 % of the prediction on every domain (the sum of per-site and per-tensor KLs; the sweep's
 * whole-model rows put the sum 2-5 % under the joint cost on this model), and clearly above the
 * same plan without its activation formats; the recipe gives those modules input_activations. */
#include <string.h>

#include "core/qs_file.h"
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

/* measured KL per domain of a plan with qsense check (its table: "domain KL ..."), in order */
static int check_kls(const char *dir, const char *plan, const char *model, double kl[3]) {
    char *out;
    int rc = run_in(dir, &out, "$Q check --plan %s --base '%s' --data debian --db s.db 2>/dev/null", plan, model);
    CHECK(rc == 0, "check --plan %s: exit %d: %s", plan, rc, out);
    const char *domains[3] = {"legal", "c-headers", "python"};
    int found = 0;
    const char *table = strstr(out, "verdict");
    for (int d = 0; d < 3 && table; d++) {
        const char *at = strstr(table, domains[d]);
        if (at && sscanf(at + strlen(domains[d]), "%lf", &kl[d]) == 1) found++;
    }
    free(out);
    return found == 3;
}

static void check_plan(const char *dir, const char *db, const char *model) {
    char *out;
    int rc = run_in(dir, &out, "$Q plan --db s.db --budget-bpw 12 --target llm-compressor --act a-int8-token --out w8.json "
                               "--emit llm-compressor");
    CHECK(rc == 0, "plan --act: exit %d: %s", rc, out);
    free(out);
    char path[4096];
    snprintf(path, sizeof path, "%s/w8.json", dir);
    cJSON *plan = read_json(path);
    CHECK(plan != NULL, "read %s", path);
    if (!plan) return;
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(plan, "tensors"), *t;
    char fmt[5][4][32] = {{""}}, act[5][4][32] = {{""}};
    int n_act = 0, mixed = 0;
    cJSON_ArrayForEach(t, ts) {
        int layer;
        char kind[32];
        const char *name = cJSON_GetObjectItemCaseSensitive(t, "name")->valuestring;
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(t, "act");
        const char *f = cJSON_GetObjectItemCaseSensitive(t, "format")->valuestring;
        if (sscanf(name, "blk.%d.%31[a-z_].weight", &layer, kind) != 2 || layer < 0 || layer > 4) continue;
        const int g = !strcmp(kind, "attn_q") || !strcmp(kind, "attn_k") || !strcmp(kind, "attn_v") ? 0
                      : !strcmp(kind, "attn_output")                                           ? 1
                      : !strcmp(kind, "ffn_gate") || !strcmp(kind, "ffn_up")                   ? 2
                      : !strcmp(kind, "ffn_down")                                              ? 3
                                                                                               : -1;
        if (g < 0) continue;
        const char *av = cJSON_IsString(a) ? a->valuestring : "";
        n_act += *av != 0;
        CHECK(!*av || (!strcmp(av, "a-int8-token") && !strcmp(f, "int8-channel-sym")), "%s: %s + %s", name, f, av);
        CHECK(*av || !strcmp(f, "f16"), "%s: %s without an activation format", name, f);
        if (!fmt[layer][g][0]) snprintf(fmt[layer][g], 32, "%s", f), snprintf(act[layer][g], 32, "%s", av);
        else mixed += strcmp(fmt[layer][g], f) || strcmp(act[layer][g], av);
    }
    CHECK(n_act >= 7 && n_act < 35, "a W8A8 plan between all and nothing: %d linears quantized", n_act);
    CHECK(mixed == 0, "%d linears differ from the others reading their input", mixed);
    const cJSON *pd = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(plan, "predicted"), "per_domain");
    double want[3] = {json_num((cJSON *)pd, "legal"), json_num((cJSON *)pd, "c-headers"), json_num((cJSON *)pd, "python")};
    /* the recipe: the quantized modules get the per-token int8 input scheme */
    char *recipe;
    size_t nr;
    snprintf(path, sizeof path, "%s/w8.json.recipe.yaml", dir);
    CHECK(qs_read_file(path, &recipe, &nr, NULL) == 0, "read %s", path);
    if (recipe) {
        CHECK(strstr(recipe, "input_activations: {num_bits: 8, type: int, symmetric: true, strategy: token, dynamic: true}") != NULL,
              "input_activations in %s", recipe);
        free(recipe);
    }
    /* measured: with the activation formats, and the same plan without them */
    double got[3] = {NAN, NAN, NAN}, weights_only[3] = {NAN, NAN, NAN};
    CHECK(check_kls(dir, "w8.json", model, got), "W8A8 check table");
    cJSON *x;
    cJSON_ArrayForEach(x, ts) cJSON_DeleteItemFromObjectCaseSensitive(x, "act");
    char *text = cJSON_Print(plan);
    snprintf(path, sizeof path, "%s/w8-weights.json", dir);
    FILE *f = fopen(path, "w");
    if (f) fputs(text, f), fclose(f);
    free(text);
    CHECK(check_kls(dir, "w8-weights.json", model, weights_only), "weights-only check table");
    for (int d = 0; d < 3; d++) {
        CHECK_REL(got[d], want[d], 0.25, "W8A8 plan: measured vs predicted KL");
        CHECK(got[d] > 1.2 * weights_only[d], "domain %d: KL %.6f with activations, %.6f without", d, got[d], weights_only[d]);
    }
    cJSON_Delete(plan);
    /* a static per-tensor int8 input: check takes each input's range from the profile's calibration,
     * as the site sweep the plan was costed with did */
    rc = run_in(dir, &out, "$Q plan --db s.db --budget-bpw 12 --target llm-compressor --act a-int8-tensor --out s8.json");
    CHECK(rc == 0, "plan --act a-int8-tensor: exit %d: %s", rc, out);
    free(out);
    snprintf(path, sizeof path, "%s/s8.json", dir);
    plan = read_json(path);
    CHECK(plan != NULL, "read %s", path);
    if (plan) {
        pd = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(plan, "predicted"), "per_domain");
        const double want_s[3] = {json_num((cJSON *)pd, "legal"), json_num((cJSON *)pd, "c-headers"), json_num((cJSON *)pd, "python")};
        double got_s[3] = {NAN, NAN, NAN};
        CHECK(check_kls(dir, "s8.json", model, got_s), "static W8A8 check table");
        for (int d = 0; d < 3; d++) CHECK_REL(got_s[d], want_s[d], 0.25, "static W8A8 plan: measured vs predicted KL");
        cJSON_Delete(plan);
    }
    rc = run_in(dir, &out, "$Q check --plan s8.json --base '%s' --data debian", model);
    CHECK(rc == 2 && strstr(out, "--db"), "a static activation format without the database: exit %d: %s", rc, out);
    free(out);
    rc = run_in(dir, &out, "$Q plan --db s.db --budget-bpw 12 --act a-int8-token --out x.json");
    CHECK(rc == 2 && strstr(out, "llm-compressor"), "a W+A plan for llama.cpp: exit %d: %s", rc, out);
    free(out);
    rc = run_in(dir, &out, "$Q plan --db s.db --budget-bpw 12 --target llm-compressor --act a-fp8-e4m3-token --out x.json");
    CHECK(rc == 3 && strstr(out, "--act-formats a-fp8-e4m3-token"), "an activation format the sweep did not measure: exit %d: %s",
          rc, out);
    free(out);
    (void)db;
}

int main(void) {
    char *dir = temp_dir(), *model = model_path("stories260K.gguf"), *out;
    const char *cmd = "$Q profile '%s' --db s.db --formats int8-channel-sym --sensitivity --sens-formats int8-channel-sym --calib-tokens 1024 "
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
    /* the report draws the sites */
    rc = run_in(dir, &out, "$Q report --db s.db --out rep && grep -c 'Cost of quantizing one activation site' rep/index.html && "
                           "test -s rep/sites.png && test -s rep/plot-data/sites.dat");
    CHECK(rc == 0, "report with the site heatmap: exit %d: %s", rc, out);
    free(out);
    check_plan(dir, db, model);
    free(dir), free(model);
    return test_done("test_site_sweep");
}
