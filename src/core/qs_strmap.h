/* qs_strmap: an open-addressing hash map from byte strings to int, for vocabularies
 * (token text -> id) and BPE merge ranks ("left right" -> rank). Keys are copied. */
#ifndef QS_STRMAP_H
#define QS_STRMAP_H

#include <stddef.h>

typedef struct qs_strmap qs_strmap;

qs_strmap *qs_strmap_new(size_t expected);
void qs_strmap_free(qs_strmap *m);
/* Inserts or replaces; returns 0, or -1 when out of memory. */
int qs_strmap_put(qs_strmap *m, const char *key, size_t len, int value);
/* Returns the value, or -1 when absent. */
int qs_strmap_get(const qs_strmap *m, const char *key, size_t len);
size_t qs_strmap_count(const qs_strmap *m);

#endif
