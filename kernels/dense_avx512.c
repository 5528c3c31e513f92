/* AVX-512 inner loops of the dense kernels (dense.h): a tile of 8 rows x 8 columns of running
 * sums, one register per row, one fused multiply-add per term, in the portable code's order; and
 * nm_daxpy_many, the same bits as the AVX2 sibling's (one fused multiply-add per term and element,
 * in the same order) over wider stretches of y. */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

void nm_dense_tile_avx512(int64_t n_t, int rows, const double *a, ptrdiff_t sat, ptrdiff_t sai, const double *b,
                          ptrdiff_t ldb, double acc[64]);
void nm_daxpy_many_avx512(int64_t n, int k, const double *s, const double *const *x, double *y);

void nm_dense_tile_avx512(int64_t n_t, int rows, const double *a, ptrdiff_t sat, ptrdiff_t sai, const double *b,
                          ptrdiff_t ldb, double acc[64]) {
    /* missing rows repeat row 0 (their sums are dropped); named accumulators stay in registers */
    const double *a0 = a, *a1 = rows > 1 ? a + sai : a, *a2 = rows > 2 ? a + 2 * sai : a,
                 *a3 = rows > 3 ? a + 3 * sai : a, *a4 = rows > 4 ? a + 4 * sai : a, *a5 = rows > 5 ? a + 5 * sai : a,
                 *a6 = rows > 6 ? a + 6 * sai : a, *a7 = rows > 7 ? a + 7 * sai : a;
    __m512d c0 = _mm512_setzero_pd(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
    for (int64_t t = 0; t < n_t; t++) {
        const __m512d bt = _mm512_loadu_pd(b + t * ldb);
        const ptrdiff_t o = t * sat;
        c0 = _mm512_fmadd_pd(_mm512_set1_pd(a0[o]), bt, c0);
        c1 = _mm512_fmadd_pd(_mm512_set1_pd(a1[o]), bt, c1);
        c2 = _mm512_fmadd_pd(_mm512_set1_pd(a2[o]), bt, c2);
        c3 = _mm512_fmadd_pd(_mm512_set1_pd(a3[o]), bt, c3);
        c4 = _mm512_fmadd_pd(_mm512_set1_pd(a4[o]), bt, c4);
        c5 = _mm512_fmadd_pd(_mm512_set1_pd(a5[o]), bt, c5);
        c6 = _mm512_fmadd_pd(_mm512_set1_pd(a6[o]), bt, c6);
        c7 = _mm512_fmadd_pd(_mm512_set1_pd(a7[o]), bt, c7);
    }
    const __m512d c[8] = {c0, c1, c2, c3, c4, c5, c6, c7};
    for (int i = 0; i < rows; i++)
        _mm512_storeu_pd(acc + 8 * i, c[i]);
}

/* 128 elements of y in sixteen registers while the k rows of x pass: each row is then read 1 KiB
 * at a time (16 cache lines in flight) instead of the AVX2 loop's 256 bytes, for the refinement's
 * scattered rows of H. With the products' prefetches (not measured apart) the calibrated
 * TinyLlama-shaped Q4_K_M went from 670.6 to 659.9 s. */
void nm_daxpy_many_avx512(int64_t n, int k, const double *s, const double *const *x, double *y) {
    int64_t i = 0;
    for (; i + 128 <= n; i += 128) {
        __m512d y0 = _mm512_loadu_pd(y + i), y1 = _mm512_loadu_pd(y + i + 8), y2 = _mm512_loadu_pd(y + i + 16),
                y3 = _mm512_loadu_pd(y + i + 24), y4 = _mm512_loadu_pd(y + i + 32), y5 = _mm512_loadu_pd(y + i + 40),
                y6 = _mm512_loadu_pd(y + i + 48), y7 = _mm512_loadu_pd(y + i + 56), y8 = _mm512_loadu_pd(y + i + 64),
                y9 = _mm512_loadu_pd(y + i + 72), y10 = _mm512_loadu_pd(y + i + 80),
                y11 = _mm512_loadu_pd(y + i + 88), y12 = _mm512_loadu_pd(y + i + 96),
                y13 = _mm512_loadu_pd(y + i + 104), y14 = _mm512_loadu_pd(y + i + 112),
                y15 = _mm512_loadu_pd(y + i + 120);
        for (int t = 0; t < k; t++) {
            const __m512d vs = _mm512_set1_pd(s[t]);
            const double *xt = x[t] + i;
            y0 = _mm512_fmadd_pd(vs, _mm512_loadu_pd(xt), y0);
            y1 = _mm512_fmadd_pd(vs, _mm512_loadu_pd(xt + 8), y1);
            y2 = _mm512_fmadd_pd(vs, _mm512_loadu_pd(xt + 16), y2);
            y3 = _mm512_fmadd_pd(vs, _mm512_loadu_pd(xt + 24), y3);
            y4 = _mm512_fmadd_pd(vs, _mm512_loadu_pd(xt + 32), y4);
            y5 = _mm512_fmadd_pd(vs, _mm512_loadu_pd(xt + 40), y5);
            y6 = _mm512_fmadd_pd(vs, _mm512_loadu_pd(xt + 48), y6);
            y7 = _mm512_fmadd_pd(vs, _mm512_loadu_pd(xt + 56), y7);
            y8 = _mm512_fmadd_pd(vs, _mm512_loadu_pd(xt + 64), y8);
            y9 = _mm512_fmadd_pd(vs, _mm512_loadu_pd(xt + 72), y9);
            y10 = _mm512_fmadd_pd(vs, _mm512_loadu_pd(xt + 80), y10);
            y11 = _mm512_fmadd_pd(vs, _mm512_loadu_pd(xt + 88), y11);
            y12 = _mm512_fmadd_pd(vs, _mm512_loadu_pd(xt + 96), y12);
            y13 = _mm512_fmadd_pd(vs, _mm512_loadu_pd(xt + 104), y13);
            y14 = _mm512_fmadd_pd(vs, _mm512_loadu_pd(xt + 112), y14);
            y15 = _mm512_fmadd_pd(vs, _mm512_loadu_pd(xt + 120), y15);
        }
        _mm512_storeu_pd(y + i, y0);
        _mm512_storeu_pd(y + i + 8, y1);
        _mm512_storeu_pd(y + i + 16, y2);
        _mm512_storeu_pd(y + i + 24, y3);
        _mm512_storeu_pd(y + i + 32, y4);
        _mm512_storeu_pd(y + i + 40, y5);
        _mm512_storeu_pd(y + i + 48, y6);
        _mm512_storeu_pd(y + i + 56, y7);
        _mm512_storeu_pd(y + i + 64, y8);
        _mm512_storeu_pd(y + i + 72, y9);
        _mm512_storeu_pd(y + i + 80, y10);
        _mm512_storeu_pd(y + i + 88, y11);
        _mm512_storeu_pd(y + i + 96, y12);
        _mm512_storeu_pd(y + i + 104, y13);
        _mm512_storeu_pd(y + i + 112, y14);
        _mm512_storeu_pd(y + i + 120, y15);
    }
    for (; i + 8 <= n; i += 8) {
        __m512d y0 = _mm512_loadu_pd(y + i);
        for (int t = 0; t < k; t++)
            y0 = _mm512_fmadd_pd(_mm512_set1_pd(s[t]), _mm512_loadu_pd(x[t] + i), y0);
        _mm512_storeu_pd(y + i, y0);
    }
    for (; i < n; i++) /* as nm_daxpy's own tail: unfused (-ffp-contract=off) */
        for (int t = 0; t < k; t++)
            y[i] += s[t] * x[t][i];
}
