/* Per-tensor type rules (quantize/recipe.c) against the choices llama-quantize made for the
 * reference files (FORMATS.md §5), plus the edge cases the fixture model does not reach. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "formats/tensor.h"
#include "quantize/recipe.h"

#define MAXT 1024

typedef struct model {
    qt_tensor t[MAXT];
    char names[MAXT][64];
    size_t n;
} model;

static void add(model *m, const char *name, int64_t ne0, int64_t ne1) {
    assert_true(m->n < MAXT);
    qt_tensor *t = &m->t[m->n];
    snprintf(m->names[m->n], sizeof m->names[m->n], "%s", name);
    *t = (qt_tensor){.name = m->names[m->n], .n_dims = ne1 > 1 ? 2 : 1, .ne = {ne0, ne1, 1, 1},
                     .type = GGML_TYPE_F32, .index = m->n};
    m->n++;
}

/* A Llama-shaped model, tensors added in the converter's order (not llama-quantize's). */
static void llama(model *m, int layers, int dim, int kv_dim, int ffn, int vocab, bool tied) {
    m->n = 0;
    char name[64];
    add(m, "token_embd.weight", dim, vocab);
    for (int i = 0; i < layers; i++) {
        static const char *const parts[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                                            "ffn_down", "attn_norm", "ffn_norm"};
        for (size_t k = 0; k < 9; k++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", i, parts[k]);
            int64_t ne0 = dim, ne1 = dim;
            if (k == 1 || k == 2)
                ne1 = kv_dim;
            if (k == 4 || k == 5)
                ne1 = ffn;
            if (k == 6)
                ne0 = ffn, ne1 = dim;
            if (k >= 7)
                ne1 = 1;
            add(m, name, ne0, ne1);
        }
    }
    add(m, "output_norm.weight", dim, 1);
    if (!tied)
        add(m, "output.weight", dim, vocab);
}

static const qt_model wikillama_model = {.n_layer = 4, .n_gqa = 2};

static uint32_t type_of(const model *m, const char *name) {
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->t[i].name, name) == 0)
            return m->t[i].new_type;
    fail_msg("no tensor %s", name);
    return 0;
}

static void plan(model *m, const qt_model *mm, const char *ftype, const qt_options *o) {
    const qt_ftype *ft = qt_ftype_from_name(ftype);
    assert_non_null(ft);
    nm_error err = {{0}};
    int rc = qt_plan(m->t, m->n, mm, ft, o, &err);
    if (rc != 0)
        fail_msg("plan %s: %s", ftype, err.msg);
}

/* Types per tensor in llama-quantize's order, read from reference/wikillama-<mix>.gguf. */
static const struct {
    const char *mix;
    uint8_t types[39];
} wikillama_reference[] = {
    {"Q4_0", {14, 0, 2, 2, 0, 2, 2, 2, 2, 2, 0, 2, 2, 0, 2, 2, 2, 2, 2, 0, 2, 2, 0, 2, 2, 2, 2, 2, 0, 2, 2, 0, 2, 2, 2, 2, 2, 0, 2}},
    {"Q4_1", {14, 0, 3, 3, 0, 3, 3, 3, 3, 3, 0, 3, 3, 0, 3, 3, 3, 3, 3, 0, 3, 3, 0, 3, 3, 3, 3, 3, 0, 3, 3, 0, 3, 3, 3, 3, 3, 0, 3}},
    {"Q5_0", {14, 0, 6, 6, 0, 6, 6, 6, 6, 6, 0, 6, 6, 0, 6, 6, 6, 6, 6, 0, 6, 6, 0, 6, 6, 6, 6, 6, 0, 6, 6, 0, 6, 6, 6, 6, 6, 0, 6}},
    {"Q5_1", {14, 0, 7, 7, 0, 7, 7, 7, 7, 7, 0, 7, 7, 0, 7, 7, 7, 7, 7, 0, 7, 7, 0, 7, 7, 7, 7, 7, 0, 7, 7, 0, 7, 7, 7, 7, 7, 0, 7}},
    {"Q8_0", {8, 0, 8, 8, 0, 8, 8, 8, 8, 8, 0, 8, 8, 0, 8, 8, 8, 8, 8, 0, 8, 8, 0, 8, 8, 8, 8, 8, 0, 8, 8, 0, 8, 8, 8, 8, 8, 0, 8}},
    {"Q4_K_S", {14, 0, 12, 12, 0, 12, 12, 13, 12, 12, 0, 12, 12, 0, 12, 12, 13, 12, 12, 0, 12, 12, 0, 12, 12, 13, 12, 12, 0, 12, 12, 0, 12, 12, 13, 12, 12, 0, 12}},
    {"Q4_K_M", {14, 0, 12, 12, 0, 12, 12, 12, 12, 12, 0, 12, 12, 0, 12, 12, 12, 12, 12, 0, 12, 12, 0, 12, 12, 14, 14, 12, 0, 12, 12, 0, 12, 12, 14, 14, 12, 0, 12}},
    {"Q5_K_S", {14, 0, 13, 13, 0, 13, 13, 13, 13, 13, 0, 13, 13, 0, 13, 13, 13, 13, 13, 0, 13, 13, 0, 13, 13, 13, 13, 13, 0, 13, 13, 0, 13, 13, 13, 13, 13, 0, 13}},
    {"Q5_K_M", {14, 0, 13, 13, 0, 13, 13, 13, 13, 13, 0, 13, 13, 0, 13, 13, 13, 13, 13, 0, 13, 13, 0, 13, 13, 14, 14, 13, 0, 13, 13, 0, 13, 13, 14, 14, 13, 0, 13}},
    {"Q6_K", {14, 0, 14, 14, 0, 14, 14, 14, 14, 14, 0, 14, 14, 0, 14, 14, 14, 14, 14, 0, 14, 14, 0, 14, 14, 14, 14, 14, 0, 14, 14, 0, 14, 14, 14, 14, 14, 0, 14}},
};

static void test_wikillama_mixes(void **state) {
    (void)state;
    static const char *const order[] = {"output.weight", "output_norm.weight", "token_embd.weight"};
    for (size_t k = 0; k < sizeof wikillama_reference / sizeof wikillama_reference[0]; k++) {
        model m;
        llama(&m, 4, 256, 128, 768, 4096, false);
        plan(&m, &wikillama_model, wikillama_reference[k].mix, &(qt_options){.output_type = -1, .token_embd_type = -1});
        assert_int_equal(m.n, 39);
        for (size_t i = 0; i < 3; i++)
            assert_string_equal(m.t[i].name, order[i]);
        assert_string_equal(m.t[3].name, "blk.0.attn_k.weight");
        assert_string_equal(m.t[38].name, "blk.3.ffn_up.weight");
        for (size_t i = 0; i < 39; i++) {
            if (m.t[i].new_type != wikillama_reference[k].types[i])
                fail_msg("%s: %s is %s, llama-quantize chose %s", wikillama_reference[k].mix, m.t[i].name,
                         ggml_type_name(m.t[i].new_type), ggml_type_name(wikillama_reference[k].types[i]));
            assert_int_equal(m.t[i].convert, m.t[i].new_type != GGML_TYPE_F32);
        }
    }
}

static void test_order(void **state) {
    (void)state;
    assert_true(qt_tensor_order("blk.9.attn_q.weight", "blk.10.attn_q.weight") < 0);
    assert_true(qt_tensor_order("blk.2.ffn_up.weight", "blk.10.attn_k.weight") < 0);
    assert_true(qt_tensor_order("token_embd.weight", "blk.0.attn_k.weight") < 0);
    assert_true(qt_tensor_order("output.weight", "output_norm.weight") < 0);
    assert_true(qt_tensor_order("rope_freqs.weight", "token_embd.weight") < 0);
    assert_true(qt_tensor_order("blk.1.a", "blk.1.a") == 0);
    assert_true(qt_tensor_order("blk.x.a", "blk.0.a") < 0); /* no layer number: with the non-layer tensors */
}

/* use_more_bits for n = 32 selects layers 0,1,2,3,6,9,...,27,28,29,30,31 (FORMATS.md §5.3). */
static void test_q4_k_m_32_layers(void **state) {
    (void)state;
    static model m;
    llama(&m, 32, 512, 512, 1024, 1024, false);
    qt_model mm = {.n_layer = 32, .n_gqa = 1};
    plan(&m, &mm, "Q4_K_M", &(qt_options){.output_type = -1, .token_embd_type = -1});
    const int more[] = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};
    for (int i = 0; i < 32; i++) {
        bool want = false;
        for (size_t k = 0; k < sizeof more / sizeof more[0]; k++)
            want |= more[k] == i;
        char name[64];
        snprintf(name, sizeof name, "blk.%d.attn_v.weight", i);
        assert_int_equal(type_of(&m, name), want ? GGML_TYPE_Q6_K : GGML_TYPE_Q4_K);
        snprintf(name, sizeof name, "blk.%d.ffn_down.weight", i);
        assert_int_equal(type_of(&m, name), want ? GGML_TYPE_Q6_K : GGML_TYPE_Q4_K);
        snprintf(name, sizeof name, "blk.%d.attn_q.weight", i);
        assert_int_equal(type_of(&m, name), GGML_TYPE_Q4_K);
    }
    /* Q4_K_S: first 4 attn_v and ffn_down of the first n/8 layers get Q5_K */
    llama(&m, 32, 512, 512, 1024, 1024, false);
    plan(&m, &mm, "Q4_K_S", &(qt_options){.output_type = -1, .token_embd_type = -1});
    for (int i = 0; i < 32; i++) {
        char name[64];
        snprintf(name, sizeof name, "blk.%d.attn_v.weight", i);
        assert_int_equal(type_of(&m, name), i < 4 ? GGML_TYPE_Q5_K : GGML_TYPE_Q4_K);
        snprintf(name, sizeof name, "blk.%d.ffn_down.weight", i);
        assert_int_equal(type_of(&m, name), i < 4 ? GGML_TYPE_Q5_K : GGML_TYPE_Q4_K);
    }
    /* Q4_0 with an importance matrix: ffn_down of the first n/8 layers becomes Q4_1 */
    llama(&m, 32, 512, 512, 1024, 1024, false);
    plan(&m, &mm, "Q4_0", &(qt_options){.has_imatrix = true, .output_type = -1, .token_embd_type = -1});
    assert_int_equal(type_of(&m, "blk.3.ffn_down.weight"), GGML_TYPE_Q4_1);
    assert_int_equal(type_of(&m, "blk.4.ffn_down.weight"), GGML_TYPE_Q4_0);
    llama(&m, 32, 512, 512, 1024, 1024, false);
    plan(&m, &mm, "Q4_0", &(qt_options){.output_type = -1, .token_embd_type = -1});
    assert_int_equal(type_of(&m, "blk.3.ffn_down.weight"), GGML_TYPE_Q4_0);
}

static void test_fallback(void **state) {
    (void)state;
    model m;
    /* rows of 384 (a multiple of 32, not of 256) and 48 (not even of 32) */
    struct {
        const char *mix;
        uint32_t t384, t48, out384;
    } cases[] = {
        {"Q4_K_S", GGML_TYPE_Q5_0, GGML_TYPE_F16, GGML_TYPE_Q8_0},
        {"Q5_K_S", GGML_TYPE_Q5_1, GGML_TYPE_F16, GGML_TYPE_Q8_0},
        {"Q6_K", GGML_TYPE_Q8_0, GGML_TYPE_F16, GGML_TYPE_Q8_0},
        {"Q8_0", GGML_TYPE_Q8_0, 0, GGML_TYPE_Q8_0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        m.n = 0;
        add(&m, "output.weight", 384, 100);
        add(&m, "blk.0.attn_q.weight", 384, 384);
        if (cases[k].t48)
            add(&m, "blk.0.ffn_up.weight", 48, 384);
        qt_model mm = {.n_layer = 1};
        plan(&m, &mm, cases[k].mix, &(qt_options){.output_type = -1, .token_embd_type = -1});
        assert_int_equal(type_of(&m, "output.weight"), cases[k].out384);
        assert_int_equal(type_of(&m, "blk.0.attn_q.weight"), cases[k].t384);
        assert_string_equal(m.t[1].name, "blk.0.attn_q.weight");
        assert_int_equal(m.t[1].fallback, strcmp(cases[k].mix, "Q8_0") != 0);
        if (cases[k].t48)
            assert_int_equal(type_of(&m, "blk.0.ffn_up.weight"), cases[k].t48);
    }
    /* --pure has no fallback: a clear error naming the tensor */
    m.n = 0;
    add(&m, "blk.0.attn_q.weight", 384, 384);
    nm_error err = {{0}};
    qt_model mm = {.n_layer = 1};
    assert_int_equal(qt_plan(m.t, m.n, &mm, qt_ftype_from_name("Q4_K_M"),
                             &(qt_options){.pure = true, .output_type = -1, .token_embd_type = -1}, &err),
                     -1);
    assert_non_null(strstr(err.msg, "blk.0.attn_q.weight"));
    assert_non_null(strstr(err.msg, "384"));
    /* a legacy type has no fallback at all */
    m.n = 0;
    add(&m, "blk.0.ffn_up.weight", 48, 384);
    assert_int_equal(qt_plan(m.t, m.n, &mm, qt_ftype_from_name("Q4_0"),
                             &(qt_options){.output_type = -1, .token_embd_type = -1}, &err),
                     -1);
    assert_non_null(strstr(err.msg, "blk.0.ffn_up.weight"));
}

static void test_tied_and_overrides(void **state) {
    (void)state;
    model m;
    qt_options none = {.output_type = -1, .token_embd_type = -1};
    llama(&m, 4, 256, 128, 768, 4096, true);
    plan(&m, &wikillama_model, "Q4_K_M", &none);
    assert_int_equal(type_of(&m, "token_embd.weight"), GGML_TYPE_Q6_K); /* tied: treated as output */
    llama(&m, 4, 256, 128, 768, 4096, true);
    plan(&m, &wikillama_model, "Q8_0", &none);
    assert_int_equal(type_of(&m, "token_embd.weight"), GGML_TYPE_Q8_0);

    llama(&m, 4, 256, 128, 768, 4096, false);
    plan(&m, &wikillama_model, "Q4_K_M", &(qt_options){.leave_output = true, .output_type = -1, .token_embd_type = -1});
    assert_int_equal(type_of(&m, "output.weight"), GGML_TYPE_F32);
    assert_false(m.t[0].convert);

    llama(&m, 4, 256, 128, 768, 4096, false);
    plan(&m, &wikillama_model, "Q4_K_M", &(qt_options){.output_type = GGML_TYPE_Q8_0, .token_embd_type = GGML_TYPE_Q5_0});
    assert_int_equal(type_of(&m, "output.weight"), GGML_TYPE_Q8_0);
    assert_int_equal(type_of(&m, "token_embd.weight"), GGML_TYPE_Q5_0);

    /* --pure: the default type everywhere, overrides still apply */
    llama(&m, 4, 256, 128, 768, 4096, false);
    plan(&m, &wikillama_model, "Q4_K_M", &(qt_options){.pure = true, .output_type = -1, .token_embd_type = GGML_TYPE_F16});
    assert_int_equal(type_of(&m, "output.weight"), GGML_TYPE_Q4_K);
    assert_int_equal(type_of(&m, "blk.3.attn_v.weight"), GGML_TYPE_Q4_K);
    assert_int_equal(type_of(&m, "blk.3.ffn_down.weight"), GGML_TYPE_Q4_K);
    assert_int_equal(type_of(&m, "token_embd.weight"), GGML_TYPE_F16);
    assert_int_equal(type_of(&m, "blk.3.ffn_norm.weight"), GGML_TYPE_F32);

    /* COPY: nothing converted */
    llama(&m, 4, 256, 128, 768, 4096, false);
    plan(&m, &wikillama_model, "COPY", &(qt_options){.only_copy = true, .output_type = -1, .token_embd_type = -1});
    for (size_t i = 0; i < m.n; i++)
        assert_false(m.t[i].convert);

    /* float targets: no mixture, everything eligible gets the type */
    llama(&m, 4, 256, 128, 768, 4096, false);
    plan(&m, &wikillama_model, "F16", &none);
    assert_int_equal(type_of(&m, "output.weight"), GGML_TYPE_F16);
    assert_int_equal(type_of(&m, "blk.0.attn_v.weight"), GGML_TYPE_F16);
    assert_int_equal(type_of(&m, "output_norm.weight"), GGML_TYPE_F32);
}

static void test_eligibility(void **state) {
    (void)state;
    assert_true(qt_tensor_eligible("blk.0.attn_q.weight", 2));
    assert_false(qt_tensor_eligible("blk.0.attn_q.weight", 1));
    assert_false(qt_tensor_eligible("blk.0.attn_q.bias", 2));
    assert_false(qt_tensor_eligible("blk.0.attn_norm.weight", 2));
    assert_false(qt_tensor_eligible("blk.0.ffn_gate_inp.weight", 2));
    assert_false(qt_tensor_eligible("position_embd.weight", 2));
    assert_false(qt_tensor_eligible("token_types.weight", 2));
    assert_false(qt_tensor_eligible("blk.0.ssm_conv1d.weight", 2));
    assert_true(qt_tensor_eligible("token_embd.weight", 2));

    /* already F16 and target F16: nothing to convert; already Q8_0 for a Q8_0 mix: copied */
    model m;
    m.n = 0;
    add(&m, "blk.0.attn_q.weight", 256, 256);
    m.t[0].type = GGML_TYPE_Q8_0;
    qt_model mm = {.n_layer = 1};
    plan(&m, &mm, "Q8_0", &(qt_options){.output_type = -1, .token_embd_type = -1});
    assert_false(m.t[0].convert);
    plan(&m, &mm, "Q4_0", &(qt_options){.output_type = -1, .token_embd_type = -1});
    assert_true(m.t[0].convert);
}

static void test_names(void **state) {
    (void)state;
    assert_int_equal(qt_ftype_from_name("q4_k")->ftype, 15);
    assert_int_equal(qt_ftype_from_name("Q4_K_M")->ftype, 15);
    assert_int_equal(qt_ftype_from_name("Q5_K")->ftype, 17);
    assert_int_equal(qt_ftype_from_name("Q4_K_S")->ftype, 14);
    assert_int_equal(qt_ftype_from_name("Q8_0")->ftype, 7);
    assert_int_equal(qt_ftype_from_name("Q5_0")->ftype, 8);
    assert_int_equal(qt_ftype_from_name("Q5_1")->ftype, 9);
    assert_int_equal(qt_ftype_from_name("Q6_K")->ftype, 18);
    assert_int_equal(qt_ftype_from_name("BF16")->ftype, 32);
    assert_true(qt_ftype_is_copy(qt_ftype_from_name("copy")));
    assert_false(qt_ftype_is_copy(qt_ftype_from_name("F32")));
    assert_int_equal(qt_ftype_from_name("Q4_K_S")->default_type, GGML_TYPE_Q4_K);
    assert_null(qt_ftype_from_name("Q4_2"));
    assert_null(qt_ftype_from_name(""));
    assert_string_equal(qt_ftype_from_id(17)->name, "Q5_K_M");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wikillama_mixes), cmocka_unit_test(test_order),
        cmocka_unit_test(test_q4_k_m_32_layers), cmocka_unit_test(test_fallback),
        cmocka_unit_test(test_tied_and_overrides), cmocka_unit_test(test_eligibility),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
