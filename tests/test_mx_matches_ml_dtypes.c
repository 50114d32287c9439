/* The microscaling formats (src/quant/mx_quant.c) against an independent reference:
 * tests/oracle/mx_reference.py, which rounds with PyPI's ml_dtypes (its OCP element types:
 * float4_e2m1fn, float6_e2m3fn, float6_e3m2fn, float8_e4m3fn, float8_e5m2) and applies the
 * scale rules from their definitions (OCP MX v1.0's E8M0 shared exponent; NVFP4's E4M3 block
 * scales under a per-tensor f32 scale). Every value must agree bit for bit, on real weights
 * (SmolLM2's ffn_down rows and stories260K's q projection) and on values built to hit the hard
 * cases: ties between grid values, values beyond the largest normal, subnormals, blocks of zeros,
 * and blocks 2^40 apart in scale. */
#include <string.h>

#include "core/qs_path.h"
#include "io/model.h"
#include "quant/format.h"
#include "tests/test_util.h"

static const char *const FORMATS[] = {"ocp-mxfp4", "mxfp6-e2m3", "mxfp6-e3m2", "mxfp8-e4m3", "mxfp8-e5m2", "nvidia-nvfp4"};

static void compare(const char *dir, const char *label, const float *w, int64_t rows, int64_t cols) {
    const char *cache = getenv("QSENSE_CACHE"), *src = getenv("QSENSE_SRC");
    char in[1024], ref[1024];
    snprintf(in, sizeof in, "%s/in.f32", dir);
    snprintf(ref, sizeof ref, "%s/ref.f32", dir);
    FILE *f = fopen(in, "wb");
    fwrite(w, sizeof(float), (size_t)(rows * cols), f);
    fclose(f);
    float *q = malloc(sizeof(float) * (size_t)(rows * cols)), *r = malloc(sizeof(float) * (size_t)(rows * cols));
    for (size_t k = 0; k < sizeof FORMATS / sizeof FORMATS[0]; k++) {
        qs_error err = {0};
        const qs_format *fmt = qs_format_find(FORMATS[k], &err);
        CHECK(fmt && qs_format_fake_quantize(fmt, w, q, rows, cols, &err) == 0, "%s: %s", FORMATS[k], err.msg);
        char *out = NULL;
        int rc = run_in(dir, &out, "'%s/venv/bin/python' '%s/tests/oracle/mx_reference.py' %s in.f32 ref.f32", cache ? cache : ".",
                        src ? src : ".", FORMATS[k]);
        CHECK(rc == 0, "mx_reference.py %s: %s", FORMATS[k], out);
        free(out);
        f = fopen(ref, "rb");
        const size_t got = f ? fread(r, sizeof(float), (size_t)(rows * cols), f) : 0;
        if (f) fclose(f);
        int64_t differ = 0, first = -1;
        for (int64_t i = 0; i < rows * cols; i++)
            if (memcmp(&q[i], &r[i], sizeof(float)) && !(q[i] == 0 && r[i] == 0)) differ++, first = first < 0 ? i : first;
        printf("%-32s %-11s %lld values: %lld differ\n", label, FORMATS[k], (long long)(rows * cols), (long long)differ);
        CHECK(got == (size_t)(rows * cols) && differ == 0, "%s %s: %lld values differ from ml_dtypes' (first at %lld: %g vs %g)",
              label, FORMATS[k], (long long)differ, (long long)first, first >= 0 ? q[first] : 0.0, first >= 0 ? r[first] : 0.0);
    }
    free(q);
    free(r);
}

static void real_rows(const char *dir, const char *path, const char *name, int64_t rows) {
    qs_error err = {0};
    qs_model *m = NULL;
    if (qs_model_open(&m, path, NULL, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    const qs_tensor *t = qs_model_find(m, name);
    if (rows > t->ne[1]) rows = t->ne[1];
    float *w = malloc(sizeof(float) * (size_t)(rows * t->ne[0]));
    qs_tensor_dequantize_rows(t, 0, rows, w);
    compare(dir, name, w, rows, t->ne[0]);
    free(w);
    qs_model_close(m);
}

int main(void) {
    char *dir = temp_dir();
    /* hard cases: for each block a scale 2^k (k from -60 to +60 in steps of 20, plus a block of
     * zeros), values on and between the grid points of every element type, beyond the tops */
    enum { ROWS = 16, COLS = 64 };
    float w[ROWS * COLS];
    uint64_t s = 12345;
    for (int r = 0; r < ROWS; r++)
        for (int c = 0; c < COLS; c++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            const double u = (double)(s >> 11) / 9007199254740992.0;
            const int k = (r % 7) * 20 - 60;
            double v = (u - 0.5) * 2 * 600.0;             /* across E4M3's range and past its top */
            if (c % 4 == 1) v = round(v * 4) / 4 + 0.125;  /* ties of the coarse grids */
            if (c % 4 == 2) v = (u - 0.5) * 1e-3;          /* the subnormals beside the block's top */
            w[r * COLS + c] = r == 3 ? 0.0f : (float)ldexp(v, k);
        }
    compare(dir, "built cases", w, ROWS, COLS);
    char *smol = qs_path_join(getenv("QSENSE_CACHE") ? getenv("QSENSE_CACHE") : ".", "SmolLM2-135M-Instruct.Q4_1.gguf");
    char *stories = model_path("stories260K.gguf");
    real_rows(dir, smol, "blk.10.ffn_down.weight", 64);
    real_rows(dir, stories, "blk.0.attn_q.weight", 64);
    free(smol);
    free(stories);
    free(dir);
    return test_done("test_mx_matches_ml_dtypes");
}
