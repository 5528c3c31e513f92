/* Scalar reference block quantizers for the legacy 32-element types and the row-level API
 * (FORMATS.md §3). K-quants live in quants_k.c. Every expression keeps the operand order of
 * llama.cpp's reference so the rounding is the same; the file is built with -ffp-contract=off. */
#include "formats/quants.h"
#include "formats/quants_simd.h"
#include "common/cpu.h"
#include "formats/quants_iq.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

/* ---- small helpers ---- */

static inline void put_f16(uint8_t *p, float v) {
    uint16_t h = nm_f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}
static inline float get_f16(const uint8_t *p) {
    return nm_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* First element with the largest magnitude, signed (strict >, from 0). */
static inline float signed_absmax(const float *x, int n) {
    float amax = 0, max = 0;
    for (int j = 0; j < n; j++) {
        const float v = x[j];
        if (amax < fabsf(v)) {
            amax = fabsf(v);
            max = v;
        }
    }
    return max;
}

static inline void min_max(const float *x, int n, float *mn, float *mx) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        const float v = x[j];
        if (v < min)
            min = v;
        if (v > max)
            max = v;
    }
    *mn = min;
    *mx = max;
}

/* ---- Q4_0 (§3.1) ---- */

static void q4_0_block(const float *x, uint8_t *y) {
    const float max = signed_absmax(x, 32);
    const float d = max / -8;
    const float id = d ? 1.0f / d : 0.0f;
    put_f16(y, d);
    for (int j = 0; j < 16; j++) {
        const float x0 = x[j] * id, x1 = x[16 + j] * id;
        int q0 = (int8_t)(x0 + 8.5f), q1 = (int8_t)(x1 + 8.5f);
        q0 = q0 < 15 ? q0 : 15;
        q1 = q1 < 15 ? q1 : 15;
        y[2 + j] = (uint8_t)(q0 | q1 << 4);
    }
}

/* ---- Q4_1 (§3.2) ---- */

static void q4_1_block(const float *x, uint8_t *y) {
    float min, max;
    min_max(x, 32, &min, &max);
    const float d = (max - min) / 15;
    const float id = d ? 1.0f / d : 0.0f;
    put_f16(y, d);
    put_f16(y + 2, min);
    for (int j = 0; j < 16; j++) {
        const float x0 = (x[j] - min) * id, x1 = (x[16 + j] - min) * id;
        int q0 = (int8_t)(x0 + 0.5f), q1 = (int8_t)(x1 + 0.5f);
        q0 = q0 < 15 ? q0 : 15;
        q1 = q1 < 15 ? q1 : 15;
        y[4 + j] = (uint8_t)(q0 | q1 << 4);
    }
}

/* ---- Q5_0 (§3.3) ---- */

static void pack_q5(uint8_t *qh_out, uint8_t *qs, const uint8_t *q) {
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0F) | (q[16 + j] & 0x0F) << 4);
        qh |= (uint32_t)((q[j] & 0x10u) >> 4) << j;
        qh |= (uint32_t)((q[16 + j] & 0x10u) >> 4) << (j + 16);
    }
    qh_out[0] = (uint8_t)qh;
    qh_out[1] = (uint8_t)(qh >> 8);
    qh_out[2] = (uint8_t)(qh >> 16);
    qh_out[3] = (uint8_t)(qh >> 24);
}

static void q5_0_block(const float *x, uint8_t *y) {
    const float max = signed_absmax(x, 32);
    const float d = max / -16;
    const float id = d ? 1.0f / d : 0.0f;
    put_f16(y, d);
    uint8_t q[32];
    for (int j = 0; j < 32; j++) {
        int v = (int8_t)(x[j] * id + 16.5f);
        q[j] = (uint8_t)(v < 31 ? v : 31);
    }
    pack_q5(y + 2, y + 6, q);
}

/* ---- Q5_1 (§3.4) ---- */

static void q5_1_block(const float *x, uint8_t *y) {
    float min, max;
    min_max(x, 32, &min, &max);
    const float d = (max - min) / 31;
    const float id = d ? 1.0f / d : 0.0f;
    put_f16(y, d);
    put_f16(y + 2, min);
    uint8_t q[32];
    for (int j = 0; j < 32; j++)
        q[j] = (uint8_t)((x[j] - min) * id + 0.5f);
    pack_q5(y + 4, y + 8, q);
}

/* ---- Q8_0, Q8_1 (§3.5) ---- */

static void q8_0_block(const float *x, uint8_t *y) {
    float amax = 0;
    for (int j = 0; j < 32; j++) {
        const float v = fabsf(x[j]);
        amax = amax > v ? amax : v;
    }
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    put_f16(y, d);
    for (int j = 0; j < 32; j++)
        y[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

static void q8_1_block(const float *x, uint8_t *y) {
    float amax = 0;
    for (int j = 0; j < 32; j++) {
        const float v = fabsf(x[j]);
        amax = amax > v ? amax : v;
    }
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    put_f16(y, d);
    int sum = 0;
    for (int j = 0; j < 32; j++) {
        int8_t q = (int8_t)roundf(x[j] * id);
        y[4 + j] = (uint8_t)q;
        sum += q;
    }
    put_f16(y + 2, (float)sum * d);
}

/* ---- legacy types with an importance matrix (§3.6) ---- */

static float row_sigma2(const float *x, int64_t n) {
    float sum_x2 = 0;
    for (int64_t j = 0; j < n; j++)
        sum_x2 += x[j] * x[j];
    return sum_x2 / (float)n;
}

static void legacy_weights(const float *xb, const float *qw, float sigma2, float *w) {
    for (int j = 0; j < 32; j++)
        w[j] = qw[j] * sqrtf(sigma2 + xb[j] * xb[j]);
}

static void q4_0_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    if (!qw) {
        for (int64_t b = 0; b < n / 32; b++)
            q4_0_block(x + 32 * b, y + 18 * b);
        return;
    }
    const float sigma2 = row_sigma2(x, n);
    for (int64_t b = 0; b < n / 32; b++) {
        float w[32];
        int8_t L[32];
        legacy_weights(x + 32 * b, qw + 32 * b, sigma2, w);
        uint8_t *blk = y + 18 * b;
        put_f16(blk, nm_make_qx(32, 8, x + 32 * b, L, w));
        for (int j = 0; j < 16; j++)
            blk[2 + j] = (uint8_t)(L[j] | L[j + 16] << 4);
    }
}

static void q5_0_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    if (!qw) {
        for (int64_t b = 0; b < n / 32; b++)
            q5_0_block(x + 32 * b, y + 22 * b);
        return;
    }
    const float sigma2 = row_sigma2(x, n);
    for (int64_t b = 0; b < n / 32; b++) {
        float w[32];
        int8_t L[32];
        legacy_weights(x + 32 * b, qw + 32 * b, sigma2, w);
        uint8_t *blk = y + 22 * b;
        put_f16(blk, nm_make_qx(32, 16, x + 32 * b, L, w));
        pack_q5(blk + 2, blk + 6, (const uint8_t *)L);
    }
}

static void qx_1_imatrix_row(const float *x, uint8_t *y, int64_t n, const float *qw, int nmax) {
    const float sigma2 = row_sigma2(x, n);
    const int bytes = nmax == 15 ? 20 : 24;
    for (int64_t b = 0; b < n / 32; b++) {
        float w[32], the_min;
        uint8_t L[32], Laux[32];
        legacy_weights(x + 32 * b, qw + 32 * b, sigma2, w);
        uint8_t *blk = y + bytes * b;
        const float d =
            nm_make_qkx2(32, nmax, x + 32 * b, w, L, &the_min, Laux, -0.9f, 0.05f, 36, NM_QKX_DEGENERATE_LE);
        put_f16(blk, d);
        put_f16(blk + 2, -the_min);
        if (nmax == 15) {
            for (int j = 0; j < 16; j++)
                blk[4 + j] = (uint8_t)(L[j] | L[j + 16] << 4);
        } else {
            pack_q5(blk + 4, blk + 8, L);
        }
    }
}

static void q4_1_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    if (qw) {
        qx_1_imatrix_row(x, y, n, qw, 15);
        return;
    }
    for (int64_t b = 0; b < n / 32; b++)
        q4_1_block(x + 32 * b, y + 20 * b);
}

static void q5_1_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    if (qw) {
        qx_1_imatrix_row(x, y, n, qw, 31);
        return;
    }
    for (int64_t b = 0; b < n / 32; b++)
        q5_1_block(x + 32 * b, y + 24 * b);
}

static void q8_0_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    (void)qw; /* llama.cpp ignores the importance matrix for Q8_0 */
    for (int64_t b = 0; b < n / 32; b++)
        q8_0_block(x + 32 * b, y + 34 * b);
}

static void q8_1_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    (void)qw;
    for (int64_t b = 0; b < n / 32; b++)
        q8_1_block(x + 32 * b, y + 36 * b);
}

static void f32_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    (void)qw;
    memcpy(y, x, (size_t)n * 4);
}
/* F16/BF16 "quantization": a row conversion from tensor.c, staged through an aligned buffer
 * because y may be unaligned. */
static void halves_row(const float *x, uint8_t *y, int64_t n, void (*convert)(const float *, uint16_t *, size_t)) {
    uint16_t tmp[1024];
    for (int64_t i = 0; i < n; i += 1024) {
        size_t m = (size_t)(n - i < 1024 ? n - i : 1024);
        convert(x + i, tmp, m);
        memcpy(y + 2 * i, tmp, 2 * m);
    }
}
static void f16_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    (void)qw;
    halves_row(x, y, n, nm_f32_to_f16_row_ref);
}
static void bf16_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    (void)qw;
    halves_row(x, y, n, nm_f32_to_bf16_row_ref);
}
/* The dispatching versions use the SIMD row conversions of tensor.c. */
static void f16_row_fast(const float *x, uint8_t *y, int64_t n, const float *qw) {
    (void)qw;
    halves_row(x, y, n, nm_f32_to_f16_row);
}
static void bf16_row_fast(const float *x, uint8_t *y, int64_t n, const float *qw) {
    (void)qw;
    halves_row(x, y, n, nm_f32_to_bf16_row);
}

/* ---- dequantization ---- */

static void dq_q4_0(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 18, y += 32) {
        const float d = get_f16(x);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)((x[2 + j] & 0x0F) - 8) * d;
            y[j + 16] = (float)((x[2 + j] >> 4) - 8) * d;
        }
    }
}
static void dq_q4_1(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 20, y += 32) {
        const float d = get_f16(x), m = get_f16(x + 2);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)(x[4 + j] & 0x0F) * d + m;
            y[j + 16] = (float)(x[4 + j] >> 4) * d + m;
        }
    }
}
static inline uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void dq_q5_0(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 22, y += 32) {
        const float d = get_f16(x);
        const uint32_t qh = get_u32(x + 2);
        for (int j = 0; j < 16; j++) {
            const int q0 = (int)((x[6 + j] & 0x0F) | ((qh >> j) & 1) << 4) - 16;
            const int q1 = (int)((x[6 + j] >> 4) | ((qh >> (j + 16)) & 1) << 4) - 16;
            y[j] = (float)q0 * d;
            y[j + 16] = (float)q1 * d;
        }
    }
}
static void dq_q5_1(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 24, y += 32) {
        const float d = get_f16(x), m = get_f16(x + 2);
        const uint32_t qh = get_u32(x + 4);
        for (int j = 0; j < 16; j++) {
            const int q0 = (int)((x[8 + j] & 0x0F) | ((qh >> j) & 1) << 4);
            const int q1 = (int)((x[8 + j] >> 4) | ((qh >> (j + 16)) & 1) << 4);
            y[j] = (float)q0 * d + m;
            y[j + 16] = (float)q1 * d + m;
        }
    }
}
static void dq_q8_0(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 34, y += 32) {
        const float d = get_f16(x);
        for (int j = 0; j < 32; j++)
            y[j] = (float)(int8_t)x[2 + j] * d;
    }
}
static void dq_q8_1(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 36, y += 32) {
        const float d = get_f16(x);
        for (int j = 0; j < 32; j++)
            y[j] = (float)(int8_t)x[4 + j] * d;
    }
}
static void dq_f32(const uint8_t *x, float *y, int64_t n) {
    memcpy(y, x, (size_t)n * 4);
}
static void dq_f16(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] = nm_f16_to_f32((uint16_t)(x[2 * i] | x[2 * i + 1] << 8));
}
static void dq_bf16(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] = nm_bf16_to_f32((uint16_t)(x[2 * i] | x[2 * i + 1] << 8));
}
/* F16/BF16 rows through tensor.c's row converters: directly when x is 2-byte aligned, else
 * staged through an aligned buffer (tensors in a mapped file may sit at any offset). */
static void dq_halves(const uint8_t *x, float *y, int64_t n, void (*convert)(const uint16_t *, float *, size_t)) {
    if (((uintptr_t)x & 1) == 0) {
        convert((const uint16_t *)(const void *)x, y, (size_t)n);
        return;
    }
    uint16_t tmp[1024];
    for (int64_t i = 0; i < n; i += 1024) {
        size_t m = (size_t)(n - i < 1024 ? n - i : 1024);
        memcpy(tmp, x + 2 * i, 2 * m);
        convert(tmp, y + i, m);
    }
}
static void dq_f16_fast(const uint8_t *x, float *y, int64_t n) { dq_halves(x, y, n, nm_f16_to_f32_row); }
static void dq_bf16_fast(const uint8_t *x, float *y, int64_t n) { dq_halves(x, y, n, nm_bf16_to_f32_row); }

/* K-quant kernels (quants_k.c). */
void nm_q4_k_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw);
void nm_q5_k_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw);
void nm_q6_k_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw);
void nm_q8_k_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw);
void nm_dq_q4_k_ref(const uint8_t *x, float *y, int64_t n);
void nm_dq_q5_k_ref(const uint8_t *x, float *y, int64_t n);
void nm_dq_q6_k_ref(const uint8_t *x, float *y, int64_t n);
void nm_dq_q8_k_ref(const uint8_t *x, float *y, int64_t n);
/* 2- and 3-bit K-quants (quants_k_low.c), non-linear 4-bit (quants_iq4.c), ternary (quants_tq.c). */
void nm_q2_k_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw);
void nm_q3_k_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw);
void nm_dq_q2_k_ref(const uint8_t *x, float *y, int64_t n);
void nm_dq_q3_k_ref(const uint8_t *x, float *y, int64_t n);
void nm_iq4_nl_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw);
void nm_iq4_xs_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw);
void nm_dq_iq4_nl_ref(const uint8_t *x, float *y, int64_t n);
void nm_dq_iq4_xs_ref(const uint8_t *x, float *y, int64_t n);
void nm_tq1_0_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw);
void nm_tq2_0_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw);
void nm_dq_tq1_0_ref(const uint8_t *x, float *y, int64_t n);
void nm_dq_tq2_0_ref(const uint8_t *x, float *y, int64_t n);

/* Lattice i-quants (quants_iq1.c, quants_iq2.c, quants_iq3.c; lattice tables in quants_iq.h). */
void nm_iq3_xxs_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw);
void nm_iq3_s_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw);
void nm_dq_iq3_xxs_ref(const uint8_t *x, float *y, int64_t n);
void nm_dq_iq3_s_ref(const uint8_t *x, float *y, int64_t n);
void nm_iq2_xxs_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw);
void nm_iq2_xs_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw);
void nm_iq2_s_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw);
void nm_dq_iq2_xxs_ref(const uint8_t *x, float *y, int64_t n);
void nm_dq_iq2_xs_ref(const uint8_t *x, float *y, int64_t n);
void nm_dq_iq2_s_ref(const uint8_t *x, float *y, int64_t n);
void nm_iq1_s_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw);
void nm_iq1_m_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw);
void nm_dq_iq1_s_ref(const uint8_t *x, float *y, int64_t n);
void nm_dq_iq1_m_ref(const uint8_t *x, float *y, int64_t n);

nm_qrow_fn nm_quants_ref_quantizer(uint32_t type) {
    switch (type) {
    case GGML_TYPE_F32: return f32_row;
    case GGML_TYPE_F16: return f16_row;
    case GGML_TYPE_BF16: return bf16_row;
    case GGML_TYPE_Q4_0: return q4_0_row;
    case GGML_TYPE_Q4_1: return q4_1_row;
    case GGML_TYPE_Q5_0: return q5_0_row;
    case GGML_TYPE_Q5_1: return q5_1_row;
    case GGML_TYPE_Q8_0: return q8_0_row;
    case GGML_TYPE_Q8_1: return q8_1_row;
    case GGML_TYPE_Q4_K: return nm_q4_k_row_ref;
    case GGML_TYPE_Q5_K: return nm_q5_k_row_ref;
    case GGML_TYPE_Q6_K: return nm_q6_k_row_ref;
    case GGML_TYPE_Q8_K: return nm_q8_k_row_ref;
    case GGML_TYPE_IQ3_XXS: return nm_iq3_xxs_row_ref;
    case GGML_TYPE_IQ3_S: return nm_iq3_s_row_ref;
    case GGML_TYPE_IQ2_XXS: return nm_iq2_xxs_row_ref;
    case GGML_TYPE_IQ2_XS: return nm_iq2_xs_row_ref;
    case GGML_TYPE_IQ2_S: return nm_iq2_s_row_ref;
    case GGML_TYPE_IQ1_S: return nm_iq1_s_row_ref;
    case GGML_TYPE_IQ1_M: return nm_iq1_m_row_ref;
    case GGML_TYPE_Q2_K: return nm_q2_k_row_ref;
    case GGML_TYPE_Q3_K: return nm_q3_k_row_ref;
    case GGML_TYPE_IQ4_NL: return nm_iq4_nl_row_ref;
    case GGML_TYPE_IQ4_XS: return nm_iq4_xs_row_ref;
    case GGML_TYPE_TQ1_0: return nm_tq1_0_row_ref;
    case GGML_TYPE_TQ2_0: return nm_tq2_0_row_ref;
    default: return NULL;
    }
}

nm_dqrow_fn nm_quants_ref_dequantizer(uint32_t type) {
    switch (type) {
    case GGML_TYPE_F32: return dq_f32;
    case GGML_TYPE_F16: return dq_f16;
    case GGML_TYPE_BF16: return dq_bf16;
    case GGML_TYPE_Q4_0: return dq_q4_0;
    case GGML_TYPE_Q4_1: return dq_q4_1;
    case GGML_TYPE_Q5_0: return dq_q5_0;
    case GGML_TYPE_Q5_1: return dq_q5_1;
    case GGML_TYPE_Q8_0: return dq_q8_0;
    case GGML_TYPE_Q8_1: return dq_q8_1;
    case GGML_TYPE_Q4_K: return nm_dq_q4_k_ref;
    case GGML_TYPE_Q5_K: return nm_dq_q5_k_ref;
    case GGML_TYPE_Q6_K: return nm_dq_q6_k_ref;
    case GGML_TYPE_Q8_K: return nm_dq_q8_k_ref;
    case GGML_TYPE_IQ3_XXS: return nm_dq_iq3_xxs_ref;
    case GGML_TYPE_IQ3_S: return nm_dq_iq3_s_ref;
    case GGML_TYPE_IQ2_XXS: return nm_dq_iq2_xxs_ref;
    case GGML_TYPE_IQ2_XS: return nm_dq_iq2_xs_ref;
    case GGML_TYPE_IQ2_S: return nm_dq_iq2_s_ref;
    case GGML_TYPE_IQ1_S: return nm_dq_iq1_s_ref;
    case GGML_TYPE_IQ1_M: return nm_dq_iq1_m_ref;
    case GGML_TYPE_Q2_K: return nm_dq_q2_k_ref;
    case GGML_TYPE_Q3_K: return nm_dq_q3_k_ref;
    case GGML_TYPE_IQ4_NL: return nm_dq_iq4_nl_ref;
    case GGML_TYPE_IQ4_XS: return nm_dq_iq4_xs_ref;
    case GGML_TYPE_TQ1_0: return nm_dq_tq1_0_ref;
    case GGML_TYPE_TQ2_0: return nm_dq_tq2_0_ref;
    default: return NULL;
    }
}

/* ---- dispatch ---- */

static bool use_simd(void) {
#if defined(__x86_64__)
    const nm_cpu_features *c = nm_cpu();
    return c->avx2 && c->fma && c->f16c;
#elif defined(__aarch64__)
    return nm_cpu()->neon;
#else
    return false;
#endif
}

static nm_qrow_fn simd_quantizer(uint32_t type) {
    nm_qrow_fn fn = NULL;
    if (type == GGML_TYPE_F16)
        return f16_row_fast;
    if (type == GGML_TYPE_BF16)
        return bf16_row_fast;
#if defined(__x86_64__)
    if (use_simd())
        fn = nm_quants_avx2_quantizer(type);
#elif defined(__aarch64__)
    if (use_simd())
        fn = nm_quants_neon_quantizer(type);
#endif
    return fn ? fn : nm_quants_ref_quantizer(type);
}

static nm_dqrow_fn simd_dequantizer(uint32_t type) {
    nm_dqrow_fn fn = NULL;
    if (type == GGML_TYPE_F16)
        return dq_f16_fast;
    if (type == GGML_TYPE_BF16)
        return dq_bf16_fast;
#if defined(__x86_64__)
    if (use_simd())
        fn = nm_quants_avx2_dequantizer(type);
#elif defined(__aarch64__)
    if (use_simd())
        fn = nm_quants_neon_dequantizer(type);
#endif
    return fn ? fn : nm_quants_ref_dequantizer(type);
}

static int64_t find_nonfinite_ref(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        if ((u & 0x7F800000u) == 0x7F800000u)
            return i;
    }
    return -1;
}

static int64_t find_nonfinite(const float *x, int64_t n, bool simd) {
#if defined(__x86_64__)
    if (simd && use_simd())
        return nm_find_nonfinite_avx2(x, n);
#elif defined(__aarch64__)
    if (simd && use_simd())
        return nm_find_nonfinite_neon(x, n);
#endif
    (void)simd;
    return find_nonfinite_ref(x, n);
}

int64_t nm_find_nonfinite(const float *x, int64_t n) { return find_nonfinite(x, n, true); }

bool nm_quantize_supported(uint32_t type) {
    switch (type) {
    case GGML_TYPE_F32: case GGML_TYPE_F16: case GGML_TYPE_BF16:
    case GGML_TYPE_Q4_0: case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_0: case GGML_TYPE_Q5_1:
    case GGML_TYPE_Q8_0: case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K: case GGML_TYPE_Q6_K:
    case GGML_TYPE_IQ3_XXS: case GGML_TYPE_IQ3_S: case GGML_TYPE_IQ2_XXS: case GGML_TYPE_IQ2_XS:
    case GGML_TYPE_IQ2_S: case GGML_TYPE_IQ1_S: case GGML_TYPE_IQ1_M:
    case GGML_TYPE_Q2_K: case GGML_TYPE_Q3_K: case GGML_TYPE_IQ4_NL: case GGML_TYPE_IQ4_XS:
    case GGML_TYPE_TQ1_0: case GGML_TYPE_TQ2_0:
        return true;
    default:
        return false;
    }
}

bool nm_dequantize_supported(uint32_t type) {
    return nm_quants_ref_dequantizer(type) != NULL;
}

/* Offsets of the f16 fields that must stay finite, per type (-1 terminates). */
static const int *f16_fields(uint32_t type) {
    static const int d0[] = {0, -1}, d0m2[] = {0, 2, -1}, q6k[] = {208, -1}, none[] = {-1};
    static const int q2k[] = {80, 82, -1}, q3k[] = {108, -1}, tq1[] = {52, -1}, tq2[] = {64, -1};
    switch (type) {
    case GGML_TYPE_Q4_0: case GGML_TYPE_Q5_0: case GGML_TYPE_Q8_0: return d0;
    case GGML_TYPE_IQ3_XXS: case GGML_TYPE_IQ3_S: case GGML_TYPE_IQ2_XXS: case GGML_TYPE_IQ2_XS:
    case GGML_TYPE_IQ2_S: case GGML_TYPE_IQ1_S: return d0;
    case GGML_TYPE_IQ4_NL: case GGML_TYPE_IQ4_XS: return d0;
    case GGML_TYPE_Q2_K: return q2k;
    case GGML_TYPE_Q3_K: return q3k;
    case GGML_TYPE_TQ1_0: return tq1;
    case GGML_TYPE_TQ2_0: return tq2;
    case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_1: case GGML_TYPE_Q8_1:
    case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K: return d0m2;
    case GGML_TYPE_Q6_K: return q6k;
    default: return none;
    }
}

static float block_absmax(const float *x, int n) {
    float amax = 0;
    for (int i = 0; i < n; i++)
        amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
    return amax;
}

/* After quantizing row r: every stored scale must be a finite f16 (and F16/BF16 values finite). */
static int check_row_output(uint32_t type, const float *x, const uint8_t *y, int64_t n, int64_t r,
                            nm_error *err) {
    const ggml_type_info *t = ggml_type_get(type);
    if (type == GGML_TYPE_F16 || type == GGML_TYPE_BF16) {
        const uint16_t inf = type == GGML_TYPE_F16 ? 0x7C00 : 0x7F80;
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(y[2 * i] | y[2 * i + 1] << 8);
            if ((h & inf) == inf)
                return nm_fail(err, "row %" PRId64 ": value %g at column %" PRId64
                               " is too large for %s (it would become infinite)",
                               r, (double)x[i], i, t->name);
        }
        return 0;
    }
    if (type == GGML_TYPE_IQ1_M) /* its f16 scale is spread over the top nibbles of 4 u16 scales */
        for (int64_t b = 0; b < n / 256; b++) {
            const uint8_t *s = y + b * 56 + 48;
            const uint16_t h = (uint16_t)((s[1] >> 4) | (s[3] & 0xf0) | (s[5] >> 4) << 8 | (s[7] & 0xf0) << 8);
            if ((h & 0x7C00) == 0x7C00)
                return nm_fail(err, "row %" PRId64 ": values too large for %s in columns %" PRId64 "..%" PRId64
                               " (largest magnitude %g): the block scale overflows f16",
                               r, t->name, b * 256, b * 256 + 255, (double)block_absmax(x + b * 256, 256));
        }
    const int *fields = f16_fields(type);
    if (fields[0] < 0)
        return 0;
    const int64_t nb = n / t->block_size;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = y + b * t->type_size;
        /* No block type here stores magnitudes beyond ~3e8 (Q6_K: 32 * 128 * 65504). Far above
         * that the quantizers' sums of squares overflow before any scale does, and Q6_K would
         * silently store zeros: refuse by magnitude too. */
        float amax = block_absmax(x + b * t->block_size, (int)t->block_size);
        if (amax > 1e12f)
            return nm_fail(err, "row %" PRId64 ": values too large for %s in columns %" PRId64 "..%" PRId64
                           " (largest magnitude %g): beyond what its f16 scales can represent",
                           r, t->name, b * t->block_size, (b + 1) * t->block_size - 1, (double)amax);
        for (const int *f = fields; *f >= 0; f++) {
            uint16_t h = (uint16_t)(blk[*f] | blk[*f + 1] << 8);
            if ((h & 0x7C00) == 0x7C00)
                return nm_fail(err, "row %" PRId64 ": values too large for %s in columns %" PRId64
                               "..%" PRId64 " (largest magnitude %g): the block scale overflows f16",
                               r, t->name, b * t->block_size, (b + 1) * t->block_size - 1,
                               (double)block_absmax(x + b * t->block_size, (int)t->block_size));
        }
    }
    return 0;
}

static int quantize_rows(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                         const float *imatrix, nm_error *err, bool simd) {
    const ggml_type_info *t = ggml_type_get(type);
    nm_qrow_fn fn = simd ? simd_quantizer(type) : nm_quants_ref_quantizer(type);
    if (!t || !fn)
        return nm_fail(err, "cannot quantize to type %s (%u): not supported", ggml_type_name(type), type);
    if (n_per_row <= 0 || n_per_row % t->block_size != 0)
        return nm_fail(err, "row length %" PRId64 " is not a multiple of %s's block size %u",
                       n_per_row, t->name, t->block_size);
    if (nrows < 0)
        return nm_fail(err, "negative row count %" PRId64, nrows);
    size_t row_size;
    if (ggml_row_size(type, (uint64_t)n_per_row, &row_size) != 0)
        return nm_fail(err, "row of %" PRId64 " values of %s is too large", n_per_row, t->name);
    if (!imatrix && nm_iq_requires_imatrix(type))
        return nm_fail(err, "%s needs an importance matrix (ggml's quantizer for it cannot run without one)",
                       t->name);
    if (nm_iq_prepare(type) != 0)
        return nm_fail(err, "out of memory building the %s codebook search tables", t->name);
    if (imatrix) {
        int64_t bad = find_nonfinite(imatrix, n_per_row, simd);
        if (bad >= 0)
            return nm_fail(err, "importance matrix entry %" PRId64 " is %g, not a finite number", bad,
                           (double)imatrix[bad]);
        /* the lattice searches assume weights >= 0 (llama-imatrix's mean squares always are) */
        for (int64_t i = 0; nm_iq_lattice_for(type) && i < n_per_row; i++)
            if (imatrix[i] < 0)
                return nm_fail(err, "importance matrix entry %" PRId64 " is %g; %s needs weights >= 0", i,
                               (double)imatrix[i], t->name);
    }
    for (int64_t r = 0; r < nrows; r++) {
        const float *x = src + r * n_per_row;
        uint8_t *y = (uint8_t *)dst + (size_t)r * row_size;
        int64_t bad = find_nonfinite(x, n_per_row, simd);
        if (bad >= 0)
            return nm_fail(err, "row %" PRId64 ": value at column %" PRId64 " is %s; %s cannot store it", r,
                           bad, isnan(x[bad]) ? "NaN" : x[bad] > 0 ? "+Inf" : "-Inf", t->name);
        fn(x, y, n_per_row, imatrix);
        if (check_row_output(type, x, y, n_per_row, r, err) != 0)
            return -1;
    }
    return 0;
}

int nm_quantize_rows(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                     const float *imatrix, nm_error *err) {
    return quantize_rows(type, src, dst, nrows, n_per_row, imatrix, err, true);
}

int nm_quantize_rows_ref(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                         const float *imatrix, nm_error *err) {
    return quantize_rows(type, src, dst, nrows, n_per_row, imatrix, err, false);
}

void nm_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n) {
    nm_dqrow_fn fn = simd_dequantizer(type);
    if (fn)
        fn(src, dst, n);
}

void nm_dequantize_row_ref(uint32_t type, const void *src, float *dst, int64_t n) {
    nm_dqrow_fn fn = nm_quants_ref_dequantizer(type);
    if (fn)
        fn(src, dst, n);
}
