/* Plans in other tools' terms, so users can apply a qsense plan with the quantizer they already
 * use: llama-quantize's --tensor-type-file (anchored, escaped regexes) and an llm-compressor
 * recipe (config groups by target regex, one per distinct integer/fp8 scheme; Hugging Face
 * module names). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_dtype.h"
#include "core/qs_output.h"
#include "quant/format.h"
#include "reports/planner/plan.h"

static int llama_cpp_type(const char *fmt) {
    for (int t = 0; t < QS_DT_GGML_COUNT; t++) {
        const qs_dtype_traits *tr = qs_dtype_get(t);
        if (tr && !strcmp(tr->name, fmt)) return t;
    }
    return -1;
}

static void put_escaped(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '.') fputc('\\', f);
        fputc(*s, f);
    }
}

/* llama-quantize matches patterns with a regex search on the tensor name: anchor and escape */
int qs_plan_write_tensor_type_file(const qs_plan *p, const char *path, qs_error *err) {
    qs_output *o;
    int rc = qs_output_open(&o, path, "--emit", 0, err);
    if (rc) return rc;
    FILE *f = qs_output_stream(o);
    for (int i = 0; i < p->n_tensors; i++) {
        const char *type = qs_format_stored_type(p->tensors[i].format);
        if (llama_cpp_type(type) < 0) continue;
        fputc('^', f);
        put_escaped(f, p->tensors[i].name);
        fprintf(f, "$=%s\n", type);
    }
    return qs_output_commit(o, err);
}

/* GGUF name -> the Hugging Face module that holds it (0 when it is not a Linear); in a fused
 * layout (Phi-3) ffn_up is the stacked gate_up_proj */
static int hf_module_of(const char *gguf, int fused, char *out, size_t cap) {
    static const char *const map[][2] = {
        {"attn_q", "self_attn.q_proj"}, {"attn_k", "self_attn.k_proj"},     {"attn_v", "self_attn.v_proj"},
        {"attn_output", "self_attn.o_proj"}, {"ffn_gate", "mlp.gate_proj"}, {"ffn_up", "mlp.up_proj"},
        {"ffn_down", "mlp.down_proj"}, {"attn_qkv", "self_attn.qkv_proj"},
    };
    int layer;
    char kind[64];
    if (!strcmp(gguf, "output.weight")) return snprintf(out, cap, "lm_head"), 1;
    if (sscanf(gguf, "blk.%d.%63[^.].weight", &layer, kind) == 2)
        for (size_t k = 0; k < sizeof map / sizeof *map; k++)
            if (!strcmp(kind, map[k][0]))
                return snprintf(out, cap, "model.layers.%d.%s", layer,
                                fused && !strcmp(kind, "ffn_up") ? "mlp.gate_up_proj" : map[k][1]), 1;
    return 0;
}

static int hf_module(const char *gguf, char *out, size_t cap) { return hf_module_of(gguf, 0, out, cap); }

/* the llm-compressor weights scheme of a qsense format; 0 if it has none */
static int scheme(const char *fmt, char *out, size_t cap) {
    const qs_format *f = qs_format_find(fmt, NULL);
    if (!f) return 0;
    if (f->family == QS_FAM_INT) {
        const char *strategy = f->granularity == QS_GRAN_TENSOR ? "tensor" : f->granularity == QS_GRAN_CHANNEL ? "channel" : "group";
        int n = snprintf(out, cap, "{num_bits: %d, type: int, symmetric: %s, strategy: %s", f->bits, f->symmetric ? "true" : "false",
                         strategy);
        if (f->granularity == QS_GRAN_GROUP) n += snprintf(out + n, cap - (size_t)n, ", group_size: %d", f->group);
        snprintf(out + n, cap - (size_t)n, "%s}", f->clip_search ? ", observer: mse" : "");
        return 1;
    }
    if (f->family == QS_FAM_FP8 && f->fp8_exp == 4) {
        snprintf(out, cap, "{num_bits: 8, type: float, symmetric: true, strategy: %s}",
                 f->granularity == QS_GRAN_CHANNEL ? "channel" : "tensor");
        return 1;
    }
    return 0;
}

int qs_plan_llmc_act_scheme(const char *act, char *out, size_t cap) {
    static const char *const map[][2] = {
        {"a-int8-token", "{num_bits: 8, type: int, symmetric: true, strategy: token, dynamic: true}"},
        {"a-int8-tensor", "{num_bits: 8, type: int, symmetric: true, strategy: tensor, dynamic: false}"},
        {"a-fp8-e4m3-token", "{num_bits: 8, type: float, symmetric: true, strategy: token, dynamic: true}"},
        {"a-fp8-e4m3-tensor", "{num_bits: 8, type: float, symmetric: true, strategy: tensor, dynamic: false}"},
        {"a-int4-g128", "{num_bits: 4, type: int, symmetric: true, strategy: group, group_size: 128, dynamic: true}"},
    };
    for (size_t k = 0; k < sizeof map / sizeof map[0]; k++)
        if (!strcmp(act, map[k][0])) return snprintf(out, cap, "%s", map[k][1]), 1;
    return 0;
}

int qs_plan_llmc_expressible(const char *name, const char *fmt) {
    char mod[128], sc[160];
    return qs_format_is_float(fmt) || (hf_module(name, mod, sizeof mod) && scheme(fmt, sc, sizeof sc));
}

/* An -awq format's tensors: llm-compressor's AWQModifier, before the QuantizationModifier, with a
 * mapping per input the plan smooths (the layer that feeds it and every Linear it feeds, since the
 * scales divide that layer's output): q/k/v after input_layernorm, o after v, gate/up after
 * post_attention_layernorm, down after up (Llama-family module names). llm-compressor searches
 * its own scales on its calibration text, as qsense's quantize does on the profile's. */
enum { AWQ_QKV, AWQ_O, AWQ_GATE_UP, AWQ_DOWN };

static int awq_group_of(const char *kind) {
    if (!strcmp(kind, "attn_q") || !strcmp(kind, "attn_k") || !strcmp(kind, "attn_v") || !strcmp(kind, "attn_qkv")) return AWQ_QKV;
    if (!strcmp(kind, "attn_output")) return AWQ_O;
    if (!strcmp(kind, "ffn_gate") || !strcmp(kind, "ffn_up")) return AWQ_GATE_UP;
    if (!strcmp(kind, "ffn_down")) return AWQ_DOWN;
    return -1;
}

static void put_pattern(FILE *f, const char *module) {
    fprintf(f, "'re:^");
    put_escaped(f, module);
    fprintf(f, "$'");
}

static void write_awq_mapping(FILE *f, int layer, int group, int fused) {
    char smooth[128], bal[3][128];
    int nb = 0;
    const char *up = fused ? "mlp.gate_up_proj" : "mlp.up_proj";
    switch (group) {
    case AWQ_QKV:
        snprintf(smooth, sizeof smooth, "model.layers.%d.input_layernorm", layer);
        if (fused) snprintf(bal[nb++], 128, "model.layers.%d.self_attn.qkv_proj", layer);
        else
            for (int k = 0; k < 3; k++) snprintf(bal[nb++], 128, "model.layers.%d.self_attn.%c_proj", layer, "qkv"[k]);
        break;
    case AWQ_O:
        snprintf(smooth, sizeof smooth, "model.layers.%d.self_attn.%s", layer, fused ? "qkv_proj" : "v_proj");
        snprintf(bal[nb++], 128, "model.layers.%d.self_attn.o_proj", layer);
        break;
    case AWQ_GATE_UP:
        snprintf(smooth, sizeof smooth, "model.layers.%d.post_attention_layernorm", layer);
        if (!fused) snprintf(bal[nb++], 128, "model.layers.%d.mlp.gate_proj", layer);
        snprintf(bal[nb++], 128, "model.layers.%d.%s", layer, up);
        break;
    default:
        snprintf(smooth, sizeof smooth, "model.layers.%d.%s", layer, up);
        snprintf(bal[nb++], 128, "model.layers.%d.mlp.down_proj", layer);
    }
    fprintf(f, "        - smooth_layer: ");
    put_pattern(f, smooth);
    fprintf(f, "\n          balance_layers: [");
    for (int k = 0; k < nb; k++) {
        if (k) fprintf(f, ", ");
        put_pattern(f, bal[k]);
    }
    fprintf(f, "]\n");
}

/* the mappings of every (layer, input) with an -awq member, each once; returns how many */
static int write_awq(FILE *f, const qs_plan *p, int fused) {
    int n = 0, max_layer = -1, layer;
    char kind[64];
    for (int i = 0; i < p->n_tensors; i++)
        if (sscanf(p->tensors[i].name, "blk.%d.", &layer) == 1 && layer > max_layer) max_layer = layer;
    unsigned char *seen = calloc((size_t)(max_layer + 1) * 4 + 1, 1);
    for (int i = 0; seen && i < p->n_tensors; i++) {
        const qs_format *fmt = qs_format_find(p->tensors[i].format, NULL);
        if (!fmt || !fmt->awq || sscanf(p->tensors[i].name, "blk.%d.%63[^.]", &layer, kind) != 2) continue;
        const int g = awq_group_of(kind);
        if (g < 0 || seen[layer * 4 + g]) continue;
        seen[layer * 4 + g] = 1;
        if (!n++) fprintf(f, "    AWQModifier:\n      mappings:\n");
        write_awq_mapping(f, layer, g, fused);
    }
    free(seen);
    return n;
}

int qs_plan_write_llm_compressor(const qs_plan *p, const char *path, qs_error *err) {
    char bad[600] = "";
    int n_bad = 0, fused = 0;
    for (int i = 0; i < p->n_tensors; i++) fused |= strstr(p->tensors[i].name, ".attn_qkv.") != NULL;
    for (int i = 0; i < p->n_tensors; i++) {
        char mod[128], sc[160];
        const qs_plan_tensor *t = &p->tensors[i];
        if (qs_format_is_float(t->format)) continue;
        if (!hf_module_of(t->name, fused, mod, sizeof mod) || !scheme(t->format, sc, sizeof sc) ||
            (t->act[0] && !qs_plan_llmc_act_scheme(t->act, sc, sizeof sc))) {
            if (n_bad++ < 4) {
                size_t k = strlen(bad);
                snprintf(bad + k, sizeof bad - k, "%s%s (%s%s%s)", k ? ", " : "", t->name, t->format, t->act[0] ? " + " : "", t->act);
            }
        }
    }
    if (n_bad)
        return qs_errorf(err, QS_ERR_USAGE,
                         "--emit llm-compressor: %d tensors have formats llm-compressor cannot express: %s%s; plan with "
                         "--target llm-compressor (integer formats, fp8-e4m3, f16) to get such a plan",
                         n_bad, bad, n_bad > 4 ? ", ..." : "");
    qs_output *o;
    int rc = qs_output_open(&o, path, "--emit", 0, err);
    if (rc) return rc;
    FILE *f = qs_output_stream(o);
    fprintf(f, "# llm-compressor recipe for the qsense plan of %s (model sha256 %s)\n"
               "# predicted KL %.6f, %.0f bytes of tensor data; tensors kept in floating point are ignored\n"
               "quant_stage:\n  quant_modifiers:\n",
            p->model_path, p->model_fingerprint, p->predicted_kl, p->total_bytes);
    write_awq(f, p, fused);
    fprintf(f, "    QuantizationModifier:\n");
    /* the Linear modules left unquantized */
    int n_ignored = 0;
    for (int i = 0; i < p->n_tensors; i++) {
        char mod[128];
        if (!qs_format_is_float(p->tensors[i].format) || !hf_module_of(p->tensors[i].name, fused, mod, sizeof mod)) continue;
        fprintf(f, "%s        - 're:^", n_ignored++ ? "" : "      ignore:\n");
        put_escaped(f, mod);
        fprintf(f, "$'\n");
    }
    if (!n_ignored) fprintf(f, "      ignore: []\n");
    fprintf(f, "      config_groups:\n");
    /* one group per distinct scheme, its targets every module with that scheme */
    int *done = calloc((size_t)p->n_tensors, sizeof(int)), group = 0;
    for (int i = 0; i < p->n_tensors; i++) {
        char sc[160], mod[128];
        if (done[i] || qs_format_is_float(p->tensors[i].format) || !hf_module_of(p->tensors[i].name, fused, mod, sizeof mod)) continue;
        scheme(p->tensors[i].format, sc, sizeof sc);
        fprintf(f, "        group_%d:\n          weights: %s\n", group++, sc);
        if (p->tensors[i].act[0] && qs_plan_llmc_act_scheme(p->tensors[i].act, sc, sizeof sc))
            fprintf(f, "          input_activations: %s\n", sc);
        fprintf(f, "          targets:\n");
        scheme(p->tensors[i].format, sc, sizeof sc);
        for (int j = i; j < p->n_tensors; j++) {
            char sc2[160];
            if (done[j] || qs_format_is_float(p->tensors[j].format) || !hf_module_of(p->tensors[j].name, fused, mod, sizeof mod)) continue;
            scheme(p->tensors[j].format, sc2, sizeof sc2);
            if (strcmp(sc, sc2) || strcmp(p->tensors[i].act, p->tensors[j].act)) continue;
            fprintf(f, "            - 're:^");
            put_escaped(f, mod);
            fprintf(f, "$'\n");
            done[j] = 1;
        }
    }
    free(done);
    return qs_output_commit(o, err);
}
