/* AVX2 level kernels of optimize_levels.h: the same bits as the portable ones (optimize_levels.c),
 * eight elements per step. Exactness: built with -ffp-contract=off and every product and sum
 * written as its own instruction in the portable code's order; the rounding is roundps's ties to
 * even, which the portable code's add-1.5*2^23 trick equals in the clamped range; the double sums
 * keep lanes 0-3 and 4-7 of each step in two registers, which is the portable lane order. */
#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/cpu.h"
#include "quantize/optimize_levels.h"

/* ((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7)) of lanes a = l0..l3, b = l4..l7 */
static inline double lane_sum(__m256d a, __m256d b) {
    const __m256d q = _mm256_add_pd(a, b);
    const __m128d r = _mm_add_pd(_mm256_castpd256_pd128(q), _mm256_extractf128_pd(q, 1));
    return _mm_cvtsd_f64(_mm_add_sd(r, _mm_unpackhi_pd(r, r)));
}

/* elements 0-3 and 4-7 of v as doubles */
static inline void halves_pd(__m256 v, __m256d h[2]) {
    h[0] = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    h[1] = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
}

/* acc_lo/acc_hi += w * diff * diff, in double */
static inline void add_wsq(__m256 w, __m256 diff, __m256d *lo, __m256d *hi) {
    __m256d wd[2], dd[2];
    halves_pd(w, wd);
    halves_pd(diff, dd);
    *lo = _mm256_add_pd(*lo, _mm256_mul_pd(_mm256_mul_pd(wd[0], dd[0]), dd[0]));
    *hi = _mm256_add_pd(*hi, _mm256_mul_pd(_mm256_mul_pd(wd[1], dd[1]), dd[1]));
}

static inline __m256 clamp(__m256 v, __m256 lo, __m256 hi) { return _mm256_min_ps(_mm256_max_ps(v, lo), hi); }
static inline __m256 vabs(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

/* 8 small integer-valued floats to 8 int32 */
static inline __m128i to_i16x8(__m256 l) {
    const __m256i li = _mm256_cvtps_epi32(l);
    return _mm_packs_epi32(_mm256_castsi256_si128(li), _mm256_extracti128_si256(li, 1));
}

/* A step's constants: levels in [lo, hi], quotients clamped to [lo - 1, hi + 1] first. */
typedef struct steps {
    __m256 lo, hi, lo1, hi1, one, zero;
} steps;

static inline steps make_steps(int lo, int hi) {
    return (steps){_mm256_set1_ps((float)lo),     _mm256_set1_ps((float)hi), _mm256_set1_ps((float)lo - 1),
                   _mm256_set1_ps((float)hi + 1), _mm256_set1_ps(1.0f),      _mm256_setzero_ps()};
}

/* Eight values' levels: the nearest to (x - m) / d, or the neighbour when that is closer for the
 * stored d; *diff = x - (l d + m). offset false: no m (x / d, x - l d), as the portable code. */
static inline __attribute__((always_inline)) __m256 level_step(__m256 xv, __m256 vd, __m256 vid, __m256 vm,
                                                               bool offset, const steps *c, __m256 *diff) {
    __m256 v = _mm256_mul_ps(offset ? _mm256_sub_ps(xv, vm) : xv, vid);
    v = _mm256_min_ps(_mm256_max_ps(v, c->lo1), c->hi1); /* NaN: lo - 1, as the portable code */
    const __m256 l = clamp(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), c->lo, c->hi);
    const __m256 ld = _mm256_mul_ps(l, vd);
    const __m256 d1 = _mm256_sub_ps(xv, offset ? _mm256_add_ps(ld, vm) : ld);
    const __m256 up = _mm256_cmp_ps(_mm256_mul_ps(d1, vd), c->zero, _CMP_GT_OQ);
    const __m256 l2 = clamp(_mm256_blendv_ps(_mm256_sub_ps(l, c->one), _mm256_add_ps(l, c->one), up), c->lo, c->hi);
    const __m256 l2d = _mm256_mul_ps(l2, vd);
    const __m256 d2 = _mm256_sub_ps(xv, offset ? _mm256_add_ps(l2d, vm) : l2d);
    const __m256 take = _mm256_cmp_ps(vabs(d2), vabs(d1), _CMP_LT_OQ);
    *diff = _mm256_blendv_ps(d1, d2, take);
    return _mm256_blendv_ps(l, l2, take);
}

static double sym_levels_avx2(const float *x, const float *w, int n, float d, int lo_i, int hi_i, int8_t *L) {
    if (d == 0)
        return qo_levels_ref()->sym_levels(x, w, n, d, lo_i, hi_i, L);
    const steps c = make_steps(lo_i, hi_i);
    const __m256 vd = _mm256_set1_ps(d), vid = _mm256_set1_ps(1.0f / d);
    __m256d acc_lo = _mm256_setzero_pd(), acc_hi = _mm256_setzero_pd();
    for (int i = 0; i < n; i += 8) {
        __m256 diff;
        const __m256 l = level_step(_mm256_loadu_ps(x + i), vd, vid, c.zero, false, &c, &diff);
        const __m128i l16 = to_i16x8(l);
        _mm_storel_epi64((__m128i *)(L + i), _mm_packs_epi16(l16, l16));
        add_wsq(_mm256_loadu_ps(w + i), diff, &acc_lo, &acc_hi);
    }
    return lane_sum(acc_lo, acc_hi);
}

/* The errors sym_levels_avx2 (m NULL) or asym_levels_avx2 (offsets m, levels in [0, hi]) return
 * for nd scales: the block's values and weights stay in registers and no levels are stored. */
static inline __attribute__((always_inline)) void errors_avx2(const float *x, const float *w, int n, int lo_i,
                                                              int hi_i, const float *d, const float *m, int nd,
                                                              double *e) {
    __m256 xv[4];
    __m256d wd[4][2];
    const int nv = n / 8;
    for (int j = 0; j < nv; j++) {
        xv[j] = _mm256_loadu_ps(x + 8 * j);
        halves_pd(_mm256_loadu_ps(w + 8 * j), wd[j]);
    }
    const steps c = make_steps(lo_i, hi_i);
    for (int k = 0; k < nd; k++) {
        if (d[k] == 0) {
            uint8_t L[32];
            e[k] = m ? qo_levels_ref()->asym_levels(x, w, n, d[k], m[k], hi_i, L)
                     : qo_levels_ref()->sym_levels(x, w, n, d[k], lo_i, hi_i, (int8_t *)L);
            continue;
        }
        const __m256 vd = _mm256_set1_ps(d[k]), vid = _mm256_set1_ps(1.0f / d[k]);
        const __m256 vm = m ? _mm256_set1_ps(m[k]) : c.zero;
        __m256d acc_lo = _mm256_setzero_pd(), acc_hi = _mm256_setzero_pd();
        for (int j = 0; j < nv; j++) {
            __m256 diff;
            level_step(xv[j], vd, vid, vm, m != NULL, &c, &diff);
            __m256d dd[2];
            halves_pd(diff, dd);
            acc_lo = _mm256_add_pd(acc_lo, _mm256_mul_pd(_mm256_mul_pd(wd[j][0], dd[0]), dd[0]));
            acc_hi = _mm256_add_pd(acc_hi, _mm256_mul_pd(_mm256_mul_pd(wd[j][1], dd[1]), dd[1]));
        }
        e[k] = lane_sum(acc_lo, acc_hi);
    }
}

static void sym_errors_avx2(const float *x, const float *w, int n, int lo_i, int hi_i, const float *d, int nd,
                            double *e) {
    errors_avx2(x, w, n, lo_i, hi_i, d, NULL, nd, e);
}

static double asym_levels_avx2(const float *x, const float *w, int n, float d, float m, int nmax, uint8_t *L) {
    if (d == 0)
        return qo_levels_ref()->asym_levels(x, w, n, d, m, nmax, L);
    const steps c = make_steps(0, nmax);
    const __m256 vd = _mm256_set1_ps(d), vid = _mm256_set1_ps(1.0f / d), vm = _mm256_set1_ps(m);
    __m256d acc_lo = _mm256_setzero_pd(), acc_hi = _mm256_setzero_pd();
    for (int i = 0; i < n; i += 8) {
        __m256 diff;
        const __m256 l = level_step(_mm256_loadu_ps(x + i), vd, vid, vm, true, &c, &diff);
        const __m128i l16 = to_i16x8(l);
        _mm_storel_epi64((__m128i *)(L + i), _mm_packus_epi16(l16, l16));
        add_wsq(_mm256_loadu_ps(w + i), diff, &acc_lo, &acc_hi);
    }
    return lane_sum(acc_lo, acc_hi);
}

static void asym_errors_avx2(const float *x, const float *w, int n, int nmax, const float *d, const float *m, int nd,
                             double *e) {
    errors_avx2(x, w, n, 0, nmax, d, m, nd, e);
}

/* 8 levels widened to two vectors of 4 doubles */
static inline void levels_pd(__m128i l32lo, __m128i l32hi, __m256d *a, __m256d *b) {
    *a = _mm256_cvtepi32_pd(l32lo);
    *b = _mm256_cvtepi32_pd(l32hi);
}

static void sym_sums_avx2(const float *x, const float *w, int n, const int8_t *L, double s[2]) {
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, b0 = a0, b1 = a0;
    for (int i = 0; i < n; i += 8) {
        const __m256i l32 = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(L + i)));
        __m256d ll, lh;
        levels_pd(_mm256_castsi256_si128(l32), _mm256_extracti128_si256(l32, 1), &ll, &lh);
        const __m256 wv = _mm256_loadu_ps(w + i), xv = _mm256_loadu_ps(x + i);
        __m256d wd[2], xd[2];
        halves_pd(wv, wd);
        halves_pd(xv, xd);
        const __m256d wll = _mm256_mul_pd(wd[0], ll), wlh = _mm256_mul_pd(wd[1], lh);
        a0 = _mm256_add_pd(a0, _mm256_mul_pd(wll, xd[0]));
        a1 = _mm256_add_pd(a1, _mm256_mul_pd(wlh, xd[1]));
        b0 = _mm256_add_pd(b0, _mm256_mul_pd(wll, ll));
        b1 = _mm256_add_pd(b1, _mm256_mul_pd(wlh, lh));
    }
    s[0] = lane_sum(a0, a1);
    s[1] = lane_sum(b0, b1);
}

static void asym_sums_avx2(const float *x, const float *w, int n, const uint8_t *L, double s[5]) {
    __m256d p[5][2];
    for (int k = 0; k < 5; k++)
        p[k][0] = p[k][1] = _mm256_setzero_pd();
    for (int i = 0; i < n; i += 8) {
        const __m256i l32 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(L + i)));
        __m256d l[2];
        levels_pd(_mm256_castsi256_si128(l32), _mm256_extracti128_si256(l32, 1), &l[0], &l[1]);
        const __m256 wv = _mm256_loadu_ps(w + i), xv = _mm256_loadu_ps(x + i);
        __m256d wd[2], xd[2];
        halves_pd(wv, wd);
        halves_pd(xv, xd);
        for (int h = 0; h < 2; h++) {
            const __m256d wl = _mm256_mul_pd(wd[h], l[h]);
            p[0][h] = _mm256_add_pd(p[0][h], wd[h]);
            p[1][h] = _mm256_add_pd(p[1][h], _mm256_mul_pd(wd[h], xd[h]));
            p[2][h] = _mm256_add_pd(p[2][h], wl);
            p[3][h] = _mm256_add_pd(p[3][h], _mm256_mul_pd(wl, l[h]));
            p[4][h] = _mm256_add_pd(p[4][h], _mm256_mul_pd(wl, xd[h]));
        }
    }
    for (int k = 0; k < 5; k++)
        s[k] = lane_sum(p[k][0], p[k][1]);
}

/* asym_levels_avx2 and asym_sums_avx2's last three sums in one pass: the levels are at hand as
 * floats (small integers, so exact as doubles). */
static double asym_levels_sums_avx2(const float *x, const float *w, int n, float d, float m, int nmax, uint8_t *L,
                                    double s[3]) {
    if (d == 0) {
        const double e = qo_levels_ref()->asym_levels(x, w, n, d, m, nmax, L);
        double t[5];
        asym_sums_avx2(x, w, n, L, t);
        for (int k = 0; k < 3; k++)
            s[k] = t[k + 2];
        return e;
    }
    const steps c = make_steps(0, nmax);
    const __m256 vd = _mm256_set1_ps(d), vid = _mm256_set1_ps(1.0f / d), vm = _mm256_set1_ps(m);
    __m256d e_lo = _mm256_setzero_pd(), e_hi = e_lo, p[3][2];
    for (int k = 0; k < 3; k++)
        p[k][0] = p[k][1] = _mm256_setzero_pd();
    for (int i = 0; i < n; i += 8) {
        __m256 diff;
        const __m256 xv = _mm256_loadu_ps(x + i), wv = _mm256_loadu_ps(w + i);
        const __m256 l = level_step(xv, vd, vid, vm, true, &c, &diff);
        const __m128i l16 = to_i16x8(l);
        _mm_storel_epi64((__m128i *)(L + i), _mm_packus_epi16(l16, l16));
        add_wsq(wv, diff, &e_lo, &e_hi);
        __m256d wd[2], xd[2], ld[2];
        halves_pd(wv, wd);
        halves_pd(xv, xd);
        halves_pd(l, ld);
        for (int h = 0; h < 2; h++) { /* as asym_sums_avx2 */
            const __m256d wl = _mm256_mul_pd(wd[h], ld[h]);
            p[0][h] = _mm256_add_pd(p[0][h], wl);
            p[1][h] = _mm256_add_pd(p[1][h], _mm256_mul_pd(wl, ld[h]));
            p[2][h] = _mm256_add_pd(p[2][h], _mm256_mul_pd(wl, xd[h]));
        }
    }
    for (int k = 0; k < 3; k++)
        s[k] = lane_sum(p[k][0], p[k][1]);
    return lane_sum(e_lo, e_hi);
}

/* v[k] for eight indices 0..15 */
static inline __m256 nl_lookup(__m256 vlo, __m256 vhi, __m256i k) {
    const __m256 lo = _mm256_permutevar8x32_ps(vlo, k), hi = _mm256_permutevar8x32_ps(vhi, k);
    return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_cmpgt_epi32(k, _mm256_set1_epi32(7))));
}

static double nl_levels_avx2(const float *x, const float *w, int n, float d, const float v[16], uint8_t *L) {
    if (d == 0)
        return qo_levels_ref()->nl_levels(x, w, n, d, v, L);
    __m256 mid[15];
    for (int k = 0; k < 15; k++)
        mid[k] = _mm256_set1_ps(0.5f * (v[k] + v[k + 1]));
    const __m256 vlo = _mm256_loadu_ps(v), vhi = _mm256_loadu_ps(v + 8);
    const __m256 vd = _mm256_set1_ps(d), vid = _mm256_set1_ps(1.0f / d), zero = _mm256_setzero_ps();
    const __m256i one = _mm256_set1_epi32(1), top = _mm256_set1_epi32(15), none = _mm256_setzero_si256();
    __m256d acc_lo = _mm256_setzero_pd(), acc_hi = _mm256_setzero_pd();
    for (int i = 0; i < n; i += 8) {
        const __m256 xv = _mm256_loadu_ps(x + i), t = _mm256_mul_ps(xv, vid);
        __m256i k = _mm256_setzero_si256();
        for (int j = 0; j < 15; j++) /* each midpoint below t adds one (its mask is -1) */
            k = _mm256_sub_epi32(k, _mm256_castps_si256(_mm256_cmp_ps(t, mid[j], _CMP_GT_OQ)));
        const __m256 d1 = _mm256_sub_ps(xv, _mm256_mul_ps(vd, nl_lookup(vlo, vhi, k)));
        const __m256i up = _mm256_castps_si256(_mm256_cmp_ps(_mm256_mul_ps(d1, vd), zero, _CMP_GT_OQ));
        __m256i k2 = _mm256_blendv_epi8(_mm256_sub_epi32(k, one), _mm256_add_epi32(k, one), up);
        k2 = _mm256_min_epi32(_mm256_max_epi32(k2, none), top);
        const __m256 d2 = _mm256_sub_ps(xv, _mm256_mul_ps(vd, nl_lookup(vlo, vhi, k2)));
        const __m256 take = _mm256_cmp_ps(vabs(d2), vabs(d1), _CMP_LT_OQ);
        const __m256i kk = _mm256_blendv_epi8(k, k2, _mm256_castps_si256(take));
        const __m128i k16 = _mm_packs_epi32(_mm256_castsi256_si128(kk), _mm256_extracti128_si256(kk, 1));
        _mm_storel_epi64((__m128i *)(L + i), _mm_packus_epi16(k16, k16));
        add_wsq(_mm256_loadu_ps(w + i), _mm256_blendv_ps(d1, d2, take), &acc_lo, &acc_hi);
    }
    return lane_sum(acc_lo, acc_hi);
}

static const qo_levels avx2 = {sym_levels_avx2, sym_errors_avx2, asym_levels_avx2, asym_errors_avx2,
                               asym_levels_sums_avx2, sym_sums_avx2, asym_sums_avx2, nl_levels_avx2};

const qo_levels *qo_levels_avx2(void) {
    const nm_cpu_features *c = nm_cpu();
    return c->avx2 && c->fma ? &avx2 : (const qo_levels *)0;
}
