/* A byte-level BPE vocabulary from a GGUF file's tokenizer.ggml.* metadata (model "gpt2"), read
 * with llama.cpp's rules: strict key types, merges split at the first space after the first
 * byte, special ids outside the vocabulary ignored. */
#include <stdlib.h>
#include <string.h>

#include "formats/bpe.h"

int bpe_vocab_from_gguf(bpe_vocab *v, const gguf_reader *g, nm_error *err) {
    memset(v, 0, sizeof *v);
    v->bos_id = v->eos_id = v->unk_id = v->pad_id = v->post_bos_id = v->post_eos_id = -1;
    const gguf_value *model = gguf_get(g, "tokenizer.ggml.model");
    if (!model)
        return nm_fail(err, "the file has no tokenizer (tokenizer.ggml.model is missing)");
    if (model->type != GGUF_TYPE_STRING)
        return nm_fail(err, "tokenizer.ggml.model has type %s, expected STRING", gguf_type_name(model->type));
    if (model->str.len != 4 || memcmp(model->str.ptr, "gpt2", 4) != 0)
        return nm_fail(err, "tokenizer '%.*s' is not a byte-level BPE (\"gpt2\")",
                       (int)(model->str.len > 32 ? 32 : model->str.len), model->str.ptr);
    const gguf_value *pre = gguf_get(g, "tokenizer.ggml.pre");
    if (pre) {
        if (pre->type != GGUF_TYPE_STRING)
            return nm_fail(err, "tokenizer.ggml.pre has type %s, expected STRING", gguf_type_name(pre->type));
        if (pre->str.len >= sizeof v->pre)
            return nm_fail(err, "tokenizer.ggml.pre is too long (%llu bytes)", (unsigned long long)pre->str.len);
        memcpy(v->pre, pre->str.ptr, (size_t)pre->str.len);
        v->pre[pre->str.len] = '\0';
        if (strlen(v->pre) != pre->str.len)
            return nm_fail(err, "tokenizer.ggml.pre contains a NUL byte");
    }
    const gguf_value *tokens = gguf_get(g, "tokenizer.ggml.tokens");
    if (!tokens)
        return nm_fail(err, "the file has no tokenizer.ggml.tokens");
    if (tokens->type != GGUF_TYPE_ARRAY || tokens->arr.type != GGUF_TYPE_STRING)
        return nm_fail(err, "tokenizer.ggml.tokens must be an array of STRING");
    if (tokens->arr.count == 0 || tokens->arr.count > BPE_MAX_TOKENS)
        return nm_fail(err, "tokenizer.ggml.tokens has %llu entries (1 to %u supported)",
                       (unsigned long long)tokens->arr.count, BPE_MAX_TOKENS);
    uint32_t n = (uint32_t)tokens->arr.count;
    const gguf_value *types = gguf_get(g, "tokenizer.ggml.token_type");
    if (types && (types->type != GGUF_TYPE_ARRAY || types->arr.type != GGUF_TYPE_INT32 || types->arr.count < n))
        return nm_fail(err, "tokenizer.ggml.token_type must be an array of INT32 with one entry per token");
    const gguf_value *merges = gguf_get(g, "tokenizer.ggml.merges");
    if (!merges)
        return nm_fail(err, "the file has no tokenizer.ggml.merges (llama.cpp refuses a BPE vocabulary without)");
    if (merges->type != GGUF_TYPE_ARRAY || merges->arr.type != GGUF_TYPE_STRING)
        return nm_fail(err, "tokenizer.ggml.merges must be an array of STRING");
    if (merges->arr.count > 4ull * BPE_MAX_TOKENS)
        return nm_fail(err, "tokenizer.ggml.merges has %llu entries", (unsigned long long)merges->arr.count);
    v->bos_id = 11; /* llama.cpp's defaults for a BPE vocabulary */
    v->eos_id = 11;
    if (v->bos_id >= (int32_t)n)
        v->bos_id = -1;
    if (v->eos_id >= (int32_t)n)
        v->eos_id = -1;
    /* llama.cpp's pre-tokenizer defaults, before the file's add_bos_token */
    v->add_bos = !strcmp(v->pre, "llama-bpe") || !strcmp(v->pre, "llama3") || !strcmp(v->pre, "llama-v3");
    gguf_special_tokens st = {v->bos_id, v->eos_id, v->unk_id, v->pad_id, v->add_bos, v->add_eos};
    if (gguf_get_special_tokens(g, n, &st, err))
        return -1;
    v->bos_id = st.bos, v->eos_id = st.eos, v->unk_id = st.unk, v->pad_id = st.pad;
    v->add_bos = st.add_bos, v->add_eos = st.add_eos;

    v->tokens = calloc(n, sizeof *v->tokens);
    v->token_lens = malloc((size_t)n * sizeof *v->token_lens);
    v->types = malloc((size_t)n * sizeof *v->types);
    uint32_t nm = (uint32_t)merges->arr.count;
    v->merge_left = calloc(nm ? nm : 1, sizeof *v->merge_left);
    v->merge_right = calloc(nm ? nm : 1, sizeof *v->merge_right);
    v->merge_left_lens = malloc((nm ? nm : 1) * sizeof *v->merge_left_lens);
    v->merge_right_lens = malloc((nm ? nm : 1) * sizeof *v->merge_right_lens);
    if (!v->tokens || !v->token_lens || !v->types || !v->merge_left || !v->merge_right || !v->merge_left_lens ||
        !v->merge_right_lens)
        goto oom;
    v->n_tokens = n;
    for (uint32_t i = 0; i < n; i++) {
        const gguf_string *s = &tokens->arr.strings[i];
        if (s->len > UINT32_MAX - 1) {
            bpe_vocab_free(v);
            return nm_fail(err, "token %u is too long", i);
        }
        if (!(v->tokens[i] = gguf_string_dup(s)))
            goto oom;
        v->token_lens[i] = (uint32_t)s->len;
        v->types[i] = SPM_TOKEN_NORMAL;
        if (types)
            memcpy(&v->types[i], (const uint8_t *)types->arr.data + (size_t)i * 4, 4);
    }
    v->n_merges = nm;
    for (uint32_t i = 0; i < nm; i++) {
        const gguf_string *s = &merges->arr.strings[i];
        const char *sp = s->len > 1 ? memchr(s->ptr + 1, ' ', (size_t)s->len - 1) : NULL;
        gguf_string left = {s->ptr, 0}, right = {s->ptr, 0}; /* no space: llama.cpp keeps ("", "") */
        if (sp) {
            left.len = (uint64_t)(sp - s->ptr);
            right.ptr = sp + 1;
            right.len = s->len - left.len - 1;
        }
        if (left.len > UINT32_MAX - 1 || right.len > UINT32_MAX - 1) {
            bpe_vocab_free(v);
            return nm_fail(err, "merge %u is too long", i);
        }
        if (!(v->merge_left[i] = gguf_string_dup(&left)) || !(v->merge_right[i] = gguf_string_dup(&right)))
            goto oom;
        v->merge_left_lens[i] = (uint32_t)left.len;
        v->merge_right_lens[i] = (uint32_t)right.len;
    }
    return 0;
oom:
    bpe_vocab_free(v);
    return nm_fail(err, "out of memory reading %u tokens and %u merges", n, nm);
}
