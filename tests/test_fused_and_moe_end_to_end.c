/* Every command on the layouts that are not seven separate linears, with the tiny checkpoints of
 * tests/oracle/make_hf_family_models.py (their logits equal transformers' in
 * test_hf_families_match_transformers):
 *  - Phi-3: q, k, v fused in attn_qkv, gate and up stacked in ffn_up. The fused matrices are the
 *    units: profile sweeps them (and no attn_q or ffn_gate), and the stacked ffn_up keeps the Gram
 *    matrix of the FFN input (no ffn_gate holds it); the report's heatmap has the four kinds the
 *    model has and says it is fused. Contexts of 20 tokens, the checkpoint's sliding window:
 *    beyond it llama.cpp's Phi-3 (and so a Phi-3 GGUF in qsense) attends where transformers does not.
 *    An llm-compressor recipe targets its qkv_proj and gate_up_proj modules.
 *  - Qwen3 MoE, 8 experts, 2 per token, stored one by one as on the Hub: each layer's router and
 *    stacked experts are the units (no dense FFN tensor), the calibration tokens each expert
 *    received are stored (per layer they add up to tokens x experts per token), the plan says
 *    what share of the bytes the experts take, and the report draws the routing and has a heatmap
 *    column for the router and each stacked expert tensor.
 * For both: a GPTQ plan at 5 bits per weight, quantize, plan verify, a KL above zero that the
 * prediction is within 3x of, check grades it, report. */
#include <string.h>

#include "core/qs_path.h"
#include "tests/test_util.h"

static char dir[512];

/* the first integer a query on p.db prints */
static long long query(const char *sql) {
    char *out = NULL;
    int rc = run_in(dir, &out, "sqlite3 p.db \"%s\"", sql);
    long long n = rc == 0 ? atoll(out) : -1;
    CHECK(rc == 0, "%s: %s", sql, out);
    free(out);
    return n;
}

/* profile (calibration, GPTQ-capable sweep) of models/<name> into a fresh p.db */
static void profile(const char *name, int ctx) {
    char *out = NULL;
    int rc = run_in(dir, &out, "rm -f p.db && $Q profile models/%s --db p.db --calib-tokens 256 --ctx %d --formats q8_0,q4_0,q4_0-gptq "
                    "--sens-formats q8_0,q4_0,q4_0-gptq --sensitivity --eval eval.txt", name, ctx);
    CHECK(rc == 0, "%s: profile: %s", name, out);
    free(out);
}

/* plan, quantize, verify, measure, check, report; returns the output of the last step (the caller frees) */
static char *downstream(const char *name, int ctx, const char *report_grep) {
    char *out = NULL;
    int rc = run_in(dir, &out, "$Q plan --db p.db --budget-bpw 5 --rounding gptq --out plan.json && "
                    "$Q quantize models/%s --plan plan.json --db p.db -o out.gguf && $Q plan verify out.gguf plan.json", name);
    CHECK(rc == 0, "%s: plan / quantize / verify: %s", name, out);
    char *plan_out = out;
    rc = run_in(dir, &out, "$Q ppl out.gguf --base models/%s --text eval.txt --ctx %d --json --quiet", name, ctx);
    cJSON *j = rc == 0 && strchr(out, '{') ? cJSON_Parse(strchr(out, '{')) : NULL;
    CHECK(j != NULL, "%s: ppl --base: %s", name, out);
    free(out);
    const double kl = j ? json_num(j, "kl_mean") : NAN;
    cJSON_Delete(j);
    char *plan_path = qs_path_join(dir, "plan.json");
    cJSON *plan = read_json(plan_path);
    const double predicted = plan ? json_num(plan, "predicted.kl_total") : NAN;
    printf("%s: GPTQ plan at 5 bpw: KL %.5f measured, %.5f predicted\n", name, kl, predicted);
    CHECK(kl > 0 && kl < 1.0, "%s: KL of the written GGUF: %g", name, kl);
    CHECK(predicted > kl / 3 && predicted < kl * 3, "%s: predicted KL %g vs measured %g", name, predicted, kl);
    cJSON_Delete(plan);
    free(plan_path);
    rc = run_in(dir, &out, "$Q check --model out.gguf --base models/%s --data eval.txt --ctx %d --db p.db", name, ctx);
    CHECK((rc == 0 || rc == 1) && strstr(out, "eval.txt"), "%s: check (exit %d): %s", name, rc, out);
    free(out);
    rc = run_in(dir, &out, "rm -rf rep && $Q report --db p.db --out rep && %s", report_grep);
    CHECK(rc == 0, "%s: report: %s", name, out);
    free(out);
    return plan_out;
}

int main(void) {
    const char *cache = getenv("QSENSE_CACHE"), *src = getenv("QSENSE_SRC");
    char *tmp = temp_dir(), *out = NULL;
    snprintf(dir, sizeof dir, "%s", tmp);
    free(tmp);
    int rc = run_in(dir, &out, "'%s/venv/bin/python' '%s/tests/oracle/make_hf_family_models.py' models && "
                    "head -c 3000 /usr/share/common-licenses/GPL-3 > eval.txt", cache ? cache : ".", src ? src : ".");
    CHECK(rc == 0, "make_hf_family_models.py: %s", out);
    free(out);

    profile("phi3", 20);
    const long long fused = query("select count(distinct s.tensor_id) from sensitivity s join tensors t on t.id = s.tensor_id "
                                  "where t.name like 'blk.%.attn_qkv.weight' or t.name like 'blk.%.ffn_up.weight'");
    const long long split = query("select count(*) from tensors where name like '%attn_q.%' or name like '%ffn_gate%'");
    CHECK(fused == 4 && split == 0, "phi3: sensitivity covers %lld fused matrices (want 2 layers x 2) and %lld split ones", fused,
          split);
    CHECK(query("select count(*) from arrays where dataset = '/activations/blk.0.ffn_up.weight/gram'") == 1,
          "phi3: the stacked ffn_up keeps the Gram matrix of the FFN input");
    out = downstream("phi3", 20, "grep -q 'layout is fused' rep/index.html");
    free(out);
    rc = run_in(dir, &out, "cut -d' ' -f1 rep/plot-data/heatmap.dat | sort -u | tr '\\n' ' '; grep -c 'layout is fused' rep/index.html");
    CHECK(rc == 0 && !strcmp(out, "0 1 2 3 1\n"), "phi3: the heatmap has four columns and the fused note: %s", out);
    free(out);
    /* an llm-compressor recipe names Phi-3's own modules: qkv_proj and the stacked gate_up_proj */
    rc = run_in(dir, &out, "$Q profile models/phi3 --db lc.db --calib-tokens 128 --ctx 20 --formats int4-g32-sym,int8-channel-sym "
                "--sens-formats int4-g32-sym,int8-channel-sym --sensitivity --eval eval.txt > /dev/null && "
                "$Q plan --db lc.db --budget-bpw 8 --target llm-compressor --emit llm-compressor --out lc.json > /dev/null && "
                "grep -c 'mlp\\\\.gate_up_proj\\$\\|self_attn\\\\.qkv_proj\\$' lc.json.recipe.yaml; grep -c 'mlp\\\\.up_proj' lc.json.recipe.yaml");
    CHECK(!strcmp(out, "4\n0\n"), "phi3: the recipe's targets (want 2 layers x qkv_proj and gate_up_proj, no up_proj): %s", out);
    free(out);

    profile("qwen3moe", 64);
    const long long moe = query("select count(distinct s.tensor_id) from sensitivity s join tensors t on t.id = s.tensor_id "
                                "where s.applicable and (t.name like '%ffn_gate_inp%' or t.name like '%_exps%')");
    const long long dense = query("select count(*) from tensors where name like '%.ffn_gate.%' or name like '%.ffn_up.%' or "
                                  "name like '%.ffn_down.%'");
    CHECK(moe == 8 && dense == 0, "qwen3moe: sensitivity covers %lld router/expert tensors (want 2 layers x 4), %lld dense", moe,
          dense);
    const long long tokens = query("select json_extract(settings, '$.calib_tokens') from runs order by id desc limit 1");
    rc = run_in(dir, &out, "python3 -c \"import sqlite3, struct; c = sqlite3.connect('p.db'); "
                "print(' '.join(str(sum(struct.unpack('<%%dQ' %% (len(b) // 8), b))) for (b,) in "
                "c.execute(\\\"select data from arrays where dataset like '/routing/%%' order by dataset\\\")))\"");
    char want[64];
    snprintf(want, sizeof want, "%lld %lld\n", tokens * 2, tokens * 2);
    CHECK(rc == 0 && tokens > 0 && !strcmp(out, want), "qwen3moe: routed tokens per layer: %s (want %s)", out, want);
    free(out);
    /* the heatmap's columns: q, k, v, output, the router and the three stacked experts; the weights
     * heatmap adds the norms, q/k norms included (8 + 4 columns) */
    out = downstream("qwen3moe", 64, "test -s rep/routing.png && grep -q 'Every expert received' rep/index.html && "
                                     "test $(cut -d' ' -f1 rep/plot-data/heatmap.dat | sort -un | wc -l) = 8 && "
                                     "test -s rep/weights_heatmap.png && grep -q \"'attn_q_norm' 9, 'attn_k_norm' 10\" "
                                     "rep/plot-data/figures.gp && test $(cut -d' ' -f1 rep/plot-data/weights_heatmap.dat | sort -un | "
                                     "wc -l) = 12");
    CHECK(strstr(out, "experts: ") && strstr(out, "% of the tensor bytes"), "qwen3moe: the plan gives the experts' share: %s", out);
    free(out);

    rc = run_in(dir, &out, "rm -rf '%s'", dir);
    free(out);
    return test_done("test_fused_and_moe_end_to_end");
}
