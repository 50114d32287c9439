/* UTF-8 and character classes for the tokenizers (see unicode.h). */
#include "tok/unicode.h"

#include <stdlib.h>

int qs_utf8_len(uint8_t c) {
    static const int lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[c >> 4];
}

/* Decodes one code point at s[*off]; returns -1 if the sequence is invalid or truncated. */
static int64_t decode_one(const uint8_t *s, size_t n, size_t *off) {
    size_t i = *off;
    uint8_t c = s[i];
    if (!(c & 0x80)) { *off = i + 1; return c; }
    if ((c & 0xe0) == 0xc0) {
        if (i + 1 >= n || (s[i + 1] & 0xc0) != 0x80) return -1;
        *off = i + 2;
        return ((c & 0x1f) << 6) | (s[i + 1] & 0x3f);
    }
    if ((c & 0xf0) == 0xe0) {
        if (i + 2 >= n || (s[i + 1] & 0xc0) != 0x80 || (s[i + 2] & 0xc0) != 0x80) return -1;
        *off = i + 3;
        return ((c & 0x0f) << 12) | ((s[i + 1] & 0x3f) << 6) | (s[i + 2] & 0x3f);
    }
    if ((c & 0xf8) == 0xf0) {
        if (i + 3 >= n || (s[i + 1] & 0xc0) != 0x80 || (s[i + 2] & 0xc0) != 0x80 || (s[i + 3] & 0xc0) != 0x80)
            return -1;
        *off = i + 4;
        return ((c & 0x07) << 18) | ((s[i + 1] & 0x3f) << 12) | ((s[i + 2] & 0x3f) << 6) | (s[i + 3] & 0x3f);
    }
    return -1;
}

uint32_t *qs_utf8_decode(const char *s, size_t n, size_t *n_cpts) {
    uint32_t *out = malloc(sizeof(uint32_t) * (n ? n : 1));
    if (!out) return NULL;
    size_t k = 0, off = 0;
    while (off < n) {
        int64_t cp = decode_one((const uint8_t *)s, n, &off);
        if (cp < 0) {
            out[k++] = 0xFFFD;
            off++;
        } else {
            out[k++] = (uint32_t)cp;
        }
    }
    *n_cpts = k;
    return out;
}

int qs_utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

int qs_unicode_class(uint32_t cp) {
    int lo = 0, hi = qs_unicode_n_ranges - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < qs_unicode_ranges[mid].first) hi = mid - 1;
        else if (cp > qs_unicode_ranges[mid].last) lo = mid + 1;
        else return qs_unicode_ranges[mid].flag;
    }
    return 0;
}

int qs_unicode_is_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f ||
           cp == 0x3000;
}
