/* The portable level kernels of optimize_levels.h, and the choice of implementation. */
#include "quantize/optimize_levels.h"

#include <stdatomic.h>

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "common/cpu.h"

/* v clamped to [lo - 1, hi + 1] (NaN to lo - 1), rounded, clamped to [lo, hi]: the nearest level,
 * as maxps/minps/roundps compute it. */
static inline float level_of(float v, float lo, float hi) {
    v = v > lo - 1 ? v : lo - 1;
    v = v < hi + 1 ? v : hi + 1;
    const float r = qo_round(v);
    return r < lo ? lo : r > hi ? hi : r;
}

/* The level of x: the nearest to (x - m) / d, or the neighbour when that is closer for the stored
 * d (the reciprocal may round a level the wrong way near a midpoint); *diff = x - (l d + m).
 * offset false: no m (x / d, x - l d). */
static inline float level_diff(float x, float d, float id, float m, bool offset, float lo, float hi, float *diff) {
    float l = level_of((offset ? x - m : x) * id, lo, hi);
    float d1 = x - (offset ? l * d + m : l * d);
    float l2 = d1 * d > 0 ? l + 1 : l - 1;
    l2 = l2 < lo ? lo : l2 > hi ? hi : l2;
    const float d2 = x - (offset ? l2 * d + m : l2 * d);
    if (fabsf(d2) < fabsf(d1)) {
        l = l2;
        d1 = d2;
    }
    *diff = d1;
    return l;
}

/* No scale: every level 0, every value 0 (the symmetric and IQ4_NL kernels' d == 0). */
static double zero_scale(const float *x, const float *w, int n, void *L) {
    double p[8] = {0};
    memset(L, 0, (size_t)n);
    for (int i = 0; i < n; i++)
        p[i % 8] += (double)w[i] * x[i] * x[i];
    return qo_lane_sum(p);
}

static double sym_levels_ref(const float *x, const float *w, int n, float d, int lo, int hi, int8_t *L) {
    if (d == 0)
        return zero_scale(x, w, n, L);
    double p[8] = {0};
    const float id = 1.0f / d;
    for (int i = 0; i < n; i++) {
        float diff;
        L[i] = (int8_t)level_diff(x[i], d, id, 0, false, (float)lo, (float)hi, &diff);
        p[i % 8] += (double)w[i] * diff * diff;
    }
    return qo_lane_sum(p);
}

static void sym_errors_ref(const float *x, const float *w, int n, int lo, int hi, const float *d, int nd, double *e) {
    int8_t L[32];
    for (int k = 0; k < nd; k++)
        e[k] = sym_levels_ref(x, w, n, d[k], lo, hi, L);
}

static double asym_levels_ref(const float *x, const float *w, int n, float d, float m, int nmax, uint8_t *L) {
    double p[8] = {0};
    if (d == 0) {
        for (int i = 0; i < n; i++) {
            L[i] = 0;
            const float diff = x[i] - m;
            p[i % 8] += (double)w[i] * diff * diff;
        }
        return qo_lane_sum(p);
    }
    const float id = 1.0f / d;
    for (int i = 0; i < n; i++) {
        float diff;
        L[i] = (uint8_t)level_diff(x[i], d, id, m, true, 0, (float)nmax, &diff);
        p[i % 8] += (double)w[i] * diff * diff;
    }
    return qo_lane_sum(p);
}

static void asym_errors_ref(const float *x, const float *w, int n, int nmax, const float *d, const float *m, int nd,
                            double *e) {
    uint8_t L[32];
    for (int k = 0; k < nd; k++)
        e[k] = asym_levels_ref(x, w, n, d[k], m[k], nmax, L);
}

static void sym_sums_ref(const float *x, const float *w, int n, const int8_t *L, double s[2]) {
    double a[8] = {0}, b[8] = {0};
    for (int i = 0; i < n; i++) {
        const double wl = (double)w[i] * L[i];
        a[i % 8] += wl * x[i];
        b[i % 8] += wl * L[i];
    }
    s[0] = qo_lane_sum(a);
    s[1] = qo_lane_sum(b);
}

static void asym_sums_ref(const float *x, const float *w, int n, const uint8_t *L, double s[5]) {
    double p[5][8] = {{0}};
    for (int i = 0; i < n; i++) {
        const double wi = w[i], wl = wi * L[i];
        p[0][i % 8] += wi;
        p[1][i % 8] += wi * x[i];
        p[2][i % 8] += wl;
        p[3][i % 8] += wl * L[i];
        p[4][i % 8] += wl * x[i];
    }
    for (int k = 0; k < 5; k++)
        s[k] = qo_lane_sum(p[k]);
}

static double asym_levels_sums_ref(const float *x, const float *w, int n, float d, float m, int nmax, uint8_t *L,
                                   double s[3]) {
    if (d == 0) {
        const double e = asym_levels_ref(x, w, n, d, m, nmax, L);
        double t[5];
        asym_sums_ref(x, w, n, L, t);
        memcpy(s, t + 2, 3 * sizeof *s);
        return e;
    }
    double p[8] = {0}, q[3][8] = {{0}};
    const float id = 1.0f / d;
    for (int i = 0; i < n; i++) {
        float diff;
        const float l = level_diff(x[i], d, id, m, true, 0, (float)nmax, &diff);
        L[i] = (uint8_t)l;
        p[i % 8] += (double)w[i] * diff * diff;
        const double wl = (double)w[i] * l; /* as asym_sums_ref */
        q[0][i % 8] += wl;
        q[1][i % 8] += wl * l;
        q[2][i % 8] += wl * x[i];
    }
    for (int k = 0; k < 3; k++)
        s[k] = qo_lane_sum(q[k]);
    return qo_lane_sum(p);
}

static double nl_levels_ref(const float *x, const float *w, int n, float d, const float v[16], uint8_t *L) {
    if (d == 0)
        return zero_scale(x, w, n, L);
    double p[8] = {0};
    float mid[15];
    for (int k = 0; k < 15; k++)
        mid[k] = 0.5f * (v[k] + v[k + 1]);
    const float id = 1.0f / d;
    for (int i = 0; i < n; i++) {
        const float t = x[i] * id;
        int k = 0;
        for (int j = 0; j < 15; j++)
            k += t > mid[j];
        float d1 = x[i] - d * v[k];
        int k2 = d1 * d > 0 ? k + 1 : k - 1;
        k2 = k2 < 0 ? 0 : k2 > 15 ? 15 : k2;
        const float d2 = x[i] - d * v[k2];
        if (fabsf(d2) < fabsf(d1)) {
            k = k2;
            d1 = d2;
        }
        L[i] = (uint8_t)k;
        p[i % 8] += (double)w[i] * d1 * d1;
    }
    return qo_lane_sum(p);
}

static const qo_levels ref = {sym_levels_ref, sym_errors_ref, asym_levels_ref, asym_errors_ref,
                              asym_levels_sums_ref, sym_sums_ref, asym_sums_ref, nl_levels_ref};

const qo_levels *qo_levels_ref(void) { return &ref; }

#if !defined(__x86_64__)
const qo_levels *qo_levels_avx2(void) { return NULL; }
const qo_levels *qo_levels_avx512(void) { return NULL; }
#endif

const qo_levels *qo_levels_get(void) {
    /* once: the searches ask for every block, and asking the CPU table costs ~1% of their time */
    static _Atomic(const qo_levels *) chosen;
    const qo_levels *k = atomic_load_explicit(&chosen, memory_order_relaxed);
    if (!k) {
        const qo_levels *simd = qo_levels_avx512();
        if (!simd)
            simd = qo_levels_avx2();
        k = simd ? simd : &ref;
        atomic_store_explicit(&chosen, k, memory_order_relaxed);
    }
    return k;
}
