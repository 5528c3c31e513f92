/* SentencePiece ModelProto parser: the real Llama 2 and wikillama models read exactly as
 * SentencePiece itself reads them (digest of every piece, score and converter token type, made
 * with python3-sentencepiece), defaults for absent fields, every malformed input refused with a
 * message, and the converter helpers (resize, added tokens) behaving like convert_hf_to_gguf.py. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "formats/spm.h"

#define LLAMA2_MODEL "tests/data/tokenizer/llama2-tokenizer.model"
#define WIKILLAMA_MODEL "tests/data/tokenizer/wikillama-tokenizer.model"

/* FNV-1a over piece + NUL + score (f32 LE) + converter type (i32 LE), per id: the same function
 * over SentencePieceProcessor's IdToPiece/GetScore/Is* gave the constants below. */
static uint64_t vocab_digest(const spm_vocab *v) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint32_t i = 0; i < v->n_tokens; i++) {
        uint8_t tail[8];
        memcpy(tail, &v->scores[i], 4);
        memcpy(tail + 4, &v->types[i], 4);
        for (uint32_t k = 0; k <= v->piece_lens[i]; k++)
            h = (h ^ (uint8_t)v->pieces[i][k]) * 0x100000001b3ull;
        for (int k = 0; k < 8; k++)
            h = (h ^ tail[k]) * 0x100000001b3ull;
    }
    return h;
}

static void test_llama2_model(void **state) {
    (void)state;
    spm_vocab v;
    nm_error err;
    int rc = spm_vocab_load(&v, LLAMA2_MODEL, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_int_equal(v.n_tokens, 32000);
    assert_int_equal(v.model_type, 2);
    assert_true(v.byte_fallback);
    assert_true(v.add_dummy_prefix);
    assert_false(v.remove_extra_whitespaces);
    assert_true(v.escape_whitespaces);
    assert_int_equal(v.unk_id, 0);
    assert_int_equal(v.bos_id, 1);
    assert_int_equal(v.eos_id, 2);
    assert_int_equal(v.pad_id, -1);
    assert_true(v.add_bos);
    assert_false(v.add_eos);
    assert_string_equal(v.pieces[0], "<unk>");
    assert_int_equal(v.types[0], SPM_TOKEN_UNKNOWN);
    assert_string_equal(v.pieces[2], "</s>");
    assert_int_equal(v.types[2], SPM_TOKEN_CONTROL);
    assert_string_equal(v.pieces[3 + 0x41], "<0x41>");
    for (int i = 3; i < 259; i++)
        assert_int_equal(v.types[i], SPM_TOKEN_BYTE);
    assert_string_equal(v.pieces[259], "\xe2\x96\x81\xe2\x96\x81");
    assert_true(v.scores[259] == -1e9f);
    assert_string_equal(v.pieces[1000], "ied");
    assert_true(v.scores[1000] == -741.0f);
    assert_int_equal(v.types[1000], SPM_TOKEN_NORMAL);
    assert_int_equal(v.piece_lens[31999], 3);
    assert_true(vocab_digest(&v) == 0x1dc2c5d20a46f1bdull);
    spm_vocab_free(&v);
}

static void test_wikillama_model(void **state) {
    (void)state;
    spm_vocab v;
    nm_error err;
    if (spm_vocab_load(&v, WIKILLAMA_MODEL, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(v.n_tokens, 4096);
    assert_true(v.remove_extra_whitespaces);
    assert_string_equal(v.pieces[260], "he");
    assert_true(v.scores[4095] == -3836.0f);
    assert_true(vocab_digest(&v) == 0x8718c5971e7e7e32ull);
    spm_vocab_free(&v);
}

/* ---- a tiny protobuf writer for hand-made models ---- */

typedef struct buf {
    uint8_t d[16384];
    size_t n;
} buf;

static void put_varint(buf *b, uint64_t v) {
    do {
        uint8_t byte = v & 0x7f;
        v >>= 7;
        b->d[b->n++] = byte | (v ? 0x80 : 0);
    } while (v);
}
static void put_key(buf *b, uint32_t field, uint32_t wire) { put_varint(b, (uint64_t)field << 3 | wire); }
static void put_bytes(buf *b, uint32_t field, const void *data, size_t len) {
    put_key(b, field, 2);
    put_varint(b, len);
    memcpy(b->d + b->n, data, len);
    b->n += len;
}
static void put_float(buf *b, uint32_t field, float f) {
    put_key(b, field, 5);
    memcpy(b->d + b->n, &f, 4);
    b->n += 4;
}
static void put_int(buf *b, uint32_t field, int64_t v) {
    put_key(b, field, 0);
    put_varint(b, (uint64_t)v);
}
static void put_piece(buf *b, const char *text, float score, int type) {
    buf p = {.n = 0};
    put_bytes(&p, 1, text, strlen(text));
    put_float(&p, 2, score);
    if (type)
        put_int(&p, 3, type);
    put_bytes(b, 1, p.d, p.n);
}

static int load(spm_vocab *v, const buf *b, nm_error *err) { return spm_vocab_load_memory(v, b->d, b->n, err); }

static void test_defaults_and_unknown_fields(void **state) {
    (void)state;
    buf b = {.n = 0};
    put_piece(&b, "<unk>", 0, 2);
    put_piece(&b, "a", -1.5f, 0); /* type absent: normal */
    put_piece(&b, "b", -2, 4);    /* user-defined: the converter writes NORMAL */
    put_piece(&b, "c", -3, 5);    /* unused */
    put_piece(&b, "d", -4, 9);    /* out-of-enum type: proto2 keeps the default */
    /* unknown fields of every wire type at top level */
    put_int(&b, 77, 12345);
    put_key(&b, 78, 1);
    memset(b.d + b.n, 0xAB, 8);
    b.n += 8;
    put_float(&b, 79, 1.0f);
    put_bytes(&b, 4, "self test", 9);
    spm_vocab v;
    nm_error err;
    if (load(&v, &b, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(v.n_tokens, 5);
    assert_int_equal(v.model_type, 1);
    assert_false(v.byte_fallback);
    assert_true(v.add_dummy_prefix && v.remove_extra_whitespaces && v.escape_whitespaces);
    assert_int_equal(v.unk_id, 0);
    assert_int_equal(v.bos_id, 1); /* defaults 1/2 exist in a 5-token vocabulary */
    assert_int_equal(v.eos_id, 2);
    assert_int_equal(v.pad_id, -1);
    int32_t want[5] = {SPM_TOKEN_UNKNOWN, SPM_TOKEN_NORMAL, SPM_TOKEN_NORMAL, SPM_TOKEN_UNUSED, SPM_TOKEN_NORMAL};
    for (int i = 0; i < 5; i++)
        assert_int_equal(v.types[i], want[i]);
    assert_true(v.scores[1] == -1.5f);
    assert_int_equal(v.piece_lens[1], 1);
    spm_vocab_free(&v);
}

static void test_specs(void **state) {
    (void)state;
    buf ts = {.n = 0}, ns = {.n = 0}, b = {.n = 0};
    put_int(&ts, 3, 2);   /* BPE */
    put_int(&ts, 4, 3);   /* vocab_size: informational */
    put_int(&ts, 35, 1);  /* byte_fallback */
    put_int(&ts, 40, 2);  /* unk_id */
    put_int(&ts, 41, -1); /* bos_id = -1 as a 10-byte varint */
    put_int(&ts, 42, 300); /* eos_id out of range: none */
    put_int(&ts, 43, 1);  /* pad_id */
    put_bytes(&ts, 45, "<unk>", 5);
    put_bytes(&ns, 1, "identity", 8);
    put_bytes(&ns, 2, "\x01\x02", 2);
    put_int(&ns, 3, 0);
    put_int(&ns, 4, 0);
    put_int(&ns, 5, 0);
    for (int i = 0; i < 256; i++) {
        char t[8];
        snprintf(t, sizeof t, "<0x%02X>", i);
        put_piece(&b, t, 0, 6);
    }
    put_piece(&b, "<pad>", 0, 3);
    put_piece(&b, "<unk>", 0, 2);
    put_bytes(&b, 2, ts.d, ts.n);
    put_bytes(&b, 3, ns.d, ns.n);
    spm_vocab v;
    nm_error err;
    if (load(&v, &b, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(v.n_tokens, 258);
    assert_int_equal(v.model_type, 2);
    assert_true(v.byte_fallback);
    assert_false(v.add_dummy_prefix || v.remove_extra_whitespaces || v.escape_whitespaces);
    assert_int_equal(v.unk_id, 2);
    assert_int_equal(v.bos_id, -1);
    assert_int_equal(v.eos_id, -1);
    assert_int_equal(v.pad_id, 1);
    assert_int_equal(v.types[0], SPM_TOKEN_BYTE);
    assert_int_equal(v.types[256], SPM_TOKEN_CONTROL);
    spm_vocab_free(&v);
}

/* Each malformed model must fail with a message containing `want`. */
static void expect_error(const buf *b, const char *want) {
    spm_vocab v;
    nm_error err = {{0}};
    int rc = load(&v, b, &err);
    if (rc == 0) {
        spm_vocab_free(&v);
        fail_msg("accepted a model that should fail with '%s'", want);
    }
    if (!strstr(err.msg, want))
        fail_msg("message '%s' lacks '%s'", err.msg, want);
    assert_null(v.pieces); /* nothing left allocated or dangling */
}

static void test_malformed(void **state) {
    (void)state;
    buf b = {.n = 0};
    expect_error(&b, "empty");
    b.d[0] = 0x0A; b.d[1] = 0x80; b.n = 2; /* truncated length varint */
    expect_error(&b, "truncated varint");
    b.d[0] = 0x0A; b.d[1] = 0x05; b.d[2] = 0x0A; b.n = 3; /* piece longer than the file */
    expect_error(&b, "runs past the end");
    b.n = 0; put_key(&b, 5, 3); /* start-group */
    expect_error(&b, "wire type 3");
    b.d[0] = 0x02; b.n = 1; /* field 0 */
    expect_error(&b, "field number 0");
    b.n = 0;
    for (int i = 0; i < 11; i++) b.d[b.n++] = 0xFF;
    b.d[b.n++] = 0;
    expect_error(&b, "varint");
    b.n = 0; put_key(&b, 9, 1); b.d[b.n++] = 0; /* truncated fixed64 */
    expect_error(&b, "truncated 8-byte");
    b.n = 0; put_key(&b, 9, 5); b.d[b.n++] = 0; /* truncated fixed32 */
    expect_error(&b, "truncated 4-byte");
    b.n = 0; put_int(&b, 9, 1); /* only an unknown field */
    expect_error(&b, "no pieces");
    b.n = 0; put_piece(&b, "<unk>", 0, 2); put_piece(&b, "", 0, 0);
    expect_error(&b, "piece 1 is empty");
    b.n = 0; put_piece(&b, "<unk>", 0, 2); put_piece(&b, "x", 0, 0); put_piece(&b, "x", 0, 4);
    expect_error(&b, "piece 2 'x' is already defined");
    b.n = 0; put_piece(&b, "a", 0, 0);
    expect_error(&b, "no piece has type unknown");
    b.n = 0; put_piece(&b, "<unk>", 0, 2); put_piece(&b, "<unk2>", 0, 2);
    expect_error(&b, "both <unk>");
    b.n = 0; put_piece(&b, "<unk>", 0, 2); put_piece(&b, "<0x41>", 0, 6);
    expect_error(&b, "byte_fallback is false");
    buf ts = {.n = 0};
    put_int(&ts, 35, 1);
    b.n = 0; put_piece(&b, "<unk>", 0, 2); put_piece(&b, "<0x4a>", 0, 6); put_bytes(&b, 2, ts.d, ts.n);
    expect_error(&b, "not of the form <0xXX>");
    b.n = 0; put_piece(&b, "<unk>", 0, 2); put_piece(&b, "<0x41>", 0, 6); put_bytes(&b, 2, ts.d, ts.n);
    expect_error(&b, "<0x00> is missing");
    /* a broken nested message names where it is */
    buf p = {.n = 0};
    put_bytes(&p, 1, "a", 1);
    p.d[p.n++] = 0x15; p.d[p.n++] = 0x00; /* score with 1 of 4 bytes */
    b.n = 0; put_piece(&b, "<unk>", 0, 2); put_bytes(&b, 1, p.d, p.n);
    expect_error(&b, "piece 1: truncated 4-byte");
    ts.n = 0; put_key(&ts, 40, 0);
    b.n = 0; put_piece(&b, "<unk>", 0, 2); put_bytes(&b, 2, ts.d, ts.n);
    expect_error(&b, "trainer_spec: truncated varint");
}

/* Every prefix of a real model either parses or fails cleanly (ASan/UBSan watch the rest). */
static void test_truncations(void **state) {
    (void)state;
    FILE *f = fopen(WIKILLAMA_MODEL, "rb");
    assert_non_null(f);
    static uint8_t data[70000];
    size_t n = fread(data, 1, sizeof data, f);
    fclose(f);
    assert_true(n > 60000 && n < sizeof data);
    int ok = 0;
    for (size_t len = 0; len < n; len += (len < 4096 ? 1 : 97)) {
        uint8_t *copy = malloc(len ? len : 1); /* exact-size copy so ASan sees overreads */
        memcpy(copy, data, len);
        spm_vocab v;
        nm_error err;
        if (spm_vocab_load_memory(&v, copy, len, &err) == 0) {
            ok++;
            spm_vocab_free(&v);
        } else {
            assert_true(err.msg[0] != '\0');
        }
        free(copy);
    }
    (void)ok;
}

static void test_load_errors(void **state) {
    (void)state;
    spm_vocab v;
    nm_error err;
    assert_int_equal(spm_vocab_load(&v, "tests/data/tokenizer/does-not-exist.model", &err), -1);
    assert_non_null(strstr(err.msg, "does-not-exist.model: cannot open"));
    assert_int_equal(spm_vocab_load(&v, "tests/data/tokenizer", &err), -1);
    assert_non_null(strstr(err.msg, "not a regular file"));
    /* a JSON file is not a protobuf: message names the file */
    char path[] = "/tmp/nomoat-spm-test.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "{\"a\": 1}\n", 9), 9);
    close(fd);
    assert_int_equal(spm_vocab_load(&v, path, &err), -1);
    assert_non_null(strstr(err.msg, path));
    unlink(path);
}

/* ---- converter helpers ---- */

static void test_resize(void **state) {
    (void)state;
    spm_vocab v;
    nm_error err;
    if (spm_vocab_load(&v, WIKILLAMA_MODEL, &err))
        fail_msg("%s", err.msg);
    uint32_t dropped = 99;
    assert_int_equal(spm_vocab_resize(&v, 4100, &dropped, &err), 0);
    assert_int_equal(dropped, 0);
    assert_int_equal(v.n_tokens, 4100);
    assert_string_equal(v.pieces[4096], "[PAD4096]");
    assert_int_equal(v.piece_lens[4099], 9);
    assert_true(v.scores[4099] == -10000.0f);
    assert_int_equal(v.types[4098], SPM_TOKEN_UNUSED);
    assert_int_equal(spm_vocab_resize(&v, 2, &dropped, &err), 0);
    assert_int_equal(dropped, 4098);
    assert_int_equal(v.n_tokens, 2);
    assert_int_equal(v.bos_id, 1);
    assert_int_equal(v.eos_id, -1);
    assert_int_equal(spm_vocab_resize(&v, 0, NULL, &err), -1);
    spm_vocab_free(&v);
}

static void test_looks_special(void **state) {
    (void)state;
    const char *yes[] = {"<pad>", "<mask>", "<2mass>", "[@BOS@]", "<|im_start|>", "<|>", "<unused12>",
                         ("<\xef\xbd\x9c" "begin\xef\xbd\x9c>"), "<unused>"};
    const char *no[] = {"<s>", "</s>", "<|im_start", "pad", "<unk>", "<pad >", "|>", "<unused"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        assert_true(spm_token_looks_special(yes[i], strlen(yes[i])));
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        assert_false(spm_token_looks_special(no[i], strlen(no[i])));
}

static void write_file(const char *dir, const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_added_tokens(void **state) {
    (void)state;
    spm_vocab v;
    nm_error err;
    if (spm_vocab_load(&v, WIKILLAMA_MODEL, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(spm_vocab_resize(&v, 4100, NULL, &err), 0);
    char dir[] = "/tmp/nomoat-spm-hf.XXXXXX";
    assert_non_null(mkdtemp(dir));
    uint32_t ignored;
    /* no files: nothing changes */
    assert_int_equal(spm_vocab_apply_hf_added_tokens(&v, dir, &ignored, &err), 0);
    assert_string_equal(v.pieces[4096], "[PAD4096]");
    write_file(dir, "added_tokens.json", "{\"<extra>\": 4096, \"far\": 9999, \"<|x|>\": 4097}");
    write_file(dir, "tokenizer_config.json",
               "{\"add_bos_token\": true, \"added_tokens_decoder\": {"
               "\"4097\": {\"content\": \"<|x|>\", \"special\": false},"
               "\"4098\": {\"content\": \"a\xe2\x96\x81" "b\", \"special\": false},"
               "\"4099\": {\"content\": \"<sys>\", \"special\": true},"
               "\"5000\": {\"content\": \"out\", \"special\": true},"
               "\"1\": {\"content\": \"<s>\", \"special\": true}}}");
    assert_int_equal(spm_vocab_apply_hf_added_tokens(&v, dir, &ignored, &err), 0);
    assert_int_equal(ignored, 2);
    assert_string_equal(v.pieces[4096], "<extra>");
    assert_int_equal(v.types[4096], SPM_TOKEN_USER_DEFINED);
    assert_true(v.scores[4096] == -1000.0f);
    assert_string_equal(v.pieces[4097], "<|x|>"); /* looks special: control despite special=false */
    assert_int_equal(v.types[4097], SPM_TOKEN_CONTROL);
    assert_string_equal(v.pieces[4098], "a b"); /* user-defined: U+2581 pre-normalised */
    assert_int_equal(v.piece_lens[4098], 3);
    assert_int_equal(v.types[4098], SPM_TOKEN_USER_DEFINED);
    assert_int_equal(v.types[4099], SPM_TOKEN_CONTROL);
    assert_int_equal(v.types[1], SPM_TOKEN_CONTROL);
    assert_true(v.scores[1] == -1000.0f); /* the reference overwrites the score of <s> too */
    /* malformed files are errors that name the file */
    write_file(dir, "tokenizer_config.json", "{\"added_tokens_decoder\": {\"x1\": {\"content\": \"a\"}}}");
    assert_int_equal(spm_vocab_apply_hf_added_tokens(&v, dir, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "tokenizer_config.json"));
    write_file(dir, "tokenizer_config.json", "{\"added_tokens_decoder\": {\"7\": {\"special\": true}}}");
    assert_int_equal(spm_vocab_apply_hf_added_tokens(&v, dir, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "content"));
    write_file(dir, "added_tokens.json", "{\"a\": 1.5}");
    assert_int_equal(spm_vocab_apply_hf_added_tokens(&v, dir, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "added_tokens.json"));
    write_file(dir, "added_tokens.json", "{\"a\": ");
    assert_int_equal(spm_vocab_apply_hf_added_tokens(&v, dir, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "invalid JSON"));
    char path[512];
    snprintf(path, sizeof path, "%s/added_tokens.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    unlink(path);
    rmdir(dir);
    spm_vocab_free(&v);
}

/* Phi3MiniModel.set_vocab's rules: CONTROL only when marked special (no look-alike rule), the
 * text kept as it is, tokenizer.json's added_tokens applied after the decoder entries, and an
 * entry beyond the vocabulary refused (that converter stops on it). */
static void test_special_only_added_tokens(void **state) {
    (void)state;
    spm_vocab v;
    nm_error err;
    if (spm_vocab_load(&v, WIKILLAMA_MODEL, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(spm_vocab_resize(&v, 4100, NULL, &err), 0);
    char dir[] = "/tmp/nomoat-spm-phi3.XXXXXX";
    assert_non_null(mkdtemp(dir));
    write_file(dir, "added_tokens.json", "{\"<extra>\": 4096, \"far\": 9999}");
    write_file(dir, "tokenizer_config.json",
               "{\"added_tokens_decoder\": {"
               "\"4097\": {\"content\": \"<|x|>\", \"special\": false},"
               "\"4098\": {\"content\": \"a\xe2\x96\x81" "b\", \"special\": false},"
               "\"4099\": {\"content\": \"<sys>\", \"special\": true}}}");
    write_file(dir, "tokenizer.json",
               "{\"added_tokens\": [{\"id\": 4099, \"content\": \"<tool>\", \"special\": false}]}");
    assert_int_equal(spm_vocab_apply_special_only_added_tokens(&v, dir, &err), 0);
    assert_string_equal(v.pieces[4096], "<extra>"); /* added_tokens.json as before; 9999 ignored */
    assert_int_equal(v.types[4096], SPM_TOKEN_USER_DEFINED);
    assert_int_equal(v.types[4097], SPM_TOKEN_USER_DEFINED); /* looks special, but not marked so */
    assert_string_equal(v.pieces[4098], "a\xe2\x96\x81" "b");  /* U+2581 kept */
    assert_int_equal(v.types[4098], SPM_TOKEN_USER_DEFINED);
    assert_string_equal(v.pieces[4099], "<tool>");            /* tokenizer.json comes last */
    assert_int_equal(v.types[4099], SPM_TOKEN_USER_DEFINED);
    assert_true(v.scores[4099] == -1000.0f);
    write_file(dir, "tokenizer.json", "{\"added_tokens\": [{\"id\": 4100, \"content\": \"x\"}]}");
    assert_int_equal(spm_vocab_apply_special_only_added_tokens(&v, dir, &err), -1);
    assert_non_null(strstr(err.msg, "beyond the vocabulary"));
    write_file(dir, "tokenizer.json", "{\"added_tokens\": [{\"content\": \"x\"}]}");
    assert_int_equal(spm_vocab_apply_special_only_added_tokens(&v, dir, &err), -1);
    assert_non_null(strstr(err.msg, "tokenizer.json"));
    static const char *const names[] = {"added_tokens.json", "tokenizer_config.json", "tokenizer.json"};
    for (int i = 0; i < 3; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    spm_vocab_free(&v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama2_model),
        cmocka_unit_test(test_wikillama_model),
        cmocka_unit_test(test_defaults_and_unknown_fields),
        cmocka_unit_test(test_specs),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_resize),
        cmocka_unit_test(test_looks_special),
        cmocka_unit_test(test_added_tokens),
        cmocka_unit_test(test_special_only_added_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
