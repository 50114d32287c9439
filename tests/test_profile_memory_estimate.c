/* The profile's memory estimate for the sweep's whole-model rows (analyzers/profile_memory.h):
 * a format with GGUF blocks holds the whole model in them (q8_0: 8.5 bits per weight of every
 * matrix); any other format runs layer-major, so it holds one layer's matrices in f32 (never
 * the whole model's 4 bytes per weight) and every chunk's residual stream, which may spill. */
#include <stdio.h>
#include <string.h>

#include "analyzers/profile_memory.h"
#include "io/model.h"
#include "tests/test_util.h"

int main(void) {
    char *path = model_path("stories260K.gguf");
    qs_model *m = NULL;
    qs_error err = {0};
    const qs_model_options mo = {0};
    CHECK(qs_model_open(&m, path, &mo, &err) == 0, "%s", err.msg);
    if (!m) return test_done("test_profile_memory_estimate");
    /* the figures the estimate should give, from the tensor list */
    double all_matrices = 0, layer0 = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const qs_tensor *t = &m->tensors[i];
        const double n = (double)qs_tensor_numel(t);
        if (t->n_dims < 2 || n <= (double)t->ne[0]) continue;
        all_matrices += n;
        if (!strncmp(t->name, "blk.0.", 6)) layer0 += n;
    }
    qs_eval_domain doms[2] = {{.name = "a", .tokens = 1024}, {.name = "b", .tokens = 600}};
    qs_evalset set = {.name = "t", .domains = doms, .n_domains = 2};
    const double tokens = 1024 + 512; /* whole chunks of 512 */
    qs_profile_options opt = {
        .formats = "q8_0", .ctx = 512, .calib_tokens = 512, .sensitivity = 1, .sens_formats = "q8_0"};
    qs_profile_memory q8, i4, both;
    qs_profile_estimate_memory(m, &opt, &set, 0, &q8);
    opt.sens_formats = "int4-g128-asym";
    qs_profile_estimate_memory(m, &opt, &set, 0, &i4);
    opt.sens_formats = "q8_0,int4-g128-asym";
    qs_profile_estimate_memory(m, &opt, &set, 0, &both);
    CHECK_REL(q8.whole, all_matrices * 8.5 / 8, 1e-9, "q8_0: the whole model in its blocks");
    CHECK_REL(i4.whole, 4 * layer0, 1e-9, "int4: one layer's matrices in f32");
    CHECK(i4.whole < 4 * all_matrices / 4, "int4: far below the whole model in f32 (%.0f vs %.0f)", i4.whole,
          4 * all_matrices);
    const double streams = 4 * tokens * m->arch.dim;
    CHECK_REL(i4.sens_cache - q8.sens_cache, streams, 1e-9, "int4: every chunk's stream, spillable");
    CHECK_REL(both.whole, q8.whole > i4.whole ? q8.whole : i4.whole, 1e-9, "two formats: the worst");
    CHECK_REL(both.sens - q8.sens, (both.whole - q8.whole) + streams, 1e-9, "two formats: the worst, and the streams");
    qs_model_close(m);
    free(path);
    return test_done("test_profile_memory_estimate");
}
