/* Memory estimate of a profile run (see profile_memory.h). */
#include "analyzers/profile_memory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analyzers/analyzer.h"
#include "analyzers/sens_gradient.h"
#include "analyzers/sensitivity.h"
#include "io/gguf.h"
#include "quant/row_rounding.h"

/* "36.8 GiB", "412 MiB" */
static const char *human(char *buf, double b) {
    if (b >= 1024.0 * 1024 * 1024) snprintf(buf, 32, "%.1f GiB", b / (1024.0 * 1024 * 1024));
    else snprintf(buf, 32, "%.0f MiB", b / (1024.0 * 1024));
    return buf;
}

void qs_profile_estimate_memory(const qs_model *m, const qs_profile_options *opt, const qs_evalset *set, int all_grams,
                                qs_profile_memory *out) {
    const qs_arch *a = &m->arch;
    const double dim = a->dim, hid = a->hidden_dim, qd = (double)a->n_heads * a->head_dim, V = a->n_vocab;
    const double ctx = opt->ctx > 0 ? opt->ctx : 512;
    *out = (qs_profile_memory){0};
    if (m->gguf) out->file += (double)m->gguf->map.size;
    for (int i = 0; i < m->n_maps; i++) out->file += (double)m->maps[i]->size;
    /* distinct inputs per layer: the attention norm's (q, k, v), attn_output's, the FFN norm's
     * (gate, up), ffn_down's; and the output head's; each an f32 Gram matrix and channel stats */
    const double ins[4] = {dim, qd, dim, hid};
    double one_layer = 0;
    for (int k = 0; k < 4; k++) {
        out->stats += a->n_layers * 12 * ins[k];
        one_layer += 4 * ins[k] * ins[k];
        if (4 * ins[k] * ins[k] > out->widest) out->widest = 4 * ins[k] * ins[k];
    }
    out->stats += 12 * dim + (all_grams ? a->n_layers * one_layer + 4 * dim * dim : one_layer);
    const double calib = opt->calib_tokens > 0 ? opt->calib_tokens : 8192;
    out->stats += 4 * calib * dim; /* the residual stream of every calibration chunk */
    double largest = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if ((double)qs_tensor_numel(&m->tensors[i]) > largest) largest = (double)qs_tensor_numel(&m->tensors[i]);
    /* the analyzers stream a tensor by blocks of rows (weights, quantized, error, product; AWQ's
     * search two more) unless a format needs it whole: then it and its quantized copy in f32. GPTQ
     * holds the factor of the widest input's Gram matrix, and twice that in doubles making it. */
    const qs_format **fl;
    int nf, whole = 1, gptq = 0, awq = 0;
    qs_error ignored = {0};
    if (!qs_format_parse_list(opt->formats ? opt->formats : "default", &fl, &nf, &ignored)) {
        whole = 0;
        for (int k = 0; k < nf; k++) {
            whole |= !qs_format_rounds_by_rows(fl[k]);
            gptq |= fl[k]->gptq;
            awq |= fl[k]->awq;
        }
        free(fl);
    }
    out->tensors = (awq ? 6.0 : 4.0) * (double)QS_PROFILE_BLOCK_BYTES + (whole ? 2 * 4 * largest : 0) +
                   (gptq ? 3 * out->widest : 0);
    /* the sweep's candidate of the largest tensor at its worst format: none where the engine rounds
     * rows as it reads them (sensitivity.h), its blocks where the format has them (made a block of
     * rows at a time), else the weights and the candidate in f32; a GPTQ or AWQ format also holds
     * the tensor's X^T X, read back from the database (GPTQ its factor, AWQ its search's blocks;
     * the whole-model rows hold AWQ's for one tensor at a time, while its scales are chosen) */
    const qs_format **cf;
    int nc;
    if (opt->sensitivity && opt->sens_formats && !qs_format_parse_list(opt->sens_formats, &cf, &nc, &ignored)) {
        double worst = 0;
        /* the gradient mode scores a candidate's error a block of rows at a time where the format
         * rounds by rows (quant/row_rounding.h), else from the tensor and its candidate in f32, whole */
        const int gradient = opt->sens_mode && !strcmp(opt->sens_mode, QS_SENS_GRADIENT);
        for (int k = 0; k < nc; k++) {
            double b = gradient                        ? (qs_format_rounds_by_rows(cf[k]) ? 0 : 2 * 4 * largest)
                       : qs_sens_rounds_rows(cf[k], 0) ? 0
                       : qs_format_has_blocks(cf[k], 0) && (qs_format_rows_independent(cf[k]) || cf[k]->gptq)
                           ? qs_format_bpw(cf[k], 1, 256) / 8 * largest
                           : 2 * 4 * largest;
            b += (cf[k]->gptq || cf[k]->awq ? out->widest : 0) + (cf[k]->gptq ? 3 * out->widest : 0) +
                 (cf[k]->awq ? 2.0 * QS_PROFILE_BLOCK_BYTES : 0); /* AWQ's search: two more row blocks */
            worst = b > worst ? b : worst;
        }
        free(cf);
        if (4.0 * (double)QS_PROFILE_BLOCK_BYTES + worst > out->tensors)
            out->tensors = 4.0 * (double)QS_PROFILE_BLOCK_BYTES + worst;
    }
    out->engine = 32.0 * 1024 * 1024 + 4 * ctx * (6 * dim + 2 * hid + V) + 4 * 2 * ctx * ctx;
    if (opt->sensitivity && set) {
        const double ectx = opt->eval_ctx > 0 ? opt->eval_ctx : ctx, topk = opt->topk > 0 ? opt->topk : 64;
        double all_tokens = 0;
        for (int d = 0; d < set->n_domains; d++) {
            /* the budget, or what the text gives when it has been counted and is shorter */
            const qs_eval_domain *dom = &set->domains[d];
            const int64_t n =
                dom->n_text_tokens > 0 && dom->n_text_tokens < dom->tokens ? dom->n_text_tokens : dom->tokens;
            double tokens = (double)(n / (int64_t)ectx) * ectx;
            out->sens_cache += tokens * 4 * dim * (a->n_layers + 1);
            out->sens += tokens * (4 * dim * (a->n_layers + 1) + 8 * topk + 8);
            all_tokens += tokens;
        }
        /* the whole-model rows run layer-major: one layer's tensors quantized at a time (a GGUF
         * type's blocks; a format the engine rounds as it reads rows, nothing; another in f32;
         * the embedding and head whole, as counted in `tensors`) while every chunk's residual
         * stream waits (spillable) */
        const qs_format **sf;
        int ns;
        if (opt->sens_formats && !qs_format_parse_list(opt->sens_formats, &sf, &ns, &ignored)) {
            double worst = 0, streams = 0;
            double *layer = calloc((size_t)a->n_layers + 1, sizeof(double));
            for (int k = 0; k < ns && layer; k++) {
                const int blocks = qs_format_has_blocks(sf[k], 0);
                double bytes = 0;
                memset(layer, 0, sizeof(double) * ((size_t)a->n_layers + 1));
                for (int i = 0; i < m->n_tensors; i++) {
                    const qs_tensor *t = &m->tensors[i];
                    const double numel = (double)qs_tensor_numel(t);
                    int l = -1;
                    if (t->n_dims < 2 || numel <= (double)t->ne[0]) continue;
                    if (sscanf(t->name, "blk.%d.", &l) != 1 || l < 0 || l >= a->n_layers) continue;
                    layer[l] += blocks ? qs_format_bpw(sf[k], (int64_t)(numel / (double)t->ne[0]), t->ne[0]) / 8 * numel
                                : qs_sens_rounds_rows(sf[k], t->ne[0]) ? 0 /* rounded as the engine reads the rows */
                                                                       : 4 * numel;
                }
                for (int l = 0; l < a->n_layers; l++) bytes = layer[l] > bytes ? layer[l] : bytes;
                streams = all_tokens * 4 * dim;
                if (bytes > worst) worst = bytes;
            }
            free(layer);
            free(sf);
            out->sens += worst + streams;
            out->sens_cache += streams;
            out->whole = worst;
        }
        if (opt->sens_mode && !strcmp(opt->sens_mode, QS_SENS_GRADIENT)) /* + three heads' logits */
            out->sens += qs_sens_gradient_memory(m, all_tokens) + 3 * 4 * (ectx / 2 + 1) * V;
    }
    out->own = out->stats + out->tensors + out->engine + out->sens;
}

double qs_profile_memory_budget(const qs_profile_options *opt) {
    if (opt->mem_budget > 0) return (double)opt->mem_budget;
    return 0.8 * (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
}

int qs_profile_check_memory(const qs_model *m, const qs_profile_options *opt, const qs_evalset *set, int all_grams, int *spill,
                            qs_error *err) {
    qs_profile_memory est;
    qs_profile_estimate_memory(m, opt, set, all_grams, &est);
    const double budget = qs_profile_memory_budget(opt);
    *spill = 0;
    if (est.own <= budget) return 0;
    if (est.own - est.sens_cache <= budget) { /* the sweep's residual caches go to a file beside the database */
        *spill = 1;
        return 0;
    }
    char own[32], file[32], stats[32], widest[32], tensors[32], sens[32], bud[32], whole[32];
    return qs_errorf(
        err, QS_ERR_INPUT,
        "%s: this profile would hold about %s besides the %s model file (calibration statistics %s: X^T X of "
        "%s, the widest %s; tensor copies %s; sensitivity %s, of which the whole-model rows' weights %s), over the "
        "%s%s budget; it "
        "would be killed, not finish (even with the sweep's caches in a file). Give --mem-budget SIZE if the machine "
        "has "
        "the memory (or swap)%s",
        m->path, human(own, est.own), human(file, est.file), human(stats, est.stats),
        all_grams ? "every linear input of every layer (a GPTQ or AWQ format's, on an MPI worker)"
                  : "one layer's inputs at a time",
        human(widest, est.widest), human(tensors, est.tensors), human(sens, est.sens), human(whole, est.whole),
        opt->mem_budget > 0 ? "--mem-budget " : "default (80 % of memory) ", human(bud, budget),
        all_grams ? ", or leave the -gptq and -awq formats out" : "");
}
