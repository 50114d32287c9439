/* IEEE half and bfloat16 <-> float conversions, exact (no approximation), header-only so the
 * dequantizers inline them. Matches ggml's scalar reference conversions. */
#ifndef QS_HALF_H
#define QS_HALF_H

#include <stdint.h>
#include <string.h>

static inline float qs_bits_to_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t qs_f32_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* Half -> float, exact for every input including subnormals, inf and NaN. */
static inline float qs_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return qs_bits_to_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0) return qs_bits_to_f32(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return qs_bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));
}

/* Float -> half, round to nearest even, overflow to inf, NaN kept quiet. */
static inline uint16_t qs_f32_to_f16(float f) {
    uint32_t x = qs_f32_to_bits(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00);        /* NaN */
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);       /* overflow -> inf */
    if (ax < 0x38800000u) {                                         /* subnormal or zero */
        float a = qs_bits_to_f32(ax);
        /* scale so that one half-subnormal ulp is 1.0, then round to nearest even */
        float s = a * 16777216.0f;
        uint32_t m = (uint32_t)s;
        float rem = s - (float)m;
        if (rem > 0.5f || (rem == 0.5f && (m & 1))) m++;
        return (uint16_t)(sign | m);
    }
    uint32_t e = ((ax >> 23) - 112) << 10;
    uint32_t m = (ax >> 13) & 0x3ff;
    uint32_t h = e | m;
    uint32_t rest = ax & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

static inline float qs_bf16_to_f32(uint16_t b) { return qs_bits_to_f32((uint32_t)b << 16); }

/* Float -> bfloat16, round to nearest even, NaN kept quiet (as ggml does). */
static inline uint16_t qs_f32_to_bf16(float f) {
    uint32_t u = qs_f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

#endif
