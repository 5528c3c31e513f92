/* Scalar reference ternary quants (BitNet b1.58 / TriLM style): TQ1_0 and TQ2_0, 256-element
 * blocks whose elements are -1, 0 or +1 times the block's largest magnitude. Written from the
 * format and llama.cpp's quantize_row_tq1_0_ref / tq2_0_ref, checked byte for byte against
 * llama-quantize's outputs in tests/data/quant-vectors. Both ignore importance weights, as
 * llama.cpp does.
 *
 * TQ2_0 block (66 bytes): qs[64] (byte 32*h + m holds elements 128*h + m + 32*k at bits 2k,
 *   as trit + 1), f16 d @64.
 * TQ1_0 block (54 bytes): qs[48], qh[4], f16 d @52. Five trits t0..t4 (each + 1, first most
 *   significant) make the base-3 number v < 243, stored as ceil(v * 256 / 243) so that trit n
 *   is the top of (byte * 3^n mod 256) * 3 / 256. qs[0..31] hold elements m + 32*n (n < 5),
 *   qs[32..47] elements 160 + m + 16*n, qh[j] elements 240 + j + 4*n (n < 4, then a zero trit). */
#include "formats/quants_simd.h"
#include "formats/tensor.h"

#include <math.h>
#include <string.h>

static inline void put_f16(uint8_t *p, float v) {
    uint16_t h = nm_f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}
static inline float get_f16(const uint8_t *p) {
    return nm_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* The block's scale (largest magnitude) and its inverse. */
static float tq_scale(const float *x, uint8_t *d_out, float *id) {
    float amax = 0;
    for (int j = 0; j < 256; j++) {
        const float a = fabsf(x[j]);
        amax = amax > a ? amax : a;
    }
    put_f16(d_out, amax);
    *id = amax ? 1.0f / amax : 0.0f;
    return amax;
}

static inline int trit(float v, float id) { return (int)lroundf(v * id) + 1; }

/* ceil(q * 256 / 243): the byte whose successive multiplications by 3 reveal the trits. */
static inline uint8_t tq1_byte(unsigned q) { return (uint8_t)((q * 256 + 242) / 243); }

void nm_tq1_0_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw) {
    (void)qw;
    for (int64_t b = 0; b < n / 256; b++, x += 256, y += 54) {
        float id;
        tq_scale(x, y + 52, &id);
        for (int m = 0; m < 32; m++) {
            unsigned q = 0;
            for (int k = 0; k < 5; k++)
                q = q * 3 + (unsigned)trit(x[m + 32 * k], id);
            y[m] = tq1_byte(q);
        }
        for (int m = 0; m < 16; m++) {
            unsigned q = 0;
            for (int k = 0; k < 5; k++)
                q = q * 3 + (unsigned)trit(x[160 + m + 16 * k], id);
            y[32 + m] = tq1_byte(q);
        }
        for (int j = 0; j < 4; j++) {
            unsigned q = 0;
            for (int k = 0; k < 4; k++)
                q = q * 3 + (unsigned)trit(x[240 + j + 4 * k], id);
            y[48 + j] = tq1_byte(q * 3);
        }
    }
}

void nm_tq2_0_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw) {
    (void)qw;
    for (int64_t b = 0; b < n / 256; b++, x += 256, y += 66) {
        float id;
        tq_scale(x, y + 64, &id);
        for (int h = 0; h < 2; h++)
            for (int m = 0; m < 32; m++) {
                unsigned q = 0;
                for (int k = 0; k < 4; k++)
                    q |= ((unsigned)trit(x[128 * h + m + 32 * k], id) & 3) << (2 * k);
                y[32 * h + m] = (uint8_t)q;
            }
    }
}

/* Trit n (0 = most significant) of a TQ1_0 byte, as -1, 0, 1. */
static inline int tq1_trit(uint8_t byte, int n) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    const uint8_t q = (uint8_t)(byte * pow3[n]);
    return ((q * 3) >> 8) - 1;
}

void nm_dq_tq1_0_ref(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++, x += 54) {
        const float d = get_f16(x + 52);
        for (int k = 0; k < 5; k++)
            for (int m = 0; m < 32; m++)
                *y++ = (float)tq1_trit(x[m], k) * d;
        for (int k = 0; k < 5; k++)
            for (int m = 0; m < 16; m++)
                *y++ = (float)tq1_trit(x[32 + m], k) * d;
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < 4; j++)
                *y++ = (float)tq1_trit(x[48 + j], k) * d;
    }
}

void nm_dq_tq2_0_ref(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++, x += 66) {
        const float d = get_f16(x + 64);
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 4; k++)
                for (int m = 0; m < 32; m++)
                    *y++ = (float)(((x[32 * h + m] >> (2 * k)) & 3) - 1) * d;
    }
}
