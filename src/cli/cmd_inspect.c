/* qsense inspect: architecture, metadata and tensor table of a model, with totals. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/qs_dtype.h"
#include "io/model.h"

/* how many layers attend through the sliding window */
static int n_sliding(const qs_arch *a) {
    int n = 0;
    for (int l = 0; a->n_swa > 0 && a->swa_layers && l < a->n_layers; l++) n += a->swa_layers[l];
    return n;
}

static void help(void) {
    printf("usage: qsense inspect MODEL [--json] [--tokenizer FILE]\n"
           "\n"
           "Prints the model's format, architecture, metadata and every tensor with its shape, type\n"
           "and size, then totals: parameters, bytes and bits per weight.\n"
           "\n"
           "  --json            one JSON object instead of text\n"
           "  --tokenizer FILE  tokenizer to report for llama2.c models\n");
}

static void shape_str(const qs_tensor *t, char *buf, size_t cap) {
    int k = snprintf(buf, cap, "[");
    for (int d = 0; d < t->n_dims; d++) k += snprintf(buf + k, cap - (size_t)k, d ? ", %lld" : "%lld", (long long)t->ne[d]);
    snprintf(buf + k, cap - (size_t)k, "]");
}

int cmd_inspect(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { help(); return 0; }
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--tokenizer")) { if (!val) return cli_usage("inspect", "--tokenizer needs a file"); tok_path = val; i++; }
        else if (a[0] == '-') return cli_usage("inspect", "unknown option '%s'", a);
        else if (!model_path) model_path = a;
        else return cli_usage("inspect", "unexpected argument '%s'", a);
    }
    if (!model_path) return cli_usage("inspect", "missing MODEL");
    qs_error err = {0};
    qs_model *m;
    qs_model_options opt = {tok_path};
    int rc = qs_model_open(&m, model_path, &opt, &err);
    if (rc) return cli_fail(&err);
    const qs_arch *a = &m->arch;
    uint64_t params = 0, bytes = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        params += (uint64_t)qs_tensor_numel(&m->tensors[i]);
        bytes += m->tensors[i].nbytes;
    }
    double bpw = params ? 8.0 * (double)bytes / (double)params : 0;
    char shape[96];
    if (json) {
        printf("{\"path\": ");
        cli_json_str(model_path);
        printf(", \"format\": ");
        cli_json_str(m->format);
        printf(",\n \"arch\": {\"name\": ");
        cli_json_str(a->arch);
        printf(", \"n_vocab\": %d, \"dim\": %d, \"hidden_dim\": %d, \"n_layers\": %d, \"n_heads\": %d, "
               "\"n_kv_heads\": %d, \"head_dim\": %d, \"ctx_train\": %d, \"norm_eps\": %g, \"rope_base\": %g, "
               "\"rope_type\": \"%s\", \"tied_output\": %s, \"sliding_window\": %d, \"sliding_layers\": %d, "
               "\"rope_base_swa\": %g, \"rope_scale\": %g, \"rope_freq_factors\": %s, \"attn_scale\": %g, "
               "\"embed_scale\": %g, \"logit_softcap\": %g, \"n_expert\": %d, \"n_expert_used\": %d, \"expert_ff\": %d},\n"
               " \"metadata\": {",
               a->n_vocab, a->dim, a->hidden_dim, a->n_layers, a->n_heads, a->n_kv_heads, a->head_dim, a->ctx_train,
               a->norm_eps, a->rope_base, a->rope_type == QS_ROPE_NEOX ? "neox" : "norm",
               a->tied_output ? "true" : "false", a->n_swa, n_sliding(a), a->rope_base_swa, a->rope_scale,
               a->rope_freqs ? "true" : "false", a->attn_scale, a->embed_scale, a->logit_softcap, a->n_expert, a->n_expert_used,
               a->expert_ff);
        for (int i = 0; i < m->n_meta; i++) {
            printf(i ? ", " : "");
            cli_json_str(m->meta[i].key);
            printf(": ");
            cli_json_str(m->meta[i].value);
        }
        printf("},\n \"tensors\": [\n");
        for (int i = 0; i < m->n_tensors; i++) {
            const qs_tensor *t = &m->tensors[i];
            printf("  {\"name\": ");
            cli_json_str(t->name);
            printf(", \"type\": \"%s\", \"shape\": [", qs_dtype_name(t->type));
            for (int d = 0; d < t->n_dims; d++) printf(d ? ", %lld" : "%lld", (long long)t->ne[d]);
            printf("], \"n_elements\": %lld, \"bytes\": %llu, \"offset\": %llu}%s\n", (long long)qs_tensor_numel(t),
                   (unsigned long long)t->nbytes, (unsigned long long)t->file_offset, i + 1 < m->n_tensors ? "," : "");
        }
        printf(" ],\n \"totals\": {\"n_tensors\": %d, \"parameters\": %llu, \"bytes\": %llu, \"bits_per_weight\": %.4f}}\n",
               m->n_tensors, (unsigned long long)params, (unsigned long long)bytes, bpw);
    } else {
        printf("model:    %s\nformat:   %s\n", model_path, m->format);
        printf("arch:     %s: vocab %d, dim %d, ffn %d, layers %d, heads %d (kv %d, head dim %d), ctx %d,\n"
               "          rms eps %g, rope base %g (%s), output %s\n",
               a->arch, a->n_vocab, a->dim, a->hidden_dim, a->n_layers, a->n_heads, a->n_kv_heads, a->head_dim,
               a->ctx_train, a->norm_eps, a->rope_base, a->rope_type == QS_ROPE_NEOX ? "neox" : "norm",
               a->tied_output ? "tied to token_embd" : "separate");
        if (a->n_swa > 0 && n_sliding(a))
            printf("          sliding window %d on %d of %d layers (rope base %g there)\n", a->n_swa, n_sliding(a), a->n_layers,
                   a->rope_base_swa);
        if (a->rope_scale != 1.0f || a->rope_freqs)
            printf("          rope scaling: %s\n", a->rope_freqs ? "per-frequency factors (Llama 3)" : "linear");
        if (a->logit_softcap > 0.0f) printf("          logits soft-capped at %g\n", a->logit_softcap);
        if (a->n_expert > 0)
            printf("          mixture of experts: %d experts of ffn %d, %d per token%s\n", a->n_expert, a->expert_ff,
                   a->n_expert_used, a->expert_norm ? " (weights renormalized)" : "");
        if (m->tokenizer_path) printf("tokenizer: %s\n", m->tokenizer_path);
        printf("\nmetadata (%d):\n", m->n_meta);
        for (int i = 0; i < m->n_meta; i++) printf("  %-44s %s\n", m->meta[i].key, m->meta[i].value);
        printf("\ntensors (%d):\n  %-32s %-10s %-20s %12s\n", m->n_tensors, "name", "type", "shape", "bytes");
        for (int i = 0; i < m->n_tensors; i++) {
            const qs_tensor *t = &m->tensors[i];
            shape_str(t, shape, sizeof shape);
            printf("  %-32s %-10s %-20s %12llu\n", t->name, qs_dtype_name(t->type), shape, (unsigned long long)t->nbytes);
        }
        int counts[QS_DT_I8_GROUPED + 1] = {0};
        for (int i = 0; i < m->n_tensors; i++) counts[m->tensors[i].type]++;
        printf("\ntypes:   ");
        for (int t = 0; t <= QS_DT_I8_GROUPED; t++)
            if (counts[t]) printf(" %s x%d", qs_dtype_name(t), counts[t]);
        printf("\ntotals:   %llu parameters, %llu bytes of tensors, %.4f bits per weight\n",
               (unsigned long long)params, (unsigned long long)bytes, bpw);
    }
    qs_model_close(m);
    return 0;
}
