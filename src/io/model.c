/* qs_model: opening a model file (format detection, then the loader for it), the shape
 * check against the family (io/arch.h) and the fingerprint (see model.h). The loaders live in model_gguf.c, llama2c.c and
 * safetensors.c; the tensor table they fill, in model_table.c. */
#include "io/model.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/qs_dtype.h"
#include "core/qs_path.h"
#include "core/qs_sha256.h"
#include "io/arch.h"
#include "io/gguf.h"

/* 1 if path is a regular file starting with GGUF's magic; never blocks (a FIFO is not one) */
static int is_gguf(const char *path) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return 0;
    struct stat st;
    char magic[4] = {0};
    int ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && read(fd, magic, 4) == 4 && memcmp(magic, "GGUF", 4) == 0;
    close(fd);
    return ok;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

int qs_model_open(qs_model **out, const char *path, const qs_model_options *opt, qs_error *err) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0)
        return qs_errorf(err, QS_ERR_INPUT, "%s: %s", path, errno == ELOOP ? "a loop of symbolic links" : strerror(errno));
    qs_model *m = calloc(1, sizeof *m);
    if (!m) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    m->path = strdup(path);
    int rc;
    if (qs_path_is_dir(path) || ends_with(path, ".safetensors") || ends_with(path, ".safetensors.index.json"))
        rc = qs_model_load_safetensors(m, path, err);
    else if (is_gguf(path))
        rc = qs_model_load_gguf(m, path, err);
    else
        rc = qs_model_load_llama2c(m, path, err);
    if (rc == 0 && opt && opt->tokenizer_path) {
        free(m->tokenizer_path);
        m->tokenizer_path = strdup(opt->tokenizer_path);
    }
    if (rc == 0) rc = qs_model_finish_family(m, -1, err);
    if (rc == 0) rc = qs_model_validate(m, err);
    if (rc) {
        qs_model_close(m);
        return rc;
    }
    *out = m;
    return 0;
}

void qs_model_close(qs_model *m) {
    if (!m) return;
    if (m->gguf) qs_gguf_close(m->gguf);
    for (int i = 0; i < m->n_maps; i++) {
        qs_map_close(m->maps[i]);
        free(m->maps[i]);
    }
    free(m->maps);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->tensors);
    free(m->meta);
    free(m->tokenizer_path);
    free(m->path);
    free(m);
}

static int check_tensor(const qs_model *m, const char *name, int64_t ne0, int64_t ne1, qs_error *err) {
    const qs_tensor *t = qs_model_find(m, name);
    if (!t) return qs_errorf(err, QS_ERR_INPUT, "%s: tensor '%s' is missing", m->path, name);
    int64_t want_rows = ne1 ? ne1 : 1;
    int n_dims = ne1 ? 2 : 1;
    int ok = t->ne[0] == ne0 && t->ne[1] == want_rows && t->ne[2] == 1 && t->ne[3] == 1 &&
             (t->n_dims == n_dims || (n_dims == 1 && t->n_dims == 1));
    if (!ok)
        return qs_errorf(err, QS_ERR_INPUT, "%s: tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]",
                         m->path, name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                         (long long)t->ne[3], (long long)ne0, (long long)want_rows);
    return 0;
}

/* 1 for the names the engine reads in this layout (fused: Phi-3's attn_qkv and stacked ffn_up) */
static int known_tensor(const char *name, int n_layers, int fused, int moe) {
    static const char *const global[] = {"token_embd.weight", "output_norm.weight", "output.weight", "rope_freqs.weight"};
    static const char *const per_layer[] = {
        "attn_norm.weight", "attn_q.weight",   "attn_k.weight",       "attn_v.weight",      "attn_output.weight",
        "ffn_norm.weight",  "ffn_gate.weight", "ffn_up.weight",       "ffn_down.weight",    "attn_q_norm.weight",
        "attn_k_norm.weight", "post_attention_norm.weight", "post_ffw_norm.weight", "attn_q.bias", "attn_k.bias",
        "attn_v.bias", "attn_qkv.weight", "ffn_gate_inp.weight", "ffn_gate_exps.weight", "ffn_up_exps.weight",
        "ffn_down_exps.weight",
    };
    for (size_t i = 0; i < sizeof global / sizeof global[0]; i++)
        if (!strcmp(name, global[i])) return 1;
    int layer, n = 0;
    if (sscanf(name, "blk.%d.%n", &layer, &n) != 1 || n == 0 || layer < 0 || layer >= n_layers) return 0;
    const char *kind = name + n;
    if (fused ? (!strncmp(kind, "attn_q.", 7) || !strncmp(kind, "attn_k.", 7) || !strncmp(kind, "attn_v.", 7) ||
                 !strcmp(kind, "ffn_gate.weight"))
              : !strcmp(kind, "attn_qkv.weight"))
        return 0;
    if (moe ? (!strcmp(kind, "ffn_gate.weight") || !strcmp(kind, "ffn_up.weight") || !strcmp(kind, "ffn_down.weight"))
            : !strncmp(kind, "ffn_gate_inp.", 13) || strstr(kind, "_exps."))
        return 0;
    for (size_t i = 0; i < sizeof per_layer / sizeof per_layer[0]; i++)
        if (!strcmp(kind, per_layer[i])) return 1;
    return 0;
}

/* a stacked expert tensor: ne = [ne0, ne1, n_expert] */
static int check_stacked(const qs_model *m, const char *name, int64_t ne0, int64_t ne1, int64_t ne2, qs_error *err) {
    const qs_tensor *t = qs_model_find(m, name);
    if (!t) return qs_errorf(err, QS_ERR_INPUT, "%s: tensor '%s' is missing", m->path, name);
    if (t->n_dims != 3 || t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != ne2 || t->ne[3] != 1)
        return qs_errorf(err, QS_ERR_INPUT, "%s: tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld, %lld]",
                         m->path, name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                         (long long)ne0, (long long)ne1, (long long)ne2);
    return 0;
}

int qs_model_validate(const qs_model *m, qs_error *err) {
    const qs_arch *a = &m->arch;
    if (!qs_arch_desc_find(a->arch))
        return qs_errorf(err, QS_ERR_INPUT, "%s: architecture '%s' is not supported (qsense reads: %s)", m->path, a->arch,
                         qs_arch_supported_list());
    if (a->dim <= 0 || a->n_layers <= 0 || a->n_heads <= 0 || a->n_kv_heads <= 0 || a->hidden_dim <= 0 ||
        a->n_vocab <= 0 || a->dim > (1 << 20) || a->hidden_dim > (1 << 22) || a->n_layers > 4096 ||
        a->n_vocab > (1 << 24) || a->n_heads > a->dim || a->head_dim <= 0 || a->head_dim > 4096)
        return qs_errorf(err, QS_ERR_INPUT,
                         "%s: implausible hyper-parameters (dim %d, hidden %d, layers %d, heads %d, kv heads %d, head dim %d, "
                         "vocab %d)",
                         m->path, a->dim, a->hidden_dim, a->n_layers, a->n_heads, a->n_kv_heads, a->head_dim, a->n_vocab);
    if (a->n_heads % a->n_kv_heads || (a->head_dim % 2))
        return qs_errorf(err, QS_ERR_INPUT, "%s: %d heads, %d kv heads and head dim %d do not divide evenly", m->path,
                         a->n_heads, a->n_kv_heads, a->head_dim);
    if (!(a->norm_eps > 0 && a->norm_eps < 1) || !(a->rope_base > 1) || (a->n_swa && !(a->rope_base_swa > 1)))
        return qs_errorf(err, QS_ERR_INPUT, "%s: implausible norm epsilon %g or rope base %g / %g", m->path, a->norm_eps,
                         a->rope_base, a->rope_base_swa);
    if (a->n_swa < 0 || !(a->logit_softcap >= 0 && a->logit_softcap < 1e6f))
        return qs_errorf(err, QS_ERR_INPUT, "%s: implausible sliding window %d or logit soft-cap %g", m->path, a->n_swa,
                         a->logit_softcap);
    int kv = a->n_kv_heads * a->head_dim, qd = a->n_heads * a->head_dim;
    const int fused = qs_arch_desc_find(a->arch)->fused, moe = qs_arch_desc_find(a->arch)->moe || a->n_expert > 0;
    if (moe && !(a->n_expert >= 1 && a->n_expert <= 4096 && a->n_expert_used >= 1 && a->n_expert_used <= a->n_expert &&
                 a->expert_ff >= 1 && a->expert_ff <= (1 << 22)))
        return qs_errorf(err, QS_ERR_INPUT, "%s: implausible experts: %d, %d used, feed-forward length %d", m->path, a->n_expert,
                         a->n_expert_used, a->expert_ff);
    char name[96];
    if (check_tensor(m, "token_embd.weight", a->dim, a->n_vocab, err)) return QS_ERR_INPUT;
    if (check_tensor(m, "output_norm.weight", a->dim, 0, err)) return QS_ERR_INPUT;
    if (!a->tied_output && check_tensor(m, "output.weight", a->dim, a->n_vocab, err)) return QS_ERR_INPUT;
    for (int l = 0; l < a->n_layers; l++) {
        struct { const char *n; int64_t ne0, ne1; int needed; } want[] = {
            {"attn_norm.weight", a->dim, 0, 1},   {"attn_q.weight", a->dim, qd, !fused},
            {"attn_k.weight", a->dim, kv, !fused}, {"attn_v.weight", a->dim, kv, !fused},
            {"attn_qkv.weight", a->dim, qd + 2 * kv, fused},
            {"attn_output.weight", qd, a->dim, 1}, {"ffn_norm.weight", a->dim, 0, 1},
            {"ffn_gate.weight", a->dim, a->hidden_dim, !fused && !moe},
            {"ffn_up.weight", a->dim, (fused ? 2 : 1) * a->hidden_dim, !moe},
            {"ffn_down.weight", a->hidden_dim, a->dim, !moe}, {"ffn_gate_inp.weight", a->dim, a->n_expert, moe},
            {"attn_q_norm.weight", a->head_dim, 0, a->qk_norm}, {"attn_k_norm.weight", a->head_dim, 0, a->qk_norm},
            {"post_attention_norm.weight", a->dim, 0, a->post_norms}, {"post_ffw_norm.weight", a->dim, 0, a->post_norms},
            /* optional in every family, as in llama.cpp: checked when present */
            {"attn_q.bias", qd, 0, -1}, {"attn_k.bias", kv, 0, -1}, {"attn_v.bias", kv, 0, -1},
        };
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            snprintf(name, sizeof name, "blk.%d.%s", l, want[i].n);
            if (!want[i].needed || (want[i].needed < 0 && !qs_model_find(m, name))) continue;
            if (check_tensor(m, name, want[i].ne0, want[i].ne1, err)) return QS_ERR_INPUT;
        }
        const char *exps[] = {"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"};
        for (int i = 0; moe && i < 3; i++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, exps[i]);
            if (check_stacked(m, name, i == 2 ? a->expert_ff : a->dim, i == 2 ? a->dim : a->expert_ff, a->n_expert, err))
                return QS_ERR_INPUT;
        }
    }
    /* a tensor the forward pass would not use is refused rather than silently left out: a model
     * with it (a bias on o, attention sinks, a LoRA) would be measured as another model */
    for (int i = 0; i < m->n_tensors; i++)
        if (!known_tensor(m->tensors[i].name, a->n_layers, fused, moe)) {
            const char *nm = m->tensors[i].name, *dot = strrchr(nm, '.');
            if (dot && !strcmp(dot, ".bias"))
                return qs_errorf(err, QS_ERR_INPUT, "%s: tensor '%s': qsense adds biases on q, k and v only", m->path, nm);
            return qs_errorf(err, QS_ERR_INPUT, "%s: tensor '%s' is not part of a %s model as qsense runs it", m->path, nm,
                             a->arch);
        }
    return 0;
}

int qs_model_fingerprint(const qs_model *m, char out[65], qs_error *err) {
    qs_sha256 s;
    qs_sha256_init(&s);
    if (m->gguf) {
        qs_map map;
        int rc = qs_map_open(&map, m->path, err);
        if (rc) return rc;
        qs_sha256_update(&s, map.data, map.size);
        qs_map_close(&map);
    }
    for (int i = 0; i < m->n_maps; i++) qs_sha256_update(&s, m->maps[i]->data, m->maps[i]->size);
    uint8_t d[32];
    qs_sha256_final(&s, d);
    for (int i = 0; i < 32; i++) sprintf(out + 2 * i, "%02x", d[i]);
    return 0;
}
