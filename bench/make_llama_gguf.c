/* Writes a llama-architecture GGUF of a real model's shape with random weights in llama.cpp's
 * block types, for benchmarks of speed and memory at sizes no test model has. One random
 * matrix per tensor kind is shared by every layer (the benchmarks measure time and memory, not
 * accuracy). The tokenizer is a SentencePiece ("llama") vocabulary of the shape's size: the
 * control tokens, the 256 byte tokens (any text tokenizes by byte fallback), then filler pieces.
 *   qsense_make_model 8b OUT.gguf     (dim 4096, 32 layers, 32 heads, 8 kv heads, ffn 14336,
 *                                      vocab 128256: Llama-3-8B's shape; Q4_K_M-like types, ~5 GB) */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_dtype.h"
#include "io/gguf_write.h"
#include "quant/ggml_quant.h"

typedef struct {
    const char *name;
    int dim, layers, heads, kv_heads, ffn, vocab;
} shape;

static const shape SHAPES[] = {
    {"8b", 4096, 32, 32, 8, 14336, 128256},
    {"1b", 2048, 16, 32, 8, 8192, 128256},
};

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float rnd(void) { /* roughly normal: a sum of four uniforms */
    float s = 0;
    for (int i = 0; i < 4; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        s += (float)(rng >> 40) / (float)(1ull << 24) - 0.5f;
    }
    return s * 1.7f;
}

/* a (rows, cols) matrix of random values scaled by 1/sqrt(cols), quantized to type */
static void *random_matrix(int type, int64_t rows, int64_t cols) {
    const int64_t n = rows * cols;
    float *f = malloc(sizeof(float) * (size_t)n);
    void *q = malloc(qs_dtype_row_bytes(type, cols) * (size_t)rows);
    if (!f || !q) {
        fprintf(stderr, "out of memory for a %lld x %lld matrix\n", (long long)rows, (long long)cols);
        exit(4);
    }
    const float s = 1.0f / sqrtf((float)cols);
    for (int64_t i = 0; i < n; i++) f[i] = rnd() * s;
    qs_ggml_quantize(type, f, q, n);
    free(f);
    return q;
}

int main(int argc, char **argv) {
    const shape *sh = NULL;
    for (size_t i = 0; argc == 3 && i < sizeof SHAPES / sizeof *SHAPES; i++)
        if (!strcmp(argv[1], SHAPES[i].name)) sh = &SHAPES[i];
    if (!sh) {
        fprintf(stderr, "usage: qsense_make_model 8b|1b OUT.gguf\n");
        return 2;
    }
    const int D = sh->dim, F = sh->ffn, V = sh->vocab, hd = D / sh->heads, KV = hd * sh->kv_heads;
    qs_gguf_writer *w = qs_gguf_writer_new();
    char name[96];
    snprintf(name, sizeof name, "qsense-bench-%s-random", sh->name);
    qs_gguf_add_str(w, "general.architecture", "llama");
    qs_gguf_add_str(w, "general.name", name);
    qs_gguf_add_u32(w, "general.file_type", 15); /* Q4_K_M */
    qs_gguf_add_u32(w, "llama.context_length", 8192);
    qs_gguf_add_u32(w, "llama.embedding_length", (uint32_t)D);
    qs_gguf_add_u32(w, "llama.feed_forward_length", (uint32_t)F);
    qs_gguf_add_u32(w, "llama.block_count", (uint32_t)sh->layers);
    qs_gguf_add_u32(w, "llama.attention.head_count", (uint32_t)sh->heads);
    qs_gguf_add_u32(w, "llama.attention.head_count_kv", (uint32_t)sh->kv_heads);
    qs_gguf_add_u32(w, "llama.rope.dimension_count", (uint32_t)hd);
    qs_gguf_add_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    qs_gguf_add_f32(w, "llama.rope.freq_base", 500000.0f);
    /* the vocabulary: <unk> <s> </s>, bytes <0x00>..<0xFF>, fillers */
    char **tok = malloc(sizeof(char *) * (size_t)V);
    size_t *len = malloc(sizeof(size_t) * (size_t)V);
    float *score = malloc(sizeof(float) * (size_t)V);
    int32_t *type = malloc(sizeof(int32_t) * (size_t)V);
    for (int i = 0; i < V; i++) {
        tok[i] = malloc(24);
        if (i < 3) snprintf(tok[i], 24, "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
        else if (i < 259) snprintf(tok[i], 24, "<0x%02X>", i - 3);
        else snprintf(tok[i], 24, "\xe2\x96\x81t%d", i); /* "▁t<i>": never matches ordinary text */
        len[i] = strlen(tok[i]);
        score[i] = i < 259 ? 0.0f : -(float)i;
        type[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1; /* unknown, control, byte, normal */
    }
    qs_gguf_add_str(w, "tokenizer.ggml.model", "llama");
    qs_gguf_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tok, len, (size_t)V);
    qs_gguf_add_arr_f32(w, "tokenizer.ggml.scores", score, (size_t)V);
    qs_gguf_add_arr_i32(w, "tokenizer.ggml.token_type", type, (size_t)V);
    qs_gguf_add_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    qs_gguf_add_u32(w, "tokenizer.ggml.bos_token_id", 1);
    qs_gguf_add_u32(w, "tokenizer.ggml.eos_token_id", 2);
    /* Q4_K_M-like: q4_k everywhere but attn_v, ffn_down and the output head (q6_k) */
    struct {
        const char *kind;
        int64_t in, out;
        int type;
    } kinds[] = {{"attn_q", D, D, QS_DT_Q4_K},      {"attn_k", D, KV, QS_DT_Q4_K},    {"attn_v", D, KV, QS_DT_Q6_K},
                 {"attn_output", D, D, QS_DT_Q4_K}, {"ffn_gate", D, F, QS_DT_Q4_K}, {"ffn_up", D, F, QS_DT_Q4_K},
                 {"ffn_down", F, D, QS_DT_Q6_K}};
    void *mats[7];
    for (int k = 0; k < 7; k++) mats[k] = random_matrix(kinds[k].type, kinds[k].out, kinds[k].in);
    void *emb = random_matrix(QS_DT_Q4_K, V, D), *head = random_matrix(QS_DT_Q6_K, V, D);
    float *ones = malloc(sizeof(float) * (size_t)D);
    for (int i = 0; i < D; i++) ones[i] = 1.0f;
    const int64_t ne_emb[2] = {D, V}, ne_norm[1] = {D};
    qs_gguf_add_tensor(w, "token_embd.weight", QS_DT_Q4_K, 2, ne_emb, emb);
    qs_gguf_add_tensor(w, "output_norm.weight", QS_DT_F32, 1, ne_norm, ones);
    qs_gguf_add_tensor(w, "output.weight", QS_DT_Q6_K, 2, ne_emb, head);
    for (int l = 0; l < sh->layers; l++) {
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        qs_gguf_add_tensor(w, name, QS_DT_F32, 1, ne_norm, ones);
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
        qs_gguf_add_tensor(w, name, QS_DT_F32, 1, ne_norm, ones);
        for (int k = 0; k < 7; k++) {
            const int64_t ne[2] = {kinds[k].in, kinds[k].out};
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, kinds[k].kind);
            qs_gguf_add_tensor(w, name, kinds[k].type, 2, ne, mats[k]);
        }
    }
    qs_error err = {0};
    int rc = qs_gguf_write(w, argv[2], &err);
    if (rc) fprintf(stderr, "qsense_make_model: %s\n", err.msg);
    else printf("wrote %s (%s shape)\n", argv[2], sh->name);
    qs_gguf_writer_free(w);
    for (int k = 0; k < 7; k++) free(mats[k]);
    for (int i = 0; i < V; i++) free(tok[i]);
    free(tok), free(len), free(score), free(type), free(emb), free(head), free(ones);
    return rc ? 3 : 0;
}
