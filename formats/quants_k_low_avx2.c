/* AVX2 Q3_K quantizer (without importance weights), byte-identical to quants_k_low.c: the
 * make_q3_quants search of eight 16-element sub-blocks at once, one per lane, each lane doing
 * the reference's operations in its order (sums sequential over the sub-block's elements, the
 * refinement pass stopping per lane when it changes nothing); the 6-bit scales, the
 * re-quantization and the packing are the reference's (nm_q3k_finish). With importance weights
 * the reference serves. Built with -mavx2 -mfma -mf16c but uses no fused multiply-add. */
#include "formats/quants_simd.h"

#include <immintrin.h>
#include <stdint.h>

#define GROUP_MAX_EPS 1e-15f

/* nm_nearest_int per lane: add 1.5*2^23 and read the mantissa, bit for bit the scalar's. */
static inline __m256i nearest(__m256 v) {
    const __m256i bits = _mm256_castps_si256(_mm256_add_ps(v, _mm256_set1_ps(12582912.f)));
    return _mm256_sub_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x00400000));
}
static inline __m256i clamp(__m256i l, int lo, int hi) {
    return _mm256_min_epi32(_mm256_max_epi32(l, _mm256_set1_epi32(lo)), _mm256_set1_epi32(hi));
}

/* make_q3_quants(16, 4, ..., true) for the sub-blocks x + 16*k, k < 8: scales[k], L[16*k + i]. */
static void make_q3_x8(const float *x, float *scales, int8_t *L) {
    const __m256i idx = _mm256_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112);
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF)), zero = _mm256_setzero_ps();
    __m256 xt[16], wxt[16], wt[16];
    __m256i l[16];
    __m256 amax = zero, max = zero;
    for (int i = 0; i < 16; i++) {
        xt[i] = _mm256_i32gather_ps(x + i, idx, 4);
        wt[i] = _mm256_mul_ps(xt[i], xt[i]);
        wxt[i] = _mm256_mul_ps(wt[i], xt[i]);
        const __m256 ax = _mm256_and_ps(xt[i], absmask);
        const __m256 gt = _mm256_cmp_ps(ax, amax, _CMP_GT_OQ);
        amax = _mm256_blendv_ps(amax, ax, gt);
        max = _mm256_blendv_ps(max, xt[i], gt);
    }
    const __m256 valid = _mm256_cmp_ps(amax, _mm256_set1_ps(GROUP_MAX_EPS), _CMP_GE_OQ);
    const __m256 iscale = _mm256_div_ps(_mm256_set1_ps(-4.0f), max);
    __m256 sumlx = zero, suml2 = zero;
    for (int i = 0; i < 16; i++) {
        l[i] = clamp(nearest(_mm256_mul_ps(iscale, xt[i])), -4, 3);
        const __m256 fl = _mm256_cvtepi32_ps(l[i]);
        sumlx = _mm256_add_ps(sumlx, _mm256_mul_ps(wxt[i], fl));
        suml2 = _mm256_add_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(wt[i], fl), fl));
    }
    __m256 active = valid;
    for (int itry = 0; itry < 5 && _mm256_movemask_ps(active); itry++) {
        __m256 changed = zero;
        for (int i = 0; i < 16; i++) {
            const __m256 fl = _mm256_cvtepi32_ps(l[i]);
            __m256 slx = _mm256_sub_ps(sumlx, _mm256_mul_ps(wxt[i], fl));
            const __m256 c1 = _mm256_cmp_ps(slx, zero, _CMP_GT_OQ);
            __m256 sl2 = _mm256_sub_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(wt[i], fl), fl));
            const __m256i nl = clamp(nearest(_mm256_div_ps(_mm256_mul_ps(xt[i], sl2), slx)), -4, 3);
            const __m256 c2 = _mm256_castsi256_ps(_mm256_xor_si256(_mm256_cmpeq_epi32(nl, l[i]), _mm256_set1_epi32(-1)));
            const __m256 fn = _mm256_cvtepi32_ps(nl);
            slx = _mm256_add_ps(slx, _mm256_mul_ps(wxt[i], fn));
            sl2 = _mm256_add_ps(sl2, _mm256_mul_ps(_mm256_mul_ps(wt[i], fn), fn));
            const __m256 c3 = _mm256_and_ps(_mm256_cmp_ps(sl2, zero, _CMP_GT_OQ),
                                            _mm256_cmp_ps(_mm256_mul_ps(_mm256_mul_ps(slx, slx), suml2),
                                                          _mm256_mul_ps(_mm256_mul_ps(sumlx, sumlx), sl2), _CMP_GT_OQ));
            const __m256 upd = _mm256_and_ps(_mm256_and_ps(active, c1), _mm256_and_ps(c2, c3));
            l[i] = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(l[i]), _mm256_castsi256_ps(nl), upd));
            sumlx = _mm256_blendv_ps(sumlx, slx, upd);
            suml2 = _mm256_blendv_ps(suml2, sl2, upd);
            changed = _mm256_or_ps(changed, upd);
        }
        active = _mm256_and_ps(active, changed);
    }
    const __m256 sc = _mm256_blendv_ps(zero, _mm256_div_ps(sumlx, suml2), _mm256_cmp_ps(suml2, zero, _CMP_GT_OQ));
    _mm256_storeu_ps(scales, _mm256_and_ps(sc, valid));
    int32_t lv[16][8];
    float vv[8];
    _mm256_storeu_ps(vv, valid);
    for (int i = 0; i < 16; i++) _mm256_storeu_si256((__m256i *)lv[i], l[i]);
    for (int k = 0; k < 8; k++)
        for (int i = 0; i < 16; i++) L[16 * k + i] = vv[k] != 0.0f ? (int8_t)(lv[i][k] + 4) : 0;
}

static inline int q3k_scale(const uint8_t *sc, int j) {
    int v = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
    return (v | ((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4) - 32;
}

/* The reference's re-quantization against the stored scales (a zero scale keeps the search
 * levels) and its packing: hmask bit c of byte i = high bit of element 32c + i, qs as Q2_K. */
static void requant_pack(const float *x, uint8_t *y, int8_t *L) {
    uint16_t dh = (uint16_t)(y[108] | y[109] << 8);
    const float d_all = _cvtsh_ss(dh);
    for (int j = 0; j < 16; j++) {
        const float d = d_all * (float)q3k_scale(y + 96, j);
        if (!d) continue;
        const __m256 dv = _mm256_set1_ps(d);
        const __m256i a = clamp(nearest(_mm256_div_ps(_mm256_loadu_ps(x + 16 * j), dv)), -4, 3);
        const __m256i b = clamp(nearest(_mm256_div_ps(_mm256_loadu_ps(x + 16 * j + 8), dv)), -4, 3);
        const __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8);
        const __m128i w8 = _mm_packs_epi16(_mm256_castsi256_si128(w16), _mm256_extracti128_si256(w16, 1));
        _mm_storeu_si128((__m128i *)(L + 16 * j), _mm_add_epi8(w8, _mm_set1_epi8(4)));
    }
    __m256i hm = _mm256_setzero_si256(), qs[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
    const __m256i three = _mm256_set1_epi8(3);
    for (int c = 0; c < 8; c++) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(L + 32 * c));
        hm = _mm256_or_si256(hm, _mm256_and_si256(_mm256_cmpgt_epi8(v, three), _mm256_set1_epi8((char)(1 << c))));
        const __m256i low = _mm256_and_si256(v, three);
        qs[c / 4] = _mm256_or_si256(qs[c / 4], _mm256_slli_epi16(low, 2 * (c % 4)));
    }
    _mm256_storeu_si256((__m256i *)y, hm);
    _mm256_storeu_si256((__m256i *)(y + 32), qs[0]);
    _mm256_storeu_si256((__m256i *)(y + 64), qs[1]);
}

void nm_q3_k_row_avx2(const float *x, uint8_t *y, int64_t n, const float *qw) {
    if (qw) {
        nm_q3_k_row_ref(x, y, n, qw);
        return;
    }
    for (int64_t b = 0; b < n / 256; b++, x += 256, y += 110) {
        int8_t L[256];
        float scales[16];
        make_q3_x8(x, scales, L);
        make_q3_x8(x + 128, scales + 8, L + 128);
        nm_q3k_set_scales(y, scales);
        requant_pack(x, y, L);
    }
}
