/* AVX2 sibling of dot_lowbit.c (built with -mavx2 -mfma -mf16c; used only when the CPU has
 * them): the same exact integer sums and the same fused multiply-adds in the same order, so
 * the results are the reference's bit for bit (tests/kernels/test_dot.c). IQ4_NL's tile is here;
 * the 256-value types go to the unpacked tile (dot_unpacked_avx2.c). */
#include "kernels/dot_lowbit.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "formats/quants_iq4.h"
#include "formats/tensor.h"
#include "kernels/dot_avx2.h"
#include "kernels/dot_iq.h"
#include "kernels/dot_simd.h"

/* IQ4_NL: eight rows in the lanes of a register, each lane its own output's chain (as the Q4_0
 * tile in dot_avx2.c), packed by nm_iq4_nl_pack_avx2 (nm_iq4_nl_pack's layout, levels unbiased).
 * Each lane's block sum is the exact integer the one-row kernel makes (pairs of products at most
 * 2·127·127, widened to 32 bits before the two halves meet). */
enum { NL_GROUP = 8, NL_D = 256, NL_BLOCK = NL_D + NL_GROUP * 4 }; /* nm_iq4_nl_pack's layout */

ALWAYS_INLINE void iq4_nl_group(int64_t nb, const uint8_t *pw, const uint8_t *a, size_t as, int nc, float *out,
                                size_t os, int nr) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < nb; b++, pw += NL_BLOCK) {
        __m256i dp[4];
        UNROLL
        for (int c = 0; c < nc; c++) dp[c] = _mm256_setzero_si256();
        UNROLL
        for (int q = 0; q < 4; q++) {
            const __m256i vlo = _mm256_loadu_si256((const __m256i *)(pw + 64 * q));
            const __m256i vhi = _mm256_loadu_si256((const __m256i *)(pw + 64 * q + 32));
            const __m256i alo = _mm256_sign_epi8(vlo, vlo), ahi = _mm256_sign_epi8(vhi, vhi);
            UNROLL
            for (int c = 0; c < nc; c++) {
                const uint8_t *y = a + (size_t)c * as + (size_t)b * 34 + 2;
                int32_t ylo, yhi;
                memcpy(&ylo, y + 4 * q, 4);
                memcpy(&yhi, y + 16 + 4 * q, 4);
                const __m256i plo = _mm256_maddubs_epi16(alo, _mm256_sign_epi8(_mm256_set1_epi32(ylo), vlo));
                const __m256i phi = _mm256_maddubs_epi16(ahi, _mm256_sign_epi8(_mm256_set1_epi32(yhi), vhi));
                dp[c] = _mm256_add_epi32(dp[c], _mm256_add_epi32(_mm256_madd_epi16(plo, ones), _mm256_madd_epi16(phi, ones)));
                NM_KEEP_IN_REGISTER(dp[c]);
            }
        }
        const __m256 dw = _mm256_loadu_ps((const float *)(pw + NL_D));
        UNROLL
        for (int c = 0; c < nc; c++) {
            const __m256 d = _mm256_mul_ps(dw, _mm256_set1_ps(h2f(a + (size_t)c * as + (size_t)b * 34)));
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dp[c]), d, acc[c]);
        }
    }
    for (int c = 0; c < nc; c++) {
        float r[NL_GROUP];
        _mm256_storeu_ps(r, acc[c]);
        memcpy(out + (size_t)c * os, r, (size_t)(nr < NL_GROUP ? nr : NL_GROUP) * sizeof(float));
    }
}

void nm_iq4_nl_pack_avx2(int64_t nb, const uint8_t *w, size_t w_stride, int n_rows, int group, int bias,
                         uint8_t *dst) {
    const size_t pb = nm_iq4_nl_pack_size(group);
    const __m128i table = _mm_add_epi8(_mm_loadu_si128((const __m128i *)nm_iq4nl_values), _mm_set1_epi8((char)bias)),
                  m4 = _mm_set1_epi8(0xF);
    for (int g = 0; g < (n_rows + group - 1) / group; g++)
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *p = dst + ((size_t)g * (size_t)nb + (size_t)b) * pb;
            for (int r = 0; r < group; r++) {
                const int row = g * group + r;
                const uint8_t *blk = row < n_rows ? (const uint8_t *)w + (size_t)row * w_stride + (size_t)b * 18 : NULL;
                /* a missing row's nibbles are 0, its d 0 (as nm_iq4_nl_pack) */
                const __m128i x = blk ? _mm_loadu_si128((const __m128i *)(blk + 2)) : _mm_setzero_si128();
                const __m128i lo = _mm_shuffle_epi8(table, _mm_and_si128(x, m4)),
                              hi = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(x, 4), m4));
                int32_t l4[4], h4[4];
                _mm_storeu_si128((__m128i *)l4, lo);
                _mm_storeu_si128((__m128i *)h4, hi);
                for (int q = 0; q < 4; q++) {
                    memcpy(p + 8 * (size_t)group * q + 4 * (size_t)r, &l4[q], 4);
                    memcpy(p + 8 * (size_t)group * q + 4 * (size_t)group + 4 * (size_t)r, &h4[q], 4);
                }
                const float d = blk ? nm_f16_to_f32((uint16_t)(blk[0] | blk[1] << 8)) : 0.0f;
                memcpy(p + 32 * (size_t)group + 4 * (size_t)r, &d, 4);
            }
        }
}

bool nm_dot_tile_lowbit_avx2(uint32_t wt, int64_t n, const void *w, size_t w_stride, int n_rows, const void *act,
                             size_t act_stride, int n_cols, float *out, size_t out_stride) {
    if (wt != GGML_TYPE_IQ4_NL) /* the 256-value types: unpacked once per row */
        return nm_dot_tile_unpacked_avx2(wt, n, w, w_stride, n_rows, act, act_stride, n_cols, out, out_stride);
    const int64_t nb = n / 32;
    const size_t groups = (size_t)(n_rows + NL_GROUP - 1) / NL_GROUP;
    uint8_t *pw = malloc(groups * (size_t)nb * NL_BLOCK + 1);
    if (!pw) return false;
    nm_iq4_nl_pack_avx2(nb, w, w_stride, n_rows, NL_GROUP, 0, pw);
    const uint8_t *ab = act;
    for (size_t g = 0; g < groups; g++) {
        const uint8_t *pg = pw + g * (size_t)nb * NL_BLOCK;
        const int rows = n_rows - (int)g * NL_GROUP;
        float *og = out + g * NL_GROUP;
        int j = 0;
        for (; j + 4 <= n_cols; j += 4)
            iq4_nl_group(nb, pg, ab + (size_t)j * act_stride, act_stride, 4, og + (size_t)j * out_stride, out_stride, rows);
        for (; j < n_cols; j++)
            iq4_nl_group(nb, pg, ab + (size_t)j * act_stride, act_stride, 1, og + (size_t)j * out_stride, out_stride, rows);
    }
    free(pw);
    return true;
}
