/* AVX2 sibling of dot_repack.c: Q4_K in the order of ggml's repacked gemm/gemv kernels. One
 * weight row meets up to four activation rows; their accumulators share one 4-lane register, so
 * each fused multiply-add below is the per-output one of the reference, four outputs at a time. */
#include "kernels/dot_simd.h"

#include <immintrin.h>
#include <string.h>

#include "formats/tensor.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE void scale_min_k4(int j, const uint8_t *q, int *d, int *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

ALWAYS_INLINE void k_q4_k_repacked(bool gemm, int64_t n, const uint8_t *w, const uint8_t *a, size_t as, int nc,
                                   float *out, size_t os) {
    __m128 acc = _mm_setzero_ps(), accm = _mm_setzero_ps();
    for (int64_t b = 0; b < n / 256; b++, w += 144) {
        int sc[8], mn[8];
        for (int j = 0; j < 8; j++) scale_min_k4(j, w + 4, &sc[j], &mn[j]);
        const __m128i mins16 = _mm_setr_epi16((short)mn[0], (short)mn[1], (short)mn[2], (short)mn[3], (short)mn[4],
                                              (short)mn[5], (short)mn[6], (short)mn[7]);
        __m256i q[8];
        for (int k = 0; k < 4; k++) {
            const __m256i bytes = _mm256_loadu_si256((const __m256i *)(w + 16 + 32 * k));
            q[2 * k] = _mm256_and_si256(bytes, _mm256_set1_epi8(0x0F));
            q[2 * k + 1] = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), _mm256_set1_epi8(0x0F));
        }
        /* per activation row c: exact integer sums of the four sub-block pairs k (lane k) */
        __m128i sums[4], mins[4];
        float dy[4] = {0, 0, 0, 0};
        for (int c = 0; c < 4; c++) sums[c] = mins[c] = _mm_setzero_si128();
        for (int c = 0; c < nc; c++) {
            const uint8_t *ab = a + (size_t)c * as + (size_t)b * 292;
            const int8_t *y = (const int8_t *)(ab + 4);
            __m256i pair[4];
            for (int k = 0; k < 4; k++) {
                const __m256i y0 = _mm256_loadu_si256((const __m256i *)(y + 64 * k));
                const __m256i y1 = _mm256_loadu_si256((const __m256i *)(y + 64 * k + 32));
                const __m256i s0 = _mm256_madd_epi16(_mm256_maddubs_epi16(q[2 * k], y0), _mm256_set1_epi16((short)sc[2 * k]));
                const __m256i s1 =
                    _mm256_madd_epi16(_mm256_maddubs_epi16(q[2 * k + 1], y1), _mm256_set1_epi16((short)sc[2 * k + 1]));
                pair[k] = _mm256_add_epi32(s0, s1);
            }
            const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(pair[0], pair[1]), _mm256_hadd_epi32(pair[2], pair[3]));
            sums[c] = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
            /* Σ over the 16-element bsums of each sub-block, times its min, pairwise */
            const __m256i bs = _mm256_loadu_si256((const __m256i *)(ab + 260));
            const __m128i sub = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
            mins[c] = _mm_madd_epi16(sub, mins16);
            memcpy(&dy[c], ab, 4);
        }
        const __m128 dyv = _mm_loadu_ps(dy);
        const __m128 d = _mm_mul_ps(_mm_set1_ps(_cvtsh_ss((uint16_t)(w[0] | (w[1] << 8)))), dyv);
        const __m128 dmin = _mm_mul_ps(_mm_set1_ps(_cvtsh_ss((uint16_t)(w[2] | (w[3] << 8)))), dyv);
        if (gemm) {
            /* the int32 → float conversions are exact (|sum| < 2^24), so converting before the
             * transpose to one register per pair k is the same as converting after */
            __m128 s0 = _mm_cvtepi32_ps(sums[0]), s1 = _mm_cvtepi32_ps(sums[1]), s2 = _mm_cvtepi32_ps(sums[2]),
                   s3 = _mm_cvtepi32_ps(sums[3]);
            __m128 m0 = _mm_cvtepi32_ps(mins[0]), m1 = _mm_cvtepi32_ps(mins[1]), m2 = _mm_cvtepi32_ps(mins[2]),
                   m3 = _mm_cvtepi32_ps(mins[3]);
            _MM_TRANSPOSE4_PS(s0, s1, s2, s3);
            _MM_TRANSPOSE4_PS(m0, m1, m2, m3);
            acc = _mm_fmadd_ps(s0, d, acc);
            accm = _mm_fmadd_ps(m0, dmin, accm);
            acc = _mm_fmadd_ps(s1, d, acc);
            accm = _mm_fmadd_ps(m1, dmin, accm);
            acc = _mm_fmadd_ps(s2, d, acc);
            accm = _mm_fmadd_ps(m2, dmin, accm);
            acc = _mm_fmadd_ps(s3, d, acc);
            accm = _mm_fmadd_ps(m3, dmin, accm);
        } else {
            /* gemv converts the whole super-block's integer sum once */
            int32_t s[4], m[4];
            for (int c = 0; c < 4; c++) {
                __m128i v = _mm_hadd_epi32(sums[c], mins[c]);
                v = _mm_hadd_epi32(v, v);
                s[c] = _mm_cvtsi128_si32(v);
                m[c] = _mm_extract_epi32(v, 1);
            }
            acc = _mm_fmadd_ps(_mm_cvtepi32_ps(_mm_loadu_si128((const __m128i *)s)), d, acc);
            accm = _mm_fmadd_ps(_mm_cvtepi32_ps(_mm_loadu_si128((const __m128i *)m)), dmin, accm);
        }
    }
    float r[4];
    _mm_storeu_ps(r, _mm_sub_ps(acc, accm));
    for (int c = 0; c < nc; c++) out[(size_t)c * os] = r[c];
}

/* Columns [j0, j1) of every weight row, four at a time. */
static void q4_k_columns(bool gemm, int64_t n, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as,
                         int j0, int j1, float *out, size_t os) {
    for (int i = 0; i < nr; i++) {
        const uint8_t *wr = w + (size_t)i * ws;
        for (int j = j0; j < j1; j += 4) {
            const int m = j1 - j < 4 ? j1 - j : 4;
            k_q4_k_repacked(gemm, n, wr, a + (size_t)j * as, as, m, out + (size_t)j * os + (size_t)i, os);
        }
    }
}

bool nm_dot_tile_repacked_avx2(uint32_t wt, int gemm_cols, int64_t n, const void *w, size_t w_stride, int n_rows,
                               const void *act, size_t act_stride, int n_cols, float *out, size_t out_stride) {
    if (wt != GGML_TYPE_Q4_K) return false;
    q4_k_columns(true, n, w, w_stride, n_rows, act, act_stride, 0, gemm_cols, out, out_stride);
    q4_k_columns(false, n, w, w_stride, n_rows, act, act_stride, gemm_cols, n_cols, out, out_stride);
    return true;
}
