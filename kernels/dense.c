/* Dense double-precision linear algebra (dense.h): the drivers, and the portable inner loops the
 * AVX2 sibling (dense_avx2.c) replaces. The portable loops fuse each multiply-add with fma(),
 * where the SIMD loops do, so every path gives the same bits (glibc's fma is the FMA instruction
 * where the CPU has one, an exact software routine otherwise). */
#include "kernels/dense.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/cpu.h"

/* acc[i * 8 + j] = Σ_{t < n_t} a[t·sat + i·sai] · b[t·ldb + j] for i < rows (<= 8), j < 8. */
typedef void (*tile_fn)(int64_t n_t, int rows, const double *a, ptrdiff_t sat, ptrdiff_t sai, const double *b,
                        ptrdiff_t ldb, double acc[64]);
typedef void (*axpy_fn)(int64_t n, double s, const double *x, double *y);

void nm_dense_tile_avx2(int64_t n_t, int rows, const double *a, ptrdiff_t sat, ptrdiff_t sai, const double *b,
                        ptrdiff_t ldb, double acc[64]);
void nm_dense_tile_avx512(int64_t n_t, int rows, const double *a, ptrdiff_t sat, ptrdiff_t sai, const double *b,
                          ptrdiff_t ldb, double acc[64]);
void nm_daxpy_avx2(int64_t n, double s, const double *x, double *y);
void nm_daxpy_many_avx2(int64_t n, int k, const double *s, const double *const *x, double *y);
void nm_daxpy_many_avx512(int64_t n, int k, const double *s, const double *const *x, double *y);
void nm_dsub_scaled_avx2(int64_t n, double s, const double *x, double *y);

static void tile_ref(int64_t n_t, int rows, const double *a, ptrdiff_t sat, ptrdiff_t sai, const double *b,
                     ptrdiff_t ldb, double acc[64]) {
    for (int k = 0; k < 64; k++)
        acc[k] = 0;
    for (int64_t t = 0; t < n_t; t++) {
        const double *bt = b + t * ldb;
        for (int i = 0; i < rows; i++) {
            const double ai = a[t * sat + i * sai];
            for (int j = 0; j < 8; j++)
                acc[i * 8 + j] = fma(ai, bt[j], acc[i * 8 + j]);
        }
    }
}

/* As the SIMD loops: whole eights fused, the rest unfused. */
static void axpy_ref(int64_t n, double s, const double *x, double *y) {
    const int64_t n8 = n - n % 8;
    for (int64_t i = 0; i < n8; i++)
        y[i] = fma(s, x[i], y[i]);
    for (int64_t i = n8; i < n; i++)
        y[i] += s * x[i];
}

static atomic_int isa_cap = NM_DENSE_BEST;

void nm_dense_limit(nm_dense_isa cap) { atomic_store(&isa_cap, (int)cap); }

static bool use_avx2(void) {
#if defined(__x86_64__)
    const nm_cpu_features *cpu = nm_cpu();
    return atomic_load(&isa_cap) >= NM_DENSE_AVX2 && cpu->avx2 && cpu->fma;
#else
    return false;
#endif
}

static tile_fn get_tile(void) {
#if defined(__x86_64__)
    if (use_avx2() && atomic_load(&isa_cap) >= NM_DENSE_BEST && nm_cpu()->avx512f)
        return nm_dense_tile_avx512;
    if (use_avx2())
        return nm_dense_tile_avx2;
#endif
    return tile_ref;
}

void nm_daxpy(int64_t n, double s, const double *x, double *y) {
#if defined(__x86_64__)
    if (use_avx2()) {
        nm_daxpy_avx2(n, s, x, y);
        return;
    }
#endif
    axpy_ref(n, s, x, y);
}

void nm_daxpy_many(int64_t n, int k, const double *s, const double *const *x, double *y) {
#if defined(__x86_64__)
    if (use_avx2() && atomic_load(&isa_cap) >= NM_DENSE_BEST && nm_cpu()->avx512f) {
        nm_daxpy_many_avx512(n, k, s, x, y);
        return;
    }
    if (use_avx2()) {
        nm_daxpy_many_avx2(n, k, s, x, y);
        return;
    }
#endif
    for (int t = 0; t < k; t++)
        axpy_ref(n, s[t], x[t], y);
}

void nm_dsub_scaled(int64_t n, double s, const double *x, double *y) {
#if defined(__x86_64__)
    if (use_avx2()) {
        nm_dsub_scaled_avx2(n, s, x, y);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++)
        y[i] -= s * x[i];
}

/* ---- symmetric rank-k update ---- */

enum { SYRK_TOKENS = 128 }; /* tokens per block: a panel of 8 columns is then 8 KiB */

typedef struct syrk_job {
    double *c;
    int64_t ldc, m, n_t, n_panels;
    const double *panels; /* panel p: n_t rows of 8 doubles (columns 8p .. 8p+7, zero beyond m) */
    double sign;
    tile_fn tile;
} syrk_job;

enum { SYRK_TASK_ROWS = 32 }; /* rows of c per task: four 8-row tiles share each panel while it is in L1 */

/* Task i: rows 32i .. 32i+31 of c against every panel from their own on. */
static void syrk_task(void *ctx, size_t task, int thread) {
    (void)thread;
    const syrk_job *j = ctx;
    const int64_t r0 = (int64_t)task * SYRK_TASK_ROWS;
    double acc[64];
    for (int64_t pb = r0 / 8; pb < j->n_panels; pb++) {
        const double *bp = j->panels + (size_t)pb * (size_t)j->n_t * 8;
        for (int64_t a0 = r0; a0 < r0 + SYRK_TASK_ROWS && a0 < j->m && a0 <= pb * 8; a0 += 8) {
            const double *ap = j->panels + (size_t)(a0 / 8) * (size_t)j->n_t * 8; /* rows past m: zeros */
            j->tile(j->n_t, 8, ap, 8, 1, bp, 8, acc);
            for (int i = 0; i < 8 && a0 + i < j->m; i++) {
                double *ci = j->c + (size_t)(a0 + i) * (size_t)j->ldc;
                for (int k = 0; k < 8; k++) {
                    const int64_t b = pb * 8 + k;
                    if (b >= a0 + i && b < j->m)
                        ci[b] += j->sign * acc[i * 8 + k];
                }
            }
        }
    }
}

static int syrk_upper(double *c, int64_t ldc, const float *xf, const double *xd, int64_t ldx, int64_t n_t, int64_t m,
                      double sign, nm_pool *pool) {
    if (n_t <= 0 || m <= 0)
        return 0;
    const int64_t n_panels = (m + 7) / 8, bt = n_t < SYRK_TOKENS ? n_t : SYRK_TOKENS;
    double *panels = malloc((size_t)n_panels * (size_t)bt * 8 * sizeof *panels);
    if (!panels)
        return -1;
    syrk_job j = {.c = c, .ldc = ldc, .m = m, .n_panels = n_panels, .panels = panels, .sign = sign, .tile = get_tile()};
    for (int64_t t0 = 0; t0 < n_t; t0 += bt) {
        j.n_t = n_t - t0 < bt ? n_t - t0 : bt;
        for (int64_t p = 0; p < n_panels; p++) {
            double *dst = panels + (size_t)p * (size_t)j.n_t * 8;
            const int64_t w = m - p * 8 < 8 ? m - p * 8 : 8;
            for (int64_t t = 0; t < j.n_t; t++, dst += 8) {
                const size_t row = (size_t)(t0 + t) * (size_t)ldx + (size_t)p * 8;
                int64_t k = 0;
                if (xf)
                    for (; k < w; k++)
                        dst[k] = xf[row + (size_t)k];
                else
                    for (; k < w; k++)
                        dst[k] = xd[row + (size_t)k];
                for (; k < 8; k++)
                    dst[k] = 0;
            }
        }
        const size_t tasks = (size_t)((m + SYRK_TASK_ROWS - 1) / SYRK_TASK_ROWS);
        if (pool)
            nm_pool_run(pool, tasks, syrk_task, &j);
        else
            for (size_t k = 0; k < tasks; k++)
                syrk_task(&j, k, 0);
    }
    free(panels);
    return 0;
}

int nm_syrk_upper_f32(double *c, int64_t ldc, const float *x, int64_t ldx, int64_t n_t, int64_t m, double sign,
                      nm_pool *pool) {
    return syrk_upper(c, ldc, x, NULL, ldx, n_t, m, sign, pool);
}

int nm_syrk_upper_f64(double *c, int64_t ldc, const double *x, int64_t ldx, int64_t n_t, int64_t m, double sign,
                      nm_pool *pool) {
    return syrk_upper(c, ldc, NULL, x, ldx, n_t, m, sign, pool);
}

/* ---- general product ---- */

enum { GEMM_K_BLOCK = 256 }; /* terms per pass: a 8-column strip of b is then 16 KiB, in L1 */

/* The products pass over all of c once per block of terms, eight rows of it per tile, so each
 * tile first asks for the rows of c the next tile adds to (on the calibrated TinyLlama-shaped
 * Q4_K_M, half of nm_gemm_acc's own samples had been on its loads of c). Prefetches only:
 * nothing computed changes. */
static inline void prefetch_c(const double *c, int64_t ldc, int64_t r0, int64_t n_r, int64_t j) {
    for (int64_t r = r0; r < r0 + 8 && r < n_r; r++)
        __builtin_prefetch(c + r * ldc + j, 1);
}

/* b's strips are gathered GEMM_STRIPS at a time (64 columns: 512 contiguous bytes of each row of
 * b): gathered one at a time, each strip took 64 bytes from each of 256 rows pages apart and
 * waited on memory for every one (the calibrated feedback's lazy product, 256 rows of 5632, one
 * AVX2 thread: 16.1 -> 18.3 G multiply-adds/s). */
enum { GEMM_STRIPS = 8 };

void nm_gemm_acc(double *c, int64_t ldc, const double *a, int64_t lda, const double *b, int64_t ldb, int64_t n_r,
                 int64_t k_len, int64_t m, bool upper_b) {
    const tile_fn tile = get_tile();
    double acc[64];
    static _Thread_local double strips[GEMM_STRIPS][GEMM_K_BLOCK * 8]; /* 128 KiB: off the stack */
    const int64_t m8 = m - m % 8;
    for (int64_t k0 = 0; k0 < k_len; k0 += GEMM_K_BLOCK) {
        const int64_t k1 = k_len - k0 < GEMM_K_BLOCK ? k_len : k0 + GEMM_K_BLOCK;
        for (int64_t jg = upper_b ? k0 - k0 % 8 : 0; jg < m8; jg += 8 * GEMM_STRIPS) {
            const int ns = (int)((m8 - jg) / 8 < GEMM_STRIPS ? (m8 - jg) / 8 : GEMM_STRIPS);
            int64_t kk[GEMM_STRIPS]; /* terms of strip s: with upper_b, b's rows to its last column */
            for (int s = 0; s < ns; s++) {
                const int64_t j0 = jg + 8 * s;
                kk[s] = (upper_b && j0 + 8 < k1 ? j0 + 8 : k1) - k0;
            }
            for (int64_t k = 0; k < kk[ns - 1]; k++) { /* kk grows with s */
                const double *row = b + (k0 + k) * ldb + jg;
                for (int s = 0; s < ns; s++)
                    if (k < kk[s])
                        memcpy(strips[s] + k * 8, row + 8 * s, 8 * sizeof(double));
            }
            for (int s = 0; s < ns; s++) {
                const int64_t j0 = jg + 8 * s;
                for (int64_t r0 = 0; r0 < n_r; r0 += 8) {
                    const int rows = n_r - r0 < 8 ? (int)(n_r - r0) : 8;
                    if (r0 + 8 < n_r)
                        prefetch_c(c, ldc, r0 + 8, n_r, j0);
                    else if (j0 + 8 < m8)
                        prefetch_c(c, ldc, 0, n_r, j0 + 8);
                    tile(kk[s], rows, a + r0 * lda + k0, 1, lda, strips[s], 8, acc);
                    for (int i = 0; i < rows; i++)
                        for (int k = 0; k < 8; k++)
                            c[(r0 + i) * ldc + j0 + k] += acc[i * 8 + k];
                }
            }
        }
    }
    for (int64_t j0 = m8; j0 < m; j0++) { /* the columns past the last whole eight, one at a time */
        const int64_t kk = upper_b && j0 + 1 < k_len ? j0 + 1 : k_len;
        for (int64_t r = 0; r < n_r; r++) {
            double s = 0;
            for (int64_t k = 0; k < kk; k++)
                s += a[r * lda + k] * b[k * ldb + j0];
            c[r * ldc + j0] += s;
        }
    }
}

/* Strips of bᵀ: strip[k][jj] = b[j0 + jj][k0 + k], gathered from eight rows of b. */
void nm_gemm_acc_upper_t(double *c, int64_t ldc, const double *a, int64_t lda, const double *b, int64_t ldb,
                         int64_t n_r, int64_t m) {
    const tile_fn tile = get_tile();
    double acc[64];
    double strip[GEMM_K_BLOCK * 8];
    const int64_t m8 = m - m % 8;
    for (int64_t k0 = 0; k0 < m; k0 += GEMM_K_BLOCK) {
        const int64_t k1 = m - k0 < GEMM_K_BLOCK ? m : k0 + GEMM_K_BLOCK;
        for (int64_t j0 = 0; j0 < m8 && j0 < k1; j0 += 8) {
            const int64_t ks = j0 > k0 ? j0 : k0, kk = k1 - ks; /* b[j][k] = 0 for k < j */
            for (int jj = 0; jj < 8; jj++) {
                const double *bj = b + (j0 + jj) * ldb + ks;
                for (int64_t k = 0; k < kk; k++)
                    strip[k * 8 + jj] = bj[k];
            }
            for (int64_t r0 = 0; r0 < n_r; r0 += 8) {
                const int rows = n_r - r0 < 8 ? (int)(n_r - r0) : 8;
                if (r0 + 8 < n_r)
                    prefetch_c(c, ldc, r0 + 8, n_r, j0);
                else if (j0 + 8 < m8 && j0 + 8 < k1)
                    prefetch_c(c, ldc, 0, n_r, j0 + 8);
                tile(kk, rows, a + r0 * lda + ks, 1, lda, strip, 8, acc);
                for (int i = 0; i < rows; i++)
                    for (int k = 0; k < 8; k++)
                        c[(r0 + i) * ldc + j0 + k] += acc[i * 8 + k];
            }
        }
    }
    for (int64_t j = m8; j < m; j++) /* the rows of b past the last whole eight, one at a time */
        for (int64_t r = 0; r < n_r; r++) {
            double s = 0;
            for (int64_t k = j; k < m; k++)
                s += a[r * lda + k] * b[j * ldb + k];
            c[r * ldc + j] += s;
        }
}

/* ---- Cholesky ---- */

enum { CHOL_BLOCK = 128, CHOL_PANEL_COLS = 512 };

typedef struct panel_job {
    double *a;
    int64_t n, k0, k1;
} panel_job;

/* Rows k0 .. k1-1 of the columns from k1 + CHOL_PANEL_COLS·task on: R12 = R11⁻ᵀ A12, row by row. */
static void panel_task(void *ctx, size_t task, int thread) {
    (void)thread;
    const panel_job *j = ctx;
    const int64_t c0 = j->k1 + (int64_t)task * CHOL_PANEL_COLS;
    const int64_t w = j->n - c0 < CHOL_PANEL_COLS ? j->n - c0 : CHOL_PANEL_COLS;
    for (int64_t i = j->k0; i < j->k1; i++) {
        double *ri = j->a + i * j->n;
        const double d = ri[i];
        for (int64_t k = 0; k < w; k++)
            ri[c0 + k] /= d;
        for (int64_t p = i + 1; p < j->k1; p++)
            nm_daxpy(w, -ri[p], ri + c0, j->a + p * j->n + c0);
    }
}

int nm_cholesky_upper(double *a, int64_t n, nm_pool *pool) {
    for (int64_t k0 = 0; k0 < n; k0 += CHOL_BLOCK) {
        const int64_t k1 = n - k0 < CHOL_BLOCK ? n : k0 + CHOL_BLOCK;
        for (int64_t i = k0; i < k1; i++) { /* the diagonal block, unblocked */
            double *ri = a + i * n;
            if (!(ri[i] > 0) || !isfinite(ri[i]))
                return 1;
            const double r = sqrt(ri[i]);
            ri[i] = r;
            for (int64_t j = i + 1; j < k1; j++)
                ri[j] /= r;
            for (int64_t p = i + 1; p < k1; p++) {
                double *rp = a + p * n;
                const double s = ri[p];
                for (int64_t j = p; j < k1; j++)
                    rp[j] -= s * ri[j];
            }
        }
        if (k1 == n)
            break;
        panel_job pj = {.a = a, .n = n, .k0 = k0, .k1 = k1};
        const size_t tasks = (size_t)((n - k1 + CHOL_PANEL_COLS - 1) / CHOL_PANEL_COLS);
        if (pool)
            nm_pool_run(pool, tasks, panel_task, &pj);
        else
            for (size_t k = 0; k < tasks; k++)
                panel_task(&pj, k, 0);
        if (nm_syrk_upper_f64(a + k1 * n + k1, n, a + k0 * n + k1, n, k1 - k0, n - k1, -1.0, pool) != 0)
            return -1;
    }
    return 0;
}
