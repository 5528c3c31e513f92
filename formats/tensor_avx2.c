/* AVX2 + F16C row conversions; bit-identical to the scalar references in tensor.c for every
 * non-NaN input (F16C keeps NaN payload bits; nomoat refuses NaN data before converting). */
#include <immintrin.h>

#include "formats/tensor.h"
#include "formats/tensor_simd.h"

void nm_f32_to_f16_row_avx2(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(dst + i), h);
    }
    for (; i < n; i++)
        dst[i] = nm_f32_to_f16(src[i]);
}

void nm_f16_to_f32_row_avx2(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++)
        dst[i] = nm_f16_to_f32(src[i]);
}

void nm_f32_to_bf16_row_avx2(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    const __m256i bias = _mm256_set1_epi32(0x7FFF), one = _mm256_set1_epi32(1);
    const __m256i absmask = _mm256_set1_epi32(0x7FFFFFFF), inf = _mm256_set1_epi32(0x7F800000);
    const __m256i quiet = _mm256_set1_epi32(0x0040);
    for (; i + 16 <= n; i += 16) {
        __m256i r[2];
        for (int k = 0; k < 2; k++) {
            __m256i u = _mm256_loadu_si256((const __m256i *)(src + i + 8 * k));
            __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
            __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, bias), lsb), 16);
            __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, absmask), inf);
            __m256i nanval = _mm256_or_si256(_mm256_srli_epi32(u, 16), quiet);
            r[k] = _mm256_blendv_epi8(rounded, nanval, nan);
        }
        /* packus works per 128-bit lane: fix the lane order afterwards */
        __m256i packed = _mm256_packus_epi32(r[0], r[1]);
        packed = _mm256_permute4x64_epi64(packed, 0xD8);
        _mm256_storeu_si256((__m256i *)(dst + i), packed);
    }
    for (; i < n; i++)
        dst[i] = nm_f32_to_bf16(src[i]);
}

void nm_bf16_to_f32_row_avx2(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_slli_epi32(w, 16));
    }
    for (; i < n; i++)
        dst[i] = nm_bf16_to_f32(src[i]);
}

/* 16 values a step: NaN test on the 16-bit patterns ((h & 0x7FFF) > 0x7F80, exact as a signed
 * compare since masked values are non-negative), then the exact widening (h << 16) and F16C's
 * round to nearest even, the same rounding as nm_f32_to_f16. */
bool nm_bf16_to_f16_row_avx2(const uint16_t *src, uint16_t *dst, size_t n) {
    const __m256i absmask = _mm256_set1_epi16(0x7FFF), inf = _mm256_set1_epi16(0x7F80);
    __m256i nan = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)(src + i));
        nan = _mm256_or_si256(nan, _mm256_cmpgt_epi16(_mm256_and_si256(h, absmask), inf));
        __m256 lo = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(h)), 16));
        __m256 hi = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_extracti128_si256(h, 1)), 16));
        __m256i r = _mm256_set_m128i(_mm256_cvtps_ph(hi, _MM_FROUND_TO_NEAREST_INT),
                                     _mm256_cvtps_ph(lo, _MM_FROUND_TO_NEAREST_INT));
        _mm256_storeu_si256((__m256i *)(dst + i), r);
    }
    bool any = !_mm256_testz_si256(nan, nan);
    for (; i < n; i++) {
        any |= (src[i] & 0x7FFF) > 0x7F80;
        dst[i] = nm_f32_to_f16(nm_bf16_to_f32(src[i]));
    }
    return any;
}
