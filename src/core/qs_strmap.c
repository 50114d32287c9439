/* qs_strmap: linear-probing hash table (see qs_strmap.h). */
#include "core/qs_strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *key; /* NULL = empty slot */
    size_t len;
    uint64_t hash;
    int value;
} slot;

struct qs_strmap {
    slot *slots;
    size_t cap, count;
};

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

qs_strmap *qs_strmap_new(size_t expected) {
    qs_strmap *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    size_t cap = 16;
    while (cap < expected * 2 + 1) cap *= 2;
    m->slots = calloc(cap, sizeof(slot));
    if (!m->slots) { free(m); return NULL; }
    m->cap = cap;
    return m;
}

void qs_strmap_free(qs_strmap *m) {
    if (!m) return;
    for (size_t i = 0; i < m->cap; i++) free(m->slots[i].key);
    free(m->slots);
    free(m);
}

static slot *find(const qs_strmap *m, const char *key, size_t len, uint64_t h) {
    size_t i = h & (m->cap - 1);
    for (;;) {
        slot *s = &m->slots[i];
        if (!s->key || (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0)) return s;
        i = (i + 1) & (m->cap - 1);
    }
}

static int grow(qs_strmap *m) {
    size_t ncap = m->cap * 2;
    slot *ns = calloc(ncap, sizeof(slot));
    if (!ns) return -1;
    for (size_t i = 0; i < m->cap; i++) {
        slot *s = &m->slots[i];
        if (!s->key) continue;
        size_t j = s->hash & (ncap - 1);
        while (ns[j].key) j = (j + 1) & (ncap - 1);
        ns[j] = *s;
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return 0;
}

int qs_strmap_put(qs_strmap *m, const char *key, size_t len, int value) {
    if ((m->count + 1) * 2 > m->cap && grow(m) != 0) return -1;
    uint64_t h = hash_bytes(key, len);
    slot *s = find(m, key, len, h);
    if (!s->key) {
        s->key = malloc(len + 1);
        if (!s->key) return -1;
        memcpy(s->key, key, len);
        s->key[len] = 0;
        s->len = len;
        s->hash = h;
        m->count++;
    }
    s->value = value;
    return 0;
}

int qs_strmap_get(const qs_strmap *m, const char *key, size_t len) {
    const slot *s = find(m, key, len, hash_bytes(key, len));
    return s->key ? s->value : -1;
}

size_t qs_strmap_count(const qs_strmap *m) { return m->count; }
