/* The format registry (see format.h): built once from the families' parameters; lookups by
 * name; list parsing. The families' arithmetic lives in int_quant.c, float_quant.c and
 * ggml_format.c. */
#include "quant/format.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_dtype.h"
#include "quant/ggml_quant.h"

extern const qs_format_ops qs_int_ops, qs_ggml_ops, qs_float16_ops, qs_fp8_ops, qs_nf4_ops, qs_nonuniform_ops,
    qs_sparse_ops, qs_mx_ops, qs_awq_ops;

#define MAX_FORMATS 320
static qs_format registry[MAX_FORMATS];
static int n_formats;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static qs_format *add(const char *name, int family, const qs_format_ops *ops) {
    qs_format *f = &registry[n_formats++];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    f->family = family;
    f->ops = ops;
    return f;
}

static void build(void) {
    static const struct { const char *name; int gran, group; } grans[] = {
        {"tensor", QS_GRAN_TENSOR, 0}, {"channel", QS_GRAN_CHANNEL, 0}, {"g32", QS_GRAN_GROUP, 32},
        {"g64", QS_GRAN_GROUP, 64},    {"g128", QS_GRAN_GROUP, 128}};
    char name[32];
    for (int bits = 2; bits <= 8; bits++)
        for (size_t g = 0; g < sizeof grans / sizeof grans[0]; g++)
            for (int sym = 1; sym >= 0; sym--)
                for (int mse = 0; mse <= 1; mse++) {
                    snprintf(name, sizeof name, "int%d-%s-%s%s", bits, grans[g].name, sym ? "sym" : "asym", mse ? "-mse" : "");
                    qs_format *f = add(name, QS_FAM_INT, &qs_int_ops);
                    f->bits = bits;
                    f->granularity = grans[g].gran;
                    f->group = grans[g].group;
                    f->symmetric = sym;
                    f->clip_search = mse;
                }
    /* llama.cpp's block types: round-to-nearest (the plain name), activation-weighted ("-w",
     * where llama.cpp has an imatrix search), GPTQ ("-gptq", every type) */
    static const int ggml[] = {QS_DT_Q8_0,  QS_DT_Q6_K,    QS_DT_Q5_0,   QS_DT_Q5_1,    QS_DT_Q5_K,   QS_DT_Q4_0,
                               QS_DT_Q4_1,  QS_DT_Q4_K,    QS_DT_IQ4_NL, QS_DT_IQ4_XS,  QS_DT_MXFP4,  QS_DT_NVFP4,
                               QS_DT_Q3_K,  QS_DT_IQ3_S,   QS_DT_IQ3_XXS, QS_DT_Q2_K,   QS_DT_IQ2_S,  QS_DT_IQ2_XS,
                               QS_DT_IQ2_XXS, QS_DT_TQ2_0, QS_DT_IQ1_M,  QS_DT_TQ1_0,   QS_DT_IQ1_S};
    static const char *const rounding[] = {"", "-w", "-gptq"};
    for (int r = 0; r < 3; r++)
        for (size_t i = 0; i < sizeof ggml / sizeof ggml[0]; i++) {
            const qs_dtype_traits *tr = qs_dtype_get(ggml[i]);
            if (r == 0 && !qs_ggml_can_quantize(ggml[i])) continue; /* llama.cpp needs an imatrix for it */
            if (r == 1 && (ggml[i] == QS_DT_Q8_0 || !qs_ggml_can_quantize_weighted(ggml[i]))) continue;
            if (r == 2 && !qs_gptq_supports(ggml[i])) continue;
            snprintf(name, sizeof name, "%s%s", tr->name, rounding[r]);
            qs_format *f = add(name, QS_FAM_GGML, &qs_ggml_ops);
            f->ggml_type = ggml[i];
            f->bits = tr->type_size * 8 / tr->block_size;
            f->weighted = r == 1;
            f->gptq = r == 2;
        }
    qs_format *f = add("f16", QS_FAM_FLOAT16, &qs_float16_ops);
    f->ggml_type = QS_DT_F16;
    f->bits = 16;
    f = add("bf16", QS_FAM_FLOAT16, &qs_float16_ops);
    f->ggml_type = QS_DT_BF16;
    f->bits = 16;
    for (int e = 4; e <= 5; e++)
        for (int ch = 0; ch <= 1; ch++) {
            snprintf(name, sizeof name, "fp8-e%dm%d%s", e, 7 - e, ch ? "-channel" : "");
            f = add(name, QS_FAM_FP8, &qs_fp8_ops);
            f->bits = 8;
            f->fp8_exp = e;
            f->granularity = ch ? QS_GRAN_CHANNEL : QS_GRAN_TENSOR;
        }
    for (int g = 32; g <= 128; g *= 2) {
        snprintf(name, sizeof name, "nf4-g%d", g);
        f = add(name, QS_FAM_NF4, &qs_nf4_ops);
        f->bits = 4;
        f->granularity = QS_GRAN_GROUP;
        f->group = g;
    }
    for (int b = 3; b <= 4; b++) {
        snprintf(name, sizeof name, "nuq%d-channel", b);
        f = add(name, QS_FAM_NONUNIFORM, &qs_nonuniform_ops);
        f->bits = b;
        f->granularity = QS_GRAN_CHANNEL;
    }
    /* dense-and-sparse variants: 0.45 % outliers in fp16, as SqueezeLLM keeps */
    static const char *const bases[] = {"nuq3-channel", "nuq4-channel", "int3-g128-asym", "int4-g128-asym"};
    for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
        const qs_format *base = NULL;
        for (int k = 0; k < n_formats; k++)
            if (!strcmp(registry[k].name, bases[i])) base = &registry[k];
        snprintf(name, sizeof name, "%s-sp0.45", bases[i]);
        f = add(name, QS_FAM_SPARSE, &qs_sparse_ops);
        f->base = base;
        f->sparse_pct = 0.45;
        f->bits = base->bits;
        f->granularity = base->granularity;
        f->group = base->group;
        f->symmetric = base->symmetric;
    }
    /* AWQ rounding (awq.c) of the 4-bit formats its users deploy: int4-g128 and llama.cpp's */
    static const char *const awq_bases[] = {"int4-g128-sym", "int4-g128-asym", "q4_0", "q4_1", "q4_k", "iq4_nl", "iq4_xs"};
    for (size_t i = 0; i < sizeof awq_bases / sizeof awq_bases[0]; i++) {
        const qs_format *base = NULL;
        for (int k = 0; k < n_formats; k++)
            if (!strcmp(registry[k].name, awq_bases[i])) base = &registry[k];
        snprintf(name, sizeof name, "%s-awq", awq_bases[i]);
        f = add(name, base->family, &qs_awq_ops);
        const qs_format keep = *f;
        *f = *base; /* the base's parameters: its family, bits, ggml type (a llama.cpp type stays loadable) */
        memcpy(f->name, keep.name, sizeof f->name);
        f->ops = &qs_awq_ops;
        f->base = base;
        f->awq = 1;
    }
    /* microscaling: OCP MX (E8M0 scale per 32) and NVFP4 (E4M3 scale per 16, f32 per tensor) */
    static const struct { const char *name; int e, m, group, nv; } mx[] = {
        {"ocp-mxfp4", 2, 1, 32, 0},      {"mxfp6-e2m3", 2, 3, 32, 0}, {"mxfp6-e3m2", 3, 2, 32, 0},
        {"mxfp8-e4m3", 4, 3, 32, 0}, {"mxfp8-e5m2", 5, 2, 32, 0}, {"nvidia-nvfp4", 2, 1, 16, 1}};
    for (size_t i = 0; i < sizeof mx / sizeof mx[0]; i++) {
        f = add(mx[i].name, QS_FAM_MX, &qs_mx_ops);
        f->bits = 1 + mx[i].e + mx[i].m;
        f->elem_exp = mx[i].e;
        f->elem_mant = mx[i].m;
        f->granularity = QS_GRAN_GROUP;
        f->group = mx[i].group;
        f->nvfp4 = mx[i].nv;
    }
}

int qs_format_has_blocks(const qs_format *f, int64_t cols) {
    if (!(f->family == QS_FAM_GGML || f->family == QS_FAM_FLOAT16) || f->awq) return 0;
    return cols <= 0 || qs_dtype_row_bytes(f->ggml_type, cols) > 0;
}

int qs_format_rows_independent(const qs_format *f) {
    if (f->awq || f->gptq) return 0;
    switch (f->family) {
    case QS_FAM_INT: case QS_FAM_FP8: return f->granularity != QS_GRAN_TENSOR;
    case QS_FAM_GGML: case QS_FAM_FLOAT16: case QS_FAM_NF4: case QS_FAM_NONUNIFORM: return 1;
    case QS_FAM_MX: return !f->nvfp4;
    default: return 0; /* QS_FAM_SPARSE */
    }
}

const char *qs_family_name(int family) {
    static const char *const n[] = {"int", "ggml", "float16", "fp8", "nf4", "nonuniform", "sparse", "mx"};
    return family >= 0 && family <= QS_FAM_MX ? n[family] : "?";
}

const char *qs_granularity_name(const qs_format *f) {
    if (f->family == QS_FAM_GGML || f->family == QS_FAM_FLOAT16) return NULL;
    return f->granularity == QS_GRAN_TENSOR ? "tensor" : f->granularity == QS_GRAN_CHANNEL ? "channel" : "group";
}

int qs_format_count(void) {
    pthread_once(&once, build);
    return n_formats;
}

const qs_format *qs_format_at(int i) {
    pthread_once(&once, build);
    return i >= 0 && i < n_formats ? &registry[i] : NULL;
}

const qs_format *qs_format_find(const char *name, qs_error *err) {
    pthread_once(&once, build);
    for (int i = 0; i < n_formats; i++)
        if (!strcmp(registry[i].name, name)) return &registry[i];
    qs_errorf(err, QS_ERR_USAGE,
              "unknown format '%s'; formats are int{2..8}-{tensor,channel,g32,g64,g128}-{sym,asym}[-mse], q8_0, q6_k, "
              "q5_0, q5_1, q5_k, q4_0, q4_1, q4_k, q3_k, q2_k (+ -w weighted, -gptq), f16, bf16, fp8-e4m3[-channel], fp8-e5m2[-channel], "
              "nf4-g{32,64,128}, nuq{3,4}-channel, iq4_nl, iq4_xs (+ -w), mxfp4, nvfp4, tq1_0, tq2_0, ocp-mxfp4, mxfp6-e2m3, mxfp6-e3m2, mxfp8-e4m3, mxfp8-e5m2, nvidia-nvfp4, and "
              "-sp0.45 variants (qsense profile --list-formats)",
              name);
    return NULL;
}

const char *qs_format_default_list(void) {
    return "int8-channel-sym,int8-g128-sym,int6-g128-asym,int5-g128-asym,int4-tensor-sym,int4-channel-sym,"
           "int4-channel-asym,int4-g128-sym,int4-g128-asym,int4-g128-asym-mse,int4-g64-asym,int4-g32-asym,"
           "int3-g128-asym,int3-g64-asym-mse,int2-g64-asym,q8_0,q6_k,q5_k,q5_0,q5_1,q4_k,q4_0,q4_1,q3_k,q2_k,"
           "f16,bf16,fp8-e4m3,fp8-e5m2,nf4-g64,nuq4-channel,nuq3-channel,nuq3-channel-sp0.45,int3-g128-asym-sp0.45";
}

int qs_format_parse_list(const char *list, const qs_format ***out, int *n, qs_error *err) {
    *out = NULL;
    *n = 0;
    char *copy = strdup(list), *save = NULL;
    if (!copy) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    int cap = 16, k = 0, rc = 0;
    const qs_format **arr = malloc(sizeof(*arr) * (size_t)cap);
    for (char *tok = strtok_r(copy, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        if (!*tok) continue;
        if (!strcmp(tok, "default")) {
            const qs_format **sub;
            int m;
            if ((rc = qs_format_parse_list(qs_format_default_list(), &sub, &m, err))) break;
            for (int i = 0; i < m; i++) {
                if (k == cap) arr = realloc(arr, sizeof(*arr) * (size_t)(cap *= 2));
                arr[k++] = sub[i];
            }
            free(sub);
            continue;
        }
        const qs_format *f = qs_format_find(tok, err);
        if (!f) { rc = QS_ERR_USAGE; break; }
        int dup = 0;
        for (int i = 0; i < k; i++) dup |= arr[i] == f;
        if (dup) continue;
        if (k == cap) arr = realloc(arr, sizeof(*arr) * (size_t)(cap *= 2));
        arr[k++] = f;
    }
    free(copy);
    if (!rc && k == 0) rc = qs_errorf(err, QS_ERR_USAGE, "the format list '%s' is empty", list);
    if (rc) { free(arr); return rc; }
    *out = arr;
    *n = k;
    return 0;
}

int qs_format_fake_quantize(const qs_format *f, const float *w, float *out, int64_t rows, int64_t cols, qs_error *err) {
    return qs_format_fake_quantize_weighted(f, w, out, rows, cols, NULL, err);
}

int qs_format_fake_quantize_weighted(const qs_format *f, const float *w, float *out, int64_t rows, int64_t cols,
                                     const float *importance, qs_error *err) {
    const qs_calib cal = {importance, NULL, 0, NULL};
    return qs_format_fake_quantize_calib(f, w, out, rows, cols, &cal, err);
}

int qs_format_fake_quantize_calib(const qs_format *f, const float *w, float *out, int64_t rows, int64_t cols,
                                  const qs_calib *cal, qs_error *err) {
    char why[160];
    if (!f->ops->applies(f, rows, cols, why, sizeof why))
        return qs_errorf(err, QS_ERR_USAGE, "format %s does not apply to a %lld x %lld matrix: %s", f->name,
                         (long long)rows, (long long)cols, why);
    int rc = f->ops->fake_quantize(f, w, out, rows, cols, cal);
    if (rc == -2)
        return qs_errorf(err, QS_ERR_INPUT, "format %s needs the Gram matrix of the matrix's inputs, which only a calibration "
                                            "pass gives (qsense profile on evaluation text)", f->name);
    if (rc == -3)
        return qs_errorf(err, QS_ERR_INPUT, "format %s: the inputs' Gram matrix has a non-finite value or is not positive "
                                            "definite; the calibration statistics are corrupt", f->name);
    if (rc) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory quantizing to %s", f->name);
    return 0;
}

int qs_format_is_float(const char *name) {
    const qs_format *f = qs_format_find(name, NULL);
    return !strcmp(name, "f32") || (f && f->family == QS_FAM_FLOAT16);
}

const char *qs_format_stored_type(const char *name) {
    const qs_format *f = qs_format_find(name, NULL);
    return f && (f->family == QS_FAM_GGML || f->family == QS_FAM_FLOAT16) ? qs_dtype_name(f->ggml_type) : name;
}
