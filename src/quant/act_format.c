/* Activation and KV-cache formats (see act_format.h). */
#include "quant/act_format.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/format.h"
#include "quant/minifloat.h"

static const qs_act_format registry[] = {
    {"a-int8-token", 0, QS_AF_INT, 8, 0, 0, 0, 0, NULL, "int8, dynamic f32 scale per token (W8A8-INT8)"},
    {"a-int8-tensor", 0, QS_AF_INT, 8, 0, 1, 0, 0, NULL, "int8, static scale per tensor input from calibration"},
    {"a-fp8-e4m3-token", 0, QS_AF_FP8, 8, 0, 0, 4, 0, NULL, "fp8 e4m3, dynamic f32 scale per token (FP8_DYNAMIC)"},
    {"a-fp8-e4m3-tensor", 0, QS_AF_FP8, 8, 0, 1, 4, 0, NULL, "fp8 e4m3, static scale per tensor input from calibration"},
    {"a-int4-g128", 0, QS_AF_INT, 4, 128, 0, 0, 0, NULL, "int4, dynamic f32 scale per group of 128 (W4A4)"},
    {"a-mxfp4", 0, QS_AF_ROW_FORMAT, 4, 32, 0, 0, 0, "ocp-mxfp4", "OCP MXFP4 per token: E2M1, E8M0 scale per 32"},
    {"a-nvfp4", 0, QS_AF_ROW_FORMAT, 4, 16, 0, 0, 0, "nvidia-nvfp4", "NVFP4 per token: E2M1, E4M3 scale per 16, f32 per token"},
    {"kv-f16", 1, QS_AF_BLOCKS, 16, 0, 0, 0, 0, "f16", "llama.cpp's default f16 cache"},
    {"kv-q8_0", 1, QS_AF_BLOCKS, 8, 32, 0, 0, 0, "q8_0", "llama.cpp -ctk/-ctv q8_0"},
    {"kv-q5_1", 1, QS_AF_BLOCKS, 5, 32, 0, 0, 0, "q5_1", "llama.cpp -ctk/-ctv q5_1"},
    {"kv-q5_0", 1, QS_AF_BLOCKS, 5, 32, 0, 0, 0, "q5_0", "llama.cpp -ctk/-ctv q5_0"},
    {"kv-q4_1", 1, QS_AF_BLOCKS, 4, 32, 0, 0, 0, "q4_1", "llama.cpp -ctk/-ctv q4_1"},
    {"kv-q4_0", 1, QS_AF_BLOCKS, 4, 32, 0, 0, 0, "q4_0", "llama.cpp -ctk/-ctv q4_0"},
    {"kv-iq4_nl", 1, QS_AF_BLOCKS, 4, 32, 0, 0, 0, "iq4_nl", "llama.cpp -ctk/-ctv iq4_nl"},
    {"kv-fp8-e4m3", 1, QS_AF_FP8, 8, 0, 0, 4, 1.0f, NULL, "vLLM fp8_e4m3 cache, uncalibrated (scale 1)"},
    {"kv-fp8-e5m2", 1, QS_AF_FP8, 8, 0, 0, 5, 1.0f, NULL, "vLLM fp8_e5m2 cache (scale 1)"},
};
#define N_FORMATS ((int)(sizeof registry / sizeof registry[0]))

int qs_act_format_count(void) { return N_FORMATS; }
const qs_act_format *qs_act_format_at(int i) { return i >= 0 && i < N_FORMATS ? &registry[i] : NULL; }

static void vocabulary(char *out, size_t cap, int kv) {
    size_t k = 0;
    out[0] = '\0';
    for (int i = 0; i < N_FORMATS && k < cap; i++)
        if (registry[i].kv == kv) k += (size_t)snprintf(out + k, cap - k, "%s%s", k ? ", " : "", registry[i].name);
}

const qs_act_format *qs_act_format_find(const char *name, qs_error *err) {
    for (int i = 0; i < N_FORMATS; i++)
        if (!strcmp(registry[i].name, name)) return &registry[i];
    char a[512], kv[512];
    vocabulary(a, sizeof a, 0);
    vocabulary(kv, sizeof kv, 1);
    qs_errorf(err, QS_ERR_USAGE, "unknown activation or KV-cache format '%s'; activation formats are %s; KV-cache formats are %s",
              name, a, kv);
    return NULL;
}

const char *qs_act_format_default_list(int kv) {
    return kv ? "kv-q8_0,kv-q4_0,kv-fp8-e4m3" : "a-int8-token,a-fp8-e4m3-token,a-fp8-e4m3-tensor,a-int4-g128,a-nvfp4";
}

int qs_act_format_parse_list(const char *list, int kv, const qs_act_format ***out, int *n, qs_error *err) {
    *out = NULL;
    *n = 0;
    if (!strcmp(list, "default")) list = qs_act_format_default_list(kv);
    char *copy = strdup(list), *save = NULL;
    const qs_act_format **arr = malloc(sizeof *arr * (size_t)N_FORMATS);
    if (!copy || !arr) {
        free(copy), free(arr);
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    }
    int k = 0, rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        const qs_act_format *f = qs_act_format_find(tok, err);
        if (!f) rc = QS_ERR_USAGE;
        else if (f->kv != kv)
            rc = qs_errorf(err, QS_ERR_USAGE, "'%s' is %s format; this list takes %s formats", tok,
                           f->kv ? "a KV-cache" : "an activation", kv ? "KV-cache (kv-...)" : "activation (a-...)");
        else {
            int dup = 0;
            for (int i = 0; i < k; i++) dup |= arr[i] == f;
            if (!dup) arr[k++] = f;
        }
    }
    free(copy);
    if (!rc && k == 0) rc = qs_errorf(err, QS_ERR_USAGE, "the format list '%s' is empty", list);
    if (rc) {
        free(arr);
        return rc;
    }
    *out = arr;
    *n = k;
    return 0;
}

int qs_act_format_applies(const qs_act_format *f, int width, char *why, size_t cap) {
    if (f->kind == QS_AF_ROW_FORMAT || f->kind == QS_AF_BLOCKS) {
        const qs_format *w = qs_format_find(f->weight_format, NULL);
        return w && qs_format_applies(w, 1, width, why, cap);
    }
    if (width <= 0) {
        if (why) snprintf(why, cap, "empty rows");
        return 0;
    }
    return 1;
}

double qs_act_format_bits(const qs_act_format *f, int width) {
    if (f->kind == QS_AF_ROW_FORMAT || f->kind == QS_AF_BLOCKS) {
        const qs_format *w = qs_format_find(f->weight_format, NULL);
        return w ? qs_format_bpw(w, 1, width) : NAN;
    }
    if (f->is_static || f->fixed_scale > 0) return f->bits; /* one scale for the whole tensor */
    const int per = f->group > 0 && f->group < width ? f->group : width;
    return f->bits + 32.0 / per; /* an f32 scale per token or group */
}

/* round to nearest, ties to even: exact for |x| < 2^22 (here |x| <= 2^7 + 1) */
static inline float rint22(float x) { return (x + 12582912.0f) - 12582912.0f; }

/* symmetric integer rounding of x[0..n) with scale s (0: all zero) */
static void int_span(float *x, int n, float s, int qmax) {
    const float inv = s > 0 ? 1.0f / s : 0.0f;
    for (int i = 0; i < n; i++) {
        const float q = fminf(fmaxf(rint22(x[i] * inv), (float)-qmax), (float)qmax);
        x[i] = q * s;
    }
}

static float absmax_of(const float *x, int n) {
    float m = 0;
    for (int i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m;
}

static void fp8_span(float *x, int n, float s, int exp) {
    const float fmax = exp == 4 ? 448.0f : 57344.0f;
    const int mant = exp == 4 ? 3 : 2, emin = exp == 4 ? -6 : -14;
    if (!(s > 0)) s = 1.0f;
    for (int i = 0; i < n; i++) x[i] = qs_round_minifloat(x[i] / s, mant, emin, fmax) * s;
}

int qs_act_format_apply(const qs_act_format *f, float *x, int64_t n, int width, float absmax) {
    if (!qs_act_format_applies(f, width, NULL, 0)) return -2;
    if (f->is_static && !(absmax >= 0 && isfinite(absmax))) return -3;
    if (f->kind == QS_AF_ROW_FORMAT || f->kind == QS_AF_BLOCKS) {
        const qs_format *w = qs_format_find(f->weight_format, NULL);
        if (f->kind == QS_AF_BLOCKS) /* blocks run along each row: the whole matrix at once is the same */
            return w->ops->fake_quantize(w, x, x, n, width, NULL) ? -1 : 0;
        for (int64_t t = 0; t < n; t++) /* per token: a tensor-wide scale becomes the token's */
            if (w->ops->fake_quantize(w, x + t * width, x + t * width, 1, width, NULL)) return -1;
        return 0;
    }
    const int qmax = (1 << (f->bits - 1)) - 1;
    const float fmax = f->fp8_exp == 4 ? 448.0f : 57344.0f;
    for (int64_t t = 0; t < n; t++) {
        float *row = x + t * width;
        const int per = f->group > 0 && f->group < width ? f->group : width;
        for (int g = 0; g < width; g += per) {
            const int len = width - g < per ? width - g : per;
            const float amax = f->is_static ? absmax : absmax_of(row + g, len);
            if (f->kind == QS_AF_INT) int_span(row + g, len, amax / (float)qmax, qmax);
            else fp8_span(row + g, len, f->fixed_scale > 0 ? f->fixed_scale : amax / fmax, f->fp8_exp);
        }
    }
    return 0;
}
