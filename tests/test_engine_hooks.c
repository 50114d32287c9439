/* The engine's two seams for the analyzers: the observer sees the input of every linear layer
 * with the right shape; overriding a layer's weights with identical values changes nothing (bit
 * for bit), with zeros changes the logits, and restoring brings back the original logits.
 * Layer-major execution (embed, then run_layer for each layer, as the profile's calibration
 * does) shows the observer the same inputs and leaves the same residual stream as a forward
 * pass, bit for bit, on an f32 model and on a quantized one (weights expanded block by block).
 * A batch of sequences (qs_engine_forward_batch_from, the sweep's several chunks per pass)
 * gives each sequence's logits as its own forward pass does, from the embeddings and from a
 * middle layer, within 1e-5 of the row's scale: every row is its own dot products, but the BLAS
 * may block a taller matrix differently (OpenBLAS's SkylakeX kernels gave bit-identical rows,
 * its Zen kernels 1.3e-6 after five layers, ~20 f32 ulps). A weight transform (rows rewritten
 * as the engine reads them) that zeros a matrix gives the zero override's logits bit for bit,
 * sees every row once per forward, and removed, leaves the original logits. */
#include <stdint.h>
#include <string.h>

#include "core/qs_file.h"
#include "engine/engine.h"
#include "io/model.h"
#include "tests/test_util.h"
#include "tok/vocab.h"

typedef struct {
    const qs_tensor *t;
    int64_t rows_seen;
    int wrong_tensor;
} zeroing;

static void zero_rows(void *user, const qs_tensor *t, int64_t row0, int64_t n, float *w) {
    zeroing *z = user;
    (void)row0;
    z->wrong_tensor += t != z->t;
    z->rows_seen += n;
    memset(w, 0, sizeof(float) * (size_t)(n * t->ne[0]));
}

typedef struct {
    int calls[16][QS_LIN_COUNT];
    int bad_shape;
    int dim, qd, hid, n;
} seen;

static void observe(void *user, int layer, int kind, const float *x, int n_tokens, int n_in) {
    seen *s = user;
    (void)x;
    s->calls[layer][kind]++;
    int want = kind == QS_LIN_O ? s->qd : kind == QS_LIN_DOWN ? s->hid : s->dim;
    int want_n = kind == QS_LIN_OUTPUT ? s->n / 2 : s->n;
    if (n_in != want || n_tokens != want_n) s->bad_shape++;
}

/* an FNV-1a hash of every observed input's bytes, per (layer, kind) */
typedef struct {
    uint64_t h[16][QS_LIN_COUNT];
} hashes;

static void observe_hash(void *user, int layer, int kind, const float *x, int n_tokens, int n_in) {
    hashes *hs = user;
    uint64_t h = hs->h[layer][kind] ? hs->h[layer][kind] : 1469598103934665603ull;
    const unsigned char *b = (const unsigned char *)x;
    for (size_t i = 0; i < sizeof(float) * (size_t)n_tokens * (size_t)n_in; i++) h = (h ^ b[i]) * 1099511628211ull;
    hs->h[layer][kind] = h;
}

/* forward (with capture) vs embed + run_layer, on the model at path */
/* the model at path and an engine on it (2 threads); 0 with a failed check */
static int open_engine(const char *path, qs_model **m, qs_engine **e) {
    qs_error err = {0};
    if (qs_model_open(m, path, NULL, &err) || qs_engine_new(e, *m, 2, &err)) {
        CHECK(0, "%s", err.msg);
        qs_model_close(*m);
        return 0;
    }
    return 1;
}

static void layer_major_equals_forward(const char *path, const int *ids, int T) {
    qs_model *m = NULL;
    qs_engine *e = NULL;
    qs_error err = {0};
    if (!open_engine(path, &m, &e)) return;
    const int L = m->arch.n_layers, dim = m->arch.dim;
    float **cap = malloc(sizeof(float *) * (size_t)(L + 1)), *x = malloc(sizeof(float) * (size_t)T * dim);
    float *logits = malloc(sizeof(float) * (size_t)T * m->arch.n_vocab);
    for (int l = 0; l <= L; l++) cap[l] = malloc(sizeof(float) * (size_t)T * dim);
    hashes a = {0}, b = {0};
    qs_engine_set_observer(e, observe_hash, &a);
    qs_engine_set_capture(e, cap);
    CHECK(qs_engine_forward(e, ids, T, 0, logits, &err) == 0, "%s", err.msg);
    qs_engine_set_capture(e, NULL);
    qs_engine_set_observer(e, observe_hash, &b);
    CHECK(qs_engine_embed(e, ids, T, x, &err) == 0, "%s", err.msg);
    CHECK(!memcmp(x, cap[0], sizeof(float) * (size_t)T * dim), "%s: the embedding differs", path);
    for (int l = 0; l <= L; l++) {
        CHECK(qs_engine_run_layer(e, l, x, T, &err) == 0, "%s", err.msg);
        if (l < L) CHECK(!memcmp(x, cap[l + 1], sizeof(float) * (size_t)T * dim), "%s: residual after layer %d differs", path, l);
    }
    CHECK(!memcmp(&a, &b, sizeof a), "%s: the observer saw different inputs layer-major", path);
    CHECK(qs_engine_run_layer(e, L + 1, x, T, &err) == QS_ERR_USAGE, "run_layer past the head");
    for (int l = 0; l <= L; l++) free(cap[l]);
    free(cap), free(x), free(logits);
    qs_engine_free(e);
    qs_model_close(m);
}

/* three sequences of T tokens (ids, ids + T, ids + 2T) as one batch and one at a time */
static void batch_equals_single(const char *path, const int *ids, int T) {
    qs_model *m = NULL;
    qs_engine *e = NULL;
    qs_error err = {0};
    if (!open_engine(path, &m, &e)) return;
    const int L = m->arch.n_layers, dim = m->arch.dim, V = m->arch.n_vocab, B = 3, from = T / 2, rows = T - from;
    float **cap = malloc(sizeof(float *) * (size_t)(L + 1)), *x0 = malloc(sizeof(float) * (size_t)B * T * dim);
    float *xm = malloc(sizeof(float) * (size_t)B * T * dim), *one = malloc(sizeof(float) * (size_t)B * rows * V);
    float *all = malloc(sizeof(float) * (size_t)B * rows * V);
    for (int l = 0; l <= L; l++) cap[l] = malloc(sizeof(float) * (size_t)T * dim);
    for (int b = 0; b < B; b++) {
        qs_engine_set_capture(e, cap);
        CHECK(qs_engine_forward(e, ids + b * T, T, from, one + (size_t)b * rows * V, &err) == 0, "%s", err.msg);
        qs_engine_set_capture(e, NULL);
        memcpy(x0 + (size_t)b * T * dim, cap[0], sizeof(float) * (size_t)T * dim);
        memcpy(xm + (size_t)b * T * dim, cap[L / 2], sizeof(float) * (size_t)T * dim);
    }
    for (int start = 0; start <= L / 2; start += L / 2 > 0 ? L / 2 : 1) {
        CHECK(qs_engine_forward_batch_from(e, start, start ? xm : x0, B, T, from, all, &err) == 0, "%s", err.msg);
        double worst = 0;
        for (size_t r = 0; r < (size_t)B * rows; r++) {
            double scale = 1;
            for (int i = 0; i < V; i++) scale = fmax(scale, fabs(one[r * V + i]));
            for (int i = 0; i < V; i++) worst = fmax(worst, fabs(one[r * V + i] - all[r * V + i]) / scale);
        }
        printf("%s: a batch of %d sequences from layer %d: worst difference %.2e of the row's scale\n", path, B, start, worst);
        CHECK(worst <= 1e-5, "%s: batched logits from layer %d differ by %.3g of the row's scale", path, start, worst);
        if (start == 0 && L / 2 == 0) break;
    }
    for (int l = 0; l <= L; l++) free(cap[l]);
    free(cap), free(x0), free(xm), free(one), free(all);
    qs_engine_free(e);
    qs_model_close(m);
}

int main(void) {
    char *p = model_path("stories260K.gguf"), *text;
    qs_model *m = NULL;
    qs_vocab *v = NULL;
    qs_engine *e = NULL;
    qs_error err = {0};
    size_t n, n_ids;
    int *ids = NULL;
    int ok = qs_model_open(&m, p, NULL, &err) == 0 && qs_vocab_for_model(&v, m, &err) == 0 &&
             qs_read_file("/usr/share/common-licenses/GPL-3", &text, &n, &err) == 0 &&
             qs_tokenize(v, text, n, 1, &ids, &n_ids, &err) == 0 && qs_engine_new(&e, m, 2, &err) == 0;
    CHECK(ok, "%s", err.msg);
    if (!ok) return test_done("test_engine_hooks");
    const int T = 64, V = m->arch.n_vocab;
    float *base = malloc(sizeof(float) * (T / 2) * V), *got = malloc(sizeof(float) * (T / 2) * V);
    seen s = {.dim = m->arch.dim, .qd = m->arch.n_heads * m->arch.head_dim, .hid = m->arch.hidden_dim, .n = T};
    qs_engine_set_observer(e, observe, &s);
    CHECK(qs_engine_forward(e, ids, T, T / 2, base, &err) == 0, "%s", err.msg);
    int missing = 0;
    for (int l = 0; l < m->arch.n_layers; l++)
        for (int k = 0; k < QS_LIN_OUTPUT; k++) missing += s.calls[l][k] != (k <= QS_LIN_DOWN ? 1 : 0); /* llama: the seven */
    CHECK(missing == 0 && s.calls[m->arch.n_layers][QS_LIN_OUTPUT] == 1, "every linear observed once (%d missing)", missing);
    CHECK(s.bad_shape == 0, "%d observations with the wrong shape", s.bad_shape);
    qs_engine_set_observer(e, NULL, NULL);

    const qs_tensor *t = qs_model_find(m, "blk.2.ffn_down.weight");
    int64_t numel = qs_tensor_numel(t);
    float *same = malloc(sizeof(float) * (size_t)numel), *zero = calloc((size_t)numel, sizeof(float));
    qs_tensor_dequantize_rows(t, 0, t->ne[1], same);
    CHECK(qs_engine_override(e, 2, QS_LIN_DOWN, same, &err) == 0, "%s", err.msg);
    qs_engine_forward(e, ids, T, T / 2, got, &err);
    CHECK(!memcmp(base, got, sizeof(float) * (T / 2) * V), "identical override changed the logits");
    qs_engine_override(e, 2, QS_LIN_DOWN, zero, &err);
    qs_engine_forward(e, ids, T, T / 2, got, &err);
    double diff = 0;
    for (int i = 0; i < (T / 2) * V; i++) diff += fabs(base[i] - got[i]);
    CHECK(diff > 1.0, "zeroing blk.2.ffn_down left the logits unchanged (sum |diff| %g)", diff);
    float *zeroed = malloc(sizeof(float) * (T / 2) * V);
    memcpy(zeroed, got, sizeof(float) * (T / 2) * V);
    qs_engine_override(e, 2, QS_LIN_DOWN, NULL, &err);
    qs_engine_forward(e, ids, T, T / 2, got, &err);
    CHECK(!memcmp(base, got, sizeof(float) * (T / 2) * V), "restoring the weights did not restore the logits");
    zeroing z = {t, 0, 0};
    CHECK(qs_engine_transform_weights(e, t, zero_rows, &z, &err) == 0, "%s", err.msg);
    qs_engine_forward(e, ids, T, T / 2, got, &err);
    CHECK(!memcmp(zeroed, got, sizeof(float) * (T / 2) * V), "a zeroing transform differs from a zero override");
    CHECK(z.rows_seen == t->ne[1] && !z.wrong_tensor, "the transform saw %lld rows of %lld", (long long)z.rows_seen,
          (long long)t->ne[1]);
    qs_engine_transform_weights(e, t, NULL, NULL, &err);
    qs_engine_forward(e, ids, T, T / 2, got, &err);
    CHECK(!memcmp(base, got, sizeof(float) * (T / 2) * V), "removing the transform did not restore the logits");
    free(zeroed);
    CHECK(qs_engine_override(e, 99, QS_LIN_Q, same, &err) == QS_ERR_USAGE, "override of a layer that does not exist");

    char *q4 = model_path("stories260K-llamacpp-Q4_K_M.gguf");
    layer_major_equals_forward(p, ids, T);
    layer_major_equals_forward(q4, ids, T);
    batch_equals_single(p, ids, T);
    batch_equals_single(q4, ids, T);
    free(q4);

    free(same); free(zero); free(base); free(got); free(ids); free(text); free(p);
    qs_engine_free(e);
    qs_vocab_free(v);
    qs_model_close(m);
    return test_done("test_engine_hooks");
}
