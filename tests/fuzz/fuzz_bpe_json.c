/* libFuzzer target for the tokenizer.json reader: bpe_vocab_load_json_memory on arbitrary bytes
 * must refuse with one printable line and leave nothing behind, or give a vocabulary whose
 * tokens and merges are valid and which the BPE tokenizer then handles safely.
 *   make fuzz-bpe_json FUZZ_TIME=600      (seeds: tests/fuzz/seeds/bpe_json) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/bpe.h"

static void check_message(const char *msg) {
    if (!msg[0])
        abort();
    for (const char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20)
            abort(); /* one printable line */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size ? size : 1); /* exact-size copy: ASan sees any overread */
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    nm_error err = {{0}};
    bpe_vocab v;
    if (bpe_vocab_load_json_memory(&v, buf, size, &err)) {
        check_message(err.msg);
        if (v.tokens || v.n_tokens || v.merge_left || v.added)
            abort(); /* a refused file leaves nothing behind */
        free(buf);
        return 0;
    }
    if (v.n_tokens == 0 || v.n_tokens > BPE_MAX_TOKENS)
        abort();
    for (uint32_t i = 0; i < v.n_tokens; i++)
        if (!v.tokens[i] || v.tokens[i][v.token_lens[i]] != '\0' || v.types[i] < 1 || v.types[i] > 6)
            abort();
    for (uint32_t i = 0; i < v.n_merges; i++)
        if (!v.merge_left[i] || !v.merge_right[i] || !v.merge_left_lens[i] || !v.merge_right_lens[i])
            abort();
    if (v.pre[0]) {
        if (!bpe_pre_supported(v.pre))
            abort();
        /* tokenize the input itself and an awkward text with every pre-tokenizer */
        static const char *const pres[] = {"llama-bpe", "qwen2", "deepseek-v3", "gpt-2", "smollm"};
        static const char text[] = " Hello  w\xc3\xb6rld's 12345\r\n\t<x>\xff\xe2\x82 ~a \xe6\x9d\xb1 '";
        for (size_t k = 0; k < sizeof pres / sizeof *pres; k++) {
            bpe_tokenizer *t = bpe_tokenizer_create(&v, pres[k], &err);
            if (!t)
                abort(); /* a valid vocabulary always gives a tokenizer for a known name */
            for (int which = 0; which < 2; which++) {
                int32_t *ids;
                size_t n;
                const char *in = which ? buf : text;
                size_t len = which ? size : sizeof text - 1;
                if (bpe_encode(t, in, len, which, &ids, &n, &err))
                    abort();
                for (size_t i = 0; i < n; i++)
                    if (ids[i] < 0 || (uint32_t)ids[i] >= v.n_tokens)
                        abort();
                free(ids);
            }
            bpe_tokenizer_free(t);
        }
    } else {
        check_message(v.pre_error);
    }
    if (v.bos_id >= (int32_t)v.n_tokens || v.eos_id >= (int32_t)v.n_tokens)
        abort();
    bpe_vocab_free(&v);
    free(buf);
    return 0;
}
