/* `qsense ppl MODEL --base BASE` reproduces llama-perplexity --kl-divergence on the real
 * llama.cpp-quantized stories260K files (reference figures in ../shared/reference): mean KL,
 * how often the top token is the same, and the RMS change of the true token's probability,
 * with llama.cpp's activation rounding emulated; close in exact f32 too. */
#include <string.h>

#include "tests/test_util.h"

static cJSON *compare(const char *file, int llamacpp) {
    char *m = model_path(file), *b = model_path("stories260K.gguf"), cmd[2048], *out;
    snprintf(cmd, sizeof cmd, "('%s' ppl '%s' --base '%s' --text /usr/share/common-licenses/GPL-3 --ctx 128 --quiet --json %s 2>&1)",
             qsense_bin(), m, b, llamacpp ? "--llamacpp-numerics" : "");
    int rc = run_cmd(cmd, &out);
    cJSON *j = rc == 0 ? cJSON_Parse(out) : NULL;
    CHECK(j != NULL, "%s: exit %d: %s", cmd, rc, out);
    free(out);
    free(m);
    free(b);
    return j;
}

int main(void) {
    char *rp = reference_path("stories260K-gpl3-llamacpp.json");
    cJSON *ref = read_json(rp);
    CHECK(ref != NULL, "cannot read %s", rp);
    const char *mixes[2] = {"Q4_K_M", "Q2_K"};
    for (int k = 0; k < 2 && ref; k++) {
        char key[128], file[128], what[128];
        snprintf(file, sizeof file, "stories260K-llamacpp-%s.gguf", mixes[k]);
        snprintf(key, sizeof key, "llama_quantize.%s.mean_kld", mixes[k]);
        const double kl = json_num(ref, key);
        snprintf(key, sizeof key, "llama_quantize.%s.same_top_p_percent", mixes[k]);
        const double top = json_num(ref, key) / 100;
        snprintf(key, sizeof key, "llama_quantize.%s.rms_dp_percent", mixes[k]);
        const double rms = json_num(ref, key) / 100;
        for (int l = 1; l >= 0; l--) {
            cJSON *j = compare(file, l);
            if (!j) continue;
            snprintf(what, sizeof what, "%s mean KL (%s)", mixes[k], l ? "llama.cpp numerics" : "exact f32");
            CHECK_REL(json_num(j, "kl_mean"), kl, l ? 0.01 : 0.03, what);
            CHECK(fabs(json_num(j, "same_top1") - top) < (l ? 0.005 : 0.01), "%s same top: %.4f vs llama.cpp %.4f", mixes[k],
                  json_num(j, "same_top1"), top);
            snprintf(what, sizeof what, "%s RMS dp (%s)", mixes[k], l ? "llama.cpp numerics" : "exact f32");
            CHECK_REL(json_num(j, "rms_dp"), rms, 0.03, what);
            CHECK(json_num(j, "n_scored") == 173 * 63 && json_num(j, "kl_se") > 0 && json_num(j, "kl_p99") > json_num(j, "kl_mean"),
                  "%s: chunks and error bars", mixes[k]);
            cJSON_Delete(j);
        }
    }
    /* the base against itself: zero */
    cJSON *j = compare("stories260K.gguf", 0);
    if (j) {
        CHECK(json_num(j, "kl_mean") < 1e-9 && json_num(j, "same_top1") == 1 && json_num(j, "ppl_ratio") == 1, "self comparison");
        cJSON_Delete(j);
    }
    cJSON_Delete(ref);
    free(rp);
    return test_done("test_kl_matches_llamacpp");
}
