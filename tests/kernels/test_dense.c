/* The dense kernels (kernels/dense.h) against plain triple loops in long double: the symmetric
 * rank-k update from floats and doubles (sizes not a multiple of the tiles, token counts across
 * the 128-token blocks, both signs, the lower triangle untouched), the general product with and
 * without the upper-triangular skip, daxpy (one term; several at once, which must give the same
 * bits as one at a time; the unfused subtraction, which must give plain C's bits on every path),
 * and the Cholesky factor (Rᵀ R rebuilds the matrix; indefinite matrices are refused). Each with
 * the portable code, the AVX2 code and the best the CPU has, on one thread and on a pool: every
 * path and thread count must give the portable code's bits (plain --optimize's files depend on it). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kernels/dense.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static double drand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0 - 0.5;
}

static void check_close(const double *got, const long double *want, int64_t n, double tol, const char *what) {
    for (int64_t i = 0; i < n; i++)
        if (!(fabsl((long double)got[i] - want[i]) <= tol * (1 + fabsl(want[i]))))
            fail_msg("%s: element %lld is %.17g, want %.17Lg", what, (long long)i, got[i], want[i]);
}

static void test_syrk(void **state) {
    (void)state;
    const int64_t ms[] = {1, 5, 8, 13, 24, 33, 100};
    const int64_t ts[] = {1, 7, 128, 129, 300};
    nm_pool *pool = nm_pool_create(3);
    assert_non_null(pool);
    for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
        for (size_t ti = 0; ti < sizeof ts / sizeof ts[0]; ti++)
            for (int f32 = 0; f32 < 2; f32++) {
                const int64_t m = ms[mi], nt = ts[ti], ldx = m + 3, ldc = m + 1;
                const size_t bytes = (size_t)(m * ldc) * sizeof(double);
                float *xf = malloc((size_t)(nt * ldx) * sizeof *xf);
                double *xd = malloc((size_t)(nt * ldx) * sizeof *xd), *start = malloc(bytes);
                double *c0 = malloc(bytes), *c1 = malloc(bytes), *portable = malloc(bytes);
                long double *want = malloc((size_t)(m * ldc) * sizeof *want);
                for (int64_t i = 0; i < nt * ldx; i++)
                    xd[i] = xf[i] = (float)drand();
                for (int64_t i = 0; i < m * ldc; i++)
                    want[i] = start[i] = drand();
                const double sign = f32 ? 1.0 : -1.0;
                for (int64_t a = 0; a < m; a++)
                    for (int64_t b = a; b < m; b++) {
                        long double s = 0;
                        for (int64_t t = 0; t < nt; t++)
                            s += (long double)xd[t * ldx + a] * xd[t * ldx + b];
                        want[a * ldc + b] += sign * s;
                    }
                for (int isa = NM_DENSE_PORTABLE; isa <= NM_DENSE_BEST; isa++) {
                    nm_dense_limit((nm_dense_isa)isa);
                    memcpy(c0, start, bytes);
                    memcpy(c1, start, bytes);
                    if (f32) {
                        assert_int_equal(nm_syrk_upper_f32(c0, ldc, xf, ldx, nt, m, sign, NULL), 0);
                        assert_int_equal(nm_syrk_upper_f32(c1, ldc, xf, ldx, nt, m, sign, pool), 0);
                    } else {
                        assert_int_equal(nm_syrk_upper_f64(c0, ldc, xd, ldx, nt, m, sign, NULL), 0);
                        assert_int_equal(nm_syrk_upper_f64(c1, ldc, xd, ldx, nt, m, sign, pool), 0);
                    }
                    check_close(c0, want, m * ldc, 1e-13, "syrk");
                    assert_memory_equal(c0, c1, bytes); /* the pool changes nothing */
                    if (isa == NM_DENSE_PORTABLE)
                        memcpy(portable, c0, bytes);
                    else /* AVX2, AVX-512: the portable code's bits */
                        assert_memory_equal(c0, portable, bytes);
                }
                free(xf); free(xd); free(start); free(c0); free(c1); free(portable); free(want);
            }
    nm_dense_limit(NM_DENSE_BEST);
    nm_pool_destroy(pool);
}

/* One product: c += a b (b k x m, zero below its diagonal when upper) or, transposed,
 * c += a bᵀ with b m x m upper triangular (nm_gemm_acc_upper_t; k = m). */
typedef struct gemm_case {
    int64_t r, k, m, lda, ldb, ldc;
    bool upper, transposed;
} gemm_case;

/* Random a, b and c, the sums in long double, then the product on each code path from the same
 * c: each within 1e-13 of them, and every path bit for bit the portable one. */
static void run_gemm_case(const gemm_case *g, const char *what) {
    const int64_t r = g->r, k = g->k, m = g->m, lda = g->lda, ldb = g->ldb, ldc = g->ldc;
    const int64_t b_rows = g->transposed ? m : k;
    const size_t bytes = (size_t)(r * ldc) * sizeof(double);
    double *a = malloc((size_t)(r * lda) * sizeof *a), *b = malloc((size_t)(b_rows * ldb) * sizeof *b);
    double *c0 = malloc(bytes), *c[NM_DENSE_BEST + 1];
    long double *want = malloc((size_t)(r * ldc) * sizeof *want);
    for (int64_t i = 0; i < r * lda; i++)
        a[i] = drand();
    for (int64_t i = 0; i < b_rows; i++)
        for (int64_t j = 0; j < ldb; j++)
            b[i * ldb + j] = (g->upper || g->transposed) && i > j ? 0 : drand();
    for (int64_t i = 0; i < r * ldc; i++)
        want[i] = c0[i] = drand();
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < m; j++) {
            long double s = 0;
            for (int64_t t = g->transposed ? j : 0; t < k; t++)
                s += (long double)a[i * lda + t] * (g->transposed ? b[j * ldb + t] : b[t * ldb + j]);
            want[i * ldc + j] += s;
        }
    for (int isa = NM_DENSE_PORTABLE; isa <= NM_DENSE_BEST; isa++) {
        nm_dense_limit((nm_dense_isa)isa);
        c[isa] = malloc(bytes);
        memcpy(c[isa], c0, bytes);
        if (g->transposed)
            nm_gemm_acc_upper_t(c[isa], ldc, a, lda, b, ldb, r, m);
        else
            nm_gemm_acc(c[isa], ldc, a, lda, b, ldb, r, k, m, g->upper);
        check_close(c[isa], want, r * ldc, 1e-13, what);
    }
    for (int isa = NM_DENSE_AVX2; isa <= NM_DENSE_BEST; isa++)
        if (memcmp(c[NM_DENSE_PORTABLE], c[isa], bytes) != 0)
            fail_msg("%s (r %lld, k %lld, m %lld): path %d's bits differ from the portable code's", what, (long long)r,
                     (long long)k, (long long)m, isa);
    for (int isa = NM_DENSE_PORTABLE; isa <= NM_DENSE_BEST; isa++)
        free(c[isa]);
    nm_dense_limit(NM_DENSE_BEST);
    free(a); free(b); free(c0); free(want);
}

/* The product with an upper triangular bᵀ, across the 256-term blocks and a partial last eight. */
static void test_gemm_upper_t(void **state) {
    (void)state;
    const int64_t rs[] = {1, 5, 8, 19};
    const int64_t ms[] = {1, 7, 8, 23, 40, 264, 301};
    for (size_t ri = 0; ri < sizeof rs / sizeof rs[0]; ri++)
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
            const int64_t m = ms[mi];
            const gemm_case g = {.r = rs[ri], .k = m, .m = m, .lda = m + 3, .ldb = m + 8, .ldc = m + 1, .transposed = true};
            run_gemm_case(&g, "gemm (upper bᵀ)");
        }
}

static void test_gemm(void **state) {
    (void)state;
    const int64_t rs[] = {1, 3, 4, 6, 11, 16, 21};
    const int64_t ks[] = {1, 8, 20, 64, 300};
    const int64_t mcols[] = {1, 8, 15, 24, 40};
    for (size_t ri = 0; ri < sizeof rs / sizeof rs[0]; ri++)
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
            for (size_t mi = 0; mi < sizeof mcols / sizeof mcols[0]; mi++)
                for (int upper = 0; upper < 2; upper++) {
                    const int64_t k = ks[ki], m = mcols[mi];
                    const gemm_case g = {.r = rs[ri], .k = k, .m = m, .lda = k + 2, .ldb = m + 5, .ldc = m + 1,
                                         .upper = upper};
                    run_gemm_case(&g, upper ? "gemm (upper b)" : "gemm");
                }
    for (int isa = NM_DENSE_PORTABLE; isa <= NM_DENSE_BEST; isa++) {
        nm_dense_limit((nm_dense_isa)isa);
        double x[13], y[13];
        long double w[13];
        for (int i = 0; i < 13; i++) {
            x[i] = drand();
            w[i] = y[i] = drand();
            w[i] += -0.25L * x[i];
        }
        nm_daxpy(13, -0.25, x, y);
        check_close(y, w, 13, 1e-15, "daxpy");
    }
    nm_dense_limit(NM_DENSE_BEST);
}

static void test_daxpy_many(void **state) {
    (void)state;
    const int64_t ns[] = {0, 1, 7, 8, 31, 32, 33, 75, 128, 139, 200, 256};
    enum { K = 6, N = 256 };
    static double x[K][N], y0[N], y1[N], y2[N], y3[N];
    const double *xs[K] = {x[0], x[1], x[2], x[3], x[4], x[5]};
    double s[K];
    for (int isa = NM_DENSE_PORTABLE; isa <= NM_DENSE_BEST; isa++) {
        nm_dense_limit((nm_dense_isa)isa);
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
            for (int k = 0; k <= K; k++) {
                const int64_t n = ns[ni];
                for (int t = 0; t < K; t++) {
                    s[t] = t == 2 ? 0.0 : drand() * 3; /* a zero term changes nothing */
                    for (int64_t i = 0; i < N; i++)
                        x[t][i] = drand();
                }
                for (int64_t i = 0; i < N; i++)
                    y0[i] = y1[i] = y2[i] = y3[i] = drand();
                for (int t = 0; t < k; t++)
                    nm_daxpy(n, s[t], xs[t], y0);
                nm_dense_limit(NM_DENSE_PORTABLE); /* every path: the portable code's bits */
                for (int t = 0; t < k; t++)
                    nm_daxpy(n, s[t], xs[t], y3);
                nm_dense_limit((nm_dense_isa)isa);
                if (memcmp(y0, y3, sizeof y0) != 0)
                    fail_msg("isa %d: daxpy(n %lld) differs from the portable code's", isa, (long long)n);
                nm_daxpy_many(n, k, s, xs, y1);
                if (memcmp(y0, y1, sizeof y0) != 0)
                    fail_msg("isa %d: daxpy_many(n %lld, k %d) differs from k daxpys", isa, (long long)n, k);
                long double want[N];
                for (int64_t i = 0; i < N; i++) { /* the unfused subtraction: plain C's bits */
                    const double p = s[0] * x[0][i];
                    want[i] = i < n ? y2[i] - p : y2[i];
                }
                nm_dsub_scaled(n, s[0], x[0], y2);
                for (int64_t i = 0; i < N; i++)
                    if (y2[i] != (double)want[i])
                        fail_msg("isa %d: dsub_scaled(n %lld) element %lld is %.17g, want %.17Lg", isa, (long long)n,
                                 (long long)i, y2[i], want[i]);
            }
    }
    nm_dense_limit(NM_DENSE_BEST);
}

static void test_cholesky(void **state) {
    (void)state;
    const int64_t ns[] = {1, 2, 7, 64, 129, 300};
    nm_pool *pool = nm_pool_create(2);
    assert_non_null(pool);
    for (int isa = NM_DENSE_PORTABLE; isa <= NM_DENSE_BEST; isa++) {
        nm_dense_limit((nm_dense_isa)isa);
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            const int64_t n = ns[ni], nt = n + 20;
            double *x = malloc((size_t)(nt * n) * sizeof *x), *h = calloc((size_t)(n * n), sizeof *h);
            double *r0 = malloc((size_t)(n * n) * sizeof *r0), *r1 = malloc((size_t)(n * n) * sizeof *r1);
            double *h2 = calloc((size_t)(n * n), sizeof *h2);
            for (int64_t i = 0; i < nt * n; i++)
                x[i] = drand();
            assert_int_equal(nm_syrk_upper_f64(h, n, x, n, nt, n, 1.0, NULL), 0);
            memcpy(r0, h, (size_t)(n * n) * sizeof *h);
            memcpy(r1, h, (size_t)(n * n) * sizeof *h);
            assert_int_equal(nm_cholesky_upper(r0, n, NULL), 0);
            assert_int_equal(nm_cholesky_upper(r1, n, pool), 0);
            assert_memory_equal(r0, r1, (size_t)(n * n) * sizeof *r0);
            nm_dense_limit(NM_DENSE_PORTABLE); /* every path: the portable code's bits, H and R */
            assert_int_equal(nm_syrk_upper_f64(h2, n, x, n, nt, n, 1.0, NULL), 0);
            assert_memory_equal(h, h2, (size_t)(n * n) * sizeof *h);
            assert_int_equal(nm_cholesky_upper(h2, n, NULL), 0);
            assert_memory_equal(r0, h2, (size_t)(n * n) * sizeof *r0);
            nm_dense_limit((nm_dense_isa)isa);
            for (int64_t a = 0; a < n; a++) /* (Rᵀ R)[a][b] = Σ_{k <= a} R[k][a] R[k][b] */
                for (int64_t b = a; b < n; b++) {
                    long double s = 0;
                    for (int64_t k = 0; k <= a; k++)
                        s += (long double)r0[k * n + a] * r0[k * n + b];
                    if (!(fabsl(s - h[a * n + b]) <= 1e-11 * (1 + fabs(h[a * n + b]))))
                        fail_msg("n %lld: (RᵀR)[%lld][%lld] = %.17Lg, H has %.17g", (long long)n, (long long)a,
                                 (long long)b, s, h[a * n + b]);
                }
            if (n > 1) { /* a negative direction: refused, not a NaN factor */
                memcpy(r0, h, (size_t)(n * n) * sizeof *h);
                r0[(n - 1) * n + (n - 1)] = -1;
                assert_int_equal(nm_cholesky_upper(r0, n, pool), 1);
            }
            free(x); free(h); free(h2); free(r0); free(r1);
        }
    }
    nm_dense_limit(NM_DENSE_BEST);
    nm_pool_destroy(pool);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_syrk),
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_gemm_upper_t),
        cmocka_unit_test(test_daxpy_many),
        cmocka_unit_test(test_cholesky),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
