/* Inside qs_dtype: the dequantizers and tables kept in files of their own (qs_dtype_lut.c),
 * shared with the quantizers that must use the same levels (src/quant). */
#ifndef QS_DTYPE_IMPL_H
#define QS_DTYPE_IMPL_H

#include <stdint.h>

extern const int8_t qs_iq4nl_values[16];
/* E2M1's 16 codes as twice their value: 0 1 2 3 4 6 8 12, then the negatives */
extern const int8_t qs_fp4_values2[16];
/* half of an E8M0 scale (2^(e-128)) and of an unsigned E4M3 scale, as ggml reads them */
float qs_e8m0_to_f32_half(uint8_t e);
float qs_ue4m3_to_f32_half(uint8_t x);

void qs_iq4_nl_to_float(const void *restrict src, float *restrict y, int64_t n);
void qs_iq4_xs_to_float(const void *restrict src, float *restrict y, int64_t n);
void qs_mxfp4_to_float(const void *restrict src, float *restrict y, int64_t n);
void qs_nvfp4_to_float(const void *restrict src, float *restrict y, int64_t n);
void qs_tq1_0_to_float(const void *restrict src, float *restrict y, int64_t n);
void qs_tq2_0_to_float(const void *restrict src, float *restrict y, int64_t n);

#endif
