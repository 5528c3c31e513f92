/* Shared by the i-quant files (quants_iq1.c, quants_iq2.c, quants_iq3.c) and the i-quant dot
 * kernels (kernels/dot_iq*.c): the codebooks, and the lattice search tables llama.cpp's
 * quantizers use, built once from each family's codebook.
 *
 * A lattice i-quant stores each group of 8 (IQ2_*, IQ1_*) or 4 (IQ3_*) magnitudes as an index
 * into a codebook (its grid, data in the family's file). The quantizer works with levels
 * l = 0, 1, 2, ... per coordinate, at positions 2l+1; a group of levels packs into a map index
 * u = sum l_i << (bits*i). For u on the grid, map[u] is the grid index; for u off the grid, the
 * search takes the grid points at the nwant smallest distinct squared distances from u (ordered
 * by distance, then index), exactly as ggml's iq2xs_init_impl / iq3xs_init_impl do. */
#ifndef NOMOAT_QUANTS_IQ_H
#define NOMOAT_QUANTS_IQ_H

#include <stdint.h>

/* The codebooks as ggml-common.h defines them (data in the family files): IQ2_XXS 256, IQ2_XS
 * 512, IQ2_S 1024 points of 8 magnitudes (bytes 8, 25, 43); IQ3_XXS 256 and IQ3_S 512 points of
 * 4 magnitudes; IQ1_S/IQ1_M 2048 points of 8 coordinates -1, 0, 1 (int8). */
extern const uint64_t nm_iq2xxs_grid[256], nm_iq2xs_grid[512], nm_iq2s_grid[1024], nm_iq1s_grid[2048];
extern const uint32_t nm_iq3xxs_grid[256], nm_iq3s_grid[512];

typedef struct nm_iq_lattice {
    int dim;                    /* coordinates per grid point: 8 or 4 */
    int bits;                   /* bits per coordinate in a map index: 2 or 3 */
    int size;                   /* grid points */
    int map_size;               /* map indices covered (ggml's kmap_size) */
    int8_t *pos;                /* size * dim positions 2l+1 */
    int32_t *map;               /* >= 0: grid index; < 0: -(1 + offset into neighbours) */
    uint16_t *neighbours;       /* at each offset: count, then that many grid indices */
} nm_iq_lattice;

/* Builds lat from levels[size * dim] (the level of each coordinate of each grid point).
 * Returns 0, or -1 when memory runs out (lat is then left empty). */
int nm_iq_lattice_build(nm_iq_lattice *lat, int dim, int bits, int size, int map_size, int nwant,
                        const uint8_t *levels);

/* The packed map index of dim levels. */
static inline int nm_iq_index(const nm_iq_lattice *lat, const int8_t *L) {
    int u = 0;
    for (int i = 0; i < lat->dim; i++)
        u |= L[i] << (lat->bits * i);
    return u;
}

/* The off-grid neighbour list of map index u (map[u] < 0): list[0] = count, then indices. */
static inline const uint16_t *nm_iq_neighbours(const nm_iq_lattice *lat, int u) {
    return lat->neighbours + (-lat->map[u] - 1);
}

/* ggml's ksigns_iq2xs: 7 stored sign bits plus an eighth that makes the count of minus signs
 * even (the quantizers flip the smallest weighted value to make it so). */
static inline uint8_t nm_iq_signs(unsigned s7) {
    return (uint8_t)(s7 | (unsigned)(__builtin_popcount(s7) & 1) << 7);
}

/* Lattices by ggml type (IQ1_S and IQ1_M share one), built on first use. NULL when memory ran
 * out. nm_iq_prepare(type) builds the type's lattice (0, or -1 without memory) so the row
 * kernels can assume it. */
const nm_iq_lattice *nm_iq_lattice_for(uint32_t type);
int nm_iq_prepare(uint32_t type);
/* ggml_quantize_requires_imatrix: the types whose quantizer needs importance weights (IQ2_XXS,
 * IQ2_XS, IQ1_S). llama-quantize asks for them for more types (quantize/recipe.c). */
static inline int nm_iq_requires_imatrix(uint32_t type) {
    return type == 16 /* IQ2_XXS */ || type == 17 /* IQ2_XS */ || type == 19 /* IQ1_S */;
}


/* ggml's iq2/iq3_find_best_neighbour: among the neighbour list nb of an off-grid group, the grid
 * point closest to xval at this scale (weighted squared error, first one on ties); writes its
 * levels to L and returns its index. */
static inline int nm_iq_best_neighbour(const nm_iq_lattice *lat, const uint16_t *nb, const float *xval,
                                       const float *w, float scale, int8_t *L) {
    float best = 3.40282347e+38f;
    int index = nb[1];
    for (int j = 1; j <= nb[0]; j++) {
        const int8_t *pg = lat->pos + nb[j] * lat->dim;
        float d2 = 0;
        for (int i = 0; i < lat->dim; i++) {
            float diff = scale * (float)pg[i] - xval[i];
            d2 += w[i] * diff * diff;
        }
        if (d2 < best) {
            best = d2;
            index = nb[j];
        }
    }
    const int8_t *pg = lat->pos + index * lat->dim;
    for (int i = 0; i < lat->dim; i++)
        L[i] = (int8_t)((pg[i] - 1) / 2);
    return index;
}

#endif
