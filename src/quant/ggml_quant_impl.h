/* Inside the llama.cpp quantizers (src/quant/ggml_*.c): the helpers they share and the entry
 * points qs_ggml_quantize / qs_ggml_quantize_weighted dispatch to. Not for other layers. */
#ifndef QS_GGML_QUANT_IMPL_H
#define QS_GGML_QUANT_IMPL_H

#include <stdint.h>
#include <string.h>

#include "core/qs_dtype.h"

/* round to nearest, ties to even, via the float mantissa (ggml's nearest_int) */
static inline int qs_nearest_int(float fval) {
    float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

static inline void qs_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

/* ggml_kquant.c: llama.cpp's scale searches */
float qs_ggml_make_qx_quants(int n, int nmax, const float *x, int8_t *L, int rmse_type, const float *qw);
float qs_ggml_make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min, uint8_t *Laux,
                               float rmin, float rdelta, int nstep, int use_mad);
float qs_ggml_make_qp_quants(int n, int nmax, const float *x, uint8_t *L, const float *quant_weights);

/* the quantizers by family; importance NULL = llama-quantize without an imatrix. Each returns
 * 0, or -1 for a type it does not handle (or, for the lattice i-quants, that needs an
 * importance it was not given) */
int qs_ggml_quantize_k(int type, const float *src, uint8_t *dst, int64_t n);
int qs_ggml_quantize_k_weighted(int type, const float *src, uint8_t *dst, int64_t n, const float *qw);
int qs_ggml_quantize_lut(int type, const float *src, uint8_t *dst, int64_t n, const float *importance);
int qs_ggml_quantize_iq(int type, const float *src, uint8_t *dst, int64_t n, const float *importance);
/* the lattice i-quants: iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s, iq1_s, iq1_m */
static inline int qs_ggml_is_lattice_iq(int type) {
    return type == QS_DT_IQ2_XXS || type == QS_DT_IQ2_XS || type == QS_DT_IQ2_S || type == QS_DT_IQ3_XXS || type == QS_DT_IQ3_S ||
           type == QS_DT_IQ1_S || type == QS_DT_IQ1_M;
}
/* 1 when llama.cpp refuses to quantize the type without an imatrix (iq2_xxs, iq2_xs, iq1_s) */
int qs_ggml_iq_needs_importance(int type);

#endif
