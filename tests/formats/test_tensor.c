/* Type table and f32<->f16/bf16 conversions: FORMATS.md §3.0 check values, and the SIMD row
 * conversions bit-identical to the scalar reference on every f16 value and on a large sample
 * of f32 bit patterns. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "formats/tensor.h"

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_type_table(void **state) {
    (void)state;
    assert_int_equal(ggml_type_get(GGML_TYPE_Q4_K)->type_size, 144);
    assert_int_equal(ggml_type_get(GGML_TYPE_Q6_K)->type_size, 210);
    assert_int_equal(ggml_type_get(GGML_TYPE_Q8_0)->block_size, 32);
    assert_null(ggml_type_get(4));
    assert_null(ggml_type_get(31));
    assert_null(ggml_type_get(36));
    assert_null(ggml_type_get(GGML_TYPE_COUNT));
    assert_int_equal(ggml_type_from_name("q4_k"), GGML_TYPE_Q4_K);
    assert_int_equal(ggml_type_from_name("nope"), -1);
    size_t size;
    int64_t ne[4] = {256, 3, 1, 1};
    assert_int_equal(ggml_tensor_size(GGML_TYPE_Q4_K, ne, &size), 0);
    assert_int_equal(size, 3 * 144);
    ne[0] = 100;
    assert_int_equal(ggml_tensor_size(GGML_TYPE_Q4_K, ne, &size), -1);
    int64_t huge[4] = {INT64_MAX, INT64_MAX, 1, 1};
    assert_int_equal(ggml_tensor_size(GGML_TYPE_F32, huge, &size), -1);
}

static void test_f16_check_values(void **state) {
    (void)state;
    assert_int_equal(nm_f32_to_f16(65504.0f), 0x7BFF);
    assert_int_equal(nm_f32_to_f16(65519.99f), 0x7BFF);
    assert_int_equal(nm_f32_to_f16(65520.0f), 0x7C00);
    assert_int_equal(nm_f32_to_f16(0.1f), 0x2E66);
    assert_int_equal(nm_f32_to_f16(1.0f / 3.0f), 0x3555);
    assert_int_equal(nm_f32_to_f16(-0.0f), 0x8000);
    assert_int_equal(nm_f32_to_f16(0x1p-25f), 0x0000);
    assert_int_equal(nm_f32_to_f16(from_bits(0x33000001)), 0x0001);
    assert_int_equal(nm_f32_to_f16(from_bits(0x7F800000)), 0x7C00);
    assert_int_equal(nm_f32_to_f16(from_bits(0x7FC00000)), 0x7E00);
    assert_int_equal(nm_f32_to_bf16(1.0f), 0x3F80);
    assert_int_equal(nm_f32_to_bf16(from_bits(0x3F808000)), 0x3F80); /* tie to even */
    assert_int_equal(nm_f32_to_bf16(from_bits(0x3F818000)), 0x3F82);
    assert_int_equal(nm_f32_to_bf16(from_bits(0x7F800001)), 0x7FC0);
}

static void test_f16_roundtrip_all(void **state) {
    (void)state;
    uint16_t *h = malloc(65536 * 2), *back = malloc(65536 * 2);
    float *f = malloc(65536 * 4), *fr = malloc(65536 * 4);
    for (uint32_t i = 0; i < 65536; i++)
        h[i] = (uint16_t)i;
    nm_f16_to_f32_row(h, f, 65536);
    nm_f16_to_f32_row_ref(h, fr, 65536);
    assert_memory_equal(f, fr, 65536 * 4);
    for (uint32_t i = 0; i < 65536; i++) {
        if ((h[i] & 0x7FFF) > 0x7C00)
            f[i] = 0; /* NaN payloads are not compared */
    }
    nm_f32_to_f16_row(f, back, 65536);
    for (uint32_t i = 0; i < 65536; i++)
        if ((h[i] & 0x7FFF) <= 0x7C00)
            assert_int_equal(back[i], h[i]);
    free(h);
    free(back);
    free(f);
    free(fr);
}

/* Every non-NaN f32 pattern with a stride coprime to 2^32: 10^8 patterns across all exponents. */
static void test_simd_matches_scalar_f32_patterns(void **state) {
    (void)state;
    enum { CHUNK = 1 << 16 };
    float *src = malloc(CHUNK * 4);
    uint16_t *a = malloc(CHUNK * 2), *b = malloc(CHUNK * 2);
    uint32_t u = 0x12345;
    const uint64_t total = 100000000ull;
    for (uint64_t done = 0; done < total; done += CHUNK) {
        for (int i = 0; i < CHUNK; i++) {
            u += 42949673u; /* odd stride: walks all 2^32 patterns */
            uint32_t v = u;
            if ((v & 0x7FFFFFFF) > 0x7F800000)
                v &= 0xFF800000u; /* NaN -> Inf: only non-NaN inputs must agree */
            memcpy(&src[i], &v, 4);
        }
        nm_f32_to_f16_row(src, a, CHUNK);
        nm_f32_to_f16_row_ref(src, b, CHUNK);
        assert_memory_equal(a, b, CHUNK * 2);
        nm_f32_to_bf16_row(src, a, CHUNK);
        nm_f32_to_bf16_row_ref(src, b, CHUNK);
        assert_memory_equal(a, b, CHUNK * 2);
    }
    free(src);
    free(a);
    free(b);
}

static void test_bf16_to_f32_all(void **state) {
    (void)state;
    uint16_t *h = malloc(65536 * 2);
    float *a = malloc(65536 * 4), *b = malloc(65536 * 4);
    for (uint32_t i = 0; i < 65536; i++)
        h[i] = (uint16_t)i;
    nm_bf16_to_f32_row(h, a, 65536);
    nm_bf16_to_f32_row_ref(h, b, 65536);
    assert_memory_equal(a, b, 65536 * 4);
    free(h);
    free(a);
    free(b);
}

static void test_nan_finders(void **state) {
    (void)state;
    float x[5] = {1, 2, 3, 4, 5};
    assert_int_equal(nm_find_nan_f32(x, 5), -1);
    x[3] = from_bits(0x7FC00001);
    assert_int_equal(nm_find_nan_f32(x, 5), 3);
    uint16_t h[3] = {0x3C00, 0x7C00, 0x7C01};
    assert_int_equal(nm_find_nan_f16(h, 3), 2);
    uint16_t bh[3] = {0x3F80, 0x7F80, 0xFFC0};
    assert_int_equal(nm_find_nan_bf16(bh, 3), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_table),
        cmocka_unit_test(test_f16_check_values),
        cmocka_unit_test(test_f16_roundtrip_all),
        cmocka_unit_test(test_simd_matches_scalar_f32_patterns),
        cmocka_unit_test(test_bf16_to_f32_all),
        cmocka_unit_test(test_nan_finders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
