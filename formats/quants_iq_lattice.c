/* The lattice search tables of the i-quants (quants_iq.h): map and neighbour lists computed from
 * a family's codebook, as ggml computes them at ggml_quantize_init. */
#include "formats/quants_iq.h"
#include "formats/tensor.h"

#include <stdlib.h>
#include <string.h>

static void lattice_free(nm_iq_lattice *lat) {
    free(lat->pos);
    free(lat->map);
    free(lat->neighbours);
    memset(lat, 0, sizeof *lat);
}

int nm_iq_lattice_build(nm_iq_lattice *lat, int dim, int bits, int size, int map_size, int nwant,
                        const uint8_t *levels) {
    memset(lat, 0, sizeof *lat);
    lat->dim = dim;
    lat->bits = bits;
    lat->size = size;
    lat->map_size = map_size;
    lat->pos = malloc((size_t)size * (size_t)dim);
    lat->map = malloc((size_t)map_size * sizeof *lat->map);
    int *d2 = malloc((size_t)size * sizeof *d2);
    size_t cap = 1 << 16, used = 0;
    lat->neighbours = malloc(cap * sizeof *lat->neighbours);
    if (!lat->pos || !lat->map || !d2 || !lat->neighbours)
        goto oom;
    for (int k = 0; k < size * dim; k++)
        lat->pos[k] = (int8_t)(2 * levels[k] + 1);
    for (int u = 0; u < map_size; u++)
        lat->map[u] = -1;
    for (int k = 0; k < size; k++) {
        int u = 0;
        for (int i = 0; i < dim; i++)
            u |= levels[k * dim + i] << (bits * i);
        lat->map[u] = k;
    }
    const int mask = (1 << bits) - 1;
    for (int u = 0; u < map_size; u++) {
        if (lat->map[u] >= 0)
            continue;
        /* The 2-bit codebooks use levels 0..2 only and the quantizers never form level 3:
         * indices holding a 3 are never looked up (ggml fills them anyway). */
        int8_t p[8];
        int skip = 0;
        for (int i = 0; i < dim; i++) {
            int l = (u >> (bits * i)) & mask;
            skip |= bits == 2 && l == 3;
            p[i] = (int8_t)(2 * l + 1);
        }
        if (skip)
            continue;
        int dmin[3] = {0x7fffffff, 0x7fffffff, 0x7fffffff}, ndist = 0;
        for (int j = 0; j < size; j++) {
            int s = 0;
            for (int i = 0; i < dim; i++) {
                int diff = lat->pos[j * dim + i] - p[i];
                s += diff * diff;
            }
            d2[j] = s;
            /* keep the nwant smallest distinct distances, ascending */
            int at = 0;
            while (at < ndist && dmin[at] < s)
                at++;
            if (at < ndist && dmin[at] == s)
                continue;
            if (at >= nwant)
                continue;
            for (int m = (ndist < nwant ? ndist : nwant - 1); m > at; m--)
                dmin[m] = dmin[m - 1];
            dmin[at] = s;
            if (ndist < nwant)
                ndist++;
        }
        /* ordered by distance, then index (ggml sorts (d2, j) pairs) */
        size_t start = used;
        if (used + 1 + (size_t)size > cap) {
            while (used + 1 + (size_t)size > cap)
                cap *= 2;
            uint16_t *grown = realloc(lat->neighbours, cap * sizeof *grown);
            if (!grown)
                goto oom;
            lat->neighbours = grown;
        }
        used++;
        for (int m = 0; m < ndist; m++)
            for (int j = 0; j < size; j++)
                if (d2[j] == dmin[m])
                    lat->neighbours[used++] = (uint16_t)j;
        lat->neighbours[start] = (uint16_t)(used - start - 1);
        lat->map[u] = -(int32_t)start - 1;
    }
    free(d2);
    return 0;
oom:
    free(d2);
    lattice_free(lat);
    return -1;
}

/* Each family file provides its lattices (built once). */
const nm_iq_lattice *nm_iq3_lattice(int grid_size);
const nm_iq_lattice *nm_iq2_lattice(int grid_size);
const nm_iq_lattice *nm_iq1_lattice(void);

const nm_iq_lattice *nm_iq_lattice_for(uint32_t type) {
    switch (type) {
    case GGML_TYPE_IQ3_XXS: return nm_iq3_lattice(256);
    case GGML_TYPE_IQ3_S: return nm_iq3_lattice(512);
    case GGML_TYPE_IQ2_XXS: return nm_iq2_lattice(256);
    case GGML_TYPE_IQ2_XS: return nm_iq2_lattice(512);
    case GGML_TYPE_IQ2_S: return nm_iq2_lattice(1024);
    case GGML_TYPE_IQ1_S: case GGML_TYPE_IQ1_M: return nm_iq1_lattice();
    default: return NULL;
    }
}

int nm_iq_prepare(uint32_t type) {
    switch (type) {
    case GGML_TYPE_IQ3_XXS: case GGML_TYPE_IQ3_S: case GGML_TYPE_IQ2_XXS: case GGML_TYPE_IQ2_XS:
    case GGML_TYPE_IQ2_S: case GGML_TYPE_IQ1_S: case GGML_TYPE_IQ1_M:
        return nm_iq_lattice_for(type) ? 0 : -1;
    default:
        return 0;
    }
}
