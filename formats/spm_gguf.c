/* A SentencePiece-style vocabulary from a GGUF file's tokenizer.ggml.* metadata, read with
 * llama.cpp's rules (FORMATS.md §7.1): strict key types, defaults for absent keys, special ids
 * outside the vocabulary ignored in favour of the default. */
#include <stdlib.h>
#include <string.h>

#include "formats/spm.h"

/* Optional numeric per-token array: must hold elem_type and at least n entries. */
static int get_array(const gguf_reader *g, const char *key, uint32_t elem_type, uint32_t n,
                     const gguf_value **out, nm_error *err) {
    const gguf_value *val = gguf_get(g, key);
    *out = NULL;
    if (!val)
        return 0;
    if (val->type != GGUF_TYPE_ARRAY || val->arr.type != elem_type)
        return nm_fail(err, "%s must be an array of %s", key, gguf_type_name(elem_type));
    if (val->arr.count < n)
        return nm_fail(err, "%s has %llu entries for %u tokens", key, (unsigned long long)val->arr.count, n);
    *out = val;
    return 0;
}

int spm_vocab_from_gguf(spm_vocab *v, const gguf_reader *g, nm_error *err) {
    memset(v, 0, sizeof *v);
    const gguf_value *model = gguf_get(g, "tokenizer.ggml.model");
    if (!model)
        return nm_fail(err, "the file has no tokenizer (tokenizer.ggml.model is missing)");
    if (model->type != GGUF_TYPE_STRING)
        return nm_fail(err, "tokenizer.ggml.model has type %s, expected STRING", gguf_type_name(model->type));
    if (model->str.len != 5 || memcmp(model->str.ptr, "llama", 5) != 0)
        return nm_fail(err, "tokenizer '%.*s' is not supported (only SentencePiece vocabularies, \"llama\")",
                       (int)(model->str.len > 32 ? 32 : model->str.len), model->str.ptr);
    const gguf_value *tokens = gguf_get(g, "tokenizer.ggml.tokens");
    if (!tokens)
        return nm_fail(err, "the file has no tokenizer.ggml.tokens");
    if (tokens->type != GGUF_TYPE_ARRAY || tokens->arr.type != GGUF_TYPE_STRING)
        return nm_fail(err, "tokenizer.ggml.tokens must be an array of STRING");
    if (tokens->arr.count == 0 || tokens->arr.count > INT32_MAX)
        return nm_fail(err, "tokenizer.ggml.tokens has %llu entries", (unsigned long long)tokens->arr.count);
    uint32_t n = (uint32_t)tokens->arr.count;
    const gguf_value *scores, *types;
    if (get_array(g, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, n, &scores, err) ||
        get_array(g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, n, &types, err))
        return -1;

    v->bos_id = 1; /* llama.cpp's defaults for an SPM vocabulary */
    v->eos_id = 2;
    v->unk_id = 0;
    v->pad_id = -1;
    v->add_bos = true;
    v->add_eos = false;
    v->add_dummy_prefix = true;
    gguf_special_tokens st = {v->bos_id, v->eos_id, v->unk_id, v->pad_id, v->add_bos, v->add_eos};
    if (gguf_get_special_tokens(g, n, &st, err) ||
        gguf_get_bool_opt(g, "tokenizer.ggml.add_space_prefix", &v->add_dummy_prefix, err))
        return -1;
    v->bos_id = st.bos, v->eos_id = st.eos, v->unk_id = st.unk, v->pad_id = st.pad;
    v->add_bos = st.add_bos, v->add_eos = st.add_eos;
    if (v->bos_id >= (int32_t)n)
        v->bos_id = -1;
    if (v->eos_id >= (int32_t)n)
        v->eos_id = -1;
    if (v->unk_id >= (int32_t)n)
        v->unk_id = -1;
    v->model_type = 0; /* not recorded in GGUF */
    v->escape_whitespaces = true;
    v->remove_extra_whitespaces = false;

    v->pieces = calloc(n, sizeof *v->pieces);
    v->piece_lens = malloc((size_t)n * sizeof *v->piece_lens);
    v->scores = malloc((size_t)n * sizeof *v->scores);
    v->types = malloc((size_t)n * sizeof *v->types);
    if (!v->pieces || !v->piece_lens || !v->scores || !v->types)
        goto oom;
    v->n_tokens = n;
    for (uint32_t i = 0; i < n; i++) {
        const gguf_string *s = &tokens->arr.strings[i];
        if (s->len > UINT32_MAX - 1) {
            spm_vocab_free(v);
            return nm_fail(err, "token %u is too long", i);
        }
        v->pieces[i] = malloc((size_t)s->len + 1);
        if (!v->pieces[i])
            goto oom;
        memcpy(v->pieces[i], s->ptr, (size_t)s->len);
        v->pieces[i][s->len] = '\0';
        v->piece_lens[i] = (uint32_t)s->len;
        v->scores[i] = scores ? (float)gguf_array_f64(scores, i) : 0.0f;
        if (types) {
            int32_t t;
            memcpy(&t, (const uint8_t *)types->arr.data + (size_t)i * 4, 4);
            v->types[i] = t;
        } else {
            v->types[i] = SPM_TOKEN_NORMAL;
        }
        if (v->types[i] == SPM_TOKEN_BYTE)
            v->byte_fallback = true;
    }
    return 0;
oom:
    spm_vocab_free(v);
    return nm_fail(err, "out of memory reading %u tokens", n);
}
