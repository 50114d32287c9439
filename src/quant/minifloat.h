/* Rounding to a small floating-point element format, shared by the fp8 formats (float_quant.c)
 * and the microscaling ones (mx_quant.c). */
#ifndef QS_MINIFLOAT_H
#define QS_MINIFLOAT_H

/* x rounded to the nearest value of a format with `mant` mantissa bits, smallest normal exponent
 * emin (subnormals below it) and largest finite value fmax: ties to even, beyond fmax saturated
 * to +-fmax (the OCP formats without infinities), NaN kept. */
float qs_round_minifloat(float x, int mant, int emin, float fmax);

#endif
