/* libFuzzer target for the SentencePiece ModelProto parser: spm_vocab_load_memory on arbitrary
 * bytes must refuse with one printable line, or give a vocabulary whose every piece lies within
 * the input and which the tokenizer, the resize and added-token helpers then handle safely.
 *   make fuzz-spm_model FUZZ_TIME=600      (seeds: tests/fuzz/seeds/spm_model) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/spm.h"

static void spm_model_check_message(const nm_error *err) {
    if (!err->msg[0])
        abort();
    for (const char *p = err->msg; *p; p++)
        if ((unsigned char)*p < 0x20)
            abort(); /* one printable line */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1); /* exact-size copy: ASan sees any overread */
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    nm_error err = {{0}};
    spm_vocab v;
    if (spm_vocab_load_memory(&v, buf, size, &err)) {
        spm_model_check_message(&err);
        if (v.pieces || v.n_tokens)
            abort(); /* a refused model leaves nothing behind */
        free(buf);
        return 0;
    }
    size_t total = 0;
    if (v.n_tokens == 0)
        abort();
    for (uint32_t i = 0; i < v.n_tokens; i++) {
        if (v.piece_lens[i] == 0 || v.piece_lens[i] > size || v.pieces[i][v.piece_lens[i]] != '\0')
            abort();
        if (v.types[i] < 1 || v.types[i] > 6)
            abort();
        total += v.piece_lens[i];
    }
    if (total > size)
        abort();
    if ((v.unk_id >= (int32_t)v.n_tokens) || (v.bos_id >= (int32_t)v.n_tokens) ||
        (v.eos_id >= (int32_t)v.n_tokens) || (v.pad_id >= (int32_t)v.n_tokens))
        abort();
    /* tokenize a text that exercises spaces, bytes and multi-byte characters with it */
    static const char text[] = "  Hello wörld\n<s> \xff\xe2\x96 a  ";
    spm_tokenizer *t = spm_tokenizer_create(&v, &err);
    if (!t)
        abort(); /* a valid model always gives a tokenizer */
    int32_t *ids;
    size_t n;
    for (int special = 0; special < 2; special++) {
        if (spm_encode(t, text, sizeof text - 1, special, &ids, &n, &err) == 0) {
            for (size_t i = 0; i < n; i++)
                if (ids[i] < 0 || (uint32_t)ids[i] >= v.n_tokens)
                    abort();
            free(ids);
        } else {
            spm_model_check_message(&err);
        }
    }
    spm_tokenizer_free(t);
    /* converter helpers */
    uint32_t dropped;
    if (spm_vocab_set_decoder_token(&v, 0, "a\xe2\x96\x81" "b", 5, false, &err) < 0 ||
        spm_vocab_resize(&v, v.n_tokens + 3, &dropped, &err) || spm_vocab_resize(&v, (v.n_tokens + 1) / 2, &dropped, &err))
        abort();
    spm_vocab_free(&v);
    free(buf);
    return 0;
}
