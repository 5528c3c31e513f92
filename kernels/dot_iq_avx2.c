/* AVX2 lane sums of the lattice i-quant dot products (dot_iq.h): the same integers as
 * nm_iq_lanes_ref, 32 values per step as ggml's kernels take them (|q| times the activation
 * with q's sign, pairs summed to 16 bits, times the sub-block multiplier summed to 32 bits).
 * Products cannot saturate: |q| <= 62 and Q8_K activations lie in [-127, 127]. */
#include "kernels/dot_iq.h"

#include <immintrin.h>

void nm_iq_lanes_avx2(const nm_iq_unpacked *u, const int8_t *y, bool delta, int32_t *lane, int32_t *dlane) {
    __m256i sum = _mm256_setzero_si256(), dsum = _mm256_setzero_si256();
    const __m256i ones = _mm256_set1_epi8(1);
    for (int c = 0; c < 8; c++) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)(u->q + 32 * c));
        const __m256i yv = _mm256_loadu_si256((const __m256i *)(y + 32 * c));
        const __m256i sc = _mm256_set_m128i(_mm_set1_epi16(u->sc[2 * c + 1]), _mm_set1_epi16(u->sc[2 * c]));
        const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(yv, q));
        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p, sc));
        if (delta) {
            const int8_t *ds = u->ds + 4 * c;
            const __m256i s = _mm256_set_epi64x((int64_t)0x0101010101010101 * ds[3], (int64_t)0x0101010101010101 * ds[2],
                                                (int64_t)0x0101010101010101 * ds[1], (int64_t)0x0101010101010101 * ds[0]);
            const __m256i dp = _mm256_maddubs_epi16(ones, _mm256_sign_epi8(yv, s));
            dsum = _mm256_add_epi32(dsum, _mm256_madd_epi16(dp, sc));
        }
    }
    _mm256_storeu_si256((__m256i *)lane, sum);
    _mm256_storeu_si256((__m256i *)dlane, dsum);
}
