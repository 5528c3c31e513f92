/* The lattice i-quants (IQ3_XXS, IQ3_S, IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S, IQ1_M) against
 * llama-quantize: every tensor of the quant-vectors fixture quantized with and without the
 * synthetic importance matrix (imatrix-vectors.gguf) is byte-identical to llama.cpp's output,
 * dequantization reads it back, the types that need importance weights refuse to run without. */
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

typedef int (*quantize_fn)(uint32_t, const float *, void *, int64_t, int64_t, const float *, nm_error *);
static const quantize_fn quantizers[2] = {nm_quantize_rows_ref, nm_quantize_rows};

static const char *data_path(const char *file) {
    const char *root = getenv("NOMOAT_ROOT");
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/tests/data/quant-vectors/%s", root ? root : ".", file);
    return buf;
}

/* llama-imatrix's GGUF layout: value = in_sum2 / count (one matrix). */
static float *imatrix_for(gguf_reader *im, const char *name, int64_t n) {
    char key[256];
    snprintf(key, sizeof key, "%s.in_sum2", name);
    const gguf_tensor_info *s = gguf_find_tensor(im, key);
    snprintf(key, sizeof key, "%s.counts", name);
    const gguf_tensor_info *c = gguf_find_tensor(im, key);
    assert_non_null(s);
    assert_non_null(c);
    assert_int_equal(s->ne[0], n);
    float count, *w = malloc((size_t)n * 4);
    memcpy(&count, c->data, 4);
    memcpy(w, s->data, (size_t)n * 4);
    for (int64_t i = 0; i < n; i++)
        w[i] /= count;
    return w;
}

/* file: the reference (llama-quantize --pure input-f32.gguf OUT FTYPE, maybe with --imatrix);
 * want_type: the tensor type it holds. */
static void check_vectors(const char *file, uint32_t want_type, bool with_imatrix) {
    nm_error err = {{0}};
    gguf_reader *in = gguf_open(data_path("input-f32.gguf"), &err);
    if (!in)
        fail_msg("%s", err.msg);
    gguf_reader *ref = gguf_open(data_path(file), &err);
    if (!ref)
        fail_msg("%s", err.msg);
    gguf_reader *im = with_imatrix ? gguf_open(data_path("imatrix-vectors.gguf"), &err) : NULL;
    if (with_imatrix && !im)
        fail_msg("%s", err.msg);
    assert_int_equal(gguf_tensor_count(ref), gguf_tensor_count(in));
    for (size_t i = 0; i < gguf_tensor_count(ref); i++) {
        const gguf_tensor_info *r = gguf_tensor(ref, i), *src = gguf_find_tensor(in, r->name);
        assert_non_null(src);
        assert_int_equal(r->type, want_type);
        const int64_t n = r->ne[0], rows = r->ne[1] * r->ne[2] * r->ne[3];
        size_t row_size;
        assert_int_equal(ggml_row_size(r->type, (uint64_t)n, &row_size), 0);
        assert_int_equal(r->size, row_size * (size_t)rows);
        const uint8_t *rdata = r->data;
        uint8_t *out = malloc(row_size * (size_t)rows);
        float *x = malloc((size_t)(n * rows) * 4), *back = malloc((size_t)n * 4);
        float *back_ref = malloc((size_t)n * 4);
        memcpy(x, src->data, (size_t)(n * rows) * 4);
        float *w = im ? imatrix_for(im, r->name, n) : NULL;
        for (int k = 0; k < 2; k++) {
            memset(out, 0xCD, row_size * (size_t)rows);
            if (quantizers[k](r->type, x, out, rows, n, w, &err) != 0)
                fail_msg("%s: %s", r->name, err.msg);
            if (memcmp(out, rdata, row_size * (size_t)rows) != 0) {
                size_t at = 0;
                while (out[at] == rdata[at])
                    at++;
                fail_msg("%s %s (%s): first difference at byte %zu (row %zu, byte %zu of it)", file,
                         r->name, k ? "dispatch" : "reference", at, at / row_size, at % row_size);
            }
        }
        for (int64_t row = 0; row < rows; row++) {
            nm_dequantize_row(r->type, rdata + row * (int64_t)row_size, back, n);
            nm_dequantize_row_ref(r->type, rdata + row * (int64_t)row_size, back_ref, n);
            assert_memory_equal(back, back_ref, (size_t)n * 4);
            for (int64_t j = 0; j < n; j++)
                assert_true(isfinite(back[j]));
        }
        free(w);
        free(out);
        free(x);
        free(back);
        free(back_ref);
    }
    gguf_close(in);
    gguf_close(ref);
    if (im)
        gguf_close(im);
}

static void test_iq3_s(void **state) {
    (void)state;
    check_vectors("IQ3_S.gguf", GGML_TYPE_IQ3_S, false);
    check_vectors("IQ3_S-imatrix.gguf", GGML_TYPE_IQ3_S, true);
}
static void test_iq3_xxs(void **state) {
    (void)state;
    check_vectors("IQ3_XXS-imatrix.gguf", GGML_TYPE_IQ3_XXS, true);
}

static void test_iq2_xxs(void **state) {
    (void)state;
    check_vectors("IQ2_XXS-imatrix.gguf", GGML_TYPE_IQ2_XXS, true);
}
/* llama-quantize's IQ2_S file type stores IQ2_XS tensors (IQ2_S tensors come with IQ2_M). */
static void test_iq2_xs(void **state) {
    (void)state;
    check_vectors("IQ2_XS-imatrix.gguf", GGML_TYPE_IQ2_XS, true);
    check_vectors("IQ2_S-imatrix.gguf", GGML_TYPE_IQ2_XS, true);
}

static void test_iq1_s(void **state) {
    (void)state;
    check_vectors("IQ1_S-imatrix.gguf", GGML_TYPE_IQ1_S, true);
}
static void test_iq1_m(void **state) {
    (void)state;
    check_vectors("IQ1_M-imatrix.gguf", GGML_TYPE_IQ1_M, true);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iq3_s),
        cmocka_unit_test(test_iq3_xxs),
        cmocka_unit_test(test_iq2_xxs),
        cmocka_unit_test(test_iq2_xs),
        cmocka_unit_test(test_iq1_s),
        cmocka_unit_test(test_iq1_m),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
