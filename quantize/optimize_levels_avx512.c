/* AVX-512 level kernels of optimize_levels.h: the same bits as the portable ones
 * (optimize_levels.c) and the AVX2 ones, sixteen elements per step. The float steps are the
 * AVX2 kernels' instruction for instruction at twice the width (-ffp-contract=off; roundscale is
 * roundps); the double sums keep the portable code's eight lanes in one register, and a step
 * adds its elements 0-7 into them before its elements 8-15, which is the portable index order
 * (element i into lane i % 8). Blocks whose length is not a multiple of 16 go to the AVX2
 * kernels. */
#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/cpu.h"
#include "quantize/optimize_levels.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* ((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7)) of the eight lanes */
ALWAYS_INLINE double lane_sum(__m512d p) {
    const __m256d q = _mm256_add_pd(_mm512_castpd512_pd256(p), _mm512_extractf64x4_pd(p, 1));
    const __m128d r = _mm_add_pd(_mm256_castpd256_pd128(q), _mm256_extractf128_pd(q, 1));
    return _mm_cvtsd_f64(_mm_add_sd(r, _mm_unpackhi_pd(r, r)));
}

ALWAYS_INLINE __m512d lo_pd(__m512 v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
ALWAYS_INLINE __m512d hi_pd(__m512 v) {
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

/* acc += w * diff * diff in double, elements 0-7 then 8-15 */
ALWAYS_INLINE __m512d add_wsq(__m512d acc, __m512 w, __m512 diff) {
    const __m512d dl = lo_pd(diff), dh = hi_pd(diff);
    acc = _mm512_add_pd(acc, _mm512_mul_pd(_mm512_mul_pd(lo_pd(w), dl), dl));
    return _mm512_add_pd(acc, _mm512_mul_pd(_mm512_mul_pd(hi_pd(w), dh), dh));
}

ALWAYS_INLINE __m512 clamp(__m512 v, __m512 lo, __m512 hi) { return _mm512_min_ps(_mm512_max_ps(v, lo), hi); }
ALWAYS_INLINE __m512 vabs(__m512 v) { return _mm512_castsi512_ps(_mm512_andnot_si512(
    _mm512_castps_si512(_mm512_set1_ps(-0.0f)), _mm512_castps_si512(v))); }

typedef struct steps {
    __m512 lo, hi, lo1, hi1, one, zero;
} steps;

ALWAYS_INLINE steps make_steps(int lo, int hi) {
    return (steps){_mm512_set1_ps((float)lo),     _mm512_set1_ps((float)hi), _mm512_set1_ps((float)lo - 1),
                   _mm512_set1_ps((float)hi + 1), _mm512_set1_ps(1.0f),      _mm512_setzero_ps()};
}

/* Sixteen values' levels, as level_step in optimize_levels_avx2.c. */
ALWAYS_INLINE __m512 level_step(__m512 xv, __m512 vd, __m512 vid, __m512 vm, bool offset, const steps *c,
                                __m512 *diff) {
    __m512 v = _mm512_mul_ps(offset ? _mm512_sub_ps(xv, vm) : xv, vid);
    v = _mm512_min_ps(_mm512_max_ps(v, c->lo1), c->hi1); /* NaN: lo - 1, as the portable code */
    const __m512 l = clamp(_mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), c->lo, c->hi);
    const __m512 ld = _mm512_mul_ps(l, vd);
    const __m512 d1 = _mm512_sub_ps(xv, offset ? _mm512_add_ps(ld, vm) : ld);
    const __mmask16 up = _mm512_cmp_ps_mask(_mm512_mul_ps(d1, vd), c->zero, _CMP_GT_OQ);
    const __m512 l2 = clamp(_mm512_mask_blend_ps(up, _mm512_sub_ps(l, c->one), _mm512_add_ps(l, c->one)), c->lo, c->hi);
    const __m512 l2d = _mm512_mul_ps(l2, vd);
    const __m512 d2 = _mm512_sub_ps(xv, offset ? _mm512_add_ps(l2d, vm) : l2d);
    const __mmask16 take = _mm512_cmp_ps_mask(vabs(d2), vabs(d1), _CMP_LT_OQ);
    *diff = _mm512_mask_blend_ps(take, d1, d2);
    return _mm512_mask_blend_ps(take, l, l2);
}

/* sixteen integer-valued floats in [-128, 255] to bytes (two's complement or unsigned) */
ALWAYS_INLINE void store_levels(void *L, __m512 l) {
    _mm_storeu_si128((__m128i *)L, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(l)));
}

static double sym_levels_avx512(const float *x, const float *w, int n, float d, int lo_i, int hi_i, int8_t *L) {
    if (d == 0 || n % 16)
        return qo_levels_avx2()->sym_levels(x, w, n, d, lo_i, hi_i, L);
    const steps c = make_steps(lo_i, hi_i);
    const __m512 vd = _mm512_set1_ps(d), vid = _mm512_set1_ps(1.0f / d);
    __m512d acc = _mm512_setzero_pd();
    for (int i = 0; i < n; i += 16) {
        __m512 diff;
        store_levels(L + i, level_step(_mm512_loadu_ps(x + i), vd, vid, c.zero, false, &c, &diff));
        acc = add_wsq(acc, _mm512_loadu_ps(w + i), diff);
    }
    return lane_sum(acc);
}

/* As errors_avx2 in optimize_levels_avx2.c: sym_levels_avx512's (m NULL) or asym_levels_avx512's
 * (offsets m, levels in [0, hi]) errors for nd scales, the block in registers. */
ALWAYS_INLINE void errors_avx512(const float *x, const float *w, int n, int lo_i, int hi_i, const float *d,
                                 const float *m, int nd, double *e) {
    const int nv = n / 16;
    __m512 xv[2] = {_mm512_loadu_ps(x), _mm512_setzero_ps()}, wv[2] = {_mm512_loadu_ps(w), _mm512_setzero_ps()};
    if (nv == 2) {
        xv[1] = _mm512_loadu_ps(x + 16);
        wv[1] = _mm512_loadu_ps(w + 16);
    }
    const steps c = make_steps(lo_i, hi_i);
    for (int k = 0; k < nd; k++) {
        if (d[k] == 0) {
            uint8_t L[32];
            e[k] = m ? qo_levels_ref()->asym_levels(x, w, n, d[k], m[k], hi_i, L)
                     : qo_levels_ref()->sym_levels(x, w, n, d[k], lo_i, hi_i, (int8_t *)L);
            continue;
        }
        const __m512 vd = _mm512_set1_ps(d[k]), vid = _mm512_set1_ps(1.0f / d[k]);
        const __m512 vm = m ? _mm512_set1_ps(m[k]) : c.zero;
        __m512d acc = _mm512_setzero_pd();
        for (int j = 0; j < nv; j++) {
            __m512 diff;
            level_step(xv[j], vd, vid, vm, m != NULL, &c, &diff);
            acc = add_wsq(acc, wv[j], diff);
        }
        e[k] = lane_sum(acc);
    }
}

static void sym_errors_avx512(const float *x, const float *w, int n, int lo_i, int hi_i, const float *d, int nd,
                              double *e) {
    if (n % 16 || n > 32)
        qo_levels_avx2()->sym_errors(x, w, n, lo_i, hi_i, d, nd, e);
    else
        errors_avx512(x, w, n, lo_i, hi_i, d, NULL, nd, e);
}

static double asym_levels_avx512(const float *x, const float *w, int n, float d, float m, int nmax, uint8_t *L) {
    if (d == 0 || n % 16)
        return qo_levels_avx2()->asym_levels(x, w, n, d, m, nmax, L);
    const steps c = make_steps(0, nmax);
    const __m512 vd = _mm512_set1_ps(d), vid = _mm512_set1_ps(1.0f / d), vm = _mm512_set1_ps(m);
    __m512d acc = _mm512_setzero_pd();
    for (int i = 0; i < n; i += 16) {
        __m512 diff;
        store_levels(L + i, level_step(_mm512_loadu_ps(x + i), vd, vid, vm, true, &c, &diff));
        acc = add_wsq(acc, _mm512_loadu_ps(w + i), diff);
    }
    return lane_sum(acc);
}

/* asym_levels_avx512 and asym_sums_avx512's last three sums in one pass (the levels as floats are
 * small integers, exact as doubles). */
static double asym_levels_sums_avx512(const float *x, const float *w, int n, float d, float m, int nmax, uint8_t *L,
                                      double s[3]) {
    if (d == 0 || n % 16)
        return qo_levels_avx2()->asym_levels_sums(x, w, n, d, m, nmax, L, s);
    const steps c = make_steps(0, nmax);
    const __m512 vd = _mm512_set1_ps(d), vid = _mm512_set1_ps(1.0f / d), vm = _mm512_set1_ps(m);
    __m512d acc = _mm512_setzero_pd(), p[3] = {acc, acc, acc};
    for (int i = 0; i < n; i += 16) {
        __m512 diff;
        const __m512 xv = _mm512_loadu_ps(x + i), wv = _mm512_loadu_ps(w + i);
        const __m512 l = level_step(xv, vd, vid, vm, true, &c, &diff);
        store_levels(L + i, l);
        acc = add_wsq(acc, wv, diff);
        const __m512d wd[2] = {lo_pd(wv), hi_pd(wv)}, xd[2] = {lo_pd(xv), hi_pd(xv)}, ld[2] = {lo_pd(l), hi_pd(l)};
        for (int h = 0; h < 2; h++) { /* as asym_sums_avx512 */
            const __m512d wl = _mm512_mul_pd(wd[h], ld[h]);
            p[0] = _mm512_add_pd(p[0], wl);
            p[1] = _mm512_add_pd(p[1], _mm512_mul_pd(wl, ld[h]));
            p[2] = _mm512_add_pd(p[2], _mm512_mul_pd(wl, xd[h]));
        }
    }
    for (int k = 0; k < 3; k++)
        s[k] = lane_sum(p[k]);
    return lane_sum(acc);
}

static void asym_errors_avx512(const float *x, const float *w, int n, int nmax, const float *d, const float *m,
                               int nd, double *e) {
    if (n % 16 || n > 32)
        qo_levels_avx2()->asym_errors(x, w, n, nmax, d, m, nd, e);
    else
        errors_avx512(x, w, n, 0, nmax, d, m, nd, e);
}

/* sixteen levels (int32) to two vectors of eight doubles */
ALWAYS_INLINE void levels_pd(__m512i l32, __m512d l[2]) {
    l[0] = _mm512_cvtepi32_pd(_mm512_castsi512_si256(l32));
    l[1] = _mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(l32, 1));
}

static void sym_sums_avx512(const float *x, const float *w, int n, const int8_t *L, double s[2]) {
    if (n % 16) {
        qo_levels_avx2()->sym_sums(x, w, n, L, s);
        return;
    }
    __m512d a = _mm512_setzero_pd(), b = a;
    for (int i = 0; i < n; i += 16) {
        __m512d l[2];
        levels_pd(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(L + i))), l);
        const __m512 wv = _mm512_loadu_ps(w + i), xv = _mm512_loadu_ps(x + i);
        const __m512d wd[2] = {lo_pd(wv), hi_pd(wv)}, xd[2] = {lo_pd(xv), hi_pd(xv)};
        for (int h = 0; h < 2; h++) {
            const __m512d wl = _mm512_mul_pd(wd[h], l[h]);
            a = _mm512_add_pd(a, _mm512_mul_pd(wl, xd[h]));
            b = _mm512_add_pd(b, _mm512_mul_pd(wl, l[h]));
        }
    }
    s[0] = lane_sum(a);
    s[1] = lane_sum(b);
}

static void asym_sums_avx512(const float *x, const float *w, int n, const uint8_t *L, double s[5]) {
    if (n % 16) {
        qo_levels_avx2()->asym_sums(x, w, n, L, s);
        return;
    }
    __m512d p[5];
    for (int k = 0; k < 5; k++)
        p[k] = _mm512_setzero_pd();
    for (int i = 0; i < n; i += 16) {
        __m512d l[2];
        levels_pd(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(L + i))), l);
        const __m512 wv = _mm512_loadu_ps(w + i), xv = _mm512_loadu_ps(x + i);
        const __m512d wd[2] = {lo_pd(wv), hi_pd(wv)}, xd[2] = {lo_pd(xv), hi_pd(xv)};
        for (int h = 0; h < 2; h++) {
            const __m512d wl = _mm512_mul_pd(wd[h], l[h]);
            p[0] = _mm512_add_pd(p[0], wd[h]);
            p[1] = _mm512_add_pd(p[1], _mm512_mul_pd(wd[h], xd[h]));
            p[2] = _mm512_add_pd(p[2], wl);
            p[3] = _mm512_add_pd(p[3], _mm512_mul_pd(wl, l[h]));
            p[4] = _mm512_add_pd(p[4], _mm512_mul_pd(wl, xd[h]));
        }
    }
    for (int k = 0; k < 5; k++)
        s[k] = lane_sum(p[k]);
}

static double nl_levels_avx512(const float *x, const float *w, int n, float d, const float v[16], uint8_t *L) {
    if (d == 0 || n % 16)
        return qo_levels_avx2()->nl_levels(x, w, n, d, v, L);
    __m512 mid[15];
    for (int k = 0; k < 15; k++)
        mid[k] = _mm512_set1_ps(0.5f * (v[k] + v[k + 1]));
    const __m512 table = _mm512_loadu_ps(v);
    const __m512 vd = _mm512_set1_ps(d), vid = _mm512_set1_ps(1.0f / d), zero = _mm512_setzero_ps();
    const __m512i one = _mm512_set1_epi32(1), top = _mm512_set1_epi32(15), none = _mm512_setzero_si512();
    __m512d acc = _mm512_setzero_pd();
    for (int i = 0; i < n; i += 16) {
        const __m512 xv = _mm512_loadu_ps(x + i), t = _mm512_mul_ps(xv, vid);
        __m512i k = _mm512_setzero_si512();
        for (int j = 0; j < 15; j++) /* one for each midpoint below t */
            k = _mm512_mask_add_epi32(k, _mm512_cmp_ps_mask(t, mid[j], _CMP_GT_OQ), k, one);
        const __m512 d1 = _mm512_sub_ps(xv, _mm512_mul_ps(vd, _mm512_permutexvar_ps(k, table)));
        const __mmask16 up = _mm512_cmp_ps_mask(_mm512_mul_ps(d1, vd), zero, _CMP_GT_OQ);
        __m512i k2 = _mm512_mask_blend_epi32(up, _mm512_sub_epi32(k, one), _mm512_add_epi32(k, one));
        k2 = _mm512_min_epi32(_mm512_max_epi32(k2, none), top);
        const __m512 d2 = _mm512_sub_ps(xv, _mm512_mul_ps(vd, _mm512_permutexvar_ps(k2, table)));
        const __mmask16 take = _mm512_cmp_ps_mask(vabs(d2), vabs(d1), _CMP_LT_OQ);
        _mm_storeu_si128((__m128i *)(L + i), _mm512_cvtepi32_epi8(_mm512_mask_blend_epi32(take, k, k2)));
        acc = add_wsq(acc, _mm512_loadu_ps(w + i), _mm512_mask_blend_ps(take, d1, d2));
    }
    return lane_sum(acc);
}

static const qo_levels avx512 = {sym_levels_avx512, sym_errors_avx512, asym_levels_avx512, asym_errors_avx512,
                                 asym_levels_sums_avx512, sym_sums_avx512, asym_sums_avx512, nl_levels_avx512};

const qo_levels *qo_levels_avx512(void) {
    const nm_cpu_features *c = nm_cpu();
    const bool all = c->avx512f && c->avx512bw && c->avx512vl && c->avx512dq && c->avx512vnni; /* the build's flags */
    return all && qo_levels_avx2() ? &avx512 : (const qo_levels *)0;
}
