/* AVX2 (+F16C) quantization and dequantization kernels, byte-identical to the scalar reference
 * in quants.c / quants_k.c (tests/formats/test_quants_simd.c proves it on 10^6 blocks per type).
 *
 * Exactness rules: the file is built with -mfma but also -ffp-contract=off, and every a*b+c of
 * the reference is written as a separate multiply and add; divisions and square roots are the
 * correctly rounded vdivps/vsqrtps; nearest_int is the same add-1.5*2^23 trick.
 *
 * Legacy types vectorise inside a 32-element block. The K-quant searches accumulate sums in index
 * order, which a horizontal vectorisation would reorder; so each of the 8 lanes runs one
 * sub-block's search (lane j = sub-block j of the super-block), in the reference's order. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "formats/quants_simd.h"
#include "formats/tensor.h"

/* ---- helpers ---- */

static inline __m256 v_abs(__m256 v) {
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

static inline float hmax_ps(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}
static inline float hmin_ps(__m256 v) {
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    m = _mm_min_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

static inline __m256i v_nearest(__m256 f) {
    __m256i i = _mm256_castps_si256(_mm256_add_ps(f, _mm256_set1_ps(12582912.f)));
    return _mm256_sub_epi32(_mm256_and_si256(i, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x00400000));
}

static inline void put_f16(uint8_t *p, float v) {
    uint16_t h = nm_f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}
static inline float get_f16(const uint8_t *p) {
    return nm_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* The signed value of the first element with the largest magnitude among 32. */
static inline float signed_absmax32(const float *x, const __m256 *v) {
    __m256 a = _mm256_max_ps(_mm256_max_ps(v_abs(v[0]), v_abs(v[1])), _mm256_max_ps(v_abs(v[2]), v_abs(v[3])));
    const float amax = hmax_ps(a);
    if (amax == 0)
        return 0;
    const __m256 am = _mm256_set1_ps(amax);
    uint32_t mask = 0;
    for (int k = 0; k < 4; k++)
        mask |= (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(v_abs(v[k]), am, _CMP_EQ_OQ)) << (8 * k);
    return x[__builtin_ctz(mask)];
}

/* Packs 4 vectors of 8 int32 levels (elements 0..31, each 0..15) into 16 nibble bytes:
 * byte j = q[j] | q[j+16] << 4. */
static inline __m128i pack_nibbles(const __m256i *q) {
    __m256i a = _mm256_or_si256(q[0], _mm256_slli_epi32(q[2], 4));
    __m256i b = _mm256_or_si256(q[1], _mm256_slli_epi32(q[3], 4));
    __m256i p16 = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xD8);
    __m256i p8 = _mm256_packus_epi16(p16, p16);
    return _mm_unpacklo_epi64(_mm256_castsi256_si128(p8), _mm256_extracti128_si256(p8, 1));
}

/* Bit 4 of each of 32 levels -> the little-endian u32 qh of Q5_0/Q5_1. */
static inline uint32_t high_bits(const __m256i *q) {
    uint32_t qh = 0;
    for (int k = 0; k < 4; k++)
        qh |= (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_slli_epi32(q[k], 27))) << (8 * k);
    return qh;
}

static inline void put_u32(uint8_t *p, uint32_t v) {
    memcpy(p, &v, 4);
}

/* ---- legacy quantizers ---- */

static void q4_0_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    if (qw) {
        nm_quants_ref_quantizer(GGML_TYPE_Q4_0)(x, y, n, qw);
        return;
    }
    const __m256 half = _mm256_set1_ps(8.5f);
    const __m256i fifteen = _mm256_set1_epi32(15);
    for (int64_t b = 0; b < n / 32; b++, x += 32, y += 18) {
        __m256 v[4];
        for (int k = 0; k < 4; k++)
            v[k] = _mm256_loadu_ps(x + 8 * k);
        const float max = signed_absmax32(x, v);
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        put_f16(y, d);
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++)
            q[k] = _mm256_min_epi32(_mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(v[k], vid), half)), fifteen);
        _mm_storeu_si128((__m128i *)(y + 2), pack_nibbles(q));
    }
}

static void q5_0_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    if (qw) {
        nm_quants_ref_quantizer(GGML_TYPE_Q5_0)(x, y, n, qw);
        return;
    }
    const __m256 half = _mm256_set1_ps(16.5f);
    const __m256i max_q = _mm256_set1_epi32(31), low = _mm256_set1_epi32(15);
    for (int64_t b = 0; b < n / 32; b++, x += 32, y += 22) {
        __m256 v[4];
        for (int k = 0; k < 4; k++)
            v[k] = _mm256_loadu_ps(x + 8 * k);
        const float max = signed_absmax32(x, v);
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        put_f16(y, d);
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q[4], lo[4];
        for (int k = 0; k < 4; k++) {
            q[k] = _mm256_min_epi32(_mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(v[k], vid), half)), max_q);
            lo[k] = _mm256_and_si256(q[k], low);
        }
        put_u32(y + 2, high_bits(q));
        _mm_storeu_si128((__m128i *)(y + 6), pack_nibbles(lo));
    }
}

/* The reference keeps the first of equal extremes, which only shows for zeros (-0.0 == 0.0):
 * then take the sign of the first zero. */
static inline float first_zero(const float *x) {
    for (int j = 0; j < 32; j++)
        if (x[j] == 0)
            return x[j];
    return 0;
}
static inline void min_max32(const float *x, const __m256 *v, float *mn, float *mx) {
    *mn = hmin_ps(_mm256_min_ps(_mm256_min_ps(v[0], v[1]), _mm256_min_ps(v[2], v[3])));
    *mx = hmax_ps(_mm256_max_ps(_mm256_max_ps(v[0], v[1]), _mm256_max_ps(v[2], v[3])));
    if (*mn == 0)
        *mn = first_zero(x);
    if (*mx == 0)
        *mx = first_zero(x);
}

static void q4_1_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    if (qw) {
        nm_quants_ref_quantizer(GGML_TYPE_Q4_1)(x, y, n, qw);
        return;
    }
    const __m256 half = _mm256_set1_ps(0.5f);
    const __m256i fifteen = _mm256_set1_epi32(15);
    for (int64_t b = 0; b < n / 32; b++, x += 32, y += 20) {
        __m256 v[4];
        for (int k = 0; k < 4; k++)
            v[k] = _mm256_loadu_ps(x + 8 * k);
        float min, max;
        min_max32(x, v, &min, &max);
        const float d = (max - min) / 15;
        const float id = d ? 1.0f / d : 0.0f;
        put_f16(y, d);
        put_f16(y + 2, min);
        const __m256 vid = _mm256_set1_ps(id), vmin = _mm256_set1_ps(min);
        __m256i q[4];
        for (int k = 0; k < 4; k++)
            q[k] = _mm256_min_epi32(
                _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(v[k], vmin), vid), half)), fifteen);
        _mm_storeu_si128((__m128i *)(y + 4), pack_nibbles(q));
    }
}

static void q5_1_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    if (qw) {
        nm_quants_ref_quantizer(GGML_TYPE_Q5_1)(x, y, n, qw);
        return;
    }
    const __m256 half = _mm256_set1_ps(0.5f);
    const __m256i low = _mm256_set1_epi32(15), byte = _mm256_set1_epi32(0xFF);
    for (int64_t b = 0; b < n / 32; b++, x += 32, y += 24) {
        __m256 v[4];
        for (int k = 0; k < 4; k++)
            v[k] = _mm256_loadu_ps(x + 8 * k);
        float min, max;
        min_max32(x, v, &min, &max);
        const float d = (max - min) / 31;
        const float id = d ? 1.0f / d : 0.0f;
        put_f16(y, d);
        put_f16(y + 2, min);
        const __m256 vid = _mm256_set1_ps(id), vmin = _mm256_set1_ps(min);
        __m256i q[4], lo[4];
        for (int k = 0; k < 4; k++) {
            /* the reference converts straight to uint8_t: keep the low byte */
            q[k] = _mm256_and_si256(
                _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(v[k], vmin), vid), half)), byte);
            lo[k] = _mm256_and_si256(q[k], low);
        }
        put_u32(y + 4, high_bits(q));
        _mm_storeu_si128((__m128i *)(y + 8), pack_nibbles(lo));
    }
}

/* roundf (ties away from zero), exactly: truncate, then step away from zero when the dropped
 * fraction (exact) is at least one half. */
static inline __m256i v_roundf(__m256 v) {
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = v_abs(_mm256_sub_ps(v, t));
    const __m256 step = _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ),
                                      _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(v, _mm256_set1_ps(-0.0f))));
    return _mm256_cvtps_epi32(_mm256_add_ps(t, step));
}

/* 32 int32 levels in 4 vectors -> 32 int8 in element order. */
static inline __m256i pack_i8(const __m256i *q) {
    __m256i p16a = _mm256_packs_epi32(q[0], q[1]); /* [0-3 8-11 | 4-7 12-15] */
    __m256i p16b = _mm256_packs_epi32(q[2], q[3]);
    __m256i p8 = _mm256_packs_epi16(p16a, p16b);    /* [0-3 8-11 16-19 24-27 | 4-7 12-15 20-23 28-31] */
    return _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static void q8_0_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    (void)qw;
    for (int64_t b = 0; b < n / 32; b++, x += 32, y += 34) {
        __m256 v[4];
        for (int k = 0; k < 4; k++)
            v[k] = _mm256_loadu_ps(x + 8 * k);
        const float amax =
            hmax_ps(_mm256_max_ps(_mm256_max_ps(v_abs(v[0]), v_abs(v[1])), _mm256_max_ps(v_abs(v[2]), v_abs(v[3]))));
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        put_f16(y, d);
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++)
            q[k] = v_roundf(_mm256_mul_ps(v[k], vid));
        _mm256_storeu_si256((__m256i *)(y + 2), pack_i8(q));
    }
}

/* ---- K-quant searches, one sub-block per lane ---- */

/* make_qkx2 (degenerate_le = 0) / make_qkx3 (1) over n = 32 values per lane. */
static void v_make_qkx(const __m256 *X, const __m256 *W, int nmax, float rmin, float rdelta, int nstep,
                       int degenerate_le, __m256i *L, __m256 *scale_out, __m256 *the_min_out) {
    const __m256 zero = _mm256_setzero_ps();
    const __m256i izero = _mm256_setzero_si256(), inmax = _mm256_set1_epi32(nmax);
    __m256 mn = X[0], mx = X[0], sum_w = W[0], sum_x = _mm256_mul_ps(W[0], X[0]);
    for (int i = 1; i < 32; i++) {
        mn = _mm256_min_ps(X[i], mn); /* (x < mn) ? x : mn */
        mx = _mm256_max_ps(X[i], mx);
        sum_w = _mm256_add_ps(sum_w, W[i]);
        sum_x = _mm256_add_ps(sum_x, _mm256_mul_ps(W[i], X[i]));
    }
    mn = _mm256_blendv_ps(mn, zero, _mm256_cmp_ps(mn, zero, _CMP_GT_OQ));
    const __m256 degenerate = degenerate_le ? _mm256_cmp_ps(mx, mn, _CMP_LE_OQ) : _mm256_cmp_ps(mx, mn, _CMP_EQ_OQ);
    const __m256 range = _mm256_sub_ps(mx, mn);
    const __m256 iscale = _mm256_div_ps(_mm256_set1_ps((float)nmax), range);
    __m256 scale = _mm256_div_ps(_mm256_set1_ps(1.0f), iscale);
    __m256 best = zero;
    for (int i = 0; i < 32; i++) {
        __m256i l = v_nearest(_mm256_mul_ps(iscale, _mm256_sub_ps(X[i], mn)));
        l = _mm256_min_epi32(_mm256_max_epi32(l, izero), inmax);
        L[i] = l;
        __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale, _mm256_cvtepi32_ps(l)), mn), X[i]);
        best = _mm256_add_ps(best, _mm256_mul_ps(W[i], _mm256_mul_ps(diff, diff)));
    }
    for (int is = 0; is <= nstep; is++) {
        const float num = rmin + rdelta * (float)is + (float)nmax;
        /* the reference updates min when a step wins, so later steps see the new range */
        const __m256 isc = _mm256_div_ps(_mm256_set1_ps(num), _mm256_sub_ps(mx, mn));
        __m256 sum_l = zero, sum_l2 = zero, sum_xl = zero;
        __m256i Laux[32];
        for (int i = 0; i < 32; i++) {
            __m256i l = v_nearest(_mm256_mul_ps(isc, _mm256_sub_ps(X[i], mn)));
            l = _mm256_min_epi32(_mm256_max_epi32(l, izero), inmax);
            Laux[i] = l;
            const __m256 fl = _mm256_cvtepi32_ps(l);
            const __m256 wl = _mm256_mul_ps(W[i], fl);
            sum_l = _mm256_add_ps(sum_l, wl);
            sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(wl, fl));
            sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(wl, X[i]));
        }
        const __m256 D = _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
        __m256 ok = _mm256_andnot_ps(degenerate, _mm256_cmp_ps(D, zero, _CMP_GT_OQ));
        if (!_mm256_movemask_ps(ok))
            continue;
        __m256 this_scale =
            _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_w, sum_xl), _mm256_mul_ps(sum_x, sum_l)), D);
        __m256 this_min =
            _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_l2, sum_x), _mm256_mul_ps(sum_l, sum_xl)), D);
        const __m256 pos = _mm256_cmp_ps(this_min, zero, _CMP_GT_OQ);
        if (_mm256_movemask_ps(pos)) {
            this_min = _mm256_blendv_ps(this_min, zero, pos);
            this_scale = _mm256_blendv_ps(this_scale, _mm256_div_ps(sum_xl, sum_l2), pos);
        }
        __m256 cur = zero;
        for (int i = 0; i < 32; i++) {
            __m256 diff = _mm256_sub_ps(
                _mm256_add_ps(_mm256_mul_ps(this_scale, _mm256_cvtepi32_ps(Laux[i])), this_min), X[i]);
            cur = _mm256_add_ps(cur, _mm256_mul_ps(W[i], _mm256_mul_ps(diff, diff)));
        }
        ok = _mm256_and_ps(ok, _mm256_cmp_ps(cur, best, _CMP_LT_OQ));
        if (!_mm256_movemask_ps(ok))
            continue;
        const __m256i oki = _mm256_castps_si256(ok);
        for (int i = 0; i < 32; i++)
            L[i] = _mm256_blendv_epi8(L[i], Laux[i], oki);
        best = _mm256_blendv_ps(best, cur, ok);
        scale = _mm256_blendv_ps(scale, this_scale, ok);
        mn = _mm256_blendv_ps(mn, this_min, ok);
    }
    if (_mm256_movemask_ps(degenerate)) {
        const __m256i degi = _mm256_castps_si256(degenerate);
        for (int i = 0; i < 32; i++)
            L[i] = _mm256_andnot_si256(degi, L[i]);
        scale = _mm256_andnot_ps(degenerate, scale);
    }
    *scale_out = scale;
    *the_min_out = _mm256_xor_ps(mn, _mm256_set1_ps(-0.0f));
}

static inline void scale_min_k4(int j, const uint8_t *q, int *d, int *m);

/* 32 int32 values 0..255 in 4 vectors -> 32 bytes in element order. */
static inline __m256i pack_u8x32(const __m256i *q) {
    __m256i a = _mm256_packs_epi32(q[0], q[1]), b = _mm256_packs_epi32(q[2], q[3]);
    return _mm256_permutevar8x32_epi32(_mm256_packus_epi16(a, b), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* Steps 6-7 of §4.4: re-quantize against the stored scales (sub-blocks whose scale is 0 keep the
 * search's levels L), then pack as Q4_K (nmax 15) or Q5_K (nmax 31). */
static void qk_requant_pack(const float *x, uint8_t *y, const uint8_t *L, int nmax) {
    const float d_all = get_f16(y), dmin_all = get_f16(y + 2);
    const __m256i izero = _mm256_setzero_si256(), inmax = _mm256_set1_epi32(nmax);
    __m256i Q[32];
    for (int j = 0; j < 8; j++) {
        int sc, m;
        scale_min_k4(j, y + 4, &sc, &m);
        const float d = d_all * (float)sc;
        if (!d) {
            for (int k = 0; k < 4; k++)
                Q[4 * j + k] = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(L + 32 * j + 8 * k)));
            continue;
        }
        const __m256 vd = _mm256_set1_ps(d), vdm = _mm256_set1_ps(dmin_all * (float)m);
        for (int k = 0; k < 4; k++) {
            __m256i l = v_nearest(_mm256_div_ps(_mm256_add_ps(_mm256_loadu_ps(x + 32 * j + 8 * k), vdm), vd));
            Q[4 * j + k] = _mm256_min_epi32(_mm256_max_epi32(l, izero), inmax);
        }
    }
    const __m256i low = _mm256_set1_epi32(15);
    __m256i qh[4] = {izero, izero, izero, izero};
    for (int c = 0; c < 4; c++) {
        __m256i comb[4];
        for (int k = 0; k < 4; k++) {
            const __m256i lo = Q[8 * c + k], hi = Q[8 * c + 4 + k];
            if (nmax == 15) {
                comb[k] = _mm256_or_si256(lo, _mm256_slli_epi32(hi, 4));
            } else {
                comb[k] = _mm256_or_si256(_mm256_and_si256(lo, low), _mm256_slli_epi32(_mm256_and_si256(hi, low), 4));
                qh[k] = _mm256_or_si256(qh[k], _mm256_or_si256(_mm256_slli_epi32(_mm256_srli_epi32(lo, 4), 2 * c),
                                                               _mm256_slli_epi32(_mm256_srli_epi32(hi, 4), 2 * c + 1)));
            }
        }
        _mm256_storeu_si256((__m256i *)(y + (nmax == 15 ? 16 : 48) + 32 * c), pack_u8x32(comb));
    }
    if (nmax != 15)
        _mm256_storeu_si256((__m256i *)(y + 16), pack_u8x32(qh));
}

/* §4.5 steps 5-6 for Q6_K. */
static void q6k_requant_pack(const float *x, uint8_t *y, const int8_t *L) {
    const float d_all = get_f16(y + 208);
    const int8_t *sc = (const int8_t *)(y + 192);
    const __m256i lo = _mm256_set1_epi32(-32), hi = _mm256_set1_epi32(31), off = _mm256_set1_epi32(32);
    __m256i Q[32];
    for (int j = 0; j < 16; j++) {
        const float d = d_all * (float)sc[j];
        if (!d) {
            for (int k = 0; k < 2; k++)
                Q[2 * j + k] = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(L + 16 * j + 8 * k)));
            continue;
        }
        const __m256 vd = _mm256_set1_ps(d);
        for (int k = 0; k < 2; k++) {
            __m256i l = v_nearest(_mm256_div_ps(_mm256_loadu_ps(x + 16 * j + 8 * k), vd));
            Q[2 * j + k] = _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(l, lo), hi), off);
        }
    }
    const __m256i low = _mm256_set1_epi32(15);
    for (int h = 0; h < 2; h++) {
        __m256i ql0[4], ql1[4], qh[4];
        for (int k = 0; k < 4; k++) { /* l = 8k..8k+7 */
            const __m256i a = Q[16 * h + k], b = Q[16 * h + 4 + k], c = Q[16 * h + 8 + k], e = Q[16 * h + 12 + k];
            ql0[k] = _mm256_or_si256(_mm256_and_si256(a, low), _mm256_slli_epi32(_mm256_and_si256(c, low), 4));
            ql1[k] = _mm256_or_si256(_mm256_and_si256(b, low), _mm256_slli_epi32(_mm256_and_si256(e, low), 4));
            qh[k] = _mm256_or_si256(
                _mm256_or_si256(_mm256_srli_epi32(a, 4), _mm256_slli_epi32(_mm256_srli_epi32(b, 4), 2)),
                _mm256_or_si256(_mm256_slli_epi32(_mm256_srli_epi32(c, 4), 4), _mm256_slli_epi32(_mm256_srli_epi32(e, 4), 6)));
        }
        _mm256_storeu_si256((__m256i *)(y + 64 * h), pack_u8x32(ql0));
        _mm256_storeu_si256((__m256i *)(y + 64 * h + 32), pack_u8x32(ql1));
        _mm256_storeu_si256((__m256i *)(y + 128 + 32 * h), pack_u8x32(qh));
    }
}

static void qk_block(const float *x, uint8_t *y, const float *qw, int nmax) {
    const __m256i idx = _mm256_setr_epi32(0, 32, 64, 96, 128, 160, 192, 224);
    __m256 X[32], W[32], vscale, vmin;
    __m256i Lv[32];
    for (int i = 0; i < 32; i++)
        X[i] = _mm256_i32gather_ps(x + i, idx, 4);
    float sw[8];
    if (!qw) {
        __m256 sum_x2 = _mm256_setzero_ps();
        for (int i = 0; i < 32; i++)
            sum_x2 = _mm256_add_ps(sum_x2, _mm256_mul_ps(X[i], X[i]));
        const __m256 av_x = _mm256_sqrt_ps(_mm256_div_ps(sum_x2, _mm256_set1_ps(32.f)));
        for (int i = 0; i < 32; i++)
            W[i] = _mm256_add_ps(av_x, v_abs(X[i]));
        v_make_qkx(X, W, nmax, nmax == 15 ? -1.f : -0.5f, 0.1f, nmax == 15 ? 20 : 15, 0, Lv, &vscale, &vmin);
    } else {
        float sum_x2 = 0;
        for (int l = 0; l < 256; l++)
            sum_x2 += x[l] * x[l];
        const __m256 sigma2 = _mm256_set1_ps(2 * sum_x2 / 256);
        __m256 sumw = _mm256_setzero_ps();
        for (int i = 0; i < 32; i++) {
            const __m256 q = _mm256_i32gather_ps(qw + i, idx, 4);
            W[i] = _mm256_mul_ps(q, _mm256_sqrt_ps(_mm256_add_ps(sigma2, _mm256_mul_ps(X[i], X[i]))));
            sumw = _mm256_add_ps(sumw, W[i]);
        }
        _mm256_storeu_ps(sw, sumw);
        v_make_qkx(X, W, nmax, -0.9f, 0.05f, 36, 1, Lv, &vscale, &vmin);
    }
    float scales[8], mins[8];
    _mm256_storeu_ps(scales, vscale);
    _mm256_storeu_ps(mins, vmin);
    uint8_t L[256];
    for (int i = 0; i < 32; i++) {
        int32_t lanes[8];
        _mm256_storeu_si256((__m256i *)lanes, Lv[i]);
        for (int j = 0; j < 8; j++)
            L[32 * j + i] = (uint8_t)lanes[j];
    }
    if (qw)
        nm_qk_set_scales_b(y, scales, mins, sw);
    else
        nm_qk_set_scales_a(y, scales, mins);
    qk_requant_pack(x, y, L, nmax);
}

static void q4_k_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    for (int64_t b = 0; b < n / 256; b++)
        qk_block(x + 256 * b, y + 144 * b, qw ? qw + 256 * b : NULL, 15);
}
static void q5_k_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    for (int64_t b = 0; b < n / 256; b++)
        qk_block(x + 256 * b, y + 176 * b, qw ? qw + 256 * b : NULL, 31);
}

/* make_qx (rmse_type 1, nmax 32, n = 16 per lane) for 8 sub-blocks of 16. */
static void v_make_qx16(const __m256 *X, const __m256 *QW, __m256i *L, __m256 *scale_out) {
    const int nmax = 32;
    const __m256 zero = _mm256_setzero_ps();
    const __m256i lo = _mm256_set1_epi32(-nmax), hi = _mm256_set1_epi32(nmax - 1), off = _mm256_set1_epi32(nmax);
    __m256 amax = zero, max = zero, W[16];
    for (int i = 0; i < 16; i++) {
        const __m256 ax = v_abs(X[i]);
        const __m256 gt = _mm256_cmp_ps(ax, amax, _CMP_GT_OQ);
        amax = _mm256_blendv_ps(amax, ax, gt);
        max = _mm256_blendv_ps(max, X[i], gt);
        W[i] = QW ? QW[i] : _mm256_mul_ps(X[i], X[i]);
    }
    const __m256 tiny = _mm256_cmp_ps(amax, _mm256_set1_ps(1e-15f), _CMP_LT_OQ);
    __m256 iscale = _mm256_div_ps(_mm256_set1_ps((float)-nmax), max);
    __m256 sumlx = zero, suml2 = zero;
    for (int i = 0; i < 16; i++) {
        __m256i l = _mm256_min_epi32(_mm256_max_epi32(v_nearest(_mm256_mul_ps(iscale, X[i])), lo), hi);
        L[i] = _mm256_add_epi32(l, off);
        const __m256 fl = _mm256_cvtepi32_ps(l);
        sumlx = _mm256_add_ps(sumlx, _mm256_mul_ps(_mm256_mul_ps(W[i], X[i]), fl));
        suml2 = _mm256_add_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(W[i], fl), fl));
    }
    __m256 scale = _mm256_and_ps(_mm256_div_ps(sumlx, suml2), _mm256_cmp_ps(suml2, zero, _CMP_NEQ_UQ));
    __m256 best = _mm256_mul_ps(scale, sumlx);
    for (int is = -9; is <= 9; is++) {
        if (is == 0)
            continue;
        const float num = -((float)nmax + 0.1f * (float)is);
        iscale = _mm256_div_ps(_mm256_set1_ps(num), max);
        __m256i Lt[16];
        sumlx = suml2 = zero;
        for (int i = 0; i < 16; i++) {
            __m256i l = _mm256_min_epi32(_mm256_max_epi32(v_nearest(_mm256_mul_ps(iscale, X[i])), lo), hi);
            Lt[i] = l;
            const __m256 fl = _mm256_cvtepi32_ps(l);
            sumlx = _mm256_add_ps(sumlx, _mm256_mul_ps(_mm256_mul_ps(W[i], X[i]), fl));
            suml2 = _mm256_add_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(W[i], fl), fl));
        }
        const __m256 ok = _mm256_and_ps(
            _mm256_cmp_ps(suml2, zero, _CMP_GT_OQ),
            _mm256_cmp_ps(_mm256_mul_ps(sumlx, sumlx), _mm256_mul_ps(best, suml2), _CMP_GT_OQ));
        if (!_mm256_movemask_ps(ok))
            continue;
        const __m256i oki = _mm256_castps_si256(ok);
        for (int i = 0; i < 16; i++)
            L[i] = _mm256_blendv_epi8(L[i], _mm256_add_epi32(Lt[i], off), oki);
        scale = _mm256_blendv_ps(scale, _mm256_div_ps(sumlx, suml2), ok);
        best = _mm256_blendv_ps(best, _mm256_mul_ps(scale, sumlx), ok);
    }
    if (_mm256_movemask_ps(tiny)) {
        const __m256i t = _mm256_castps_si256(tiny);
        for (int i = 0; i < 16; i++)
            L[i] = _mm256_andnot_si256(t, L[i]);
        scale = _mm256_andnot_ps(tiny, scale);
    }
    *scale_out = scale;
}

static void q6_k_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    const __m256i idx = _mm256_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112);
    for (int64_t b = 0; b < n / 256; b++) {
        const float *xb = x + 256 * b;
        const float *qb = qw ? qw + 256 * b : NULL;
        float scales[16];
        int8_t L[256];
        for (int g = 0; g < 2; g++) {
            __m256 X[16], QW[16], vscale;
            __m256i Lv[16];
            for (int i = 0; i < 16; i++) {
                X[i] = _mm256_i32gather_ps(xb + 128 * g + i, idx, 4);
                if (qb)
                    QW[i] = _mm256_i32gather_ps(qb + 128 * g + i, idx, 4);
            }
            v_make_qx16(X, qb ? QW : NULL, Lv, &vscale);
            _mm256_storeu_ps(scales + 8 * g, vscale);
            for (int i = 0; i < 16; i++) {
                int32_t lanes[8];
                _mm256_storeu_si256((__m256i *)lanes, Lv[i]);
                for (int j = 0; j < 8; j++)
                    L[128 * g + 16 * j + i] = (int8_t)lanes[j];
            }
        }
        if (nm_q6k_set_scales(y + 210 * b, scales))
            q6k_requant_pack(xb, y + 210 * b, L);
    }
}

/* ---- dequantization ---- */

/* Levels of 8 consecutive nibble bytes: low (shift 0) or high (shift 4) nibbles as int32. */
static inline __m256i nib8(const uint8_t *p, int shift) {
    __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
    return _mm256_and_si256(_mm256_srli_epi32(v, shift), _mm256_set1_epi32(15));
}

/* Bits j..j+7 of qh, each as 0 or 16. */
static inline __m256i qh_bits(uint32_t qh, int j) {
    __m256i v = _mm256_srlv_epi32(_mm256_set1_epi32((int)qh), _mm256_add_epi32(_mm256_set1_epi32(j), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
    return _mm256_slli_epi32(_mm256_and_si256(v, _mm256_set1_epi32(1)), 4);
}

static void dq_q4_0(const uint8_t *x, float *y, int64_t n) {
    const __m256i eight = _mm256_set1_epi32(8);
    for (int64_t b = 0; b < n / 32; b++, x += 18, y += 32) {
        const __m256 d = _mm256_set1_ps(get_f16(x));
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 2; k++)
                _mm256_storeu_ps(y + 16 * h + 8 * k,
                                 _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(nib8(x + 2 + 8 * k, 4 * h), eight)), d));
    }
}

static void dq_q4_1(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 20, y += 32) {
        const __m256 d = _mm256_set1_ps(get_f16(x)), m = _mm256_set1_ps(get_f16(x + 2));
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 2; k++)
                _mm256_storeu_ps(y + 16 * h + 8 * k,
                                 _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(nib8(x + 4 + 8 * k, 4 * h)), d), m));
    }
}

static void dq_q5_0(const uint8_t *x, float *y, int64_t n) {
    const __m256i sixteen = _mm256_set1_epi32(16);
    for (int64_t b = 0; b < n / 32; b++, x += 22, y += 32) {
        const __m256 d = _mm256_set1_ps(get_f16(x));
        uint32_t qh;
        memcpy(&qh, x + 2, 4);
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 2; k++) {
                __m256i q = _mm256_or_si256(nib8(x + 6 + 8 * k, 4 * h), qh_bits(qh, 16 * h + 8 * k));
                _mm256_storeu_ps(y + 16 * h + 8 * k, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, sixteen)), d));
            }
    }
}

static void dq_q5_1(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 24, y += 32) {
        const __m256 d = _mm256_set1_ps(get_f16(x)), m = _mm256_set1_ps(get_f16(x + 2));
        uint32_t qh;
        memcpy(&qh, x + 4, 4);
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 2; k++) {
                __m256i q = _mm256_or_si256(nib8(x + 8 + 8 * k, 4 * h), qh_bits(qh, 16 * h + 8 * k));
                _mm256_storeu_ps(y + 16 * h + 8 * k, _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(q), d), m));
            }
    }
}

static inline __m256 i8x8_to_ps(const uint8_t *p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

static void dq_q8_0(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 34, y += 32) {
        const __m256 d = _mm256_set1_ps(get_f16(x));
        for (int k = 0; k < 4; k++)
            _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(i8x8_to_ps(x + 2 + 8 * k), d));
    }
}

static void dq_q8_1(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 36, y += 32) {
        const __m256 d = _mm256_set1_ps(get_f16(x));
        for (int k = 0; k < 4; k++)
            _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(i8x8_to_ps(x + 4 + 8 * k), d));
    }
}

static void dq_q8_k(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++, x += 292, y += 256) {
        float df;
        memcpy(&df, x, 4);
        const __m256 d = _mm256_set1_ps(df);
        for (int k = 0; k < 32; k++)
            _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(d, i8x8_to_ps(x + 4 + 8 * k)));
    }
}

static inline void scale_min_k4(int j, const uint8_t *q, int *d, int *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static void dq_q4_k(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++, x += 144) {
        const float d = get_f16(x), min = get_f16(x + 2);
        const uint8_t *q = x + 16;
        for (int c = 0; c < 4; c++, q += 32) {
            for (int h = 0; h < 2; h++, y += 32) {
                int sc, m;
                scale_min_k4(2 * c + h, x + 4, &sc, &m);
                const __m256 d1 = _mm256_set1_ps(d * (float)sc), m1 = _mm256_set1_ps(min * (float)m);
                for (int k = 0; k < 4; k++)
                    _mm256_storeu_ps(y + 8 * k, _mm256_sub_ps(_mm256_mul_ps(d1, _mm256_cvtepi32_ps(nib8(q + 8 * k, 4 * h))), m1));
            }
        }
    }
}

static void dq_q5_k(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++, x += 176) {
        const float d = get_f16(x), min = get_f16(x + 2);
        const uint8_t *qh = x + 16, *ql = x + 48;
        for (int c = 0; c < 4; c++, ql += 32) {
            for (int h = 0; h < 2; h++, y += 32) {
                int sc, m;
                scale_min_k4(2 * c + h, x + 4, &sc, &m);
                const __m256 d1 = _mm256_set1_ps(d * (float)sc), m1 = _mm256_set1_ps(min * (float)m);
                const __m256i bit = _mm256_set1_epi32(1 << (2 * c + h));
                for (int k = 0; k < 4; k++) {
                    __m256i hb = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(qh + 8 * k)));
                    hb = _mm256_and_si256(_mm256_cmpeq_epi32(_mm256_and_si256(hb, bit), bit), _mm256_set1_epi32(16));
                    __m256i q = _mm256_add_epi32(nib8(ql + 8 * k, 4 * h), hb);
                    _mm256_storeu_ps(y + 8 * k, _mm256_sub_ps(_mm256_mul_ps(d1, _mm256_cvtepi32_ps(q)), m1));
                }
            }
        }
    }
}

static void dq_q6_k(const uint8_t *x, float *y, int64_t n) {
    const __m256i three = _mm256_set1_epi32(3), off = _mm256_set1_epi32(32);
    for (int64_t b = 0; b < n / 256; b++, x += 210) {
        const float d = get_f16(x + 208);
        const uint8_t *ql = x, *qh = x + 128;
        const int8_t *sc = (const int8_t *)(x + 192);
        for (int half = 0; half < 2; half++, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int k = 0; k < 4; k++) { /* l = 8k .. 8k+7 */
                const int is = k / 2;
                __m256i h = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(qh + 8 * k)));
                const __m256i q[4] = {
                    _mm256_or_si256(nib8(ql + 8 * k, 0), _mm256_slli_epi32(_mm256_and_si256(h, three), 4)),
                    _mm256_or_si256(nib8(ql + 32 + 8 * k, 0),
                                    _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 2), three), 4)),
                    _mm256_or_si256(nib8(ql + 8 * k, 4),
                                    _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 4), three), 4)),
                    _mm256_or_si256(nib8(ql + 32 + 8 * k, 4),
                                    _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 6), three), 4)),
                };
                for (int r = 0; r < 4; r++) {
                    const __m256 ds = _mm256_set1_ps(d * (float)sc[is + 2 * r]);
                    _mm256_storeu_ps(y + 32 * r + 8 * k,
                                     _mm256_mul_ps(ds, _mm256_cvtepi32_ps(_mm256_sub_epi32(q[r], off))));
                }
            }
        }
    }
}

/* ---- dispatch tables ---- */

int64_t nm_find_nonfinite_avx2(const float *x, int64_t n) {
    const __m256i expmask = _mm256_set1_epi32(0x7F800000);
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i any = _mm256_setzero_si256();
        for (int k = 0; k < 4; k++) {
            __m256i v = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + i + 8 * k)), expmask);
            any = _mm256_or_si256(any, _mm256_cmpeq_epi32(v, expmask));
        }
        if (!_mm256_testz_si256(any, any))
            break;
    }
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + i)), expmask);
        int m = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(v, expmask)));
        if (m)
            return i + __builtin_ctz((unsigned)m);
    }
    for (; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        if ((u & 0x7F800000u) == 0x7F800000u)
            return i;
    }
    return -1;
}

nm_qrow_fn nm_quants_avx2_quantizer(uint32_t type) {
    switch (type) {
    case GGML_TYPE_Q4_0: return q4_0_row;
    case GGML_TYPE_Q4_1: return q4_1_row;
    case GGML_TYPE_Q5_0: return q5_0_row;
    case GGML_TYPE_Q5_1: return q5_1_row;
    case GGML_TYPE_Q8_0: return q8_0_row;
    case GGML_TYPE_Q4_K: return q4_k_row;
    case GGML_TYPE_Q5_K: return q5_k_row;
    case GGML_TYPE_Q6_K: return q6_k_row;
    case GGML_TYPE_Q3_K: return nm_q3_k_row_avx2;
    case GGML_TYPE_IQ4_NL: return nm_iq4_nl_row_avx2;
    case GGML_TYPE_IQ4_XS: return nm_iq4_xs_row_avx2;
    default: return NULL;
    }
}

nm_dqrow_fn nm_quants_avx2_dequantizer(uint32_t type) {
    switch (type) {
    case GGML_TYPE_Q4_0: return dq_q4_0;
    case GGML_TYPE_Q4_1: return dq_q4_1;
    case GGML_TYPE_Q5_0: return dq_q5_0;
    case GGML_TYPE_Q5_1: return dq_q5_1;
    case GGML_TYPE_Q8_0: return dq_q8_0;
    case GGML_TYPE_Q8_1: return dq_q8_1;
    case GGML_TYPE_Q4_K: return dq_q4_k;
    case GGML_TYPE_Q5_K: return dq_q5_k;
    case GGML_TYPE_Q6_K: return dq_q6_k;
    case GGML_TYPE_Q8_K: return dq_q8_k;
    default: return NULL;
    }
}
