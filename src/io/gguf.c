/* qs_gguf: GGUF v2/v3 reader (see gguf.h). The file layout is: magic "GGUF", u32 version,
 * u64 n_tensors, u64 n_kv, the key/value pairs, the tensor infos, padding to the alignment,
 * then the tensor data. Every read goes through a bounds-checked cursor. */
#include "io/gguf.h"

#include <stdlib.h>
#include <string.h>

#include "core/qs_dtype.h"
#include "core/qs_strmap.h"

#define MAX_DIMS 4
#define MAX_NESTING 8

typedef struct {
    const uint8_t *base;
    uint64_t size, pos;
    const char *path;
    qs_error *err;
} cursor;

static int need(cursor *c, uint64_t n, const char *what) {
    if (n > c->size - c->pos)
        return qs_errorf(c->err, QS_ERR_INPUT,
                         "%s: truncated at offset %llu: expected %s (%llu bytes), file has %llu bytes",
                         c->path, (unsigned long long)c->pos, what, (unsigned long long)n,
                         (unsigned long long)c->size);
    return 0;
}

static int rd_u32(cursor *c, uint32_t *v, const char *what) {
    if (need(c, 4, what)) return QS_ERR_INPUT;
    memcpy(v, c->base + c->pos, 4);
    c->pos += 4;
    return 0;
}

static int rd_u64(cursor *c, uint64_t *v, const char *what) {
    if (need(c, 8, what)) return QS_ERR_INPUT;
    memcpy(v, c->base + c->pos, 8);
    c->pos += 8;
    return 0;
}

static int rd_str(cursor *c, qs_gguf_str *s, const char *what) {
    uint64_t start = c->pos;
    if (rd_u64(c, &s->len, what)) return QS_ERR_INPUT;
    if (s->len > c->size - c->pos)
        return qs_errorf(c->err, QS_ERR_INPUT,
                         "%s: %s at offset %llu has length %llu, past the end of the file (%llu bytes)",
                         c->path, what, (unsigned long long)start, (unsigned long long)s->len,
                         (unsigned long long)c->size);
    s->ptr = (const char *)c->base + c->pos;
    c->pos += s->len;
    return 0;
}

int qs_gguf_scalar_size(int t) {
    switch (t) {
    case QS_GGUF_UINT8: case QS_GGUF_INT8: case QS_GGUF_BOOL: return 1;
    case QS_GGUF_UINT16: case QS_GGUF_INT16: return 2;
    case QS_GGUF_UINT32: case QS_GGUF_INT32: case QS_GGUF_FLOAT32: return 4;
    case QS_GGUF_UINT64: case QS_GGUF_INT64: case QS_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

const char *qs_gguf_type_name(int t) {
    static const char *names[] = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
                                  "bool", "string", "array", "uint64", "int64", "float64"};
    return (t >= 0 && t < QS_GGUF_TYPE_COUNT) ? names[t] : "unknown";
}

/* Skips (validating) one value of type t; used for nested arrays, whose elements we don't index. */
static int skip_value(cursor *c, int t, int depth, const char *key) {
    int sz = qs_gguf_scalar_size(t);
    if (sz) return need(c, (uint64_t)sz, "a value") ? QS_ERR_INPUT : (c->pos += (uint64_t)sz, 0);
    if (t == QS_GGUF_STRING) {
        qs_gguf_str s;
        return rd_str(c, &s, "a string");
    }
    if (t == QS_GGUF_ARRAY) {
        if (depth >= MAX_NESTING)
            return qs_errorf(c->err, QS_ERR_INPUT, "%s: key '%s': arrays nested deeper than %d at offset %llu",
                             c->path, key, MAX_NESTING, (unsigned long long)c->pos);
        uint32_t et;
        uint64_t n;
        if (rd_u32(c, &et, "an array element type") || rd_u64(c, &n, "an array length")) return QS_ERR_INPUT;
        if (et >= QS_GGUF_TYPE_COUNT)
            return qs_errorf(c->err, QS_ERR_INPUT, "%s: key '%s': unknown array element type %u at offset %llu",
                             c->path, key, et, (unsigned long long)(c->pos - 12));
        int esz = qs_gguf_scalar_size((int)et);
        if (esz) {
            if (n > (c->size - c->pos) / (uint64_t)esz)
                return qs_errorf(c->err, QS_ERR_INPUT,
                                 "%s: key '%s': array of %llu %s at offset %llu runs past the end of the file",
                                 c->path, key, (unsigned long long)n, qs_gguf_type_name((int)et),
                                 (unsigned long long)c->pos);
            c->pos += n * (uint64_t)esz;
            return 0;
        }
        /* each string/array element takes at least 8 bytes: reject absurd counts up front */
        if (n > (c->size - c->pos) / 8)
            return qs_errorf(c->err, QS_ERR_INPUT,
                             "%s: key '%s': array of %llu elements at offset %llu cannot fit in the file",
                             c->path, key, (unsigned long long)n, (unsigned long long)c->pos);
        for (uint64_t i = 0; i < n; i++)
            if (skip_value(c, (int)et, depth + 1, key)) return QS_ERR_INPUT;
        return 0;
    }
    return qs_errorf(c->err, QS_ERR_INPUT, "%s: key '%s': unknown value type %d at offset %llu", c->path, key, t,
                     (unsigned long long)c->pos);
}

static void key_copy(char *buf, size_t cap, qs_gguf_str s) {
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    memcpy(buf, s.ptr, n);
    buf[n] = 0;
}

static int read_kv(cursor *c, qs_gguf_kv *kv) {
    char key[256];
    if (rd_str(c, &kv->key, "a metadata key")) return QS_ERR_INPUT;
    key_copy(key, sizeof key, kv->key);
    uint32_t t;
    if (rd_u32(c, &t, "a metadata value type")) return QS_ERR_INPUT;
    kv->type = (int)t;
    kv->offset = c->pos;
    if (t >= QS_GGUF_TYPE_COUNT)
        return qs_errorf(c->err, QS_ERR_INPUT, "%s: key '%s': unknown value type %u at offset %llu", c->path, key,
                         t, (unsigned long long)(c->pos - 4));
    const uint8_t *p = c->base + c->pos;
    int sz = qs_gguf_scalar_size((int)t);
    if (sz) {
        if (need(c, (uint64_t)sz, "a metadata value")) return QS_ERR_INPUT;
        switch (t) {
        case QS_GGUF_UINT8: case QS_GGUF_BOOL: kv->v.u = p[0]; break;
        case QS_GGUF_INT8: kv->v.i = (int8_t)p[0]; break;
        case QS_GGUF_UINT16: { uint16_t x; memcpy(&x, p, 2); kv->v.u = x; break; }
        case QS_GGUF_INT16: { int16_t x; memcpy(&x, p, 2); kv->v.i = x; break; }
        case QS_GGUF_UINT32: { uint32_t x; memcpy(&x, p, 4); kv->v.u = x; break; }
        case QS_GGUF_INT32: { int32_t x; memcpy(&x, p, 4); kv->v.i = x; break; }
        case QS_GGUF_FLOAT32: { float x; memcpy(&x, p, 4); kv->v.f = x; break; }
        case QS_GGUF_UINT64: memcpy(&kv->v.u, p, 8); break;
        case QS_GGUF_INT64: memcpy(&kv->v.i, p, 8); break;
        case QS_GGUF_FLOAT64: memcpy(&kv->v.f, p, 8); break;
        }
        c->pos += (uint64_t)sz;
        return 0;
    }
    if (t == QS_GGUF_STRING) return rd_str(c, &kv->str, "a string value");
    /* array */
    uint32_t et;
    if (rd_u32(c, &et, "an array element type") || rd_u64(c, &kv->arr_n, "an array length")) return QS_ERR_INPUT;
    kv->arr_type = (int)et;
    kv->arr_data = c->base + c->pos;
    if (et == QS_GGUF_STRING) {
        if (kv->arr_n > (c->size - c->pos) / 8)
            return qs_errorf(c->err, QS_ERR_INPUT,
                             "%s: key '%s': array of %llu strings at offset %llu cannot fit in the file", c->path,
                             key, (unsigned long long)kv->arr_n, (unsigned long long)c->pos);
        kv->arr_strs = malloc(sizeof(qs_gguf_str) * (kv->arr_n ? kv->arr_n : 1));
        if (!kv->arr_strs) return qs_errorf(c->err, QS_ERR_INTERNAL, "%s: out of memory for key '%s'", c->path, key);
        for (uint64_t i = 0; i < kv->arr_n; i++)
            if (rd_str(c, &kv->arr_strs[i], "a string array element")) return QS_ERR_INPUT;
        return 0;
    }
    c->pos -= 12; /* let skip_value re-read the array header and validate everything */
    return skip_value(c, QS_GGUF_ARRAY, 0, key);
}

static int read_tensor_info(cursor *c, qs_gguf_tensor *t, uint64_t index) {
    char name[256];
    uint64_t start = c->pos;
    if (rd_str(c, &t->name, "a tensor name")) return QS_ERR_INPUT;
    key_copy(name, sizeof name, t->name);
    if (rd_u32(c, &t->n_dims, "a tensor's number of dimensions")) return QS_ERR_INPUT;
    if (t->n_dims < 1 || t->n_dims > MAX_DIMS)
        return qs_errorf(c->err, QS_ERR_INPUT, "%s: tensor %llu '%s' at offset %llu has %u dimensions, expected 1 to %d",
                         c->path, (unsigned long long)index, name, (unsigned long long)start, t->n_dims, MAX_DIMS);
    uint64_t numel = 1;
    for (int i = 0; i < MAX_DIMS; i++) t->ne[i] = 1;
    for (uint32_t i = 0; i < t->n_dims; i++) {
        uint64_t d;
        if (rd_u64(c, &d, "a tensor dimension")) return QS_ERR_INPUT;
        if (d == 0 || d > (uint64_t)INT64_MAX || numel > (uint64_t)INT64_MAX / d)
            return qs_errorf(c->err, QS_ERR_INPUT,
                             "%s: tensor '%s' at offset %llu: dimension %u is %llu; the element count must be "
                             "between 1 and 2^63",
                             c->path, name, (unsigned long long)start, i, (unsigned long long)d);
        t->ne[i] = (int64_t)d;
        numel *= d;
    }
    uint32_t type;
    if (rd_u32(c, &type, "a tensor type") || rd_u64(c, &t->offset, "a tensor data offset")) return QS_ERR_INPUT;
    t->type = (int)type;
    const qs_dtype_traits *tr = qs_dtype_get(t->type);
    if (!tr)
        return qs_errorf(c->err, QS_ERR_INPUT,
                         "%s: tensor '%s' has type %s (id %u), which qsense cannot read; supported: f32 f16 bf16 "
                         "q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k",
                         c->path, name, qs_dtype_name(t->type), type);
    if (t->ne[0] % tr->block_size)
        return qs_errorf(c->err, QS_ERR_INPUT,
                         "%s: tensor '%s': row length %lld is not a multiple of the %s block size %d", c->path, name,
                         (long long)t->ne[0], tr->name, tr->block_size);
    uint64_t blocks = numel / (uint64_t)tr->block_size;
    if (blocks > UINT64_MAX / (uint64_t)tr->type_size)
        return qs_errorf(c->err, QS_ERR_INPUT, "%s: tensor '%s': byte size overflows 64 bits", c->path, name);
    t->nbytes = blocks * (uint64_t)tr->type_size;
    return 0;
}

static void free_kvs(qs_gguf *g) {
    if (!g->kv) return;
    for (uint64_t i = 0; i < g->n_kv; i++) free(g->kv[i].arr_strs);
    free(g->kv);
}

void qs_gguf_close(qs_gguf *g) {
    if (!g) return;
    free_kvs(g);
    free(g->tensors);
    qs_map_close(&g->map);
    free(g);
}

static int parse(qs_gguf *g, const char *path, qs_error *err) {
    cursor c = {g->map.data, g->map.size, 0, path, err};
    uint32_t magic;
    if (rd_u32(&c, &magic, "the GGUF magic")) return QS_ERR_INPUT;
    if (memcmp(g->map.data, "GGUF", 4) != 0)
        return qs_errorf(err, QS_ERR_INPUT, "%s: not a GGUF file: offset 0 holds %02x %02x %02x %02x, expected 'GGUF'",
                         path, g->map.data[0], g->map.data[1], g->map.data[2], g->map.data[3]);
    if (rd_u32(&c, &g->version, "the GGUF version")) return QS_ERR_INPUT;
    if (g->version != 2 && g->version != 3) {
        if ((g->version & 0xffff) == 0 && g->version != 0)
            return qs_errorf(err, QS_ERR_INPUT, "%s: offset 4: version field %u looks big-endian; only little-endian GGUF is supported",
                             path, g->version);
        return qs_errorf(err, QS_ERR_INPUT, "%s: offset 4: unsupported GGUF version %u, expected 2 or 3", path, g->version);
    }
    if (rd_u64(&c, &g->n_tensors, "the tensor count") || rd_u64(&c, &g->n_kv, "the metadata count")) return QS_ERR_INPUT;
    /* each kv takes >= 8+4+1 bytes, each tensor info >= 8+4+8+4+8: reject absurd counts before allocating */
    if (g->n_kv > (c.size - c.pos) / 13)
        return qs_errorf(err, QS_ERR_INPUT, "%s: offset 16: metadata count %llu cannot fit in a %llu-byte file", path,
                         (unsigned long long)g->n_kv, (unsigned long long)c.size);
    if (g->n_tensors > (c.size - c.pos) / 32)
        return qs_errorf(err, QS_ERR_INPUT, "%s: offset 8: tensor count %llu cannot fit in a %llu-byte file", path,
                         (unsigned long long)g->n_tensors, (unsigned long long)c.size);
    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors) return qs_errorf(err, QS_ERR_INTERNAL, "%s: out of memory", path);
    /* a key given twice would mean one thing to a reader that takes the first, another to one
     * that takes the last: refuse it */
    qs_strmap *keys = qs_strmap_new(g->n_kv);
    if (!keys) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    for (uint64_t i = 0; i < g->n_kv; i++) {
        if (read_kv(&c, &g->kv[i])) {
            qs_strmap_free(keys);
            return QS_ERR_INPUT;
        }
        g->kv[i].nbytes = c.pos - g->kv[i].offset;
        if (qs_strmap_get(keys, g->kv[i].key.ptr, g->kv[i].key.len) >= 0) {
            char key[256];
            key_copy(key, sizeof key, g->kv[i].key);
            qs_strmap_free(keys);
            /* the offset of the key itself: before its value, its type (4) and its string (8 + len) */
            return qs_errorf(err, QS_ERR_INPUT, "%s: metadata key '%s' at offset %llu appears twice", path, key,
                             (unsigned long long)(g->kv[i].offset - 12 - g->kv[i].key.len));
        }
        qs_strmap_put(keys, g->kv[i].key.ptr, g->kv[i].key.len, (int)i);
    }
    qs_strmap_free(keys);
    g->alignment = 32;
    const qs_gguf_kv *al = qs_gguf_find(g, "general.alignment");
    if (al) {
        if (al->type != QS_GGUF_UINT32 || al->v.u == 0 || (al->v.u & (al->v.u - 1)))
            return qs_errorf(err, QS_ERR_INPUT, "%s: key 'general.alignment' at offset %llu must be a uint32 power of two",
                             path, (unsigned long long)al->offset);
        g->alignment = al->v.u;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (read_tensor_info(&c, &g->tensors[i], i)) return QS_ERR_INPUT;
    uint64_t data = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
    if (data > c.size && g->n_tensors > 0)
        return qs_errorf(err, QS_ERR_INPUT, "%s: tensor data section (offset %llu) is past the end of the file (%llu bytes)",
                         path, (unsigned long long)data, (unsigned long long)c.size);
    g->data_offset = data;
    uint64_t avail = c.size > data ? c.size - data : 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        qs_gguf_tensor *t = &g->tensors[i];
        char name[256];
        key_copy(name, sizeof name, t->name);
        if (t->offset % g->alignment)
            return qs_errorf(err, QS_ERR_INPUT, "%s: tensor '%s': data offset %llu is not a multiple of the alignment %llu",
                             path, name, (unsigned long long)t->offset, (unsigned long long)g->alignment);
        if (t->offset > avail || t->nbytes > avail - t->offset)
            return qs_errorf(err, QS_ERR_INPUT,
                             "%s: tensor '%s': data [%llu, %llu) runs past the end of the file (data section holds %llu bytes)",
                             path, name, (unsigned long long)(data + t->offset),
                             (unsigned long long)(data + t->offset + t->nbytes), (unsigned long long)avail);
        t->data = g->map.data + data + t->offset;
    }
    qs_strmap *names = qs_strmap_new(g->n_tensors);
    if (!names) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const qs_gguf_tensor *t = &g->tensors[i];
        if (qs_strmap_get(names, t->name.ptr, t->name.len) >= 0) {
            char name[256];
            key_copy(name, sizeof name, t->name);
            qs_strmap_free(names);
            return qs_errorf(err, QS_ERR_INPUT, "%s: tensor name '%s' appears twice", path, name);
        }
        qs_strmap_put(names, t->name.ptr, t->name.len, (int)i);
    }
    qs_strmap_free(names);
    /* overlapping tensor data is a sign of a hostile or broken file: sort offsets and check */
    if (g->n_tensors > 1) {
        uint64_t n = g->n_tensors;
        uint64_t *idx = malloc(sizeof(uint64_t) * n);
        if (!idx) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
        for (uint64_t i = 0; i < n; i++) idx[i] = i;
        for (uint64_t gap = n / 2; gap > 0; gap /= 2)
            for (uint64_t i = gap; i < n; i++)
                for (uint64_t j = i; j >= gap && g->tensors[idx[j - gap]].offset > g->tensors[idx[j]].offset; j -= gap) {
                    uint64_t tmp = idx[j]; idx[j] = idx[j - gap]; idx[j - gap] = tmp;
                }
        for (uint64_t i = 1; i < n; i++) {
            const qs_gguf_tensor *a = &g->tensors[idx[i - 1]], *b = &g->tensors[idx[i]];
            if (a->offset + a->nbytes > b->offset) {
                char na[128], nb[128];
                key_copy(na, sizeof na, a->name);
                key_copy(nb, sizeof nb, b->name);
                free(idx);
                return qs_errorf(err, QS_ERR_INPUT, "%s: tensors '%s' and '%s' overlap in the data section (offsets %llu and %llu)",
                                 path, na, nb, (unsigned long long)a->offset, (unsigned long long)b->offset);
            }
        }
        free(idx);
    }
    return 0;
}

int qs_gguf_open(qs_gguf **out, const char *path, qs_error *err) {
    *out = NULL;
    qs_gguf *g = calloc(1, sizeof *g);
    if (!g) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    int rc = qs_map_open(&g->map, path, err);
    if (rc) { free(g); return rc; }
    rc = parse(g, path, err);
    if (rc) { qs_gguf_close(g); return rc; }
    *out = g;
    return 0;
}

static int str_eq(qs_gguf_str s, const char *z) {
    size_t n = strlen(z);
    return s.len == n && memcmp(s.ptr, z, n) == 0;
}

const qs_gguf_kv *qs_gguf_find(const qs_gguf *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key.ptr && str_eq(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const qs_gguf_tensor *qs_gguf_find_tensor(const qs_gguf *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (str_eq(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

static int wrong_type(const qs_gguf *g, const qs_gguf_kv *kv, const char *key, const char *want, qs_error *err) {
    return qs_errorf(err, QS_ERR_INPUT, "%s: key '%s' at offset %llu is %s, expected %s", g->map.path, key,
                     (unsigned long long)kv->offset, qs_gguf_type_name(kv->type), want);
}

int qs_gguf_get_u32(const qs_gguf *g, const char *key, uint32_t *out, qs_error *err) {
    const qs_gguf_kv *kv = qs_gguf_find(g, key);
    if (!kv) return 1;
    switch (kv->type) {
    case QS_GGUF_UINT8: case QS_GGUF_UINT16: case QS_GGUF_UINT32: case QS_GGUF_UINT64:
        if (kv->v.u > UINT32_MAX) break;
        *out = (uint32_t)kv->v.u;
        return 0;
    case QS_GGUF_INT8: case QS_GGUF_INT16: case QS_GGUF_INT32: case QS_GGUF_INT64:
        if (kv->v.i < 0 || kv->v.i > (int64_t)UINT32_MAX) break;
        *out = (uint32_t)kv->v.i;
        return 0;
    }
    return wrong_type(g, kv, key, "a non-negative integer below 2^32", err);
}

int qs_gguf_get_f32(const qs_gguf *g, const char *key, float *out, qs_error *err) {
    const qs_gguf_kv *kv = qs_gguf_find(g, key);
    if (!kv) return 1;
    if (kv->type == QS_GGUF_FLOAT32 || kv->type == QS_GGUF_FLOAT64) {
        *out = (float)kv->v.f;
        return 0;
    }
    return wrong_type(g, kv, key, "a float", err);
}

int qs_gguf_get_bool(const qs_gguf *g, const char *key, int *out, qs_error *err) {
    const qs_gguf_kv *kv = qs_gguf_find(g, key);
    if (!kv) return 1;
    if (kv->type == QS_GGUF_BOOL) {
        *out = kv->v.u != 0;
        return 0;
    }
    return wrong_type(g, kv, key, "a bool", err);
}

int qs_gguf_get_str(const qs_gguf *g, const char *key, char *buf, size_t cap, qs_error *err) {
    const qs_gguf_kv *kv = qs_gguf_find(g, key);
    if (!kv) return 1;
    if (kv->type != QS_GGUF_STRING) return wrong_type(g, kv, key, "a string", err);
    key_copy(buf, cap, kv->str);
    return 0;
}

double qs_gguf_arr_num(const qs_gguf_kv *kv, uint64_t i) {
    const uint8_t *p = kv->arr_data + i * (uint64_t)qs_gguf_scalar_size(kv->arr_type);
    switch (kv->arr_type) {
    case QS_GGUF_UINT8: case QS_GGUF_BOOL: return p[0];
    case QS_GGUF_INT8: return (int8_t)p[0];
    case QS_GGUF_UINT16: { uint16_t x; memcpy(&x, p, 2); return x; }
    case QS_GGUF_INT16: { int16_t x; memcpy(&x, p, 2); return x; }
    case QS_GGUF_UINT32: { uint32_t x; memcpy(&x, p, 4); return x; }
    case QS_GGUF_INT32: { int32_t x; memcpy(&x, p, 4); return x; }
    case QS_GGUF_FLOAT32: { float x; memcpy(&x, p, 4); return x; }
    case QS_GGUF_UINT64: { uint64_t x; memcpy(&x, p, 8); return (double)x; }
    case QS_GGUF_INT64: { int64_t x; memcpy(&x, p, 8); return (double)x; }
    case QS_GGUF_FLOAT64: { double x; memcpy(&x, p, 8); return x; }
    }
    return 0;
}
