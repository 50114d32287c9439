/* Unicode helpers for the tokenizers: UTF-8 decoding the way llama.cpp does it (an invalid byte
 * becomes U+FFFD), encoding, and the letter / number / whitespace classes that GPT-2 style
 * pre-tokenizers split on. */
#ifndef QS_UNICODE_H
#define QS_UNICODE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t first, last;
    int flag; /* QS_UNI_LETTER or QS_UNI_NUMBER */
} qs_unicode_range;

enum { QS_UNI_LETTER = 1, QS_UNI_NUMBER = 2 };

extern const qs_unicode_range qs_unicode_ranges[];
extern const int qs_unicode_n_ranges;

/* Length of the UTF-8 sequence that starts with byte c (1 for invalid lead bytes). */
int qs_utf8_len(uint8_t c);

/* Decodes s[0..n) into code points (malloc'd, caller frees); invalid sequences give U+FFFD
 * and skip one byte, as llama.cpp's unicode_cpts_from_utf8 does. */
uint32_t *qs_utf8_decode(const char *s, size_t n, size_t *n_cpts);

/* Writes cp as UTF-8 into out (>= 4 bytes); returns the byte count. */
int qs_utf8_encode(uint32_t cp, char *out);

int qs_unicode_class(uint32_t cp); /* 0, QS_UNI_LETTER or QS_UNI_NUMBER */
int qs_unicode_is_space(uint32_t cp); /* Unicode White_Space property */

#endif
