/* nomoat-convert's private modules: the §6.3 row permutation, gguf-py's size labels and name
 * heuristics (expected values worked out from llama.cpp's Python by hand), Meta's context guess,
 * and config.json refusals. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convert/convert.h"

static void test_permutation_small(void **state) {
    (void)state;
    /* one head of 4 rows: halves (0,1 | 2,3) interleaved -> 0,2,1,3 */
    const uint64_t want1[] = {0, 2, 1, 3};
    for (uint64_t r = 0; r < 4; r++)
        assert_int_equal(conv_permuted_row(r, 4, 1), want1[r]);
    const uint64_t want2[] = {0, 2, 1, 3, 4, 6, 5, 7};
    for (uint64_t r = 0; r < 8; r++)
        assert_int_equal(conv_permuted_row(r, 8, 2), want2[r]);
    /* head_dim 8: rows 0..3 are the first half, 4..7 the second: 0,4,1,5,2,6,3,7 */
    const uint64_t want3[] = {0, 4, 1, 5, 2, 6, 3, 7};
    for (uint64_t r = 0; r < 8; r++)
        assert_int_equal(conv_permuted_row(r, 8, 1), want3[r]);
}

/* The reshape definition: [H, 2, hd/2] -> swap axes 1 and 2 -> [H, hd/2, 2]; out[h][i][j] = in[h][j][i]. */
static void test_permutation_matches_reshape(void **state) {
    (void)state;
    const uint32_t heads[] = {1, 4, 8, 32};
    const uint64_t hds[] = {2, 8, 32, 64, 128};
    for (size_t a = 0; a < 4; a++)
        for (size_t b = 0; b < 5; b++) {
            uint32_t H = heads[a];
            uint64_t hd = hds[b], R = H * hd, half = hd / 2;
            char *hit = calloc(R, 1);
            for (uint32_t h = 0; h < H; h++)
                for (uint64_t i = 0; i < half; i++)
                    for (uint64_t j = 0; j < 2; j++) {
                        uint64_t out = h * hd + i * 2 + j, in = h * hd + j * half + i;
                        assert_int_equal(conv_permuted_row(out, R, H), in);
                        hit[in]++;
                    }
            for (uint64_t r = 0; r < R; r++)
                assert_int_equal(hit[r], 1); /* a bijection */
            free(hit);
        }
}

static void test_size_label(void **state) {
    (void)state;
    char b[32];
    conv_size_label(5245184, b, sizeof b);
    assert_string_equal(b, "5.2M"); /* what the reference GGUFs say */
    conv_size_label(1100048384, b, sizeof b);
    assert_string_equal(b, "1.1B");
    conv_size_label(6738415616ull, b, sizeof b);
    assert_string_equal(b, "6.7B");
    conv_size_label(70553706496ull, b, sizeof b);
    assert_string_equal(b, "71B");
    conv_size_label(124439808, b, sizeof b);
    assert_string_equal(b, "124M");
    conv_size_label(999, b, sizeof b);
    assert_string_equal(b, "1.0K");
}

static void test_id_to_title(void **state) {
    (void)state;
    char b[128];
    conv_id_to_title("hf", b, sizeof b);
    assert_string_equal(b, "Hf");
    conv_id_to_title("Mixtral-8x7B-Instruct-v0.1", b, sizeof b);
    assert_string_equal(b, "Mixtral 8x7B Instruct v0.1");
    conv_id_to_title("Meta-Llama-3-8B", b, sizeof b);
    assert_string_equal(b, "Meta Llama 3 8B");
    conv_id_to_title("hermes-2-pro-llama-3-8b-DPO", b, sizeof b);
    assert_string_equal(b, "Hermes 2 Pro Llama 3 8b DPO");
    conv_id_to_title("wikillama-bf16", b, sizeof b);
    assert_string_equal(b, "Wikillama Bf16");
}

static void test_naming(void **state) {
    (void)state;
    conv_naming n;
    char f[256];
    conv_naming_build(&n, NULL, "hf", 5245184);
    assert_string_equal(n.name, "Hf");
    assert_string_equal(n.basename, "");
    assert_string_equal(n.size_label, "5.2M");
    conv_default_filename(&n, "F16", false, f, sizeof f);
    assert_string_equal(f, "Hf-5.2M-F16.gguf");
    conv_default_filename(&n, "F16", true, f, sizeof f);
    assert_string_equal(f, "Hf-vocab.gguf");

    conv_naming_build(&n, NULL, "TinyLlama-1.1B-Chat-v1.0", 1100048384);
    assert_string_equal(n.name, "TinyLlama 1.1B Chat v1.0");
    assert_string_equal(n.basename, "TinyLlama");
    assert_string_equal(n.size_label, "1.1B");
    assert_string_equal(n.finetune, "Chat");
    assert_string_equal(n.version, "v1.0");
    conv_default_filename(&n, "BF16", false, f, sizeof f);
    assert_string_equal(f, "TinyLlama-1.1B-Chat-v1.0-BF16.gguf");

    /* _name_or_path wins over the folder name and gives the organization */
    conv_naming_build(&n, "meta-llama/Llama-2-7b-hf", "somewhere", 6738415616ull);
    assert_string_equal(n.name, "Llama 2 7b Hf");
    assert_string_equal(n.organization, "Meta Llama");
    assert_string_equal(n.basename, "Llama-2");
    assert_string_equal(n.size_label, "7B");
    assert_string_equal(n.finetune, "hf");
    conv_default_filename(&n, "Q8_0", false, f, sizeof f);
    assert_string_equal(f, "Llama-2-7B-hf-Q8_0.gguf");

    /* a mixture of experts (Mixtral-8x7B's counts): gguf-py labels the shared tensors plus one
     * expert's share of each stacked one (1,605,636,096 + 5,637,144,576), after the expert count */
    conv_naming_build_experts(&n, NULL, "mixtral", 46702792704ull, 8, 7242780672ull);
    assert_string_equal(n.size_label, "8x7.2B");
    conv_default_filename(&n, "F16", false, f, sizeof f);
    assert_string_equal(f, "Mixtral-8x7.2B-F16.gguf");
}

static void test_meta_context_guess(void **state) {
    (void)state;
    assert_int_equal(conv_guess_meta_context(1e-5, 10000, true), 4096);
    assert_int_equal(conv_guess_meta_context(1e-6, 0, false), 4096);
    assert_int_equal(conv_guess_meta_context(1e-5, 1000000, true), 16384);
    assert_int_equal(conv_guess_meta_context(1e-6 * 2, 0, false), 2048);
}

static char scratch[256];

static void write_file(const char *name, const char *text) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", scratch, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void expect_config_error(const char *config, const char *needle1, const char *needle2) {
    write_file("config.json", config);
    conv_config c;
    nm_error err = {{0}};
    assert_int_equal(conv_config_load(&c, scratch, &err), -1);
    if (!strstr(err.msg, needle1) || (needle2 && !strstr(err.msg, needle2)))
        fail_msg("message '%s' lacks '%s' / '%s'", err.msg, needle1, needle2 ? needle2 : "");
}

static const char *good_config =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 256, \"intermediate_size\": 768,"
    " \"num_hidden_layers\": 4, \"num_attention_heads\": 8, \"num_key_value_heads\": 4, \"vocab_size\": 4096,"
    " \"max_position_embeddings\": 256, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, \"bos_token_id\": 1,"
    " \"eos_token_id\": 2, \"pad_token_id\": 9999}";

static void test_config(void **state) {
    (void)state;
    snprintf(scratch, sizeof scratch, "%s/nomoat-convert-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(scratch));
    write_file("config.json", good_config);
    write_file("tokenizer_config.json", "{\"add_bos_token\": true, \"add_eos_token\": false, \"chat_template\": \"{{x}}\"}");
    conv_config c;
    nm_error err = {{0}};
    assert_int_equal(conv_config_load(&c, scratch, &err), 0);
    assert_int_equal(c.layout, CONV_LAYOUT_HF);
    assert_int_equal(c.n_embd, 256);
    assert_int_equal(c.n_head_kv, 4);
    assert_int_equal(c.head_dim, 32);
    assert_true(c.has_ctx && c.n_ctx == 256);
    assert_true(c.rms_eps == 1e-5f);
    assert_int_equal(c.n_special, 3); /* bos, eos, pad in lookup order */
    assert_int_equal(c.special_type[0], CONV_SPECIAL_BOS);
    assert_int_equal(c.special_type[2], CONV_SPECIAL_PAD);
    assert_int_equal(c.add_count, 2);
    assert_true(c.add_value[0] && !c.add_value[1]);
    assert_string_equal(c.chat_template, "{{x}}");
    conv_config_free(&c);

    expect_config_error("{\"architectures\": [\"BloomForCausalLM\"]}", "BloomForCausalLM", "GPT2LMHeadModel");
    expect_config_error("{\"hidden_size\": 1}", "architectures", NULL);
    expect_config_error("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 256}", "num_hidden_layers", NULL);
    expect_config_error("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 256, ", "invalid JSON", NULL);
    expect_config_error("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": -3}", "hidden_size", NULL);
    expect_config_error("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 256.5}", "integer", NULL);
    expect_config_error("[1,2]", "JSON object", NULL);

    /* Meta params.json */
    char p[512];
    snprintf(p, sizeof p, "%s/config.json", scratch);
    unlink(p);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", scratch);
    unlink(p);
    write_file("params.json", "{\"dim\": 256, \"n_layers\": 4, \"n_heads\": 8, \"n_kv_heads\": 4, \"vocab_size\": -1,"
                              " \"norm_eps\": 1e-06}");
    assert_int_equal(conv_config_load(&c, scratch, &err), 0);
    assert_int_equal(c.layout, CONV_LAYOUT_META);
    assert_int_equal(c.n_ctx, 4096);
    assert_int_equal(c.n_vocab, 0);
    assert_false(c.has_rope_theta);
    conv_config_free(&c);
    snprintf(p, sizeof p, "%s/params.json", scratch);
    unlink(p);
    assert_int_equal(conv_config_load(&c, scratch, &err), -1);
    assert_non_null(strstr(err.msg, "config.json"));
    rmdir(scratch);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_permutation_small), cmocka_unit_test(test_permutation_matches_reshape),
        cmocka_unit_test(test_size_label),        cmocka_unit_test(test_id_to_title),
        cmocka_unit_test(test_naming),            cmocka_unit_test(test_meta_context_guess),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
