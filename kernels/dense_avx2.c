/* AVX2 inner loops of the dense kernels (dense.h): a tile of 4 rows x 8 columns of running sums
 * in eight registers (two passes for 8 rows), one fused multiply-add per term, in the portable
 * code's order. */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

void nm_dense_tile_avx2(int64_t n_t, int rows, const double *a, ptrdiff_t sat, ptrdiff_t sai, const double *b,
                        ptrdiff_t ldb, double acc[64]);
void nm_daxpy_avx2(int64_t n, double s, const double *x, double *y);
void nm_daxpy_many_avx2(int64_t n, int k, const double *s, const double *const *x, double *y);
void nm_dsub_scaled_avx2(int64_t n, double s, const double *x, double *y);

/* Rows r0 .. r0+3 (missing ones repeat row r0, their sums dropped) into acc[8 r ...]. The
 * accumulators are named, not an array: gcc -O2 would keep an array of them in memory. */
static void tile4(int64_t n_t, int rows, const double *a, ptrdiff_t sat, ptrdiff_t sai, const double *b,
                  ptrdiff_t ldb, double *acc) {
    const double *a0 = a, *a1 = rows > 1 ? a + sai : a, *a2 = rows > 2 ? a + 2 * sai : a,
                 *a3 = rows > 3 ? a + 3 * sai : a;
    __m256d c00 = _mm256_setzero_pd(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
    for (int64_t t = 0; t < n_t; t++) {
        const double *bt = b + t * ldb;
        const ptrdiff_t o = t * sat;
        const __m256d b0 = _mm256_loadu_pd(bt), b1 = _mm256_loadu_pd(bt + 4);
        __m256d x = _mm256_broadcast_sd(a0 + o);
        c00 = _mm256_fmadd_pd(x, b0, c00);
        c01 = _mm256_fmadd_pd(x, b1, c01);
        x = _mm256_broadcast_sd(a1 + o);
        c10 = _mm256_fmadd_pd(x, b0, c10);
        c11 = _mm256_fmadd_pd(x, b1, c11);
        x = _mm256_broadcast_sd(a2 + o);
        c20 = _mm256_fmadd_pd(x, b0, c20);
        c21 = _mm256_fmadd_pd(x, b1, c21);
        x = _mm256_broadcast_sd(a3 + o);
        c30 = _mm256_fmadd_pd(x, b0, c30);
        c31 = _mm256_fmadd_pd(x, b1, c31);
    }
    _mm256_storeu_pd(acc, c00);
    _mm256_storeu_pd(acc + 4, c01);
    if (rows > 1) {
        _mm256_storeu_pd(acc + 8, c10);
        _mm256_storeu_pd(acc + 12, c11);
    }
    if (rows > 2) {
        _mm256_storeu_pd(acc + 16, c20);
        _mm256_storeu_pd(acc + 20, c21);
    }
    if (rows > 3) {
        _mm256_storeu_pd(acc + 24, c30);
        _mm256_storeu_pd(acc + 28, c31);
    }
}

void nm_dense_tile_avx2(int64_t n_t, int rows, const double *a, ptrdiff_t sat, ptrdiff_t sai, const double *b,
                        ptrdiff_t ldb, double acc[64]) {
    tile4(n_t, rows < 4 ? rows : 4, a, sat, sai, b, ldb, acc);
    if (rows > 4)
        tile4(n_t, rows - 4, a + 4 * sai, sat, sai, b, ldb, acc + 32);
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

/* y += Σ_t s[t] x[t], t in order: 32 elements of y in eight registers while every term is added
 * (eight chains, so the adds' latency is hidden), then 8 at a time, then one at a time unfused,
 * as nm_daxpy_avx2 treats each element. */
void nm_daxpy_many_avx2(int64_t n, int k, const double *s, const double *const *x, double *y) {
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256d y0 = _mm256_loadu_pd(y + i), y1 = _mm256_loadu_pd(y + i + 4), y2 = _mm256_loadu_pd(y + i + 8),
                y3 = _mm256_loadu_pd(y + i + 12), y4 = _mm256_loadu_pd(y + i + 16),
                y5 = _mm256_loadu_pd(y + i + 20), y6 = _mm256_loadu_pd(y + i + 24),
                y7 = _mm256_loadu_pd(y + i + 28);
        for (int t = 0; t < k; t++) {
            const __m256d vs = _mm256_set1_pd(s[t]);
            const double *xt = x[t] + i;
            y0 = _mm256_fmadd_pd(vs, _mm256_loadu_pd(xt), y0);
            y1 = _mm256_fmadd_pd(vs, _mm256_loadu_pd(xt + 4), y1);
            y2 = _mm256_fmadd_pd(vs, _mm256_loadu_pd(xt + 8), y2);
            y3 = _mm256_fmadd_pd(vs, _mm256_loadu_pd(xt + 12), y3);
            y4 = _mm256_fmadd_pd(vs, _mm256_loadu_pd(xt + 16), y4);
            y5 = _mm256_fmadd_pd(vs, _mm256_loadu_pd(xt + 20), y5);
            y6 = _mm256_fmadd_pd(vs, _mm256_loadu_pd(xt + 24), y6);
            y7 = _mm256_fmadd_pd(vs, _mm256_loadu_pd(xt + 28), y7);
        }
        _mm256_storeu_pd(y + i, y0);
        _mm256_storeu_pd(y + i + 4, y1);
        _mm256_storeu_pd(y + i + 8, y2);
        _mm256_storeu_pd(y + i + 12, y3);
        _mm256_storeu_pd(y + i + 16, y4);
        _mm256_storeu_pd(y + i + 20, y5);
        _mm256_storeu_pd(y + i + 24, y6);
        _mm256_storeu_pd(y + i + 28, y7);
    }
    for (; i + 8 <= n; i += 8) {
        __m256d y0 = _mm256_loadu_pd(y + i), y1 = _mm256_loadu_pd(y + i + 4);
        for (int t = 0; t < k; t++) {
            const __m256d vs = _mm256_set1_pd(s[t]);
            y0 = _mm256_fmadd_pd(vs, _mm256_loadu_pd(x[t] + i), y0);
            y1 = _mm256_fmadd_pd(vs, _mm256_loadu_pd(x[t] + i + 4), y1);
        }
        _mm256_storeu_pd(y + i, y0);
        _mm256_storeu_pd(y + i + 4, y1);
    }
    for (; i < n; i++)
        for (int t = 0; t < k; t++)
            y[i] += s[t] * x[t][i];
}

void nm_dsub_scaled_avx2(int64_t n, double s, const double *x, double *y) {
    const __m256d vs = _mm256_set1_pd(s);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        _mm256_storeu_pd(y + i, _mm256_sub_pd(_mm256_loadu_pd(y + i), _mm256_mul_pd(vs, _mm256_loadu_pd(x + i))));
    for (; i < n; i++)
        y[i] -= s * x[i];
}
