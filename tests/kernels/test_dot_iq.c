/* kernels/dot_iq: the lattice i-quants times Q8_K activations. The AVX2 tile gives the
 * reference's bits (tiles wider and taller than its groups included), single dots equal tiles, and
 * every result is the dot product of the dequantized weights and activations up to float
 * rounding (so the kernels read the blocks as the dequantizers do). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "formats/quants.h"
#include "formats/tensor.h"
#include "common/cpu.h"
#include "kernels/dot.h"
#include "kernels/dot_simd.h"

static uint32_t rng = 2024;
static uint32_t next_u32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}
static float uniform(void) { return (float)(next_u32() >> 8) / 16777216.0f * 2.0f - 1.0f; }

static const uint32_t types[] = {GGML_TYPE_IQ3_XXS, GGML_TYPE_IQ3_S, GGML_TYPE_IQ2_XXS, GGML_TYPE_IQ2_XS,
                                 GGML_TYPE_IQ2_S,   GGML_TYPE_IQ1_S, GGML_TYPE_IQ1_M};

static void check_type(uint32_t type, int64_t n, int rows, int cols) {
    nm_error err = {{0}};
    size_t wrow, arow = nm_dot_act_row_size(type, n);
    assert_int_equal(ggml_row_size(type, (uint64_t)n, &wrow), 0);
    assert_int_equal(nm_dot_act_type(type), GGML_TYPE_Q8_K);
    float *x = malloc((size_t)(n * rows) * 4), *imat = malloc((size_t)n * 4), *xa = malloc((size_t)(n * cols) * 4);
    uint8_t *w = malloc(wrow * (size_t)rows), *a = malloc(arow * (size_t)cols);
    float *simd = malloc((size_t)(rows * cols) * 4), *ref = malloc((size_t)(rows * cols) * 4);
    float *wf = malloc((size_t)n * 4), *af = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n * rows; i++)
        x[i] = uniform() * (i % 7 == 0 ? 3.0f : 1.0f);
    for (int64_t i = 0; i < n; i++)
        imat[i] = 0.1f + (uniform() + 1.0f) * (i % 5 == 0 ? 10.0f : 1.0f);
    for (int64_t i = 0; i < n * cols; i++)
        xa[i] = uniform();
    if (nm_quantize_rows_ref(type, x, w, rows, n, imat, &err) != 0)
        fail_msg("%s", err.msg);
    for (int j = 0; j < cols; j++)
        nm_dot_quantize_act(type, xa + (size_t)j * (size_t)n, a + (size_t)j * arow, n);
    nm_dot_tile(type, n, w, wrow, rows, a, arow, cols, simd, (size_t)rows);
    nm_dot_tile_ref(type, n, w, wrow, rows, a, arow, cols, ref, (size_t)rows);
    assert_memory_equal(simd, ref, (size_t)(rows * cols) * 4);
#if defined(__x86_64__)
    /* each SIMD level by its own entry point (the dispatch above runs only the highest) */
    const nm_cpu_features *cpu = nm_cpu();
    if (cpu->avx2 && cpu->fma && cpu->f16c) {
        memset(simd, 0, (size_t)(rows * cols) * 4);
        assert_true(nm_dot_tile_avx2(type, n, w, wrow, rows, a, arow, NULL, 0, cols, simd, (size_t)rows));
        assert_memory_equal(simd, ref, (size_t)(rows * cols) * 4);
        if (cpu->avx512f && cpu->avx512bw && cpu->avx512vl && cpu->avx512dq && cpu->avx512vnni) {
            memset(simd, 0, (size_t)(rows * cols) * 4);
            assert_true(nm_dot_tile_avx512(type, n, w, wrow, rows, a, arow, NULL, 0, cols, simd, (size_t)rows));
            assert_memory_equal(simd, ref, (size_t)(rows * cols) * 4);
        }
    }
#endif
    for (int i = 0; i < rows; i++) {
        nm_dequantize_row_ref(type, w + (size_t)i * wrow, wf, n);
        for (int j = 0; j < cols; j++) {
            const float one = nm_dot(type, n, w + (size_t)i * wrow, a + (size_t)j * arow);
            const float one_ref = nm_dot_ref(type, n, w + (size_t)i * wrow, a + (size_t)j * arow);
            assert_memory_equal(&one, &ref[(size_t)j * (size_t)rows + (size_t)i], 4);
            assert_memory_equal(&one_ref, &one, 4);
            nm_dequantize_row_ref(GGML_TYPE_Q8_K, a + (size_t)j * arow, af, n);
            double dot = 0, mag = 0;
            for (int64_t e = 0; e < n; e++) {
                dot += (double)wf[e] * af[e];
                mag += fabs((double)wf[e] * af[e]);
            }
            if (fabs(one - dot) > 1e-5 * mag + 1e-30)
                fail_msg("%s row %d col %d: kernel %.9g, dequantized dot %.9g (magnitude %.3g)",
                         ggml_type_name(type), i, j, (double)one, dot, mag);
        }
    }
    free(x);
    free(imat);
    free(xa);
    free(w);
    free(a);
    free(simd);
    free(ref);
    free(wf);
    free(af);
}

/* two blocks per row; and ten (more than one unpacking chunk of 8) against 70 activation rows
 * (more than one group of 64) */
static void test_short_rows(void **state) {
    (void)state;
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
        check_type(types[t], 512, 5, 3);
}
static void test_long_rows_wide_tiles(void **state) {
    (void)state;
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
        check_type(types[t], 2560, 3, 70);
}
/* more rows than the AVX2 tile unpacks at once (8), columns past its groups of 4 and 16 */
static void test_tall_tiles(void **state) {
    (void)state;
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
        check_type(types[t], 768, 19, 23);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_short_rows),
        cmocka_unit_test(test_long_rows_wide_tiles),
        cmocka_unit_test(test_tall_tiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
