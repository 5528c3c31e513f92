/* Block quantization against llama.cpp: the FORMATS.md §3.7 worked examples and §4.8 self-check
 * vectors, byte identity with llama-quantize's outputs for every tensor of the quant-vectors
 * fixture (reference and SIMD paths), dequantization, and the refusal of unstorable values. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "formats/gguf.h"
#include "formats/quants.h"
#include "tests/formats/quants_testlib.h"

typedef int (*quantize_fn)(uint32_t, const float *, void *, int64_t, int64_t, const float *, nm_error *);
static const quantize_fn quantizers[2] = {nm_quantize_rows_ref, nm_quantize_rows};

static void worked_input(float *x) {
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j - 20) / 4;
}

static void check_worked(uint32_t type, const uint8_t *expect, size_t size) {
    float x[32];
    uint8_t out[64];
    worked_input(x);
    for (int k = 0; k < 2; k++) {
        nm_error err = {{0}};
        memset(out, 0xAA, sizeof out);
        assert_int_equal(quantizers[k](type, x, out, 1, 32, NULL, &err), 0);
        assert_memory_equal(out, expect, size);
    }
}

static void test_worked_q4_0(void **state) {
    (void)state;
    static const uint8_t e[] = {0x00, 0x39, 0x60, 0x70, 0x71, 0x81, 0x82, 0x82, 0x92, 0x93, 0xa3,
                                0xa4, 0xa4, 0xb4, 0xb5, 0xc5, 0xc6, 0xc6};
    check_worked(GGML_TYPE_Q4_0, e, sizeof e);
    float y[32], yr[32];
    nm_dequantize_row(GGML_TYPE_Q4_0, e, y, 32);
    nm_dequantize_row_ref(GGML_TYPE_Q4_0, e, yr, 32);
    assert_memory_equal(y, yr, sizeof y);
    const float first[8] = {-5, -5, -4.375f, -4.375f, -3.75f, -3.75f, -3.75f, -3.125f};
    assert_memory_equal(y, first, sizeof first);
    assert_true(y[29] == 2.5f && y[30] == 2.5f && y[31] == 2.5f);
}

static void test_worked_q4_1(void **state) {
    (void)state;
    static const uint8_t e[] = {0x22, 0x38, 0x00, 0xc5, 0x80, 0x80, 0x91, 0x91, 0xa2, 0xa2,
                                0xb3, 0xb3, 0xc4, 0xc4, 0xd5, 0xd5, 0xe6, 0xe6, 0xf7, 0xf7};
    check_worked(GGML_TYPE_Q4_1, e, sizeof e);
    float y[32];
    nm_dequantize_row_ref(GGML_TYPE_Q4_1, e, y, 32);
    assert_true(y[0] == -5 && y[1] == -5);
    assert_float_equal(y[2], -4.4834f, 1e-4);
    assert_float_equal(y[31], 2.74902f, 1e-5);
}

static void test_worked_q5_0(void **state) {
    (void)state;
    static const uint8_t e[] = {0x00, 0x35, 0x00, 0x00, 0xf0, 0xff, 0xd0, 0xe1, 0xe2, 0xf2, 0x03,
                                0x14, 0x25, 0x26, 0x36, 0x47, 0x58, 0x69, 0x6a, 0x7a, 0x8b, 0x9c};
    check_worked(GGML_TYPE_Q5_0, e, sizeof e);
    float y[32];
    nm_dequantize_row_ref(GGML_TYPE_Q5_0, e, y, 32);
    const float first[5] = {-5, -4.6875f, -4.375f, -4.375f, -4.0625f};
    assert_memory_equal(y, first, sizeof first);
    assert_true(y[30] == 2.5f && y[31] == 2.8125f);
}

static void test_worked_q5_1(void **state) {
    (void)state;
    static const uint8_t e[] = {0x00, 0x34, 0x00, 0xc5, 0x00, 0x00, 0xff, 0xff, 0x00, 0x11, 0x22, 0x33,
                                0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
    check_worked(GGML_TYPE_Q5_1, e, sizeof e);
    float x[32], y[32];
    worked_input(x);
    nm_dequantize_row(GGML_TYPE_Q5_1, e, y, 32);
    assert_memory_equal(x, y, sizeof x); /* exact round trip */
}

static void test_worked_q8_0(void **state) {
    (void)state;
    static const uint8_t e[] = {0x0a, 0x29, 0x81, 0x87, 0x8e, 0x94, 0x9a, 0xa1, 0xa7, 0xad, 0xb4, 0xba,
                                0xc0, 0xc7, 0xcd, 0xd4, 0xda, 0xe0, 0xe7, 0xed, 0xf3, 0xfa, 0x00, 0x06,
                                0x0d, 0x13, 0x19, 0x20, 0x26, 0x2c, 0x33, 0x39, 0x40, 0x46};
    check_worked(GGML_TYPE_Q8_0, e, sizeof e);
    float y[32];
    nm_dequantize_row_ref(GGML_TYPE_Q8_0, e, y, 32);
    assert_float_equal(y[0], -4.99969f, 1e-5);
    assert_float_equal(y[1], -4.76349f, 1e-5);
    assert_float_equal(y[2], -4.48792f, 1e-5);
}

/* Q8_1 = Q8_0's quantization plus s = fp16(d * sum q). */
static void test_q8_1(void **state) {
    (void)state;
    float x[32], y[32];
    uint8_t q8_0[34], q8_1[36];
    worked_input(x);
    nm_error err;
    assert_int_equal(nm_quantize_rows_ref(GGML_TYPE_Q8_0, x, q8_0, 1, 32, NULL, &err), 0);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(quantizers[k](GGML_TYPE_Q8_1, x, q8_1, 1, 32, NULL, &err), 0);
        assert_memory_equal(q8_1, q8_0, 2);
        assert_memory_equal(q8_1 + 4, q8_0 + 2, 32);
        int sum = 0;
        for (int j = 0; j < 32; j++)
            sum += (int8_t)q8_1[4 + j];
        uint16_t s = (uint16_t)(q8_1[2] | q8_1[3] << 8);
        assert_int_equal(s, nm_f32_to_f16((float)sum * (5.0f / 127)));
    }
    nm_dequantize_row(GGML_TYPE_Q8_1, q8_1, y, 32);
    assert_float_equal(y[0], -4.99969f, 1e-5);
}

/* ---- K-quants, §4.8 ---- */

static void kq_input(float *x, float *qw) {
    for (int i = 0; i < 256; i++) {
        x[i] = (float)(((37 * i) % 64) - 32) * (float)(1 + i / 32) / 64;
        qw[i] = 0.5f * (float)(1 + i % 4);
    }
}

static void check_k(uint32_t type, bool imatrix, size_t size, const uint8_t *prefix, size_t prefix_len,
                    size_t prefix_at, uint32_t hash) {
    float x[256], qw[256];
    uint8_t out[292];
    kq_input(x, qw);
    for (int k = 0; k < 2; k++) {
        nm_error err = {{0}};
        memset(out, 0x55, sizeof out);
        assert_int_equal(quantizers[k](type, x, out, 1, 256, imatrix ? qw : NULL, &err), 0);
        assert_memory_equal(out + prefix_at, prefix, prefix_len);
        assert_int_equal(fnv1a(out, size), hash);
    }
}

static void test_q4_k_path_a(void **state) {
    (void)state;
    static const uint8_t e[144] = {
        0x13, 0x20, 0xc4, 0x2b, 0x88, 0x90, 0xd9, 0xe0, 0x88, 0x90, 0xd8, 0xe0, 0x8a, 0xff, 0x9a, 0xff, 0x80, 0x19,
        0xa2, 0x3b, 0xd5, 0x6e, 0xf7, 0x81, 0x2a, 0xb3, 0x4c, 0xd5, 0x7e, 0x08, 0x91, 0x2a, 0xc4, 0x5d, 0xe6, 0x7f,
        0x19, 0xa2, 0x3b, 0xc4, 0x6e, 0xf7, 0x80, 0x19, 0xb3, 0x4c, 0xd5, 0x6e, 0x80, 0x18, 0xa2, 0x3b, 0xd4, 0x6d,
        0xf7, 0x80, 0x29, 0xb3, 0x4c, 0xd5, 0x7e, 0x08, 0x91, 0x2a, 0xc4, 0x5c, 0xe6, 0x7f, 0x18, 0xa2, 0x3b, 0xc4,
        0x6d, 0xf7, 0x80, 0x19, 0xb3, 0x4b, 0xd5, 0x6e, 0x80, 0x18, 0xa2, 0x3b, 0xd4, 0x6d, 0xf7, 0x80, 0x29, 0xb3,
        0x4b, 0xd5, 0x7e, 0x07, 0x91, 0x2a, 0xc4, 0x5c, 0xe6, 0x7f, 0x18, 0xa2, 0x3b, 0xc4, 0x6d, 0xf7, 0x80, 0x19,
        0xb3, 0x4b, 0xd5, 0x6e, 0x80, 0x19, 0xa2, 0x3b, 0xd5, 0x6d, 0xf7, 0x81, 0x29, 0xb3, 0x4c, 0xd5, 0x7e, 0x08,
        0x91, 0x2a, 0xc4, 0x5c, 0xe6, 0x7f, 0x18, 0xa2, 0x3b, 0xc4, 0x6d, 0xf7, 0x80, 0x19, 0xb3, 0x4c, 0xd5, 0x6e};
    check_k(GGML_TYPE_Q4_K, false, 144, e, 144, 0, 0xf6319947u);
}

static void test_q5_k_path_a(void **state) {
    (void)state;
    static const uint8_t p[] = {0x0a, 0x1c, 0xf4, 0x2b, 0x88, 0x90, 0xd8, 0xe0,
                                0x88, 0x90, 0xd8, 0xe0, 0x88, 0xff, 0x88, 0xff};
    check_k(GGML_TYPE_Q5_K, false, 176, p, sizeof p, 0, 0xeb8058deu);
}

static void test_q6_k_plain(void **state) {
    (void)state;
    static const uint8_t p[] = {0xf0, 0x10, 0xe0, 0x1d, 0xd0, 0x30, 0xc0, 0x3a, 0xb0,
                                0x50, 0xa0, 0x57, 0x90, 0x70, 0x80, 0x73, 0x00, 0x94};
    check_k(GGML_TYPE_Q6_K, false, 210, p, sizeof p, 192, 0xd308644cu);
}

static void test_q4_k_path_b(void **state) {
    (void)state;
    static const uint8_t p[] = {0x09, 0x20, 0x79, 0x2b, 0x88, 0x90, 0xd8, 0xe0,
                                0x88, 0x90, 0xd8, 0xe0, 0x88, 0xff, 0x88, 0xff};
    check_k(GGML_TYPE_Q4_K, true, 144, p, sizeof p, 0, 0xe1099304u);
}

static void test_q5_k_path_b(void **state) {
    (void)state;
    static const uint8_t p[] = {0x1a, 0x1c, 0xe9, 0x2b, 0x88, 0x90, 0xd8, 0xdf,
                                0x88, 0x90, 0xd8, 0xdf, 0x87, 0xff, 0x87, 0xef};
    check_k(GGML_TYPE_Q5_K, true, 176, p, sizeof p, 0, 0x1d1a6265u);
}

static void test_q6_k_imatrix(void **state) {
    (void)state;
    static const uint8_t p[] = {0xf0, 0x10, 0xe0, 0x1d, 0xd0, 0x30, 0xc0, 0x3a, 0xb0,
                                0x50, 0xa0, 0x56, 0x90, 0x70, 0x80, 0x73, 0x00, 0x94};
    check_k(GGML_TYPE_Q6_K, true, 210, p, sizeof p, 192, 0x94fd56f0u);
}

static void test_q8_k(void **state) {
    (void)state;
    static const uint8_t p[] = {0xe8, 0xf3, 0xf9, 0x3c};
    check_k(GGML_TYPE_Q8_K, false, 292, p, sizeof p, 0, 0x06ebb5edu);
    /* bsums are the sums of 16 qs; dequantization is d * q */
    float x[256], qw[256], y[256];
    uint8_t out[292];
    kq_input(x, qw);
    nm_error err;
    assert_int_equal(nm_quantize_rows(GGML_TYPE_Q8_K, x, out, 1, 256, NULL, &err), 0);
    for (int j = 0; j < 16; j++) {
        int sum = 0;
        for (int i = 0; i < 16; i++)
            sum += (int8_t)out[4 + 16 * j + i];
        assert_int_equal((int16_t)(out[260 + 2 * j] | out[261 + 2 * j] << 8), sum);
    }
    nm_dequantize_row(GGML_TYPE_Q8_K, out, y, 256);
    for (int i = 0; i < 256; i++)
        assert_float_equal(y[i], x[i], 0.5 * 4.0 / 127 + 1e-6);
    /* all-zero block: everything zero, bsums included */
    memset(x, 0, sizeof x);
    memset(out, 0x77, sizeof out);
    assert_int_equal(nm_quantize_rows_ref(GGML_TYPE_Q8_K, x, out, 1, 256, NULL, &err), 0);
    for (int i = 0; i < 292; i++)
        assert_int_equal(out[i], 0);
}

/* Unpacked scales and mins of the §4.8 Q4_K path-A block, and its dequantized values. */
static void test_q4_k_dequant(void **state) {
    (void)state;
    float x[256], qw[256], y[256], yr[256];
    uint8_t out[144];
    kq_input(x, qw);
    nm_error err;
    assert_int_equal(nm_quantize_rows(GGML_TYPE_Q4_K, x, out, 1, 256, NULL, &err), 0);
    nm_dequantize_row_ref(GGML_TYPE_Q4_K, out, yr, 256);
    nm_dequantize_row(GGML_TYPE_Q4_K, out, y, 256);
    assert_memory_equal(y, yr, sizeof y);
    const float d = nm_f16_to_f32(0x2013), dmin = nm_f16_to_f32(0x2bc4);
    const int s[8] = {8, 16, 25, 32, 42, 47, 58, 63}, m[8] = {8, 16, 24, 32, 40, 47, 57, 63};
    for (int i = 0; i < 256; i++) {
        int j = i / 32, c = i / 64, l = i % 32;
        int q = (i % 64) < 32 ? out[16 + 32 * c + l] & 15 : out[16 + 32 * c + l] >> 4;
        float expect = d * (float)s[j] * (float)q - dmin * (float)m[j];
        assert_true(y[i] == expect);
        assert_float_equal(y[i], x[i], (double)(d * (float)s[j]));
    }
}

/* ---- llama-quantize --pure outputs for the edge-case tensors of quant-vectors/ ---- */

static const char *data_dir(void) {
    const char *root = getenv("NOMOAT_ROOT");
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/tests/data/quant-vectors", root ? root : ".");
    return buf;
}

static void check_vectors(const char *file, uint32_t want_type) {
    char path[4200];
    nm_error err = {{0}};
    snprintf(path, sizeof path, "%s/input-f32.gguf", data_dir());
    gguf_reader *in = gguf_open(path, &err);
    if (!in)
        fail_msg("%s", err.msg);
    snprintf(path, sizeof path, "%s/%s.gguf", data_dir(), file);
    gguf_reader *ref = gguf_open(path, &err);
    if (!ref)
        fail_msg("%s", err.msg);
    assert_int_equal(gguf_tensor_count(ref), gguf_tensor_count(in));
    for (size_t i = 0; i < gguf_tensor_count(ref); i++) {
        const gguf_tensor_info *r = gguf_tensor(ref, i), *src = gguf_find_tensor(in, r->name);
        assert_non_null(src);
        assert_int_equal(src->type, GGML_TYPE_F32);
        assert_int_equal(r->type, want_type);
        const int64_t n = r->ne[0], rows = r->ne[1] * r->ne[2] * r->ne[3];
        const uint8_t *rdata = r->data;
        size_t row_size;
        assert_int_equal(ggml_row_size(r->type, (uint64_t)n, &row_size), 0);
        assert_int_equal(r->size, row_size * (size_t)rows);
        uint8_t *out = malloc(row_size * (size_t)rows);
        float *back = malloc((size_t)(n * rows) * 4), *back_ref = malloc((size_t)(n * rows) * 4);
        float *x = malloc((size_t)(n * rows) * 4);
        memcpy(x, src->data, (size_t)(n * rows) * 4); /* the mapping is only 32-byte aligned */
        for (int k = 0; k < 2; k++) {
            memset(out, 0xCD, row_size * (size_t)rows);
            if (quantizers[k](r->type, x, out, rows, n, NULL, &err) != 0)
                fail_msg("%s: %s", r->name, err.msg);
            if (memcmp(out, rdata, row_size * (size_t)rows) != 0) {
                size_t at = 0;
                while (out[at] == rdata[at])
                    at++;
                fail_msg("%s %s (%s): first difference at byte %zu (row %zu)", file, r->name,
                         k ? "dispatch" : "reference", at, at / row_size);
            }
        }
        /* dequantization: SIMD equals reference bit for bit */
        for (int64_t row = 0; row < rows; row++) {
            nm_dequantize_row(r->type, rdata + row * (int64_t)row_size, back + row * n, n);
            nm_dequantize_row_ref(r->type, rdata + row * (int64_t)row_size, back_ref + row * n, n);
        }
        assert_memory_equal(back, back_ref, (size_t)(n * rows) * 4);
        free(out);
        free(x);
        free(back);
        free(back_ref);
    }
    gguf_close(in);
    gguf_close(ref);
}

static void test_vectors_q4_0(void **state) { (void)state; check_vectors("Q4_0", GGML_TYPE_Q4_0); }
static void test_vectors_q4_1(void **state) { (void)state; check_vectors("Q4_1", GGML_TYPE_Q4_1); }
static void test_vectors_q5_0(void **state) { (void)state; check_vectors("Q5_0", GGML_TYPE_Q5_0); }
static void test_vectors_q5_1(void **state) { (void)state; check_vectors("Q5_1", GGML_TYPE_Q5_1); }
static void test_vectors_q8_0(void **state) { (void)state; check_vectors("Q8_0", GGML_TYPE_Q8_0); }
static void test_vectors_q4_k(void **state) { (void)state; check_vectors("Q4_K_S", GGML_TYPE_Q4_K); }
static void test_vectors_q5_k(void **state) { (void)state; check_vectors("Q5_K_S", GGML_TYPE_Q5_K); }
static void test_vectors_q6_k(void **state) { (void)state; check_vectors("Q6_K", GGML_TYPE_Q6_K); }
static void test_vectors_q2_k(void **state) { (void)state; check_vectors("Q2_K", GGML_TYPE_Q2_K); }
static void test_vectors_q3_k(void **state) { (void)state; check_vectors("Q3_K", GGML_TYPE_Q3_K); }
static void test_vectors_iq4_nl(void **state) { (void)state; check_vectors("IQ4_NL", GGML_TYPE_IQ4_NL); }
static void test_vectors_iq4_xs(void **state) { (void)state; check_vectors("IQ4_XS", GGML_TYPE_IQ4_XS); }
static void test_vectors_tq1_0(void **state) { (void)state; check_vectors("TQ1_0", GGML_TYPE_TQ1_0); }
static void test_vectors_tq2_0(void **state) { (void)state; check_vectors("TQ2_0", GGML_TYPE_TQ2_0); }

/* ---- float targets ---- */

static void test_float_targets(void **state) {
    (void)state;
    float x[64], y[64];
    uint8_t out[256];
    uint64_t s = 7;
    for (int i = 0; i < 64; i++)
        x[i] = (rng_unit(&s) - 0.5f) * 1000;
    nm_error err;
    for (int k = 0; k < 2; k++) {
        assert_int_equal(quantizers[k](GGML_TYPE_F32, x, out, 2, 32, NULL, &err), 0);
        assert_memory_equal(out, x, sizeof x);
        assert_int_equal(quantizers[k](GGML_TYPE_F16, x, out, 2, 32, NULL, &err), 0);
        for (int i = 0; i < 64; i++)
            assert_int_equal(out[2 * i] | out[2 * i + 1] << 8, nm_f32_to_f16(x[i]));
        nm_dequantize_row(GGML_TYPE_F16, out, y, 64);
        for (int i = 0; i < 64; i++)
            assert_true(y[i] == nm_f16_to_f32(nm_f32_to_f16(x[i])));
        assert_int_equal(quantizers[k](GGML_TYPE_BF16, x, out, 2, 32, NULL, &err), 0);
        for (int i = 0; i < 64; i++)
            assert_int_equal(out[2 * i] | out[2 * i + 1] << 8, nm_f32_to_bf16(x[i]));
        nm_dequantize_row_ref(GGML_TYPE_BF16, out, y, 64);
        for (int i = 0; i < 64; i++)
            assert_true(y[i] == nm_bf16_to_f32(nm_f32_to_bf16(x[i])));
    }
}

/* ---- refusals ---- */

static void test_refuses_nonfinite(void **state) {
    (void)state;
    static const uint32_t types[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q4_0,
                                     GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q8_0,
                                     GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};
    float *x = calloc(3 * 256, 4);
    uint8_t *out = malloc(3 * 256 * 4);
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        for (int k = 0; k < 2; k++) {
            nm_error err = {{0}};
            x[2 * 256 + 77] = NAN;
            assert_int_equal(quantizers[k](types[t], x, out, 3, 256, NULL, &err), -1);
            assert_non_null(strstr(err.msg, "row 2"));
            assert_non_null(strstr(err.msg, "column 77"));
            assert_non_null(strstr(err.msg, "NaN"));
            x[2 * 256 + 77] = 0;
            x[256 + 5] = -INFINITY;
            assert_int_equal(quantizers[k](types[t], x, out, 3, 256, NULL, &err), -1);
            assert_non_null(strstr(err.msg, "row 1"));
            assert_non_null(strstr(err.msg, "-Inf"));
            x[256 + 5] = 0;
        }
    }
    /* a non-finite importance weight is refused too */
    float qw[256];
    for (int i = 0; i < 256; i++)
        qw[i] = 1;
    qw[9] = INFINITY;
    nm_error err;
    assert_int_equal(nm_quantize_rows(GGML_TYPE_Q4_K, x, out, 1, 256, qw, &err), -1);
    assert_non_null(strstr(err.msg, "importance"));
    free(x);
    free(out);
}

static void test_refuses_f16_overflow(void **state) {
    (void)state;
    static const struct {
        uint32_t type;
        float big; /* smallest magnitude that must be refused, roughly */
    } cases[] = {
        {GGML_TYPE_Q8_0, 1e7f}, {GGML_TYPE_Q4_0, 1e6f}, {GGML_TYPE_Q5_0, 2e6f}, {GGML_TYPE_Q4_1, 1e6f},
        {GGML_TYPE_Q5_1, 3e6f}, {GGML_TYPE_Q4_K, 1e9f}, {GGML_TYPE_Q5_K, 2e9f}, {GGML_TYPE_Q6_K, 1e10f},
        {GGML_TYPE_F16, 70000.f},
    };
    float x[512];
    uint8_t out[2048];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int k = 0; k < 2; k++) {
            uint64_t s = 99;
            for (int i = 0; i < 512; i++)
                x[i] = rng_unit(&s) - 0.5f;
            nm_error err = {{0}};
            assert_int_equal(quantizers[k](cases[c].type, x, out, 2, 256, NULL, &err), 0);
            x[256 + 40] = -cases[c].big;
            assert_int_equal(quantizers[k](cases[c].type, x, out, 2, 256, NULL, &err), -1);
            assert_non_null(strstr(err.msg, "row 1"));
            assert_non_null(strstr(err.msg, cases[c].type == GGML_TYPE_F16 ? "column 40" : "too large"));
        }
    }
    /* far larger magnitudes, where the quantizers' sums of squares overflow before any scale
     * does (Q6_K used to store zeros silently there), with and without an importance matrix */
    static const float huge[] = {1e18f, 1e19f, 1e30f, 3e38f};
    static const uint32_t types[] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q5_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_1,
                                     GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};
    float imatrix[256];
    for (int i = 0; i < 256; i++)
        imatrix[i] = 1.0f + (float)(i % 5);
    for (size_t h = 0; h < sizeof huge / sizeof huge[0]; h++)
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
            for (int k = 0; k < 4; k++) {
                uint64_t s = 7;
                for (int i = 0; i < 512; i++)
                    x[i] = rng_unit(&s) - 0.5f;
                x[256 + 17] = huge[h];
                nm_error e = {{0}};
                assert_int_equal(quantizers[k & 1](types[t], x, out, 2, 256, k & 2 ? imatrix : NULL, &e), -1);
                assert_non_null(strstr(e.msg, "row 1"));
                assert_non_null(strstr(e.msg, "too large"));
            }
    /* the largest Q8_0 block that still fits: 65504 * 127 */
    for (int i = 0; i < 32; i++)
        x[i] = 0;
    x[3] = 65504.f * 127;
    nm_error err;
    assert_int_equal(nm_quantize_rows(GGML_TYPE_Q8_0, x, out, 1, 32, NULL, &err), 0);
}

static void test_refuses_bad_shapes(void **state) {
    (void)state;
    float x[512] = {0};
    uint8_t out[1024];
    nm_error err;
    assert_int_equal(nm_quantize_rows(GGML_TYPE_Q4_K, x, out, 1, 128, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "256"));
    assert_int_equal(nm_quantize_rows(GGML_TYPE_Q4_0, x, out, 1, 40, NULL, &err), -1);
    assert_int_equal(nm_quantize_rows(GGML_TYPE_IQ2_XXS, x, out, 1, 256, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "IQ2_XXS"));
    assert_int_equal(nm_quantize_rows(GGML_TYPE_Q4_0, x, out, 0, 32, NULL, &err), 0);
    assert_true(nm_quantize_supported(GGML_TYPE_Q4_K));
    assert_true(nm_quantize_supported(GGML_TYPE_BF16));
    assert_false(nm_quantize_supported(GGML_TYPE_Q8_K));
    assert_false(nm_quantize_supported(GGML_TYPE_MXFP4));
    assert_true(nm_quantize_supported(GGML_TYPE_IQ4_NL));
    assert_true(nm_dequantize_supported(GGML_TYPE_Q8_K));
    assert_true(nm_dequantize_supported(GGML_TYPE_Q8_1));
    assert_false(nm_dequantize_supported(GGML_TYPE_MXFP4));
    assert_true(nm_dequantize_supported(GGML_TYPE_TQ1_0));
}

/* The imatrix paths of the legacy types (§3.6): levels from make_qx / make_qkx3 fit the data at
 * least as well (in the weighted sense) as the plain path on average, and uniform weights with
 * a constant row give the exact constant back. */
static void test_legacy_imatrix(void **state) {
    (void)state;
    static const uint32_t types[] = {GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1};
    enum { N = 256, ROWS = 64 };
    float *x = malloc(N * ROWS * 4), *y = malloc(N * 4), qw[N];
    uint8_t *out = malloc(N * ROWS * 2);
    uint64_t s = 5;
    for (int i = 0; i < N * ROWS; i++)
        x[i] = (rng_unit(&s) - 0.5f) * (rng_unit(&s) < 0.05f ? 8 : 1);
    for (int i = 0; i < N; i++)
        qw[i] = 0.1f + rng_unit(&s) * 4;
    for (size_t t = 0; t < 4; t++) {
        double err_plain = 0, err_imat = 0;
        size_t row_size;
        ggml_row_size(types[t], N, &row_size);
        for (int pass = 0; pass < 2; pass++) {
            nm_error err;
            uint8_t *o2 = malloc(N * ROWS * 2);
            assert_int_equal(nm_quantize_rows_ref(types[t], x, out, ROWS, N, pass ? qw : NULL, &err), 0);
            assert_int_equal(nm_quantize_rows(types[t], x, o2, ROWS, N, pass ? qw : NULL, &err), 0);
            assert_memory_equal(out, o2, row_size * ROWS);
            free(o2);
            for (int r = 0; r < ROWS; r++) {
                nm_dequantize_row(types[t], out + r * row_size, y, N);
                for (int i = 0; i < N; i++) {
                    double d = (double)y[i] - x[r * N + i];
                    *(pass ? &err_imat : &err_plain) += qw[i] * d * d;
                }
            }
        }
        assert_true(err_imat < err_plain);
    }
    free(x);
    free(y);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worked_q4_0),     cmocka_unit_test(test_worked_q4_1),
        cmocka_unit_test(test_worked_q5_0),     cmocka_unit_test(test_worked_q5_1),
        cmocka_unit_test(test_worked_q8_0),     cmocka_unit_test(test_q8_1),
        cmocka_unit_test(test_q4_k_path_a),     cmocka_unit_test(test_q5_k_path_a),
        cmocka_unit_test(test_q6_k_plain),      cmocka_unit_test(test_q4_k_path_b),
        cmocka_unit_test(test_q5_k_path_b),     cmocka_unit_test(test_q6_k_imatrix),
        cmocka_unit_test(test_q8_k),            cmocka_unit_test(test_q4_k_dequant),
        cmocka_unit_test(test_vectors_q4_0),    cmocka_unit_test(test_vectors_q4_1),
        cmocka_unit_test(test_vectors_q5_0),    cmocka_unit_test(test_vectors_q5_1),
        cmocka_unit_test(test_vectors_q8_0),    cmocka_unit_test(test_vectors_q4_k),
        cmocka_unit_test(test_vectors_q5_k),    cmocka_unit_test(test_vectors_q6_k),
        cmocka_unit_test(test_vectors_q2_k),    cmocka_unit_test(test_vectors_q3_k),
        cmocka_unit_test(test_vectors_iq4_nl),  cmocka_unit_test(test_vectors_iq4_xs),
        cmocka_unit_test(test_vectors_tq1_0),   cmocka_unit_test(test_vectors_tq2_0),
        cmocka_unit_test(test_float_targets),   cmocka_unit_test(test_refuses_nonfinite),
        cmocka_unit_test(test_refuses_f16_overflow), cmocka_unit_test(test_refuses_bad_shapes),
        cmocka_unit_test(test_legacy_imatrix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
