/* qsense runs OpenBLAS's best kernels for the CPU without being told: the choice (a core
 * OpenBLAS picked for an older instruction set is replaced by the best one for the CPU, a core
 * already as good or one we do not know is left alone), and the numbers: perplexity with the
 * kernels qsense ends up with equals perplexity with the best kernels set by hand, and agrees
 * with the slowest (SSE3) kernels to 1e-6. */
#include <string.h>
#include <strings.h>

#include "core/qs_blas.h"
#include "tests/test_util.h"

static double ppl_with(const char *env, char *core, size_t cap) {
    char *out, *model = model_path("stories260K.gguf");
    int rc = run_in("/tmp", &out, "env -u OPENBLAS_CORETYPE -u QSENSE_BLAS_PICKED %s $Q ppl '%s' --text "
                                  "/usr/share/common-licenses/GPL-3 --ctx 128 --json --quiet", env, model);
    free(model);
    cJSON *j = rc == 0 ? cJSON_Parse(out) : NULL;
    CHECK(j != NULL, "ppl (%s): exit %d: %.300s", env, rc, out);
    double ppl = j ? json_num(j, "ppl") : NAN;
    cJSON *c = j ? cJSON_GetObjectItem(j, "blas_core") : NULL;
    snprintf(core, cap, "%s", cJSON_IsString(c) ? c->valuestring : "?");
    cJSON_Delete(j);
    free(out);
    return ppl;
}

int main(void) {
    /* the decision table */
    CHECK(qs_blas_choose("Prescott", 4) && !strcmp(qs_blas_choose("Prescott", 4), "SkylakeX"), "Prescott on AVX-512");
    CHECK(qs_blas_choose("Core2", 3) && !strcmp(qs_blas_choose("Core2", 3), "Haswell"), "Core2 on AVX2");
    CHECK(qs_blas_choose("Sandybridge", 3) && !strcmp(qs_blas_choose("Sandybridge", 3), "Haswell"), "Sandybridge on AVX2");
    CHECK(qs_blas_choose("Haswell", 4) && !strcmp(qs_blas_choose("Haswell", 4), "SkylakeX"), "Haswell on AVX-512");
    CHECK(qs_blas_choose("Zen", 3) == NULL, "Zen on AVX2 is already the best");
    CHECK(qs_blas_choose("SkylakeX", 4) == NULL && qs_blas_choose("Cooperlake", 4) == NULL, "AVX-512 cores stay");
    CHECK(qs_blas_choose("Haswell", 2) == NULL, "never a core above what the CPU runs");
    CHECK(qs_blas_choose("ARMV8", 4) == NULL && qs_blas_choose(NULL, 4) == NULL, "unknown cores are left alone");
    const int level = qs_blas_cpu_level();
    CHECK(level >= 1 && level <= 4, "CPU level %d", level);
    printf("this CPU: level %d, best core %s\n", level, qs_blas_best_core());

    /* the numbers: auto == best by hand; the slowest kernels agree to 1e-6 */
    char auto_core[64], best_core[64], slow_core[64], env[128];
    double p_auto = ppl_with("", auto_core, sizeof auto_core);
    snprintf(env, sizeof env, "OPENBLAS_CORETYPE=%s", qs_blas_best_core());
    double p_best = ppl_with(env, best_core, sizeof best_core);
    double p_slow = ppl_with("OPENBLAS_CORETYPE=Prescott", slow_core, sizeof slow_core);
    printf("ppl: auto %.6f (%s), by hand %.6f (%s), Prescott %.6f (%s)\n", p_auto, auto_core, p_best, best_core, p_slow,
           slow_core);
    CHECK(qs_blas_choose(auto_core, level) == NULL, "qsense ran %s kernels on a level-%d CPU", auto_core, level);
    CHECK(!strcasecmp(slow_core, "Prescott"), "OPENBLAS_CORETYPE=Prescott is honoured (%s)", slow_core);
    CHECK_REL(p_auto, p_best, 1e-7, "auto vs the best kernels by hand");
    CHECK_REL(p_auto, p_slow, 1e-6, "auto vs the SSE3 kernels");
    return test_done("test_blas_kernels_auto");
}
