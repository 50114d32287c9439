/* Benchmark (not a test): speed of qsense's forward pass against OpenBLAS's own sgemm rate,
 * measured in the same run on this machine.
 *   1. OpenBLAS sgemm GFLOP/s on the 1B model's FFN shape (the limit we are held to)
 *   2. stories260K: `qsense ppl` tokens/s on GPL-3, ctx 128
 *   3. a 1B-shaped llama (dim 2048, 22 layers, 32 heads, 4 kv heads, ffn 5632, vocab 32000;
 *      random f32 weights written by qsense's own GGUF writer): tokens/s of a 512-token chunk
 *      scored as llama-perplexity does, GFLOP/s overall and inside the matmuls.
 *   4. the cost of one sensitivity job (perturb one tensor, rerun from its layer using the
 *      prefix cache) as a fraction of one full evaluation of the same tokens, averaged over the
 *      model's matrices, on stories260K and the 1B shape.
 * usage: qsense_bench [--threads T] [--ctx N] [--chunks N] [--model-dir DIR]
 *        (DIR holds the generated 4.4 GB model; default $QSENSE_CACHE or ~/.cache/qsense) */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/qs_blas.h"
#include "core/qs_dtype.h"
#include "core/qs_file.h"
#include "core/qs_path.h"
#include "core/qs_progress.h"
#include "engine/engine.h"
#include "engine/ppl.h"
#include "io/gguf_write.h"
#include "io/model.h"
#include "tok/vocab.h"

static void machine(int threads) {
    char line[512], cpu[256] = "?";
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            snprintf(cpu, sizeof cpu, "%s", strchr(line, ':') + 2);
            cpu[strcspn(cpu, "\n")] = 0;
            break;
        }
    if (f) fclose(f);
    printf("machine:  %s, %ld cores online; threads used: %d\n", cpu, sysconf(_SC_NPROCESSORS_ONLN), threads);
    printf("openblas: %s; kernels %s (%s; this CPU's best: %s)\n", openblas_get_config(), qs_blas_core(), qs_blas_how(),
           qs_blas_best_core());
}

static double sgemm_gflops(int m, int n, int k, int threads) {
    float *a = malloc(sizeof(float) * (size_t)m * k), *b = malloc(sizeof(float) * (size_t)n * k), *c = malloc(sizeof(float) * (size_t)m * n);
    for (size_t i = 0; i < (size_t)m * k; i++) a[i] = (float)((i * 7919) % 1000) * 1e-3f;
    for (size_t i = 0; i < (size_t)n * k; i++) b[i] = (float)((i * 104729) % 1000) * 1e-3f;
    openblas_set_num_threads(threads);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1, a, k, b, k, 0, c, n); /* warm up */
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = qs_now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1, a, k, b, k, 0, c, n);
        double t = qs_now_seconds() - t0;
        best = t < best ? t : best;
    }
    free(a); free(b); free(c);
    return 2.0 * m * n * k / best * 1e-9;
}

/* xorshift normal-ish values: a sum of uniforms, scaled so activations stay in range */
static uint64_t rng = 88172645463325252ull;
static float rnd(float scale) {
    float s = 0;
    for (int i = 0; i < 4; i++) {
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
        s += (float)(rng >> 40) / (float)(1ull << 24) - 0.5f;
    }
    return s * scale;
}

/* mean over the sweep's matrices of (time to rerun from the tensor's layer) / (full forward) */
static double sensitivity_fraction(qs_model *m, qs_engine *e, int ctx, int reps) {
    const int L = m->arch.n_layers, dim = m->arch.dim;
    int *tok = malloc(sizeof(int) * (size_t)ctx);
    float *logits = malloc(sizeof(float) * (size_t)(ctx - ctx / 2) * (size_t)m->arch.n_vocab);
    float **cap = malloc(sizeof(float *) * (size_t)(L + 1));
    for (int l = 0; l <= L; l++) cap[l] = malloc(sizeof(float) * (size_t)ctx * (size_t)dim);
    for (int i = 0; i < ctx; i++) tok[i] = (int)((i * 2654435761u) % (unsigned)m->arch.n_vocab);
    qs_error err = {0};
    qs_engine_set_capture(e, cap);
    qs_engine_forward(e, tok, ctx, ctx / 2, logits, &err);
    qs_engine_set_capture(e, NULL);
    double full = 1e30, *from = calloc((size_t)L + 1, sizeof(double));
    for (int r = 0; r < reps; r++) {
        double t0 = qs_now_seconds();
        qs_engine_forward(e, tok, ctx, ctx / 2, logits, &err);
        double t = qs_now_seconds() - t0;
        full = t < full ? t : full;
    }
    for (int l = 1; l <= L; l++) {
        from[l] = 1e30;
        for (int r = 0; r < reps; r++) {
            double t0 = qs_now_seconds();
            qs_engine_forward_from(e, l, cap[l], ctx, ctx / 2, logits, &err);
            double t = qs_now_seconds() - t0;
            from[l] = t < from[l] ? t : from[l];
        }
    }
    from[0] = full;
    /* 7 matrices per layer start at their layer; the embedding at 0; the output head at L */
    double sum = full + from[L];
    for (int l = 0; l < L; l++) sum += 7 * from[l];
    double frac = sum / (7.0 * L + 2) / full;
    for (int l = 0; l <= L; l++) free(cap[l]);
    free(cap); free(from); free(tok); free(logits);
    return frac;
}

static int write_1b(const char *path) {
    const int dim = 2048, hid = 5632, L = 22, nh = 32, nkv = 4, vocab = 32000, kvd = dim / nh * nkv;
    qs_gguf_writer *w = qs_gguf_writer_new();
    qs_gguf_add_str(w, "general.architecture", "llama");
    qs_gguf_add_str(w, "general.name", "qsense-bench-1b-random");
    qs_gguf_add_u32(w, "llama.context_length", 2048);
    qs_gguf_add_u32(w, "llama.embedding_length", dim);
    qs_gguf_add_u32(w, "llama.feed_forward_length", hid);
    qs_gguf_add_u32(w, "llama.block_count", L);
    qs_gguf_add_u32(w, "llama.attention.head_count", nh);
    qs_gguf_add_u32(w, "llama.attention.head_count_kv", nkv);
    qs_gguf_add_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    qs_gguf_add_f32(w, "llama.rope.freq_base", 10000.0f);
    /* one random matrix per shape, shared by every layer: the benchmark measures speed only */
    struct { const char *n; int64_t ne0, ne1; } kinds[] = {
        {"attn_q", dim, dim}, {"attn_k", dim, kvd}, {"attn_v", dim, kvd}, {"attn_output", dim, dim},
        {"ffn_gate", dim, hid}, {"ffn_up", dim, hid}, {"ffn_down", hid, dim}};
    float *mats[7], *norm = malloc(sizeof(float) * dim), *emb = malloc(sizeof(float) * (size_t)dim * vocab);
    for (int i = 0; i < dim; i++) norm[i] = 1.0f;
    for (size_t i = 0; i < (size_t)dim * vocab; i++) emb[i] = rnd(0.5f);
    for (int k = 0; k < 7; k++) {
        size_t n = (size_t)kinds[k].ne0 * kinds[k].ne1;
        mats[k] = malloc(sizeof(float) * n);
        for (size_t i = 0; i < n; i++) mats[k][i] = rnd(1.0f / sqrtf((float)kinds[k].ne0));
    }
    int64_t ne[2] = {dim, vocab}, ne1[1] = {dim};
    qs_gguf_add_tensor(w, "token_embd.weight", QS_DT_F32, 2, ne, emb);
    qs_gguf_add_tensor(w, "output_norm.weight", QS_DT_F32, 1, ne1, norm);
    qs_gguf_add_tensor(w, "output.weight", QS_DT_F32, 2, ne, emb);
    char name[96];
    for (int l = 0; l < L; l++) {
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        qs_gguf_add_tensor(w, name, QS_DT_F32, 1, ne1, norm);
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
        qs_gguf_add_tensor(w, name, QS_DT_F32, 1, ne1, norm);
        for (int k = 0; k < 7; k++) {
            int64_t ke[2] = {kinds[k].ne0, kinds[k].ne1};
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, kinds[k].n);
            qs_gguf_add_tensor(w, name, QS_DT_F32, 2, ke, mats[k]);
        }
    }
    qs_error err = {0};
    int rc = qs_gguf_write(w, path, &err);
    if (rc) fprintf(stderr, "bench: %s\n", err.msg);
    qs_gguf_writer_free(w);
    for (int k = 0; k < 7; k++) free(mats[k]);
    free(norm);
    free(emb);
    return rc;
}

int main(int argc, char **argv) {
    qs_blas_pick_kernels(argv);
    int threads = (int)sysconf(_SC_NPROCESSORS_ONLN), ctx = 512, chunks = 3;
    const char *dir = getenv("QSENSE_CACHE");
    char defdir[512];
    if (!dir) { snprintf(defdir, sizeof defdir, "%s/.cache/qsense", getenv("HOME") ? getenv("HOME") : "/tmp"); dir = defdir; }
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--ctx")) ctx = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--chunks")) chunks = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--model-dir")) dir = argv[i + 1];
    }
    machine(threads);
    double peak = sgemm_gflops(ctx, 5632, 2048, threads);
    printf("\n[1] OpenBLAS sgemm (%d x 5632 x 2048): %.1f GFLOP/s\n", ctx, peak);

    /* stories260K */
    const char *models = getenv("QSENSE_MODELS") ? getenv("QSENSE_MODELS") : "../shared/models";
    char *sp = qs_path_join(models, "stories260K.gguf"), *text;
    qs_model *m;
    qs_vocab *v;
    qs_engine *e;
    qs_error err = {0};
    size_t n, n_ids;
    int *ids;
    if (qs_model_open(&m, sp, NULL, &err) || qs_vocab_for_model(&v, m, &err) ||
        qs_read_file("/usr/share/common-licenses/GPL-3", &text, &n, &err) || qs_tokenize(v, text, n, 1, &ids, &n_ids, &err) ||
        qs_engine_new(&e, m, threads, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    qs_ppl_result r;
    qs_ppl_run(e, ids, n_ids, 128, v->bos, 0, 0, NULL, &r, &err);
    printf("\n[2] stories260K, GPL-3, ctx 128: %d chunks in %.2f s: %.0f tokens/s (ppl %.4f)\n", r.n_chunks, r.seconds,
           r.tokens_per_second, r.ppl);
    double sf_small = sensitivity_fraction(m, e, 128, 20);
    qs_engine_free(e);
    free(ids);
    free(text);
    qs_vocab_free(v);
    qs_model_close(m);
    free(sp);

    /* 1B-shaped model */
    char *bp = qs_path_join(dir, "bench-1b-random-f32.gguf");
    if (!qs_path_exists(bp)) {
        printf("\nwriting %s (4.4 GB, once) ...\n", bp);
        fflush(stdout);
        char *mk = qs_path_dirname(bp), cmd[1024];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", mk);
        if (system(cmd) != 0) return 1;
        free(mk);
        if (write_1b(bp)) return 1;
    }
    if (qs_model_open(&m, bp, NULL, &err) || qs_engine_new(&e, m, threads, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    int *tok = malloc(sizeof(int) * (size_t)ctx);
    float *logits = malloc(sizeof(float) * (size_t)(ctx - ctx / 2) * 32000);
    for (int i = 0; i < ctx; i++) tok[i] = (int)((i * 2654435761u) % 32000);
    qs_engine_forward(e, tok, ctx, ctx / 2, logits, &err); /* warm up: page in the weights */
    double total = 0, mm = 0;
    for (int c = 0; c < chunks; c++) {
        double t0 = qs_now_seconds();
        qs_engine_forward(e, tok, ctx, ctx / 2, logits, &err);
        total += qs_now_seconds() - t0;
        mm += qs_engine_matmul_seconds(e);
    }
    double flops = qs_engine_flops(e, ctx, ctx - ctx / 2) * chunks;
    double mm_flops = flops - chunks * m->arch.n_layers * 2.0 * 2.0 * ctx * ctx * m->arch.dim; /* minus attention */
    double tps = chunks * ctx / total;
    printf("\n[3] 1B-shaped llama (f32, dim 2048, 22 layers, ffn 5632, vocab 32000), ctx %d, %d chunks:\n", ctx, chunks);
    printf("    %.1f tokens/s, %.1f GFLOP/s overall; matmuls %.1f GFLOP/s = %.0f %% of sgemm's rate, %.0f %% of the time\n",
           tps, flops / total * 1e-9, mm_flops / mm * 1e-9, 100.0 * (mm_flops / mm * 1e-9) / peak, 100.0 * mm / total);
    printf("    llama.cpp prompt processing on this shape, f32, 2 threads: about 62 tokens/s (issue figure)\n");
    double sf_big = sensitivity_fraction(m, e, ctx, 1);
    printf("\n[4] one sensitivity job / one full evaluation of the same tokens (prefix cache; target <= 0.5):\n");
    printf("    stories260K (ctx 128): %.2f    1B shape (ctx %d): %.2f\n", sf_small, ctx, sf_big);
    free(tok);
    free(logits);
    qs_engine_free(e);
    qs_model_close(m);
    free(bp);
    return 0;
}
