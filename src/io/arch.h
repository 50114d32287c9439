/* Architecture descriptions: what makes one decoder family differ from another, in one table
 * that the loaders, the engine, the validator and the report read, so that adding a family is
 * one entry here plus the kernels it really needs (never `if (arch == ...)` across the tree).
 * Every family is a stack of pre-norm blocks with the same seven linears (q, k, v, output,
 * gate, up, down; or, fused, qkv, output, gate|up, down; or a router and stacked experts for
 * the FFN) and an output head; the entries say what is around them. */
#ifndef QS_ARCH_H
#define QS_ARCH_H

typedef enum {
    QS_ACT_SILU = 0,      /* SwiGLU: silu(gate) * up (llama, qwen, mistral) */
    QS_ACT_GELU_TANH = 1, /* GeGLU with the tanh approximation of GELU (gemma) */
} qs_ffn_act;

typedef struct {
    const char *name;        /* general.architecture in GGUF */
    int rope_type;           /* qs_rope_type as stored in the file */
    int ffn_act;             /* qs_ffn_act */
    int qk_norm;             /* RMSNorm over each head of q and k before RoPE (attn_q_norm, attn_k_norm) */
    int post_norms;          /* RMSNorm of the attention and FFN outputs before each residual add */
    int embed_scale;         /* token embeddings multiplied by sqrt(dim) */
    int swa_period;          /* with a sliding window: every swa_period-th layer is global (0: all sliding) */
    float rope_base_swa;     /* RoPE base of the sliding-window layers unless the file says */
    int fused;               /* q, k, v in one attn_qkv and gate | up stacked in ffn_up (Phi-3) */
    int gguf_swa;            /* what a GGUF's attention.sliding_window means to llama.cpp: 0 none is
                              * written, 1 the sliding layers' window (with their pattern and RoPE
                              * base), 2 written but not applied (Phi-3's, which llama.cpp disables) */
    int moe;                 /* a router and stacked experts (ffn_gate_inp, ffn_{gate,up,down}_exps)
                              * instead of the dense FFN, top-k weights renormalized (qwen3moe) */
} qs_arch_desc;

/* The description of a GGUF architecture name, or NULL when qsense does not know it. */
const qs_arch_desc *qs_arch_desc_find(const char *name);
/* "llama, gemma3, ..." for messages */
const char *qs_arch_supported_list(void);

#endif
