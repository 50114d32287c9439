/* The activations analyzer: statistics of the input of each linear layer over the calibration
 * tokens (collected by act_collect.c during one pass): min, max, absmax, mean, std, dynamic
 * range (20 log10(absmax / std)), per-input-channel absmax and mean square (llama-imatrix's
 * statistic), outlier channels (absmax above 6x the median channel's), and a histogram; when a
 * GPTQ format is swept, also the inputs' Gram matrix (what `qsense quantize` compensates with). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzers/analyzer.h"
#include "engine/engine.h"

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static int applies(const qs_profile *p, int i) { return p->tensors[i].linear >= 0; }

static int run(qs_profile *p, int i, qs_error *err) {
    const qs_prof_tensor *pt = &p->tensors[i];
    const qs_act_stats *s = qs_profile_input_stats(p, i);
    if (!s || s->n_tokens == 0) return qs_errorf(err, QS_ERR_INTERNAL, "no activations were collected for %s", pt->t->name);
    const int n = s->n_in;
    const double count = (double)s->n_tokens * n, mean = s->sum / count;
    const double sd = sqrt(fmax(0, s->sum_sq / count - mean * mean));
    const double absmax = fmax(fabs(s->min), fabs(s->max));
    float *sorted = malloc(sizeof(float) * (size_t)n);
    float *mean_sq = malloc(sizeof(float) * (size_t)n), *mean_abs = malloc(sizeof(float) * (size_t)n);
    memcpy(sorted, s->ch_absmax, sizeof(float) * (size_t)n);
    qsort(sorted, (size_t)n, sizeof(float), cmp_float);
    const float median = sorted[n / 2];
    char outliers[1024] = "[";
    int n_out = 0;
    size_t k = 1;
    for (int c = 0; c < n; c++) {
        mean_sq[c] = (float)(s->ch_sum_sq[c] / (double)s->n_tokens);
        mean_abs[c] = (float)(s->ch_sum_abs[c] / (double)s->n_tokens);
        if (median > 0 && s->ch_absmax[c] > 6 * median) {
            if (k < sizeof outliers - 16) k += (size_t)snprintf(outliers + k, sizeof outliers - k, n_out ? ",%d" : "%d", c);
            n_out++;
        }
    }
    snprintf(outliers + k, sizeof outliers - k, "]");
    char hist_ds[160], absmax_ds[160], msq_ds[160], mabs_ds[160];
    snprintf(hist_ds, sizeof hist_ds, "/activations/%s/hist", pt->t->name);
    snprintf(absmax_ds, sizeof absmax_ds, "/activations/%s/channel_absmax", pt->t->name);
    snprintf(msq_ds, sizeof msq_ds, "/activations/%s/channel_mean_sq", pt->t->name);
    snprintf(mabs_ds, sizeof mabs_ds, "/activations/%s/channel_mean_abs", pt->t->name);
    qs_db_activation_stats_row row = {
        .run_id = p->run_id, .tensor_id = pt->db_id, .n_tokens = s->n_tokens, .min = s->min, .max = s->max, .absmax = absmax,
        .mean = mean, .std = sd, .dynamic_range_db = sd > 0 ? 20 * log10(absmax / sd) : NAN, .channel_absmax_median = median,
        .channel_absmax_max = sorted[n - 1], .n_outlier_channels = n_out, .outlier_channels = outliers,
        .hist_min = -s->hist_range, .hist_max = s->hist_range, .hist_dataset = hist_ds, .channel_absmax_dataset = absmax_ds,
        .channel_mean_sq_dataset = msq_ds};
    int rc = qs_db_put_activation_stats(p->db, &row, err);
    if (!rc) rc = qs_db_put_array(p->db, p->run_id, hist_ds, "u64", s->hist, 256, err);
    if (!rc) rc = qs_db_put_array(p->db, p->run_id, absmax_ds, "f32", s->ch_absmax, n, err);
    if (!rc) rc = qs_db_put_array(p->db, p->run_id, msq_ds, "f32", mean_sq, n, err);
    if (!rc) rc = qs_db_put_array(p->db, p->run_id, mabs_ds, "f32", mean_abs, n, err); /* AWQ's scales, for quantize */
    /* a mixture of experts: how many calibration tokens the router sent to each expert of this
     * layer (an expert with none has no statistics of its own: the report names it) */
    if (!rc && pt->linear == QS_LIN_GATE_EXPS && p->calib_engine) {
        const int n_exp = p->m->arch.n_expert;
        uint64_t *counts = malloc(sizeof(uint64_t) * (size_t)n_exp);
        char ds[160];
        snprintf(ds, sizeof ds, "/routing/blk.%d/tokens_per_expert", pt->layer);
        for (int x = 0; counts && x < n_exp; x++) counts[x] = (uint64_t)qs_engine_expert_tokens(p->calib_engine, pt->layer, x);
        rc = counts ? qs_db_put_array(p->db, p->run_id, ds, "u64", counts, n_exp, err) : qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
        free(counts);
    }
    /* matrices that read another's inputs (K, V: Q's; UP: GATE's) use its Gram matrix; where
     * that one is not in the model (a fused layout's stacked UP) the matrix keeps its own */
    char owner[96];
    snprintf(owner, sizeof owner, "blk.%d.%s.weight", pt->layer, qs_linear_name(qs_linear_input_of(pt->linear)));
    const int keeps_gram = qs_linear_input_of(pt->linear) == pt->linear || !qs_model_find(p->m, owner);
    if (!rc && p->store_gram && keeps_gram) {
        /* for `qsense quantize` of a GPTQ plan: the inputs' mean outer product X^T X / n_tokens */
        char gram_ds[160];
        snprintf(gram_ds, sizeof gram_ds, "/activations/%s/gram", pt->t->name);
        float *g = malloc(sizeof(float) * (size_t)n * (size_t)n);
        if (!g) rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
        for (int64_t k = 0; g && k < (int64_t)n * n; k++) g[k] = (float)(s->gram[k] / (double)s->n_tokens);
        if (!rc) rc = qs_db_put_array(p->db, p->run_id, gram_ds, "f32", g, (int64_t)n * n, err);
        free(g);
    }
    free(sorted);
    free(mean_sq);
    free(mean_abs);
    return rc;
}

const qs_analyzer qs_analyzer_activations = {"activations", 1, applies, run};
