/* qs_gguf_writer: builds a GGUF v3 file: metadata of any type, then tensors. The file is
 * written to PATH.tmp and renamed into place only when complete, so a full disk or a kill
 * never leaves a truncated model behind. */
#ifndef QS_GGUF_WRITE_H
#define QS_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "core/qs_error.h"

typedef struct qs_gguf_writer qs_gguf_writer;

qs_gguf_writer *qs_gguf_writer_new(void);
void qs_gguf_writer_free(qs_gguf_writer *w);

/* Metadata. Strings and arrays are copied. Return 0, or -1 when out of memory. */
int qs_gguf_add_u32(qs_gguf_writer *w, const char *key, uint32_t v);
int qs_gguf_add_i32(qs_gguf_writer *w, const char *key, int32_t v);
int qs_gguf_add_f32(qs_gguf_writer *w, const char *key, float v);
int qs_gguf_add_bool(qs_gguf_writer *w, const char *key, int v);
int qs_gguf_add_str(qs_gguf_writer *w, const char *key, const char *v);
int qs_gguf_add_arr_str(qs_gguf_writer *w, const char *key, const char *const *v, const size_t *lens, size_t n);
int qs_gguf_add_arr_f32(qs_gguf_writer *w, const char *key, const float *v, size_t n);
int qs_gguf_add_arr_i32(qs_gguf_writer *w, const char *key, const int32_t *v, size_t n);
int qs_gguf_add_arr_bool(qs_gguf_writer *w, const char *key, const uint8_t *v, size_t n); /* v[i]: 0 or 1 */
/* Every add_* of a key already added replaces its value (a file never holds a key twice).
 * Copies a value of any type (nested arrays included) from raw GGUF bytes: type id and the
 * encoded value as it appears in a file. */
int qs_gguf_add_raw(qs_gguf_writer *w, const char *key, uint32_t type, const void *value, size_t nbytes);

/* A tensor of ggml type `type` with ne[0..n_dims) (ne[0] = row length). data holds its bytes in
 * that type and is borrowed until qs_gguf_write returns (NULL for a streamed write, below). */
int qs_gguf_add_tensor(qs_gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne, const void *data);

/* Writes the file (alignment 32). */
int qs_gguf_write(qs_gguf_writer *w, const char *path, qs_error *err);

/* The same, streamed, for a model larger than memory: declare every tensor (data may be NULL),
 * then begin writes the header; data appends the tensors' bytes in the order they were added, in
 * pieces of any size; end checks that every declared byte came and puts the file in place. On an
 * error, or when the writer is freed before end, no file is left behind. */
int qs_gguf_write_begin(qs_gguf_writer *w, const char *path, qs_error *err);
int qs_gguf_write_data(qs_gguf_writer *w, const void *data, size_t n, qs_error *err);
int qs_gguf_write_end(qs_gguf_writer *w, qs_error *err);

#endif
