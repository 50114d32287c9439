/* qs_gguf: a validating reader of GGUF v2/v3 files over a memory map.
 * Every size, count and offset read from the file is checked against the mapped length before
 * use; a bad file gives QS_ERR_INPUT with the file, the byte offset and what was expected.
 * Tensor data stays in the map: nothing is read up front. */
#ifndef QS_GGUF_H
#define QS_GGUF_H

#include <stdint.h>

#include "core/qs_error.h"
#include "core/qs_file.h"

typedef enum {
    QS_GGUF_UINT8 = 0, QS_GGUF_INT8 = 1, QS_GGUF_UINT16 = 2, QS_GGUF_INT16 = 3,
    QS_GGUF_UINT32 = 4, QS_GGUF_INT32 = 5, QS_GGUF_FLOAT32 = 6, QS_GGUF_BOOL = 7,
    QS_GGUF_STRING = 8, QS_GGUF_ARRAY = 9, QS_GGUF_UINT64 = 10, QS_GGUF_INT64 = 11,
    QS_GGUF_FLOAT64 = 12, QS_GGUF_TYPE_COUNT = 13,
} qs_gguf_type;

typedef struct {
    const char *ptr; /* points into the map: NOT NUL-terminated */
    uint64_t len;
} qs_gguf_str;

typedef struct {
    qs_gguf_str key;
    int type;           /* qs_gguf_type */
    uint64_t offset;    /* file offset of the value, for messages */
    uint64_t nbytes;    /* encoded size of the value in the file (to copy it verbatim) */
    /* scalars, widened */
    union { uint64_t u; int64_t i; double f; } v;
    qs_gguf_str str;    /* type STRING */
    /* type ARRAY */
    int arr_type;
    uint64_t arr_n;
    const uint8_t *arr_data; /* first element's bytes in the map */
    qs_gguf_str *arr_strs;   /* arr_type STRING: one per element (owned), else NULL */
} qs_gguf_kv;

typedef struct {
    qs_gguf_str name;
    uint32_t n_dims;
    int64_t ne[4];      /* ne[0] is the fastest-varying (row length), as in ggml */
    int type;           /* ggml type id */
    uint64_t offset;    /* relative to the data section */
    uint64_t nbytes;
    const uint8_t *data;
} qs_gguf_tensor;

typedef struct qs_gguf {
    qs_map map;
    uint32_t version;
    uint64_t n_kv, n_tensors;
    qs_gguf_kv *kv;
    qs_gguf_tensor *tensors;
    uint64_t alignment;
    uint64_t data_offset;
} qs_gguf;

/* Opens and validates path. On success *out is owned by the caller: qs_gguf_close. */
int qs_gguf_open(qs_gguf **out, const char *path, qs_error *err);
void qs_gguf_close(qs_gguf *g);

/* Lookups; NULL/-1 when absent. */
const qs_gguf_kv *qs_gguf_find(const qs_gguf *g, const char *key);
const qs_gguf_tensor *qs_gguf_find_tensor(const qs_gguf *g, const char *name);

/* Typed getters. Return 0 and fill *out when key exists with a compatible type; 1 when the key
 * is absent (out untouched); QS_ERR_INPUT (with message) when present with a wrong type. */
int qs_gguf_get_u32(const qs_gguf *g, const char *key, uint32_t *out, qs_error *err);
int qs_gguf_get_f32(const qs_gguf *g, const char *key, float *out, qs_error *err);
int qs_gguf_get_bool(const qs_gguf *g, const char *key, int *out, qs_error *err);
/* Copies a string value into buf (truncating) */
int qs_gguf_get_str(const qs_gguf *g, const char *key, char *buf, size_t cap, qs_error *err);

/* Name of a GGUF value type ("uint32", "array", ...). */
const char *qs_gguf_type_name(int t);

/* Size in bytes of one scalar element of type t, or 0 for STRING/ARRAY/unknown. */
int qs_gguf_scalar_size(int t);

/* Reads element i of a numeric array as double (for inspect and typed access). */
double qs_gguf_arr_num(const qs_gguf_kv *kv, uint64_t i);

#endif
