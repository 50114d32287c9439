/* The codebooks of llama.cpp's lattice i-quants as its quantizers search them: each entry's
 * values as odd positions 2 l + 1 (l the level index), a map from a word of level indices to
 * the entry that holds exactly those levels, and for every word no entry holds, the entries
 * nearest to it (squared distance over positions, the nwant nearest distances, ties by entry
 * order), as llama.cpp's iq2xs_init_impl / iq3xs_init_impl build them. Built on first use. */
#ifndef QS_IQ_LATTICE_H
#define QS_IQ_LATTICE_H

#include <stdint.h>

typedef enum { QS_LAT_IQ2XXS, QS_LAT_IQ2XS, QS_LAT_IQ2S, QS_LAT_IQ1S, QS_LAT_IQ3XXS, QS_LAT_IQ3S, QS_LAT_COUNT } qs_lattice_id;

typedef struct {
    int n;                      /* entries */
    int width;                  /* values per entry: 8 (iq2, iq1) or 4 (iq3) */
    int bits;                   /* bits per level index in a word: 2 or 3 */
    const uint8_t *pos;         /* n x width positions 2 l + 1 */
    const int32_t *map;         /* word -> entry, or -(k + 1): the word's neighbour list starts at k */
    const uint16_t *neighbours; /* at k: a count c, then c entries */
} qs_lattice;

/* the lattice, or NULL when out of memory */
const qs_lattice *qs_lattice_get(qs_lattice_id id);

/* the word of level indices L[0..width) */
static inline int qs_lattice_word(const qs_lattice *lat, const int8_t *L) {
    int u = 0;
    for (int i = 0; i < lat->width; i++) u |= L[i] << (lat->bits * i);
    return u;
}

/* Among the neighbours of word u (not in the codebook), the entry minimising
 * sum weight (scale pos - xval)^2; writes its level indices to L and returns it. */
int qs_lattice_best_neighbour(const qs_lattice *lat, int u, const float *xval, const float *weight, float scale, int8_t *L);

#endif
