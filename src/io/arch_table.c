/* The architecture table (see arch.h). Facts from each family's reference implementation
 * (llama.cpp's src/models/<name>.cpp and Hugging Face's modeling_<name>.py): where the norms
 * sit, which activation, which RoPE pairing, what is scaled. */
#include "io/arch.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "io/model.h"

static const qs_arch_desc TABLE[] = {
    /* name, rope, act, qk_norm, post_norms, embed_scale, swa_period, rope_base_swa, fused,
     * gguf_swa, moe (biases on
     * q, k, v are read wherever a file has them, as llama.cpp does; Hugging Face's names for the
     * families are in hf_config.c) */
    {"llama", QS_ROPE_NORM, QS_ACT_SILU, 0, 0, 0, 0, 0.0f, 0, 0, 0},
    /* Qwen2 / Qwen2.5: llama with biases on q, k, v and RoPE on halves */
    {"qwen2", QS_ROPE_NEOX, QS_ACT_SILU, 0, 0, 0, 0, 0.0f, 0, 0, 0},
    /* Qwen3: RMSNorm over each head of q and k before RoPE, no biases */
    {"qwen3", QS_ROPE_NEOX, QS_ACT_SILU, 1, 0, 0, 0, 0.0f, 0, 0, 0},
    /* Gemma 3: (1 + w) RMSNorms, stored in GGUF with the 1 already added; 5 sliding-window layers
     * (RoPE base 10,000) for every global one (the file's rope.freq_base) */
    {"gemma3", QS_ROPE_NEOX, QS_ACT_GELU_TANH, 1, 1, 1, 6, 10000.0f, 0, 1, 0},
    /* Phi-3 / Phi-4: llama with q, k, v fused and gate | up stacked; its sliding window (Phi-3
     * mini's 2047) is in the GGUF but llama.cpp does not apply it */
    {"phi3", QS_ROPE_NEOX, QS_ACT_SILU, 0, 0, 0, 0, 0.0f, 1, 2, 0},
    /* Qwen3 MoE: qwen3's attention, every FFN a router over stacked SwiGLU experts (top-k of the
     * softmax, renormalized) */
    {"qwen3moe", QS_ROPE_NEOX, QS_ACT_SILU, 1, 0, 0, 0, 0.0f, 0, 0, 1},
};

const qs_arch_desc *qs_arch_desc_find(const char *name) {
    for (size_t i = 0; name && i < sizeof TABLE / sizeof TABLE[0]; i++)
        if (!strcmp(TABLE[i].name, name)) return &TABLE[i];
    return NULL;
}

const char *qs_arch_supported_list(void) { return "llama, qwen2, qwen3, gemma3, phi3, qwen3moe"; }

int qs_model_set_family(qs_model *m, const char *arch_name, qs_error *err) {
    const qs_arch_desc *d = qs_arch_desc_find(arch_name);
    if (!d)
        return qs_errorf(err, QS_ERR_INPUT, "%s: architecture '%s' is not supported (qsense reads: %s)", m->path, arch_name,
                         qs_arch_supported_list());
    qs_arch *a = &m->arch;
    snprintf(a->arch, sizeof a->arch, "%s", d->name);
    a->rope_type = d->rope_type;
    a->ffn_act = d->ffn_act;
    a->qk_norm = d->qk_norm;
    a->post_norms = d->post_norms;
    a->embed_scale = 1.0f; /* sqrt(dim) is set once dim is known: qs_model_finish_family */
    a->attn_scale = 0.0f;  /* 0: 1/sqrt(head_dim), resolved once head_dim is known */
    a->logit_softcap = 0.0f;
    a->rope_scale = 1.0f;
    a->rope_freqs = NULL;
    a->n_swa = 0;
    a->rope_base_swa = d->rope_base_swa;
    a->swa_layers = NULL;
    a->n_expert = a->n_expert_used = a->expert_ff = 0;
    a->expert_norm = d->moe;
    return 0;
}

int qs_model_finish_family(qs_model *m, int swa_period, qs_error *err) {
    qs_arch *a = &m->arch;
    const qs_arch_desc *d = qs_arch_desc_find(a->arch);
    if (!d) return qs_errorf(err, QS_ERR_INTERNAL, "%s: no family set", m->path);
    if (d->embed_scale) a->embed_scale = sqrtf((float)a->dim);
    if (a->attn_scale == 0.0f && a->head_dim > 0) a->attn_scale = 1.0f / sqrtf((float)a->head_dim);
    if (a->n_swa > 0 && a->n_layers > 0 && !a->swa_layers) {
        unsigned char *f = qs_model_alloc(m, (size_t)a->n_layers);
        if (!f) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
        if (swa_period < 0) swa_period = d->swa_period;
        /* llama.cpp's pattern: in each period the last layer is global, the others slide */
        for (int l = 0; l < a->n_layers; l++) f[l] = swa_period == 0 || (l % swa_period) < swa_period - 1;
        a->swa_layers = f;
    }
    return 0;
}
