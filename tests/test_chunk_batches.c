/* Layer-major batches of chunks (engine/chunk_pass) score every chunk as if it ran alone: the
 * logits of a chunk pushed through the layers with others equal those of its own forward pass,
 * and perplexity and the base-vs-candidate figures do not depend on the batch. Equal up to
 * sgemm's summation order, which may change with the number of rows it is given. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_file.h"
#include "engine/chunk_pass.h"
#include "engine/compare.h"
#include "engine/ppl.h"
#include "io/model.h"
#include "tests/test_util.h"
#include "tok/vocab.h"

enum { CTX = 64, CHUNKS = 10 };

static int rel_close(double a, double b, double tol) { return fabs(a - b) <= tol * fmax(fabs(a), fabs(b)); }

int main(void) {
    char *base_path = model_path("stories260K.gguf"), *cand_path = model_path("stories260K-llamacpp-Q4_K_M.gguf");
    qs_error err = {0};
    qs_model_options opt = {NULL};
    qs_model *bm = NULL, *cm = NULL;
    qs_vocab *v = NULL;
    qs_engine *be = NULL, *ce = NULL;
    char *text = NULL;
    size_t n, n_ids;
    int *ids = NULL;
    int ok = qs_model_open(&bm, base_path, &opt, &err) == 0 && qs_model_open(&cm, cand_path, &opt, &err) == 0 &&
             qs_vocab_for_model(&v, bm, &err) == 0 &&
             qs_read_file("/usr/share/common-licenses/GPL-3", &text, &n, &err) == 0 &&
             qs_tokenize(v, text, n, 1, &ids, &n_ids, &err) == 0 && qs_engine_new(&be, bm, 0, &err) == 0 &&
             qs_engine_new(&ce, cm, 0, &err) == 0;
    CHECK(ok, "setup: %s", err.msg);
    if (!ok) return test_done("test_chunk_batches");

    /* logits: three chunks together vs each alone (BOS first, the second half scored) */
    const qs_arch *a = qs_engine_arch(ce);
    const int first = CTX / 2, V = a->n_vocab, nb = 3;
    float *x = malloc(sizeof(float) * nb * CTX * a->dim);
    float *batched = malloc(sizeof(float) * (CTX - first) * V), *alone = malloc(sizeof(float) * (CTX - first) * V);
    int chunk[CTX];
    CHECK(qs_chunks_through_layers(ce, ids, nb, CTX, v->bos, x, NULL, NULL, &err) == 0, "batch: %s", err.msg);
    double worst = 0, scale = 0;
    for (int k = 0; k < nb; k++) {
        memcpy(chunk, ids + (size_t)k * CTX, sizeof chunk);
        chunk[0] = v->bos;
        CHECK(qs_engine_forward_from(ce, a->n_layers, x + (size_t)k * CTX * a->dim, CTX, first, batched, &err) == 0,
              "%s", err.msg);
        CHECK(qs_engine_forward(ce, chunk, CTX, first, alone, &err) == 0, "%s", err.msg);
        for (size_t i = 0; i < (size_t)(CTX - first) * V; i++) {
            worst = fmax(worst, fabs(batched[i] - alone[i]));
            scale = fmax(scale, fabs(alone[i]));
        }
    }
    CHECK(scale > 1 && worst <= 1e-5 * scale, "batched logits differ from each chunk's own by %g (largest logit %g)",
          worst, scale);

    /* perplexity: chunk by chunk, in batches of 3 (the last one short) and all at once */
    qs_ppl_result p1, p3, p10;
    CHECK(qs_ppl_run(ce, ids, n_ids, CTX, v->bos, CHUNKS, 1, NULL, &p1, &err) == 0 &&
              qs_ppl_run(ce, ids, n_ids, CTX, v->bos, CHUNKS, 3, NULL, &p3, &err) == 0 &&
              qs_ppl_run(ce, ids, n_ids, CTX, v->bos, CHUNKS, 10, NULL, &p10, &err) == 0,
          "ppl: %s", err.msg);
    CHECK(p1.batch_chunks == 1 && p3.batch_chunks == 3 && p10.batch_chunks == 10, "batches %d %d %d", p1.batch_chunks,
          p3.batch_chunks, p10.batch_chunks);
    CHECK(p1.n_scored == (size_t)CHUNKS * (CTX - 1 - first) && p3.n_scored == p1.n_scored &&
              p10.n_scored == p1.n_scored,
          "scored %zu %zu %zu", p1.n_scored, p3.n_scored, p10.n_scored);
    CHECK(rel_close(p1.ppl, p3.ppl, 1e-6) && rel_close(p1.ppl, p10.ppl, 1e-6), "ppl %.9g %.9g %.9g", p1.ppl, p3.ppl,
          p10.ppl);

    /* base vs candidate: the same figures chunk by chunk and in batches */
    qs_compare_result c1, c4;
    CHECK(qs_compare_run(be, ce, ids, n_ids, CTX, v->bos, CHUNKS, 1, NULL, NULL, &c1, &err) == 0 &&
              qs_compare_run(be, ce, ids, n_ids, CTX, v->bos, CHUNKS, 4, NULL, NULL, &c4, &err) == 0,
          "compare: %s", err.msg);
    CHECK(c1.n_scored == p1.n_scored && c4.n_scored == c1.n_scored, "compare scored %zu %zu", c1.n_scored, c4.n_scored);
    CHECK(rel_close(c1.ppl, p1.ppl, 1e-6), "compare's candidate ppl %.9g vs ppl's %.9g", c1.ppl, p1.ppl);
    CHECK(c1.kl_mean > 1e-3, "a Q4_K_M candidate differs from its f32 base (KL %g)", c1.kl_mean);
    CHECK(rel_close(c1.ppl_base, c4.ppl_base, 1e-6) && rel_close(c1.ppl, c4.ppl, 1e-6) &&
              rel_close(c1.kl_mean, c4.kl_mean, 1e-4) && rel_close(c1.kl_max, c4.kl_max, 1e-3) &&
              fabs(c1.same_top1 - c4.same_top1) <= 1.0 / (double)c1.n_scored,
          "compare by chunk vs in batches: ppl %.9g/%.9g, KL %.9g/%.9g, max %.9g/%.9g, top-1 %.6f/%.6f", c1.ppl, c4.ppl,
          c1.kl_mean, c4.kl_mean, c1.kl_max, c4.kl_max, c1.same_top1, c4.same_top1);

    free(x);
    free(batched);
    free(alone);
    free(ids);
    free(text);
    qs_engine_free(be);
    qs_engine_free(ce);
    qs_vocab_free(v);
    qs_model_close(bm);
    qs_model_close(cm);
    free(base_path);
    free(cand_path);
    return test_done("test_chunk_batches");
}
