/* The i-quant lattices (see iq_lattice.h), built from the codebooks in core/qs_iq_grids.c. */
#include "quant/iq_lattice.h"

#include <float.h>
#include <pthread.h>
#include <stdlib.h>

#include "core/qs_dtype_iq.h"

typedef struct {
    const uint16_t *packed;
    int n, width, bits, nwant;
} lattice_def;

/* nwant: how many of the nearest distinct distances a word's neighbour list spans */
static const lattice_def DEFS[QS_LAT_COUNT] = {
    [QS_LAT_IQ2XXS] = {qs_iq2xxs_packed, 256, 8, 2, 2}, [QS_LAT_IQ2XS] = {qs_iq2xs_packed, 512, 8, 2, 2},
    [QS_LAT_IQ2S] = {qs_iq2s_packed, 1024, 8, 2, 1},    [QS_LAT_IQ1S] = {qs_iq1s_packed, 2048, 8, 2, 3},
    [QS_LAT_IQ3XXS] = {qs_iq3xxs_packed, 256, 4, 3, 2}, [QS_LAT_IQ3S] = {qs_iq3s_packed, 512, 4, 3, 3},
};

static qs_lattice lattices[QS_LAT_COUNT];
static int built_ok[QS_LAT_COUNT];
static pthread_once_t once[QS_LAT_COUNT] = {PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT,
                                            PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT};

/* the largest level index a quantizer puts in a word: 2 for the 3-level lattices, 7 for iq3 */
static int max_level(const lattice_def *d) { return d->bits == 2 ? 2 : 7; }

static int build(qs_lattice_id id) {
    const lattice_def *d = &DEFS[id];
    qs_lattice *lat = &lattices[id];
    const int mask = (1 << d->bits) - 1, words = 1 << (d->bits * d->width);
    uint8_t *pos = malloc((size_t)d->n * (size_t)d->width);
    int32_t *map = malloc(sizeof(int32_t) * (size_t)words);
    int *dist = malloc(sizeof(int) * (size_t)d->n);
    size_t cap = 1 << 16, used = 0;
    uint16_t *nb = malloc(sizeof(uint16_t) * cap);
    if (!pos || !map || !dist || !nb) goto fail;
    for (int e = 0; e < d->n; e++)
        for (int j = 0; j < d->width; j++) pos[e * d->width + j] = (uint8_t)(2 * ((d->packed[e] >> (d->bits * j)) & mask) + 1);
    for (int u = 0; u < words; u++) map[u] = -1;
    for (int e = 0; e < d->n; e++) map[d->packed[e]] = e;
    for (int u = 0; u < words; u++) {
        if (map[u] >= 0) continue;
        int valid = 1, p[8];
        for (int j = 0; j < d->width; j++) {
            const int l = (u >> (d->bits * j)) & mask;
            valid &= l <= max_level(d);
            p[j] = 2 * l + 1;
        }
        if (!valid) continue; /* no quantizer forms this word */
        for (int e = 0; e < d->n; e++) {
            int d2 = 0;
            for (int j = 0; j < d->width; j++) d2 += (pos[e * d->width + j] - p[j]) * (pos[e * d->width + j] - p[j]);
            dist[e] = d2;
        }
        /* the nwant smallest distinct distances; the list is every entry at one of them, in
         * order of distance then entry (llama.cpp sorts (distance, entry) pairs) */
        int levels[3], nl = 0;
        while (nl < d->nwant) {
            int best = -1;
            for (int e = 0; e < d->n; e++)
                if ((nl == 0 || dist[e] > levels[nl - 1]) && (best < 0 || dist[e] < best)) best = dist[e];
            if (best < 0) break;
            levels[nl++] = best;
        }
        const size_t start = used;
        if (used + 1 + (size_t)d->n > cap) {
            uint16_t *grown = realloc(nb, sizeof(uint16_t) * (cap = cap * 2 + (size_t)d->n));
            if (!grown) goto fail;
            nb = grown;
        }
        used++;
        for (int t = 0; t < nl; t++)
            for (int e = 0; e < d->n; e++)
                if (dist[e] == levels[t]) nb[used++] = (uint16_t)e;
        nb[start] = (uint16_t)(used - start - 1);
        map[u] = -(int32_t)start - 1;
    }
    free(dist);
    *lat = (qs_lattice){d->n, d->width, d->bits, pos, map, nb};
    return 1;
fail:
    free(pos), free(map), free(dist), free(nb);
    return 0;
}

#define ONCE(ID) static void once_##ID(void) { built_ok[ID] = build(ID); }
ONCE(QS_LAT_IQ2XXS)
ONCE(QS_LAT_IQ2XS)
ONCE(QS_LAT_IQ2S)
ONCE(QS_LAT_IQ1S)
ONCE(QS_LAT_IQ3XXS)
ONCE(QS_LAT_IQ3S)

const qs_lattice *qs_lattice_get(qs_lattice_id id) {
    static void (*const init[QS_LAT_COUNT])(void) = {once_QS_LAT_IQ2XXS, once_QS_LAT_IQ2XS, once_QS_LAT_IQ2S,
                                                     once_QS_LAT_IQ1S,   once_QS_LAT_IQ3XXS, once_QS_LAT_IQ3S};
    if (id < 0 || id >= QS_LAT_COUNT) return NULL;
    pthread_once(&once[id], init[id]);
    return built_ok[id] ? &lattices[id] : NULL;
}

int qs_lattice_best_neighbour(const qs_lattice *lat, int u, const float *xval, const float *weight, float scale, int8_t *L) {
    const uint16_t *list = lat->neighbours - lat->map[u] - 1;
    float best_d2 = FLT_MAX;
    int best = list[1];
    for (int k = 1; k <= list[0]; ++k) {
        const uint8_t *pg = lat->pos + (size_t)list[k] * (size_t)lat->width;
        float d2 = 0;
        for (int i = 0; i < lat->width; ++i) {
            const float q = pg[i];
            const float diff = scale * q - xval[i];
            d2 += weight[i] * diff * diff;
        }
        if (d2 < best_d2) {
            best_d2 = d2;
            best = list[k];
        }
    }
    const uint8_t *pg = lat->pos + (size_t)best * (size_t)lat->width;
    for (int i = 0; i < lat->width; ++i) L[i] = (int8_t)((pg[i] - 1) / 2);
    return best;
}
