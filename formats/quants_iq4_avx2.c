/* AVX2 IQ4_NL / IQ4_XS quantizers, byte-identical to quants_iq4.c: the scale search (15 tries
 * of 32 nearest-level lookups per block, nearly all of the work) runs for eight 32-blocks at
 * once, one block per lane, each lane doing the reference's operations in the reference's
 * order (its sums stay sequential over the block's 32 elements); the stored scales and levels
 * are then set by the reference's own code (nm_iq4_finish). Built with -mavx2 -mfma -mf16c but
 * uses no fused multiply-add. */
#include "formats/quants_iq4.h"
#include "formats/quants_simd.h"

#include <immintrin.h>
#include <string.h>

#define GROUP_MAX_EPS 1e-15f

/* The level of each lane's index l (0..15), as float. */
static inline __m256 level(__m256i l, __m256 lo, __m256 hi) {
    const __m256 a = _mm256_permutevar8x32_ps(lo, l), b = _mm256_permutevar8x32_ps(hi, l);
    return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(_mm256_cmpgt_epi32(l, _mm256_set1_epi32(7))));
}

/* The reference's best_index per lane: ml = the largest level <= x among levels 1..14 (0 if
 * none), then ml or ml+1, whichever is nearer, ties to the upper one. Gives 0 for x <= -127 and
 * 15 for x >= 113 exactly as the reference's early returns do. */
static inline __m256i nearest_level(__m256 x, const __m256 *vals, __m256 lo, __m256 hi) {
    __m256i ml = _mm256_setzero_si256();
    for (int k = 1; k < 15; k++)
        ml = _mm256_sub_epi32(ml, _mm256_castps_si256(_mm256_cmp_ps(x, vals[k], _CMP_GE_OQ)));
    const __m256 left = level(ml, lo, hi), right = level(_mm256_add_epi32(ml, _mm256_set1_epi32(1)), lo, hi);
    const __m256 lower = _mm256_cmp_ps(_mm256_sub_ps(x, left), _mm256_sub_ps(right, x), _CMP_LT_OQ);
    return _mm256_add_epi32(ml, _mm256_andnot_si256(_mm256_castps_si256(lower), _mm256_set1_epi32(1)));
}

/* Scales of the eight 32-blocks x[0..255] with weights w[0..255] (iq4_block_scale per lane). */
static void scales8(const float *x, const float *w, float *scales) {
    const int8_t *v = nm_iq4nl_values;
    __m256 vals[16];
    for (int k = 0; k < 16; k++) vals[k] = _mm256_set1_ps((float)v[k]);
    const __m256 lo = _mm256_setr_ps(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
    const __m256 hi = _mm256_setr_ps(v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15]);
    const __m256i idx = _mm256_setr_epi32(0, 32, 64, 96, 128, 160, 192, 224);
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF)), zero = _mm256_setzero_ps();
    __m256 xt[32], wt[32];
    __m256 amax = zero, max = zero;
    for (int j = 0; j < 32; j++) {
        xt[j] = _mm256_i32gather_ps(x + j, idx, 4);
        wt[j] = _mm256_i32gather_ps(w + j, idx, 4);
        const __m256 ax = _mm256_and_ps(xt[j], absmask);
        const __m256 gt = _mm256_cmp_ps(ax, amax, _CMP_GT_OQ);
        amax = _mm256_blendv_ps(amax, ax, gt);
        max = _mm256_blendv_ps(max, xt[j], gt);
    }
    const __m256 valid = _mm256_cmp_ps(amax, _mm256_set1_ps(GROUP_MAX_EPS), _CMP_GE_OQ);
    __m256 d = _mm256_div_ps(_mm256_sub_ps(zero, max), vals[0]);
    __m256 id = _mm256_div_ps(_mm256_set1_ps(1.0f), d);
    __m256 sumqx = zero, sumq2 = zero;
    for (int j = 0; j < 32; j++) {
        const __m256 q = level(nearest_level(_mm256_mul_ps(id, xt[j]), vals, lo, hi), lo, hi);
        const __m256 wq = _mm256_mul_ps(wt[j], q);
        sumqx = _mm256_add_ps(sumqx, _mm256_mul_ps(wq, xt[j]));
        sumq2 = _mm256_add_ps(sumq2, _mm256_mul_ps(wq, q));
    }
    d = _mm256_blendv_ps(zero, _mm256_div_ps(sumqx, sumq2), _mm256_cmp_ps(sumq2, zero, _CMP_GT_OQ));
    __m256 best = _mm256_mul_ps(d, sumqx);
    for (int itry = -7; itry <= 7; itry++) {
        id = _mm256_div_ps(_mm256_set1_ps((float)(itry + v[0])), max);
        sumqx = sumq2 = zero;
        for (int j = 0; j < 32; j++) {
            const __m256 q = level(nearest_level(_mm256_mul_ps(id, xt[j]), vals, lo, hi), lo, hi);
            const __m256 wq = _mm256_mul_ps(wt[j], q);
            sumqx = _mm256_add_ps(sumqx, _mm256_mul_ps(wq, xt[j]));
            sumq2 = _mm256_add_ps(sumq2, _mm256_mul_ps(wq, q));
        }
        const __m256 upd = _mm256_and_ps(_mm256_cmp_ps(sumq2, zero, _CMP_GT_OQ),
                                         _mm256_cmp_ps(_mm256_mul_ps(sumqx, sumqx), _mm256_mul_ps(best, sumq2), _CMP_GT_OQ));
        const __m256 dn = _mm256_div_ps(sumqx, sumq2);
        d = _mm256_blendv_ps(d, dn, upd);
        best = _mm256_blendv_ps(best, _mm256_mul_ps(dn, sumqx), upd);
    }
    _mm256_storeu_ps(scales, _mm256_and_ps(d, valid));
}

void nm_iq4_xs_row_avx2(const float *x, uint8_t *y, int64_t n, const float *qw) {
    float w[256], scales[8];
    for (int64_t b = 0; b < n / 256; b++, x += 256, y += 136) {
        nm_iq4_weights(256, x, qw ? qw + 256 * b : NULL, w);
        scales8(x, w, scales);
        nm_iq4_finish(256, x, scales, y, y + 8, y + 2, y + 4);
    }
}

void nm_iq4_nl_row_avx2(const float *x, uint8_t *y, int64_t n, const float *qw) {
    float xs[256], w[256], scales[8];
    for (int64_t b0 = 0; b0 < n / 32; b0 += 8) {
        const int nb = n / 32 - b0 < 8 ? (int)(n / 32 - b0) : 8;
        const float *xb = x + 32 * b0;
        if (nb < 8) { /* a short tail: zero blocks fill the lanes (their scales are unused) */
            memset(xs, 0, sizeof xs);
            memcpy(xs, xb, (size_t)nb * 32 * sizeof(float));
            xb = xs;
        }
        for (int k = 0; k < 8; k++) nm_iq4_weights(32, xb + 32 * k, k < nb && qw ? qw + 32 * (b0 + k) : NULL, w + 32 * k);
        scales8(xb, w, scales);
        for (int k = 0; k < nb; k++)
            nm_iq4_finish(32, xb + 32 * k, scales + k, y + 18 * (b0 + k), y + 18 * (b0 + k) + 2, NULL, NULL);
    }
}
