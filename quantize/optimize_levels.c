/* The portable level kernels of optimize_levels.h, and the choice of implementation. */
#include "quantize/optimize_levels.h"

#include <math.h>
#include <stddef.h>

#include "common/cpu.h"

/* v clamped to [lo - 1, hi + 1] (NaN to lo - 1), rounded, clamped to [lo, hi]: the nearest level,
 * as maxps/minps/roundps compute it. */
static inline float level_of(float v, float lo, float hi) {
    v = v > lo - 1 ? v : lo - 1;
    v = v < hi + 1 ? v : hi + 1;
    const float r = qo_round(v);
    return r < lo ? lo : r > hi ? hi : r;
}

static double sym_levels_ref(const float *x, const float *w, int n, float d, int lo_i, int hi_i, int8_t *L) {
    double p[8] = {0};
    if (d == 0) {
        for (int i = 0; i < n; i++) {
            L[i] = 0;
            p[i % 8] += (double)w[i] * x[i] * x[i];
        }
        return qo_lane_sum(p);
    }
    const float id = 1.0f / d, lo = (float)lo_i, hi = (float)hi_i;
    for (int i = 0; i < n; i++) {
        float l = level_of(x[i] * id, lo, hi);
        float diff = x[i] - l * d;
        /* the reciprocal may round a level the wrong way near a midpoint: check the neighbour */
        float l2 = diff * d > 0 ? l + 1 : l - 1;
        l2 = l2 < lo ? lo : l2 > hi ? hi : l2;
        const float diff2 = x[i] - l2 * d;
        if (fabsf(diff2) < fabsf(diff)) {
            l = l2;
            diff = diff2;
        }
        L[i] = (int8_t)l;
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
    const float id = 1.0f / d, hi = (float)nmax;
    for (int i = 0; i < n; i++) {
        float l = level_of((x[i] - m) * id, 0, hi);
        float diff = x[i] - (l * d + m);
        float l2 = diff * d > 0 ? l + 1 : l - 1;
        l2 = l2 < 0 ? 0 : l2 > hi ? hi : l2;
        const float diff2 = x[i] - (l2 * d + m);
        if (fabsf(diff2) < fabsf(diff)) {
            l = l2;
            diff = diff2;
        }
        L[i] = (uint8_t)l;
        p[i % 8] += (double)w[i] * diff * diff;
    }
    return qo_lane_sum(p);
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

static const qo_levels ref = {sym_levels_ref, sym_errors_ref, asym_levels_ref, sym_sums_ref, asym_sums_ref};

const qo_levels *qo_levels_ref(void) { return &ref; }

#if !defined(__x86_64__)
const qo_levels *qo_levels_avx2(void) { return NULL; }
#endif

const qo_levels *qo_levels_get(void) {
    const qo_levels *simd = qo_levels_avx2();
    return simd ? simd : &ref;
}
