/* AWQ on stories260K (debian calibration): the "-awq" formats' activation-weighted output error
 * is never above their base format's on any tensor (alpha = 0, plain rounding, is on the search
 * grid) and is lower on most; attn_output, whose scales cannot be folded into v's rows under
 * grouped-query attention, says so; a plan at llama.cpp's Q4_K_M size takes q4_0-awq somewhere;
 * qsense quantize writes it with the scales folded (attn_norm / ffn_norm changed exactly in the
 * layers whose q/k/v or gate/up took AWQ, every other norm byte for byte the source's), the
 * file's tensor types match the plan, its KL on held-out text (GPL-3) is within 15 % of the
 * plan's prediction and below the KL of a round-to-nearest plan of the same size; without --db
 * it is refused; `check --plan` measures the same figures with the AWQ tensors held as f32 copies
 * or rounded as the engine reads their rows. (llama.cpp loads such a file and measures the same KL:
 * bench/README.md.) */
#include <string.h>

#include "io/gguf.h"
#include "io/model.h"
#include "tests/test_util.h"

static double one(const char *db, const char *sql) {
    char *out, cmd[8400];
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' \"%s\"", db, sql);
    const int rc = run_cmd(cmd, &out);
    const double v = rc == 0 && *out ? atof(out) : NAN;
    free(out);
    return v;
}

static double kl_of(const char *dir, const char *file, const char *base) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    return qsense_kl(path, base, "/usr/share/common-licenses/GPL-3", 128, 0);
}

/* how many norm vectors differ between the two files (and that the others are identical) */
static int changed_norms(const char *a_path, const char *b_path, int *awq_layers_ok, const char *plan_path) {
    qs_model *a = NULL, *b = NULL;
    qs_error err = {0};
    int n = -1;
    cJSON *plan = read_json(plan_path);
    if (!qs_model_open(&a, a_path, NULL, &err) && !qs_model_open(&b, b_path, NULL, &err) && plan) {
        n = 0;
        *awq_layers_ok = 1;
        for (int l = 0; l < a->arch.n_layers; l++)
            for (int k = 0; k < 2; k++) {
                char name[64], member[64];
                snprintf(name, sizeof name, "blk.%d.%s.weight", l, k ? "ffn_norm" : "attn_norm");
                snprintf(member, sizeof member, "blk.%d.%s.weight", l, k ? "ffn_gate" : "attn_q");
                const qs_tensor *x = qs_model_find(a, name), *y = qs_model_find(b, name);
                const int differs = !x || !y || x->nbytes != y->nbytes || memcmp(x->data, y->data, x->nbytes);
                int awq = 0;
                const cJSON *t;
                cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(plan, "tensors")) {
                    const char *nm = cJSON_GetObjectItemCaseSensitive(t, "name")->valuestring;
                    const char *f = cJSON_GetObjectItemCaseSensitive(t, "format")->valuestring;
                    char prefix[64];
                    snprintf(prefix, sizeof prefix, "blk.%d.%s", l, k ? "ffn_" : "attn_");
                    if (!strncmp(nm, prefix, strlen(prefix)) && strstr(f, "-awq") && !strstr(nm, "attn_output") &&
                        !strstr(nm, "ffn_down"))
                        awq = 1;
                }
                (void)member;
                n += differs;
                if (differs != awq) *awq_layers_ok = 0;
            }
    }
    CHECK(n >= 0, "open %s and %s: %s", a_path, b_path, err.msg);
    cJSON_Delete(plan);
    qs_model_close(a);
    qs_model_close(b);
    return n;
}

int main(void) {
    char *dir = temp_dir(), *model = model_path("stories260K.gguf"), *out;
    int rc = run_in(dir, &out,
                    "$Q profile '%s' --db a.db --formats int4-g128-asym,int4-g128-asym-awq,q4_0,q4_0-awq --sensitivity "
                    "--sens-formats q4_0,q4_0-awq,int4-g128-asym,int4-g128-asym-awq --quiet",
                    model);
    CHECK(rc == 0, "profile: exit %d: %s", rc, out);
    free(out);
    char db[4096];
    snprintf(db, sizeof db, "%s/a.db", dir);
    const char *pairs[][2] = {{"int4-g128-asym", "int4-g128-asym-awq"}, {"q4_0", "q4_0-awq"}};
    for (int k = 0; k < 2; k++) {
        char sql[1024];
        snprintf(sql, sizeof sql,
                 "SELECT count(*), sum(b.output_error <= a.output_error * (1 + 1e-6)), sum(b.output_error < 0.97 * a.output_error)"
                 " FROM qerror a JOIN qerror b ON a.tensor_id = b.tensor_id AND a.run_id = b.run_id JOIN formats fa ON"
                 " fa.id = a.format_id JOIN formats fb ON fb.id = b.format_id WHERE fa.name = '%s' AND fb.name = '%s' AND"
                 " a.applicable AND b.applicable", pairs[k][0], pairs[k][1]);
        char *res, cmd[6000];
        snprintf(cmd, sizeof cmd, "sqlite3 '%s' \"%s\"", db, sql);
        CHECK(run_cmd(cmd, &res) == 0, "%s", res);
        int n = 0, never_worse = 0, better = 0;
        sscanf(res, "%d|%d|%d", &n, &never_worse, &better);
        CHECK(n >= 25 && never_worse == n && better * 2 > n, "%s vs %s: %d tensors, %d not worse, %d 3 %% better", pairs[k][1],
              pairs[k][0], n, never_worse, better);
        free(res);
    }
    CHECK(one(db, "SELECT count(*) FROM qerror q JOIN tensors t ON t.id = q.tensor_id JOIN formats f ON f.id = q.format_id WHERE"
                  " f.name = 'q4_0-awq' AND t.name LIKE '%attn_output%' AND NOT q.applicable AND q.reason LIKE '%folded%'") == 5,
          "attn_output under GQA: AWQ does not apply, and the row says why");
    /* plans at Q4_K_M's size, with and without the AWQ rows */
    rc = run_in(dir, &out, "$Q plan --db a.db --budget-bytes 300000 --out awq.json && $Q plan --db a.db --budget-bytes 300000 "
                           "--rounding rtn --out rtn.json");
    CHECK(rc == 0, "plan: exit %d: %s", rc, out);
    free(out);
    char path[4096];
    snprintf(path, sizeof path, "%s/awq.json", dir);
    cJSON *plan = read_json(path);
    int n_awq = 0;
    const cJSON *t;
    const cJSON *tensors = plan ? cJSON_GetObjectItemCaseSensitive(plan, "tensors") : NULL;
    cJSON_ArrayForEach(t, tensors)
        n_awq += strstr(cJSON_GetObjectItemCaseSensitive(t, "format")->valuestring, "-awq") != NULL;
    CHECK(n_awq > 0, "the plan takes AWQ formats");
    const double predicted = plan ? json_num(plan, "predicted.kl_total") : NAN;
    cJSON_Delete(plan);
    rc = run_in(dir, &out, "$Q quantize '%s' --plan awq.json -o awq.gguf", model);
    CHECK(rc == 2 && strstr(out, "--db"), "AWQ without the database: exit %d: %s", rc, out);
    free(out);
    rc = run_in(dir, &out, "$Q quantize '%s' --plan awq.json --db a.db -o awq.gguf && $Q plan verify awq.gguf awq.json && "
                           "$Q quantize '%s' --plan rtn.json -o rtn.gguf", model, model);
    CHECK(rc == 0, "quantize: exit %d: %s", rc, out);
    free(out);
    char file[4096];
    snprintf(file, sizeof file, "%s/awq.gguf", dir);
    int ok = 0;
    const int changed = changed_norms(model, file, &ok, path);
    CHECK(changed > 0 && ok, "norms folded exactly where q/k/v or gate/up took AWQ (%d changed)", changed);
    const double kl_awq = kl_of(dir, "awq.gguf", model), kl_rtn = kl_of(dir, "rtn.gguf", model);
    CHECK_REL(kl_awq, predicted, 0.15, "AWQ file: KL on GPL-3 vs the plan's prediction");
    CHECK(kl_awq < kl_rtn, "AWQ plan KL %.5f, round-to-nearest plan of the same size %.5f", kl_awq, kl_rtn);
    /* check --plan applies it in memory: AWQ tensors as f32 copies, or under a small --mem-budget
     * rounded as the engine reads the rows after the scales' search: the same figures */
    char *held = NULL, *read = NULL;
    const char *check =
        "$Q check --plan awq.json --base '%s' --db a.db --data /usr/share/common-licenses/GPL-3 --ctx 128 %s";
    const int rh = run_in(dir, &held, check, model, "");
    const int rr = run_in(dir, &read, check, model, "--mem-budget 1K");
    CHECK(rh >= 0 && rh <= 1 && rh == rr && held && read && !strcmp(held, read) && strstr(held, "KL"),
          "AWQ rounded as read differs from f32 copies:\n%s\n%s", held, read);
    free(held);
    free(read);
    /* for llm-compressor: an AWQModifier stage smoothing exactly the inputs whose linears took AWQ */
    rc = run_in(dir, &out, "$Q plan --db a.db --budget-bpw 8 --target llm-compressor --out llmc.json --emit llm-compressor");
    CHECK(rc == 0, "plan --target llm-compressor: exit %d: %s", rc, out);
    free(out);
    snprintf(path, sizeof path, "%s/llmc.json", dir);
    plan = read_json(path);
    int awq_qkv = 0, awq_ffn = 0, awq_down = 0;
    tensors = plan ? cJSON_GetObjectItemCaseSensitive(plan, "tensors") : NULL;
    cJSON_ArrayForEach(t, tensors) {
        const char *name = cJSON_GetObjectItemCaseSensitive(t, "name")->valuestring;
        if (!strstr(cJSON_GetObjectItemCaseSensitive(t, "format")->valuestring, "-awq") || strncmp(name, "blk.0.", 6)) continue;
        awq_qkv |= strstr(name, "attn_q.") || strstr(name, "attn_k.") || strstr(name, "attn_v.");
        awq_ffn |= strstr(name, "ffn_gate.") || strstr(name, "ffn_up.");
        awq_down |= strstr(name, "ffn_down.") != NULL;
    }
    cJSON_Delete(plan);
    char *recipe = NULL;
    size_t nr;
    snprintf(path, sizeof path, "%s/llmc.json.recipe.yaml", dir);
    CHECK(qs_read_file(path, &recipe, &nr, NULL) == 0, "read %s", path);
    if (recipe) {
        CHECK(awq_qkv + awq_ffn + awq_down > 0, "layer 0 takes AWQ somewhere in the llm-compressor plan");
        CHECK(!awq_qkv == !strstr(recipe, "smooth_layer: 're:^model\\.layers\\.0\\.input_layernorm$'\n          balance_layers: "
                                          "['re:^model\\.layers\\.0\\.self_attn\\.q_proj$', "),
              "q/k/v mapping (%d): %s", awq_qkv, recipe);
        CHECK(!awq_ffn == !strstr(recipe, "smooth_layer: 're:^model\\.layers\\.0\\.post_attention_layernorm$'"), "gate/up mapping (%d)",
              awq_ffn);
        CHECK(!awq_down == !strstr(recipe, "smooth_layer: 're:^model\\.layers\\.0\\.mlp\\.up_proj$'\n          balance_layers: "
                                           "['re:^model\\.layers\\.0\\.mlp\\.down_proj$']"),
              "down mapping (%d)", awq_down);
        const char *awq = strstr(recipe, "AWQModifier:"), *qm = strstr(recipe, "QuantizationModifier:");
        CHECK(awq && qm && awq < qm, "AWQModifier before QuantizationModifier");
        free(recipe);
    }
    free(dir), free(model);
    return test_done("test_awq");
}
