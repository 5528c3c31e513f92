/* The inner loops of nomoat-quantize --optimize's block searches (optimize.c): the levels a
 * block's values take for one trial scale (and offset), with the weighted squared error, and the
 * weighted sums a least-squares refit of the scale needs. They run millions of times per tensor,
 * so they have AVX2 and AVX-512 siblings (optimize_levels_avx2.c, _avx512.c) that give the same
 * bits as the portable code here: both add each sum in eight lanes (element i into lane i % 8, in index order) and
 * combine the lanes as ((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7)), so a file written with
 * --optimize is the same on every machine. n is a multiple of 8. */
#ifndef NOMOAT_QUANTIZE_OPTIMIZE_LEVELS_H
#define NOMOAT_QUANTIZE_OPTIMIZE_LEVELS_H

#include <stdint.h>

/* x ~ d * L with L in [lo, hi], each L the nearest level to x / d (ties to even) or its
 * neighbour when that one is closer for the stored d; fills L, returns sum w (x - d L)^2.
 * d == 0: every L is 0. */
typedef double (*qo_sym_levels_fn)(const float *x, const float *w, int n, float d, int lo, int hi, int8_t *L);
/* x ~ d * L + m with L in [0, nmax], chosen the same way; fills L, returns sum w (x - d L - m)^2. */
typedef double (*qo_asym_levels_fn)(const float *x, const float *w, int n, float d, float m, int nmax,
                                    uint8_t *L);
/* s[0] = sum w x L, s[1] = sum w L^2 (the symmetric refit d = s[0] / s[1]). */
typedef void (*qo_sym_sums_fn)(const float *x, const float *w, int n, const int8_t *L, double s[2]);
/* s = {sum w, sum w x, sum w L, sum w L^2, sum w L x} (the refit of d and m). */
typedef void (*qo_asym_sums_fn)(const float *x, const float *w, int n, const uint8_t *L, double s[5]);

/* e[k] = what sym_levels returns for scale d[k], k < nd, for one block of n <= 32 values. */
typedef void (*qo_sym_errors_fn)(const float *x, const float *w, int n, int lo, int hi, const float *d, int nd,
                                 double *e);

/* asym_levels, and s = asym_sums' s[2], s[3], s[4] (sum w L, sum w L^2, sum w L x) for the levels
 * it fills, with the same bits. */
typedef double (*qo_asym_levels_sums_fn)(const float *x, const float *w, int n, float d, float m, int nmax,
                                         uint8_t *L, double s[3]);
/* e[k] = what asym_levels returns for d[k], m[k], k < nd, for one block of n <= 32 values. */
typedef void (*qo_asym_errors_fn)(const float *x, const float *w, int n, int nmax, const float *d, const float *m,
                                  int nd, double *e);

/* x ~ d * v[L] with v 16 ascending levels (IQ4_NL's): each L is the number of midpoints between
 * levels below x / d, or its neighbour when that one is closer for the stored d; fills L,
 * returns sum w (x - d v[L])^2. d == 0: every L is 0 (and the value 0). */
typedef double (*qo_nl_levels_fn)(const float *x, const float *w, int n, float d, const float v[16], uint8_t *L);

typedef struct qo_levels {
    qo_sym_levels_fn sym_levels;
    qo_sym_errors_fn sym_errors;
    qo_asym_levels_fn asym_levels;
    qo_asym_errors_fn asym_errors;
    qo_asym_levels_sums_fn asym_levels_sums;
    qo_sym_sums_fn sym_sums;
    qo_asym_sums_fn asym_sums;
    qo_nl_levels_fn nl_levels;
} qo_levels;

/* The kernels for this CPU (NOMOAT_NO_SIMD=1: the portable ones). */
const qo_levels *qo_levels_get(void);
/* The portable kernels, and the AVX2 and AVX-512 ones (NULL where the CPU or build has none):
 * for tests. */
const qo_levels *qo_levels_ref(void);
const qo_levels *qo_levels_avx2(void);
const qo_levels *qo_levels_avx512(void);

/* Private to the two implementations. */
static inline double qo_lane_sum(const double p[8]) {
    return ((p[0] + p[4]) + (p[2] + p[6])) + ((p[1] + p[5]) + (p[3] + p[7]));
}
/* Round to nearest, ties to even, for |v| < 2^22: the add-1.5*2^23 trick (as vroundps does). */
static inline float qo_round(float v) { return (v + 12582912.f) - 12582912.f; }

#endif
