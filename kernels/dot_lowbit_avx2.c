/* AVX2 siblings of dot_lowbit.c (built with -mavx2 -mfma -mf16c; used only when the CPU has
 * them): the same exact integer sums and the same fused multiply-adds in the same order, so
 * the results are the reference's bit for bit (tests/kernels/test_dot.c). IQ4_NL is here: each
 * call multiplies one weight row with up to four activation rows, decoding each weight block
 * once. The 256-value types go to the unpacked tile (dot_unpacked_avx2.c). */
#include "kernels/dot_lowbit.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "formats/quants_iq4.h"
#include "formats/tensor.h"
#include "kernels/dot_iq.h"

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

/* 32 IQ4 levels of a 16-byte nibble run: low nibbles first, then high. */
ALWAYS_INLINE __m256i iq4_levels(const uint8_t *qs, __m128i lut) {
    const __m128i bv = _mm_loadu_si128((const __m128i *)qs), m4 = _mm_set1_epi8(0xF);
    return _mm256_set_m128i(_mm_shuffle_epi8(lut, _mm_and_si128(_mm_srli_epi16(bv, 4), m4)),
                            _mm_shuffle_epi8(lut, _mm_and_si128(bv, m4)));
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

bool nm_dot_tile_lowbit_avx2(uint32_t wt, int64_t n, const void *w, size_t w_stride, int n_rows, const void *act,
                             size_t act_stride, int n_cols, float *out, size_t out_stride) {
    if (wt != GGML_TYPE_IQ4_NL) /* the 256-value types: unpacked once per row */
        return nm_dot_tile_unpacked_avx2(wt, n, w, w_stride, n_rows, act, act_stride, n_cols, out, out_stride);
    const uint8_t *wb = w, *ab = act;
    for (int i = 0; i < n_rows; i++) {
        const uint8_t *wr = wb + (size_t)i * w_stride;
        int j = 0;
        for (; j + 4 <= n_cols; j += 4)
            k_iq4_nl(n, wr, ab + (size_t)j * act_stride, act_stride, 4, out + (size_t)j * out_stride + i, out_stride);
        for (; j < n_cols; j++)
            k_iq4_nl(n, wr, ab + (size_t)j * act_stride, act_stride, 1, out + (size_t)j * out_stride + i, out_stride);
    }
    return true;
}
