/* The profile's memory estimate for the sweep (analyzers/profile_memory.h): the whole-model rows
 * run layer-major, so they hold one layer's matrices quantized (a format with GGUF blocks in them,
 * q8_0: 8.5 bits per weight; a format whose rows the engine rounds as it reads them, int4-g32, a
 * per-tensor int4 after its scans or AWQ's int4 after its search, nothing), never the whole model,
 * and every chunk's residual stream, which may spill; a per-tensor candidate of the largest tensor
 * likewise (its blocks or nothing; GPTQ and AWQ also the widest input's X^T X, read back from the
 * database, and GPTQ its factor, AWQ its search's two row blocks). */
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
    double all_matrices = 0, layer0 = 0, largest = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const qs_tensor *t = &m->tensors[i];
        const double n = (double)qs_tensor_numel(t);
        if (t->n_dims < 2 || n <= (double)t->ne[0]) continue;
        all_matrices += n;
        largest = n > largest ? n : largest;
        if (!strncmp(t->name, "blk.0.", 6)) layer0 += n;
    }
    qs_eval_domain doms[2] = {{.name = "a", .tokens = 1024}, {.name = "b", .tokens = 600}};
    qs_evalset set = {.name = "t", .domains = doms, .n_domains = 2};
    const double tokens = 1024 + 512; /* whole chunks of 512 */
    qs_profile_options opt = {
        .formats = "q8_0", .ctx = 512, .calib_tokens = 512, .sensitivity = 1, .sens_formats = "q8_0"};
    qs_profile_memory q8, i4, rows, both, scanned;
    qs_profile_estimate_memory(m, &opt, &set, 0, &q8);
    opt.sens_formats = "int4-g128-asym-awq";
    qs_profile_estimate_memory(m, &opt, &set, 0, &i4);
    opt.sens_formats = "int4-g32-asym";
    qs_profile_estimate_memory(m, &opt, &set, 0, &rows);
    opt.sens_formats = "int4-tensor-sym";
    qs_profile_estimate_memory(m, &opt, &set, 0, &scanned);
    opt.sens_formats = "q8_0,int4-g128-asym-awq,int4-g32-asym";
    qs_profile_estimate_memory(m, &opt, &set, 0, &both);
    CHECK_REL(q8.whole, layer0 * 8.5 / 8, 1e-9, "q8_0: one layer in its blocks");
    CHECK(i4.whole == 0, "AWQ int4: rounded as read after its search, no copy (%.0f)", i4.whole);
    CHECK(q8.whole < all_matrices, "far below the whole model (%.0f vs %.0f)", q8.whole, all_matrices);
    CHECK(rows.whole == 0, "int4-g32: rounded as read, no copy (%.0f)", rows.whole);
    CHECK(scanned.whole == 0, "per-tensor int4: rounded as read after its scan, no copy (%.0f)", scanned.whole);
    const double block = 4.0 * 32 * 1024 * 1024; /* the analyzers' four row blocks */
    CHECK_REL(q8.tensors - block, largest * 8.5 / 8, 1e-9, "q8_0: the largest tensor's candidate in its blocks");
    const double hid = m->arch.hidden_dim > m->arch.dim ? m->arch.hidden_dim : m->arch.dim, widest = 4 * hid * hid;
    CHECK_REL(i4.tensors - block, widest + block / 2, 1e-9,
              "AWQ int4: no candidate copy; X^T X and the search's blocks");
    CHECK(rows.tensors == block, "int4-g32: no candidate copy");
    CHECK(scanned.tensors == block, "per-tensor int4: no candidate copy");
    const double streams = 4 * tokens * m->arch.dim;
    CHECK_REL(i4.sens_cache - q8.sens_cache, 0, 1e-9, "both: every chunk's stream, spillable");
    CHECK_REL(i4.sens - i4.whole - (q8.sens - q8.whole), 0, 1e-9, "the formats differ by their layer's weights only");
    CHECK_REL(both.whole, q8.whole, 1e-9, "three formats: the worst");
    CHECK_REL(both.tensors, i4.tensors, 1e-9, "three formats: the worst candidate");
    opt.sensitivity = 0;
    qs_profile_memory none;
    qs_profile_estimate_memory(m, &opt, &set, 0, &none);
    CHECK(none.sens == 0 && none.whole == 0, "no sweep, no sweep memory");
    const double cache = 4 * tokens * m->arch.dim * (m->arch.n_layers + 1);
    CHECK_REL(q8.sens_cache, cache + streams, 1e-9,
              "the caches: every layer's stream, and the whole-model rows' waiting chunks");
    /* a domain whose text gives fewer tokens than its budget: the sweep uses what it gives */
    opt.sensitivity = 1;
    opt.sens_formats = "q8_0,int4-g128-asym-awq,int4-g32-asym";
    doms[0].n_text_tokens = 700; /* one chunk of 512 instead of two */
    qs_profile_memory shorter;
    qs_profile_estimate_memory(m, &opt, &set, 0, &shorter);
    CHECK_REL(both.sens_cache - shorter.sens_cache, 4.0 * 512 * m->arch.dim * (m->arch.n_layers + 2), 1e-9,
              "a short text: its caches for the tokens it has");
    doms[0].n_text_tokens = 5000; /* more than the budget: the budget */
    qs_profile_estimate_memory(m, &opt, &set, 0, &shorter);
    CHECK_REL(shorter.sens_cache, both.sens_cache, 1e-12, "a long text: the budget");
    /* the analyzers: AWQ searches over the rows (two more row blocks), GPTQ holds the factor of the
     * widest input's Gram matrix (and twice that in doubles making it); neither a tensor whole */
    opt = (qs_profile_options){.formats = "int4-g128-asym-awq", .ctx = 512, .calib_tokens = 512};
    qs_profile_memory awq, gptq;
    qs_profile_estimate_memory(m, &opt, &set, 0, &awq);
    CHECK_REL(awq.tensors, 1.5 * block, 1e-12, "AWQ analyzers: six row blocks, no f32 copy of a tensor");
    opt.formats = "q4_0-gptq";
    qs_profile_estimate_memory(m, &opt, &set, 1, &gptq);
    CHECK_REL(gptq.tensors, block + 3 * widest, 1e-12, "GPTQ analyzers: four row blocks and the factor");
    opt.sensitivity = 1;
    opt.formats = "q8_0";
    opt.sens_formats = "q4_0-gptq";
    qs_profile_estimate_memory(m, &opt, &set, 0, &gptq);
    CHECK_REL(gptq.tensors - block, largest * 4.5 / 8 + 4 * widest, 1e-9,
              "GPTQ sweep: the largest tensor's blocks, made by rows after the factor of X^T X read back");
    /* the sweep's X^T X: one layer's at a time in a profile run; every layer's on an MPI worker */
    qs_profile_memory worker;
    qs_profile_estimate_memory(m, &opt, &set, 1, &worker);
    CHECK(worker.stats > gptq.stats + (m->arch.n_layers - 1) * widest,
          "a worker holds every layer's X^T X (%.0f vs %.0f)", worker.stats, gptq.stats);
    qs_model_close(m);
    free(path);
    return test_done("test_profile_memory_estimate");
}
