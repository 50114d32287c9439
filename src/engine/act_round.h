/* Emulation of llama.cpp's CPU matmul numerics. ggml's CPU backend does not multiply a
 * quantized weight by f32 activations: it first converts the activations to the weight type's
 * "vec_dot" type (q8_0 for q4_0/q5_0/q8_0/iq4_nl/mxfp4/nvfp4, q8_1 for q4_1/q5_1, q8_K for the
 * K-quants, the other i-quants and the ternary types, f16 for
 * f16, bf16 for bf16), and the f16 KV cache rounds K and V (and Q, softmax weights) to f16.
 * qs_act_round applies the same rounding to a row of activations so qsense's perplexity can be
 * compared with llama-perplexity's to four digits. The exact f32 evaluation stays the default. */
#ifndef QS_ACT_ROUND_H
#define QS_ACT_ROUND_H

#include <stdint.h>

/* y = activations x[0..n) as llama.cpp's CPU backend sees them next to weights of type
 * weight_type (n a multiple of 256 for K-quants, of 32 for the 32-blocks). x == y allowed.
 * Returns 0 when nothing needs rounding (f32 weights), 1 when y was written. */
int qs_act_round(int weight_type, const float *x, float *y, int64_t n);

/* Rounds x[0..n) to the nearest f16 value, in place. */
void qs_round_f16(float *x, int64_t n);

#endif
