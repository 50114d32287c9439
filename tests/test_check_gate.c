/* qsense check as a CI gate on real files: with thresholds chosen from llama.cpp's reference
 * figures (KL 0.045 for Q4_K_M, 0.19 for Q2_K on GPL-3), the Q4_K_M mix passes (exit 0) and the
 * Q2_K mix fails (exit 1, JUnit failures naming the domain and metric, a Markdown table);
 * per-domain thresholds; baseline mode against the last passing run in the database; a plan
 * applied in memory equals the same plan written by qsense quantize; a plan in formats without
 * GGUF blocks gives the same figures held as f32 copies or, under a small --mem-budget, rounded
 * as the engine reads the rows; malformed thresholds exit 3. */
#include <string.h>

#include "tests/test_util.h"

static char dir[512];

static int check(const char *args, char **out) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' check %s", dir, qsense_bin(), args);
    return run_cmd(cmd, out);
}

static char *slurp(const char *name) {
    char path[700], *t = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) return strdup("");
    t = calloc(1, 1 << 16);
    size_t n = fread(t, 1, (1 << 16) - 1, f);
    t[n] = 0;
    fclose(f);
    return t;
}

int main(void) {
    char *d = temp_dir(), *base = model_path("stories260K.gguf"), *q4 = model_path("stories260K-llamacpp-Q4_K_M.gguf");
    char *q2 = model_path("stories260K-llamacpp-Q2_K.gguf"), args[4096], *out;
    snprintf(dir, sizeof dir, "%s", d);
    FILE *f;
    char path[700];
    snprintf(path, sizeof path, "%s/th.json", dir);
    f = fopen(path, "w");
    fprintf(f, "{\"default\": {\"max_kl\": 0.1, \"max_ppl_ratio\": 1.05, \"min_top1\": 0.8}}");
    fclose(f);
    const char *gpl = "/usr/share/common-licenses/GPL-3";

    snprintf(args, sizeof args, "--model '%s' --base '%s' --data %s --ctx 128 --thresholds th.json --junit j.xml --markdown m.md", q4, base, gpl);
    CHECK(check(args, &out) == 0 && strstr(out, "3 checks, 0 failed"), "Q4_K_M must pass: %s", out);
    free(out);
    snprintf(args, sizeof args, "--model '%s' --base '%s' --data %s --ctx 128 --thresholds th.json --junit j.xml --markdown m.md", q2, base, gpl);
    CHECK(check(args, &out) == 1 && strstr(out, "FAIL"), "Q2_K must fail with exit 1: %s", out);
    free(out);
    char *j = slurp("j.xml"), *md = slurp("m.md");
    CHECK(strstr(j, "failures=\"3\"") && strstr(j, "classname=\"qsense.check.GPL-3\" name=\"kl_mean\"><failure message=\"kl_mean on domain GPL-3"),
          "JUnit names the domain and metric: %s", j);
    CHECK(strstr(md, "| GPL-3 |") && strstr(md, "**(fail)**") && strstr(md, "FAILED"), "Markdown summary: %s", md);
    free(j);
    free(md);

    /* per-domain thresholds over a set of three domains */
    snprintf(path, sizeof path, "%s/dom.json", dir);
    f = fopen(path, "w");
    fprintf(f, "{\"name\": \"two\", \"domains\": [{\"name\": \"gpl\", \"files\": [\"%s\"], \"tokens\": 2048},"
               "{\"name\": \"apache\", \"files\": [\"/usr/share/common-licenses/Apache-2.0\"], \"tokens\": 2048}]}", gpl);
    fclose(f);
    snprintf(path, sizeof path, "%s/th2.json", dir);
    f = fopen(path, "w");
    fprintf(f, "{\"default\": {\"max_kl\": 0.1}, \"domains\": {\"apache\": {\"max_kl\": 0.0001}}}");
    fclose(f);
    snprintf(args, sizeof args, "--model '%s' --base '%s' --data dom.json --ctx 128 --thresholds th2.json --junit j2.xml", q4, base);
    CHECK(check(args, &out) == 1, "a strict domain threshold must fail: %s", out);
    free(out);
    j = slurp("j2.xml");
    CHECK(strstr(j, "failures=\"1\"") && strstr(j, "on domain apache") && !strstr(j, "on domain gpl"), "only apache fails: %s", j);
    free(j);

    /* baseline mode */
    snprintf(path, sizeof path, "%s/base.json", dir);
    f = fopen(path, "w");
    fprintf(f, "{\"baseline\": {\"tolerance\": 0.1}}");
    fclose(f);
    snprintf(args, sizeof args, "--model '%s' --base '%s' --data %s --ctx 128 --thresholds th.json --db c.db", q4, base, gpl);
    CHECK(check(args, &out) == 0, "recording a passing run: %s", out);
    free(out);
    snprintf(args, sizeof args, "--model '%s' --base '%s' --data %s --ctx 128 --thresholds base.json --db c.db", q2, base, gpl);
    CHECK(check(args, &out) == 1, "Q2_K is worse than the last passing run: %s", out);
    free(out);
    snprintf(args, sizeof args, "--model '%s' --base '%s' --data %s --ctx 128 --thresholds base.json --db c.db", q4, base, gpl);
    CHECK(check(args, &out) == 0 && strstr(out, "0 failed"), "Q4_K_M again matches its baseline: %s", out);
    free(out);

    /* a plan in memory equals the plan written to a file */
    cJSON *ref = NULL;
    char *rp = reference_path("stories260K-gpl3-llamacpp.json");
    ref = read_json(rp);
    const char *sha = cJSON_GetObjectItem(cJSON_GetObjectItem(ref, "model"), "sha256")->valuestring;
    snprintf(path, sizeof path, "%s/plan.json", dir);
    f = fopen(path, "w");
    fprintf(f, "{\"qsense_plan_version\": \"1\", \"model\": {\"sha256\": \"%s\"}, \"target\": \"llama.cpp\", \"tensors\": [", sha);
    const char *kinds[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "attn_norm", "ffn_norm"};
    const char *fmts[] = {"q5_1", "q8_0", "q8_0", "q5_0", "q5_0", "q5_0", "f16", "f32", "f32"};
    for (int l = 0; l < 5; l++)
        for (int k = 0; k < 9; k++) fprintf(f, "{\"name\": \"blk.%d.%s.weight\", \"format\": \"%s\"},", l, kinds[k], fmts[k]);
    fprintf(f, "{\"name\": \"token_embd.weight\", \"format\": \"q5_0\"}, {\"name\": \"output.weight\", \"format\": \"q8_0\"},"
               "{\"name\": \"output_norm.weight\", \"format\": \"f32\"}]}");
    fclose(f);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' quantize '%s' --plan plan.json -o planned.gguf", dir, qsense_bin(), base);
    CHECK(run_cmd(cmd, &out) == 0, "quantize: %s", out);
    free(out);
    char *a = NULL, *b = NULL;
    snprintf(args, sizeof args, "--plan plan.json --base '%s' --data %s --ctx 128 --thresholds th.json", base, gpl);
    CHECK(check(args, &a) == 0, "plan in memory: %s", a);
    snprintf(args, sizeof args, "--model planned.gguf --base '%s' --data %s --ctx 128 --thresholds th.json", base, gpl);
    CHECK(check(args, &b) == 0, "planned file: %s", b);
    CHECK(a && b && !strcmp(a, b), "in-memory plan and written file differ:\n%s\n%s", a, b);
    free(a);
    free(b);

    /* formats without GGUF blocks: f32 copies, or with a memory budget too small for them, rounded
     * as the engine reads the rows (a per-tensor scale or sparse threshold found first by scans over
     * the rows): the same figures */
    snprintf(path, sizeof path, "%s/plan-int.json", dir);
    f = fopen(path, "w");
    fprintf(f, "{\"qsense_plan_version\": \"1\", \"model\": {\"sha256\": \"%s\"}, \"target\": \"any\", \"tensors\": [",
            sha);
    const char *ifmts[] = {"int4-g32-asym",    "mxfp6-e2m3",       "nf4-g64",
                           "fp8-e4m3-channel", "int4-g32-sym-mse", "q4_0",
                           "int8-tensor-sym",  "nvidia-nvfp4",     "int3-g128-asym-sp0.45"};
    const char *down[] = {"fp8-e4m3-channel", "int4-channel-asym", "int8-tensor-sym"}; /* rows of 172: per channel */
    for (int l = 0; l < 5; l++)
        for (int k = 0; k < 9; k++)
            fprintf(f, "{\"name\": \"blk.%d.%s.weight\", \"format\": \"%s\"},", l, kinds[k],
                    k == 6  ? down[l % 3]
                    : k > 6 ? "f32"
                            : ifmts[(k + l) % 9]);
    fprintf(f, "{\"name\": \"token_embd.weight\", \"format\": \"int8-channel-sym\"}, {\"name\": \"output.weight\", "
               "\"format\": "
               "\"int4-g32-asym\"}, {\"name\": \"output_norm.weight\", \"format\": \"f32\"}]}");
    fclose(f);
    for (int numerics = 0; numerics < 2; numerics++) {
        const char *nm = numerics ? "--llamacpp-numerics" : "";
        snprintf(args, sizeof args, "--plan plan-int.json --base '%s' --data %s --ctx 128 --thresholds th.json %s",
                 base, gpl, nm);
        const int ra = check(args, &a);
        snprintf(args, sizeof args,
                 "--plan plan-int.json --base '%s' --data %s --ctx 128 --thresholds th.json --mem-budget 1K %s", base,
                 gpl, nm);
        const int rb = check(args, &b);
        CHECK((ra == 0 || ra == 1) && ra == rb && a && b && !strcmp(a, b),
              "rows rounded as read differ from f32 copies (%s):\n%s\n%s", nm, a, b);
        CHECK(a && !strstr(a, " 0.00000 "), "the int plan changes the model: %s", a);
        free(a);
        free(b);
    }

    /* malformed thresholds: exit 3 */
    const char *bad[] = {"{\"default\": {\"max_kld\": 0.1}}", "{\"default\": {\"max_kl\": -1}}", "not json", "{\"limits\": {}}"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/bad%d.json", dir, i);
        f = fopen(path, "w");
        fputs(bad[i], f);
        fclose(f);
        snprintf(args, sizeof args, "--model '%s' --base '%s' --data %s --ctx 128 --thresholds bad%d.json", q4, base, gpl, i);
        CHECK(check(args, &out) == 3 && strstr(out, "bad"), "malformed thresholds %d: %s", i, out);
        free(out);
    }
    snprintf(args, sizeof args, "--base '%s' --data %s", base, gpl);
    CHECK(check(args, &out) == 2, "missing candidate is a usage error: %s", out);
    free(out);

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    run_cmd(cmd, &out);
    free(out);
    cJSON_Delete(ref);
    free(rp); free(d); free(base); free(q4); free(q2);
    return test_done("test_check_gate");
}
