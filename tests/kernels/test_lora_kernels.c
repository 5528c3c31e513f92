/* The LoRA merge kernel (kernels/lora.h): the SIMD version gives the scalar reference's bits for
 * every rank (multiples of 8 and not, above and below 32), row length (with and without a tail)
 * and both summation orders; the reference keeps the orders it documents (checked on values
 * whose sums round differently in other orders); ggml_vec_dot's three float types. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "formats/tensor.h"
#include "kernels/lora.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    /* wide dynamic range so that summation order shows in the last bits */
    const float u = (float)(rng >> 40) / (float)(1 << 24) - 0.5f;
    return u * powf(2.0f, (float)((int)(rng % 16) - 8));
}

static void test_simd_matches_reference(void **state) {
    (void)state;
    const int ranks[] = {1, 3, 4, 7, 8, 12, 16, 24, 31, 32, 33, 40, 64, 100, 128, 160};
    const int64_t lens[] = {1, 5, 8, 13, 64, 257};
    for (size_t ri = 0; ri < sizeof ranks / sizeof ranks[0]; ri++)
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
            for (int rows = 1; rows <= 3; rows++)
                for (int tb = 0; tb < 2; tb++) {
                    const int r = ranks[ri];
                    const int64_t n = lens[li];
                    if (tb && r % 8) continue; /* tinyBLAS only takes whole 8-element steps */
                    float *coef = malloc((size_t)(r * rows) * sizeof(float)), *basis = malloc((size_t)(r * n) * sizeof(float));
                    float *panel = malloc(nm_lora_panel_floats(n, r) * sizeof(float));
                    float *base = malloc((size_t)(n * rows) * sizeof(float)), *a = malloc((size_t)(n * rows) * sizeof(float)),
                          *b = malloc((size_t)(n * rows) * sizeof(float));
                    for (int k = 0; k < r * rows; k++) coef[k] = frand();
                    for (int64_t i = 0; i < r * n; i++) basis[i] = frand();
                    for (int64_t i = 0; i < n * rows; i++) base[i] = frand();
                    nm_lora_panel(n, r, basis, (size_t)n, panel);
                    nm_lora_delta_rows_ref(n, r, panel, coef, rows, 0.75f, tb, base, a, (size_t)n);
                    nm_lora_delta_rows(n, r, panel, coef, rows, 0.75f, tb, base, b, (size_t)n);
                    if (memcmp(a, b, (size_t)(n * rows) * sizeof(float)) != 0)
                        fail_msg("rank %d, %lld outputs, %d rows, %s: SIMD differs from the reference", r, (long long)n,
                                 rows, tb ? "tinyBLAS" : "vec_dot");
                    memcpy(b, base, (size_t)(n * rows) * sizeof(float)); /* out may be base */
                    nm_lora_delta_rows(n, r, panel, coef, rows, 0.75f, tb, b, b, (size_t)n);
                    assert_memory_equal(a, b, (size_t)(n * rows) * sizeof(float));
                    /* the reference follows its formula: row 0, output 0 */
                    float acc[8] = {0};
                    for (int k = 0; k < r && tb; k++) acc[k % 8] = fmaf(coef[k], basis[(size_t)k * (size_t)n], acc[k % 8]);
                    if (tb) {
                        const float d = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
                        assert_true(a[0] == base[0] + d * 0.75f);
                    }
                    free(coef), free(basis), free(panel), free(base), free(a), free(b);
                }
}

/* One output, rank 8, values chosen so the orders differ: tinyBLAS folds (s0+s4 + s2+s6) + ... */
static void test_documented_orders(void **state) {
    (void)state;
    float coef[8], basis[8], panel[64], base = 0.0f, out;
    for (int k = 0; k < 8; k++) {
        coef[k] = 1.0f;
        basis[k] = 0.0f;
    }
    basis[0] = 1e8f, basis[4] = -1e8f, basis[1] = 1.0f, basis[2] = 1.0f;
    nm_lora_panel(1, 8, basis, 1, panel);
    /* tinyBLAS: (1e8 + -1e8) + (1 + 0) ... = 2; a plain sequential sum gives (1e8+1+1) - 1e8 = 0 */
    nm_lora_delta_rows_ref(1, 8, panel, coef, 1, 1.0f, true, &base, &out, 1);
    assert_true(out == 2.0f);
    float seq = 0.0f;
    for (int k = 0; k < 8; k++) seq += coef[k] * basis[k];
    assert_true(seq == 0.0f); /* so the test can tell the orders apart */
    /* vec_dot below 32 elements: sequential from zero */
    nm_lora_delta_rows_ref(1, 8, panel, coef, 1, 1.0f, false, &base, &out, 1);
    assert_true(out == seq);
    /* F16's vec_dot keeps its tail in double */
    uint16_t x[3], y[3];
    const float xv[3] = {2048.0f, 1.0f, -2048.0f};
    for (int i = 0; i < 3; i++) {
        x[i] = nm_f32_to_f16(xv[i]);
        y[i] = nm_f32_to_f16(i == 1 ? 0.00006103515625f : 1.0f);
    }
    /* float: 2048 + 2^-14 rounds to 2048, then 0; double keeps 2^-14 */
    assert_true(nm_ggml_vec_dot(GGML_TYPE_F16, 3, x, y) == 0.00006103515625f);
    const float xf[3] = {2048.0f, 0.00006103515625f, -2048.0f}, yf[3] = {1, 1, 1};
    assert_true(nm_ggml_vec_dot(GGML_TYPE_F32, 3, xf, yf) == 0.0f);
}

static void test_tinyblas_rule(void **state) {
    (void)state;
    assert_true(nm_lora_uses_tinyblas(8, 256, 256));
    assert_false(nm_lora_uses_tinyblas(4, 256, 256));  /* k not a multiple of 8 */
    assert_false(nm_lora_uses_tinyblas(8, 258, 256));  /* rows not a multiple of 4 */
    assert_false(nm_lora_uses_tinyblas(16, 256, 1));   /* one column */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simd_matches_reference),
        cmocka_unit_test(test_documented_orders),
        cmocka_unit_test(test_tinyblas_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
