/* qs_model's tensor table (see model.h): what every loader fills (metadata, memory maps, tensors)
 * and what every reader asks (find a tensor, its elements, its rows as floats, all finite?). It
 * calls no loader. */
#include "io/model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_dtype.h"
#include "core/qs_file.h"

int qs_model_add_meta(qs_model *m, const char *key, const char *fmt, ...) {
    qs_meta *nm = realloc(m->meta, sizeof(qs_meta) * (size_t)(m->n_meta + 1));
    if (!nm) return -1;
    m->meta = nm;
    qs_meta *e = &m->meta[m->n_meta++];
    snprintf(e->key, sizeof e->key, "%s", key);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->value, sizeof e->value, fmt, ap);
    va_end(ap);
    return 0;
}

void *qs_model_alloc(qs_model *m, size_t bytes) {
    void **no = realloc(m->owned, sizeof(void *) * (size_t)(m->n_owned + 1));
    if (!no) return NULL;
    m->owned = no;
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) return NULL;
    m->owned[m->n_owned++] = p;
    return p;
}

int qs_model_add_map(qs_model *m, const char *path, const qs_map **map, qs_error *err) {
    /* maps are kept by pointer so that earlier maps (and tensors into them) never move */
    qs_map **nm = realloc(m->maps, sizeof(qs_map *) * (size_t)(m->n_maps + 1));
    if (!nm) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    m->maps = nm;
    qs_map *mp = calloc(1, sizeof *mp);
    if (!mp) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    int rc = qs_map_open(mp, path, err);
    if (rc) { free(mp); return rc; }
    m->maps[m->n_maps++] = mp;
    *map = mp;
    return 0;
}

qs_tensor *qs_model_add_tensor(qs_model *m, const char *name) {
    qs_tensor *nt = realloc(m->tensors, sizeof(qs_tensor) * (size_t)(m->n_tensors + 1));
    if (!nt) return NULL;
    m->tensors = nt;
    qs_tensor *t = &m->tensors[m->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    for (int i = 0; i < 4; i++) t->ne[i] = 1;
    return t;
}

const qs_tensor *qs_model_find(const qs_model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

int64_t qs_tensor_numel(const qs_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->n_dims; i++) n *= t->ne[i];
    return n;
}

int qs_tensor_dequantize_rows(const qs_tensor *t, int64_t row0, int64_t nrows, float *dst) {
    const int64_t ne0 = t->ne[0];
    if (t->type == QS_DT_I8_GROUPED) {
        const int8_t *q = (const int8_t *)t->data;
        for (int64_t i = row0 * ne0; i < (row0 + nrows) * ne0; i++) *dst++ = q[i] * t->scales[i / t->group];
        return 0;
    }
    const qs_dtype_traits *tr = qs_dtype_get(t->type);
    if (!tr) return -1;
    uint64_t rb = qs_dtype_row_bytes(t->type, ne0);
    tr->to_float(t->data + (uint64_t)row0 * rb, dst, ne0 * nrows);
    return 0;
}

int qs_model_check_finite(const qs_model *m, qs_error *err) {
    float *buf = NULL;
    size_t cap = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const qs_tensor *t = &m->tensors[i];
        const int64_t cols = t->ne[0], rows = qs_tensor_numel(t) / (cols > 0 ? cols : 1);
        int64_t bad = 0, first = -1;
        for (int64_t r0 = 0; r0 < rows; r0 += 64) {
            const int64_t nr = rows - r0 < 64 ? rows - r0 : 64;
            if ((size_t)(nr * cols) > cap) {
                cap = (size_t)(nr * cols);
                float *nb = realloc(buf, cap * sizeof(float));
                if (!nb) {
                    free(buf);
                    return qs_errorf(err, QS_ERR_INTERNAL, "out of memory checking %s", t->name);
                }
                buf = nb;
            }
            if (qs_tensor_dequantize_rows(t, r0, nr, buf)) break;
            for (int64_t k = 0; k < nr * cols; k++)
                if (!isfinite(buf[k])) {
                    if (first < 0) first = r0 * cols + k;
                    bad++;
                }
        }
        if (bad) {
            free(buf);
            return qs_errorf(err, QS_ERR_INPUT,
                             "%s: tensor %s holds %lld non-finite values (NaN or Inf), the first at row %lld, column %lld; "
                             "qsense measures only models whose weights are finite",
                             m->path, t->name, (long long)bad, (long long)(first / cols), (long long)(first % cols));
        }
    }
    free(buf);
    return 0;
}
