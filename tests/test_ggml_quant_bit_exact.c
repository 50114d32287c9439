/* qsense's llama.cpp block quantizers are byte-exact:
 *  - re-quantizing stories260K.gguf's f32 tensors reproduces every q5_0 / q4_0 / q8_0 block that
 *    llama-quantize wrote into stories260K-llamacpp-Q4_K_M.gguf and -Q2_K.gguf;
 *  - all sixteen block types (q4_0 .. q6_k, iq4_nl, iq4_xs, mxfp4, nvfp4, tq1_0, tq2_0) equal
 *    llama.cpp's own quantizers
 *    (ggml_quantize_chunk in libggml-base, built from source by scripts/fetch_models.sh) on
 *    SmolLM2-135M's real weights and on hard cases (zeros, constants, outliers, tiny values);
 *  - every block type qsense reads (the i-quants too) dequantizes as ggml's own to_float;
 *  - a shape that does not fit a block type is reported as not applicable. */
#include <dlfcn.h>
#include <string.h>

#include "core/qs_dtype.h"
#include "core/qs_file.h"
#include "io/gguf.h"
#include "quant/format.h"
#include "quant/ggml_quant.h"
#include "tests/test_util.h"

typedef size_t (*quantize_chunk_fn)(int, const float *, void *, int64_t, int64_t, int64_t, const float *);
static const int TYPES[] = {QS_DT_Q4_0, QS_DT_Q4_1, QS_DT_Q5_0,   QS_DT_Q5_1,   QS_DT_Q8_0,  QS_DT_Q2_K,
                            QS_DT_Q3_K, QS_DT_Q4_K, QS_DT_Q5_K,   QS_DT_Q6_K,   QS_DT_IQ4_NL, QS_DT_IQ4_XS,
                            QS_DT_MXFP4, QS_DT_NVFP4, QS_DT_TQ1_0, QS_DT_TQ2_0,  QS_DT_IQ2_S,  QS_DT_IQ3_XXS,
                            QS_DT_IQ3_S, QS_DT_IQ1_M};

static void check_llamacpp_file(const qs_gguf *f32, const char *quant_file) {
    char *p = model_path(quant_file);
    qs_gguf *q = NULL;
    qs_error err = {0};
    CHECK(qs_gguf_open(&q, p, &err) == 0, "%s", err.msg);
    if (!q) return;
    int compared = 0, identical = 0;
    for (uint64_t i = 0; i < q->n_tensors; i++) {
        const qs_gguf_tensor *t = &q->tensors[i];
        if (qs_dtype_get(t->type)->block_size == 1) continue;
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        const qs_gguf_tensor *src = qs_gguf_find_tensor(f32, name);
        CHECK(src && src->type == QS_DT_F32, "%s: no f32 source for %s", quant_file, name);
        if (!src) continue;
        void *mine = malloc(t->nbytes);
        qs_ggml_quantize(t->type, (const float *)src->data, mine, t->ne[0] * t->ne[1]);
        compared++;
        if (!memcmp(mine, t->data, t->nbytes)) identical++;
        else fprintf(stderr, "  %s: %s (%s) differs from llama-quantize's blocks\n", quant_file, name, qs_dtype_name(t->type));
        free(mine);
    }
    CHECK(compared >= 32 && identical == compared, "%s: %d of %d quantized tensors byte-identical", quant_file, identical,
          compared);
    printf("%s: %d/%d tensors byte-identical to llama-quantize\n", quant_file, identical, compared);
    qs_gguf_close(q);
    free(p);
}

/* compares qsense and ggml on rows x cols values; returns the number of differing blocks */
static long compare(quantize_chunk_fn qc, int type, const float *x, int64_t rows, int64_t cols) {
    const qs_dtype_traits *tr = qs_dtype_get(type);
    size_t bytes = qs_dtype_row_bytes(type, cols) * (size_t)rows;
    uint8_t *a = malloc(bytes), *b = malloc(bytes);
    qs_ggml_quantize(type, x, a, rows * cols);
    qc(type, x, b, 0, rows, cols, NULL);
    long bad = 0;
    for (size_t k = 0; k < bytes / (size_t)tr->type_size; k++)
        bad += memcmp(a + k * (size_t)tr->type_size, b + k * (size_t)tr->type_size, (size_t)tr->type_size) != 0;
    free(a);
    free(b);
    return bad;
}

int main(void) {
    qs_error err = {0};
    char *f32_path = model_path("stories260K.gguf");
    qs_gguf *f32 = NULL;
    CHECK(qs_gguf_open(&f32, f32_path, &err) == 0, "%s", err.msg);
    if (f32) {
        check_llamacpp_file(f32, "stories260K-llamacpp-Q4_K_M.gguf");
        check_llamacpp_file(f32, "stories260K-llamacpp-Q2_K.gguf");
    }

    const char *cache = getenv("QSENSE_CACHE");
    char lib[1024], smol[1024];
    snprintf(lib, sizeof lib, "%s/ggml-oracle/libggml-base.so", cache ? cache : "");
    snprintf(smol, sizeof smol, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", cache ? cache : "");
    void *h = dlopen(lib, RTLD_NOW);
    CHECK(h != NULL, "cannot load llama.cpp's ggml from %s (run scripts/fetch_models.sh): %s", lib, dlerror());
    quantize_chunk_fn qc = h ? (quantize_chunk_fn)dlsym(h, "ggml_quantize_chunk") : NULL;
    void (*init)(int) = h ? (void (*)(int))dlsym(h, "ggml_quantize_init") : NULL;
    CHECK(qc != NULL, "ggml_quantize_chunk not found");
    qs_gguf *sm = NULL;
    CHECK(qs_gguf_open(&sm, smol, &err) == 0, "%s", err.msg);
    if (qc && sm) {
        /* hard cases: 8 rows of 512 */
        enum { R = 8, C = 512 };
        static float hard[R * C];
        uint64_t s = 42;
        for (int i = 0; i < R * C; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            float u = (float)(s >> 40) / (float)(1 << 24) - 0.5f;
            int row = i / C;
            hard[i] = row == 0 ? 0.0f                         /* all zero */
                    : row == 1 ? 0.25f                        /* constant */
                    : row == 2 ? u * 1e-6f                    /* tiny */
                    : row == 3 ? (i % 97 == 0 ? 40.0f : u)    /* outliers */
                    : row == 4 ? ((i / 32) % 3 ? -fabsf(u) : 0.0f) /* all negative, every third 32 zero */
                    : row == 5 ? fabsf(u) + 1.0f              /* all positive, offset */
                    : row == 6 ? u * (float)(1 + i % 7)
                    : (float)(i % 33 - 16) * 0.125f;          /* exact ties of the fp4 grids */
        }
        for (size_t t = 0; t < sizeof TYPES / sizeof TYPES[0]; t++) {
            if (init) init(TYPES[t]);
            long bad = compare(qc, TYPES[t], hard, R, C), blocks = 0;
            CHECK(bad == 0, "%s: %ld hard-case blocks differ from llama.cpp", qs_dtype_name(TYPES[t]), bad);
            bad = 0;
            for (uint64_t i = 0; i < sm->n_tensors; i++) {
                const qs_gguf_tensor *gt = &sm->tensors[i];
                const qs_dtype_traits *tr = qs_dtype_get(TYPES[t]);
                if (gt->n_dims != 2 || gt->ne[0] % tr->block_size) continue;
                int64_t rows = gt->ne[1] < 16 ? gt->ne[1] : 16;
                float *x = malloc(sizeof(float) * (size_t)(rows * gt->ne[0]));
                qs_dtype_get(gt->type)->to_float(gt->data, x, rows * gt->ne[0]);
                bad += compare(qc, TYPES[t], x, rows, gt->ne[0]);
                blocks += rows * gt->ne[0] / tr->block_size;
                free(x);
            }
            CHECK(bad == 0 && blocks > 1000, "%s: %ld of %ld SmolLM2 blocks differ from llama.cpp", qs_dtype_name(TYPES[t]), bad,
                  blocks);
            printf("%s: %ld SmolLM2 blocks + hard cases byte-identical to llama.cpp's reference\n", qs_dtype_name(TYPES[t]),
                   blocks - bad);
        }
    }

    /* activation-weighted rounding equals llama.cpp's imatrix path: SmolLM2's weights with an
     * importance vector that has outlier channels (every 37th column 100x the others) */
    if (qc && sm) {
        static const int WTYPES[] = {QS_DT_Q4_0, QS_DT_Q4_1, QS_DT_Q5_0, QS_DT_Q5_1, QS_DT_Q8_0,   QS_DT_Q2_K,
                                     QS_DT_Q3_K, QS_DT_Q4_K, QS_DT_Q5_K, QS_DT_Q6_K, QS_DT_IQ4_NL, QS_DT_IQ4_XS,
                                     QS_DT_IQ2_XXS, QS_DT_IQ2_XS, QS_DT_IQ2_S, QS_DT_IQ3_XXS, QS_DT_IQ3_S, QS_DT_IQ1_S,
                                     QS_DT_IQ1_M};
        for (size_t t = 0; t < sizeof WTYPES / sizeof WTYPES[0]; t++) {
            if (init) init(WTYPES[t]);
            long bad = 0, blocks = 0;
            for (uint64_t i = 0; i < sm->n_tensors; i++) {
                const qs_gguf_tensor *gt = &sm->tensors[i];
                if (gt->n_dims != 2 || gt->ne[0] % qs_dtype_get(WTYPES[t])->block_size) continue;
                const int64_t rows = gt->ne[1] < 8 ? gt->ne[1] : 8, cols = gt->ne[0];
                float *x = malloc(sizeof(float) * (size_t)(rows * cols)), *imp = malloc(sizeof(float) * (size_t)cols);
                qs_dtype_get(gt->type)->to_float(gt->data, x, rows * cols);
                for (int64_t c = 0; c < cols; c++) imp[c] = (c % 37 == 0 ? 50.0f : 0.5f) + (float)((c * 7919) % 101) / 25.0f;
                const qs_dtype_traits *tr = qs_dtype_get(WTYPES[t]);
                size_t bytes = qs_dtype_row_bytes(WTYPES[t], cols) * (size_t)rows;
                uint8_t *a = malloc(bytes), *b = malloc(bytes);
                CHECK(qs_ggml_quantize_weighted(WTYPES[t], x, a, rows, cols, imp) == 0, "weighted %s", tr->name);
                qc(WTYPES[t], x, b, 0, rows, cols, imp);
                for (size_t k = 0; k < bytes / (size_t)tr->type_size; k++, blocks++)
                    bad += memcmp(a + k * (size_t)tr->type_size, b + k * (size_t)tr->type_size, (size_t)tr->type_size) != 0;
                free(a); free(b); free(x); free(imp);
            }
            {   /* and the hard cases (zero, constant, tiny, outlier rows) */
                enum { R = 8, C = 512 };
                static float hx[R * C], himp[C];
                uint64_t s2 = 7;
                for (int k = 0; k < R * C; k++) {
                    s2 = s2 * 6364136223846793005ull + 1442695040888963407ull;
                    float u = (float)(s2 >> 40) / (float)(1 << 24) - 0.5f;
                    int row = k / C;
                    hx[k] = row == 0 ? 0.0f : row == 1 ? 0.25f : row == 2 ? u * 1e-6f : row == 3 ? (k % 97 == 0 ? 40.0f : u) : u;
                }
                for (int c = 0; c < C; c++) himp[c] = c % 5 == 0 ? 0.0f : (float)(c % 11) + 0.1f; /* some columns unseen */
                const qs_dtype_traits *tr = qs_dtype_get(WTYPES[t]);
                size_t bytes = qs_dtype_row_bytes(WTYPES[t], C) * R;
                uint8_t *a = malloc(bytes), *b = malloc(bytes);
                qs_ggml_quantize_weighted(WTYPES[t], hx, a, R, C, himp);
                qc(WTYPES[t], hx, b, 0, R, C, himp);
                for (size_t k = 0; k < bytes / (size_t)tr->type_size; k++, blocks++)
                    bad += memcmp(a + k * (size_t)tr->type_size, b + k * (size_t)tr->type_size, (size_t)tr->type_size) != 0;
                free(a);
                free(b);
            }
            CHECK(bad == 0 && blocks > 100, "%s with an imatrix: %ld of %ld SmolLM2 blocks differ from llama.cpp", qs_dtype_name(WTYPES[t]),
                  bad, blocks);
            printf("%s with an imatrix: %ld blocks (SmolLM2 + hard cases) byte-identical to llama.cpp's weighted quantizer\n",
                   qs_dtype_name(WTYPES[t]), blocks - bad);
        }
    }

    /* every type qsense reads dequantizes as ggml's own to_float does, on blocks ggml's own
     * quantizer made from SmolLM2's weights (with an importance vector: the 2-bit and 1-bit
     * i-quants require one), and has ggml's block size and bytes */
    struct ggml_traits {
        const char *type_name;
        int64_t blck_size, blck_size_interleave;
        size_t type_size;
        _Bool is_quantized;
        void (*to_float)(const void *, float *, int64_t);
        void *from_float_ref;
    };
    const struct ggml_traits *(*traits_of)(int) = h ? (const struct ggml_traits *(*)(int))dlsym(h, "ggml_get_type_traits") : NULL;
    CHECK(traits_of != NULL, "ggml_get_type_traits not found");
    if (qc && sm && traits_of) {
        const qs_gguf_tensor *gt = qs_gguf_find_tensor(sm, "blk.0.ffn_down.weight");
        CHECK(gt && gt->ne[0] % 256 == 0, "SmolLM2's blk.0.ffn_down.weight");
        int types = 0;
        for (int t = 0; gt && t < QS_DT_GGML_COUNT; t++) {
            const qs_dtype_traits *tr = qs_dtype_get(t);
            if (!tr || tr->block_size == 1) continue;
            const struct ggml_traits *g = traits_of(t);
            CHECK(g && g->blck_size == tr->block_size && g->type_size == (size_t)tr->type_size, "%s: block %d x %d bytes, ggml's %lld x %zu",
                  tr->name, tr->block_size, tr->type_size, g ? (long long)g->blck_size : -1LL, g ? g->type_size : 0);
            const int64_t rows = 8, cols = gt->ne[0];
            float *x = malloc(sizeof(float) * (size_t)(rows * cols)), *imp = malloc(sizeof(float) * (size_t)cols);
            float *mine = malloc(sizeof(float) * (size_t)(rows * cols)), *theirs = malloc(sizeof(float) * (size_t)(rows * cols));
            uint8_t *blocks = malloc(qs_dtype_row_bytes(t, cols) * (size_t)rows);
            qs_dtype_get(gt->type)->to_float(gt->data, x, rows * cols);
            for (int64_t c = 0; c < cols; c++) imp[c] = 0.5f + (float)((c * 7919) % 101) / 25.0f;
            if (init) init(t);
            qc(t, x, blocks, 0, rows, cols, imp);
            tr->to_float(blocks, mine, rows * cols);
            g->to_float(blocks, theirs, rows * cols);
            CHECK(!memcmp(mine, theirs, sizeof(float) * (size_t)(rows * cols)), "%s: dequantized values differ from ggml's to_float", tr->name);
            types++;
            free(x), free(imp), free(mine), free(theirs), free(blocks);
        }
        CHECK(types == 23, "%d block types compared with ggml's to_float", types);
        printf("%d block types dequantize bit for bit as ggml's to_float on blocks ggml made\n", types);
    }

    /* shapes that don't fit */
    const qs_format *q40 = qs_format_find("q4_0", &err), *q4k = qs_format_find("q4_k", &err);
    char why[160] = "";
    CHECK(q40 && !qs_format_applies(q40, 64, 172, why, sizeof why) && strstr(why, "172"), "q4_0 on 172 columns: %s", why);
    CHECK(q4k && !qs_format_applies(q4k, 512, 64, why, sizeof why), "q4_k on 64 columns");
    CHECK(q4k && qs_format_applies(q4k, 4, 512, why, sizeof why), "q4_k on 512 columns");
    float dummy[172] = {0};
    CHECK(qs_format_fake_quantize(q40, dummy, dummy, 1, 172, &err) == QS_ERR_USAGE && strstr(err.msg, "does not apply"),
          "fake quantize on a shape that does not fit: %s", err.msg);

    qs_gguf_close(f32);
    qs_gguf_close(sm);
    free(f32_path);
    return test_done("test_ggml_quant_bit_exact");
}
