/* AWQ scales for a written model and their folding (see awq_fold.h). */
#include "quantize/awq_fold.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tensor_rounding.h"
#include "quant/awq.h"
#include "quant/format.h"

/* the four inputs of a block: the members that read each, and where 1/s goes */
enum { IN_ATTN, IN_ATTN_OUT, IN_FFN, IN_DOWN, N_INPUTS };
static const char *const MEMBERS[N_INPUTS][3] = {
    {"attn_q", "attn_k", "attn_v"}, {"attn_output", NULL, NULL}, {"ffn_gate", "ffn_up", NULL}, {"ffn_down", NULL, NULL}};

struct qs_awq_fold {
    int n_layers, qd, kvd, hid, fused;
    float **s; /* [n_layers * N_INPUTS]: the scales, or NULL */
};

static const qs_tensor *find(const qs_model *m, int layer, const char *kind, const char *suffix) {
    char name[128];
    snprintf(name, sizeof name, "blk.%d.%s.%s", layer, kind, suffix);
    return qs_model_find(m, name);
}

/* the members of input `in` of layer l (fused layouts: attn_qkv, and ffn_up for gate|up) */
static int members(const qs_model *m, int l, int in, const qs_tensor **out) {
    int n = 0;
    if (in == IN_ATTN && (out[0] = find(m, l, "attn_qkv", "weight"))) return 1;
    for (int k = 0; k < 3 && MEMBERS[in][k]; k++)
        if ((out[n] = find(m, l, MEMBERS[in][k], "weight"))) n++;
    return n;
}

/* how the search rounds a member: an AWQ format's base, else its own type plainly (weighted and
 * GPTQ rounding would need statistics the search does not vary); NULL: kept in floating point */
static const qs_format *search_format(const char *planned) {
    const qs_format *f = qs_format_find(planned, NULL);
    if (!f || qs_format_is_float(planned)) return NULL;
    if (f->awq) return f->base;
    return qs_format_needs_calib(f) ? qs_format_find(qs_format_stored_type(planned), NULL) : f;
}

static int search_group(qs_awq_fold *a, const qs_model *m, const qs_plan *plan, const char *db_path, int l, int in, qs_error *err) {
    const qs_tensor *mt[3];
    const int n = members(m, l, in, mt);
    int any = 0;
    for (int k = 0; k < n; k++) {
        const qs_plan_tensor *pt = qs_plan_find(plan, mt[k]->name);
        const qs_format *f = pt ? qs_format_find(pt->format, NULL) : NULL;
        any |= f && f->awq;
    }
    if (!any) return 0;
    const int64_t cols = mt[0]->ne[0];
    if (in == IN_ATTN_OUT && m->arch.n_heads != m->arch.n_kv_heads)
        return qs_errorf(err, QS_ERR_INPUT, "%s: AWQ on %s: its scales cannot be folded into v's rows with grouped-query attention",
                         plan->source_path, mt[0]->name);
    float *imp = NULL, *gram = NULL, *mag = NULL;
    int rc = qs_plan_load_calib(db_path, plan->model_fingerprint, mt[0]->name, cols, 1, &imp, &gram, err);
    if (!rc) rc = qs_plan_load_mean_abs(db_path, plan->model_fingerprint, mt[0]->name, cols, &mag, err);
    /* each member's output error at every trial exponent, summed alone a block of rows at a time
     * (in row order, as the whole tensor's), then added: the members are never whole in f32
     * unless their format has a per-tensor figure */
    double total[QS_AWQ_ALPHAS] = {0};
    float *w = NULL, *wq = NULL, *tmp = NULL;
    for (int k = 0; k < n && !rc; k++) {
        const qs_format *f = search_format(qs_plan_find(plan, mt[k]->name)->format);
        if (!f) continue;
        const int64_t rows = qs_tensor_numel(mt[k]) / cols;
        char why[256];
        if (!qs_format_applies(f, rows, cols, why, sizeof why)) {
            rc = qs_errorf(err, QS_ERR_INPUT, "%s: tensor %s: %s", plan->source_path, mt[k]->name, why);
            break;
        }
        const int64_t step = qs_format_rows_independent(f) ? qs_tensor_rows_per_block(mt[k]) : rows;
        free(w), free(wq), free(tmp);
        w = malloc(sizeof(float) * (size_t)(step * cols));
        wq = malloc(sizeof(float) * (size_t)(step * cols));
        tmp = malloc(sizeof(float) * (size_t)(step * cols));
        double e[QS_AWQ_ALPHAS] = {0};
        for (int64_t r0 = 0; r0 < rows && !rc; r0 += step) {
            const int64_t nr = rows - r0 < step ? rows - r0 : step;
            if (w && wq && tmp) qs_tensor_dequantize_rows(mt[k], r0, nr, w);
            if (!w || !wq || !tmp || qs_awq_add_errors(f, w, nr, cols, mag, gram, wq, tmp, e))
                rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory in AWQ");
        }
        for (int x = 0; x < QS_AWQ_ALPHAS; x++) total[x] += e[x];
    }
    float *s = rc ? NULL : malloc(sizeof(float) * (size_t)cols), alpha = 0;
    if (!rc && !s) rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    if (!rc) qs_awq_pick(total, mag, cols, s, &alpha);
    if (!rc) a->s[l * N_INPUTS + in] = s;
    else free(s);
    free(w);
    free(wq);
    free(tmp);
    free(imp);
    free(gram);
    free(mag);
    return rc;
}

int qs_awq_fold_new(qs_awq_fold **out, const qs_model *m, const qs_plan *plan, const char *db_path, qs_error *err) {
    *out = NULL;
    int any = 0;
    for (int i = 0; i < plan->n_tensors; i++) {
        const qs_format *f = qs_format_find(plan->tensors[i].format, NULL);
        any |= f && f->awq;
    }
    if (!any) return 0;
    if (!db_path) return qs_errorf(err, QS_ERR_USAGE, "the plan has AWQ formats: give --db, the profile database it was made from");
    qs_awq_fold *a = calloc(1, sizeof *a);
    if (!a || !(a->s = calloc((size_t)m->arch.n_layers * N_INPUTS, sizeof(float *)))) {
        free(a);
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    }
    a->n_layers = m->arch.n_layers;
    a->qd = m->arch.n_heads * m->arch.head_dim;
    a->kvd = m->arch.n_kv_heads * m->arch.head_dim;
    a->hid = m->arch.hidden_dim;
    int rc = 0;
    for (int l = 0; l < a->n_layers && !rc; l++)
        for (int in = 0; in < N_INPUTS && !rc; in++) rc = search_group(a, m, plan, db_path, l, in, err);
    if (rc) {
        qs_awq_fold_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

void qs_awq_fold_free(qs_awq_fold *a) {
    if (!a) return;
    for (int i = 0; i < a->n_layers * N_INPUTS; i++) free(a->s[i]);
    free(a->s);
    free(a);
}

/* which (layer, input) a tensor reads, or -1 */
static int group_of(const qs_awq_fold *a, const char *name, int *layer) {
    int off = 0;
    char kind[32];
    if (sscanf(name, "blk.%d.%31[a-z_].weight%n", layer, kind, &off) != 2 || name[off] || *layer < 0 || *layer >= a->n_layers)
        return -1;
    if (!strcmp(kind, "attn_qkv")) return IN_ATTN;
    for (int in = 0; in < N_INPUTS; in++)
        for (int k = 0; k < 3 && MEMBERS[in][k]; k++)
            if (!strcmp(kind, MEMBERS[in][k])) return in;
    return -1;
}

const float *qs_awq_fold_scales(const qs_awq_fold *a, const char *tensor) {
    int l, in = a ? group_of(a, tensor, &l) : -1;
    return in >= 0 ? a->s[l * N_INPUTS + in] : NULL;
}

void qs_awq_fold_tensor(const qs_awq_fold *a, const qs_tensor *t, float *f, int64_t row0, int64_t rows, int64_t cols) {
    if (!a) return;
    const float *s = qs_awq_fold_scales(a, t->name);
    if (s && cols == t->ne[0])
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) f[r * cols + c] *= s[c];
    /* the producers: a norm's values, or rows [r0, r0 + len) feeding the next input */
    int l, off = 0;
    char kind[32], part[16];
    if (sscanf(t->name, "blk.%d.%31[a-z_].%15[a-z]%n", &l, kind, part, &off) != 3 || t->name[off] || l < 0 || l >= a->n_layers) return;
    const float *d = NULL;
    const int64_t all_rows = qs_tensor_numel(t) / t->ne[0];
    int64_t r0 = 0;
    if (!strcmp(kind, "attn_norm")) d = a->s[l * N_INPUTS + IN_ATTN];
    else if (!strcmp(kind, "ffn_norm")) d = a->s[l * N_INPUTS + IN_FFN];
    else if (!strcmp(kind, "attn_v")) d = a->s[l * N_INPUTS + IN_ATTN_OUT];
    else if (!strcmp(kind, "attn_qkv")) d = a->s[l * N_INPUTS + IN_ATTN_OUT], r0 = a->qd + a->kvd;
    else if (!strcmp(kind, "ffn_up"))
        d = a->s[l * N_INPUTS + IN_DOWN], r0 = all_rows == 2 * (int64_t)a->hid ? a->hid : 0;
    if (!d) return;
    const int vector = t->n_dims == 1; /* a norm or a bias: one value per output, given whole */
    const int64_t n_out = vector ? rows * cols : row0 + rows, width = vector ? 1 : cols, first = vector ? 0 : row0;
    const int64_t len = !strcmp(kind, "attn_norm") || !strcmp(kind, "ffn_norm") ? n_out : !strcmp(kind, "ffn_up") ? a->hid : a->kvd;
    for (int64_t r = r0 > first ? r0 : first; r < r0 + len && r < n_out; r++)
        for (int64_t c = 0; c < width; c++) f[(r - first) * width + c] /= d[r - r0];
}
