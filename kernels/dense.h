/* Dense double-precision linear algebra for nomoat-quantize --calibration's error feedback
 * (quantize/optimize.c) and the calibration pass that feeds it (verify/imatrix.c,
 * verify/jacobian.c): the inputs' second-moment matrix H = Σ x xᵀ, its Cholesky factor, the
 * products the error feedback makes with that factor, and those of layer 0's backward pass.
 * Matrices are row-major with a leading dimension (ld: the distance between rows, in elements).
 *
 * Every output element is summed in fixed blocks of terms, each block one chain of multiply-adds
 * in index order started from zero and then added to (or subtracted from) the output: which
 * thread computes it never changes the result.
 * Every path (portable, AVX2, AVX-512) fuses the same multiply-adds, so they give the same bits:
 * plain --optimize runs token_embd's and layer 0's error feedback through these routines (and
 * quantize/dataless.c's products), and its files are the same on every machine (a calibrated
 * file still depends on the machine's evaluator pass). */
#ifndef NOMOAT_KERNELS_DENSE_H
#define NOMOAT_KERNELS_DENSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/parallel.h"

/* c[a][b] += sign · Σ_t x[t][a] · x[t][b] for a <= b < m (the upper triangle; entries below it
 * are left as they are), t < n_t, x as floats (_f32) or doubles. Tokens are taken in blocks of
 * 128, each block's sums added to c on their own. pool may be NULL (this thread only). Returns -1
 * when out of memory (c untouched). */
int nm_syrk_upper_f32(double *c, int64_t ldc, const float *x, int64_t ldx, int64_t n_t, int64_t m, double sign,
                      nm_pool *pool);
int nm_syrk_upper_f64(double *c, int64_t ldc, const double *x, int64_t ldx, int64_t n_t, int64_t m, double sign,
                      nm_pool *pool);

/* c[r][j] += Σ_{k < K} a[r][k] · b[k][j] for r < n_r, j < m, with K = k_len, or, when upper_b,
 * K = min(k_len, (j rounded down to a multiple of 8) + 8): b is upper triangular (zero below
 * its diagonal) and the terms known to be zero are skipped. Terms in blocks of 256 k. Single-
 * threaded. */
void nm_gemm_acc(double *c, int64_t ldc, const double *a, int64_t lda, const double *b, int64_t ldb, int64_t n_r,
                 int64_t k_len, int64_t m, bool upper_b);

/* c[r][j] += Σ_{j <= k < m} a[r][k] · b[j][k] for r < n_r, j < m: the product with bᵀ, b upper
 * triangular (m x m; its entries below the diagonal must be zero, as they may be read). Terms in
 * blocks of 256 k, the block holding j starting at j rounded down to a multiple of 8 (the last
 * m % 8 columns: one chain from j). Single-threaded. */
void nm_gemm_acc_upper_t(double *c, int64_t ldc, const double *a, int64_t lda, const double *b, int64_t ldb,
                         int64_t n_r, int64_t m);

/* y[i] += s · x[i] for i < n. */
void nm_daxpy(int64_t n, double s, const double *x, double *y);

/* y[i] += Σ_{t < k} s[t] · x[t][i] for i < n: the same bits as nm_daxpy(n, s[t], x[t], y) for
 * t = 0, 1, .., k - 1 in turn, with each element of y loaded and stored once, not k times. */
void nm_daxpy_many(int64_t n, int k, const double *s, const double *const *x, double *y);

/* y[i] -= s · x[i] for i < n, the product rounded before the subtraction on every path: the same
 * bits as that loop in portable C (compiled without contraction), on any CPU. */
void nm_dsub_scaled(int64_t n, double s, const double *x, double *y);

/* The upper Cholesky factor of the symmetric positive definite a (n x n, upper triangle read):
 * a = Rᵀ R, R written over the upper triangle (the lower one is left as it is). Blocked, the
 * trailing updates on pool (may be NULL). Returns 0; 1 when a is not positive definite (a is
 * then partly overwritten); -1 when out of memory. */
int nm_cholesky_upper(double *a, int64_t n, nm_pool *pool);

/* The code paths, best last: tests run each. NOMOAT_NO_SIMD / NOMOAT_NO_AVX512 (common/cpu.h)
 * limit them too. */
typedef enum nm_dense_isa { NM_DENSE_PORTABLE, NM_DENSE_AVX2, NM_DENSE_BEST } nm_dense_isa;
void nm_dense_limit(nm_dense_isa cap);

#endif
