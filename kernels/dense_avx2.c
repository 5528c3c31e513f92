/* AVX2 inner loops of the dense kernels (dense.h): a 4 x 8 tile of running sums in eight
 * registers, one fused multiply-add per term, in the portable code's order. */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

void nm_dense_tile_avx2(int64_t n_t, int rows, const double *a, ptrdiff_t sat, ptrdiff_t sai, const double *b,
                        ptrdiff_t ldb, double acc[32]);
void nm_daxpy_avx2(int64_t n, double s, const double *x, double *y);

/* rows is a constant where this is inlined: the unused rows' registers drop out. */
static inline __attribute__((always_inline)) void tile_rows(int64_t n_t, int rows, const double *a, ptrdiff_t sat,
                                                            ptrdiff_t sai, const double *b, ptrdiff_t ldb,
                                                            double acc[32]) {
    __m256d c[4][2];
    for (int i = 0; i < 4; i++)
        c[i][0] = c[i][1] = _mm256_setzero_pd();
    for (int64_t t = 0; t < n_t; t++) {
        const double *bt = b + t * ldb, *at = a + t * sat;
        const __m256d b0 = _mm256_loadu_pd(bt), b1 = _mm256_loadu_pd(bt + 4);
        for (int i = 0; i < rows; i++) {
            const __m256d ai = _mm256_broadcast_sd(at + i * sai);
            c[i][0] = _mm256_fmadd_pd(ai, b0, c[i][0]);
            c[i][1] = _mm256_fmadd_pd(ai, b1, c[i][1]);
        }
    }
    for (int i = 0; i < 4; i++) {
        _mm256_storeu_pd(acc + i * 8, c[i][0]);
        _mm256_storeu_pd(acc + i * 8 + 4, c[i][1]);
    }
}

void nm_dense_tile_avx2(int64_t n_t, int rows, const double *a, ptrdiff_t sat, ptrdiff_t sai, const double *b,
                        ptrdiff_t ldb, double acc[32]) {
    switch (rows) {
    case 4: tile_rows(n_t, 4, a, sat, sai, b, ldb, acc); break;
    case 3: tile_rows(n_t, 3, a, sat, sai, b, ldb, acc); break;
    case 2: tile_rows(n_t, 2, a, sat, sai, b, ldb, acc); break;
    default: tile_rows(n_t, 1, a, sat, sai, b, ldb, acc); break;
    }
}

void nm_daxpy_avx2(int64_t n, double s, const double *x, double *y) {
    const __m256d vs = _mm256_set1_pd(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_pd(y + i, _mm256_fmadd_pd(vs, _mm256_loadu_pd(x + i), _mm256_loadu_pd(y + i)));
        _mm256_storeu_pd(y + i + 4, _mm256_fmadd_pd(vs, _mm256_loadu_pd(x + i + 4), _mm256_loadu_pd(y + i + 4)));
    }
    for (; i < n; i++)
        y[i] += s * x[i];
}
