/* qs_gguf_writer (see gguf_write.h). Metadata values are kept encoded exactly as they will be
 * written; tensors are laid out in order, each at an offset aligned to 32 bytes. */
#include "io/gguf_write.h"

#include "core/qs_output.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/qs_dtype.h"
#include "core/qs_output.h"
#include "io/gguf.h"

#define ALIGN 32

typedef struct {
    char *key;
    uint32_t type;
    uint8_t *val;
    size_t len;
} kv;

typedef struct {
    char *name;
    int type, n_dims;
    int64_t ne[4];
    const void *data;
    uint64_t nbytes, offset;
} tensor;

struct qs_gguf_writer {
    kv *kvs;
    size_t n_kv;
    tensor *ts;
    size_t n_t;
    /* a write in progress (qs_gguf_write_begin): the tensor being filled and its bytes so far */
    qs_output *out;
    size_t cur;
    uint64_t cur_done;
};

qs_gguf_writer *qs_gguf_writer_new(void) { return calloc(1, sizeof(qs_gguf_writer)); }

void qs_gguf_writer_free(qs_gguf_writer *w) {
    if (!w) return;
    qs_output_discard(w->out); /* a write never finished leaves no file */
    for (size_t i = 0; i < w->n_kv; i++) { free(w->kvs[i].key); free(w->kvs[i].val); }
    for (size_t i = 0; i < w->n_t; i++) free(w->ts[i].name);
    free(w->kvs);
    free(w->ts);
    free(w);
}

int qs_gguf_add_raw(qs_gguf_writer *w, const char *key, uint32_t type, const void *value, size_t nbytes) {
    /* a key given again replaces its value in place: a GGUF with a key twice is invalid (llama.cpp
     * and qsense refuse it), so the writer never produces one */
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kvs[i].key, key)) {
            uint8_t *val = malloc(nbytes ? nbytes : 1);
            if (!val) return -1;
            memcpy(val, value, nbytes);
            free(w->kvs[i].val);
            w->kvs[i].val = val;
            w->kvs[i].len = nbytes;
            w->kvs[i].type = type;
            return 0;
        }
    kv *nk = realloc(w->kvs, sizeof(kv) * (w->n_kv + 1));
    if (!nk) return -1;
    w->kvs = nk;
    kv *k = &w->kvs[w->n_kv];
    k->key = strdup(key);
    k->val = malloc(nbytes ? nbytes : 1);
    if (!k->key || !k->val) { free(k->key); free(k->val); return -1; }
    memcpy(k->val, value, nbytes);
    k->len = nbytes;
    k->type = type;
    w->n_kv++;
    return 0;
}

int qs_gguf_add_u32(qs_gguf_writer *w, const char *key, uint32_t v) { return qs_gguf_add_raw(w, key, QS_GGUF_UINT32, &v, 4); }
int qs_gguf_add_i32(qs_gguf_writer *w, const char *key, int32_t v) { return qs_gguf_add_raw(w, key, QS_GGUF_INT32, &v, 4); }
int qs_gguf_add_f32(qs_gguf_writer *w, const char *key, float v) { return qs_gguf_add_raw(w, key, QS_GGUF_FLOAT32, &v, 4); }
int qs_gguf_add_bool(qs_gguf_writer *w, const char *key, int v) {
    uint8_t b = v != 0;
    return qs_gguf_add_raw(w, key, QS_GGUF_BOOL, &b, 1);
}

int qs_gguf_add_str(qs_gguf_writer *w, const char *key, const char *v) {
    uint64_t n = strlen(v);
    uint8_t *buf = malloc(8 + n);
    if (!buf) return -1;
    memcpy(buf, &n, 8);
    memcpy(buf + 8, v, n);
    int rc = qs_gguf_add_raw(w, key, QS_GGUF_STRING, buf, 8 + n);
    free(buf);
    return rc;
}

static int add_arr(qs_gguf_writer *w, const char *key, uint32_t et, const void *v, size_t n, size_t es) {
    uint8_t *buf = malloc(12 + n * es);
    if (!buf) return -1;
    uint64_t n64 = n;
    memcpy(buf, &et, 4);
    memcpy(buf + 4, &n64, 8);
    if (n) memcpy(buf + 12, v, n * es);
    int rc = qs_gguf_add_raw(w, key, QS_GGUF_ARRAY, buf, 12 + n * es);
    free(buf);
    return rc;
}

int qs_gguf_add_arr_f32(qs_gguf_writer *w, const char *key, const float *v, size_t n) { return add_arr(w, key, QS_GGUF_FLOAT32, v, n, 4); }
int qs_gguf_add_arr_i32(qs_gguf_writer *w, const char *key, const int32_t *v, size_t n) { return add_arr(w, key, QS_GGUF_INT32, v, n, 4); }
int qs_gguf_add_arr_bool(qs_gguf_writer *w, const char *key, const uint8_t *v, size_t n) { return add_arr(w, key, QS_GGUF_BOOL, v, n, 1); }

int qs_gguf_add_arr_str(qs_gguf_writer *w, const char *key, const char *const *v, const size_t *lens, size_t n) {
    size_t total = 12;
    for (size_t i = 0; i < n; i++) total += 8 + (lens ? lens[i] : strlen(v[i]));
    uint8_t *buf = malloc(total), *p = buf;
    if (!buf) return -1;
    uint32_t et = QS_GGUF_STRING;
    uint64_t n64 = n;
    memcpy(p, &et, 4);
    memcpy(p + 4, &n64, 8);
    p += 12;
    for (size_t i = 0; i < n; i++) {
        uint64_t l = lens ? lens[i] : strlen(v[i]);
        memcpy(p, &l, 8);
        memcpy(p + 8, v[i], l);
        p += 8 + l;
    }
    int rc = qs_gguf_add_raw(w, key, QS_GGUF_ARRAY, buf, total);
    free(buf);
    return rc;
}

int qs_gguf_add_tensor(qs_gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne, const void *data) {
    if (n_dims < 1 || n_dims > 4 || !qs_dtype_get(type)) return -1;
    int64_t rows = 1;
    for (int d = 1; d < n_dims; d++) rows *= ne[d];
    uint64_t rb = qs_dtype_row_bytes(type, ne[0]);
    if (!rb) return -1;
    tensor *nt = realloc(w->ts, sizeof(tensor) * (w->n_t + 1));
    if (!nt) return -1;
    w->ts = nt;
    tensor *t = &w->ts[w->n_t];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) return -1;
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < 4; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->data = data;
    t->nbytes = rb * (uint64_t)rows;
    uint64_t off = 0;
    if (w->n_t) {
        const tensor *p = &w->ts[w->n_t - 1];
        off = (p->offset + p->nbytes + ALIGN - 1) / ALIGN * ALIGN;
    }
    t->offset = off;
    w->n_t++;
    return 0;
}

static int put(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n ? 0 : -1; }

static int pad(FILE *f, uint64_t pos) {
    static const uint8_t zeros[ALIGN];
    uint64_t n = (ALIGN - pos % ALIGN) % ALIGN;
    return put(f, zeros, n);
}

int qs_gguf_write_begin(qs_gguf_writer *w, const char *path, qs_error *err) {
    if (w->out) return qs_errorf(err, QS_ERR_INTERNAL, "a GGUF write is already in progress");
    qs_output *o;
    int rc = qs_output_open(&o, path, "output", 0, err);
    if (rc) return rc;
    FILE *f = qs_output_stream(o);
    int bad = 0;
    uint32_t version = 3;
    uint64_t nt = w->n_t, nk = w->n_kv, pos = 0;
    bad |= put(f, "GGUF", 4) | put(f, &version, 4) | put(f, &nt, 8) | put(f, &nk, 8);
    pos = 24;
    for (size_t i = 0; i < w->n_kv && !bad; i++) {
        uint64_t kl = strlen(w->kvs[i].key);
        bad |= put(f, &kl, 8) | put(f, w->kvs[i].key, kl) | put(f, &w->kvs[i].type, 4) | put(f, w->kvs[i].val, w->kvs[i].len);
        pos += 8 + kl + 4 + w->kvs[i].len;
    }
    for (size_t i = 0; i < w->n_t && !bad; i++) {
        const tensor *t = &w->ts[i];
        uint64_t nl = strlen(t->name);
        uint32_t nd = (uint32_t)t->n_dims, ty = (uint32_t)t->type;
        bad |= put(f, &nl, 8) | put(f, t->name, nl) | put(f, &nd, 4);
        for (int d = 0; d < t->n_dims; d++) bad |= put(f, &t->ne[d], 8);
        bad |= put(f, &ty, 4) | put(f, &t->offset, 8);
        pos += 8 + nl + 4 + 8 * (uint64_t)t->n_dims + 4 + 8;
    }
    bad |= pad(f, pos);
    if (bad) return qs_output_fail(o, errno ? errno : EIO, err);
    w->out = o;
    w->cur = 0;
    w->cur_done = 0;
    return 0;
}

int qs_gguf_write_data(qs_gguf_writer *w, const void *data, size_t n, qs_error *err) {
    if (!w->out) return qs_errorf(err, QS_ERR_INTERNAL, "no GGUF write in progress");
    FILE *f = qs_output_stream(w->out);
    const uint8_t *p = data;
    while (n) {
        while (w->cur < w->n_t && w->cur_done == w->ts[w->cur].nbytes) { /* the next tensor, at its aligned offset */
            const tensor *t = &w->ts[w->cur];
            w->cur++;
            if (w->cur < w->n_t && pad(f, t->offset + t->nbytes)) goto failed;
            w->cur_done = 0;
        }
        if (w->cur == w->n_t) {
            qs_output_discard(w->out);
            w->out = NULL;
            return qs_errorf(err, QS_ERR_INTERNAL, "more tensor data than the GGUF's tensors declare");
        }
        const uint64_t left = w->ts[w->cur].nbytes - w->cur_done;
        const size_t k = n < left ? n : (size_t)left;
        if (put(f, p, k)) goto failed;
        p += k;
        n -= k;
        w->cur_done += k;
    }
    return 0;
failed:;
    int rc = qs_output_fail(w->out, errno ? errno : EIO, err);
    w->out = NULL;
    return rc;
}

int qs_gguf_write_end(qs_gguf_writer *w, qs_error *err) {
    if (!w->out) return qs_errorf(err, QS_ERR_INTERNAL, "no GGUF write in progress");
    /* every declared byte must have come */
    for (size_t i = w->cur; i < w->n_t; i++)
        if ((i == w->cur ? w->cur_done : 0) != w->ts[i].nbytes) {
            qs_output_discard(w->out);
            w->out = NULL;
            return qs_errorf(err, QS_ERR_INTERNAL, "the GGUF's tensor data ended early, in tensor '%s'", w->ts[i].name);
        }
    qs_output *o = w->out;
    w->out = NULL;
    return qs_output_commit(o, err);
}

int qs_gguf_write(qs_gguf_writer *w, const char *path, qs_error *err) {
    int rc = qs_gguf_write_begin(w, path, err);
    for (size_t i = 0; !rc && i < w->n_t; i++)
        if (w->ts[i].nbytes) rc = qs_gguf_write_data(w, w->ts[i].data, w->ts[i].nbytes, err);
    return rc ? rc : qs_gguf_write_end(w, err);
}
