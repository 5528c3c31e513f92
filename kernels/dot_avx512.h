/* Private to the kernels built with AVX-512 flags (kernels/..._avx512.c): the helpers their tiles share for two
 * weight rows interleaved in a register (lane 2l row A's lane l, 2l+1 row B's). */
#ifndef NOMOAT_DOT_AVX512_H
#define NOMOAT_DOT_AVX512_H

#include <immintrin.h>

#include "kernels/dot_avx2.h" /* ALWAYS_INLINE, UNROLL (these files are built with AVX2 too) */

/* permutexvar index spreading int32 l of the low half to lanes 2l and 2l+1 (an activation step's
 * four-byte groups, or its pairs of 16-value sums, to both rows) */
ALWAYS_INLINE __m512i nm_avx512_dup_pairs(void) {
    return _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
}

/* The 32 bytes at p with dword l in lanes 2l and 2l+1: an activation step's four-byte groups, or
 * its pairs of 16-value sums, for both rows. */
ALWAYS_INLINE __m512i nm_avx512_pair_bytes(const void *p) {
    return _mm512_permutexvar_epi32(nm_avx512_dup_pairs(), _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p)));
}

/* f[0] in the even lanes, f[1] in the odd ones (the two rows' scales) */
ALWAYS_INLINE __m512 nm_avx512_pair_floats(const void *f) {
    const __m512i halves = _mm512_set_epi32(1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0);
    return _mm512_permutexvar_ps(halves, _mm512_castps128_ps512(_mm_castpd_ps(_mm_load_sd((const double *)f))));
}

/* ggml's hsum_float_8 of each row's eight lanes: lane 0 gets row A's, lane 1 row B's, the same
 * pairs added in the same order (lane l + lane l+4, then those of lanes 0 and 2 and of 1 and 3,
 * then the two). */
ALWAYS_INLINE __m512 nm_avx512_hsum_pairs(__m512 v) {
    v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
    v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)));
}

/* Integer sums of each row's eight lanes (exact in any order): row A's in lane 0, B's in lane 1. */
ALWAYS_INLINE __m512i nm_avx512_fold_pairs(__m512i m) {
    m = _mm512_add_epi32(m, _mm512_shuffle_i32x4(m, m, _MM_SHUFFLE(1, 0, 3, 2)));
    m = _mm512_add_epi32(m, _mm512_shuffle_i32x4(m, m, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm512_add_epi32(m, _mm512_shuffle_epi32(m, _MM_SHUFFLE(1, 0, 3, 2)));
}

#endif
