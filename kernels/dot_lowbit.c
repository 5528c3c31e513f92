/* Scalar reference dot products for the low-bit weight types: Q2_K, Q3_K, IQ4_XS, TQ1_0, TQ2_0
 * (against Q8_K activations) and IQ4_NL (against Q8_0), each in the summation order of the ggml kernel
 * llama.cpp's AVX2 CPU backend runs for it (ggml-cpu/arch/x86/quants.c, repack.cpp):
 *
 *   Q2_K, Q3_K, IQ4_XS (ggml_vec_dot_*_q8_K): per super-block, 8 exact integer lanes, lane l
 *     holding scale × q × y over elements 4l..4l+3 of every 32; each lane is added to a float
 *     lane by a fused multiply-add with d = weight d × activation d; at the end the 8 float lanes
 *     are summed as (l0+l4 + l2+l6) + (l1+l5 + l3+l7). Q2_K first adds its mins the same way:
 *     float lane l += (−activation d × dmin) × (m[2l]·bsum[2l] + m[2l+1]·bsum[2l+1]).
 *   IQ4_NL: ggml repacks tensors of a multiple of 8 rows (block_iq4_nlx8) and its gemm and gemv
 *     both keep one float per output, adding block by block the exact integer sum times
 *     (weight d × activation d) by a fused multiply-add, as for Q4_0.
 *
 * Integer sums are exact, so only the float steps above fix the result. */
#include "kernels/dot_lowbit.h"

#include <math.h>
#include <string.h>

#include "formats/quants_iq4.h"
#include "formats/tensor.h"
#include "kernels/dot_iq.h"

static inline float f16(const uint8_t *p) { return nm_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }
static inline float q8k_d(const uint8_t *a) {
    float d;
    memcpy(&d, a, 4);
    return d;
}
static inline int q8k_bsum(const uint8_t *a, int k) {
    int16_t v;
    memcpy(&v, a + 260 + 2 * k, 2);
    return v;
}
static inline float hsum8(const float acc[8]) {
    const float t0 = acc[4] + acc[0], t1 = acc[5] + acc[1], t2 = acc[6] + acc[2], t3 = acc[7] + acc[3];
    return (t0 + t2) + (t1 + t3);
}

/* 2-bit level of element e of a Q2_K/Q3_K block (qs at q). */
static inline int low2(const uint8_t *q, int e) { return (q[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3; }

static float dot_q2_k(int64_t n, const uint8_t *w, const uint8_t *a) {
    float acc[8] = {0};
    for (int64_t b = 0; b < n / 256; b++, w += 84, a += 292) {
        const int8_t *y = (const int8_t *)(a + 4);
        const float dy = q8k_d(a);
        const float d = dy * f16(w + 80), dmin = -dy * f16(w + 82);
        for (int l = 0; l < 8; l++) {
            const int pm = (w[2 * l] >> 4) * q8k_bsum(a, 2 * l) + (w[2 * l + 1] >> 4) * q8k_bsum(a, 2 * l + 1);
            acc[l] = fmaf(dmin, (float)pm, acc[l]);
        }
        int lane[8] = {0};
        for (int e = 0; e < 256; e++) lane[(e % 32) / 4] += (w[e / 16] & 0xF) * low2(w + 16, e) * y[e];
        for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)lane[l], acc[l]);
    }
    return hsum8(acc);
}

static float dot_q3_k(int64_t n, const uint8_t *w, const uint8_t *a) {
    float acc[8] = {0};
    for (int64_t b = 0; b < n / 256; b++, w += 110, a += 292) {
        const int8_t *y = (const int8_t *)(a + 4);
        int sc[16];
        for (int j = 0; j < 16; j++) sc[j] = nm_q3_k_scale(w + 96, j);
        int lane[8] = {0};
        for (int e = 0; e < 256; e++) {
            const int q = low2(w + 32, e) - ((w[e % 32] >> (e / 32)) & 1 ? 0 : 4);
            lane[(e % 32) / 4] += sc[e / 16] * q * y[e];
        }
        const float d = q8k_d(a) * f16(w + 108);
        for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)lane[l], acc[l]);
    }
    return hsum8(acc);
}

static float dot_iq4_xs(int64_t n, const uint8_t *w, const uint8_t *a) {
    float acc[8] = {0};
    for (int64_t b = 0; b < n / 256; b++, w += 136, a += 292) {
        const int8_t *y = (const int8_t *)(a + 4);
        const unsigned sh = (unsigned)(w[2] | w[3] << 8);
        int lane[8] = {0};
        for (int ib = 0; ib < 8; ib++) {
            const int ls = (((w[4 + ib / 2] >> 4 * (ib % 2)) & 0xF) | ((sh >> 2 * ib) & 3) << 4) - 32;
            const uint8_t *qs = w + 8 + 16 * ib;
            for (int e = 0; e < 32; e++) {
                const int v = nm_iq4nl_values[e < 16 ? qs[e] & 0xF : qs[e - 16] >> 4];
                lane[e / 4] += ls * v * y[32 * ib + e];
            }
        }
        const float d = f16(w) * q8k_d(a);
        for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)lane[l], acc[l]);
    }
    return hsum8(acc);
}

static float dot_iq4_nl(int64_t n, const uint8_t *w, const uint8_t *a) {
    float sum = 0.0f;
    for (int64_t b = 0; b < n / 32; b++, w += 18, a += 34) {
        const int8_t *y = (const int8_t *)(a + 2);
        int s = 0;
        for (int j = 0; j < 16; j++) {
            s += nm_iq4nl_values[w[2 + j] & 0x0F] * y[j];
            s += nm_iq4nl_values[w[2 + j] >> 4] * y[j + 16];
        }
        sum = fmaf((float)s, f16(w) * f16(a), sum);
    }
    return sum;
}

/* Trit n (0 = most significant) of a TQ1_0 byte, as 0..2. */
static inline int tq1_trit(uint8_t byte, int n) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    return ((uint8_t)(byte * pow3[n]) * 3) >> 8;
}

/* TQ1_0 / TQ2_0 (ggml_vec_dot_tq*_q8_K): lane l = Σ (q+1)·y over elements 4l..4l+3 of every 32,
 * minus the bsums of 16-element groups 2l and 2l+1, exact; float lane l += lane × d by a fused
 * multiply-add (ggml writes a multiply and an add, which the compiler of llama.cpp's AVX2 build
 * fuses: measured against llama-perplexity), the lanes summed as for the others. */
static float dot_tq(int64_t n, const uint8_t *w, const uint8_t *a, bool tq1) {
    float acc[8] = {0};
    const size_t bs = tq1 ? 54 : 66;
    for (int64_t b = 0; b < n / 256; b++, w += bs, a += 292) {
        const int8_t *y = (const int8_t *)(a + 4);
        int q[256];
        if (tq1) {
            for (int e = 0; e < 160; e++) q[e] = tq1_trit(w[e % 32], e / 32);
            for (int e = 160; e < 240; e++) q[e] = tq1_trit(w[32 + (e - 160) % 16], (e - 160) / 16);
            for (int e = 240; e < 256; e++) q[e] = tq1_trit(w[48 + (e - 240) % 4], (e - 240) / 4);
        } else {
            for (int e = 0; e < 256; e++) q[e] = (w[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        }
        int lane[8] = {0};
        for (int e = 0; e < 256; e++) lane[(e % 32) / 4] += q[e] * y[e];
        for (int l = 0; l < 8; l++) lane[l] -= q8k_bsum(a, 2 * l) + q8k_bsum(a, 2 * l + 1);
        const float d = q8k_d(a) * f16(w + bs - 2);
        for (int l = 0; l < 8; l++) acc[l] = fmaf((float)lane[l], d, acc[l]);
    }
    return hsum8(acc);
}

size_t nm_iq4_nl_pack_size(int group) { return (size_t)group * (32 + sizeof(float)); }

void nm_iq4_nl_pack(int64_t nb, const uint8_t *w, size_t w_stride, int n_rows, int group, int bias, uint8_t *dst) {
    const size_t pb = nm_iq4_nl_pack_size(group);
    for (int g = 0; g < (n_rows + group - 1) / group; g++)
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *p = dst + ((size_t)g * (size_t)nb + (size_t)b) * pb;
            for (int r = 0; r < group; r++) {
                const int row = g * group + r;
                const uint8_t *blk = row < n_rows ? w + (size_t)row * w_stride + (size_t)b * 18 : NULL;
                for (int q = 0; q < 4; q++)
                    for (int i = 0; i < 4; i++) {
                        const uint8_t x = blk ? blk[2 + 4 * q + i] : 0;
                        p[8 * group * q + 4 * r + i] = (uint8_t)(nm_iq4nl_values[x & 0xF] + bias);
                        p[8 * group * q + 4 * group + 4 * r + i] = (uint8_t)(nm_iq4nl_values[x >> 4] + bias);
                    }
                const float d = blk ? f16(blk) : 0.0f;
                memcpy(p + 32 * (size_t)group + 4 * (size_t)r, &d, 4);
            }
        }
}

bool nm_lowbit_unpack(uint32_t wt, const uint8_t *w, nm_iq_unpacked *u) {
    memset(u->sc, 0, sizeof u->sc);
    memset(u->mins, 0, sizeof u->mins);
    u->dmin = 0.0f;
    switch (wt) {
    case GGML_TYPE_Q2_K:
        /* low2's elements 32 at a time, so gcc vectorizes the inner loops (the AVX-512 tile
           packs its rows from here; element by element this was a sixth of a Q2_K evaluation) */
        for (int h = 0; h < 2; h++)
            for (int sh = 0; sh < 4; sh++)
                for (int l = 0; l < 32; l++) u->q[128 * h + 32 * sh + l] = (int8_t)((w[16 + 32 * h + l] >> (2 * sh)) & 3);
        for (int j = 0; j < 16; j++) {
            u->sc[j] = (int16_t)(w[j] & 0xF);
            u->mins[j] = (int16_t)(w[j] >> 4);
        }
        u->d = f16(w + 80);
        u->dmin = f16(w + 82);
        return true;
    case GGML_TYPE_Q3_K:
        for (int h = 0; h < 2; h++)
            for (int sh = 0; sh < 4; sh++)
                for (int l = 0; l < 32; l++) /* element 128h + 32sh + l: its high bit is bit 4h + sh of w[l] */
                    u->q[128 * h + 32 * sh + l] = (int8_t)(((w[32 + 32 * h + l] >> (2 * sh)) & 3) -
                                                           (((w[l] >> (4 * h + sh)) & 1) ? 0 : 4));
        for (int j = 0; j < 16; j++) u->sc[j] = (int16_t)nm_q3_k_scale(w + 96, j);
        u->d = f16(w + 108);
        return true;
    case GGML_TYPE_IQ4_XS: {
        const unsigned sh = (unsigned)(w[2] | w[3] << 8);
        for (int ib = 0; ib < 8; ib++) {
            const int ls = (((w[4 + ib / 2] >> 4 * (ib % 2)) & 0xF) | ((sh >> 2 * ib) & 3) << 4) - 32;
            const uint8_t *qs = w + 8 + 16 * ib;
            for (int e = 0; e < 32; e++) u->q[32 * ib + e] = nm_iq4nl_values[e < 16 ? qs[e] & 0xF : qs[e - 16] >> 4];
            u->sc[2 * ib] = u->sc[2 * ib + 1] = (int16_t)ls;
        }
        u->d = f16(w);
        return true;
    }
    case GGML_TYPE_TQ1_0:
        for (int e = 0; e < 160; e++) u->q[e] = (int8_t)tq1_trit(w[e % 32], e / 32);
        for (int e = 160; e < 240; e++) u->q[e] = (int8_t)tq1_trit(w[32 + (e - 160) % 16], (e - 160) / 16);
        for (int e = 240; e < 256; e++) u->q[e] = (int8_t)tq1_trit(w[48 + (e - 240) % 4], (e - 240) / 4);
        for (int j = 0; j < 16; j++) u->sc[j] = 1;
        u->d = f16(w + 52);
        return true;
    case GGML_TYPE_TQ2_0:
        /* element 128h + 32sh + l is bits 2sh..2sh+1 of w[32h + l]; 32 at a time, as Q2_K's
           (element by element this was 13.6% of a TQ2_0 evaluation on the AVX2 path) */
        for (int h = 0; h < 2; h++)
            for (int sh = 0; sh < 4; sh++)
                for (int l = 0; l < 32; l++) u->q[128 * h + 32 * sh + l] = (int8_t)((w[32 * h + l] >> (2 * sh)) & 3);
        for (int j = 0; j < 16; j++) u->sc[j] = 1;
        u->d = f16(w + 64);
        return true;
    default:
        return false;
    }
}

bool nm_dot_lowbit_ref(uint32_t wt, int64_t n, const void *w, const void *a, float *out) {
    switch (wt) {
    case GGML_TYPE_Q2_K: *out = dot_q2_k(n, w, a); return true;
    case GGML_TYPE_Q3_K: *out = dot_q3_k(n, w, a); return true;
    case GGML_TYPE_IQ4_XS: *out = dot_iq4_xs(n, w, a); return true;
    case GGML_TYPE_IQ4_NL: *out = dot_iq4_nl(n, w, a); return true;
    case GGML_TYPE_TQ1_0: *out = dot_tq(n, w, a, true); return true;
    case GGML_TYPE_TQ2_0: *out = dot_tq(n, w, a, false); return true;
    default: return false;
    }
}
