/* Scalar reference non-linear 4-bit quants: IQ4_NL (32-element blocks) and IQ4_XS (256-element
 * super-blocks of 8 sub-blocks with 6-bit scales). Each element is a 4-bit index into a fixed
 * table of 16 levels times the block scale. Written from the format and the order of operations
 * of llama.cpp's quantize_iq4_nl / quantize_iq4_xs, checked byte for byte against
 * llama-quantize's outputs in tests/data/quant-vectors; built with -ffp-contract=off.
 *
 * IQ4_NL block (18 bytes): f16 d, qs[16] (byte j: element j low nibble, element j+16 high).
 * IQ4_XS block (136 bytes): f16 d, u16 scales_h (2 high bits per sub-block), scales_l[4]
 *   (4 low bits per sub-block), qs[128] (16 bytes per sub-block, nibbles as IQ4_NL).
 *   Sub-block scale = d * (6-bit value - 32). */
#include "formats/quants_iq4.h"
#include "formats/quants_simd.h"
#include "formats/tensor.h"

#include <math.h>
#include <string.h>

#define GROUP_MAX_EPS 1e-15f

/* The 16 levels of IQ4_NL and IQ4_XS: part of the format, ggml's kvalues_iq4nl
 * (ggml-common.h). */
const int8_t nm_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

static inline void put_f16(uint8_t *p, float v) {
    uint16_t h = nm_f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}
static inline float get_f16(const uint8_t *p) {
    return nm_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* Index of the level nearest to x (ties to the upper level), by bisection as ggml does. */
static inline int best_index(const int8_t *val, float x) {
    if (x <= val[0])
        return 0;
    if (x >= val[15])
        return 15;
    int ml = 0, mu = 15;
    while (mu - ml > 1) {
        int mav = (ml + mu) / 2;
        if (x < val[mav])
            mu = mav;
        else
            ml = mav;
    }
    return x - val[mu - 1] < val[mu] - x ? mu - 1 : mu;
}

/* The scale search of one block of 32 (quantize_row_iq4_nl_impl's inner loop with ntry 7):
 * xb its values, weight its 32 weights. Returns the block's scale (0 for an all-zero block). */
static float iq4_block_scale(const float *xb, const float *weight) {
    const int8_t *values = nm_iq4nl_values;
    const int ntry = 7;
    float amax = 0, max = 0;
    for (int j = 0; j < 32; j++) {
        const float ax = fabsf(xb[j]);
        if (ax > amax) {
            amax = ax;
            max = xb[j];
        }
    }
    if (amax < GROUP_MAX_EPS)
        return 0;
    float d = -max / (float)values[0];
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < 32; j++) {
        const int l = best_index(values, id * xb[j]);
        const float q = (float)values[l], w = weight[j];
        sumqx += w * q * xb[j];
        sumq2 += w * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
    float best = d * sumqx;
    for (int itry = -ntry; itry <= ntry; itry++) {
        id = (float)(itry + values[0]) / max;
        sumqx = sumq2 = 0;
        for (int j = 0; j < 32; j++) {
            const int l = best_index(values, id * xb[j]);
            const float q = (float)values[l], w = weight[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

/* Block weights: qw * sqrt(sigma2 + x^2) with importance weights, else x^2. */
void nm_iq4_weights(int sb, const float *x, const float *qw, float *weight) {
    if (!qw) {
        for (int j = 0; j < sb; j++)
            weight[j] = x[j] * x[j];
        return;
    }
    float sigma2 = 0;
    for (int j = 0; j < sb; j++)
        sigma2 += x[j] * x[j];
    sigma2 *= 2.f / (float)sb;
    for (int j = 0; j < sb; j++)
        weight[j] = qw[j] * sqrtf(sigma2 + x[j] * x[j]);
}

void nm_iq4_finish(int sb, const float *x, const float *scales, uint8_t *d_out, uint8_t *q4, uint8_t *scales_h,
                   uint8_t *scales_l) {
    const int8_t *values = nm_iq4nl_values;
    uint8_t L[256];
    if (sb > 32) {
        float max_scale = 0, amax_scale = 0;
        for (int ib = 0; ib < sb / 32; ib++) {
            if (fabsf(scales[ib]) > amax_scale) {
                amax_scale = fabsf(scales[ib]);
                max_scale = scales[ib];
            }
        }
        const float d = -max_scale / 32;
        put_f16(d_out, d);
        const float id = d ? 1 / d : 0.f;
        uint16_t sh = 0;
        for (int ib = 0; ib < sb / 32; ib++) {
            int l = nm_nearest_int(id * scales[ib]);
            l = l < -32 ? -32 : l > 31 ? 31 : l;
            const float dl = d * (float)l;
            const float idl = dl ? 1 / dl : 0.f;
            const float *xb = x + 32 * ib;
            for (int j = 0; j < 32; j++)
                L[32 * ib + j] = (uint8_t)best_index(values, idl * xb[j]);
            l += 32;
            if (ib % 2 == 0)
                scales_l[ib / 2] = (uint8_t)(l & 0xF);
            else
                scales_l[ib / 2] |= (uint8_t)((l & 0xF) << 4);
            sh |= (uint16_t)((l >> 4) << 2 * (ib % 8));
        }
        scales_h[0] = (uint8_t)sh;
        scales_h[1] = (uint8_t)(sh >> 8);
    } else {
        put_f16(d_out, scales[0]);
        const float id = scales[0] ? 1 / scales[0] : 0;
        for (int j = 0; j < 32; j++)
            L[j] = (uint8_t)best_index(values, id * x[j]);
    }
    for (int i = 0; i < sb / 32; i++)
        for (int j = 0; j < 16; j++)
            q4[16 * i + j] = (uint8_t)(L[32 * i + j] | L[32 * i + 16 + j] << 4);
}

/* One super-block of sb elements in sub-blocks of 32 (quantize_row_iq4_nl_impl with ntry 7):
 * the scale search per sub-block, then the stored scales and levels. */
static void iq4_superblock(int sb, const float *x, uint8_t *d_out, uint8_t *q4, uint8_t *scales_h,
                           uint8_t *scales_l, const float *qw) {
    float scales[8], weight[256];
    nm_iq4_weights(sb, x, qw, weight);
    for (int ib = 0; ib < sb / 32; ib++)
        scales[ib] = iq4_block_scale(x + 32 * ib, weight + 32 * ib);
    nm_iq4_finish(sb, x, scales, d_out, q4, scales_h, scales_l);
}

void nm_iq4_nl_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw) {
    for (int64_t b = 0; b < n / 32; b++)
        iq4_superblock(32, x + 32 * b, y + 18 * b, y + 18 * b + 2, NULL, NULL, qw ? qw + 32 * b : NULL);
}

void nm_iq4_xs_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw) {
    for (int64_t b = 0; b < n / 256; b++) {
        uint8_t *blk = y + 136 * b;
        iq4_superblock(256, x + 256 * b, blk, blk + 8, blk + 2, blk + 4, qw ? qw + 256 * b : NULL);
    }
}

void nm_dq_iq4_nl_ref(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 18, y += 32) {
        const float d = get_f16(x);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)nm_iq4nl_values[x[2 + j] & 0xF];
            y[j + 16] = d * (float)nm_iq4nl_values[x[2 + j] >> 4];
        }
    }
}

void nm_dq_iq4_xs_ref(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++, x += 136) {
        const float d = get_f16(x);
        const unsigned sh = (unsigned)(x[2] | x[3] << 8);
        const uint8_t *qs = x + 8;
        for (int ib = 0; ib < 8; ib++, qs += 16, y += 32) {
            const int ls = ((x[4 + ib / 2] >> 4 * (ib % 2)) & 0xF) | ((sh >> 2 * ib) & 3) << 4;
            const float dl = d * (float)(ls - 32);
            for (int j = 0; j < 16; j++) {
                y[j] = dl * (float)nm_iq4nl_values[qs[j] & 0xF];
                y[j + 16] = dl * (float)nm_iq4nl_values[qs[j] >> 4];
            }
        }
    }
}
