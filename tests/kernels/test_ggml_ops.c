/* kernels/ggml_ops: the vector exp against libm, SwiGLU and both flash-attention kernels (plain and
 * soft-capped) against a plain double-precision computation, and the AVX2 build against the portable
 * one bit for bit; GEGLU and logit soft-capping against ggml's definitions. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/cpu.h"
#include "kernels/ggml_ops.h"
#if defined(__x86_64__)
#include "kernels/ggml_ops_simd.h"
#endif
#include "formats/tensor.h"

static uint32_t rng = 777;
static float uniform(void) {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return (float)(rng >> 8) / 16777216.0f * 2.0f - 1.0f;
}

static void test_expf(void **state) {
    (void)state;
    for (float x = -87.0f; x < 88.0f; x += 0.0137f) {
        const double want = exp((double)x);
        assert_true(fabs(nm_ggml_expf(x) - want) <= 2.5e-7 * want); /* ggml: < 1.5 ulp */
    }
    assert_true(nm_ggml_expf(-INFINITY) == 0.0f);
    assert_true(nm_ggml_expf(0.0f) == 1.0f);
    assert_true(nm_ggml_expf(-200.0f) == 0.0f);
    assert_true(isinf(nm_ggml_expf(200.0f)));
}

static void test_swiglu(void **state) {
    (void)state;
    enum { N = 203 };
    float x[N], g[N], a[N], b[N];
    for (int i = 0; i < N; i++) {
        x[i] = 12.0f * uniform();
        g[i] = uniform();
    }
    nm_ggml_swiglu(N, a, x, g);
    nm_ggml_swiglu_ref(N, b, x, g);
    assert_memory_equal(a, b, sizeof a);
    for (int i = 0; i < N; i++) {
        const double want = x[i] / (1.0 + exp(-(double)x[i])) * g[i];
        assert_true(fabs(a[i] - want) <= 1e-6 * (fabs(want) + 1e-3));
    }
}

/* causal attention of n_rows query rows, keys 0 .. n_kv0 + r - 1, in double */
static void attention_double(int hd, int n_rows, const float *q, const uint16_t *k, const uint16_t *v, int n_kv0,
                             float scale, float cap, double *out) {
    for (int r = 0; r < n_rows; r++) {
        const int n = n_kv0 + r;
        double *s = malloc((size_t)n * sizeof *s), mx = -INFINITY, sum = 0;
        for (int p = 0; p < n; p++) {
            double d = 0;
            for (int i = 0; i < hd; i++) d += (double)q[r * hd + i] * nm_f16_to_f32(k[p * hd + i]);
            s[p] = cap != 0.0f ? cap * tanh(d * scale / cap) : d * scale;
            mx = s[p] > mx ? s[p] : mx;
        }
        for (int p = 0; p < n; p++) sum += (s[p] = exp(s[p] - mx));
        for (int i = 0; i < hd; i++) {
            double o = 0;
            for (int p = 0; p < n; p++) o += s[p] * nm_f16_to_f32(v[p * hd + i]);
            out[r * hd + i] = o / sum;
        }
        free(s);
    }
}

static void check_fa_cap(bool tiled, int hd, int n_rows, int n_kv0, float cap, double tol) {
    const int n_kv = n_kv0 + n_rows;
    const size_t kts = (size_t)(n_kv + 63) / 64 * 64; /* the padded key stride the caller provides */
    float *q = malloc(sizeof(float) * (size_t)(n_rows * hd));
    uint16_t *k = malloc(2 * (size_t)(n_kv * hd)), *v = malloc(2 * (size_t)(n_kv * hd));
    float *kt = calloc(kts * (size_t)hd, sizeof(float)), *vf = malloc(sizeof(float) * (size_t)(n_kv * hd));
    float *a = malloc(sizeof(float) * (size_t)(n_rows * hd)), *b = malloc(sizeof(float) * (size_t)(n_rows * hd));
    double *want = malloc(sizeof(double) * (size_t)(n_rows * hd));
    float *scratch = malloc(sizeof(float) * nm_ggml_fa_scratch(hd));
    for (int i = 0; i < n_rows * hd; i++) q[i] = 3.0f * uniform();
    for (int i = 0; i < n_kv * hd; i++) {
        k[i] = nm_f32_to_f16(2.0f * uniform());
        v[i] = nm_f32_to_f16(uniform());
        vf[i] = nm_f16_to_f32(v[i]);
    }
    for (int p = 0; p < n_kv; p++)
        for (int d = 0; d < hd; d++) kt[(size_t)d * kts + (size_t)p] = nm_f16_to_f32(k[p * hd + d]);
    const float scale = 1.0f / sqrtf((float)hd);
    const float pass = cap != 0.0f ? scale / cap : scale; /* ggml divides the scale by the cap */
    nm_ggml_flash_attn(tiled, hd, n_rows, q, (size_t)hd, kt, kts, vf, (size_t)hd, n_kv0, pass, cap, a, (size_t)hd, scratch);
    nm_ggml_flash_attn_ref(tiled, hd, n_rows, q, (size_t)hd, kt, kts, vf, (size_t)hd, n_kv0, pass, cap, b, (size_t)hd,
                           scratch);
    assert_memory_equal(a, b, sizeof(float) * (size_t)(n_rows * hd));
#if defined(__x86_64__)
    if (nm_cpu()->avx2 && nm_cpu()->fma && nm_cpu()->f16c) { /* the AVX2 kernels too, on an AVX-512 machine */
        memset(a, 0, sizeof(float) * (size_t)(n_rows * hd));
        nm_ggml_flash_attn_avx2(tiled, hd, n_rows, q, (size_t)hd, kt, kts, vf, (size_t)hd, n_kv0, pass, cap, a, (size_t)hd,
                                scratch);
        assert_memory_equal(a, b, sizeof(float) * (size_t)(n_rows * hd));
    }
#endif
    attention_double(hd, n_rows, q, k, v, n_kv0, scale, cap, want);
    for (int i = 0; i < n_rows * hd; i++) assert_true(fabs(a[i] - want[i]) <= tol);
    free(q); free(k); free(v); free(kt); free(vf); free(a); free(b); free(want); free(scratch);
}

static void check_fa(bool tiled, int hd, int n_rows, int n_kv0, double tol) { check_fa_cap(tiled, hd, n_rows, n_kv0, 0.0f, tol); }

/* Gemma 2's soft-capped scores (cap·tanh(s/cap)); a small cap so that it bends the scores */
static void test_flash_attn_softcap(void **state) {
    (void)state;
    check_fa_cap(true, 64, 16, 150, 2.0f, 1e-5);
    check_fa_cap(true, 128, 5, 64, 50.0f, 1e-5);
    check_fa_cap(true, 36, 7, 70, 1.5f, 1e-5);
    check_fa_cap(false, 64, 3, 40, 2.0f, 2e-3);
    check_fa_cap(false, 128, 2, 9, 50.0f, 2e-3);
}

/* GEGLU: ggml_vec_geglu_f32 is its GELU (the half-precision table, exact 0 / x beyond ±10) times
 * the other operand; the table itself is the tanh approximation within half precision. */
static void test_geglu(void **state) {
    (void)state;
    enum { N = 4096 };
    float *x = malloc(N * sizeof *x), *g = malloc(N * sizeof *g), *y = malloc(N * sizeof *y),
          *h = malloc(N * sizeof *h);
    for (int i = 0; i < N; i++) {
        x[i] = i < 8 ? (float[]){-10.0f, 10.0f, -10.5f, 10.5f, -9.99f, 9.99f, 0.0f, -0.0f}[i] : 12.0f * uniform();
        g[i] = 2.0f * uniform();
    }
    nm_ggml_geglu(N, y, x, g);
    nm_ggml_gelu(N, h, x);
    for (int i = 0; i < N; i++) {
        const float want = x[i] <= -10.0f ? 0.0f : x[i] >= 10.0f ? x[i] * g[i] : h[i] * g[i];
        assert_true(y[i] == want);
        const double xd = x[i], ref = 0.5 * xd * (1.0 + tanh(0.7978845608028654 * xd * (1.0 + 0.044715 * xd * xd)));
        assert_true(fabs(y[i] - ref * g[i]) <= 2e-3 * (fabs(ref * g[i]) + 1e-2));
    }
    assert_true(y[0] == 0.0f && y[2] == 0.0f && y[1] == 10.0f * g[1] && y[3] == 10.5f * g[3]);
    free(x); free(g); free(y); free(h);
}

/* Final-logit soft-capping: ggml_scale(x, 1/cap), ggml_tanh (tanhf), ggml_scale(cap), in that
 * order and rounding, element by element. */
static void test_softcap(void **state) {
    (void)state;
    enum { N = 1000 };
    float y[N], want[N];
    const float cap = 30.0f, inv = 1.0f / cap;
    for (int i = 0; i < N; i++) {
        y[i] = 200.0f * uniform();
        float t = y[i] * inv;
        t = tanhf(t);
        want[i] = t * cap;
    }
    nm_ggml_softcap(N, y, cap);
    assert_memory_equal(y, want, sizeof y);
    for (int i = 0; i < N; i++) assert_true(fabsf(y[i]) < cap || fabsf(y[i]) == cap);
}

static void test_flash_attn_tiled(void **state) {
    (void)state;
    check_fa(true, 32, 16, 1, 1e-5);
    check_fa(true, 64, 16, 150, 1e-5); /* several key tiles, a partial last one */
    check_fa(true, 128, 5, 64, 1e-5);
    check_fa(true, 36, 7, 70, 1e-5); /* head size not a multiple of 8 */
    check_fa(true, 64, 67, 1, 1e-5);  /* query rows in groups of three and one over, from the first key */
    check_fa(true, 96, 8, 127, 1e-5); /* a group whose rows end in different key tiles */
    check_fa(true, 32, 2, 63, 1e-5);
}

static void test_flash_attn_rows(void **state) {
    (void)state; /* this kernel accumulates in f16, as ggml's does */
    check_fa(false, 32, 6, 1, 2e-3);
    check_fa(false, 64, 3, 40, 2e-3);
    check_fa(false, 40, 2, 9, 2e-3); /* head size not a multiple of 32: the double tail */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expf),
        cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_flash_attn_tiled),
        cmocka_unit_test(test_flash_attn_rows),
        cmocka_unit_test(test_flash_attn_softcap),
        cmocka_unit_test(test_geglu),
        cmocka_unit_test(test_softcap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
