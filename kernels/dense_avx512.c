/* AVX-512 inner loop of the dense kernels (dense.h): a tile of 8 rows x 8 columns of running
 * sums, one register per row, one fused multiply-add per term, in the portable code's order. */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

void nm_dense_tile_avx512(int64_t n_t, int rows, const double *a, ptrdiff_t sat, ptrdiff_t sai, const double *b,
                          ptrdiff_t ldb, double acc[64]);

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
