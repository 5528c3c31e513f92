/* Scalar reference of the activation quantizers and weight·activation dot products (dot.h). */
#include "kernels/dot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dot_iq.h"
#include "kernels/dot_simd.h"
#include "kernels/dot_lowbit.h"
#include "formats/tensor.h"
#include "common/cpu.h"

static inline float f16(const uint8_t *p) { return nm_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }
static inline void put_f16(uint8_t *p, float v) {
    uint16_t h = nm_f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

int nm_dot_act_type(uint32_t wt) {
    switch (wt) {
    case GGML_TYPE_F32: return GGML_TYPE_F32;
    case GGML_TYPE_F16: return GGML_TYPE_F16;
    case GGML_TYPE_BF16: return GGML_TYPE_BF16;
    case GGML_TYPE_Q4_0: case GGML_TYPE_Q5_0: case GGML_TYPE_Q8_0: return GGML_TYPE_Q8_0;
    case GGML_TYPE_IQ4_NL: return GGML_TYPE_Q8_0;
    case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_1: return GGML_TYPE_Q8_1;
    case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K: case GGML_TYPE_Q6_K: return GGML_TYPE_Q8_K;
    case GGML_TYPE_Q2_K: case GGML_TYPE_Q3_K: case GGML_TYPE_IQ4_XS: return GGML_TYPE_Q8_K;
    case GGML_TYPE_TQ1_0: case GGML_TYPE_TQ2_0: return GGML_TYPE_Q8_K;
    case GGML_TYPE_IQ3_XXS: case GGML_TYPE_IQ3_S: case GGML_TYPE_IQ2_XXS: case GGML_TYPE_IQ2_XS:
    case GGML_TYPE_IQ2_S: case GGML_TYPE_IQ1_S: case GGML_TYPE_IQ1_M: return GGML_TYPE_Q8_K; /* dot_iq.c */
    default: return -1;
    }
}

bool nm_dot_supported(uint32_t wt) { return nm_dot_act_type(wt) >= 0; }

size_t nm_dot_act_row_size(uint32_t wt, int64_t n) {
    size_t s = 0;
    int at = nm_dot_act_type(wt);
    if (at < 0 || ggml_row_size((uint32_t)at, (uint64_t)n, &s) != 0) return 0;
    return s;
}

/* ---------------- activation quantizers ---------------- */

/* Q8_0 / Q8_1 as ggml's AVX2 quantize_row_q8_0/q8_1: id = 127/amax, round half to even. */
static void quantize_q8_0_or_1(const float *x, uint8_t *dst, int64_t n, bool with_sum) {
    const size_t bs = with_sum ? 36 : 34;
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + b * 32;
        uint8_t *out = dst + (size_t)b * bs;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) {
            float a = fabsf(xb[j]);
            amax = a > amax ? a : amax;
        }
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int8_t *qs = (int8_t *)(out + (with_sum ? 4 : 2));
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            int q = (int)nearbyintf(xb[j] * id);
            qs[j] = (int8_t)q;
            sum += q;
        }
        put_f16(out, d);
        if (with_sum) put_f16(out + 2, d * (float)sum);
    }
}

/* Q8_K, ggml's reference quantizer (used on x86-64): FORMATS.md §4.6. */
static inline int nearest_int(float fval) {
    float val = fval + 12582912.0f;
    int i;
    memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

static void quantize_q8_k(const float *x, uint8_t *dst, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++) {
        const float *xb = x + b * 256;
        uint8_t *out = dst + (size_t)b * 292;
        int8_t *qs = (int8_t *)(out + 4);
        int16_t bsums[16];
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 256; j++) {
            float ax = fabsf(xb[j]);
            if (ax > amax) {
                amax = ax;
                max = xb[j];
            }
        }
        float d = 0.0f;
        if (amax == 0.0f) {
            memset(qs, 0, 256);
            memset(bsums, 0, sizeof bsums);
        } else {
            const float iscale = -127.0f / max;
            for (int j = 0; j < 256; j++) {
                int v = nearest_int(iscale * xb[j]);
                qs[j] = (int8_t)(v < 127 ? v : 127);
            }
            for (int k = 0; k < 16; k++) {
                int s = 0;
                for (int l = 0; l < 16; l++) s += qs[16 * k + l];
                bsums[k] = (int16_t)s;
            }
            d = 1.0f / iscale;
        }
        memcpy(out, &d, 4);
        memcpy(out + 260, bsums, 32); /* little-endian host */
    }
}

void nm_dot_quantize_act_ref(uint32_t wt, const float *x, void *dst, int64_t n) {
    switch (nm_dot_act_type(wt)) {
    case GGML_TYPE_F32: memcpy(dst, x, (size_t)n * sizeof(float)); break;
    case GGML_TYPE_F16: nm_f32_to_f16_row_ref(x, dst, (size_t)n); break;
    case GGML_TYPE_BF16: nm_f32_to_bf16_row_ref(x, dst, (size_t)n); break;
    case GGML_TYPE_Q8_0: quantize_q8_0_or_1(x, dst, n, false); break;
    case GGML_TYPE_Q8_1: quantize_q8_0_or_1(x, dst, n, true); break;
    case GGML_TYPE_Q8_K: quantize_q8_k(x, dst, n); break;
    default: break;
    }
}

/* ---------------- dot products ---------------- */

/* Float types in llamafile tinyBLAS's order (ggml's F32/F16/BF16 matrix products on x86-64):
 * eight running sums, element k going to sum k mod 8 with one fused multiply-add; the eight
 * sums are folded as (s0+s4 + s2+s6) + (s1+s5 + s3+s7); elements past the last multiple of 8
 * are added one rounded product at a time. f16/bf16 values widen to float exactly. */
static float tinyblas_hsum(const float acc[8]) {
    float s4[4];
    for (int i = 0; i < 4; i++) s4[i] = acc[i] + acc[i + 4];
    const float t0 = s4[0] + s4[2], t1 = s4[1] + s4[3];
    return t0 + t1;
}

#define DOT_FLOAT_BODY(widen)                                             \
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};                             \
    int64_t k = 0;                                                        \
    for (; k + 8 <= n; k += 8)                                            \
        for (int l = 0; l < 8; l++) acc[l] = fmaf(widen(w[k + l]), widen(a[k + l]), acc[l]); \
    float s = tinyblas_hsum(acc);                                         \
    for (; k < n; k++) s += widen(w[k]) * widen(a[k]);                    \
    return s;

static inline float same(float v) { return v; }

static float dot_f32(int64_t n, const float *w, const float *a) { DOT_FLOAT_BODY(same) }
static float dot_f16(int64_t n, const uint16_t *w, const uint16_t *a) { DOT_FLOAT_BODY(nm_f16_to_f32) }
static float dot_bf16(int64_t n, const uint16_t *w, const uint16_t *a) { DOT_FLOAT_BODY(nm_bf16_to_f32) }
#undef DOT_FLOAT_BODY

/* Legacy 32-blocks against Q8_0 / Q8_1. */

/* Q4_0 in the order of ggml's repacked Q4_0 matrix products (q4_0 8x8 gemm): one sequential
 * chain of fused multiply-adds per output, block by block, each adding the block's exact
 * integer sum times the product of the two f16 scales (rounded to float first). */
static float dot_q4_0(int64_t n, const uint8_t *w, const uint8_t *a) {
    float sum = 0.0f;
    for (int64_t b = 0; b < n / 32; b++, w += 18, a += 34) {
        const int8_t *y = (const int8_t *)(a + 2);
        int s = 0;
        for (int j = 0; j < 16; j++) {
            s += ((w[2 + j] & 0x0F) - 8) * y[j];
            s += ((w[2 + j] >> 4) - 8) * y[j + 16];
        }
        const float d = f16(w) * f16(a);
        sum = fmaf((float)s, d, sum);
    }
    return sum;
}

static float dot_q4_1(int64_t n, const uint8_t *w, const uint8_t *a) {
    float sum = 0.0f;
    for (int64_t b = 0; b < n / 32; b++, w += 20, a += 36) {
        const int8_t *y = (const int8_t *)(a + 4);
        int s = 0;
        for (int j = 0; j < 16; j++) {
            s += (w[4 + j] & 0x0F) * y[j];
            s += (w[4 + j] >> 4) * y[j + 16];
        }
        sum += (f16(w) * f16(a)) * (float)s + f16(w + 2) * f16(a + 2);
    }
    return sum;
}

static inline uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static float dot_q5_0(int64_t n, const uint8_t *w, const uint8_t *a) {
    float sum = 0.0f;
    for (int64_t b = 0; b < n / 32; b++, w += 22, a += 34) {
        const int8_t *y = (const int8_t *)(a + 2);
        const uint32_t qh = rd32(w + 2);
        int s = 0;
        for (int j = 0; j < 16; j++) {
            int lo = (w[6 + j] & 0x0F) | (int)(((qh >> j) & 1) << 4);
            int hi = (w[6 + j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            s += (lo - 16) * y[j] + (hi - 16) * y[j + 16];
        }
        sum += (float)s * (f16(w) * f16(a));
    }
    return sum;
}

static float dot_q5_1(int64_t n, const uint8_t *w, const uint8_t *a) {
    float sum = 0.0f;
    for (int64_t b = 0; b < n / 32; b++, w += 24, a += 36) {
        const int8_t *y = (const int8_t *)(a + 4);
        const uint32_t qh = rd32(w + 4);
        int s = 0;
        for (int j = 0; j < 16; j++) {
            int lo = (w[8 + j] & 0x0F) | (int)(((qh >> j) & 1) << 4);
            int hi = (w[8 + j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            s += lo * y[j] + hi * y[j + 16];
        }
        sum += (f16(w) * f16(a)) * (float)s + f16(w + 2) * f16(a + 2);
    }
    return sum;
}

static float dot_q8_0(int64_t n, const uint8_t *w, const uint8_t *a) {
    float sum = 0.0f;
    for (int64_t b = 0; b < n / 32; b++, w += 34, a += 34) {
        const int8_t *x = (const int8_t *)(w + 2), *y = (const int8_t *)(a + 2);
        int s = 0;
        for (int j = 0; j < 32; j++) s += x[j] * y[j];
        sum += (float)s * (f16(w) * f16(a));
    }
    return sum;
}

/* K-quants against Q8_K. */
static inline float q8k_d(const uint8_t *a) {
    float d;
    memcpy(&d, a, 4);
    return d;
}
static inline int16_t q8k_bsum(const uint8_t *a, int k) {
    int16_t v;
    memcpy(&v, a + 260 + 2 * k, 2);
    return v;
}

static float dot_q4_k_q5_k(int64_t n, const uint8_t *w, const uint8_t *a, bool five) {
    const size_t bs = five ? 176 : 144;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / 256; b++, w += bs, a += 292) {
        const uint8_t *scales = w + 4, *qh = w + 16, *qs = w + (five ? 48 : 16);
        const int8_t *y = (const int8_t *)(a + 4);
        int sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            int sc, m;
            nm_k4_scale_min(j, scales, &sc, &m);
            const int c = j / 2, hi = j & 1;
            int s = 0;
            for (int l = 0; l < 32; l++) {
                int q = hi ? (qs[32 * c + l] >> 4) : (qs[32 * c + l] & 0x0F);
                if (five) q |= ((qh[l] >> j) & 1) << 4;
                s += q * y[32 * j + l];
            }
            sumi += sc * s;
            summ += m * (q8k_bsum(a, 2 * j) + q8k_bsum(a, 2 * j + 1));
        }
        const float dy = q8k_d(a);
        sum += f16(w) * dy * (float)sumi - f16(w + 2) * dy * (float)summ;
    }
    return sum;
}

/* Q4_K as ggml_vec_dot_q4_K_q8_K (AVX2), the kernel for Q4_K tensors ggml does not repack
 * (dot_repack.c has the others): lane l of 8 sums scale × q × y over elements 4l..4l+3 of every
 * 32 and accumulates d·lane by fused multiply-add; the mins go into 4 lanes, lane k holding
 * sub-blocks 2k and 2k+1, accumulated the same way with −d·dmin; at the end (hi + lo), then pairs,
 * for both, and the two are added. */
static float dot_q4_k(int64_t n, const uint8_t *w, const uint8_t *a) {
    float acc[8] = {0}, accm[4] = {0};
    for (int64_t b = 0; b < n / 256; b++, w += 144, a += 292) {
        const uint8_t *qs = w + 16;
        const int8_t *y = (const int8_t *)(a + 4);
        int lane[8] = {0}, mins[4] = {0};
        for (int j = 0; j < 8; j++) {
            int sc, m;
            nm_k4_scale_min(j, w + 4, &sc, &m);
            for (int l = 0; l < 32; l++) {
                const int q = j & 1 ? qs[32 * (j / 2) + l] >> 4 : qs[32 * (j / 2) + l] & 0x0F;
                lane[l / 4] += sc * q * y[32 * j + l];
            }
            mins[j / 2] += m * (q8k_bsum(a, 2 * j) + q8k_bsum(a, 2 * j + 1));
        }
        const float dy = q8k_d(a);
        const float d = dy * f16(w), dmin = -dy * f16(w + 2);
        for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)lane[l], acc[l]);
        for (int k = 0; k < 4; k++) accm[k] = fmaf(dmin, (float)mins[k], accm[k]);
    }
    const float t0 = acc[4] + acc[0], t1 = acc[5] + acc[1], t2 = acc[6] + acc[2], t3 = acc[7] + acc[3];
    return ((t0 + t2) + (t1 + t3)) + ((accm[0] + accm[2]) + (accm[1] + accm[3]));
}

/* Q6_K as ggml_vec_dot_q6_K_q8_K (AVX2; ggml does not repack Q6_K on x86-64): lane l of 8 sums,
 * per super-block, scale × q × y over elements 4l..4l+3 of every 32 with q unsigned (0..63), then
 * subtracts 32 × (scale × bsum) for the two 16-element groups 2l and 2l+1, i.e. the offset of
 * elements 32l..32l+31. The lanes accumulate d·lane with fused multiply-adds and are summed as
 * (hi + lo), then pairs. */
static float dot_q6_k(int64_t n, const uint8_t *w, const uint8_t *a) {
    float acc[8] = {0};
    for (int64_t b = 0; b < n / 256; b++, w += 210, a += 292) {
        const uint8_t *ql = w, *qh = w + 128;
        const int8_t *sc = (const int8_t *)(w + 192);
        const int8_t *y = (const int8_t *)(a + 4);
        int q[256];
        for (int h = 0; h < 2; h++) {
            for (int l = 0; l < 32; l++) {
                const uint8_t L0 = ql[64 * h + l], L1 = ql[64 * h + 32 + l], H = qh[32 * h + l];
                q[128 * h + l] = (L0 & 0xF) | ((H & 3) << 4);
                q[128 * h + 32 + l] = (L1 & 0xF) | (((H >> 2) & 3) << 4);
                q[128 * h + 64 + l] = (L0 >> 4) | (((H >> 4) & 3) << 4);
                q[128 * h + 96 + l] = (L1 >> 4) | (((H >> 6) & 3) << 4);
            }
        }
        int lane[8] = {0};
        for (int e = 0; e < 256; e++) lane[(e % 32) / 4] += sc[e / 16] * q[e] * y[e];
        for (int l = 0; l < 8; l++)
            lane[l] -= 32 * (sc[2 * l] * q8k_bsum(a, 2 * l) + sc[2 * l + 1] * q8k_bsum(a, 2 * l + 1));
        const float d = q8k_d(a) * f16(w + 208);
        for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)lane[l], acc[l]);
    }
    const float t0 = acc[4] + acc[0], t1 = acc[5] + acc[1], t2 = acc[6] + acc[2], t3 = acc[7] + acc[3];
    return (t0 + t2) + (t1 + t3);
}

float nm_dot_ref(uint32_t wt, int64_t n, const void *w, const void *a) {
    switch (wt) {
    case GGML_TYPE_F32: return dot_f32(n, w, a);
    case GGML_TYPE_F16: return dot_f16(n, w, a);
    case GGML_TYPE_BF16: return dot_bf16(n, w, a);
    case GGML_TYPE_Q4_0: return dot_q4_0(n, w, a);
    case GGML_TYPE_Q4_1: return dot_q4_1(n, w, a);
    case GGML_TYPE_Q5_0: return dot_q5_0(n, w, a);
    case GGML_TYPE_Q5_1: return dot_q5_1(n, w, a);
    case GGML_TYPE_Q8_0: return dot_q8_0(n, w, a);
    case GGML_TYPE_Q4_K: return dot_q4_k(n, w, a);
    case GGML_TYPE_Q5_K: return dot_q4_k_q5_k(n, w, a, true);
    case GGML_TYPE_Q6_K: return dot_q6_k(n, w, a);
    default: {
        float r = 0.0f;
        if (!nm_dot_iq_ref(wt, n, w, a, &r))
            nm_dot_lowbit_ref(wt, n, w, a, &r);
        return r;
    }
    }
}

void nm_dot_tile_ref(uint32_t wt, int64_t n, const void *w, size_t w_stride, int n_rows,
                     const void *act, size_t act_stride, int n_cols, float *out, size_t out_stride) {
    if (nm_dot_tile_iq(wt, false, n, w, w_stride, n_rows, act, act_stride, n_cols, out, out_stride))
        return;
    for (int j = 0; j < n_cols; j++)
        for (int i = 0; i < n_rows; i++)
            out[(size_t)j * out_stride + (size_t)i] =
                nm_dot_ref(wt, n, (const uint8_t *)w + (size_t)i * w_stride,
                           (const uint8_t *)act + (size_t)j * act_stride);
}

/* ---------------- vector × matrix (attention) ---------------- */

void nm_dot_f32_columns_ref(int64_t n, const float *x, size_t x_stride, int n_x, const float *m, size_t m_stride,
                            int64_t n_cols, float *out, size_t out_stride) {
    for (int r = 0; r < n_x; r++) {
        const float *xr = x + (size_t)r * x_stride;
        float *o = out + (size_t)r * out_stride;
        for (int64_t j = 0; j < n_cols; j++) o[j] = 0.0f;
        for (int64_t i = 0; i < n; i++) {
            const float xi = xr[i], *row = m + (size_t)i * m_stride;
            for (int64_t j = 0; j < n_cols; j++) o[j] += xi * row[j];
        }
    }
}

/* ---------------- layouts shared by the SIMD kernels (dot_simd.h) ---------------- */

size_t nm_dot_q4_0_pack_size(int64_t n, int n_rows, int group) {
    const size_t groups = (size_t)(n_rows + group - 1) / (size_t)group;
    return groups * (size_t)group * (size_t)(n / 32) * NM_Q4_0_PACK_BLOCK_PER_ROW;
}

void nm_dot_q4_0_pack(int64_t n, const uint8_t *w, size_t w_stride, int n_rows, int group, uint8_t *dst) {
    const int64_t nb = n / 32;
    const size_t pb = (size_t)group * NM_Q4_0_PACK_BLOCK_PER_ROW; /* bytes per block of a group */
    for (int g0 = 0; g0 < n_rows; g0 += group, dst += (size_t)nb * pb) {
        for (int r = 0; r < group; r++) {
            uint8_t *o = dst + (size_t)r * 4;
            float *d = (float *)(dst + (size_t)group * 16) + r;
            if (g0 + r >= n_rows) {
                for (int64_t b = 0; b < nb; b++, o += pb, d += pb / sizeof(float)) {
                    for (int q = 0; q < 4; q++) memset(o + (size_t)q * group * 4, 0, 4);
                    *d = 0.0f;
                }
                continue;
            }
            const uint8_t *blk = w + (size_t)(g0 + r) * w_stride;
            for (int64_t b = 0; b < nb; b++, blk += 18, o += pb, d += pb / sizeof(float)) {
                uint32_t v[4];
                memcpy(v, blk + 2, 16);
                for (int q = 0; q < 4; q++) memcpy(o + (size_t)q * group * 4, &v[q], 4);
                *d = f16(blk);
            }
        }
    }
}

size_t nm_dot_act_aux_row_size(uint32_t wt, int64_t n) {
    switch (wt) {
    case GGML_TYPE_F16: case GGML_TYPE_BF16: return (size_t)n * sizeof(float);
    case GGML_TYPE_Q4_0: return (size_t)(n / 32) * sizeof(nm_q8_0_block_info);
    case GGML_TYPE_Q8_0: return (size_t)(n / 32) * (sizeof(float) + NM_Q8_0_GROUP_SUMS_PER_BLOCK);
    default: return 0;
    }
}

void nm_dot_act_aux(uint32_t wt, int64_t n, const void *act, void *aux) {
    if (wt == GGML_TYPE_F16) {
        nm_f16_to_f32_row(act, aux, (size_t)n);
    } else if (wt == GGML_TYPE_BF16) {
        nm_bf16_to_f32_row(act, aux, (size_t)n);
    } else if (wt == GGML_TYPE_Q4_0) {
        const uint8_t *a = act;
        nm_q8_0_block_info *info = aux;
        for (int64_t b = 0; b < n / 32; b++, a += 34) {
            const int8_t *y = (const int8_t *)(a + 2);
            int32_t s = 0;
            for (int j = 0; j < 32; j++) s += y[j];
            info[b].d = f16(a);
            info[b].minus_8_sum = -8 * s;
        }
    } else if (wt == GGML_TYPE_Q8_0) {
        const uint8_t *a = act;
        float *d = aux;
        int32_t *sums = (int32_t *)(d + n / 32);
        for (int64_t b = 0; b < n / 32; b++, a += 34) {
            const int8_t *y = (const int8_t *)(a + 2);
            d[b] = f16(a);
            for (int g = 0; g < 8; g++) sums[8 * b + g] = -128 * (y[4 * g] + y[4 * g + 1] + y[4 * g + 2] + y[4 * g + 3]);
        }
    }
}

/* ---------------- dispatch ---------------- */

#if defined(__x86_64__)
#define DOT_SIMD() (nm_cpu()->avx2 && nm_cpu()->fma && nm_cpu()->f16c)
#define DOT_AVX512()                                                                              \
    (DOT_SIMD() && nm_cpu()->avx512f && nm_cpu()->avx512bw && nm_cpu()->avx512vl && nm_cpu()->avx512dq && \
     nm_cpu()->avx512vnni)
#endif

void nm_dot_quantize_act(uint32_t wt, const float *x, void *dst, int64_t n) {
    /* the dispatching row conversions give the reference's bits (test_tensor) */
    if (wt == GGML_TYPE_F16) {
        nm_f32_to_f16_row(x, dst, (size_t)n);
        return;
    }
    if (wt == GGML_TYPE_BF16) {
        nm_f32_to_bf16_row(x, dst, (size_t)n);
        return;
    }
#if defined(__x86_64__)
    if (DOT_SIMD() && nm_dot_quantize_act_avx2(wt, x, dst, n)) return;
#endif
    nm_dot_quantize_act_ref(wt, x, dst, n);
}

float nm_dot(uint32_t wt, int64_t n, const void *w, const void *act) {
    float r;
    (void)r;
#if defined(__x86_64__)
    if (DOT_SIMD() && nm_dot_avx2(wt, n, w, act, &r)) return r;
#endif
    return nm_dot_ref(wt, n, w, act);
}

void nm_dot_f32_columns(int64_t n, const float *x, size_t x_stride, int n_x, const float *m, size_t m_stride,
                        int64_t n_cols, float *out, size_t out_stride) {
#if defined(__x86_64__)
    if (DOT_AVX512()) {
        nm_dot_f32_columns_avx512(n, x, x_stride, n_x, m, m_stride, n_cols, out, out_stride);
        return;
    }
    if (DOT_SIMD()) {
        nm_dot_f32_columns_avx2(n, x, x_stride, n_x, m, m_stride, n_cols, out, out_stride);
        return;
    }
#endif
    nm_dot_f32_columns_ref(n, x, x_stride, n_x, m, m_stride, n_cols, out, out_stride);
}

void nm_dot_tile_aux(uint32_t wt, int64_t n, const void *w, size_t w_stride, int n_rows, const void *act,
                     size_t act_stride, const void *aux, size_t aux_stride, int n_cols, float *out, size_t out_stride) {
#if defined(__x86_64__)
    if (DOT_AVX512() && nm_dot_tile_avx512(wt, n, w, w_stride, n_rows, act, act_stride, aux, aux_stride, n_cols,
                                           out, out_stride))
        return;
    if (nm_dot_iq_type(wt)) { /* unpacked once per row, AVX2 tile (dot_iq.h) */
        nm_dot_tile_iq(wt, DOT_SIMD(), n, w, w_stride, n_rows, act, act_stride, n_cols, out, out_stride);
        return;
    }
    if (DOT_SIMD() &&
        nm_dot_tile_avx2(wt, n, w, w_stride, n_rows, act, act_stride, aux, aux_stride, n_cols, out, out_stride))
        return;
#else
    (void)aux;
    (void)aux_stride;
#endif
    nm_dot_tile_ref(wt, n, w, w_stride, n_rows, act, act_stride, n_cols, out, out_stride);
}

void nm_dot_tile(uint32_t wt, int64_t n, const void *w, size_t w_stride, int n_rows,
                 const void *act, size_t act_stride, int n_cols, float *out, size_t out_stride) {
    const size_t aux_row = nm_dot_act_aux_row_size(wt, n);
    uint8_t *aux = NULL;
#if defined(__x86_64__)
    if (aux_row > 0 && DOT_SIMD()) aux = malloc(aux_row * (size_t)n_cols);
#endif
    if (!aux) { /* the scalar reference needs none; SIMD levels fall back to it without */
        nm_dot_tile_aux(wt, n, w, w_stride, n_rows, act, act_stride, NULL, 0, n_cols, out, out_stride);
        return;
    }
    for (int c = 0; c < n_cols; c++)
        nm_dot_act_aux(wt, n, (const uint8_t *)act + (size_t)c * act_stride, aux + (size_t)c * aux_row);
    nm_dot_tile_aux(wt, n, w, w_stride, n_rows, act, act_stride, aux, aux_row, n_cols, out, out_stride);
    free(aux);
}

/* ---------------- ggml's own float dot products (tinyBLAS declined) ---------------- */

bool nm_dot_float_vec_order(uint32_t weight_type, int64_t n_in, int64_t n_out) {
    return (weight_type == GGML_TYPE_F32 || weight_type == GGML_TYPE_F16 || weight_type == GGML_TYPE_BF16) &&
           (n_out % 4 != 0 || n_in % 8 != 0);
}

float nm_dot_float_vec(uint32_t weight_type, int64_t n, const void *w, const void *a) {
    float simd;
    if (DOT_SIMD() && nm_dot_float_vec_avx2(weight_type, n, w, a, &simd)) return simd;
    return nm_dot_float_vec_ref(weight_type, n, w, a);
}

float nm_dot_float_vec_ref(uint32_t weight_type, int64_t n, const void *w, const void *a) {
    const bool f16 = weight_type == GGML_TYPE_F16, bf16 = weight_type == GGML_TYPE_BF16;
    const float *wf = w, *af = a;
    const uint16_t *wh = w, *ah = a;
    float acc[32] = {0};
    const int64_t np = n & ~(int64_t)31;
    for (int64_t i = 0; i < np; i += 32)
        for (int m = 0; m < 32; m++)
            acc[m] = f16    ? fmaf(nm_f16_to_f32(wh[i + m]), nm_f16_to_f32(ah[i + m]), acc[m])
                     : bf16 ? fmaf(nm_bf16_to_f32(wh[i + m]), nm_bf16_to_f32(ah[i + m]), acc[m])
                            : fmaf(wf[i + m], af[i + m], acc[m]);
    /* sums 0+2 and 1+3 (vectors of 8), then those two, then the 8 lanes: halves, then
     * F32/F16 (GGML_F32_VEC_REDUCE): pairs, the two; BF16 (ggml_vec_dot_bf16): lanes 0+2 and 1+3, the two */
    float v[8];
    for (int l = 0; l < 8; l++) v[l] = (acc[l] + acc[16 + l]) + (acc[8 + l] + acc[24 + l]);
    float t[4];
    for (int l = 0; l < 4; l++) t[l] = v[l] + v[l + 4];
    const float r = bf16 ? (t[0] + t[2]) + (t[1] + t[3]) : (t[0] + t[1]) + (t[2] + t[3]);
    if (!f16 && !bf16) {
        float sum = r;
        for (int64_t i = np; i < n; i++) sum = fmaf(wf[i], af[i], sum);
        return sum;
    }
    double sum = r;
    for (int64_t i = np; i < n; i++)
        sum += f16 ? (double)(nm_f16_to_f32(wh[i]) * nm_f16_to_f32(ah[i]))
                   : (double)(nm_bf16_to_f32(wh[i]) * nm_bf16_to_f32(ah[i]));
    return (float)sum;
}
