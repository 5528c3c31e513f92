/* tokenizer.json reader: a small byte-level BPE file in every form the format allows (merges as
 * strings and as pairs, added tokens special or not, a post-processor adding BOS), the
 * pre-tokenizer names derived from real files' pre_tokenizer sections, and every malformed
 * input refused with one line that says what is wrong. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "formats/bpe.h"

/* A tiny GPT-2-style file: "Ġ" is the byte-level space; the merges build "ab", "Ġa", "Ġab". */
#define PRE_LLAMA3                                                                                            \
    "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"                  \
    "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| "                   \
    "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},\"behavior\":"       \
    "\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true," \
    "\"use_regex\":false}]}"

static char *make_json(const char *model_extra, const char *merges, const char *added, const char *pre,
                       const char *post) {
    char *buf = malloc(8192);
    snprintf(buf, 8192,
             "{\"version\":\"1.0\",\"added_tokens\":%s,\"normalizer\":null,\"pre_tokenizer\":%s,"
             "\"post_processor\":%s,\"decoder\":{\"type\":\"ByteLevel\"},"
             "\"model\":{\"type\":\"BPE\"%s,\"vocab\":{\"a\":0,\"b\":1,\"\\u0120\":2,\"ab\":3,\"\\u0120a\":4,"
             "\"\\u0120ab\":5},\"merges\":%s}}",
             added, pre, post, model_extra, merges);
    return buf;
}

static int load(bpe_vocab *v, const char *json, nm_error *err) {
    return bpe_vocab_load_json_memory(v, json, strlen(json), err);
}

static void test_basic(void **state) {
    (void)state;
    char *j = make_json(",\"ignore_merges\":true", "[\"a b\",\"\\u0120 a\",\"\\u0120a b\"]",
                        "[{\"id\":6,\"content\":\"<|begin|>\",\"special\":true},"
                        "{\"id\":8,\"content\":\"<think>\",\"special\":false,\"lstrip\":true}]",
                        PRE_LLAMA3,
                        "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<|begin|>\","
                        "\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":"
                        "{\"<|begin|>\":{\"id\":\"<|begin|>\",\"ids\":[6],\"tokens\":[\"<|begin|>\"]}}}");
    bpe_vocab v;
    nm_error err;
    if (load(&v, j, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(v.n_tokens, 9);
    assert_string_equal(v.tokens[2], "\xc4\xa0");
    assert_string_equal(v.tokens[5], "\xc4\xa0" "ab");
    assert_int_equal(v.types[0], SPM_TOKEN_NORMAL);
    assert_string_equal(v.tokens[6], "<|begin|>");
    assert_int_equal(v.types[6], SPM_TOKEN_CONTROL);
    assert_string_equal(v.tokens[7], "[PAD7]"); /* a gap, as the reference converter fills it */
    assert_int_equal(v.types[7], SPM_TOKEN_UNUSED);
    assert_int_equal(v.types[8], SPM_TOKEN_USER_DEFINED);
    assert_int_equal(v.n_added, 2);
    assert_true(v.added[1].lstrip);
    assert_false(v.added[1].special);
    assert_int_equal(v.n_merges, 3);
    assert_string_equal(v.merge_left[2], "\xc4\xa0" "a");
    assert_string_equal(v.merge_right[2], "b");
    assert_true(v.ignore_merges);
    assert_string_equal(v.pre, "llama-bpe");
    assert_int_equal(v.bos_id, 6);
    assert_true(v.add_bos);
    assert_false(v.add_eos);
    assert_string_equal(v.decoder, "ByteLevel");
    bpe_vocab_free(&v);
    free(j);

    /* the same merges as pairs; without ignore_merges the llama3 regex is smaug-bpe's */
    j = make_json("", "[[\"a\",\"b\"],[\"\\u0120\",\"a\"],[\"\\u0120a\",\"b\"]]", "[]", PRE_LLAMA3, "null");
    if (load(&v, j, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(v.n_merges, 3);
    assert_string_equal(v.merge_left[1], "\xc4\xa0");
    assert_string_equal(v.pre, "smaug-bpe");
    assert_false(v.add_bos);
    assert_int_equal(v.bos_id, -1);
    bpe_vocab_free(&v);
    free(j);
}

static void test_pre_names(void **state) {
    (void)state;
    static const struct {
        const char *pre, *name;
    } cases[] = {
        {"{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}", "gpt-2"},
        {"{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":true},"
         "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}]}",
         "smollm"},
        {"{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
         "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| "
         "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},\"behavior\":"
         "\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"use_regex\":false}]}",
         "qwen2"},
        {"{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\p{N}{1,3}\"},"
         "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"Split\",\"pattern\":{\"Regex\":"
         "\"[\\u4e00-\\u9fa5\\u3040-\\u309f\\u30a0-\\u30ff]+\"},\"behavior\":\"Isolated\",\"invert\":false},"
         "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"[!\\\"#$%&'()*+,\\\\-./:;<=>?@\\\\[\\\\\\\\\\\\]^_`{|}~]"
         "[A-Za-z]+|[^\\r\\n\\\\p{L}\\\\p{P}\\\\p{S}]?[\\\\p{L}\\\\p{M}]+| ?[\\\\p{P}\\\\p{S}]+[\\r\\n]*|"
         "\\\\s*[\\r\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},\"behavior\":\"Isolated\",\"invert\":false},"
         "{\"type\":\"ByteLevel\",\"use_regex\":false}]}",
         "deepseek-v3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *j = make_json("", "[]", "[]", cases[i].pre, "null");
        bpe_vocab v;
        nm_error err;
        if (load(&v, j, &err))
            fail_msg("case %zu: %s", i, err.msg);
        if (strcmp(v.pre, cases[i].name))
            fail_msg("case %zu: pre '%s' (%s), want %s", i, v.pre, v.pre_error, cases[i].name);
        bpe_vocab_free(&v);
        free(j);
    }
    /* an unknown regex: no name, and a message quoting it and naming --pre */
    char *j = make_json("", "[]", "[]",
                        "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
                        "\"\\\\p{L}+|\\\\p{Zs}\"},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":"
                        "\"ByteLevel\",\"use_regex\":false}]}",
                        "null");
    bpe_vocab v;
    nm_error err;
    if (load(&v, j, &err))
        fail_msg("%s", err.msg);
    assert_string_equal(v.pre, "");
    assert_non_null(strstr(v.pre_error, "\"\\p{L}+|\\p{Zs}\""));
    assert_non_null(strstr(v.pre_error, "--pre NAME"));
    bpe_vocab_free(&v);
    free(j);
    /* Metaspace (SentencePiece-style BPE) is not byte-level */
    j = make_json("", "[]", "[]", "{\"type\":\"Metaspace\",\"replacement\":\"_\"}", "null");
    if (load(&v, j, &err))
        fail_msg("%s", err.msg);
    assert_string_equal(v.pre, "");
    assert_non_null(strstr(v.pre_error, "Metaspace"));
    bpe_vocab_free(&v);
    free(j);
}

/* Each case must be refused with a message containing `want`, on one line. */
static void expect_refusal(const char *json, size_t len, const char *want) {
    bpe_vocab v;
    nm_error err = {{0}};
    if (bpe_vocab_load_json_memory(&v, json, len, &err) == 0)
        fail_msg("accepted; wanted a refusal containing '%s'", want);
    if (!strstr(err.msg, want))
        fail_msg("message '%s' lacks '%s'", err.msg, want);
    for (const char *p = err.msg; *p; p++)
        assert_true((unsigned char)*p >= 0x20);
    assert_null(v.tokens);
    assert_int_equal(v.n_tokens, 0);
}

static void test_refusals(void **state) {
    (void)state;
    char *good = make_json("", "[\"a b\"]", "[]", PRE_LLAMA3, "null");
    size_t n = strlen(good);
    for (size_t cut = 0; cut < n; cut += 7) /* every truncation */
        expect_refusal(good, cut, "tokenizer.json is truncated");
    free(good);
    char *j;
#define REFUSE(model_extra, merges, added, want)                                                              \
    do {                                                                                                      \
        j = make_json(model_extra, merges, added, PRE_LLAMA3, "null");                                        \
        expect_refusal(j, strlen(j), want);                                                                   \
        free(j);                                                                                              \
    } while (0)
    REFUSE("", "[\"a c\"]", "[]", "model.merges[0] names \"c\", which is not in model.vocab");
    REFUSE("", "[[\"a\",\"zz\"]]", "[]", "model.merges[0] names \"zz\"");
    REFUSE("", "[\"b a\"]", "[]", "model.merges[0] makes \"ba\", which is not in model.vocab");
    REFUSE("", "[\"ab\"]", "[]", "is not two tokens separated by one space");
    REFUSE("", "[\"a b c\"]", "[]", "is not two tokens separated by one space");
    REFUSE("", "[7]", "[]", "neither a string");
    REFUSE("", "[\"a \\u00ff\\u0000\"]", "[]", "not in model.vocab");
    REFUSE("", "[]", "[{\"id\":2147483648,\"content\":\"x\"}]", "is too large");
    REFUSE("", "[]", "[{\"id\":-1,\"content\":\"x\"}]", "not a non-negative integer");
    REFUSE("", "[]", "[{\"id\":9,\"content\":\"\"}]", "is empty");
    REFUSE("", "[]", "[{\"id\":9,\"content\":\"x\"},{\"id\":9,\"content\":\"y\"}]", "both have id 9");
    REFUSE("", "[]", "[{\"id\":9}]", "content is not a string");
    REFUSE(",\"dropout\":0.1", "[]", "[]", "dropout is not supported");
    REFUSE(",\"continuing_subword_prefix\":\"##\"", "[]", "[]", "continuing_subword_prefix");
#undef REFUSE
    static const char *const whole[][2] = {
        {"[]", "the top level is not a JSON object"},
        {"{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}", "model type 'WordPiece' is not supported (only BPE)"},
        {"{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", "model type 'Unigram' is not supported"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"a\":1},\"merges\":[]}}", "token \"a\" appears twice"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}", "id 0 is given to two tokens"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":4294967296},\"merges\":[]}}", "is too large"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":16777216},\"merges\":[]}}", "is too large"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":1.5},\"merges\":[]}}", "not a non-negative integer"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":\"1\"},\"merges\":[]}}", "the id is not a number"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"\\u00e9\":0,\"\xff\":1},\"merges\":[]}}", "not valid UTF-8"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"\":0},\"merges\":[]}}", "empty token text"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{}}}", "model.vocab is empty"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":[]}}", "model.vocab is missing or not an object"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":{}}}", "model.merges is not an array"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"added_tokens\":{}}", "added_tokens is not an array"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"added_tokens\":[{\"id\":1,\"content\":\"\xc3\"}]}",
         "content is not valid UTF-8"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"normalizer\":7}", "normalizer is not an object"},
        {"{\"model\":[]}", "no \"model\" object"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}}} x", "not valid JSON"},
        {"{\"model\":{\"type\":\"\nX\",\"vocab\":{}}}", "model type '?X' is not supported"},
    };
    for (size_t i = 0; i < sizeof whole / sizeof *whole; i++)
        expect_refusal(whole[i][0], strlen(whole[i][0]), whole[i][1]);
}

static void test_resize(void **state) {
    (void)state;
    char *j = make_json("", "[]", "[]", PRE_LLAMA3, "null");
    bpe_vocab v;
    nm_error err;
    if (load(&v, j, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(bpe_vocab_resize(&v, 10, &err), 0);
    assert_int_equal(v.n_tokens, 10);
    assert_string_equal(v.tokens[9], "[PAD9]");
    assert_int_equal(bpe_vocab_resize(&v, BPE_MAX_TOKENS + 1, &err), -1);
    assert_non_null(strstr(err.msg, "too large"));
    bpe_vocab_free(&v);
    free(j);
    assert_true(bpe_pre_supported("llama-bpe"));
    assert_true(bpe_pre_supported("deepseek-v3"));
    assert_false(bpe_pre_supported("tekken"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_pre_names),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_resize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
