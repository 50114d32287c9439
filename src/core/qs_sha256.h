/* SHA-256 (FIPS 180-4), for model fingerprints and for checking tensors against an oracle. */
#ifndef QS_SHA256_H
#define QS_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t n;
} qs_sha256;

void qs_sha256_init(qs_sha256 *s);
void qs_sha256_update(qs_sha256 *s, const void *data, size_t n);
void qs_sha256_final(qs_sha256 *s, uint8_t out[32]);
/* hex digest of data (out: 65 bytes) */
void qs_sha256_hex(const void *data, size_t n, char out[65]);

#endif
