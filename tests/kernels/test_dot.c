/* kernels/dot: activation quantizers against FORMATS.md's rules, and the SIMD kernels against
 * the scalar reference for every weight type. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/dot.h"
#include "formats/quants.h"
#include "kernels/dot_simd.h"
#include "kernels/dot_lowbit.h"
#include "formats/tensor.h"
#include "common/cpu.h"

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

/* Floats of varied magnitude (2^-12 .. 2^4) and sign, so sums cancel and round in many ways. */
static float varied(void) { return ldexpf(uniform(), (int)(next_u32() % 17) - 12); }

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
        case GGML_TYPE_Q2_K:
            put_f16(blk + 80, 0.001f * uniform());
            put_f16(blk + 82, 0.001f * uniform());
            break;
        case GGML_TYPE_Q3_K:
            put_f16(blk + 108, 0.001f * uniform());
            break;
        case GGML_TYPE_IQ4_NL: case GGML_TYPE_IQ4_XS:
            put_f16(blk, 0.001f * uniform());
            break;
        case GGML_TYPE_TQ1_0: /* every base-3 digit valid: bytes as the quantizer makes them */
            for (int k = 0; k < 52; k++) blk[k] = (uint8_t)((next_u32() % 243 * 256 + 242) / 243);
            put_f16(blk + 52, 0.01f * uniform());
            break;
        case GGML_TYPE_TQ2_0: /* 2-bit fields 0..2 only */
            for (int k = 0; k < 64; k++) {
                uint8_t v = 0;
                for (int f = 0; f < 4; f++) v |= (uint8_t)((next_u32() % 3) << (2 * f));
                blk[k] = v;
            }
            put_f16(blk + 64, 0.01f * uniform());
            break;
        }
    }
}

static const uint32_t types[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,
                                 GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q8_0, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K,
                                 GGML_TYPE_Q6_K, GGML_TYPE_Q2_K, GGML_TYPE_Q3_K, GGML_TYPE_IQ4_NL, GGML_TYPE_IQ4_XS};

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

/* The SIMD Q8_K quantizer gives the reference's bytes on blocks made to catch it out: ties in
 * magnitude with either sign first, NaN and infinity among finite values, -0 and denormals only,
 * products landing on .5, the largest element last, and plain varied values. */
static void test_q8_k_simd_edges(void **state) {
    (void)state;
    enum { NB = 12 };
    static float x[NB * 256];
    for (int i = 0; i < NB * 256; i++) x[i] = varied();
    float *b = x;
    b[10] = -3.0f, b[200] = 3.0f; /* tie, negative first */
    b += 256;
    b[5] = 3.0f, b[9] = -3.0f; /* tie, positive first */
    b += 256;
    b[17] = NAN, b[30] = 2.5f; /* a NaN is skipped by the max */
    b += 256;
    b[0] = -NAN;
    b += 256;
    b[40] = INFINITY; /* iscale -0: every product 0, inf × -0 is NaN */
    b += 256;
    for (int i = 0; i < 256; i++) b[i] = i % 2 ? -0.0f : 0.0f; /* zero block */
    b += 256;
    for (int i = 0; i < 256; i++) b[i] = ldexpf((float)(i - 128), -140); /* denormals */
    b += 256;
    for (int i = 0; i < 256; i++) b[i] = ((float)(i % 255) - 127.0f + 0.5f) / 127.5f; /* .5 products */
    b[255] = -1.0f;
    b += 256;
    b[255] = 40.0f; /* largest last */
    b += 256;
    for (int i = 0; i < 256; i++) b[i] = 1.0f; /* all equal */
    b += 256;
    b[3] = -5.0f, b[4] = 5.0f; /* tie within eight */
    static uint8_t got[NB * 292], want[NB * 292];
    memset(got, 0x5A, sizeof got);
    nm_dot_quantize_act(GGML_TYPE_Q4_K, x, got, NB * 256);
    nm_dot_quantize_act_ref(GGML_TYPE_Q4_K, x, want, NB * 256);
    for (int k = 0; k < NB; k++)
        if (memcmp(got + 292 * k, want + 292 * k, 292))
            fail_msg("Q8_K block %d: the dispatched quantizer's bytes differ from the reference's", k);
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

/* Q4_K, Q6_K and the low-bit types (kernels/dot_lowbit.c) reproduce ggml's float order, so the
 * SIMD kernels must equal the reference bit for bit, for every tile shape (one to four
 * activation rows at a time, and leftovers). */
static const uint32_t k_types[] = {GGML_TYPE_Q4_K, GGML_TYPE_Q6_K, GGML_TYPE_Q2_K, GGML_TYPE_Q3_K, GGML_TYPE_IQ4_XS,
                                   GGML_TYPE_IQ4_NL, GGML_TYPE_TQ1_0, GGML_TYPE_TQ2_0};

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
            nm_dequantize_row((uint32_t)nm_dot_act_type(t), a, af, N);
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
    enum { N = 512, MAXR = 19, MAXC = 11 };
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


/* ---- bit-exact kernels: F32, F16, BF16 and Q4_0 at every dispatch level ---- */

static const uint32_t exact_types[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q4_0};

static bool have_avx2(void) {
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && nm_cpu()->f16c;
#else
    return false;
#endif
}
static bool have_avx512(void) {
#if defined(__x86_64__)
    return have_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vnni");
#else
    return false;
#endif
}

/* Weights of varied magnitude (float types) or random Q4_0 blocks with varied scales. */
static void varied_weights(uint32_t t, uint8_t *w, int64_t n) {
    if (t == GGML_TYPE_Q4_0) {
        random_weights(t, w, n);
        for (int64_t b = 0; b < n / 32; b++) put_f16(w + 18 * b, varied());
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        const float v = varied();
        if (t == GGML_TYPE_F32) memcpy(w + 4 * i, &v, 4);
        else {
            const uint16_t h = t == GGML_TYPE_F16 ? nm_f32_to_f16(v) : nm_f32_to_bf16(v);
            memcpy(w + 2 * i, &h, 2);
        }
    }
}

enum { SENTINEL = 0x7fc0dead };

/* What a tile must give: the AVX2 one-row kernel for each of nr weight rows x nc activation rows,
 * ref[c * os + r]. */
static void avx2_one_row_reference(uint32_t t, int64_t N, const uint8_t *w, size_t wrs, int nr, const uint8_t *a,
                                   size_t ars, int nc, float *ref, size_t os) {
    for (int c = 0; c < nc; c++)
        for (int r = 0; r < nr; r++)
            assert_true(nm_dot_avx2(t, N, w + r * wrs, a + c * ars, &ref[(size_t)c * os + (size_t)r]));
}

static void fill_sentinel(float *o, size_t n) {
    const uint32_t v = SENTINEL;
    for (size_t i = 0; i < n; i++) memcpy(o + i, &v, 4);
}

/* out must equal ref bit for bit inside the nr × nc tile (stride os) and be untouched outside. */
static void expect_tile(const char *what, uint32_t t, int64_t n, int nr, int nc, size_t os, const float *ref,
                        const float *out, size_t size) {
    for (size_t i = 0; i < size; i++) {
        const bool inside = i / os < (size_t)nc && i % os < (size_t)nr;
        uint32_t got, want = SENTINEL;
        memcpy(&got, out + i, 4);
        if (inside) memcpy(&want, ref + i, 4);
        if (got != want)
            fail_msg("%s %s n=%lld tile %dx%d: element (row %zu, col %zu) is %08x (%g), want %08x (%g)", what,
                     ggml_type_name(t), (long long)n, nr, nc, i % os, i / os, got, out[i], want, ref[i]);
    }
}

typedef bool (*tile_fn)(uint32_t, int64_t, const void *, size_t, int, const void *, size_t, const void *, size_t, int,
                        float *, size_t);

/* The AVX2 float tile's two schedules, whichever this CPU runs (false for other types; BF16 has
 * only the panels). */
static bool float_rows(uint32_t t, int64_t n, const void *w, size_t ws, int nr, const void *a, size_t as,
                       const void *aux, size_t auxs, int nc, float *out, size_t os) {
    return t != GGML_TYPE_BF16 && nm_dot_tile_float_avx2(t, true, n, w, ws, nr, a, as, aux, auxs, nc, out, os);
}
static bool float_panels(uint32_t t, int64_t n, const void *w, size_t ws, int nr, const void *a, size_t as,
                         const void *aux, size_t auxs, int nc, float *out, size_t os) {
    return nm_dot_tile_float_avx2(t, false, n, w, ws, nr, a, as, aux, auxs, nc, out, os);
}

static void check_exact(uint32_t t, int64_t n, int max_rows, int max_cols) {
    size_t wrs;
    assert_int_equal(ggml_row_size(t, (uint64_t)n, &wrs), 0);
    const size_t ars = nm_dot_act_row_size(t, n);
    uint8_t *w = malloc(wrs * (size_t)max_rows), *a = malloc(ars * (size_t)max_cols);
    float *x = malloc((size_t)n * sizeof(float));
    const size_t os = (size_t)max_rows + 3, size = os * (size_t)max_cols;
    float *ref = malloc(size * sizeof(float)), *out = malloc(size * sizeof(float));
    assert_non_null(w);
    assert_non_null(a);
    assert_non_null(x);
    assert_non_null(ref);
    assert_non_null(out);
    const size_t auxs = nm_dot_act_aux_row_size(t, n);
    uint8_t *aux = auxs ? malloc(auxs * (size_t)max_cols) : NULL;
    assert_true(auxs == 0 || aux);
    for (int r = 0; r < max_rows; r++) varied_weights(t, w + (size_t)r * wrs, n);
    for (int c = 0; c < max_cols; c++) {
        for (int64_t i = 0; i < n; i++) x[i] = varied() * (1.0f + (float)c);
        nm_dot_quantize_act_ref(t, x, a + (size_t)c * ars, n);
        if (aux) nm_dot_act_aux(t, n, a + (size_t)c * ars, aux + (size_t)c * auxs);
    }
    const bool rows = (t == GGML_TYPE_F32 || t == GGML_TYPE_F16) && have_avx2(),
               panels = (rows || t == GGML_TYPE_BF16) && have_avx2();
    const tile_fn levels[] = {have_avx2() ? nm_dot_tile_avx2 : NULL, have_avx512() ? nm_dot_tile_avx512 : NULL,
                              rows ? float_rows : NULL, panels ? float_panels : NULL};
    const char *level_names[] = {"AVX2", "AVX-512", "AVX2 whole rows", "AVX2 panels"};
    for (int nr = 1; nr <= max_rows; nr++)
        for (int nc = 1; nc <= max_cols; nc++) {
            if (nr != max_rows && nc != max_cols && nr > 3 && nc > 3 && (nr + nc) % 3) continue; /* enough shapes */
            fill_sentinel(ref, size);
            for (int c = 0; c < nc; c++)
                for (int r = 0; r < nr; r++)
                    ref[(size_t)c * os + (size_t)r] = nm_dot_ref(t, n, w + (size_t)r * wrs, a + (size_t)c * ars);
            fill_sentinel(out, size);
            nm_dot_tile_ref(t, n, w, wrs, nr, a, ars, nc, out, os);
            expect_tile("nm_dot_tile_ref", t, n, nr, nc, os, ref, out, size);
            fill_sentinel(out, size);
            nm_dot_tile(t, n, w, wrs, nr, a, ars, nc, out, os);
            expect_tile("nm_dot_tile", t, n, nr, nc, os, ref, out, size);
            fill_sentinel(out, size);
            nm_dot_tile_aux(t, n, w, wrs, nr, a, ars, aux, auxs, nc, out, os);
            expect_tile("nm_dot_tile_aux", t, n, nr, nc, os, ref, out, size);
            for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
                if (!levels[l]) continue;
                fill_sentinel(out, size);
                if (aux) { /* without the aux rows: decline, or do it another way with the same result */
                    if (levels[l](t, n, w, wrs, nr, a, ars, NULL, 0, nc, out, os))
                        expect_tile(level_names[l], t, n, nr, nc, os, ref, out, size);
                    fill_sentinel(out, size);
                }
                const bool done = levels[l](t, n, w, wrs, nr, a, ars, aux, auxs, nc, out, os);
                /* AVX-512 leaves float rows with a tail (n % 8) to AVX2 */
                if (!done && !(l == 1 && n % 8 != 0)) fail_msg("%s has no %s tile kernel", level_names[l], ggml_type_name(t));
                if (done) expect_tile(level_names[l], t, n, nr, nc, os, ref, out, size);
            }
        }
    for (int r = 0; r < max_rows; r++)
        for (int c = 0; c < max_cols; c++) {
            const float want = nm_dot_ref(t, n, w + (size_t)r * wrs, a + (size_t)c * ars);
            float got = nm_dot(t, n, w + (size_t)r * wrs, a + (size_t)c * ars);
            if (memcmp(&got, &want, 4)) fail_msg("nm_dot %s n=%lld: %g, reference %g", ggml_type_name(t), (long long)n, got, want);
            if (have_avx2()) {
                assert_true(nm_dot_avx2(t, n, w + (size_t)r * wrs, a + (size_t)c * ars, &got));
                if (memcmp(&got, &want, 4)) fail_msg("nm_dot_avx2 %s n=%lld: %g, reference %g", ggml_type_name(t), (long long)n, got, want);
            }
        }
    free(w);
    free(a);
    free(aux);
    free(x);
    free(ref);
    free(out);
}

/* Types whose SIMD order is ggml's vec_dot lane order rather than the scalar reference's, and
 * Q6_K: the AVX2 tile kernels (register-blocked several rows × several activation rows; for Q5_K
 * and Q6_K, past a number of activation rows, on weights unpacked once per tile) give each
 * output exactly what the AVX2 one-row kernel gives, and leave the rest of the output alone. */
static void test_avx2_tiles_match_row_kernel(void **state) {
    (void)state;
    if (!have_avx2()) skip();
    static const uint32_t vec_dot_types[] = {GGML_TYPE_Q5_K, GGML_TYPE_Q6_K, GGML_TYPE_Q8_0, GGML_TYPE_Q5_0,
                                             GGML_TYPE_Q4_1, GGML_TYPE_Q5_1};
    enum { N = 768, MAXR = 9, MAXC = 27 }; /* Q6_K's unpacked tile starts at 24 activation rows */
    for (size_t ti = 0; ti < sizeof vec_dot_types / sizeof vec_dot_types[0]; ti++) {
        const uint32_t t = vec_dot_types[ti];
        size_t wrs;
        assert_int_equal(ggml_row_size(t, N, &wrs), 0);
        const size_t ars = nm_dot_act_row_size(t, N), os = MAXR + 2, size = os * MAXC;
        uint8_t *w = malloc(wrs * MAXR), *a = malloc(ars * MAXC);
        float ref[(MAXR + 2) * MAXC], out[(MAXR + 2) * MAXC];
        for (int r = 0; r < MAXR; r++) random_weights(t, w + r * wrs, N);
        random_acts(t, a, ars, MAXC, N);
        for (int nr = 1; nr <= MAXR; nr++)
            for (int nc = 1; nc <= MAXC; nc++) {
                avx2_one_row_reference(t, N, w, wrs, nr, a, ars, nc, ref, os);
                fill_sentinel(out, size);
                assert_true(nm_dot_tile_avx2(t, N, w, wrs, nr, a, ars, NULL, 0, nc, out, os));
                expect_tile("AVX2 tile", t, N, nr, nc, os, ref, out, size);
            }
        free(w);
        free(a);
    }
}

/* The Q8_0 tile with its aux rows (the activations' scales widened once per batch) and without
 * them, for rows whose block count is not a multiple of the tile's eight-block scale groups:
 * each output exactly what the AVX2 one-row kernel gives. */
static void test_avx2_q8_0_tile_aux(void **state) {
    (void)state;
    if (!have_avx2()) skip();
    const uint32_t t = GGML_TYPE_Q8_0;
    static const int64_t ns[] = {32, 224, 800, 2080};
    enum { MAXR = 5, MAXC = 6 };
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
        const int64_t N = ns[ni];
        size_t wrs;
        assert_int_equal(ggml_row_size(t, (uint64_t)N, &wrs), 0);
        const size_t ars = nm_dot_act_row_size(t, N), xrs = nm_dot_act_aux_row_size(t, N), os = MAXR + 2,
                     size = os * MAXC;
        assert_true(xrs > 0);
        uint8_t *w = malloc(wrs * MAXR), *a = malloc(ars * MAXC), *x = malloc(xrs * MAXC);
        float ref[(MAXR + 2) * MAXC], out[(MAXR + 2) * MAXC];
        for (int r = 0; r < MAXR; r++) random_weights(t, w + r * wrs, N);
        random_acts(t, a, ars, MAXC, N);
        for (int c = 0; c < MAXC; c++) nm_dot_act_aux(t, N, a + c * ars, x + c * xrs);
        for (int nr = 1; nr <= MAXR; nr++)
            for (int nc = 1; nc <= MAXC; nc++) {
                avx2_one_row_reference(t, N, w, wrs, nr, a, ars, nc, ref, os);
                fill_sentinel(out, size);
                assert_true(nm_dot_tile_avx2(t, N, w, wrs, nr, a, ars, x, xrs, nc, out, os));
                expect_tile("AVX2 Q8_0 tile with aux", t, N, nr, nc, os, ref, out, size);
                fill_sentinel(out, size);
                assert_true(nm_dot_tile_avx2(t, N, w, wrs, nr, a, ars, NULL, 0, nc, out, os));
                expect_tile("AVX2 Q8_0 tile without aux", t, N, nr, nc, os, ref, out, size);
                fill_sentinel(out, size);
                nm_dot_tile(t, N, w, wrs, nr, a, ars, nc, out, os);
                expect_tile("Q8_0 nm_dot_tile", t, N, nr, nc, os, ref, out, size);
            }
        free(w);
        free(a);
        free(x);
    }
}

/* The low-bit types at each SIMD level by its own entry point (the dispatch picks only the
 * highest): the AVX2 and AVX-512 tiles give the reference's bits, for row counts
 * past their groups of 2, 8 and 16 and column counts past their groups of 4 and 6. */
/* The SIMD IQ4_NL packing gives nm_iq4_nl_pack's bytes: both groups, both biases, a last group
 * with missing rows, random nibbles and scales (NaN and infinity included). */
static void test_iq4_nl_pack_avx2(void **state) {
    (void)state;
    if (!have_avx2()) skip();
    enum { NB = 5, ROWS = 21 };
    uint8_t w[ROWS * NB * 18];
    for (size_t i = 0; i < sizeof w; i++) w[i] = (uint8_t)(rand() & 0xFF);
    put_f16(w + 18, 1.0f);
    w[36] = 0x00, w[37] = 0x7C; /* +inf */
    w[54] = 0x01, w[55] = 0x7E; /* a NaN */
    for (int gi = 0; gi < 2; gi++)
        for (int bias = 0; bias <= 128; bias += 128) {
            const int group = gi ? 16 : 8, groups = (ROWS + group - 1) / group;
            const size_t size = (size_t)groups * NB * nm_iq4_nl_pack_size(group);
            uint8_t *ref = malloc(size), *got = malloc(size);
            assert_true(ref && got);
            memset(ref, 0x5A, size);
            memset(got, 0xA5, size);
            nm_iq4_nl_pack(NB, w, NB * 18, ROWS, group, bias, ref);
            nm_iq4_nl_pack_avx2(NB, w, NB * 18, ROWS, group, bias, got);
            if (memcmp(ref, got, size)) fail_msg("IQ4_NL packing, group %d bias %d: bytes differ", group, bias);
            free(ref);
            free(got);
        }
}

static void test_lowbit_levels(void **state) {
    (void)state;
    if (!have_avx2()) skip();
    static const uint32_t ts[] = {GGML_TYPE_Q2_K, GGML_TYPE_Q3_K, GGML_TYPE_IQ4_XS, GGML_TYPE_IQ4_NL, GGML_TYPE_TQ1_0,
                                  GGML_TYPE_TQ2_0};
    enum { N = 768, MAXR = 19, MAXC = 9 };
    for (size_t ti = 0; ti < sizeof ts / sizeof ts[0]; ti++) {
        const uint32_t t = ts[ti];
        size_t wrs;
        assert_int_equal(ggml_row_size(t, N, &wrs), 0);
        const size_t ars = nm_dot_act_row_size(t, N), os = MAXR + 2, size = os * MAXC;
        uint8_t *w = malloc(wrs * MAXR), *a = malloc(ars * MAXC);
        float ref[(MAXR + 2) * MAXC], out[(MAXR + 2) * MAXC];
        for (int r = 0; r < MAXR; r++) random_weights(t, w + r * wrs, N);
        random_acts(t, a, ars, MAXC, N);
        for (int nr = 1; nr <= MAXR; nr += 3)
            for (int nc = 1; nc <= MAXC; nc += 2) {
                fill_sentinel(ref, size);
                nm_dot_tile_ref(t, N, w, wrs, nr, a, ars, nc, ref, os);
                fill_sentinel(out, size);
                assert_true(nm_dot_tile_avx2(t, N, w, wrs, nr, a, ars, NULL, 0, nc, out, os));
                expect_tile("AVX2 tile", t, N, nr, nc, os, ref, out, size);
                if (have_avx512()) {
                    fill_sentinel(out, size);
                    assert_true(nm_dot_tile_avx512(t, N, w, wrs, nr, a, ars, NULL, 0, nc, out, os));
                    expect_tile("AVX-512 tile", t, N, nr, nc, os, ref, out, size);
                }
            }
        free(w);
        free(a);
    }
}

/* The AVX-512 Q8_0, Q5_K and Q6_K tiles (two rows per register, VNNI integer sums) give each output
 * exactly what the AVX2 one-row kernel gives, for odd row counts, every column count up to past
 * two register blocks, block counts short of and past a multiple of anything, and long rows;
 * Q8_0 without its aux rows declines. */
static void test_avx512_vec_dot_tiles(void **state) {
    (void)state;
    if (!have_avx512()) skip();
    static const struct {
        uint32_t t;
        int64_t ns[5];
    } cases[] = {{GGML_TYPE_Q8_0, {32, 96, 800, 2080, 5632}},
                 {GGML_TYPE_Q5_K, {256, 768, 1280, 2048, 5632}},
                 {GGML_TYPE_Q6_K, {256, 768, 1280, 2048, 5632}}};
    enum { MAXR = 19, MAXC = 11 };
    for (size_t ti = 0; ti < sizeof cases / sizeof cases[0]; ti++)
        for (size_t ni = 0; ni < 5; ni++) {
            const uint32_t t = cases[ti].t;
            const int64_t N = cases[ti].ns[ni];
            size_t wrs;
            assert_int_equal(ggml_row_size(t, (uint64_t)N, &wrs), 0);
            const size_t ars = nm_dot_act_row_size(t, N), xrs = nm_dot_act_aux_row_size(t, N), os = MAXR + 2,
                         size = os * MAXC;
            uint8_t *w = malloc(wrs * MAXR), *a = malloc(ars * MAXC), *x = xrs ? malloc(xrs * MAXC) : NULL;
            float ref[(MAXR + 2) * MAXC], out[(MAXR + 2) * MAXC];
            assert_true(w && a && (x || !xrs));
            for (int r = 0; r < MAXR; r++) random_weights(t, w + r * wrs, N);
            random_acts(t, a, ars, MAXC, N);
            for (int c = 0; c < MAXC && x; c++) nm_dot_act_aux(t, N, a + c * ars, x + c * xrs);
            for (int nr = 1; nr <= MAXR; nr++)
                for (int nc = 1; nc <= MAXC; nc++) {
                    if (N > 800 && nr % 4 != 1 && nc % 3 != 1) continue; /* long rows: fewer shapes */
                    avx2_one_row_reference(t, N, w, wrs, nr, a, ars, nc, ref, os);
                    fill_sentinel(out, size);
                    assert_true(nm_dot_tile_avx512(t, N, w, wrs, nr, a, ars, x, xrs, nc, out, os));
                    expect_tile("AVX-512 tile", t, N, nr, nc, os, ref, out, size);
                    fill_sentinel(out, size);
                    nm_dot_tile(t, N, w, wrs, nr, a, ars, nc, out, os);
                    expect_tile("nm_dot_tile", t, N, nr, nc, os, ref, out, size);
                }
            if (x) assert_false(nm_dot_tile_avx512(t, N, w, wrs, 3, a, ars, NULL, 0, 2, out, os));
            free(w);
            free(a);
            free(x);
        }
}

/* The AVX-512 repacked Q4_K kernel (sixteen rows per register, scales applied in float) equals
 * the reference and the AVX2 kernel bit for bit: long rows, more rows than two register groups,
 * gemm and gemv columns in one tile, and the largest integer sums Q4_K allows (every nibble 15,
 * every scale and min 63, activations ±127), where its float sums are exact only just. */
static void test_q4_k_repacked_avx512(void **state) {
    (void)state;
    if (!have_avx512()) skip();
    const uint32_t t = GGML_TYPE_Q4_K;
    static const int64_t ns[] = {256, 2048, 5632};
    enum { MAXR = 40, MAXC = 9 };
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
        for (int extreme = 0; extreme < 2; extreme++) {
            const int64_t N = ns[ni];
            size_t wrs;
            assert_int_equal(ggml_row_size(t, (uint64_t)N, &wrs), 0);
            const size_t ars = nm_dot_act_row_size(t, N), os = MAXR + 3, size = os * MAXC;
            uint8_t *w = malloc(wrs * MAXR), *a = malloc(ars * MAXC);
            float *x = malloc((size_t)N * sizeof(float)), *ref = malloc(size * sizeof(float)),
                  *out = malloc(size * sizeof(float));
            assert_true(w && a && x && ref && out);
            for (int r = 0; r < MAXR; r++) random_weights(t, w + r * wrs, N);
            if (extreme)
                for (int r = 0; r < MAXR; r++)
                    for (int64_t b = 0; b < N / 256; b++) memset(w + r * wrs + b * 144 + 4, 0xFF, 140);
            for (int c = 0; c < MAXC; c++) {
                for (int64_t i = 0; i < N; i++) x[i] = extreme ? (c & 1 ? -1.0f : 1.0f) : uniform() * (1.0f + (float)c);
                nm_dot_quantize_act(t, x, a + (size_t)c * ars, N);
            }
            for (int nr = 8; nr <= MAXR; nr += nr < 16 ? 3 : 8)
                for (int nc = 1; nc <= MAXC; nc += 2)
                    for (int batch = 0; batch <= 8; batch += 4) { /* ggml's gemm takes rows in fours */
                        const nm_dot_place at = {.weight_rows = 64, .first_act_row = 0, .batch_rows = batch};
                        const int gemm = batch < nc ? batch : nc;
                        fill_sentinel(ref, size);
                        nm_dot_tile_at_ref(t, &at, N, w, wrs, nr, a, ars, nc, ref, os);
                        fill_sentinel(out, size);
                        assert_true(nm_dot_tile_repacked_avx512(t, gemm, N, w, wrs, nr, a, ars, nc, out, os));
                        expect_tile("AVX-512 repacked Q4_K", t, N, nr, nc, os, ref, out, size);
                        fill_sentinel(out, size);
                        assert_true(nm_dot_tile_repacked_avx2(t, gemm, N, w, wrs, nr, a, ars, nc, out, os));
                        expect_tile("AVX2 repacked Q4_K", t, N, nr, nc, os, ref, out, size);
                    }
            free(w);
            free(a);
            free(x);
            free(ref);
            free(out);
        }
}

static void test_exact_kernels_small_tiles(void **state) {
    (void)state;
    for (size_t ti = 0; ti < sizeof exact_types / sizeof exact_types[0]; ti++) {
        const uint32_t t = exact_types[ti];
        check_exact(t, t == GGML_TYPE_Q4_0 ? 32 : 8, 37, 13);
        check_exact(t, t == GGML_TYPE_Q4_0 ? 96 : 72, 37, 13);
    }
}

/* Long rows: the AVX-512 float kernel's K blocks and the Q4_0 block chains; float tails. */
static void test_exact_kernels_long_rows(void **state) {
    (void)state;
    static const int64_t float_lengths[] = {13, 100, 1032, 2048, 5640};
    static const int64_t q4_lengths[] = {544, 2048, 5632};
    for (size_t ti = 0; ti < sizeof exact_types / sizeof exact_types[0]; ti++) {
        const uint32_t t = exact_types[ti];
        const bool q4 = t == GGML_TYPE_Q4_0;
        const int64_t *lengths = q4 ? q4_lengths : float_lengths;
        const size_t nl = q4 ? sizeof q4_lengths / sizeof q4_lengths[0] : sizeof float_lengths / sizeof float_lengths[0];
        for (size_t li = 0; li < nl; li++) check_exact(t, lengths[li], 35, 9);
    }
}

/* Wide tiles of long float rows: several reduction slices, several blocks of activation rows and
 * several chunks of rows in one AVX2 (and AVX-512) tile (accumulators wait between slices), at
 * one shape each. */
static void test_exact_float_wide_tiles(void **state) {
    (void)state;
    if (!have_avx2()) skip();
    static const uint32_t ft[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16};
    const int64_t n = 5640;
    const int nr = 70, nc = 200; /* a chunk of 64 rows and one of 6 */
    for (size_t ti = 0; ti < sizeof ft / sizeof ft[0]; ti++) {
        const uint32_t t = ft[ti];
        size_t wrs;
        assert_int_equal(ggml_row_size(t, (uint64_t)n, &wrs), 0);
        const size_t ars = nm_dot_act_row_size(t, n), auxs = nm_dot_act_aux_row_size(t, n);
        const size_t os = (size_t)nr + 3, size = os * (size_t)nc;
        uint8_t *w = malloc(wrs * (size_t)nr), *a = malloc(ars * (size_t)nc);
        uint8_t *aux = auxs ? malloc(auxs * (size_t)nc) : NULL;
        float *x = malloc((size_t)n * sizeof(float));
        float *ref = malloc(size * sizeof(float)), *out = malloc(size * sizeof(float));
        assert_true(w && a && x && ref && out && (auxs == 0 || aux));
        for (int r = 0; r < nr; r++) varied_weights(t, w + (size_t)r * wrs, n);
        for (int c = 0; c < nc; c++) {
            for (int64_t i = 0; i < n; i++) x[i] = varied() * (1.0f + (float)(c % 7));
            nm_dot_quantize_act_ref(t, x, a + (size_t)c * ars, n);
            if (aux) nm_dot_act_aux(t, n, a + (size_t)c * ars, aux + (size_t)c * auxs);
        }
        fill_sentinel(ref, size);
        for (int c = 0; c < nc; c++)
            for (int r = 0; r < nr; r++)
                ref[(size_t)c * os + (size_t)r] = nm_dot_ref(t, n, w + (size_t)r * wrs, a + (size_t)c * ars);
        fill_sentinel(out, size);
        assert_true(nm_dot_tile_avx2(t, n, w, wrs, nr, a, ars, aux, auxs, nc, out, os));
        expect_tile("AVX2 wide", t, n, nr, nc, os, ref, out, size);
        for (int h = 0; h < 2; h++) { /* both schedules, whichever this CPU runs (BF16: panels only) */
            if (h == 1 && t == GGML_TYPE_BF16) continue;
            fill_sentinel(out, size);
            assert_true(nm_dot_tile_float_avx2(t, h == 1, n, w, wrs, nr, a, ars, aux, auxs, nc, out, os));
            expect_tile(h ? "AVX2 wide rows" : "AVX2 wide panels", t, n, nr, nc, os, ref, out, size);
        }
        if (have_avx512()) { /* its panels of 32 rows, blocks of 18 activation rows, K sub-slices */
            fill_sentinel(out, size);
            assert_true(nm_dot_tile_avx512(t, n, w, wrs, nr, a, ars, aux, auxs, nc, out, os));
            expect_tile("AVX-512 wide", t, n, nr, nc, os, ref, out, size);
            for (int h = 0; h < 2 && t == GGML_TYPE_F16; h++) { /* both schedules, whichever this CPU runs */
                fill_sentinel(out, size);
                assert_true(nm_dot_tile_f16_avx512(h == 1, n, w, wrs, nr, a, ars, aux, auxs, nc, out, os));
                expect_tile(h ? "AVX-512 wide F16 rows" : "AVX-512 wide F16 pairs", t, n, nr, nc, os, ref, out, size);
            }
        }
        free(w);
        free(a);
        free(aux);
        free(x);
        free(ref);
        free(out);
    }
}

/* The reference orders themselves (dot.c), on values where other orders give other floats:
 * F16 in tinyBLAS's eight sums, Q4_0 in one chain of fused multiply-adds per output. */
static float f16_dot_of(const int *idx, const float *prod, int m) {
    uint16_t w[16], a[16];
    for (int i = 0; i < 16; i++) w[i] = a[i] = nm_f32_to_f16(0.0f);
    for (int i = 0; i < m; i++) { /* each product as 1·p or 2^-12·2^-12 */
        const bool tiny = prod[i] < 1.0f;
        w[idx[i]] = nm_f32_to_f16(tiny ? ldexpf(1.0f, -12) : prod[i]);
        a[idx[i]] = nm_f32_to_f16(tiny ? ldexpf(1.0f, -12) : 1.0f);
    }
    return nm_dot_ref(GGML_TYPE_F16, 16, w, a);
}

static void test_reference_orders(void **state) {
    (void)state;
    const float one = 1.0f, ulp_half = ldexpf(1.0f, -24);
    /* 1 (element 0) + 2^-24 (element 1) + 2^-24 (element 5): the two small ones share sum 1 and
     * meet before the 1 does, giving 1 + 2^-23; left to right, each would vanish into the 1. */
    const int i1[] = {0, 1, 5};
    const float p1[] = {one, ulp_half, ulp_half};
    const float got1 = f16_dot_of(i1, p1, 3), want1 = one + 2 * ulp_half;
    assert_memory_equal(&got1, &want1, 4);
    /* 1 (element 0) + 2^-24 (element 4) + 2^-24 (element 1): here sum 0 folds 1 + 2^-24 = 1 first
     * and the other 2^-24 vanishes too; an exact (double) sum would give 1 + 2^-23. */
    const int i2[] = {0, 4, 1};
    const float got2 = f16_dot_of(i2, p1, 3);
    assert_memory_equal(&got2, &one, 4);

    /* Q4_0, two blocks: s = fma(isum1, d1, fma(isum0, d0, 0)), where the rounded product
     * isum1·d1 added separately would differ in the last bit. */
    uint8_t w[36], a[68];
    memset(w, 0x99, 18);      /* every nibble 9: weight +1 */
    memset(w + 18, 0xBB, 18); /* weight +3 ... */
    w[18 + 2 + 5] = 0xBC;     /* ... but element 5 has +4 */
    put_f16(w, 1.0f / 3.0f);
    put_f16(w + 18, 0.123f);
    put_f16(a, 0.7f);
    put_f16(a + 34, 0.84f);
    int is0 = 0, is1 = 0;
    for (int j = 0; j < 32; j++) {
        const int y0 = j - 16 + (j == 7), y1 = j - 16;
        a[2 + j] = (uint8_t)(int8_t)y0;
        a[36 + j] = (uint8_t)(int8_t)y1;
        is0 += y0;
        is1 += (j == 5 ? 4 : 3) * y1;
    }
    const float d0 = nm_f16_to_f32(nm_f32_to_f16(1.0f / 3.0f)) * nm_f16_to_f32(nm_f32_to_f16(0.7f));
    const float d1 = nm_f16_to_f32(nm_f32_to_f16(0.123f)) * nm_f16_to_f32(nm_f32_to_f16(0.84f));
    const float want_q = fmaf((float)is1, d1, fmaf((float)is0, d0, 0.0f));
    float unfused = 0.0f;
    unfused += (float)is0 * d0;
    unfused += (float)is1 * d1;
    assert_true(memcmp(&want_q, &unfused, 4) != 0); /* the data tells the two orders apart */
    const float got_q = nm_dot_ref(GGML_TYPE_Q4_0, 64, w, a);
    assert_memory_equal(&got_q, &want_q, 4);
}

/* nm_dot_f32_columns: every level memcmp-equal to the reference for 1..11 x rows, nothing
 * written past n_cols or between the output rows. */
typedef void (*columns_fn)(int64_t, const float *, size_t, int, const float *, size_t, int64_t, float *, size_t);

static void test_columns_exact(void **state) {
    (void)state;
    static const int64_t ns[] = {1, 7, 64, 300};
    static const int64_t cols[] = {1, 3, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 129, 513};
    static const int nxs[] = {1, 2, 3, 4, 5, 8, 9, 11};
    enum { MAX_N = 300, MAX_COLS = 513, STRIDE = 530, MAX_X = 11, X_STRIDE = 301, OUT_STRIDE = 520 };
    float *x = malloc((size_t)MAX_X * X_STRIDE * sizeof(float)), *m = malloc((size_t)MAX_N * STRIDE * sizeof(float));
    const size_t out_size = (size_t)MAX_X * OUT_STRIDE;
    float *ref = malloc(out_size * sizeof(float)), *out = malloc(out_size * sizeof(float));
    assert_true(x && m && ref && out);
    for (size_t i = 0; i < (size_t)MAX_X * X_STRIDE; i++) x[i] = varied();
    for (size_t i = 0; i < (size_t)MAX_N * STRIDE; i++) m[i] = varied();
    const columns_fn levels[] = {nm_dot_f32_columns, have_avx2() ? nm_dot_f32_columns_avx2 : NULL,
                                 have_avx512() ? nm_dot_f32_columns_avx512 : NULL};
    const char *names[] = {"nm_dot_f32_columns", "AVX2", "AVX-512"};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t b = 0; b < sizeof cols / sizeof cols[0]; b++)
            for (size_t c = 0; c < sizeof nxs / sizeof nxs[0]; c++) {
                const int64_t n = ns[a], nc = cols[b];
                const int nx = nxs[c];
                fill_sentinel(ref, out_size);
                nm_dot_f32_columns_ref(n, x, X_STRIDE, nx, m, STRIDE, nc, ref, OUT_STRIDE);
                /* the reference is the plain sequential sum */
                for (int r = 0; r < nx; r++)
                    for (int64_t j = r; j < nc; j += 37) {
                        float d = 0.0f;
                        for (int64_t i = 0; i < n; i++) d += x[(size_t)r * X_STRIDE + (size_t)i] * m[(size_t)i * STRIDE + (size_t)j];
                        assert_memory_equal(&d, &ref[(size_t)r * OUT_STRIDE + (size_t)j], 4);
                    }
                for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
                    if (!levels[l]) continue;
                    fill_sentinel(out, out_size);
                    levels[l](n, x, X_STRIDE, nx, m, STRIDE, nc, out, OUT_STRIDE);
                    if (memcmp(out, ref, out_size * sizeof(float)))
                        fail_msg("%s: n=%lld, %d x rows, %lld columns differ from the reference", names[l],
                                 (long long)n, nx, (long long)nc);
                }
            }
    free(x);
    free(m);
    free(ref);
    free(out);
}

/* The dispatched activation quantizers give the reference's bytes, ties and zeros included. */
static void test_quantize_act_exact(void **state) {
    (void)state;
    enum { N = 4096 };
    float *x = malloc(N * sizeof(float));
    uint8_t *ref = malloc(N * 5), *got = malloc(N * 5);
    assert_true(x && ref && got);
    for (int i = 0; i < N; i++) {
        const int blk = i / 32;
        if (blk % 4 == 0) x[i] = (i % 32 == 0) ? 127.0f : (float)((i * 37) % 255 - 127) + 0.5f; /* ties */
        else if (blk % 4 == 1) x[i] = (i & 1) ? -0.0f : 0.0f;                                  /* zero block */
        else x[i] = varied();
    }
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t t = types[ti];
        const size_t ars = nm_dot_act_row_size(t, N);
        memset(ref, 0x5A, ars);
        memset(got, 0xA5, ars);
        nm_dot_quantize_act_ref(t, x, ref, N);
        nm_dot_quantize_act(t, x, got, N);
        if (memcmp(ref, got, ars)) fail_msg("%s: quantized activations differ from the reference", ggml_type_name(t));
    }
    free(x);
    free(ref);
    free(got);
}

/* ggml's own float dot order (where tinyBLAS declines): the AVX2 kernel equals the reference bit
 * for bit at lengths with and without a tail, and the reference is the dot product; the shape rule. */
static void test_float_vec_order(void **state) {
    (void)state;
    assert_true(nm_dot_float_vec_order(GGML_TYPE_F16, 768, 50257));   /* GPT-2's output: rows not 4k */
    assert_true(nm_dot_float_vec_order(GGML_TYPE_F32, 100, 64));       /* rows not a multiple of 8 */
    assert_false(nm_dot_float_vec_order(GGML_TYPE_F16, 768, 50304));   /* tinyBLAS takes it */
    assert_false(nm_dot_float_vec_order(GGML_TYPE_Q8_0, 768, 50257));  /* not a float type */
    assert_true(nm_dot_float_vec_order(GGML_TYPE_BF16, 256, 50257));  /* GPT-2 converted to BF16 */
    static const int64_t lens[] = {32, 64, 100, 257, 768, 1000};
    enum { MAX = 1000 };
    float wf[MAX], af[MAX];
    uint16_t wh[MAX], ah[MAX], wb[MAX], ab[MAX];
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int64_t n = lens[li];
        double exact = 0.0;
        for (int64_t i = 0; i < n; i++) {
            wf[i] = varied();
            af[i] = varied();
            wh[i] = nm_f32_to_f16(wf[i]);
            ah[i] = nm_f32_to_f16(af[i]);
            wb[i] = nm_f32_to_bf16(wf[i]);
            ab[i] = nm_f32_to_bf16(af[i]);
            exact += (double)wf[i] * af[i];
        }
        for (int k = 0; k < 3; k++) { /* F32, F16, BF16 */
            const uint32_t t = k == 0 ? GGML_TYPE_F32 : k == 1 ? GGML_TYPE_F16 : GGML_TYPE_BF16;
            const void *w = k == 0 ? (const void *)wf : k == 1 ? (const void *)wh : (const void *)wb;
            const void *a = k == 0 ? (const void *)af : k == 1 ? (const void *)ah : (const void *)ab;
            const float ref = nm_dot_float_vec_ref(t, n, w, a), got = nm_dot_float_vec(t, n, w, a);
            if (memcmp(&ref, &got, sizeof ref)) fail_msg("%s n=%lld: %.9g vs reference %.9g", ggml_type_name(t), (long long)n, got, ref);
            if (fabs(ref - exact) > (k == 2 ? 2e-2 : k == 1 ? 2e-3 : 1e-4) * (1.0 + fabs(exact)))
                fail_msg("%s n=%lld: %.9g is not near the dot product %.9g", ggml_type_name(t), (long long)n, ref, exact);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_float_vec_order),
        cmocka_unit_test(test_simd_matches_reference),
        cmocka_unit_test(test_dot_is_a_dot_product),
        cmocka_unit_test(test_q8_k_rules),
        cmocka_unit_test(test_q8_0_q8_1),
        cmocka_unit_test(test_k_quants_simd_bit_exact),
        cmocka_unit_test(test_k_quants_are_dot_products),
        cmocka_unit_test(test_q4_k_repacked_places),
        cmocka_unit_test(test_avx2_tiles_match_row_kernel),
        cmocka_unit_test(test_avx2_q8_0_tile_aux),
        cmocka_unit_test(test_q8_k_simd_edges),
        cmocka_unit_test(test_iq4_nl_pack_avx2),
        cmocka_unit_test(test_lowbit_levels),
        cmocka_unit_test(test_avx512_vec_dot_tiles),
        cmocka_unit_test(test_q4_k_repacked_avx512),
        cmocka_unit_test(test_unrepacked_ignore_place),
        cmocka_unit_test(test_exact_kernels_small_tiles),
        cmocka_unit_test(test_exact_kernels_long_rows),
        cmocka_unit_test(test_exact_float_wide_tiles),
        cmocka_unit_test(test_reference_orders),
        cmocka_unit_test(test_columns_exact),
        cmocka_unit_test(test_quantize_act_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
