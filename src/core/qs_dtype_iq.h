/* Inside qs_dtype: the dequantizers of llama.cpp's lattice i-quants (qs_dtype_iq.c) and their
 * codebooks (qs_iq_grids.c, generated from gguf-py by scripts/gen_iq_grids.py). */
#ifndef QS_DTYPE_IQ_H
#define QS_DTYPE_IQ_H

#include <stdint.h>

/* codebook <name>: entry e's value j is levels[(packed[e] >> bits * j) & mask] */
extern const int8_t qs_iq2xxs_levels[3], qs_iq2xs_levels[3], qs_iq2s_levels[3], qs_iq1s_levels[3];
extern const int8_t qs_iq3xxs_levels[8], qs_iq3s_levels[8];
extern const uint16_t qs_iq2xxs_packed[256], qs_iq2xs_packed[512], qs_iq2s_packed[1024];
extern const uint16_t qs_iq3xxs_packed[256], qs_iq3s_packed[512], qs_iq1s_packed[2048];

void qs_iq2_xxs_to_float(const void *restrict src, float *restrict y, int64_t n);
void qs_iq2_xs_to_float(const void *restrict src, float *restrict y, int64_t n);
void qs_iq2_s_to_float(const void *restrict src, float *restrict y, int64_t n);
void qs_iq3_xxs_to_float(const void *restrict src, float *restrict y, int64_t n);
void qs_iq3_s_to_float(const void *restrict src, float *restrict y, int64_t n);
void qs_iq1_s_to_float(const void *restrict src, float *restrict y, int64_t n);
void qs_iq1_m_to_float(const void *restrict src, float *restrict y, int64_t n);

#endif
