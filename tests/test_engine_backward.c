/* The backward pass's gradients equal finite differences of the forward pass, on every family it
 * handles: stories260K (llama, trained) and the tiny random Hugging Face models of
 * tests/oracle/make_hf_family_models.py (llama with Llama 3 RoPE scaling, mistral's sliding
 * window, qwen2's biases, qwen3's q/k norms, gemma3's post-norms, GeGLU, scaled embedding and
 * two RoPE bases, phi3's fused qkv and gate|up).
 * The loss is the NLL of fixed labels on the second half of a chunk. For each linear of the
 * first and the last layer and the head, and for the embedding table (which checks the whole
 * chain down to the first layer's input), the directional derivative along a random direction D
 * from the backward pass, sum_t g_t . (D x_t), must equal (L(W + hD) - L(W - hD)) / 2h within
 * 1 % plus 0.002 (h: 1 % of the weights' RMS). The absolute term is the finite difference's own
 * noise: the forward pass is f32 and the loss about 100, so L moves by ~1e-5 at random, 1e-3
 * in the quotient (measured: as h goes 0.03 -> 0.003 the quotients scatter around the analytic
 * value by 5e-4 -> 5e-3 while the derivatives are 0.05 to 22). A backward pass that is wrong
 * anywhere (a norm's scale term, RoPE's direction, the softmax, a GQA head mapping, the
 * soft-cap) misses by far more.
 * Mixture-of-experts layers are refused by name. */
#include <string.h>

#include "core/qs_path.h"
#include "engine/engine.h"
#include "io/model.h"
#include "tests/test_util.h"

#define N_TOK 40
#define FROM 20
#define REL_TOL 0.01
#define ABS_TOL 0.002

typedef struct {
    int layer, kind;
    float *w, *d; /* the weights (f32) and the direction */
    int rows, cols;
    double analytic;
} probe;

typedef struct {
    probe *p;
    int n;
} probes;

static uint64_t mix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static double uniform(uint64_t seed) { return (double)(mix(seed) >> 11) / 9007199254740992.0 * 2.0 - 1.0; }

/* sum_t g_t . (D x_t) for the probe of (layer, kind) */
static void on_grad(void *user, int layer, int kind, const float *x, const float *g, int n, int n_in, int n_out) {
    probes *ps = user;
    for (int i = 0; i < ps->n; i++) {
        probe *p = &ps->p[i];
        if (p->layer != layer || p->kind != kind) continue;
        CHECK(p->rows == n_out && p->cols == n_in, "layer %d %s: gradient shape (%d, %d), weights (%d, %d)", layer,
              qs_linear_name(kind), n_out, n_in, p->rows, p->cols);
        double s = 0;
        for (int t = 0; t < n; t++)
            for (int o = 0; o < n_out; o++) {
                double dx = 0;
                for (int c = 0; c < n_in; c++) dx += (double)p->d[(size_t)o * n_in + c] * x[(size_t)t * n_in + c];
                s += dx * g[(size_t)t * n_out + o];
            }
        p->analytic += s;
    }
}

/* NLL of labels on rows [FROM, N_TOK) */
static double loss(qs_engine *e, const int *ids, const int *labels, float *logits, int nv) {
    qs_error err = {0};
    int rc = qs_engine_forward(e, ids, N_TOK, FROM, logits, &err);
    CHECK(rc == 0, "forward: %s", err.msg);
    double L = 0;
    for (int r = 0; r < N_TOK - FROM; r++) {
        const float *z = logits + (size_t)r * nv;
        double mx = z[0], s = 0;
        for (int i = 1; i < nv; i++) mx = fmax(mx, z[i]);
        for (int i = 0; i < nv; i++) s += exp(z[i] - mx);
        L += mx + log(s) - z[labels[r]];
    }
    return L;
}

static float *f32_of(const qs_tensor *t) {
    const int64_t n = qs_tensor_numel(t);
    float *w = malloc(sizeof(float) * (size_t)n);
    qs_tensor_dequantize_rows(t, 0, n / t->ne[0], w);
    return w;
}

static void check_model(const char *path, const char *label) {
    qs_error err = {0};
    qs_model *m = NULL;
    qs_engine *e = NULL;
    if (qs_model_open(&m, path, NULL, &err) || qs_engine_new(&e, m, 0, &err)) {
        CHECK(0, "%s: %s", path, err.msg);
        qs_model_close(m);
        return;
    }
    const qs_arch *a = &m->arch;
    const int nl = a->n_layers, nv = a->n_vocab, dim = a->dim;
    int ids[N_TOK], labels[N_TOK - FROM];
    for (int t = 0; t < N_TOK; t++) ids[t] = (int)(mix(1000 + (uint64_t)t) % (uint64_t)nv);
    for (int r = 0; r < N_TOK - FROM; r++) labels[r] = (int)(mix(5000 + (uint64_t)r) % (uint64_t)nv);
    float *logits = malloc(sizeof(float) * (size_t)(N_TOK - FROM) * nv);
    float *dl = malloc(sizeof(float) * (size_t)(N_TOK - FROM) * nv);
    float **cap = malloc(sizeof(float *) * (size_t)(nl + 1));
    for (int l = 0; l <= nl; l++) cap[l] = malloc(sizeof(float) * (size_t)N_TOK * dim);
    float *dy = malloc(sizeof(float) * (size_t)N_TOK * dim), *dx = malloc(sizeof(float) * (size_t)N_TOK * dim);

    /* the probes: every linear of the first and last layer, and the head */
    probes ps = {calloc(2 * QS_LIN_COUNT + 1, sizeof(probe)), 0};
    char name[96];
    for (int pass = 0; pass < 3; pass++) {
        const int l = pass == 0 ? 0 : pass == 1 ? nl - 1 : nl;
        if (pass == 1 && nl == 1) continue;
        for (int k = 0; k < QS_LIN_COUNT; k++) {
            if ((l == nl) != (k == QS_LIN_OUTPUT)) continue;
            if (k == QS_LIN_OUTPUT) snprintf(name, sizeof name, "%s", qs_model_find(m, "output.weight") ? "output.weight" : "token_embd.weight");
            else snprintf(name, sizeof name, "blk.%d.%s.weight", l, qs_linear_name(k));
            const qs_tensor *t = qs_model_find(m, name);
            if (!t) continue;
            probe *p = &ps.p[ps.n++];
            p->layer = l, p->kind = k, p->rows = (int)t->ne[1], p->cols = (int)t->ne[0];
            p->w = f32_of(t);
            p->d = malloc(sizeof(float) * (size_t)p->rows * p->cols);
            double ms = 0;
            for (size_t i = 0; i < (size_t)p->rows * p->cols; i++) ms += (double)p->w[i] * p->w[i];
            const double rms = sqrt(ms / ((double)p->rows * p->cols));
            for (size_t i = 0; i < (size_t)p->rows * p->cols; i++) p->d[i] = (float)(rms * uniform(((uint64_t)pass << 40) ^ ((uint64_t)k << 32) ^ i));
        }
    }
    /* the embedding table's direction */
    const qs_tensor *emb_t = qs_model_find(m, "token_embd.weight");
    float *emb = f32_of(emb_t), *demb = malloc(sizeof(float) * (size_t)nv * dim);
    double ms = 0;
    for (size_t i = 0; i < (size_t)nv * dim; i++) ms += (double)emb[i] * emb[i];
    for (size_t i = 0; i < (size_t)nv * dim; i++) demb[i] = (float)(sqrt(ms / ((double)nv * dim)) * uniform(7777777 + i));

    /* analytic: forward with capture, the head, every layer down */
    qs_engine_set_capture(e, cap);
    loss(e, ids, labels, logits, nv);
    qs_engine_set_capture(e, NULL);
    for (int r = 0; r < N_TOK - FROM; r++) {
        const float *z = logits + (size_t)r * nv;
        double mx = z[0], s = 0;
        for (int i = 1; i < nv; i++) mx = fmax(mx, z[i]);
        for (int i = 0; i < nv; i++) s += exp(z[i] - mx);
        for (int i = 0; i < nv; i++) dl[(size_t)r * nv + i] = (float)(exp(z[i] - mx) / s) - (i == labels[r]);
    }
    int rc = qs_engine_head_backward(e, cap[nl], N_TOK, FROM, logits, dl, dy, on_grad, &ps, &err);
    CHECK(rc == 0, "%s: head backward: %s", label, err.msg);
    for (int l = nl - 1; l >= 0 && !rc; l--) {
        rc = qs_engine_layer_backward(e, l, cap[l], dy, dx, N_TOK, on_grad, &ps, &err);
        CHECK(rc == 0, "%s: layer %d backward: %s", label, l, err.msg);
        memcpy(dy, dx, sizeof(float) * (size_t)N_TOK * dim);
    }
    double emb_analytic = 0; /* x_0 = embed_scale * E[id] */
    for (int t = 0; t < N_TOK; t++)
        for (int c = 0; c < dim; c++) emb_analytic += (double)dy[(size_t)t * dim + c] * a->embed_scale * demb[(size_t)ids[t] * dim + c];

    /* numeric */
    const double h = 0.01;
    for (int i = 0; i < ps.n && !rc; i++) {
        probe *p = &ps.p[i];
        const size_t n = (size_t)p->rows * p->cols;
        float *wp = malloc(sizeof(float) * n), *wm = malloc(sizeof(float) * n);
        for (size_t j = 0; j < n; j++) wp[j] = p->w[j] + (float)h * p->d[j], wm[j] = p->w[j] - (float)h * p->d[j];
        const int tied_head = p->kind == QS_LIN_OUTPUT && a->tied_output;
        qs_engine_override(e, p->layer, p->kind, wp, &err);
        const double lp = loss(e, ids, labels, logits, nv);
        qs_engine_override(e, p->layer, p->kind, wm, &err);
        const double lm = loss(e, ids, labels, logits, nv);
        qs_engine_override(e, p->layer, p->kind, NULL, &err);
        const double fd = (lp - lm) / (2 * h);
        printf("%-8s%s layer %d %-12s analytic %12.6f  finite difference %12.6f%s\n", label, "", p->layer,
               qs_linear_name(p->kind), p->analytic, fd, tied_head ? " (the tied table as the head only)" : "");
        CHECK(fabs(p->analytic - fd) <= REL_TOL * fabs(fd) + ABS_TOL, "%s layer %d %s: analytic %.6g, finite difference %.6g",
              label, p->layer, qs_linear_name(p->kind), p->analytic, fd);
        free(wp);
        free(wm);
    }
    {
        const size_t n = (size_t)nv * dim;
        float *ep = malloc(sizeof(float) * n), *em = malloc(sizeof(float) * n);
        for (size_t j = 0; j < n; j++) ep[j] = emb[j] + (float)h * demb[j], em[j] = emb[j] - (float)h * demb[j];
        /* the embedding only: a tied head keeps reading the stored table */
        qs_engine_override_embedding(e, ep);
        const double lp = loss(e, ids, labels, logits, nv);
        qs_engine_override_embedding(e, em);
        const double lm = loss(e, ids, labels, logits, nv);
        qs_engine_override_embedding(e, NULL);
        const double fd = (lp - lm) / (2 * h);
        printf("%-8s%s embedding          analytic %12.6f  finite difference %12.6f\n", label, "", emb_analytic, fd);
        CHECK(fabs(emb_analytic - fd) <= REL_TOL * fabs(fd) + ABS_TOL, "%s embedding: analytic %.6g, finite difference %.6g", label,
              emb_analytic, fd);
        free(ep);
        free(em);
    }
    for (int i = 0; i < ps.n; i++) free(ps.p[i].w), free(ps.p[i].d);
    free(ps.p);
    free(emb), free(demb), free(logits), free(dl), free(dy), free(dx);
    for (int l = 0; l <= nl; l++) free(cap[l]);
    free(cap);
    qs_engine_free(e);
    qs_model_close(m);
}

int main(void) {
    char *stories = model_path("stories260K.gguf");
    check_model(stories, "stories");
    free(stories);
    const char *cache = getenv("QSENSE_CACHE"), *src = getenv("QSENSE_SRC");
    char *dir = temp_dir(), *out = NULL;
    int rc = run_in(dir, &out, "'%s/venv/bin/python' '%s/tests/oracle/make_hf_family_models.py' .", cache ? cache : ".",
                    src ? src : ".");
    CHECK(rc == 0, "make_hf_family_models.py: %s", out);
    free(out);
    const char *families[] = {"llama", "mistral", "qwen2", "qwen3", "gemma3", "phi3"};
    for (size_t i = 0; i < sizeof families / sizeof families[0] && rc == 0; i++) {
        char *p = qs_path_join(dir, families[i]);
        check_model(p, families[i]);
        free(p);
    }
    if (rc == 0) { /* experts: refused by name */
        char *p = qs_path_join(dir, "qwen3moe");
        qs_error err = {0};
        qs_model *m = NULL;
        qs_engine *e = NULL;
        if (qs_model_open(&m, p, NULL, &err) == 0 && qs_engine_new(&e, m, 0, &err) == 0) {
            float *x = calloc((size_t)8 * m->arch.dim, sizeof(float)), *d = calloc((size_t)8 * m->arch.dim, sizeof(float));
            int r = qs_engine_layer_backward(e, 0, x, d, d, 8, NULL, NULL, &err);
            CHECK(r != 0 && strstr(err.msg, "mixture-of-experts"), "qwen3moe: the backward pass should refuse experts (%s)", err.msg);
            free(x), free(d);
        } else {
            CHECK(0, "%s: %s", p, err.msg);
        }
        qs_engine_free(e);
        qs_model_close(m);
        free(p);
    }
    free(dir);
    return test_done("test_engine_backward");
}
