/* SPM encoding as llama.cpp does it (FORMATS.md §7.4): the worked example, the real Llama 2 and
 * wikillama tokenizers against SentencePiece's own ids (a slice in tests/data, the whole files
 * from ../shared/fixtures), the GGUF vocabulary against the reference GGUF, user-defined token
 * splitting, and thousands of random texts against a literal quadratic implementation of the
 * merge rule (which checks the heap, the word segmentation and the segment cache). */
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

#define DATA "tests/data/tokenizer/"

static char *fixture_path(const char *rel) {
    const char *root = getenv("NOMOAT_FIXTURES");
    if (!root)
        root = "../shared/fixtures";
    size_t n = strlen(root) + strlen(rel) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", root, rel);
    if (access(p, R_OK) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

static void *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = '\0';
    *size = (size_t)n;
    return buf;
}

/* ---- a vocabulary built in memory ---- */

static void vocab_init(spm_vocab *v, uint32_t cap) {
    memset(v, 0, sizeof *v);
    v->pieces = calloc(cap, sizeof *v->pieces);
    v->piece_lens = calloc(cap, sizeof *v->piece_lens);
    v->scores = calloc(cap, sizeof *v->scores);
    v->types = calloc(cap, sizeof *v->types);
    v->unk_id = 0;
    v->bos_id = 1;
    v->eos_id = 2;
    v->pad_id = -1;
    v->add_bos = true;
    v->add_dummy_prefix = true;
    v->escape_whitespaces = true;
}

static uint32_t vocab_add(spm_vocab *v, const char *text, float score, int32_t type) {
    uint32_t id = v->n_tokens++;
    v->pieces[id] = strdup(text);
    v->piece_lens[id] = (uint32_t)strlen(text);
    v->scores[id] = score;
    v->types[id] = type;
    return id;
}

static void vocab_add_specials_and_bytes(spm_vocab *v) {
    vocab_add(v, "<unk>", 0, SPM_TOKEN_UNKNOWN);
    vocab_add(v, "<s>", 0, SPM_TOKEN_CONTROL);
    vocab_add(v, "</s>", 0, SPM_TOKEN_CONTROL);
    for (int b = 0; b < 256; b++) {
        char t[8];
        snprintf(t, sizeof t, "<0x%02X>", b);
        vocab_add(v, t, 0, SPM_TOKEN_BYTE);
    }
}

static size_t encode(const spm_vocab *v, const char *text, bool add_special, int32_t **ids) {
    nm_error err;
    spm_tokenizer *t = spm_tokenizer_create(v, &err);
    if (!t)
        fail_msg("%s", err.msg);
    size_t n;
    if (spm_encode(t, text, strlen(text), add_special, ids, &n, &err))
        fail_msg("%s", err.msg);
    spm_tokenizer_free(t);
    return n;
}

static void expect_ids(const spm_vocab *v, const char *text, bool add_special, const int32_t *want, size_t n_want) {
    int32_t *ids;
    size_t n = encode(v, text, add_special, &ids);
    if (n != n_want || memcmp(ids, want, n * sizeof *ids) != 0) {
        fprintf(stderr, "text '%s': got", text);
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
        free(ids);
        fail_msg("ids differ for '%s'", text);
    }
    free(ids);
}

/* FORMATS.md §7.4 worked example (verified there with llama.cpp) */
static void build_example(spm_vocab *v) {
    vocab_init(v, 300);
    vocab_add_specials_and_bytes(v);
    const char *chars[] = {"\xe2\x96\x81", "h", "e", "l", "o", "w", "r", "d"};
    for (int i = 0; i < 8; i++)
        vocab_add(v, chars[i], -10, SPM_TOKEN_NORMAL);
    vocab_add(v, "ll", -1, SPM_TOKEN_NORMAL);
    vocab_add(v, "he", -2, SPM_TOKEN_NORMAL);
    vocab_add(v, "\xe2\x96\x81he", -3, SPM_TOKEN_NORMAL);
    vocab_add(v, "llo", -4, SPM_TOKEN_NORMAL);
    vocab_add(v, "\xe2\x96\x81hello", -5, SPM_TOKEN_NORMAL);
    vocab_add(v, "or", -6, SPM_TOKEN_NORMAL);
    vocab_add(v, "\xe2\x96\x81w", -7, SPM_TOKEN_NORMAL);
}

static void test_worked_example(void **state) {
    (void)state;
    spm_vocab v;
    build_example(&v);
    assert_int_equal(v.n_tokens, 274);
    const int32_t hello[] = {1, 271, 273, 198, 185, 265, 262, 266};
    expect_ids(&v, "hello w\xc3\xb6rld", true, hello, 8);
    expect_ids(&v, "hello w\xc3\xb6rld", false, hello + 1, 7);
    const int32_t hi[] = {1, 259, 259, 259, 260, 108};
    expect_ids(&v, "  hi", true, hi, 6);
    const int32_t empty[] = {1};
    expect_ids(&v, "", true, empty, 1);
    expect_ids(&v, "", false, empty, 0);
    /* no dummy prefix when the vocabulary says so */
    v.add_dummy_prefix = false;
    expect_ids(&v, "hello", false, (const int32_t[]){268, 270}, 2);
    /* EOS when asked for; a missing BOS/EOS is an error, not a crash */
    v.add_dummy_prefix = true;
    v.add_eos = true;
    expect_ids(&v, "he", true, (const int32_t[]){1, 269, 2}, 3);
    v.bos_id = -1;
    nm_error err;
    spm_tokenizer *t = spm_tokenizer_create(&v, &err);
    int32_t *ids;
    size_t n;
    assert_int_equal(spm_encode(t, "he", 2, true, &ids, &n, &err), -1);
    assert_non_null(strstr(err.msg, "no BOS"));
    assert_null(ids);
    assert_int_equal(spm_encode(t, "he", 2, false, &ids, &n, &err), 0); /* fine without specials */
    free(ids);
    spm_tokenizer_free(t);
    spm_vocab_free(&v);
}

static void test_control_text_and_user_defined(void **state) {
    (void)state;
    spm_vocab v;
    build_example(&v);
    uint32_t x = vocab_add(&v, "<x>", -1000, SPM_TOKEN_USER_DEFINED);
    uint32_t ab = vocab_add(&v, "o w", -1000, SPM_TOKEN_USER_DEFINED);
    /* "<s>" in text is not a control token (parse_special = false): bytes <, s, > */
    expect_ids(&v, "<s>", false, (const int32_t[]){259, 3 + '<', 3 + 's', 3 + '>'}, 4);
    /* user-defined tokens are always split out; text after one gets the dummy prefix again */
    expect_ids(&v, "he<x>he", false, (const int32_t[]){269, (int32_t)x, 269}, 3);
    expect_ids(&v, "<x><x>", true, (const int32_t[]){1, (int32_t)x, (int32_t)x}, 3);
    /* raw text is matched before space escaping: "▁hell" + "o w" + "▁orld" */
    expect_ids(&v, "hello world", false,
               (const int32_t[]){269, 267, (int32_t)ab, 259, 272, 262, 266}, 7);
    spm_vocab_free(&v);
}

static void test_no_byte_token(void **state) {
    (void)state;
    spm_vocab v;
    vocab_init(&v, 8);
    vocab_add(&v, "<unk>", 0, SPM_TOKEN_UNKNOWN);
    vocab_add(&v, "<s>", 0, SPM_TOKEN_CONTROL);
    vocab_add(&v, "</s>", 0, SPM_TOKEN_CONTROL);
    vocab_add(&v, "\xe2\x96\x81", 0, SPM_TOKEN_NORMAL);
    vocab_add(&v, "a", 0, SPM_TOKEN_NORMAL); /* the raw byte serves as its own fallback */
    vocab_add(&v, "", 0, SPM_TOKEN_NORMAL);  /* llama.cpp renames empty tokens [EMPTY_<id>] */
    expect_ids(&v, "a", true, (const int32_t[]){1, 3, 4}, 3);
    nm_error err;
    spm_tokenizer *t = spm_tokenizer_create(&v, &err);
    int32_t *ids;
    size_t n;
    assert_int_equal(spm_encode(t, "ab", 2, true, &ids, &n, &err), -1);
    assert_non_null(strstr(err.msg, "byte 0x62"));
    assert_null(ids);
    spm_tokenizer_free(t);
    spm_vocab_free(&v);
}

/* ---- SentencePiece's own ids on real text ---- */

static void check_ids_file(const spm_vocab *v, const char *text_path, const char *ids_path) {
    size_t text_len, ids_size;
    char *text = read_all(text_path, &text_len);
    int32_t *want = read_all(ids_path, &ids_size);
    nm_error err;
    spm_tokenizer *t = spm_tokenizer_create(v, &err);
    if (!t)
        fail_msg("%s", err.msg);
    int32_t *ids;
    size_t n;
    if (spm_encode(t, text, text_len, true, &ids, &n, &err))
        fail_msg("%s", err.msg);
    size_t n_want = ids_size / 4;
    size_t i = 0;
    while (i < n && i < n_want && ids[i] == want[i])
        i++;
    if (i != n || i != n_want)
        fail_msg("%s: %zu ids, expected %zu; first difference at %zu", text_path, n, n_want, i);
    free(ids);
    free(want);
    free(text);
    spm_tokenizer_free(t);
}

static void load_model(spm_vocab *v, const char *path) {
    nm_error err;
    if (spm_vocab_load(v, path, &err))
        fail_msg("%s", err.msg);
}

static void test_llama2_slice(void **state) {
    (void)state;
    spm_vocab v;
    load_model(&v, DATA "llama2-tokenizer.model");
    check_ids_file(&v, DATA "wikitext2-slice-llama2.txt", DATA "wikitext2-slice-llama2.ids");
    spm_vocab_free(&v);
}

/* wikillama's model has remove_extra_whitespaces: from tokenizer.model, SentencePiece's
 * whitespace rules apply (the slice holds double spaces) */
static void test_wikillama_slice(void **state) {
    (void)state;
    spm_vocab v;
    load_model(&v, DATA "wikillama-tokenizer.model");
    assert_true(v.remove_extra_whitespaces);
    check_ids_file(&v, DATA "heldout-slice-wikillama.txt", DATA "heldout-slice-wikillama.ids");
    spm_vocab_free(&v);
}

static void test_llama2_whole_wikitext(void **state) {
    (void)state;
    char *text = fixture_path("text/wikitext2-test.txt");
    char *ids = fixture_path("tokenizer/llama2-wikitext2-test.ids");
    if (!text || !ids) {
        free(text);
        free(ids);
        printf("SKIPPED: whole wikitext-2 test file (no ../shared/fixtures)\n");
        skip();
    }
    spm_vocab v;
    load_model(&v, DATA "llama2-tokenizer.model");
    check_ids_file(&v, text, ids);
    spm_vocab_free(&v);
    free(text);
    free(ids);
}

static void test_wikillama_whole_heldout(void **state) {
    (void)state;
    char *text = fixture_path("text/wikillama-heldout.txt");
    char *ids = fixture_path("tokenizer/wikillama-heldout.ids");
    if (!text || !ids) {
        free(text);
        free(ids);
        printf("SKIPPED: whole wikillama held-out file (no ../shared/fixtures)\n");
        skip();
    }
    spm_vocab v;
    load_model(&v, DATA "wikillama-tokenizer.model");
    check_ids_file(&v, text, ids);
    spm_vocab_free(&v);
    free(text);
    free(ids);
}

/* Long texts are cut at barriers and merged on several threads: same ids for any count. */
static void test_threads_same_ids(void **state) {
    (void)state;
    spm_vocab v;
    load_model(&v, DATA "llama2-tokenizer.model");
    size_t len;
    char *slice = read_all(DATA "wikitext2-slice-llama2.txt", &len);
    size_t big_len = 7 * len + 5;
    char *big = malloc(big_len);
    for (int k = 0; k < 7; k++)
        memcpy(big + k * len, slice, len);
    memcpy(big + 7 * len, "  \xe2\x96\x81x ", 5); /* odd bytes at the very end */
    nm_error err;
    spm_tokenizer *t = spm_tokenizer_create(&v, &err);
    int32_t *ref, *ids;
    size_t n_ref, n;
    spm_tokenizer_set_threads(t, 1);
    if (spm_encode(t, big, big_len, true, &ref, &n_ref, &err))
        fail_msg("%s", err.msg);
    const int counts[] = {2, 3, 7, 64, 0};
    for (size_t c = 0; c < sizeof counts / sizeof *counts; c++) {
        spm_tokenizer_set_threads(t, counts[c]);
        if (spm_encode(t, big, big_len, true, &ids, &n, &err))
            fail_msg("%s", err.msg);
        assert_int_equal(n, n_ref);
        assert_memory_equal(ids, ref, n * sizeof *ids);
        free(ids);
    }
    free(ref);
    free(big);
    free(slice);
    spm_tokenizer_free(t);
    spm_vocab_free(&v);
}

static void test_sentencepiece_whitespace(void **state) {
    (void)state;
    spm_vocab v;
    build_example(&v);
    v.remove_extra_whitespaces = true;
    /* leading/trailing spaces dropped, runs collapsed; all-space text gives nothing */
    expect_ids(&v, "   he  he ", false, (const int32_t[]){269, 269}, 2);
    expect_ids(&v, "   ", true, (const int32_t[]){1}, 1);
    v.remove_extra_whitespaces = false;
    expect_ids(&v, "he  he", false, (const int32_t[]){269, 259, 269}, 3);
    spm_vocab_free(&v);
}

/* ---- the GGUF vocabulary ---- */

static void test_gguf_vocab(void **state) {
    (void)state;
    char *path = fixture_path("reference/wikillama-f32.gguf");
    if (!path) {
        printf("SKIPPED: reference GGUF vocabulary (no ../shared/fixtures)\n");
        skip();
    }
    nm_error err;
    gguf_reader *g = gguf_open(path, &err);
    if (!g)
        fail_msg("%s", err.msg);
    spm_vocab gv, pv;
    if (spm_vocab_from_gguf(&gv, g, &err))
        fail_msg("%s", err.msg);
    load_model(&pv, DATA "wikillama-tokenizer.model");
    /* what the reference converter wrote is exactly what spm_vocab_load gives the converter */
    assert_int_equal(gv.n_tokens, pv.n_tokens);
    for (uint32_t i = 0; i < gv.n_tokens; i++) {
        assert_int_equal(gv.piece_lens[i], pv.piece_lens[i]);
        assert_memory_equal(gv.pieces[i], pv.pieces[i], gv.piece_lens[i]);
        assert_memory_equal(&gv.scores[i], &pv.scores[i], 4);
        assert_int_equal(gv.types[i], pv.types[i]);
    }
    assert_int_equal(gv.bos_id, 1);
    assert_int_equal(gv.eos_id, 2);
    assert_int_equal(gv.unk_id, 0); /* absent from the file: llama.cpp's default */
    assert_int_equal(gv.pad_id, -1);
    assert_true(gv.add_bos);
    assert_false(gv.add_eos);
    assert_true(gv.add_dummy_prefix);
    assert_false(gv.remove_extra_whitespaces); /* llama.cpp's SPM path never collapses spaces */
    /* so the two differ exactly by SentencePiece's whitespace rule */
    pv.remove_extra_whitespaces = false;
    int32_t *a, *b;
    const char *text = "  Brigade ( 1 @.@  hrvatski  \n\n Test  ";
    size_t na = encode(&gv, text, true, &a), nb = encode(&pv, text, true, &b);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    free(a);
    free(b);
    spm_vocab_free(&gv);
    spm_vocab_free(&pv);
    gguf_close(g);
    free(path);
}

/* A GGUF holding only the given tokenizer keys, for the metadata error paths. */
typedef struct kv_spec {
    const char *model;      /* tokenizer.ggml.model, NULL = absent */
    int scores_type;        /* element type, -1 = absent */
    uint64_t n_scores, n_types;
    int bos_type;           /* -1 = absent */
    uint32_t bos;
} kv_spec;

static gguf_reader *make_gguf(const kv_spec *k, const char *path) {
    nm_error err;
    gguf_writer_options opts = {.outfile_flags = 1 | 2};
    gguf_writer *w = gguf_writer_create(path, &opts, &err);
    if (!w)
        fail_msg("%s", err.msg);
    gguf_writer_set_string(w, "general.architecture", "llama", 5);
    if (k->model)
        gguf_writer_set_string(w, "tokenizer.ggml.model", k->model, strlen(k->model));
    gguf_string toks[4] = {{"<unk>", 5}, {"<s>", 3}, {"</s>", 4}, {"a", 1}};
    gguf_writer_set_string_array(w, "tokenizer.ggml.tokens", toks, 4);
    float scores[8] = {0, 0, 0, -1}; /* room for the FLOAT64 case */
    int32_t types[4] = {2, 3, 3, 1};
    if (k->scores_type >= 0)
        gguf_writer_set_array(w, "tokenizer.ggml.scores", (uint32_t)k->scores_type, scores, k->n_scores);
    gguf_writer_set_array(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, k->n_types);
    if (k->bos_type == GGUF_TYPE_UINT32)
        gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", k->bos);
    else if (k->bos_type == GGUF_TYPE_INT32)
        gguf_writer_set_i32(w, "tokenizer.ggml.bos_token_id", (int32_t)k->bos);
    if (gguf_writer_begin_data(w, &err) || gguf_writer_finish(w, &err))
        fail_msg("%s", err.msg);
    gguf_reader *g = gguf_open(path, &err);
    if (!g)
        fail_msg("%s", err.msg);
    return g;
}

static void test_gguf_metadata_rules(void **state) {
    (void)state;
    char path[] = "/tmp/nomoat-spm-gguf.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    struct {
        kv_spec k;
        const char *error; /* NULL: loads */
        int32_t bos;
    } cases[] = {
        {{"llama", GGUF_TYPE_FLOAT32, 4, 4, -1, 0}, NULL, 1},
        {{"llama", GGUF_TYPE_FLOAT32, 4, 4, GGUF_TYPE_UINT32, 3}, NULL, 3},
        {{"llama", GGUF_TYPE_FLOAT32, 4, 4, GGUF_TYPE_UINT32, 9}, NULL, 1}, /* out of range: default */
        {{"llama", -1, 0, 4, -1, 0}, NULL, 1},
        {{NULL, GGUF_TYPE_FLOAT32, 4, 4, -1, 0}, "has no tokenizer", 0},
        {{"gpt2", GGUF_TYPE_FLOAT32, 4, 4, -1, 0}, "'gpt2' is not supported", 0},
        {{"llama", GGUF_TYPE_FLOAT64, 4, 4, -1, 0}, "scores must be an array of FLOAT32", 0},
        {{"llama", GGUF_TYPE_FLOAT32, 3, 4, -1, 0}, "scores has 3 entries for 4 tokens", 0},
        {{"llama", GGUF_TYPE_FLOAT32, 4, 2, -1, 0}, "token_type has 2 entries", 0},
        {{"llama", GGUF_TYPE_FLOAT32, 4, 4, GGUF_TYPE_INT32, 1}, "expected UINT32", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        gguf_reader *g = make_gguf(&cases[i].k, path);
        spm_vocab v;
        nm_error err = {{0}};
        int rc = spm_vocab_from_gguf(&v, g, &err);
        if (cases[i].error) {
            assert_int_equal(rc, -1);
            if (!strstr(err.msg, cases[i].error))
                fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].error);
        } else {
            if (rc)
                fail_msg("case %zu: %s", i, err.msg);
            assert_int_equal(v.n_tokens, 4);
            assert_int_equal(v.bos_id, cases[i].bos);
            assert_int_equal(v.eos_id, 2);
            assert_true(v.scores[3] == (cases[i].k.scores_type < 0 ? 0.0f : -1.0f));
            spm_vocab_free(&v);
        }
        gguf_close(g);
    }
    unlink(path);
}

/* ---- random texts against a literal implementation of the rule ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static int32_t find_token(const spm_vocab *v, const char *s, size_t n) {
    int32_t found = -1;
    for (uint32_t i = 0; i < v->n_tokens; i++) /* last id wins, like llama.cpp's map */
        if (v->piece_lens[i] == n && memcmp(v->pieces[i], s, n) == 0)
            found = (int32_t)i;
    return found;
}

/* FORMATS.md §7.4 step 3 done the slow, obvious way: rescan all adjacent pairs each time. */
static size_t naive_encode(const spm_vocab *v, const char *raw, int32_t *out) {
    char text[1024];
    size_t len = 0;
    memcpy(text, "\xe2\x96\x81", 3);
    len = 3;
    for (const char *p = raw; *p; p++) {
        if (*p == ' ') {
            memcpy(text + len, "\xe2\x96\x81", 3);
            len += 3;
        } else {
            text[len++] = *p;
        }
    }
    size_t start[1024], size[1024], n = 0;
    for (size_t off = 0; off < len;) {
        uint8_t c = (uint8_t)text[off];
        size_t l = c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (l > len - off)
            l = len - off;
        start[n] = off;
        size[n++] = l;
        off += l;
    }
    for (;;) {
        int best = -1;
        float best_score = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            int32_t id = find_token(v, text + start[i], size[i] + size[i + 1]);
            if (id >= 0 && (best < 0 || v->scores[id] > best_score)) {
                best = (int)i;
                best_score = v->scores[id];
            }
        }
        if (best < 0)
            break;
        size[best] += size[best + 1];
        memmove(start + best + 1, start + best + 2, (n - best - 2) * sizeof *start);
        memmove(size + best + 1, size + best + 2, (n - best - 2) * sizeof *size);
        n--;
    }
    size_t k = 0;
    out[k++] = 1;
    for (size_t i = 0; i < n; i++) {
        int32_t id = find_token(v, text + start[i], size[i]);
        if (id >= 0) {
            out[k++] = id;
        } else {
            for (size_t j = 0; j < size[i]; j++)
                out[k++] = 3 + (uint8_t)text[start[i] + j];
        }
    }
    return k;
}

static void test_random_against_naive(void **state) {
    (void)state;
    const char *alphabet[] = {"a", "b", "c", " ", "\xe2\x96\x81", "\xc3\xa9", "\n", "\xf0\x9f\x98\x80", "\xe2"};
    const size_t n_alpha = sizeof alphabet / sizeof *alphabet;
    for (int round = 0; round < 60; round++) {
        spm_vocab v;
        vocab_init(&v, 600);
        vocab_add_specials_and_bytes(&v);
        int n_words = 20 + (int)rnd(200);
        for (int w = 0; w < n_words; w++) {
            char word[64] = "";
            int len = 1 + (int)rnd(5);
            for (int i = 0; i < len; i++) {
                const char *a = alphabet[rnd(n_alpha)];
                if (*a == ' ')
                    a = "\xe2\x96\x81"; /* tokens hold U+2581, never ' ' */
                strcat(word, a);
            }
            if (find_token(&v, word, strlen(word)) < 0 || rnd(8) == 0) /* some duplicates */
                vocab_add(&v, word, -(float)rnd(6), SPM_TOKEN_NORMAL); /* few scores: many ties */
        }
        nm_error err;
        spm_tokenizer *t = spm_tokenizer_create(&v, &err);
        if (!t)
            fail_msg("%s", err.msg);
        for (int k = 0; k < 40; k++) {
            char text[256] = "";
            int len = (int)rnd(40);
            for (int i = 0; i < len; i++)
                strcat(text, alphabet[rnd(n_alpha)]);
            int32_t want[1024];
            size_t n_want = naive_encode(&v, text, want);
            int32_t *ids;
            size_t n;
            if (spm_encode(t, text, strlen(text), true, &ids, &n, &err))
                fail_msg("%s", err.msg);
            if (len == 0)
                n_want = 1; /* empty text: BOS only, no dummy prefix */
            if (n != n_want || memcmp(ids, want, n * sizeof *ids) != 0)
                fail_msg("round %d text %d ('%s'): %zu ids vs %zu from the naive rule", round, k, text, n, n_want);
            free(ids);
        }
        spm_tokenizer_free(t);
        spm_vocab_free(&v);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worked_example),
        cmocka_unit_test(test_control_text_and_user_defined),
        cmocka_unit_test(test_no_byte_token),
        cmocka_unit_test(test_llama2_slice),
        cmocka_unit_test(test_wikillama_slice),
        cmocka_unit_test(test_llama2_whole_wikitext),
        cmocka_unit_test(test_wikillama_whole_heldout),
        cmocka_unit_test(test_threads_same_ids),
        cmocka_unit_test(test_sentencepiece_whitespace),
        cmocka_unit_test(test_gguf_vocab),
        cmocka_unit_test(test_gguf_metadata_rules),
        cmocka_unit_test(test_random_against_naive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
