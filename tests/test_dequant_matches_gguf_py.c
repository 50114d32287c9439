/* Every dequantizer is bit-exact against gguf-py (llama.cpp's own numpy port of ggml's reference
 * code), on real llama.cpp-written files: stories260K's Q4_K_M and Q2_K mixes (q5_0, q4_0,
 * q8_0, f16), SmolLM2-135M (q4_1, q8_0), Gemma 3 270M (q4_k, q6_k, q5_0, q8_0), plus a file of
 * every block type made by gguf-py (q5_1, bf16, q2_k, q3_k, q5_k, all nine i-quants, tq1_0,
 * tq2_0, mxfp4, nvfp4 ...). Compared by sha256 of
 * the float32 values of each whole tensor. */
#include <string.h>

#include "core/qs_dtype.h"
#include "core/qs_file.h"
#include "core/qs_path.h"
#include "core/qs_sha256.h"
#include "io/gguf.h"
#include "tests/test_util.h"

static char py[1024], src[1024];

static void check_file(const char *path, int expect_min_types) {
    char cmd[4096], *out;
    snprintf(cmd, sizeof cmd, "'%s' '%s/tests/oracle/dequant_hashes.py' '%s'", py, src, path);
    int rc = run_cmd(cmd, &out);
    CHECK(rc == 0, "oracle failed on %s: %s", path, out);
    cJSON *want = rc == 0 ? cJSON_Parse(out) : NULL;
    free(out);
    qs_gguf *g = NULL;
    qs_error err = {0};
    CHECK(qs_gguf_open(&g, path, &err) == 0, "%s", err.msg);
    if (!want || !g) return;
    int matched = 0, mismatched = 0, seen[QS_DT_GGML_COUNT] = {0};
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const qs_gguf_tensor *t = &g->tensors[i];
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        float *buf = malloc(sizeof(float) * (size_t)n);
        qs_dtype_get(t->type)->to_float(t->data, buf, n);
        char hex[65];
        qs_sha256_hex(buf, sizeof(float) * (size_t)n, hex);
        free(buf);
        cJSON *h = cJSON_GetObjectItemCaseSensitive(want, name);
        if (cJSON_IsString(h) && !strcmp(h->valuestring, hex)) {
            matched++;
            seen[t->type] = 1;
        } else {
            mismatched++;
            fprintf(stderr, "  %s: %s (%s) differs from gguf-py\n", path, name, qs_dtype_name(t->type));
        }
    }
    int types = 0;
    for (int i = 0; i < QS_DT_GGML_COUNT; i++) types += seen[i];
    CHECK(mismatched == 0 && matched == (int)g->n_tensors, "%s: %d tensors match, %d differ", path, matched, mismatched);
    CHECK(types >= expect_min_types, "%s: only %d types compared", path, types);
    printf("%s: %d tensors bit-exact over %d types\n", path, matched, types);
    qs_gguf_close(g);
    cJSON_Delete(want);
}

int main(void) {
    const char *cache = getenv("QSENSE_CACHE");
    snprintf(py, sizeof py, "%s/venv/bin/python", cache ? cache : "/nonexistent");
    snprintf(src, sizeof src, "%s", getenv("QSENSE_SRC") ? getenv("QSENSE_SRC") : ".");
    CHECK(qs_path_exists(py), "no oracle python at %s: run scripts/fetch_models.sh", py);
    char *dir = temp_dir(), cmd[4096], *out, rb[1100];
    snprintf(rb, sizeof rb, "%s/every-block-type.gguf", dir);
    snprintf(cmd, sizeof cmd, "'%s' '%s/tests/oracle/make_random_blocks.py' '%s'", py, src, rb);
    CHECK(run_cmd(cmd, &out) == 0, "make_random_blocks: %s", out);
    free(out);
    check_file(rb, 25);
    char *a = model_path("stories260K-llamacpp-Q4_K_M.gguf"), *b = model_path("stories260K-llamacpp-Q2_K.gguf");
    check_file(a, 4);
    check_file(b, 4);
    char smol[1100], gemma[1100];
    snprintf(smol, sizeof smol, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", cache ? cache : "");
    snprintf(gemma, sizeof gemma, "%s/gemma-3-270m-q4_k_m.gguf", cache ? cache : "");
    check_file(smol, 3);
    check_file(gemma, 5);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(run_cmd(cmd, &out) == 0, "cleanup");
    free(out);
    free(a);
    free(b);
    free(dir);
    return test_done("test_dequant_matches_gguf_py");
}
