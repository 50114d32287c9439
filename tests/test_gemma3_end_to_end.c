/* Every command on a model that is not llama: Gemma 3 270M (the real file, $QSENSE_CACHE)
 * through profile (analyzers + a calibrated sensitivity map), plan (llama.cpp types at 6 bits
 * per weight), quantize (from a llama.cpp-quantized GGUF, whose metadata it copies), plan
 * verify, ppl --base, check and report. Asserts what must hold whatever the numbers: every
 * matrix probed; the written file keeps the family's keys and loads as gemma3 with the plan's
 * types (plan verify); its KL against the source on the planning text agrees with the plan's
 * prediction within a factor of 2 (the per-tensor costs add up, the additivity the planner
 * measured); check and report run on it. llama.cpp loading a file written this way is
 * checked by hand (docs in bench/README.md), as its build is not part of CI. */
#include <string.h>

#include "core/qs_path.h"
#include "io/model.h"
#include "tests/test_util.h"

int main(void) {
    const char *cache = getenv("QSENSE_CACHE");
    char *model = qs_path_join(cache ? cache : ".", "gemma-3-270m-q4_k_m.gguf"), *dir = temp_dir(), *out = NULL;
    CHECK(qs_path_exists(model), "%s (scripts/fetch_models.sh fetches it)", model);
    if (!qs_path_exists(model)) return test_done("test_gemma3_end_to_end");
    /* the planning text: GPL-3's first 1,200 bytes, two 128-token chunks (each job runs the
     * 262,144-token head, which dominates a job on this small model) */
    int rc = run_in(dir, &out, "head -c 1200 /usr/share/common-licenses/GPL-3 > eval.txt");
    free(out);
    rc = run_in(dir, &out,
                "$Q profile '%s' --db g.db --calib-tokens 128 --ctx 128 --formats q8_0,q4_0 --sensitivity --eval eval.txt "
                "--sens-formats q8_0,q5_0,q4_0 --sens-mode calibrated --quiet",
                model);
    CHECK(rc == 0, "profile: %.2000s", out);
    free(out);
    rc = run_in(dir, &out, "sqlite3 g.db 'select count(distinct tensor_id) from sensitivity'");
    CHECK(rc == 0 && atoi(out) == 18 * 7 + 1, "every matrix probed (18 layers x 7 + the tied head): %s", out);
    free(out);

    rc = run_in(dir, &out, "$Q plan --db g.db --budget-bpw 6 --target llama.cpp --out plan.json");
    CHECK(rc == 0 && strstr(out, "estimated"), "plan (says which costs are estimated): %.2000s", out);
    free(out);
    cJSON *plan = read_json(qs_path_join(dir, "plan.json"));
    const double predicted = plan ? json_num(plan, "predicted.kl_total") : NAN;
    CHECK(predicted > 0, "predicted KL %g", predicted);
    cJSON_Delete(plan);

    rc = run_in(dir, &out, "$Q quantize '%s' --plan plan.json --db g.db -o out.gguf && $Q plan verify out.gguf plan.json", model);
    CHECK(rc == 0, "quantize + plan verify: %.2000s", out);
    free(out);
    char *written = qs_path_join(dir, "out.gguf");
    qs_model *m = NULL;
    qs_error err = {0};
    CHECK(qs_model_open(&m, written, NULL, &err) == 0, "the written file opens: %s", err.msg);
    if (m) {
        CHECK(!strcmp(m->arch.arch, "gemma3") && m->arch.n_swa == 512 && m->arch.qk_norm && m->arch.post_norms,
              "the written file is still gemma3 with its window (%s, %d)", m->arch.arch, m->arch.n_swa);
        int once = 0;
        for (int i = 0; i < m->n_meta; i++) once += !strcmp(m->meta[i].key, "general.quantization_version");
        CHECK(once == 1, "general.quantization_version once, not %d times", once);
    }
    qs_model_close(m);

    rc = run_in(dir, &out, "$Q ppl out.gguf --base '%s' --text eval.txt --ctx 128 --json --quiet", model);
    cJSON *j = rc == 0 ? cJSON_Parse(out) : NULL;
    const double kl = j ? json_num(j, "kl_mean") : NAN;
    CHECK(kl > predicted / 2 && kl < predicted * 2, "measured KL %g vs the plan's prediction %g: %.500s", kl, predicted, out);
    cJSON_Delete(j);
    free(out);

    rc = run_in(dir, &out, "$Q check --model out.gguf --base '%s' --data eval.txt --ctx 128 --db g.db", model);
    CHECK(rc == 0 || rc == 1, "check runs (pass or fail by thresholds): %.2000s", out);
    CHECK(strstr(out, "eval.txt") != NULL, "check names the domain: %.500s", out);
    free(out);
    rc = run_in(dir, &out, "$Q report --db g.db --text && $Q report --db g.db --out rep");
    CHECK(rc == 0 && strstr(out, "gemma3") && strstr(out, "token_embd.weight"), "report: %.2000s", out);
    free(out);
    CHECK(count_files_matching(dir, "heatmap.png") == 1, "the report's heatmap drawn");

    rc = run_in(dir, &out, "rm -rf '%s'", dir);
    free(out);
    free(written);
    free(model);
    free(dir);
    return test_done("test_gemma3_end_to_end");
}
