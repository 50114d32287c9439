/* The CLI's machine-readable output: `qsense inspect --json` on the three formats (tensor
 * counts, types and totals that follow from the files' own headers) and `qsense ppl --json`
 * (every documented field); --help on every command. */
#include <string.h>

#include "tests/test_util.h"

static cJSON *run_json(const char *args) {
    char cmd[4096], *out;
    snprintf(cmd, sizeof cmd, "('%s' %s 2>/dev/null)", qsense_bin(), args);
    int rc = run_cmd(cmd, &out);
    cJSON *j = rc == 0 ? cJSON_Parse(out) : NULL;
    CHECK(j != NULL, "qsense %s: exit %d: %.500s", args, rc, out);
    free(out);
    return j;
}

static int count_type(cJSON *j, const char *type) {
    int n = 0;
    cJSON *ts = cJSON_GetObjectItem(j, "tensors"), *t;
    cJSON_ArrayForEach(t, ts) n += !strcmp(cJSON_GetObjectItem(t, "type")->valuestring, type);
    return n;
}

int main(void) {
    char *gguf = model_path("stories260K.gguf"), *bin = model_path("stories260K.bin"), *tok = model_path("tok512.bin");
    char *q4 = model_path("stories260K-llamacpp-Q4_K_M.gguf"), args[2048];
    /* stories260K: dim 64, hidden 172, 5 layers, 8 heads, 4 kv heads, vocab 512; the llama2.c
     * checkpoint ties the output to the embedding, llama.cpp's converter wrote a copy of it */
    const double tied = 512 * 64 + 64 + 5 * (64 + 64 * 64 + 2 * 32 * 64 + 64 * 64 + 64 + 3 * 64 * 172);
    const double params = tied + 512 * 64;
    snprintf(args, sizeof args, "inspect '%s' --json", gguf);
    cJSON *j = run_json(args);
    if (j) {
        CHECK(json_num(j, "totals.n_tensors") == 48, "stories260K.gguf: %g tensors", json_num(j, "totals.n_tensors"));
        CHECK(json_num(j, "totals.parameters") == params, "parameters %g, want %g", json_num(j, "totals.parameters"), params);
        CHECK(json_num(j, "totals.bits_per_weight") == 32, "f32 model bpw %g", json_num(j, "totals.bits_per_weight"));
        CHECK(json_num(j, "arch.n_kv_heads") == 4 && json_num(j, "arch.hidden_dim") == 172, "arch");
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(j, "metadata")) > 10, "metadata");
        cJSON_Delete(j);
    }
    snprintf(args, sizeof args, "inspect '%s' --json", bin);
    if ((j = run_json(args))) {
        CHECK(json_num(j, "totals.parameters") == tied, "llama2.c parameters %g", json_num(j, "totals.parameters"));
        CHECK(json_num(j, "totals.n_tensors") == 47, "llama2.c: %g tensors", json_num(j, "totals.n_tensors"));
        CHECK(!strcmp(cJSON_GetObjectItem(j, "format")->valuestring, "llama2c"), "format");
        cJSON_Delete(j);
    }
    snprintf(args, sizeof args, "inspect '%s' --json", q4);
    if ((j = run_json(args))) {
        /* the shared README: q5_0 x29, q8_0 x3, f16 x5 (ffn_down), f32 norms */
        CHECK(count_type(j, "q5_0") == 29 && count_type(j, "q8_0") == 3 && count_type(j, "f16") == 5 &&
                  count_type(j, "f32") == 11,
              "Q4_K_M mix types");
        CHECK(json_num(j, "totals.parameters") == params, "Q4_K_M parameters");
        double bpw = json_num(j, "totals.bits_per_weight");
        CHECK(bpw > 5 && bpw < 9, "Q4_K_M bpw %g", bpw);
        cJSON_Delete(j);
    }
    char smol[1024];
    snprintf(smol, sizeof smol, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", getenv("QSENSE_CACHE") ? getenv("QSENSE_CACHE") : "");
    snprintf(args, sizeof args, "inspect '%s' --json", smol);
    if ((j = run_json(args))) {
        CHECK(count_type(j, "q4_1") == 210 && count_type(j, "q8_0") == 1, "SmolLM2: q4_1 x%d, q8_0 x%d", count_type(j, "q4_1"),
              count_type(j, "q8_0"));
        CHECK(json_num(j, "arch.dim") == 576 && json_num(j, "arch.n_layers") == 30 && json_num(j, "arch.n_kv_heads") == 3 &&
                  json_num(j, "arch.rope_base") == 100000 && json_num(j, "arch.n_vocab") == 49152,
              "SmolLM2 arch");
        cJSON_Delete(j);
    }
    snprintf(args, sizeof args, "ppl '%s' --tokenizer '%s' --text /usr/share/common-licenses/GPL-3 --ctx 128 --chunks 4 --json",
             bin, tok);
    if ((j = run_json(args))) {
        const char *keys[] = {"ppl", "stderr", "n_tokens", "n_chunks", "n_scored", "ctx", "seconds", "tokens_per_second"};
        for (int i = 0; i < 8; i++) CHECK(!isnan(json_num(j, keys[i])), "ppl --json lacks %s", keys[i]);
        CHECK(json_num(j, "n_chunks") == 4 && json_num(j, "n_scored") == 4 * 63, "4 chunks of 128 score 4 x 63 tokens");
        cJSON_Delete(j);
    }
    const char *cmds[] = {"--help", "ppl --help", "inspect --help", "tokenize --help"};
    for (int i = 0; i < 4; i++) {
        char cmd[512], *out;
        snprintf(cmd, sizeof cmd, "'%s' %s", qsense_bin(), cmds[i]);
        CHECK(run_cmd(cmd, &out) == 0 && strstr(out, "usage: qsense"), "qsense %s", cmds[i]);
        free(out);
    }
    free(gguf); free(bin); free(tok); free(q4);
    return test_done("test_cli_inspect_and_ppl");
}
