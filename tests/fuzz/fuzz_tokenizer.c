/* libFuzzer target for the SPM encoder: arbitrary bytes (the first byte picks the vocabulary and
 * flags) must tokenize into valid ids that spell the text back exactly, identically on a second
 * run, or fail with one printable line (only the vocabulary without byte tokens may fail).
 *   make fuzz-tokenizer FUZZ_TIME=600     (run from the repository root; seeds:
 *   tests/fuzz/seeds/tokenizer) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/spm.h"

#define TOKENIZER_DATA "tests/data/tokenizer/"

/* 0: Llama 2, 1: wikillama (SentencePiece whitespace rules), 2: a small vocabulary with
 * user-defined tokens, no dummy prefix, EOS, duplicate and missing byte tokens */
static spm_vocab fz_vocab[3];
static spm_tokenizer *fz_tok[3];

static void fz_add(spm_vocab *v, const char *text, float score, int32_t type) {
    uint32_t id = v->n_tokens++;
    v->pieces[id] = strdup(text);
    v->piece_lens[id] = (uint32_t)strlen(text);
    v->scores[id] = score;
    v->types[id] = type;
}

static void fz_init(void) {
    nm_error err;
    const char *root = getenv("NOMOAT_ROOT");
    char path[1024];
    const char *models[2] = {"llama2-tokenizer.model", "wikillama-tokenizer.model"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s%s" TOKENIZER_DATA "%s", root ? root : "", root ? "/" : "", models[i]);
        if (spm_vocab_load(&fz_vocab[i], path, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            abort();
        }
    }
    spm_vocab *v = &fz_vocab[2];
    memset(v, 0, sizeof *v);
    v->pieces = calloc(400, sizeof *v->pieces);
    v->piece_lens = calloc(400, sizeof *v->piece_lens);
    v->scores = calloc(400, sizeof *v->scores);
    v->types = calloc(400, sizeof *v->types);
    fz_add(v, "<unk>", 0, SPM_TOKEN_UNKNOWN);
    fz_add(v, "<s>", 0, SPM_TOKEN_CONTROL);
    fz_add(v, "</s>", 0, SPM_TOKEN_CONTROL);
    for (int b = 0; b < 256; b += 3) { /* every third byte has no byte token */
        char t[8];
        snprintf(t, sizeof t, "<0x%02X>", b);
        fz_add(v, t, 0, SPM_TOKEN_BYTE);
    }
    const char *words[] = {"a", "b", "ab", "ba", "aba", "\xe2\x96\x81", ("\xe2\x96\x81" "a"), "bb", "ab", "c"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        fz_add(v, words[i], -(float)(i % 3), SPM_TOKEN_NORMAL);
    fz_add(v, "<x>", -1000, SPM_TOKEN_USER_DEFINED);
    fz_add(v, "a b", -1000, SPM_TOKEN_USER_DEFINED);
    fz_add(v, "<x", -1000, SPM_TOKEN_USER_DEFINED);
    fz_add(v, "", 0, SPM_TOKEN_NORMAL);
    v->unk_id = 0;
    v->bos_id = 1;
    v->eos_id = 2;
    v->pad_id = -1;
    v->add_bos = true;
    v->add_eos = true;
    v->escape_whitespaces = true;
    for (int i = 0; i < 3; i++)
        if (!(fz_tok[i] = spm_tokenizer_create(&fz_vocab[i], &err)))
            abort();
}

/* The bytes a token stands for in the escaped text: <0xXX> is one byte. */
static size_t fz_token_bytes(const spm_vocab *v, int32_t id, char *out) {
    if (v->types[id] == SPM_TOKEN_BYTE) {
        unsigned b;
        sscanf(v->pieces[id] + 3, "%2X", &b);
        out[0] = (char)b;
        return 1;
    }
    memcpy(out, v->pieces[id], v->piece_lens[id]);
    return v->piece_lens[id];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!fz_tok[0])
        fz_init();
    if (size == 0)
        return 0;
    int which = data[0] % 3;
    bool special = data[0] & 4;
    const spm_vocab *v = &fz_vocab[which];
    char *text = malloc(size - 1 ? size - 1 : 1);
    memcpy(text, data + 1, size - 1);
    size_t len = size - 1;
    nm_error err = {{0}};
    int32_t *ids, *ids2;
    size_t n, n2;
    if (spm_encode(fz_tok[which], text, len, special, &ids, &n, &err)) {
        if (which != 2 || !err.msg[0])
            abort(); /* only the vocabulary with missing byte tokens may fail */
        for (const char *p = err.msg; *p; p++)
            if ((unsigned char)*p < 0x20)
                abort();
        free(text);
        return 0;
    }
    if (spm_encode(fz_tok[which], text, len, special, &ids2, &n2, &err) || n2 != n ||
        memcmp(ids, ids2, n * sizeof *ids) != 0)
        abort(); /* deterministic */
    free(ids2);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] >= v->n_tokens)
            abort();
    if (which == 0) {
        /* Llama 2: lossless. BOS, then "▁" + text with ' ' escaped, spelled by the tokens */
        size_t first = special ? 1 : 0;
        if (special && (n == 0 || ids[0] != 1))
            abort();
        char *want = malloc(3 * len + 4), *got = malloc(48 * n + 1);
        size_t w = 0, g = 0;
        if (len) {
            memcpy(want, "\xe2\x96\x81", 3);
            w = 3;
        }
        for (size_t i = 0; i < len; i++) {
            if (text[i] == ' ') {
                memcpy(want + w, "\xe2\x96\x81", 3);
                w += 3;
            } else {
                want[w++] = text[i];
            }
        }
        for (size_t i = first; i < n; i++) {
            g += fz_token_bytes(&fz_vocab[0], ids[i], got + g);
        }
        if (g != w || memcmp(got, want, w) != 0)
            abort();
        free(want);
        free(got);
    }
    free(ids);
    free(text);
    return 0;
}
