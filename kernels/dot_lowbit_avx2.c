/* AVX2 siblings of dot_lowbit.c (built with -mavx2 -mfma -mf16c; used only when the CPU has
 * them): the same exact integer lanes and the same fused multiply-adds in the same order, so
 * the results are the reference's bit for bit (tests/kernels/test_dot.c). Each call multiplies
 * one weight row with up to four activation rows, decoding each weight block once. */
#include "kernels/dot_lowbit.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "formats/quants_iq4.h"
#include "formats/tensor.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE float hsum8(__m256 v) { /* (l0+l4 + l2+l6) + (l1+l5 + l3+l7), as ggml's hsum_float_8 */
    __m128 s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
ALWAYS_INLINE int hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}
ALWAYS_INLINE float h2f(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}
ALWAYS_INLINE float q8k_d(const uint8_t *a) {
    float d;
    memcpy(&d, a, 4);
    return d;
}
/* Scale pair for one 32-element chunk: int16 `lo` for bytes 0..15, `hi` for 16..31. */
ALWAYS_INLINE __m256i scale_pair(int lo, int hi) {
    return _mm256_set_m128i(_mm_set1_epi16((short)hi), _mm_set1_epi16((short)lo));
}
/* Signed levels × signed activations, summed in pairs into 16 int16 (|x|, |y| <= 127). */
ALWAYS_INLINE __m256i pairs_i8(__m256i x, __m256i y) {
    return _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

static void k_q2_k(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, int nc, float *out, size_t os) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const __m256i m3 = _mm256_set1_epi8(3);
    for (int64_t b = 0; b < n / 256; b++, w += 84) {
        __m256i q[8], sc[8];
        for (int h = 0; h < 2; h++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(w + 16 + 32 * h));
            for (int k = 0; k < 4; k++) {
                q[4 * h + k] = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), m3);
                sc[4 * h + k] = scale_pair(w[8 * h + 2 * k] & 0xF, w[8 * h + 2 * k + 1] & 0xF);
            }
        }
        const __m128i ms = _mm_loadu_si128((const __m128i *)w);
        const __m256i mins = _mm256_cvtepi8_epi16(_mm_and_si128(_mm_srli_epi16(ms, 4), _mm_set1_epi8(0xF)));
        const float dw = h2f(w + 80), mw = h2f(w + 82);
        for (int c = 0; c < nc; c++) {
            const uint8_t *ab = a + (size_t)c * as + (size_t)b * 292;
            const int8_t *y = (const int8_t *)(ab + 4);
            const float dy = q8k_d(ab);
            const float d = dy * dw, dmin = -dy * mw;
            const __m256i pm = _mm256_madd_epi16(mins, _mm256_loadu_si256((const __m256i *)(ab + 260)));
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(pm), acc[c]);
            __m256i sumi = _mm256_setzero_si256();
            for (int k = 0; k < 8; k++) {
                const __m256i yv = _mm256_loadu_si256((const __m256i *)(y + 32 * k));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], yv), sc[k]));
            }
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[c]);
        }
    }
    for (int c = 0; c < nc; c++) out[(size_t)c * os] = hsum8(acc[c]);
}

static inline int q3k_scale(const uint8_t *sc, int j) {
    int v = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
    return (v | ((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4) - 32;
}

static void k_q3_k(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, int nc, float *out, size_t os) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    for (int64_t b = 0; b < n / 256; b++, w += 110) {
        /* low 2 bits (0..3) and 4 × (high bit clear) for each 32-element chunk */
        __m256i ql[8], qh[8], sc[8];
        const __m256i nh = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)w), _mm256_set1_epi8(-1));
        for (int h = 0; h < 2; h++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(w + 32 + 32 * h));
            for (int k = 0; k < 4; k++) {
                const int bit = 4 * h + k;
                ql[bit] = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), m3);
                qh[bit] = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(nh, bit), one), 2);
                sc[bit] = scale_pair(q3k_scale(w + 96, 2 * bit), q3k_scale(w + 96, 2 * bit + 1));
            }
        }
        const float dw = h2f(w + 108);
        for (int c = 0; c < nc; c++) {
            const uint8_t *ab = a + (size_t)c * as + (size_t)b * 292;
            const int8_t *y = (const int8_t *)(ab + 4);
            __m256i sumi = _mm256_setzero_si256();
            for (int k = 0; k < 8; k++) {
                const __m256i yv = _mm256_loadu_si256((const __m256i *)(y + 32 * k));
                const __m256i p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(ql[k], yv), _mm256_maddubs_epi16(qh[k], yv));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p16, sc[k]));
            }
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(q8k_d(ab) * dw), _mm256_cvtepi32_ps(sumi), acc[c]);
        }
    }
    for (int c = 0; c < nc; c++) out[(size_t)c * os] = hsum8(acc[c]);
}

/* 32 IQ4 levels of a 16-byte nibble run: low nibbles first, then high. */
ALWAYS_INLINE __m256i iq4_levels(const uint8_t *qs, __m128i lut) {
    const __m128i bv = _mm_loadu_si128((const __m128i *)qs), m4 = _mm_set1_epi8(0xF);
    return _mm256_set_m128i(_mm_shuffle_epi8(lut, _mm_and_si128(_mm_srli_epi16(bv, 4), m4)),
                            _mm_shuffle_epi8(lut, _mm_and_si128(bv, m4)));
}

static void k_iq4_xs(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, int nc, float *out, size_t os) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const __m128i lut = _mm_loadu_si128((const __m128i *)nm_iq4nl_values);
    for (int64_t b = 0; b < n / 256; b++, w += 136) {
        __m256i v[8], ls[8];
        const unsigned sh = (unsigned)(w[2] | w[3] << 8);
        for (int ib = 0; ib < 8; ib++) {
            v[ib] = iq4_levels(w + 8 + 16 * ib, lut);
            ls[ib] = _mm256_set1_epi16((short)((((w[4 + ib / 2] >> 4 * (ib % 2)) & 0xF) | ((sh >> 2 * ib) & 3) << 4) - 32));
        }
        const float dw = h2f(w);
        for (int c = 0; c < nc; c++) {
            const uint8_t *ab = a + (size_t)c * as + (size_t)b * 292;
            const int8_t *y = (const int8_t *)(ab + 4);
            __m256i sumi = _mm256_setzero_si256();
            for (int ib = 0; ib < 8; ib++) {
                const __m256i yv = _mm256_loadu_si256((const __m256i *)(y + 32 * ib));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(pairs_i8(v[ib], yv), ls[ib]));
            }
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(dw * q8k_d(ab)), _mm256_cvtepi32_ps(sumi), acc[c]);
        }
    }
    for (int c = 0; c < nc; c++) out[(size_t)c * os] = hsum8(acc[c]);
}

static void k_iq4_nl(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, int nc, float *out, size_t os) {
    float acc[4] = {0, 0, 0, 0};
    const __m128i lut = _mm_loadu_si128((const __m128i *)nm_iq4nl_values);
    for (int64_t b = 0; b < n / 32; b++, w += 18) {
        const __m256i v = iq4_levels(w + 2, lut);
        const float dw = h2f(w);
        for (int c = 0; c < nc; c++) {
            const uint8_t *ab = a + (size_t)c * as + (size_t)b * 34;
            const __m256i yv = _mm256_loadu_si256((const __m256i *)(ab + 2));
            const int s = hsum_i32(_mm256_madd_epi16(pairs_i8(v, yv), _mm256_set1_epi16(1)));
            acc[c] = fmaf((float)s, dw * h2f(ab), acc[c]);
        }
    }
    for (int c = 0; c < nc; c++) out[(size_t)c * os] = acc[c];
}

/* TQ1_0 / TQ2_0: levels 0..2 (trit + 1) decoded per 32-element chunk, then as the reference. */
static inline uint8_t tq1_trit(uint8_t byte, int n) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    return (uint8_t)((((uint8_t)(byte * pow3[n])) * 3) >> 8);
}

static void k_tq(bool tq1, int64_t n, const uint8_t *w, const uint8_t *a, size_t as, int nc, float *out, size_t os) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const size_t bs = tq1 ? 54 : 66;
    const __m256i m3 = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < n / 256; b++, w += bs) {
        __m256i q[8];
        if (tq1) {
            uint8_t t[256];
            for (int e = 0; e < 160; e++) t[e] = tq1_trit(w[e % 32], e / 32);
            for (int e = 160; e < 240; e++) t[e] = tq1_trit(w[32 + (e - 160) % 16], (e - 160) / 16);
            for (int e = 240; e < 256; e++) t[e] = tq1_trit(w[48 + (e - 240) % 4], (e - 240) / 4);
            for (int k = 0; k < 8; k++) q[k] = _mm256_loadu_si256((const __m256i *)(t + 32 * k));
        } else {
            for (int h = 0; h < 2; h++) {
                const __m256i bits = _mm256_loadu_si256((const __m256i *)(w + 32 * h));
                for (int k = 0; k < 4; k++) q[4 * h + k] = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), m3);
            }
        }
        const float dw = h2f(w + bs - 2);
        for (int c = 0; c < nc; c++) {
            const uint8_t *ab = a + (size_t)c * as + (size_t)b * 292;
            const int8_t *y = (const int8_t *)(ab + 4);
            __m256i sumi = _mm256_setzero_si256();
            for (int k = 0; k < 8; k++)
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)(y + 32 * k))), ones));
            sumi = _mm256_sub_epi32(sumi, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(ab + 260)), ones));
            const __m256 d = _mm256_set1_ps(q8k_d(ab) * dw);
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), d, acc[c]);
        }
    }
    for (int c = 0; c < nc; c++) out[(size_t)c * os] = hsum8(acc[c]);
}
static void k_tq1_0(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, int nc, float *out, size_t os) {
    k_tq(true, n, w, a, as, nc, out, os);
}
static void k_tq2_0(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, int nc, float *out, size_t os) {
    k_tq(false, n, w, a, as, nc, out, os);
}

typedef void (*kernel_fn)(int64_t, const uint8_t *, const uint8_t *, size_t, int, float *, size_t);

static kernel_fn kernel_for(uint32_t wt) {
    switch (wt) {
    case GGML_TYPE_Q2_K: return k_q2_k;
    case GGML_TYPE_Q3_K: return k_q3_k;
    case GGML_TYPE_IQ4_XS: return k_iq4_xs;
    case GGML_TYPE_IQ4_NL: return k_iq4_nl;
    case GGML_TYPE_TQ1_0: return k_tq1_0;
    case GGML_TYPE_TQ2_0: return k_tq2_0;
    default: return NULL;
    }
}

bool nm_dot_tile_lowbit_avx2(uint32_t wt, int64_t n, const void *w, size_t w_stride, int n_rows, const void *act,
                             size_t act_stride, int n_cols, float *out, size_t out_stride) {
    kernel_fn k = kernel_for(wt);
    if (!k) return false;
    const uint8_t *wb = w, *ab = act;
    for (int i = 0; i < n_rows; i++) {
        const uint8_t *wr = wb + (size_t)i * w_stride;
        int j = 0;
        for (; j + 4 <= n_cols; j += 4)
            k(n, wr, ab + (size_t)j * act_stride, act_stride, 4, out + (size_t)j * out_stride + i, out_stride);
        for (; j < n_cols; j++)
            k(n, wr, ab + (size_t)j * act_stride, act_stride, 1, out + (size_t)j * out_stride + i, out_stride);
    }
    return true;
}
