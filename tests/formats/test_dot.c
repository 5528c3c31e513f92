/* formats/dot: activation quantizers against FORMATS.md's rules, and the SIMD kernels against
 * the scalar reference for every weight type. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "formats/dot.h"
#include "formats/quants.h"
#include "formats/tensor.h"

static uint32_t rng = 12345;
static uint32_t next_u32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}
static float uniform(void) { return (float)(next_u32() >> 8) / 16777216.0f * 2.0f - 1.0f; }

static void put_f16(uint8_t *p, float v) {
    uint16_t h = nm_f32_to_f16(v);
    memcpy(p, &h, 2);
}

/* Random but valid weight bytes: random quants, scales of realistic size. */
static void random_weights(uint32_t type, uint8_t *w, int64_t n) {
    const ggml_type_info *ti = ggml_type_get(type);
    const int64_t nb = n / ti->block_size;
    if (type == GGML_TYPE_F32) {
        for (int64_t i = 0; i < n; i++) ((float *)w)[i] = uniform();
        return;
    }
    if (type == GGML_TYPE_F16 || type == GGML_TYPE_BF16) {
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = type == GGML_TYPE_F16 ? nm_f32_to_f16(uniform()) : nm_f32_to_bf16(uniform());
            memcpy(w + 2 * i, &h, 2);
        }
        return;
    }
    for (size_t i = 0; i < (size_t)nb * ti->type_size; i++) w[i] = (uint8_t)next_u32();
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *blk = w + (size_t)b * ti->type_size;
        switch (type) {
        case GGML_TYPE_Q4_0: case GGML_TYPE_Q5_0: case GGML_TYPE_Q8_0:
            put_f16(blk, 0.01f * uniform());
            break;
        case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_1:
            put_f16(blk, 0.01f * uniform());
            put_f16(blk + 2, 0.1f * uniform());
            break;
        case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K:
            put_f16(blk, 0.001f * uniform());
            put_f16(blk + 2, 0.001f * uniform());
            break;
        case GGML_TYPE_Q6_K:
            put_f16(blk + 208, 0.001f * uniform());
            break;
        }
    }
}

static const uint32_t types[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,
                                 GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q8_0, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K,
                                 GGML_TYPE_Q6_K};

/* The dispatching kernels (SIMD where available) agree with the scalar reference up to float
 * summation order, for tiles of every shape. */
static void test_simd_matches_reference(void **state) {
    (void)state;
    enum { N = 512, ROWS = 7, COLS = 6 };
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t t = types[ti];
        size_t wrs;
        assert_int_equal(ggml_row_size(t, N, &wrs), 0);
        const size_t ars = nm_dot_act_row_size(t, N);
        assert_true(ars > 0);
        uint8_t *w = malloc(wrs * ROWS), *a = malloc(ars * COLS);
        float x[N], ref[ROWS * COLS], got[ROWS * COLS];
        for (int r = 0; r < ROWS; r++) random_weights(t, w + r * wrs, N);
        for (int c = 0; c < COLS; c++) {
            for (int i = 0; i < N; i++) x[i] = uniform() * (1.0f + (float)c);
            nm_dot_quantize_act(t, x, a + c * ars, N);
            uint8_t *a2 = malloc(ars);
            nm_dot_quantize_act_ref(t, x, a2, N);
            assert_memory_equal(a2, a + c * ars, ars);
            free(a2);
        }
        nm_dot_tile_ref(t, N, w, wrs, ROWS, a, ars, COLS, ref, ROWS);
        nm_dot_tile(t, N, w, wrs, ROWS, a, ars, COLS, got, ROWS);
        for (int i = 0; i < ROWS * COLS; i++) {
            const float tol = 1e-4f * (1.0f + fabsf(ref[i]));
            if (fabsf(ref[i] - got[i]) > tol) fail_msg("%s: element %d: reference %g, kernel %g", ggml_type_name(t), i, ref[i], got[i]);
        }
        for (int r = 0; r < ROWS; r++)
            for (int c = 0; c < COLS; c++) {
                const float one = nm_dot(t, N, w + r * wrs, a + c * ars);
                if (fabsf(one - ref[c * ROWS + r]) > 1e-4f * (1.0f + fabsf(one))) fail_msg("%s: nm_dot differs", ggml_type_name(t));
            }
        free(w);
        free(a);
    }
}

/* Dot products approximate the float product of the dequantized operands (catches layout bugs
 * that a SIMD-versus-reference comparison would share). */
static void test_dot_is_a_dot_product(void **state) {
    (void)state;
    enum { N = 256 };
    /* Q8_0 weights built from known integers: y = q * d. */
    uint8_t w[34 * (N / 32)], a[36 * (N / 32) + 292];
    float wf[N], x[N];
    for (int b = 0; b < N / 32; b++) {
        put_f16(w + 34 * b, 0.5f);
        for (int j = 0; j < 32; j++) {
            int8_t q = (int8_t)((b * 32 + j) % 15 - 7);
            w[34 * b + 2 + j] = (uint8_t)q;
            wf[b * 32 + j] = 0.5f * q;
        }
    }
    double exact = 0;
    for (int i = 0; i < N; i++) {
        x[i] = sinf((float)i * 0.37f);
        exact += (double)wf[i] * x[i];
    }
    nm_dot_quantize_act(GGML_TYPE_Q8_0, x, a, N);
    float got = nm_dot(GGML_TYPE_Q8_0, N, w, a);
    /* against the dequantized activations the product is exact up to rounding */
    double deq = 0;
    for (int b = 0; b < N / 32; b++) {
        uint16_t dh;
        memcpy(&dh, a + 34 * b, 2);
        for (int j = 0; j < 32; j++) deq += (double)wf[b * 32 + j] * (int8_t)a[34 * b + 2 + j] * nm_f16_to_f32(dh);
    }
    if (fabs(got - deq) > 1e-4 * (1 + fabs(deq))) fail_msg("q8_0 dot %g, dequantized product %g", got, deq);
    /* F32 */
    float got32 = nm_dot(GGML_TYPE_F32, N, wf, x);
    if (fabs(got32 - exact) > 1e-4 * (1 + fabs(exact))) fail_msg("f32 dot %g, exact %g", got32, exact);
}

/* Q8_K activations follow FORMATS.md §4.6: d = max/−127 (negative for a positive max), bsums. */
static void test_q8_k_rules(void **state) {
    (void)state;
    float x[256];
    for (int i = 0; i < 256; i++) x[i] = ((37 * i % 64) - 32) * (1 + i / 32) / 64.0f;
    uint8_t q[292];
    nm_dot_quantize_act(GGML_TYPE_Q6_K, x, q, 256);
    uint32_t h = 2166136261u;
    for (int i = 0; i < 292; i++) h = (h ^ q[i]) * 16777619u;
    assert_int_equal(q[0], 0xe8);
    assert_int_equal(q[1], 0xf3);
    assert_int_equal(q[2], 0xf9);
    assert_int_equal(q[3], 0x3c);
    assert_int_equal(h, 0x06ebb5ed);
    int16_t bs0;
    memcpy(&bs0, q + 260, 2);
    int s = 0;
    for (int i = 0; i < 16; i++) s += (int8_t)q[4 + i];
    assert_int_equal(bs0, s);
    /* all-zero input: d = 0, zero quants and sums */
    memset(x, 0, sizeof x);
    memset(q, 0xAA, sizeof q);
    nm_dot_quantize_act(GGML_TYPE_Q4_K, x, q, 256);
    for (int i = 0; i < 292; i++) assert_int_equal(q[i], 0);
}

/* Q8_0/Q8_1 activations: d = amax/127 as f16, quants rounded half to even, Q8_1's s = d·Σq. */
static void test_q8_0_q8_1(void **state) {
    (void)state;
    float x[32];
    for (int i = 0; i < 32; i++) x[i] = (float)(i - 16) / 16.0f * 127.0f / 127.0f;
    x[5] = 2.0f; /* amax = 2 → id = 63.5, x = 1/127 · k… */
    uint8_t q0[34], q1[36];
    nm_dot_quantize_act(GGML_TYPE_Q4_0, x, q0, 32);
    nm_dot_quantize_act(GGML_TYPE_Q4_1, x, q1, 32);
    uint16_t d;
    memcpy(&d, q0, 2);
    assert_int_equal(d, nm_f32_to_f16(2.0f / 127.0f));
    assert_int_equal((int8_t)q0[2 + 5], 127);
    assert_memory_equal(q0 + 2, q1 + 4, 32);
    int sum = 0;
    for (int i = 0; i < 32; i++) sum += (int8_t)q1[4 + i];
    uint16_t s;
    memcpy(&s, q1 + 2, 2);
    assert_int_equal(s, nm_f32_to_f16((2.0f / 127.0f) * (float)sum));
    /* −1/16 · 63.5 = −3.96875 → −4; 0.5 · 63.5 = 31.75 → 32; ties go to even */
    assert_int_equal((int8_t)q0[2 + 15], (int)nearbyintf(x[15] * 63.5f));
}

/* Q4_K and Q6_K reproduce ggml's float order, so the SIMD kernels must equal the reference bit
 * for bit, for every tile shape (one to four activation rows at a time, and leftovers). */
static const uint32_t k_types[] = {GGML_TYPE_Q4_K, GGML_TYPE_Q6_K};

static void random_acts(uint32_t t, uint8_t *a, size_t ars, int cols, int64_t n) {
    float *x = malloc((size_t)n * sizeof(float));
    for (int c = 0; c < cols; c++) {
        for (int64_t i = 0; i < n; i++) x[i] = uniform() * (0.5f + (float)(next_u32() % 8));
        nm_dot_quantize_act(t, x, a + (size_t)c * ars, n);
    }
    free(x);
}

static void test_k_quants_simd_bit_exact(void **state) {
    (void)state;
    enum { N = 768, MAXR = 9, MAXC = 11 };
    for (size_t ti = 0; ti < sizeof k_types / sizeof k_types[0]; ti++) {
        const uint32_t t = k_types[ti];
        size_t wrs;
        assert_int_equal(ggml_row_size(t, N, &wrs), 0);
        const size_t ars = nm_dot_act_row_size(t, N);
        uint8_t *w = malloc(wrs * MAXR), *a = malloc(ars * MAXC);
        float ref[MAXR * MAXC], got[MAXR * MAXC];
        for (int rows = 1; rows <= MAXR; rows += 2)
            for (int cols = 1; cols <= MAXC; cols += 1 + cols / 3) {
                for (int r = 0; r < rows; r++) random_weights(t, w + r * wrs, N);
                random_acts(t, a, ars, cols, N);
                nm_dot_tile_ref(t, N, w, wrs, rows, a, ars, cols, ref, (size_t)rows);
                nm_dot_tile(t, N, w, wrs, rows, a, ars, cols, got, (size_t)rows);
                for (int i = 0; i < rows * cols; i++)
                    if (memcmp(&ref[i], &got[i], sizeof(float)) != 0)
                        fail_msg("%s %dx%d: element %d: reference %.9g, kernel %.9g", ggml_type_name(t), rows, cols,
                                 i, ref[i], got[i]);
                for (int r = 0; r < rows; r++) {
                    const float one = nm_dot(t, N, w + r * wrs, a + (cols - 1) * ars);
                    const float one_ref = nm_dot_ref(t, N, w + r * wrs, a + (cols - 1) * ars);
                    if (memcmp(&one, &one_ref, sizeof one) != 0 || memcmp(&one, &ref[(cols - 1) * rows + r], sizeof one))
                        fail_msg("%s: nm_dot %.9g, reference %.9g", ggml_type_name(t), one, one_ref);
                }
            }
        free(w);
        free(a);
    }
}

/* The reorderings keep Q4_K and Q6_K products equal, up to rounding, to the product of the
 * dequantized weights and activations (a layout slip shared by kernel and reference shows here). */
static void test_k_quants_are_dot_products(void **state) {
    (void)state;
    enum { N = 512 };
    for (size_t ti = 0; ti < sizeof k_types / sizeof k_types[0]; ti++) {
        const uint32_t t = k_types[ti];
        size_t wrs;
        assert_int_equal(ggml_row_size(t, N, &wrs), 0);
        const size_t ars = nm_dot_act_row_size(t, N);
        uint8_t *w = malloc(wrs), *a = malloc(ars);
        float wf[N], af[N];
        for (int trial = 0; trial < 20; trial++) {
            random_weights(t, w, N);
            random_acts(t, a, ars, 1, N);
            nm_dequantize_row(t, w, wf, N);
            nm_dequantize_row(GGML_TYPE_Q8_K, a, af, N);
            double exact = 0, mag = 0;
            for (int i = 0; i < N; i++) {
                exact += (double)wf[i] * af[i];
                mag += fabs((double)wf[i] * af[i]);
            }
            const float got = nm_dot_ref(t, N, w, a);
            if (fabs(got - exact) > 1e-5 * mag + 1e-30) fail_msg("%s: dot %.9g, dequantized %.9g", ggml_type_name(t), got, exact);
        }
        free(w);
        free(a);
    }
}

/* nm_dot_tile_at: repacked Q4_K (a multiple of 8 weight rows) takes ggml's gemm order for the
 * first floor(batch/4)*4 rows of a batch and its gemv order for the rest; the SIMD kernel equals
 * the reference bit for bit wherever a tile sits. */
static void test_q4_k_repacked_places(void **state) {
    (void)state;
    enum { N = 512, MAXR = 5, MAXC = 11 };
    const uint32_t t = GGML_TYPE_Q4_K;
    size_t wrs;
    assert_int_equal(ggml_row_size(t, N, &wrs), 0);
    const size_t ars = nm_dot_act_row_size(t, N);
    uint8_t *w = malloc(wrs * MAXR), *a = malloc(ars * MAXC);
    float ref[MAXR * MAXC], got[MAXR * MAXC], one[MAXR * MAXC];
    const nm_dot_place places[] = {
        {.weight_rows = 64, .first_act_row = 0, .batch_rows = 256},  /* all gemm */
        {.weight_rows = 64, .first_act_row = 0, .batch_rows = 3},    /* all gemv */
        {.weight_rows = 64, .first_act_row = 0, .batch_rows = 1},
        {.weight_rows = 64, .first_act_row = 3, .batch_rows = 9},    /* gemm for rows 3..7, gemv after */
        {.weight_rows = 64, .first_act_row = 60, .batch_rows = 63},  /* 60..61 gemm, 62.. gemv */
        {.weight_rows = 64, .first_act_row = 64, .batch_rows = 127}, /* past the gemm rows */
    };
    int gemm_gemv_differ = 0;
    for (size_t pi = 0; pi < sizeof places / sizeof places[0]; pi++)
        for (int rows = 1; rows <= MAXR; rows += 2)
            for (int cols = 1; cols <= MAXC; cols += 1 + cols / 2) {
                const nm_dot_place *at = &places[pi];
                for (int r = 0; r < rows; r++) random_weights(t, w + r * wrs, N);
                random_acts(t, a, ars, cols, N);
                nm_dot_tile_at_ref(t, at, N, w, wrs, rows, a, ars, cols, ref, (size_t)rows);
                nm_dot_tile_at(t, at, N, w, wrs, rows, a, ars, cols, got, (size_t)rows);
                assert_memory_equal(ref, got, sizeof(float) * (size_t)(rows * cols));
                /* the same products as the vec_dot order, up to rounding */
                nm_dot_tile_ref(t, N, w, wrs, rows, a, ars, cols, one, (size_t)rows);
                for (int i = 0; i < rows * cols; i++)
                    if (fabsf(one[i] - ref[i]) > 1e-4f * (1.0f + fabsf(one[i])))
                        fail_msg("repacked order %.9g, vec_dot order %.9g", ref[i], one[i]);
                /* column by column, each as a one-column tile at its own row, gives the same */
                for (int c = 0; c < cols; c++) {
                    nm_dot_place pc = *at;
                    pc.first_act_row += c;
                    nm_dot_tile_at(t, &pc, N, w, wrs, rows, a + (size_t)c * ars, ars, 1, one + c * rows, (size_t)rows);
                }
                assert_memory_equal(ref, one, sizeof(float) * (size_t)(rows * cols));
                /* and the order does depend on the place: gemm against gemv */
                const nm_dot_place gemm = {.weight_rows = 64, .first_act_row = 0, .batch_rows = 4};
                const nm_dot_place gemv = {.weight_rows = 64, .first_act_row = 0, .batch_rows = 1};
                float x, y;
                nm_dot_tile_at_ref(t, &gemm, N, w, wrs, 1, a, ars, 1, &x, 1);
                nm_dot_tile_at_ref(t, &gemv, N, w, wrs, 1, a, ars, 1, &y, 1);
                gemm_gemv_differ += memcmp(&x, &y, sizeof x) != 0;
            }
    assert_true(gemm_gemv_differ > 0);
    /* not a multiple of 8 rows: not repacked, ggml's vec_dot order (nm_dot_tile) */
    const nm_dot_place odd = {.weight_rows = 60, .first_act_row = 0, .batch_rows = 256};
    for (int r = 0; r < 3; r++) random_weights(t, w + r * wrs, N);
    random_acts(t, a, ars, 5, N);
    nm_dot_tile_at(t, &odd, N, w, wrs, 3, a, ars, 5, got, 3);
    nm_dot_tile_ref(t, N, w, wrs, 3, a, ars, 5, ref, 3);
    assert_memory_equal(ref, got, sizeof(float) * 15);
    free(w);
    free(a);
}

/* Types ggml does not repack on x86-64 (Q6_K among them) ignore the place. */
static void test_unrepacked_ignore_place(void **state) {
    (void)state;
    enum { N = 512 };
    const uint32_t ts[] = {GGML_TYPE_Q6_K, GGML_TYPE_Q5_K, GGML_TYPE_Q8_0};
    const nm_dot_place at = {.weight_rows = 64, .first_act_row = 0, .batch_rows = 5};
    for (size_t ti = 0; ti < sizeof ts / sizeof ts[0]; ti++) {
        size_t wrs;
        assert_int_equal(ggml_row_size(ts[ti], N, &wrs), 0);
        const size_t ars = nm_dot_act_row_size(ts[ti], N);
        uint8_t *w = malloc(wrs * 3), *a = malloc(ars * 5);
        float ref[15], got[15];
        for (int r = 0; r < 3; r++) random_weights(ts[ti], w + r * wrs, N);
        random_acts(ts[ti], a, ars, 5, N);
        nm_dot_tile(ts[ti], N, w, wrs, 3, a, ars, 5, ref, 3);
        nm_dot_tile_at(ts[ti], &at, N, w, wrs, 3, a, ars, 5, got, 3);
        assert_memory_equal(ref, got, sizeof ref);
        free(w);
        free(a);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simd_matches_reference),
        cmocka_unit_test(test_dot_is_a_dot_product),
        cmocka_unit_test(test_q8_k_rules),
        cmocka_unit_test(test_q8_0_q8_1),
        cmocka_unit_test(test_k_quants_simd_bit_exact),
        cmocka_unit_test(test_k_quants_are_dot_products),
        cmocka_unit_test(test_q4_k_repacked_places),
        cmocka_unit_test(test_unrepacked_ignore_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
