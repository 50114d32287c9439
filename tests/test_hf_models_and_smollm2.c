/* Hugging Face models and the larger real model, against independent oracles:
 *  - stories260K converted to an HF directory by tests/oracle/gguf_to_hf.py (numpy, sharded,
 *    f32 / f16 / bf16): qsense reads it to the same tokens and perplexity as the GGUF;
 *  - SmolLM2-135M (GPT-2 BPE, 49,152 tokens): qsense's ids equal Hugging Face `tokenizers` on
 *    five real texts; its perplexity equals a float64 numpy forward pass
 *    (tests/oracle/hf_llama_ppl.py) over the HF conversion, and qsense on that directory. */
#include <string.h>

#include "core/qs_file.h"
#include "core/qs_path.h"
#include "tests/test_util.h"

static char py[1024], src[1024], tmp[512];

static cJSON *run_json(const char *cmd, const char *what) {
    char *out;
    int rc = run_cmd(cmd, &out);
    cJSON *j = NULL;
    if (rc == 0) {
        /* the JSON is the last line */
        char *last = out, *p;
        while ((p = strstr(last, "\n{")) || (p = strstr(last, "\n["))) last = p + 1;
        j = cJSON_Parse(last);
    }
    CHECK(j != NULL, "%s failed (exit %d): %.2000s", what, rc, out);
    free(out);
    return j;
}

static double ppl_of(const char *model, const char *text, int ctx, int chunks) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' ppl '%s' --text '%s' --ctx %d --chunks %d --quiet --json", qsense_bin(), model, text, ctx,
             chunks);
    cJSON *j = run_json(cmd, cmd);
    double v = j ? json_num(j, "ppl") : NAN;
    cJSON_Delete(j);
    return v;
}

static double oracle_ppl(const char *hf_dir, const char *text, int ctx, int chunks) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' '%s/tests/oracle/hf_llama_ppl.py' '%s' '%s' %d %d", py, src, hf_dir, text, ctx, chunks);
    cJSON *j = run_json(cmd, "numpy oracle");
    double v = j ? json_num(j, "ppl") : NAN;
    cJSON_Delete(j);
    return v;
}

static void convert(const char *gguf, const char *out, const char *dtype, int shards) {
    char cmd[4096], *o;
    snprintf(cmd, sizeof cmd, "'%s' '%s/tests/oracle/gguf_to_hf.py' '%s' '%s' --dtype %s --shards %d", py, src, gguf, out,
             dtype, shards);
    CHECK(run_cmd(cmd, &o) == 0, "gguf_to_hf: %s", o);
    free(o);
}

/* qsense's ids (no special tokens) equal HF tokenizers' on text[0..max_bytes) */
static void same_ids(const char *model, const char *tokenizer_json, const char *text, long max_bytes) {
    char cut[600], cmd[4096], *o;
    snprintf(cut, sizeof cut, "%s/cut.txt", tmp);
    snprintf(cmd, sizeof cmd, "head -c %ld '%s' > '%s'", max_bytes, text, cut);
    CHECK(run_cmd(cmd, &o) == 0, "head: %s", o);
    free(o);
    snprintf(cmd, sizeof cmd, "'%s' '%s/tests/oracle/hf_tokenize.py' '%s' '%s'", py, src, tokenizer_json, cut);
    cJSON *want = run_json(cmd, "hf_tokenize");
    snprintf(cmd, sizeof cmd, "'%s' tokenize '%s' --text '%s' --no-special --json", qsense_bin(), model, cut);
    cJSON *got = run_json(cmd, "qsense tokenize");
    cJSON *ids = got ? cJSON_GetObjectItem(got, "ids") : NULL;
    if (want && ids) {
        int n = cJSON_GetArraySize(want), m = cJSON_GetArraySize(ids), first_diff = -1;
        for (int i = 0; i < n && i < m && first_diff < 0; i++)
            if (cJSON_GetArrayItem(want, i)->valueint != cJSON_GetArrayItem(ids, i)->valueint) first_diff = i;
        CHECK(n == m && first_diff < 0 && n > 100, "%s: qsense %d ids, HF tokenizers %d, first difference at %d", text, m, n,
              first_diff);
    }
    cJSON_Delete(want);
    cJSON_Delete(got);
}

int main(void) {
    const char *cache = getenv("QSENSE_CACHE");
    snprintf(py, sizeof py, "%s/venv/bin/python", cache ? cache : "/nonexistent");
    snprintf(src, sizeof src, "%s", getenv("QSENSE_SRC") ? getenv("QSENSE_SRC") : ".");
    CHECK(qs_path_exists(py), "no oracle python at %s: run scripts/fetch_models.sh", py);
    char *dir = temp_dir();
    snprintf(tmp, sizeof tmp, "%s", dir);
    const char *gpl = "/usr/share/common-licenses/GPL-3";
    char *stories = model_path("stories260K.gguf"), hf[600], hf16[600], hfbf[600], cmd[2048], *o;

    /* stories260K through Hugging Face files */
    snprintf(hf, sizeof hf, "%s/stories-f32", tmp);
    snprintf(hf16, sizeof hf16, "%s/stories-f16", tmp);
    snprintf(hfbf, sizeof hfbf, "%s/stories-bf16", tmp);
    convert(stories, hf, "f32", 2);
    convert(stories, hf16, "f16", 1);
    convert(stories, hfbf, "bf16", 1);
    double base = ppl_of(stories, gpl, 128, 0 + 1000);
    CHECK_REL(ppl_of(hf, gpl, 128, 1000), base, 1e-6, "stories260K sharded f32 safetensors vs GGUF");
    double p16 = ppl_of(hf16, gpl, 128, 1000), pbf = ppl_of(hfbf, gpl, 128, 1000);
    CHECK_REL(p16, base, 2e-3, "stories260K f16 safetensors");
    CHECK_REL(pbf, base, 2e-2, "stories260K bf16 safetensors");
    CHECK(p16 != base && pbf != base, "f16/bf16 rounding should change the perplexity a little");
    char tj[700];
    snprintf(tj, sizeof tj, "%s/tokenizer.json", hf);
    same_ids(hf, tj, gpl, 1 << 20);
    same_ids(stories, tj, gpl, 1 << 20);
    CHECK_REL(oracle_ppl(hf, gpl, 128, 20), ppl_of(stories, gpl, 128, 20), 1e-5, "stories260K vs numpy oracle");

    /* SmolLM2-135M */
    char smol[1100], hfs[600];
    snprintf(smol, sizeof smol, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", cache ? cache : "");
    snprintf(hfs, sizeof hfs, "%s/smollm2", tmp);
    convert(smol, hfs, "f32", 3);
    snprintf(tj, sizeof tj, "%s/tokenizer.json", hfs);
    char *wiki = data_path("wiki.test.tokens"), *shak = data_path("tinyshakespeare.txt"), *sotu = data_path("sotu.txt");
    char *gpt2inp = model_path("llamacpp-vocab/ggml-vocab-gpt-2.gguf.inp");
    same_ids(smol, tj, gpl, 1 << 20);
    same_ids(smol, tj, wiki, 300000);
    same_ids(smol, tj, shak, 300000);
    same_ids(smol, tj, sotu, 300000);
    same_ids(smol, tj, gpt2inp, 1 << 20);
    char w20k[700];
    snprintf(w20k, sizeof w20k, "%s/wiki20k.txt", tmp);
    snprintf(cmd, sizeof cmd, "head -c 20000 '%s' > '%s'", wiki, w20k);
    CHECK(run_cmd(cmd, &o) == 0, "head");
    free(o);
    double smol_ppl = ppl_of(smol, w20k, 256, 3);
    CHECK_REL(smol_ppl, oracle_ppl(hfs, w20k, 256, 3), 1e-5, "SmolLM2 GGUF vs float64 numpy oracle");
    CHECK_REL(ppl_of(hfs, w20k, 256, 3), smol_ppl, 1e-6, "SmolLM2 safetensors vs GGUF");
    CHECK(smol_ppl > 5 && smol_ppl < 60, "SmolLM2 perplexity on WikiText %.3f is not plausible", smol_ppl);

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    CHECK(run_cmd(cmd, &o) == 0, "cleanup");
    free(o);
    free(dir); free(stories); free(wiki); free(shak); free(sotu); free(gpt2inp);
    return test_done("test_hf_models_and_smollm2");
}
