/* Scalar reference 2- and 3-bit K-quants: Q2_K and Q3_K (256-element super-blocks of 16
 * sub-blocks of 16), quantizers with and without importance weights, and their dequantizers.
 * Written from the format (FORMATS.md §2.1) and the order of operations of llama.cpp's
 * reference quantizers, checked byte for byte against llama-quantize's outputs in
 * tests/data/quant-vectors. Every expression keeps llama.cpp's operand order (`w*x*l` is
 * (w*x)*l); the file is built with -ffp-contract=off.
 *
 * Q2_K block (84 bytes): scales[16] (low nibble: 4-bit scale, high nibble: 4-bit min), qs[64]
 *   (2-bit levels; byte 32*h + l holds elements 128*h + l, +32, +64, +96 at bits 0, 2, 4, 6),
 *   f16 d @80, f16 dmin @82. Element = d*sc*q - dmin*m.
 * Q3_K block (110 bytes): hmask[32] (bit k of byte l: the high bit of element 32*k + l),
 *   qs[64] (low 2 bits, packed as Q2_K), scales[12] (16 6-bit signed scales, +32), f16 d @108.
 *   Element = d*(sc-32)*(q - (high bit ? 0 : 4)). */
#include "formats/quants_simd.h"
#include "formats/tensor.h"

#include <math.h>
#include <string.h>

#define GROUP_MAX_EPS 1e-15f

static inline void put_f16(uint8_t *p, float v) {
    uint16_t h = nm_f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}
static inline float get_f16(const uint8_t *p) {
    return nm_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* Levels L (0..3) of 256 elements into Q2_K/Q3_K's qs layout. */
static void pack_2bit(uint8_t *qs, const uint8_t *L) {
    for (int j = 0; j < 256; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | L[j + l + 32] << 2 | L[j + l + 64] << 4 | L[j + l + 96] << 6);
}

/* ---- Q2_K ---- */

/* Re-quantize against the stored scales (a sub-block whose scale is 0 keeps its search levels),
 * then pack. */
static void q2k_requant_pack(const float *x, uint8_t *y, uint8_t *L) {
    const float dm_all = get_f16(y + 80), mm_all = get_f16(y + 82);
    for (int j = 0; j < 16; j++) {
        const float d = dm_all * (float)(y[j] & 0xF);
        if (!d)
            continue;
        const float m = mm_all * (float)(y[j] >> 4);
        for (int ii = 0; ii < 16; ii++) {
            int l = nm_nearest_int((x[16 * j + ii] + m) / d);
            L[16 * j + ii] = (uint8_t)(l < 0 ? 0 : l > 3 ? 3 : l);
        }
    }
    pack_2bit(y + 16, L);
}

/* After the sub-block searches: scales and mins to 4 bits, re-quantization, packing (shared
 * with the AVX2 quantizer). */
void nm_q2k_finish(const float *x, uint8_t *y, const float *scales, const float *mins, uint8_t *L) {
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; j++) {
        if (scales[j] > max_scale)
            max_scale = scales[j];
        if (mins[j] > max_min)
            max_min = mins[j];
    }
    if (max_scale > 0) {
        const float iscale = 15.f / max_scale;
        for (int j = 0; j < 16; j++)
            y[j] = (uint8_t)nm_nearest_int(iscale * scales[j]);
        put_f16(y + 80, max_scale / 15.f);
    } else {
        memset(y, 0, 16);
        put_f16(y + 80, 0.f);
    }
    if (max_min > 0) {
        const float iscale = 15.f / max_min;
        for (int j = 0; j < 16; j++)
            y[j] |= (uint8_t)(nm_nearest_int(iscale * mins[j]) << 4);
        put_f16(y + 82, max_min / 15.f);
    } else {
        put_f16(y + 82, 0.f);
    }
    q2k_requant_pack(x, y, L);
}

static void q2k_block(const float *x, uint8_t *y) {
    uint8_t L[256], Laux[16];
    float w[16], mins[16], scales[16];
    for (int j = 0; j < 16; j++) {
        for (int l = 0; l < 16; l++)
            w[l] = fabsf(x[16 * j + l]);
        scales[j] = nm_make_qkx2(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, NM_QKX_MAD);
    }
    nm_q2k_finish(x, y, scales, mins, L);
}

/* With importance weights: sigma2 over the super-block (no factor 2), make_qkx3 (squared
 * error) per sub-block, then the scales and mins themselves by make_qp. */
static void q2k_block_imatrix(const float *x, uint8_t *y, const float *qw) {
    uint8_t L[256], Laux[16], Ls[16], Lm[16];
    float w[16], mins[16], scales[16], sw[16];
    float sumx2 = 0;
    for (int j = 0; j < 256; j++)
        sumx2 += x[j] * x[j];
    const float sigma2 = sumx2 / 256;
    for (int j = 0; j < 16; j++) {
        for (int l = 0; l < 16; l++)
            w[l] = qw[16 * j + l] * sqrtf(sigma2 + x[16 * j + l] * x[16 * j + l]);
        float s = 0;
        for (int l = 0; l < 16; l++)
            s += w[l];
        sw[j] = s;
        scales[j] = nm_make_qkx2(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.9f, 0.05f, 36,
                                 NM_QKX_DEGENERATE_LE);
    }
    const float dm = nm_make_qp(16, 15, scales, Ls, sw);
    const float mm = nm_make_qp(16, 15, mins, Lm, sw);
    put_f16(y + 80, dm);
    put_f16(y + 82, mm);
    for (int j = 0; j < 16; j++)
        y[j] = (uint8_t)(Ls[j] | Lm[j] << 4);
    q2k_requant_pack(x, y, L);
}

void nm_q2_k_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw) {
    for (int64_t b = 0; b < n / 256; b++) {
        if (qw)
            q2k_block_imatrix(x + 256 * b, y + 84 * b, qw + 256 * b);
        else
            q2k_block(x + 256 * b, y + 84 * b);
    }
}

void nm_dq_q2_k_ref(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++, x += 84) {
        const float d = get_f16(x + 80), min = get_f16(x + 82);
        const uint8_t *q = x + 16;
        int is = 0;
        for (int h = 0; h < 256; h += 128, q += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int half = 0; half < 2; half++) {
                    const uint8_t sc = x[is++];
                    const float dl = d * (float)(sc & 0xF), ml = min * (float)(sc >> 4);
                    for (int l = 0; l < 16; l++)
                        *y++ = dl * (float)((q[16 * half + l] >> shift) & 3) - ml;
                }
            }
        }
    }
}

/* ---- Q3_K ---- */

/* make_q3_quants with the RMSE refinement (weights x^2): levels -4..3 returned as 0..7. */
static float make_q3(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    const float iscale = (float)-nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = nm_nearest_int(iscale * x[i]);
        l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * (float)L[i] * (float)L[i];
                int new_l = nm_nearest_int(x[i] * sl2 / slx);
                new_l = new_l < -nmax ? -nmax : new_l > nmax - 1 ? nmax - 1 : new_l;
                if (new_l != L[i]) {
                    slx += w * x[i] * (float)new_l;
                    sl2 += w * (float)new_l * (float)new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed)
            break;
    }
    for (int i = 0; i < n; i++)
        L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* 6-bit scale j (0..63, stored +32) into the 12 scale bytes (cleared by the caller). */
static void q3k_put_scale(uint8_t *sc, int j, int l) {
    if (j < 8)
        sc[j] = (uint8_t)(l & 0xF);
    else
        sc[j - 8] |= (uint8_t)((l & 0xF) << 4);
    sc[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
}
static int q3k_get_scale(const uint8_t *sc, int j) {
    int v = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
    return (v | ((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4) - 32;
}

/* Re-quantize against the stored scales (a zero scale keeps the search levels), then split
 * the high bits into hmask and pack the low two. */
static void q3k_requant_pack(const float *x, uint8_t *y, int8_t *L) {
    const float d_all = get_f16(y + 108);
    for (int j = 0; j < 16; j++) {
        const float d = d_all * (float)(int8_t)q3k_get_scale(y + 96, j);
        if (!d)
            continue;
        for (int ii = 0; ii < 16; ii++) {
            int l = nm_nearest_int(x[16 * j + ii] / d);
            l = l < -4 ? -4 : l > 3 ? 3 : l;
            L[16 * j + ii] = (int8_t)(l + 4);
        }
    }
    uint8_t *hmask = y;
    memset(hmask, 0, 32);
    uint8_t low[256];
    for (int j = 0; j < 256; j++) {
        int l = L[j];
        if (l > 3) {
            hmask[j % 32] |= (uint8_t)(1u << (j / 32));
            l -= 4;
        }
        low[j] = (uint8_t)l;
    }
    pack_2bit(y + 32, low);
}

/* The stages after the sub-block searches: the 16 scales to 6 bits, the re-quantization, the
 * packing (shared with the AVX2 quantizer, which runs the searches eight at a time). */
void nm_q3k_set_scales(uint8_t *y, const float *scales) {
    float max_scale = 0, amax = 0;
    for (int j = 0; j < 16; j++) {
        const float s = fabsf(scales[j]);
        if (s > amax) {
            amax = s;
            max_scale = scales[j];
        }
    }
    memset(y + 96, 0, 12);
    if (max_scale) {
        const float iscale = -32.f / max_scale;
        for (int j = 0; j < 16; j++) {
            int8_t l = (int8_t)nm_nearest_int(iscale * scales[j]);
            int v = (l < -32 ? -32 : l > 31 ? 31 : l) + 32;
            q3k_put_scale(y + 96, j, v);
        }
        put_f16(y + 108, 1 / iscale);
    } else {
        put_f16(y + 108, 0.f);
    }
}

void nm_q3k_finish(const float *x, uint8_t *y, const float *scales, int8_t *L) {
    nm_q3k_set_scales(y, scales);
    q3k_requant_pack(x, y, L);
}

static void q3k_block(const float *x, uint8_t *y) {
    int8_t L[256];
    float scales[16];
    for (int j = 0; j < 16; j++)
        scales[j] = make_q3(16, 4, x + 16 * j, L + 16 * j);
    nm_q3k_finish(x, y, scales, L);
}

/* With importance weights: sigma2 = 2*mean(x^2) over the super-block, make_qx per sub-block,
 * then the 16 scales by make_qx (nmax 32) weighted by the sub-blocks' summed weights. */
static void q3k_block_imatrix(const float *x, uint8_t *y, const float *qw) {
    int8_t L[256], Ls[16];
    float scales[16], w[16], sw[16];
    float sumx2 = 0;
    for (int j = 0; j < 256; j++)
        sumx2 += x[j] * x[j];
    const float sigma2 = 2 * sumx2 / 256;
    for (int j = 0; j < 16; j++) {
        for (int l = 0; l < 16; l++)
            w[l] = qw[16 * j + l] * sqrtf(sigma2 + x[16 * j + l] * x[16 * j + l]);
        float s = 0;
        for (int l = 0; l < 16; l++)
            s += w[l];
        sw[j] = s;
        scales[j] = nm_make_qx(16, 4, x + 16 * j, L + 16 * j, w);
    }
    memset(y + 96, 0, 12);
    const float d_block = nm_make_qx(16, 32, scales, Ls, sw);
    for (int j = 0; j < 16; j++)
        q3k_put_scale(y + 96, j, Ls[j]);
    put_f16(y + 108, d_block);
    q3k_requant_pack(x, y, L);
}

void nm_q3_k_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw) {
    for (int64_t b = 0; b < n / 256; b++) {
        if (qw)
            q3k_block_imatrix(x + 256 * b, y + 110 * b, qw + 256 * b);
        else
            q3k_block(x + 256 * b, y + 110 * b);
    }
}

void nm_dq_q3_k_ref(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++, x += 110) {
        const float d_all = get_f16(x + 108);
        const uint8_t *hm = x, *q = x + 32;
        int is = 0;
        uint8_t m = 1;
        for (int h = 0; h < 256; h += 128, q += 32) {
            for (int shift = 0; shift < 8; shift += 2, m = (uint8_t)(m << 1)) {
                for (int half = 0; half < 2; half++) {
                    const float dl = d_all * (float)q3k_get_scale(x + 96, is++);
                    for (int l = 0; l < 16; l++) {
                        const int k = 16 * half + l;
                        *y++ = dl * (float)((int)((q[k] >> shift) & 3) - ((hm[k] & m) ? 0 : 4));
                    }
                }
            }
        }
    }
}
