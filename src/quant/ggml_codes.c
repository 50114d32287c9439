/* Element codes inside llama.cpp blocks: where the stored integer of element e lives in a q4_0 ..
 * q6_k block, so a quantizer that chooses its own rounding (GPTQ, gptq.c) can keep a block's
 * scales and rewrite single values. A code is the unsigned value as stored (q4_0: the nibble,
 * dequantized as (code - 8) * d; q8_0: the int8 + 128); for fixed scales every element is affine
 * in its code. Layouts follow qs_dtype.c's dequantizers, which are bit-exact with ggml's. */
#include <string.h>

#include "core/qs_dtype.h"
#include "quant/ggml_quant.h"

int qs_ggml_code_max(int type) {
    switch (type) {
    case QS_DT_Q4_0: case QS_DT_Q4_1: case QS_DT_Q4_K: return 15;
    case QS_DT_Q5_0: case QS_DT_Q5_1: case QS_DT_Q5_K: return 31;
    case QS_DT_Q8_0: return 255;
    case QS_DT_Q2_K: return 3;
    case QS_DT_Q3_K: return 7;
    case QS_DT_Q6_K: return 63;
    default: return -1;
    }
}

static void set_nibble(uint8_t *b, int high, int v) {
    *b = high ? (uint8_t)((*b & 0x0F) | (v << 4)) : (uint8_t)((*b & 0xF0) | (v & 0x0F));
}

static void set_bit(uint8_t *b, int bit, int v) {
    *b = v ? (uint8_t)(*b | (1u << bit)) : (uint8_t)(*b & ~(1u << bit));
}

/* 32-element blocks: element j < 16 in the low nibble of qs[j], j >= 16 in the high nibble of
 * qs[j - 16]; q5's 5th bit is bit j of the little-endian u32 qh */
static void set_q4_q5(uint8_t *qs, uint8_t *qh, int e, int code) {
    set_nibble(qs + (e & 15), e >= 16, code & 15);
    if (qh) set_bit(qh + e / 8, e % 8, code >> 4);
}

void qs_ggml_code_set(int type, void *block, int e, int code) {
    uint8_t *b = block;
    switch (type) {
    case QS_DT_Q4_0: set_q4_q5(b + 2, NULL, e, code); break;
    case QS_DT_Q4_1: set_q4_q5(b + 4, NULL, e, code); break;
    case QS_DT_Q5_0: set_q4_q5(b + 6, b + 2, e, code); break;
    case QS_DT_Q5_1: set_q4_q5(b + 8, b + 4, e, code); break;
    case QS_DT_Q8_0: b[2 + e] = (uint8_t)(code - 128); break;
    case QS_DT_Q4_K: case QS_DT_Q5_K: {
        /* 64-element chunks c: the first 32 in the low nibbles of qs[32c + l], the next 32 high;
         * q5_k's 5th bit: bit 2c (first half) or 2c + 1 (second) of qh[l] */
        const int c = e / 64, half = (e % 64) / 32, l = e % 32;
        uint8_t *qs = b + (type == QS_DT_Q4_K ? 16 : 48);
        set_nibble(qs + 32 * c + l, half, code & 15);
        if (type == QS_DT_Q5_K) set_bit(b + 16 + l, 2 * c + half, code >> 4);
        break;
    }
    case QS_DT_Q6_K: {
        /* 128-element halves h; in each, quarter k of 32: low 4 bits in ql[64h + l + 32 (k & 1)]
         * (low nibble for k < 2), high 2 bits at shift 2k of qh[32h + l] */
        const int h = e / 128, k = (e % 128) / 32, l = e % 32;
        set_nibble(b + 64 * h + l + 32 * (k & 1), k >= 2, code & 15);
        uint8_t *qh = b + 128 + 32 * h + l;
        *qh = (uint8_t)((*qh & ~(3u << (2 * k))) | ((code >> 4) << (2 * k)));
        break;
    }
    case QS_DT_Q2_K: case QS_DT_Q3_K: {
        /* 128-element halves h; in each, 2-bit values at shift 2j of q[32h + l], j = quarter;
         * q3_k's 3rd bit: bit 4h + j of hmask[l] (set = no -4 offset) */
        const int h = e / 128, j = (e % 128) / 32, l = e % 32;
        uint8_t *q = b + (type == QS_DT_Q2_K ? 16 : 32) + 32 * h + l;
        *q = (uint8_t)((*q & ~(3u << (2 * j))) | ((code & 3) << (2 * j)));
        if (type == QS_DT_Q3_K) set_bit(b + l, 4 * h + j, code >> 2);
        break;
    }
    default: break;
    }
}
