/* qsense plan --target llm-compressor --emit llm-compressor on a real stories260K sweep: the
 * recipe parses as YAML (PyYAML), names every Linear of the model exactly once (in one config
 * group or in ignore) by an anchored regex on its Hugging Face module name, and each group's
 * scheme is the plan's format for every tensor it targets. A llama.cpp-target plan cannot be
 * expressed and is refused with exit 2, naming a tensor. */
#include <string.h>

#include "tests/test_util.h"

/* Python check: recipe vs plan.json; prints "ok N" with the number of Linear modules named */
static const char *CHECKER =
    "import json, re, sys, yaml\n"
    "recipe = yaml.safe_load(open(sys.argv[1])); plan = json.load(open(sys.argv[2]))\n"
    "mod = recipe['quant_stage']['quant_modifiers']['QuantizationModifier']\n"
    "kinds = {'attn_q': 'self_attn.q_proj', 'attn_k': 'self_attn.k_proj', 'attn_v': 'self_attn.v_proj',\n"
    "         'attn_output': 'self_attn.o_proj', 'ffn_gate': 'mlp.gate_proj', 'ffn_up': 'mlp.up_proj', 'ffn_down': 'mlp.down_proj'}\n"
    "def hf(name):\n"
    "    if name == 'output.weight': return 'lm_head'\n"
    "    m = re.match(r'blk\\.(\\d+)\\.(\\w+)\\.weight$', name)\n"
    "    return f'model.layers.{m.group(1)}.{kinds[m.group(2)]}' if m and m.group(2) in kinds else None\n"
    "fmt = {hf(t['name']): t['format'] for t in plan['tensors'] if hf(t['name'])}\n"
    "def matches(pattern): return [m for m in fmt if re.fullmatch(pattern[3:], m) or re.search(pattern[3:], m)]\n"
    "seen = {}\n"
    "for p in mod.get('ignore') or []:\n"
    "    for m in matches(p): seen[m] = seen.get(m, 0) + 1; assert fmt[m] in ('f16', 'f32', 'bf16'), (m, fmt[m])\n"
    "for g in mod['config_groups'].values():\n"
    "    w = g['weights']\n"
    "    for p in g['targets']:\n"
    "        assert p.startswith('re:^') and p.endswith('$'), p\n"
    "        hit = matches(p); assert len(hit) == 1, (p, hit)\n"
    "        m = hit[0]; seen[m] = seen.get(m, 0) + 1; f = fmt[m]\n"
    "        if w['type'] == 'int':\n"
    "            want = f\"int{w['num_bits']}-\" + {'tensor': 'tensor', 'channel': 'channel', 'group': f\"g{w.get('group_size')}\"}[w['strategy']]\n"
    "            want += '-sym' if w['symmetric'] else '-asym'\n"
    "            want += '-mse' if w.get('observer') == 'mse' else ''\n"
    "        else:\n"
    "            want = 'fp8-e4m3' + ('-channel' if w['strategy'] == 'channel' else '')\n"
    "        assert f == want or f.startswith(want), (m, f, want)\n"
    "assert sorted(seen) == sorted(fmt) and set(seen.values()) == {1}, 'every Linear exactly once'\n"
    "print('ok', len(seen))\n";

int main(void) {
    char *d = temp_dir(), *model = model_path("stories260K.gguf"), cmd[8192], *out;
    snprintf(cmd, sizeof cmd,
             "cd '%s' && '%s' profile '%s' --db s.db --formats int8-channel-sym,int4-g64-asym,int4-g32-sym --sensitivity "
             "--eval /usr/share/common-licenses/GPL-3 --sens-formats int8-channel-sym,int4-g64-asym,int4-g32-sym,q4_0 --quiet > /dev/null && "
             "'%s' plan --db s.db --budget-bpw 7 --target llm-compressor --out plan.json --emit llm-compressor",
             d, qsense_bin(), model, qsense_bin());
    int rc = run_cmd(cmd, &out);
    CHECK(rc == 0 && strstr(out, "llm-compressor recipe: plan.json.recipe.yaml"), "plan --emit llm-compressor: %d %s", rc, out);
    CHECK(!strstr(out, "q8_0") && !strstr(out, "q4_0"), "an llm-compressor plan uses no ggml types: %s", out);
    free(out);
    char py[600];
    snprintf(py, sizeof py, "%s/check.py", d);
    FILE *f = fopen(py, "w");
    fputs(CHECKER, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cd '%s' && /usr/bin/python3 check.py plan.json.recipe.yaml plan.json 2>&1", d);
    rc = run_cmd(cmd, &out);
    CHECK(rc == 0 && strstr(out, "ok 36"), "the recipe names all 36 Linear modules (35 + lm_head) as planned: %s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' plan --db s.db --budget-bpw 7 --target llama.cpp --out p2.json --emit llm-compressor",
             d, qsense_bin());
    rc = run_cmd(cmd, &out);
    CHECK(rc == 2 && strstr(out, "cannot express") && strstr(out, "--target llm-compressor"), "llama.cpp plan refused: %d %s", rc,
          out);
    free(out);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    run_cmd(cmd, &out);
    free(out);
    free(d);
    free(model);
    return test_done("test_plan_emit_llm_compressor");
}
