/* AWQ (activation-aware weight quantization, Lin et al. 2023): before rounding, scale each input
 * channel of W by s_c = m_c^alpha, m_c the channel's typical input magnitude, so the channels
 * that carry large activations get a finer grid; the model computes (x / s) Q(W diag(s))^T, and
 * 1/s is folded into whatever produces x (the RMSNorm before q/k/v and gate/up, v's rows before
 * attn_output, up's rows before down), so the written model is plain. alpha is searched on a
 * grid of 21 values in [0, 1] for the least output error ||X (W - W^)^T||^2 = tr(dW G dW^T), G =
 * X^T X the calibration inputs' Gram matrix; alpha = 0 is plain rounding, so AWQ never does worse
 * on the calibration inputs. m_c: the mean absolute value of the channel's inputs, scales
 * normalized by sqrt(max s * min s), as AWQ's reference code does.
 * The formats "<base>-awq" (base: int4-g128-sym/asym, q4_0, q4_1, q4_k, iq4_nl, iq4_xs) search
 * one tensor's own scales; qsense quantize searches one scale vector per group of matrices that
 * share an input (q/k/v, gate/up), since one norm carries it. */
#ifndef QS_AWQ_H
#define QS_AWQ_H

#include <stdint.h>

#include "quant/format.h"

typedef struct {
    const float *w;       /* (rows, cols) */
    int64_t rows;
    const qs_format *fmt; /* the plain format it is rounded with */
} qs_awq_member;

/* The scales s (cols) minimizing the members' summed output error; *alpha the exponent chosen.
 * magnitude: the inputs' mean |x| per channel; gram (cols, cols). Returns 0, -1 out of memory. */
int qs_awq_search(const qs_awq_member *m, int n, int64_t cols, const float *magnitude, const float *gram, float *s,
                  float *alpha);

/* The search over a tensor a block of rows at a time, giving what qs_awq_search gives for the
 * tensor alone: every block once, in order, adds each trial exponent's output error to err
 * (QS_AWQ_ALPHAS sums, zero to begin with; wq and tmp: rows * cols floats of scratch); then
 * qs_awq_pick turns the sums into s and *alpha. add: 0, -1 out of memory. */
#define QS_AWQ_ALPHAS 21
int qs_awq_add_errors(const qs_format *fmt, const float *w, int64_t rows, int64_t cols, const float *magnitude,
                      const float *gram, float *wq, float *tmp, double *err);
void qs_awq_pick(const double *err, const float *magnitude, int64_t cols, float *s, float *alpha);

/* out = dequantize(fmt(w diag(s))) diag(1/s) (out may be w) */
int qs_awq_apply(const qs_format *fmt, const float *w, float *out, int64_t rows, int64_t cols, const float *s);

#endif
