/* IQ3_XXS (3.0625 bpw) and IQ3_S (3.4375 bpw): 3-bit lattice i-quants, scalar reference
 * quantizers and dequantizers byte-identical to llama.cpp's (ggml-quants.c,
 * quantize_row_iq3_xxs_impl / quantize_row_iq3_s_impl). Built with -ffp-contract=off; every
 * expression keeps ggml's operand order.
 *
 * Block layouts (256 values each, groups of 4 magnitudes are codebook indices):
 *   IQ3_XXS (98 bytes): f16 d | qs[64] grid indices (8 bits) | 8 x u32: four 7-bit sign sets
 *                       (bit 8 of each set implied: even parity) and a 4-bit scale in bits 28..31;
 *                       value = d * (0.5 + s) * 0.5 * grid * sign
 *   IQ3_S   (110 bytes): f16 d | qs[64] index low bits | qh[8] index bit 8 | signs[32] (8 per
 *                       group of 8) | scales[4] (two 4-bit scales per 64 values);
 *                       value = d * (1 + 2s) * grid * sign */
#include "formats/quants_iq.h"
#include "formats/quants_simd.h"
#include "formats/tensor.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

/* The codebooks, as ggml defines them in ggml-common.h (nm_iq3xxs_grid, nm_iq3s_grid): each u32 holds
 * the four magnitudes of one grid point, one byte each, lowest byte first. IQ3_XXS's bytes are
 * 4, 12, 20, ..., 52, 62 (levels 0..7); IQ3_S's are 1, 3, ..., 15 (level l at 2l+1). */
const uint32_t nm_iq3xxs_grid[256] = {
    0x04040404, 0x04040414, 0x04040424, 0x04040c0c, 0x04040c1c, 0x04040c3e, 0x04041404, 0x04041414,
    0x04041c0c, 0x04042414, 0x04043e1c, 0x04043e2c, 0x040c040c, 0x040c041c, 0x040c0c04, 0x040c0c14,
    0x040c140c, 0x040c142c, 0x040c1c04, 0x040c1c14, 0x040c240c, 0x040c2c24, 0x040c3e04, 0x04140404,
    0x04140414, 0x04140424, 0x04140c0c, 0x04141404, 0x04141414, 0x04141c0c, 0x04141c1c, 0x04141c3e,
    0x04142c0c, 0x04142c3e, 0x04143e2c, 0x041c040c, 0x041c043e, 0x041c0c04, 0x041c0c14, 0x041c142c,
    0x041c3e04, 0x04240c1c, 0x04241c3e, 0x04242424, 0x04242c3e, 0x04243e1c, 0x04243e2c, 0x042c040c,
    0x042c043e, 0x042c1c14, 0x042c2c14, 0x04341c2c, 0x04343424, 0x043e0c04, 0x043e0c24, 0x043e0c34,
    0x043e241c, 0x043e340c, 0x0c04040c, 0x0c04041c, 0x0c040c04, 0x0c040c14, 0x0c04140c, 0x0c04141c,
    0x0c041c04, 0x0c041c14, 0x0c041c24, 0x0c04243e, 0x0c042c04, 0x0c0c0404, 0x0c0c0414, 0x0c0c0c0c,
    0x0c0c1404, 0x0c0c1414, 0x0c14040c, 0x0c14041c, 0x0c140c04, 0x0c140c14, 0x0c14140c, 0x0c141c04,
    0x0c143e14, 0x0c1c0404, 0x0c1c0414, 0x0c1c1404, 0x0c1c1c0c, 0x0c1c2434, 0x0c1c3434, 0x0c24040c,
    0x0c24042c, 0x0c242c04, 0x0c2c1404, 0x0c2c1424, 0x0c2c2434, 0x0c2c3e0c, 0x0c34042c, 0x0c3e1414,
    0x0c3e2404, 0x14040404, 0x14040414, 0x14040c0c, 0x14040c1c, 0x14041404, 0x14041414, 0x14041434,
    0x14041c0c, 0x14042414, 0x140c040c, 0x140c041c, 0x140c042c, 0x140c0c04, 0x140c0c14, 0x140c140c,
    0x140c1c04, 0x140c341c, 0x140c343e, 0x140c3e04, 0x14140404, 0x14140414, 0x14140c0c, 0x14140c3e,
    0x14141404, 0x14141414, 0x14141c3e, 0x14142404, 0x14142c2c, 0x141c040c, 0x141c0c04, 0x141c0c24,
    0x141c3e04, 0x141c3e24, 0x14241c2c, 0x14242c1c, 0x142c041c, 0x142c143e, 0x142c240c, 0x142c3e24,
    0x143e040c, 0x143e041c, 0x143e0c34, 0x143e242c, 0x1c04040c, 0x1c040c04, 0x1c040c14, 0x1c04140c,
    0x1c04141c, 0x1c042c04, 0x1c04342c, 0x1c043e14, 0x1c0c0404, 0x1c0c0414, 0x1c0c1404, 0x1c0c1c0c,
    0x1c0c2424, 0x1c0c2434, 0x1c14040c, 0x1c14041c, 0x1c140c04, 0x1c14142c, 0x1c142c14, 0x1c143e14,
    0x1c1c0c0c, 0x1c1c1c1c, 0x1c241c04, 0x1c24243e, 0x1c243e14, 0x1c2c0404, 0x1c2c0434, 0x1c2c1414,
    0x1c2c2c2c, 0x1c340c24, 0x1c341c34, 0x1c34341c, 0x1c3e1c1c, 0x1c3e3404, 0x24040424, 0x24040c3e,
    0x24041c2c, 0x24041c3e, 0x24042c1c, 0x24042c3e, 0x240c3e24, 0x24141404, 0x24141c3e, 0x24142404,
    0x24143404, 0x24143434, 0x241c043e, 0x241c242c, 0x24240424, 0x24242c0c, 0x24243424, 0x242c142c,
    0x242c241c, 0x242c3e04, 0x243e042c, 0x243e0c04, 0x243e0c14, 0x243e1c04, 0x2c040c14, 0x2c04240c,
    0x2c043e04, 0x2c0c0404, 0x2c0c0434, 0x2c0c1434, 0x2c0c2c2c, 0x2c140c24, 0x2c141c14, 0x2c143e14,
    0x2c1c0414, 0x2c1c2c1c, 0x2c240c04, 0x2c24141c, 0x2c24143e, 0x2c243e14, 0x2c2c0414, 0x2c2c1c0c,
    0x2c342c04, 0x2c3e1424, 0x2c3e2414, 0x34041424, 0x34042424, 0x34042434, 0x34043424, 0x340c140c,
    0x340c340c, 0x34140c3e, 0x34143424, 0x341c1c04, 0x341c1c34, 0x34242424, 0x342c042c, 0x342c2c14,
    0x34341c1c, 0x343e041c, 0x343e140c, 0x3e04041c, 0x3e04042c, 0x3e04043e, 0x3e040c04, 0x3e041c14,
    0x3e042c14, 0x3e0c1434, 0x3e0c2404, 0x3e140c14, 0x3e14242c, 0x3e142c14, 0x3e1c0404, 0x3e1c0c2c,
    0x3e1c1c1c, 0x3e1c3404, 0x3e24140c, 0x3e24240c, 0x3e2c0404, 0x3e2c0414, 0x3e2c1424, 0x3e341c04,
};
const uint32_t nm_iq3s_grid[512] = {
    0x01010101, 0x01010103, 0x01010105, 0x0101010b, 0x0101010f, 0x01010301, 0x01010303, 0x01010305,
    0x01010309, 0x0101030d, 0x01010501, 0x01010503, 0x0101050b, 0x01010707, 0x01010901, 0x01010905,
    0x0101090b, 0x0101090f, 0x01010b03, 0x01010b07, 0x01010d01, 0x01010d05, 0x01010f03, 0x01010f09,
    0x01010f0f, 0x01030101, 0x01030103, 0x01030105, 0x01030109, 0x01030301, 0x01030303, 0x0103030b,
    0x01030501, 0x01030507, 0x0103050f, 0x01030703, 0x0103070b, 0x01030909, 0x01030d03, 0x01030d0b,
    0x01030f05, 0x01050101, 0x01050103, 0x0105010b, 0x0105010f, 0x01050301, 0x01050307, 0x0105030d,
    0x01050503, 0x0105050b, 0x01050701, 0x01050709, 0x01050905, 0x0105090b, 0x0105090f, 0x01050b03,
    0x01050b07, 0x01050f01, 0x01050f07, 0x01070107, 0x01070303, 0x0107030b, 0x01070501, 0x01070505,
    0x01070703, 0x01070707, 0x0107070d, 0x01070909, 0x01070b01, 0x01070b05, 0x01070d0f, 0x01070f03,
    0x01070f0b, 0x01090101, 0x01090307, 0x0109030f, 0x01090503, 0x01090509, 0x01090705, 0x01090901,
    0x01090907, 0x01090b03, 0x01090f01, 0x010b0105, 0x010b0109, 0x010b0501, 0x010b0505, 0x010b050d,
    0x010b0707, 0x010b0903, 0x010b090b, 0x010b090f, 0x010b0d0d, 0x010b0f07, 0x010d010d, 0x010d0303,
    0x010d0307, 0x010d0703, 0x010d0b05, 0x010d0f03, 0x010f0101, 0x010f0105, 0x010f0109, 0x010f0501,
    0x010f0505, 0x010f050d, 0x010f0707, 0x010f0b01, 0x010f0b09, 0x03010101, 0x03010103, 0x03010105,
    0x03010109, 0x03010301, 0x03010303, 0x03010307, 0x0301030b, 0x0301030f, 0x03010501, 0x03010505,
    0x03010703, 0x03010709, 0x0301070d, 0x03010b09, 0x03010b0d, 0x03010d03, 0x03010f05, 0x03030101,
    0x03030103, 0x03030107, 0x0303010d, 0x03030301, 0x03030309, 0x03030503, 0x03030701, 0x03030707,
    0x03030903, 0x03030b01, 0x03030b05, 0x03030f01, 0x03030f0d, 0x03050101, 0x03050305, 0x0305030b,
    0x0305030f, 0x03050501, 0x03050509, 0x03050705, 0x03050901, 0x03050907, 0x03050b0b, 0x03050d01,
    0x03050f05, 0x03070103, 0x03070109, 0x0307010f, 0x03070301, 0x03070307, 0x03070503, 0x0307050f,
    0x03070701, 0x03070709, 0x03070903, 0x03070d05, 0x03070f01, 0x03090107, 0x0309010b, 0x03090305,
    0x03090309, 0x03090703, 0x03090707, 0x03090905, 0x0309090d, 0x03090b01, 0x03090b09, 0x030b0103,
    0x030b0301, 0x030b0307, 0x030b0503, 0x030b0701, 0x030b0705, 0x030b0b03, 0x030d0501, 0x030d0509,
    0x030d050f, 0x030d0909, 0x030d090d, 0x030f0103, 0x030f0107, 0x030f0301, 0x030f0305, 0x030f0503,
    0x030f070b, 0x030f0903, 0x030f0d05, 0x030f0f01, 0x05010101, 0x05010103, 0x05010107, 0x0501010b,
    0x0501010f, 0x05010301, 0x05010305, 0x05010309, 0x0501030d, 0x05010503, 0x05010507, 0x0501050f,
    0x05010701, 0x05010705, 0x05010903, 0x05010907, 0x0501090b, 0x05010b01, 0x05010b05, 0x05010d0f,
    0x05010f01, 0x05010f07, 0x05010f0b, 0x05030101, 0x05030105, 0x05030301, 0x05030307, 0x0503030f,
    0x05030505, 0x0503050b, 0x05030703, 0x05030709, 0x05030905, 0x05030b03, 0x05050103, 0x05050109,
    0x0505010f, 0x05050503, 0x05050507, 0x05050701, 0x0505070f, 0x05050903, 0x05050b07, 0x05050b0f,
    0x05050f03, 0x05050f09, 0x05070101, 0x05070105, 0x0507010b, 0x05070303, 0x05070505, 0x05070509,
    0x05070703, 0x05070707, 0x05070905, 0x05070b01, 0x05070d0d, 0x05090103, 0x0509010f, 0x05090501,
    0x05090507, 0x05090705, 0x0509070b, 0x05090903, 0x05090f05, 0x05090f0b, 0x050b0109, 0x050b0303,
    0x050b0505, 0x050b070f, 0x050b0901, 0x050b0b07, 0x050b0f01, 0x050d0101, 0x050d0105, 0x050d010f,
    0x050d0503, 0x050d0b0b, 0x050d0d03, 0x050f010b, 0x050f0303, 0x050f050d, 0x050f0701, 0x050f0907,
    0x050f0b01, 0x07010105, 0x07010303, 0x07010307, 0x0701030b, 0x0701030f, 0x07010505, 0x07010703,
    0x07010707, 0x0701070b, 0x07010905, 0x07010909, 0x0701090f, 0x07010b03, 0x07010d07, 0x07010f03,
    0x07030103, 0x07030107, 0x0703010b, 0x07030309, 0x07030503, 0x07030507, 0x07030901, 0x07030d01,
    0x07030f05, 0x07030f0d, 0x07050101, 0x07050305, 0x07050501, 0x07050705, 0x07050709, 0x07050b01,
    0x07070103, 0x07070301, 0x07070309, 0x07070503, 0x07070507, 0x0707050f, 0x07070701, 0x07070903,
    0x07070907, 0x0707090f, 0x07070b0b, 0x07070f07, 0x07090107, 0x07090303, 0x0709030d, 0x07090505,
    0x07090703, 0x07090b05, 0x07090d01, 0x07090d09, 0x070b0103, 0x070b0301, 0x070b0305, 0x070b050b,
    0x070b0705, 0x070b0909, 0x070b0b0d, 0x070b0f07, 0x070d030d, 0x070d0903, 0x070f0103, 0x070f0107,
    0x070f0501, 0x070f0505, 0x070f070b, 0x09010101, 0x09010109, 0x09010305, 0x09010501, 0x09010509,
    0x0901050f, 0x09010705, 0x09010903, 0x09010b01, 0x09010f01, 0x09030105, 0x0903010f, 0x09030303,
    0x09030307, 0x09030505, 0x09030701, 0x0903070b, 0x09030907, 0x09030b03, 0x09030b0b, 0x09050103,
    0x09050107, 0x09050301, 0x0905030b, 0x09050503, 0x09050707, 0x09050901, 0x09050b0f, 0x09050d05,
    0x09050f01, 0x09070109, 0x09070303, 0x09070307, 0x09070501, 0x09070505, 0x09070703, 0x0907070b,
    0x09090101, 0x09090105, 0x09090509, 0x0909070f, 0x09090901, 0x09090f03, 0x090b010b, 0x090b010f,
    0x090b0503, 0x090b0d05, 0x090d0307, 0x090d0709, 0x090d0d01, 0x090f0301, 0x090f030b, 0x090f0701,
    0x090f0907, 0x090f0b03, 0x0b010105, 0x0b010301, 0x0b010309, 0x0b010505, 0x0b010901, 0x0b010909,
    0x0b01090f, 0x0b010b05, 0x0b010d0d, 0x0b010f09, 0x0b030103, 0x0b030107, 0x0b03010b, 0x0b030305,
    0x0b030503, 0x0b030705, 0x0b030f05, 0x0b050101, 0x0b050303, 0x0b050507, 0x0b050701, 0x0b05070d,
    0x0b050b07, 0x0b070105, 0x0b07010f, 0x0b070301, 0x0b07050f, 0x0b070909, 0x0b070b03, 0x0b070d0b,
    0x0b070f07, 0x0b090103, 0x0b090109, 0x0b090501, 0x0b090705, 0x0b09090d, 0x0b0b0305, 0x0b0b050d,
    0x0b0b0b03, 0x0b0b0b07, 0x0b0d0905, 0x0b0f0105, 0x0b0f0109, 0x0b0f0505, 0x0d010303, 0x0d010307,
    0x0d01030b, 0x0d010703, 0x0d010707, 0x0d010d01, 0x0d030101, 0x0d030501, 0x0d03050f, 0x0d030d09,
    0x0d050305, 0x0d050709, 0x0d050905, 0x0d050b0b, 0x0d050d05, 0x0d050f01, 0x0d070101, 0x0d070309,
    0x0d070503, 0x0d070901, 0x0d09050b, 0x0d090907, 0x0d090d05, 0x0d0b0101, 0x0d0b0107, 0x0d0b0709,
    0x0d0b0d01, 0x0d0d010b, 0x0d0d0901, 0x0d0f0303, 0x0d0f0307, 0x0f010101, 0x0f010109, 0x0f01010f,
    0x0f010501, 0x0f010505, 0x0f01070d, 0x0f010901, 0x0f010b09, 0x0f010d05, 0x0f030105, 0x0f030303,
    0x0f030509, 0x0f030907, 0x0f03090b, 0x0f050103, 0x0f050109, 0x0f050301, 0x0f05030d, 0x0f050503,
    0x0f050701, 0x0f050b03, 0x0f070105, 0x0f070705, 0x0f07070b, 0x0f070b07, 0x0f090103, 0x0f09010b,
    0x0f090307, 0x0f090501, 0x0f090b01, 0x0f0b0505, 0x0f0b0905, 0x0f0d0105, 0x0f0d0703, 0x0f0f0101,
};

#define IQ3_MAX_EPS_XXS 1e-8f /* ggml's GROUP_MAX_EPS_IQ3_XXS */

static inline uint8_t grid_byte(uint32_t g, int j) { return (uint8_t)(g >> (8 * j)); }

/* ---- lattices (ggml's iq3xs_init_impl: 4 coordinates of 3 bits, nwant 2 for 256, 3 for 512) ---- */

static nm_iq_lattice lattice_256, lattice_512;
static int lattice_256_ok, lattice_512_ok;
static pthread_once_t once_256 = PTHREAD_ONCE_INIT, once_512 = PTHREAD_ONCE_INIT;

static void build_256(void) {
    uint8_t levels[256 * 4];
    for (int k = 0; k < 256; k++)
        for (int i = 0; i < 4; i++) {
            uint8_t b = grid_byte(nm_iq3xxs_grid[k], i);
            levels[4 * k + i] = (uint8_t)(b == 62 ? 7 : (b - 4) / 8);
        }
    lattice_256_ok = nm_iq_lattice_build(&lattice_256, 4, 3, 256, 4096, 2, levels) == 0;
}

static void build_512(void) {
    uint8_t levels[512 * 4];
    for (int k = 0; k < 512; k++)
        for (int i = 0; i < 4; i++)
            levels[4 * k + i] = (uint8_t)((grid_byte(nm_iq3s_grid[k], i) - 1) / 2);
    lattice_512_ok = nm_iq_lattice_build(&lattice_512, 4, 3, 512, 4096, 3, levels) == 0;
}

const nm_iq_lattice *nm_iq3_lattice(int grid_size) {
    if (grid_size == 256) {
        pthread_once(&once_256, build_256);
        return lattice_256_ok ? &lattice_256 : NULL;
    }
    pthread_once(&once_512, build_512);
    return lattice_512_ok ? &lattice_512 : NULL;
}

/* ---- quantization ---- */

static inline float maxf(float a, float b) { return a > b ? a : b; }

/* Levels for the 32 magnitudes xval at inverse scale id, group by group; groups off the grid
 * take their best neighbour at scale `scale`. on_grid (may be NULL) records which were on it. */
static void iq3_levels(const nm_iq_lattice *lat, const float *xval, const float *waux, float id,
                       float scale, int8_t *L, bool *on_grid, const bool *skip) {
    for (int k = 0; k < 8; k++) {
        if (skip && skip[k])
            continue;
        for (int i = 0; i < 4; i++) {
            int l = nm_nearest_int(0.5f * (id * xval[4 * k + i] - 1));
            L[4 * k + i] = (int8_t)(l < 0 ? 0 : l > 7 ? 7 : l);
        }
        int u = nm_iq_index(lat, L + 4 * k);
        int gi = lat->map[u];
        if (on_grid)
            on_grid[k] = gi >= 0;
        if (gi < 0)
            gi = nm_iq_best_neighbour(lat, nm_iq_neighbours(lat, u), xval + 4 * k, waux + 4 * k, scale,
                                      L + 4 * k);
        const int8_t *pg = lat->pos + 4 * gi;
        for (int i = 0; i < 4; i++)
            L[4 * k + i] = (int8_t)((pg[i] - 1) / 2);
    }
}

static void sums(const float *weight, const float *xval, const int8_t *L, float *sumqx, float *sumq2) {
    float sx = 0, s2 = 0;
    for (int i = 0; i < 32; i++) {
        float w = weight[i];
        float q = (float)(2 * L[i] + 1);
        sx += w * xval[i] * q;
        s2 += w * q * q;
    }
    *sumqx = sx;
    *sumq2 = s2;
}

/* One 32-value sub-block: the scale (>= 0; 0 for an empty sub-block, when *empty is set), the
 * levels L and the four sign bytes (7 bits each with even parity for IQ3_XXS, 8 for IQ3_S). */
static float iq3_subblock(const nm_iq_lattice *lat, bool xxs, const float *xb, const float *weight,
                          int8_t *L, uint8_t *signs, bool *empty) {
    float waux[32], xval[32];
    int8_t Laux[32];
    bool on_grid[8], on_grid_aux[8];
    for (int i = 0; i < 32; i++)
        waux[i] = sqrtf(weight[i]);
    for (int k = 0; k < 4; k++) {
        int nflip = 0;
        uint8_t s = 0;
        for (int i = 0; i < 8; i++) {
            if (xb[8 * k + i] >= 0) {
                xval[8 * k + i] = xb[8 * k + i];
            } else {
                xval[8 * k + i] = -xb[8 * k + i];
                nflip++;
                s |= (uint8_t)(1 << i);
            }
        }
        if (xxs && nflip % 2) {
            /* an odd count of minus signs: flip the value that costs least */
            int imin = 0;
            float min = weight[8 * k] * xb[8 * k] * xb[8 * k];
            for (int i = 1; i < 8; i++) {
                float ax = weight[8 * k + i] * xb[8 * k + i] * xb[8 * k + i];
                if (ax < min) {
                    min = ax;
                    imin = i;
                }
            }
            xval[8 * k + imin] = -xval[8 * k + imin];
            s ^= (uint8_t)(1 << imin);
        }
        signs[k] = xxs ? s & 127 : s;
    }
    float max = xval[0];
    for (int i = 1; i < 32; i++)
        max = maxf(max, xval[i]);
    memset(L, 0, 32);
    *empty = xxs ? max < IQ3_MAX_EPS_XXS : !max;
    if (*empty)
        return 0;
    float best = 0;
    float scale = max / 15;
    for (int k = 0; k < 8; k++)
        on_grid[k] = xxs;
    const int steps = xxs ? 15 : 9;
    for (int is = -steps; is <= steps; is++) {
        float id = (15 + (float)is * 0.2f) / max;
        float this_scale = 1 / id;
        iq3_levels(lat, xval, waux, id, this_scale, Laux, on_grid_aux, NULL);
        float sumqx, sumq2;
        sums(weight, xval, Laux, &sumqx, &sumq2);
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            scale = sumqx / sumq2;
            best = scale * sumqx;
            memcpy(L, Laux, 32);
            memcpy(on_grid, on_grid_aux, sizeof on_grid);
        }
    }
    int n_off = 0;
    for (int k = 0; k < 8; k++)
        n_off += !on_grid[k];
    if (n_off > 0 && scale > 0) {
        /* IQ3_XXS redoes only the groups that were off the grid, IQ3_S all of them */
        iq3_levels(lat, xval, waux, 1 / scale, scale, L, NULL, xxs ? on_grid : NULL);
        float sumqx, sumq2;
        sums(weight, xval, L, &sumqx, &sumq2);
        if (sumq2 > 0)
            scale = sumqx / sumq2;
    }
    if (scale < 0) { /* ggml: "should never happen" */
        scale = -scale;
        for (int k = 0; k < 4; k++)
            signs[k] = (uint8_t)(xxs ? ~signs[k] & 127 : ~signs[k]);
    }
    return scale;
}

static void iq3_weights(const float *xb, const float *qw, float sigma2, float *weight) {
    for (int i = 0; i < 32; i++)
        weight[i] = qw ? qw[i] * sqrtf(sigma2 + xb[i] * xb[i]) : xb[i] * xb[i];
}

static float block_sigma2(const float *xbl) {
    float sumx2 = 0;
    for (int i = 0; i < 256; i++)
        sumx2 += xbl[i] * xbl[i];
    return 2 * sumx2 / 256;
}

static inline void put_f16(uint8_t *p, float v) {
    uint16_t h = nm_f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

void nm_iq3_xxs_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw) {
    const nm_iq_lattice *lat = nm_iq3_lattice(256);
    for (int64_t ibl = 0; ibl < n / 256; ibl++, y += 98) {
        const float *xbl = x + 256 * ibl;
        const float sigma2 = block_sigma2(xbl);
        float scales[8], weight[32];
        int8_t L[32];
        uint8_t signs[4];
        uint32_t sas[8] = {0};
        memset(y, 0, 98);
        float max_scale = 0;
        for (int ib = 0; ib < 8; ib++) {
            const float *xb = xbl + 32 * ib;
            iq3_weights(xb, qw ? qw + 256 * ibl + 32 * ib : NULL, sigma2, weight);
            bool empty;
            float scale = iq3_subblock(lat, true, xb, weight, L, signs, &empty);
            scales[ib] = scale;
            if (empty)
                continue;
            for (int k = 0; k < 8; k++)
                y[2 + 8 * ib + k] = (uint8_t)lat->map[nm_iq_index(lat, L + 4 * k)];
            sas[ib] = (uint32_t)signs[0] | (uint32_t)signs[1] << 7 | (uint32_t)signs[2] << 14 |
                      (uint32_t)signs[3] << 21;
            max_scale = maxf(max_scale, scale);
        }
        if (!max_scale) {
            memset(y, 0, 98);
            continue;
        }
        float d = max_scale / 31;
        put_f16(y, d * 1.0125f);
        float id = 1 / d;
        for (int ib = 0; ib < 8; ib++) {
            int l = nm_nearest_int(0.5f * (id * scales[ib] - 1));
            l = l < 0 ? 0 : l > 15 ? 15 : l;
            uint32_t v = sas[ib] | (uint32_t)l << 28;
            for (int b = 0; b < 4; b++)
                y[66 + 4 * ib + b] = (uint8_t)(v >> (8 * b));
        }
    }
}

void nm_iq3_s_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw) {
    const nm_iq_lattice *lat = nm_iq3_lattice(512);
    for (int64_t ibl = 0; ibl < n / 256; ibl++, y += 110) {
        const float *xbl = x + 256 * ibl;
        const float sigma2 = block_sigma2(xbl);
        float scales[8], weight[32];
        int8_t L[32];
        uint8_t signs[4];
        memset(y, 0, 110);
        uint8_t *qs = y + 2, *qh = y + 66, *sg = y + 74, *sc = y + 106;
        float max_scale = 0;
        for (int ib = 0; ib < 8; ib++) {
            const float *xb = xbl + 32 * ib;
            iq3_weights(xb, qw ? qw + 256 * ibl + 32 * ib : NULL, sigma2, weight);
            bool empty;
            float scale = iq3_subblock(lat, false, xb, weight, L, signs, &empty);
            scales[ib] = scale;
            /* ggml advances its qs and signs pointers only past non-empty sub-blocks, so an
             * all-zero sub-block lets the next one's indices and signs take its place. */
            if (empty)
                continue;
            for (int k = 0; k < 8; k++) {
                int gi = lat->map[nm_iq_index(lat, L + 4 * k)];
                qs[k] = (uint8_t)(gi & 255);
                qh[ib] |= (uint8_t)((gi >> 8) << k);
            }
            qs += 8;
            memcpy(sg, signs, 4);
            sg += 4;
            max_scale = maxf(max_scale, scale);
        }
        if (!max_scale)
            continue;
        float d = max_scale / 31;
        put_f16(y, d * 1.033f);
        float id = 1 / d;
        for (int ib = 0; ib < 8; ib += 2) {
            int l1 = nm_nearest_int(0.5f * (id * scales[ib] - 1));
            l1 = l1 < 0 ? 0 : l1 > 15 ? 15 : l1;
            int l2 = nm_nearest_int(0.5f * (id * scales[ib + 1] - 1));
            l2 = l2 < 0 ? 0 : l2 > 15 ? 15 : l2;
            sc[ib / 2] = (uint8_t)(l1 | l2 << 4);
        }
    }
}

/* ---- dequantization ---- */

static inline float get_f16(const uint8_t *p) { return nm_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

void nm_dq_iq3_xxs_ref(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / 256; i++, x += 98) {
        const float d = get_f16(x);
        const uint8_t *qs = x + 2, *sas = x + 66;
        for (int ib = 0; ib < 8; ib++, qs += 8) {
            uint32_t aux = (uint32_t)sas[4 * ib] | (uint32_t)sas[4 * ib + 1] << 8 |
                           (uint32_t)sas[4 * ib + 2] << 16 | (uint32_t)sas[4 * ib + 3] << 24;
            const float db = d * (0.5f + (float)(aux >> 28)) * 0.5f;
            for (int l = 0; l < 4; l++, y += 8) {
                const uint8_t signs = nm_iq_signs((aux >> (7 * l)) & 127);
                const uint32_t g1 = nm_iq3xxs_grid[qs[2 * l]], g2 = nm_iq3xxs_grid[qs[2 * l + 1]];
                for (int j = 0; j < 4; j++) {
                    y[j] = db * (float)grid_byte(g1, j) * (signs & (1 << j) ? -1.f : 1.f);
                    y[j + 4] = db * (float)grid_byte(g2, j) * (signs & (1 << (j + 4)) ? -1.f : 1.f);
                }
            }
        }
    }
}

void nm_dq_iq3_s_ref(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / 256; i++, x += 110) {
        const float d = get_f16(x);
        const uint8_t *qs = x + 2, *qh = x + 66, *signs = x + 74, *sc = x + 106;
        for (int ib = 0; ib < 8; ib++, qs += 8, signs += 4) {
            const float db = d * (float)(1 + 2 * (ib % 2 ? sc[ib / 2] >> 4 : sc[ib / 2] & 0xf));
            for (int l = 0; l < 4; l++, y += 8) {
                const uint32_t g1 = nm_iq3s_grid[qs[2 * l] | ((qh[ib] << (8 - 2 * l)) & 256)];
                const uint32_t g2 = nm_iq3s_grid[qs[2 * l + 1] | ((qh[ib] << (7 - 2 * l)) & 256)];
                for (int j = 0; j < 4; j++) {
                    y[j] = db * (float)grid_byte(g1, j) * (signs[l] & (1 << j) ? -1.f : 1.f);
                    y[j + 4] = db * (float)grid_byte(g2, j) * (signs[l] & (1 << (j + 4)) ? -1.f : 1.f);
                }
            }
        }
    }
}
