/* Lattice i-quant dot products in ggml's AVX2 order (dot_iq.h): unpacking and the scalar lanes. */
#include "kernels/dot_iq.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "formats/quants_iq.h"
#include "formats/tensor.h"
#include "kernels/dot_lowbit.h"

static inline float f16(const uint8_t *p) { return nm_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }
static inline uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

bool nm_dot_iq_type(uint32_t wt) {
    switch (wt) {
    case GGML_TYPE_IQ3_XXS: case GGML_TYPE_IQ3_S: case GGML_TYPE_IQ2_XXS: case GGML_TYPE_IQ2_XS:
    case GGML_TYPE_IQ2_S: case GGML_TYPE_IQ1_S: case GGML_TYPE_IQ1_M:
        return true;
    default:
        return false;
    }
}

/* 8 magnitudes (bytes of g) with the signs of s (bit j: value j negative) */
static inline void put8(int8_t *q, uint64_t g, unsigned s) {
    for (int j = 0; j < 8; j++) {
        int v = (int)(uint8_t)(g >> (8 * j));
        q[j] = (int8_t)(s >> j & 1 ? -v : v);
    }
}
static inline void put4(int8_t *q, uint32_t g, unsigned s) {
    for (int j = 0; j < 4; j++) {
        int v = (int)(uint8_t)(g >> (8 * j));
        q[j] = (int8_t)(s >> j & 1 ? -v : v);
    }
}

float nm_iq_unpack(uint32_t wt, const uint8_t *x, nm_iq_unpacked *u) {
    memset(u->mins, 0, sizeof u->mins);
    u->dmin = 0.0f;
    switch (wt) {
    case GGML_TYPE_IQ2_XXS: /* 66 bytes */
        u->d = f16(x);
        for (int ib = 0; ib < 8; ib++) {
            const uint8_t *q = x + 2 + 8 * ib;
            const uint32_t aux = le32(q + 4);
            u->sc[2 * ib] = u->sc[2 * ib + 1] = (int16_t)(2 * (aux >> 28) + 1);
            for (int l = 0; l < 4; l++)
                put8(u->q + 32 * ib + 8 * l, nm_iq2xxs_grid[q[l]], nm_iq_signs((aux >> (7 * l)) & 127));
        }
        return 0.125f;
    case GGML_TYPE_IQ2_XS: /* 74 bytes */
        u->d = f16(x);
        for (int ib = 0; ib < 8; ib++) {
            u->sc[2 * ib] = (int16_t)(2 * (x[66 + ib] & 0xf) + 1);
            u->sc[2 * ib + 1] = (int16_t)(2 * (x[66 + ib] >> 4) + 1);
            for (int l = 0; l < 4; l++) {
                const uint16_t v = le16(x + 2 + 2 * (4 * ib + l));
                put8(u->q + 32 * ib + 8 * l, nm_iq2xs_grid[v & 511], nm_iq_signs(v >> 9));
            }
        }
        return 0.125f;
    case GGML_TYPE_IQ2_S: /* 82 bytes */
        u->d = f16(x);
        for (int ib = 0; ib < 8; ib++) {
            u->sc[2 * ib] = (int16_t)(2 * (x[74 + ib] & 0xf) + 1);
            u->sc[2 * ib + 1] = (int16_t)(2 * (x[74 + ib] >> 4) + 1);
            const uint8_t *qs = x + 2 + 4 * ib, *signs = x + 34 + 4 * ib, qh = x[66 + ib];
            for (int l = 0; l < 4; l++)
                put8(u->q + 32 * ib + 8 * l, nm_iq2s_grid[qs[l] | ((qh << (8 - 2 * l)) & 0x300)], signs[l]);
        }
        return 0.125f;
    case GGML_TYPE_IQ3_XXS: /* 98 bytes */
        u->d = f16(x);
        for (int ib = 0; ib < 8; ib++) {
            const uint8_t *qs = x + 2 + 8 * ib;
            const uint32_t aux = le32(x + 66 + 4 * ib);
            u->sc[2 * ib] = u->sc[2 * ib + 1] = (int16_t)(2 * (aux >> 28) + 1);
            for (int l = 0; l < 4; l++) {
                const unsigned s = nm_iq_signs((aux >> (7 * l)) & 127);
                put4(u->q + 32 * ib + 8 * l, nm_iq3xxs_grid[qs[2 * l]], s);
                put4(u->q + 32 * ib + 8 * l + 4, nm_iq3xxs_grid[qs[2 * l + 1]], s >> 4);
            }
        }
        return 0.25f;
    case GGML_TYPE_IQ3_S: /* 110 bytes */
        u->d = f16(x);
        for (int ib = 0; ib < 8; ib++) {
            const uint8_t *qs = x + 2 + 8 * ib, qh = x[66 + ib], *signs = x + 74 + 4 * ib;
            const uint8_t sc = x[106 + ib / 2];
            u->sc[2 * ib] = u->sc[2 * ib + 1] = (int16_t)(2 * (ib % 2 ? sc >> 4 : sc & 0xf) + 1);
            for (int l = 0; l < 4; l++) {
                put4(u->q + 32 * ib + 8 * l, nm_iq3s_grid[qs[2 * l] | ((qh << (8 - 2 * l)) & 256)], signs[l]);
                put4(u->q + 32 * ib + 8 * l + 4, nm_iq3s_grid[qs[2 * l + 1] | ((qh << (7 - 2 * l)) & 256)],
                     (unsigned)signs[l] >> 4);
            }
        }
        return 1.0f;
    case GGML_TYPE_IQ1_S: /* 50 bytes */
        u->d = f16(x);
        for (int ib = 0; ib < 8; ib++) {
            const uint16_t qh = le16(x + 34 + 2 * ib);
            u->sc[2 * ib] = u->sc[2 * ib + 1] = (int16_t)(2 * ((qh >> 12) & 7) + 1);
            for (int l = 0; l < 4; l++) {
                put8(u->q + 32 * ib + 8 * l, nm_iq1s_grid[x[2 + 4 * ib + l] | (((qh >> (3 * l)) & 7) << 8)], 0);
                u->ds[4 * ib + l] = qh & 0x8000 ? -1 : 1;
            }
            u->mins[2 * ib] = u->mins[2 * ib + 1] = (int16_t)(u->ds[4 * ib] * u->sc[2 * ib]);
        }
        return 1.0f;
    case GGML_TYPE_IQ1_M: { /* 56 bytes */
        uint16_t sc[4];
        for (int k = 0; k < 4; k++)
            sc[k] = le16(x + 48 + 2 * k);
        u->d = nm_f16_to_f32((uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) |
                                        (sc[3] & 0xf000)));
        for (int s = 0; s < 16; s++)
            u->sc[s] = (int16_t)(2 * ((sc[s / 4] >> (3 * (s % 4))) & 7) + 1);
        for (int ib = 0; ib < 8; ib++) {
            const uint8_t *qs = x + 4 * ib, *qh = x + 32 + 2 * ib;
            const int idx[4] = {qs[0] | ((qh[0] << 8) & 0x700), qs[1] | ((qh[0] << 4) & 0x700),
                                qs[2] | ((qh[1] << 8) & 0x700), qs[3] | ((qh[1] << 4) & 0x700)};
            for (int l = 0; l < 4; l++) {
                put8(u->q + 32 * ib + 8 * l, nm_iq1s_grid[idx[l]], 0);
                u->ds[4 * ib + l] = qh[l / 2] & (l % 2 ? 0x80 : 0x08) ? -1 : 1;
            }
        }
        return 1.0f;
    }
    default:
        return 0.0f;
    }
}

void nm_iq_lanes_ref(const nm_iq_unpacked *u, const int8_t *y, bool delta, int32_t *lane, int32_t *dlane) {
    for (int l = 0; l < 8; l++)
        lane[l] = dlane[l] = 0;
    for (int e = 0; e < 256; e++)
        lane[(e % 32) / 4] += u->sc[e / 16] * u->q[e] * y[e];
    if (delta)
        for (int e = 0; e < 256; e++)
            dlane[(e % 32) / 4] += u->sc[e / 16] * u->ds[e / 8] * y[e];
}

static inline float hsum8(const float *a) {
    return ((a[4] + a[0]) + (a[6] + a[2])) + ((a[5] + a[1]) + (a[7] + a[3]));
}

/* Q8_K block: f32 d | int8 qs[256] | int16 bsums[16] */
enum { Q8K_SIZE = 292 };

/* The float accumulators of one weight row · activation row product. */
typedef struct iq_acc {
    float acc[8], dacc[8], acc1;
} iq_acc;

/* Adds one block (unpacked weights u, Q8_K activation block a) as ggml's kernel does. */
static void accumulate(uint32_t wt, const nm_iq_unpacked *u, const uint8_t *a, iq_acc *st) {
    float yd;
    memcpy(&yd, a, 4);
    const int8_t *y = (const int8_t *)(a + 4);
    const bool lanes_delta = wt == GGML_TYPE_IQ1_M;
    int32_t lane[8], dlane[8];
    nm_iq_lanes_ref(u, y, lanes_delta, lane, dlane);
    const float d = u->d * yd;
    for (int l = 0; l < 8; l++)
        st->acc[l] = fmaf(d, (float)lane[l], st->acc[l]);
    if (lanes_delta)
        for (int l = 0; l < 8; l++)
            st->dacc[l] = fmaf(d, (float)dlane[l], st->dacc[l]);
    if (wt == GGML_TYPE_IQ1_S) {
        /* ggml: Σ (pair of bsums) · delta sign · multiplier, then one scalar fma per block */
        int32_t s1 = 0;
        for (int ib = 0; ib < 8; ib++) {
            int16_t b0, b1;
            memcpy(&b0, a + 260 + 4 * ib, 2);
            memcpy(&b1, a + 262 + 4 * ib, 2);
            s1 += (b0 + b1) * u->ds[4 * ib] * u->sc[2 * ib];
        }
        st->acc1 = fmaf(d, (float)s1, st->acc1);
    }
}

static float finish(uint32_t wt, float factor, const iq_acc *st) {
    if (wt == GGML_TYPE_IQ1_S)
        return hsum8(st->acc) + 0.125f * st->acc1;
    if (wt == GGML_TYPE_IQ1_M)
        return hsum8(st->acc) + 0.125f * hsum8(st->dacc);
    return factor * hsum8(st->acc);
}

float nm_unpack_block(uint32_t wt, const uint8_t *x, nm_iq_unpacked *u) {
    return nm_lowbit_unpack(wt, x, u) ? 1.0f : nm_iq_unpack(wt, x, u);
}

bool nm_dot_iq_ref(uint32_t wt, int64_t n, const void *w, const void *act, float *out) {
    return nm_dot_tile_iq(wt, false, n, w, 0, 1, act, 0, 1, out, 0);
}

/* Each weight row is unpacked 8 blocks at a time and applied to up to 64 activation rows. */
enum { UNPACK_BLOCKS = 8, COLS = 64 };

bool nm_dot_tile_iq(uint32_t wt, bool simd, int64_t n, const void *w, size_t w_stride, int n_rows,
                    const void *act, size_t act_stride, int n_cols, float *out, size_t out_stride) {
    if (!nm_dot_iq_type(wt))
        return false;
#if defined(__x86_64__)
    if (simd && nm_dot_tile_unpacked_avx2(wt, n, w, w_stride, n_rows, act, act_stride, n_cols, out, out_stride))
        return true;
#endif
    (void)simd;
    const size_t bs = ggml_type_get(wt)->type_size;
    const int64_t nb = n / 256;
    nm_iq_unpacked u[UNPACK_BLOCKS];
    iq_acc st[COLS];
    for (int i = 0; i < n_rows; i++) {
        const uint8_t *x = (const uint8_t *)w + (size_t)i * w_stride;
        float factor = 1;
        for (int j0 = 0; j0 < n_cols; j0 += COLS) {
            const int nj = n_cols - j0 < COLS ? n_cols - j0 : COLS;
            memset(st, 0, sizeof st);
            for (int64_t b0 = 0; b0 < nb; b0 += UNPACK_BLOCKS) {
                const int nu = nb - b0 < UNPACK_BLOCKS ? (int)(nb - b0) : UNPACK_BLOCKS;
                for (int b = 0; b < nu; b++)
                    factor = nm_iq_unpack(wt, x + (size_t)(b0 + b) * bs, &u[b]);
                for (int j = 0; j < nj; j++) {
                    const uint8_t *a = (const uint8_t *)act + (size_t)(j0 + j) * act_stride + (size_t)b0 * Q8K_SIZE;
                    for (int b = 0; b < nu; b++)
                        accumulate(wt, &u[b], a + (size_t)b * Q8K_SIZE, &st[j]);
                }
            }
            for (int j = 0; j < nj; j++)
                out[(size_t)(j0 + j) * out_stride + (size_t)i] = finish(wt, factor, &st[j]);
        }
    }
    return true;
}
