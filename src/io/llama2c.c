/* llama2.c checkpoints -> qs_model.
 *  legacy (run.c):  7 x int32 header {dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 *                   vocab_size (negative = separate classifier), seq_len}, then float32 weights
 *                   in run.c's order, including the unused RoPE tables.
 *  version 1/2 (export.py, magic "ak42"): 256-byte header {magic, version, 7 params,
 *                   u8 shared_classifier, [v2: int32 group_size]}, then the float32 norms, then
 *                   the matrices: float32 (v1) or int8 + one float32 scale per group (v2, runq.c).
 * The tokenizer is a separate tokenizer.bin (found beside the model unless --tokenizer). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_dtype.h"
#include "core/qs_path.h"
#include "io/model.h"

#define AK42 0x616b3432u

typedef struct {
    const uint8_t *base;
    uint64_t size, pos;
    const char *path;
    qs_model *m;
    int version, group;
    qs_error *err;
} reader;

static int take(reader *r, uint64_t n, const char *what, const uint8_t **p) {
    if (n > r->size - r->pos)
        return qs_errorf(r->err, QS_ERR_INPUT,
                         "%s: truncated at offset %llu: expected %s (%llu more bytes), file has %llu bytes", r->path,
                         (unsigned long long)r->pos, what, (unsigned long long)n, (unsigned long long)r->size);
    *p = r->base + r->pos;
    r->pos += n;
    return 0;
}

/* Adds one tensor of ne0 x ne1 elements (ne1 == 0: a vector) at the reader's position. */
static int add(reader *r, const char *name, int64_t ne0, int64_t ne1, int quantized) {
    qs_tensor *t = qs_model_add_tensor(r->m, name);
    if (!t) return qs_errorf(r->err, QS_ERR_INTERNAL, "out of memory");
    t->n_dims = ne1 ? 2 : 1;
    t->ne[0] = ne0;
    t->ne[1] = ne1 ? ne1 : 1;
    uint64_t n = (uint64_t)ne0 * (uint64_t)t->ne[1];
    t->file_offset = r->pos;
    if (!quantized) {
        t->type = QS_DT_F32;
        t->nbytes = n * 4;
        return take(r, t->nbytes, name, &t->data);
    }
    if (n % (uint64_t)r->group)
        return qs_errorf(r->err, QS_ERR_INPUT, "%s: tensor %s has %llu elements, not a multiple of the group size %d",
                         r->path, name, (unsigned long long)n, r->group);
    const uint8_t *sp = NULL;
    t->type = QS_DT_I8_GROUPED;
    t->group = r->group;
    t->nbytes = n + n / (uint64_t)r->group * 4;
    if (take(r, n, name, &t->data) || take(r, n / (uint64_t)r->group * 4, "group scales", &sp)) return QS_ERR_INPUT;
    /* scales may sit at any byte offset: copy them to aligned memory */
    float *s = qs_model_alloc(r->m, n / (uint64_t)r->group * 4);
    if (!s) return qs_errorf(r->err, QS_ERR_INTERNAL, "out of memory");
    memcpy(s, sp, n / (uint64_t)r->group * 4);
    t->scales = s;
    return 0;
}

static int add_layers(reader *r, const char *kind, int64_t ne0, int64_t ne1, int quantized) {
    char name[96];
    for (int l = 0; l < r->m->arch.n_layers; l++) {
        snprintf(name, sizeof name, "blk.%d.%s.weight", l, kind);
        if (add(r, name, ne0, ne1, quantized)) return QS_ERR_INPUT;
    }
    return 0;
}

int qs_model_load_llama2c(qs_model *m, const char *path, qs_error *err) {
    const qs_map *map;
    int rc = qs_model_add_map(m, path, &map, err);
    if (rc) return rc;
    reader r = {map->data, map->size, 0, path, m, 0, 0, err};
    if (map->size < 28)
        return qs_errorf(err, QS_ERR_INPUT, "%s: %zu bytes is too short for a GGUF or llama2.c model (header needs 28)",
                         path, map->size);
    int32_t h[9];
    memcpy(h, map->data, 28);
    int shared = 1, seq_len;
    uint32_t magic;
    memcpy(&magic, map->data, 4);
    int32_t *p = h;
    if (magic == AK42) {
        if (map->size < 256)
            return qs_errorf(err, QS_ERR_INPUT, "%s: truncated: a llama2.c v1/v2 header needs 256 bytes, file has %zu",
                             path, map->size);
        memcpy(h, map->data, 36);
        r.version = h[1];
        if (r.version != 1 && r.version != 2)
            return qs_errorf(err, QS_ERR_INPUT, "%s: offset 4: llama2.c export version %d is not supported (1 or 2)",
                             path, r.version);
        p = h + 2;
        shared = map->data[36];
        if (r.version == 2) {
            memcpy(&r.group, map->data + 37, 4);
            if (r.group <= 0 || r.group > (1 << 20))
                return qs_errorf(err, QS_ERR_INPUT, "%s: offset 37: group size %d is not plausible", path, r.group);
        }
        r.pos = 256;
        snprintf(m->format, sizeof m->format, "llama2c-v%d", r.version);
    } else {
        r.pos = 28;
        snprintf(m->format, sizeof m->format, "llama2c");
    }
    qs_arch *a = &m->arch;
    int frc = qs_model_set_family(m, "llama", err);
    if (frc) return frc;
    a->dim = p[0];
    a->hidden_dim = p[1];
    a->n_layers = p[2];
    a->n_heads = p[3];
    a->n_kv_heads = p[4];
    a->n_vocab = p[5];
    seq_len = p[6];
    if (r.version == 0) {
        shared = a->n_vocab > 0;
        if (a->n_vocab < 0 && a->n_vocab > -(1 << 24)) a->n_vocab = -a->n_vocab;
    }
    a->ctx_train = seq_len;
    a->tied_output = shared != 0;
    a->norm_eps = 1e-5f;     /* run.c hard-codes 1e-5 */
    a->rope_base = 10000.0f; /* and 10000 */
    a->rope_type = QS_ROPE_NORM;
    if (a->dim <= 0 || a->dim > (1 << 20) || a->hidden_dim <= 0 || a->hidden_dim > (1 << 22) || a->n_layers <= 0 ||
        a->n_layers > 4096 || a->n_heads <= 0 || a->n_heads > a->dim || a->n_kv_heads <= 0 ||
        a->n_kv_heads > a->n_heads || a->n_vocab <= 0 || a->n_vocab > (1 << 24) || seq_len <= 0 ||
        seq_len > (1 << 24) || a->dim % a->n_heads)
        return qs_errorf(err, QS_ERR_INPUT,
                         "%s: not a GGUF file, and not a plausible llama2.c checkpoint: header reads dim %d, hidden %d, "
                         "layers %d, heads %d, kv heads %d, vocab %d, seq_len %d",
                         path, a->dim, a->hidden_dim, a->n_layers, a->n_heads, a->n_kv_heads, p[5], seq_len);
    a->head_dim = a->dim / a->n_heads;
    const int64_t dim = a->dim, hid = a->hidden_dim, kv = (int64_t)a->n_kv_heads * a->head_dim, L = a->n_layers;
    qs_model_add_meta(m, "llama2c.format", "%s", m->format);
    qs_model_add_meta(m, "llama2c.dim", "%d", a->dim);
    qs_model_add_meta(m, "llama2c.hidden_dim", "%d", a->hidden_dim);
    qs_model_add_meta(m, "llama2c.n_layers", "%d", a->n_layers);
    qs_model_add_meta(m, "llama2c.n_heads", "%d", a->n_heads);
    qs_model_add_meta(m, "llama2c.n_kv_heads", "%d", a->n_kv_heads);
    qs_model_add_meta(m, "llama2c.vocab_size", "%d", a->n_vocab);
    qs_model_add_meta(m, "llama2c.seq_len", "%d", seq_len);
    qs_model_add_meta(m, "llama2c.shared_classifier", "%s", shared ? "true" : "false");
    if (r.version == 2) qs_model_add_meta(m, "llama2c.group_size", "%d", r.group);
    (void)L;
    if (r.version == 0) {
        if (add(&r, "token_embd.weight", dim, a->n_vocab, 0) || add_layers(&r, "attn_norm", dim, 0, 0) ||
            add_layers(&r, "attn_q", dim, dim, 0) || add_layers(&r, "attn_k", dim, kv, 0) ||
            add_layers(&r, "attn_v", dim, kv, 0) || add_layers(&r, "attn_output", dim, dim, 0) ||
            add_layers(&r, "ffn_norm", dim, 0, 0) || add_layers(&r, "ffn_gate", dim, hid, 0) ||
            add_layers(&r, "ffn_down", hid, dim, 0) || add_layers(&r, "ffn_up", dim, hid, 0) ||
            add(&r, "output_norm.weight", dim, 0, 0))
            return QS_ERR_INPUT;
        const uint8_t *skip; /* freq_cis_real and freq_cis_imag: unused (we compute RoPE) */
        if (take(&r, (uint64_t)seq_len * (uint64_t)(a->head_dim / 2) * 4 * 2, "the RoPE tables", &skip))
            return QS_ERR_INPUT;
        if (!shared && add(&r, "output.weight", dim, a->n_vocab, 0)) return QS_ERR_INPUT;
    } else {
        int q = r.version == 2;
        if (add_layers(&r, "attn_norm", dim, 0, 0) || add_layers(&r, "ffn_norm", dim, 0, 0) ||
            add(&r, "output_norm.weight", dim, 0, 0) || add(&r, "token_embd.weight", dim, a->n_vocab, q) ||
            add_layers(&r, "attn_q", dim, dim, q) || add_layers(&r, "attn_k", dim, kv, q) ||
            add_layers(&r, "attn_v", dim, kv, q) || add_layers(&r, "attn_output", dim, dim, q) ||
            add_layers(&r, "ffn_gate", dim, hid, q) || add_layers(&r, "ffn_down", hid, dim, q) ||
            add_layers(&r, "ffn_up", dim, hid, q))
            return QS_ERR_INPUT;
        if (!shared && add(&r, "output.weight", dim, a->n_vocab, q)) return QS_ERR_INPUT;
    }
    if (r.pos != r.size)
        return qs_errorf(err, QS_ERR_INPUT,
                         "%s: the header describes %llu bytes of weights but the file has %llu bytes: wrong header or "
                         "not a llama2.c checkpoint",
                         path, (unsigned long long)r.pos, (unsigned long long)r.size);
    char *dir = qs_path_dirname(path);
    m->tokenizer_path = qs_path_join(dir, "tokenizer.bin");
    free(dir);
    return 0;
}
