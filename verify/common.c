#include "verify/common.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/bpe.h"
#include "formats/spm.h"

void verify_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("nomoat-verify: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int verify_parse_int(const char *opt, const char *text, long min, long max, long *out) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max) {
        verify_error("%s: '%s' is not an integer in [%ld, %ld]", opt, text, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int verify_add_lora(const char **loras, int *n, const char *arg) {
    if (*n >= VERIFY_MAX_LORA) {
        verify_error("at most %d --lora adapters", VERIFY_MAX_LORA);
        return -1;
    }
    loras[(*n)++] = arg;
    return 0;
}

int verify_parse_double(const char *opt, const char *text, double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || v != v) {
        verify_error("%s: '%s' is not a number", opt, text);
        return -1;
    }
    *out = v;
    return 0;
}

int verify_read_file(const char *path, char **data, size_t *size, nm_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return nm_fail(err, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        fclose(f);
        return nm_fail(err, "%s: out of memory", path);
    }
    for (;;) {
        if (n == cap) {
            if (cap > SIZE_MAX / 4) break;
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return nm_fail(err, "%s: out of memory", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return nm_fail(err, "%s: read error", path);
    }
    buf[n] = 0;
    *data = buf;
    *size = n;
    return 0;
}

int verify_model_open(verify_model *vm, const char *path, nm_error *err) {
    memset(vm, 0, sizeof *vm);
    vm->g = gguf_open(path, err);
    if (!vm->g) return -1;
    if (vm_model_load(&vm->m, vm->g, err)) {
        nm_error_prefix(err, "%s", path);
        gguf_close(vm->g);
        vm->g = NULL;
        return -1;
    }
    vm->bos_id = -1;
    /* llama.cpp's default before the file's add_bos_token: SentencePiece vocabularies add BOS,
     * byte-level BPE ones only for the Llama 3 pre-tokenizer (formats/bpe_gguf.c) */
    vm->add_bos = true;
    const gguf_value *tm = gguf_get(vm->g, "tokenizer.ggml.model"), *pre = gguf_get(vm->g, "tokenizer.ggml.pre");
    if (tm && tm->type == GGUF_TYPE_STRING && tm->str.len == 4 && !memcmp(tm->str.ptr, "gpt2", 4)) {
        static const char *const bos_pre[] = {"llama-bpe", "llama3", "llama-v3"};
        vm->add_bos = false;
        for (size_t i = 0; pre && pre->type == GGUF_TYPE_STRING && i < 3; i++)
            if (pre->str.len == strlen(bos_pre[i]) && !memcmp(pre->str.ptr, bos_pre[i], pre->str.len))
                vm->add_bos = true;
    }
    const gguf_value *v = gguf_get(vm->g, "tokenizer.ggml.bos_token_id");
    if (v && (v->type == GGUF_TYPE_UINT32 || v->type == GGUF_TYPE_INT32)) vm->bos_id = (int32_t)v->u32;
    v = gguf_get(vm->g, "tokenizer.ggml.add_bos_token");
    if (v && v->type == GGUF_TYPE_BOOL) vm->add_bos = v->b;
    if (vm->bos_id < 0 || vm->bos_id >= vm->m.n_vocab) vm->add_bos = false;
    return 0;
}

void verify_model_close(verify_model *vm) {
    vm_model_free(&vm->m);
    gguf_close(vm->g);
    memset(vm, 0, sizeof *vm);
}

static int load_id_file(const char *path, int32_t n_vocab, int32_t **ids, size_t *n_ids, nm_error *err) {
    char *data;
    size_t size;
    if (verify_read_file(path, &data, &size, err)) return -1;
    if (size % 4) {
        free(data);
        return nm_fail(err, "%s: size %zu is not a multiple of 4 (expected int32 token ids)", path, size);
    }
    int32_t *out = malloc(size ? size : 1);
    if (!out) {
        free(data);
        return nm_fail(err, "%s: out of memory", path);
    }
    for (size_t i = 0; i < size / 4; i++) {
        const uint8_t *p = (const uint8_t *)data + 4 * i;
        int32_t v = (int32_t)((uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24));
        if (v < 0 || v >= n_vocab) {
            free(out);
            free(data);
            return nm_fail(err, "%s: token %zu has id %d, outside the vocabulary of %d", path, i, v, n_vocab);
        }
        out[i] = v;
    }
    free(data);
    *ids = out;
    *n_ids = size / 4;
    return 0;
}

int verify_tokenize_text(const verify_model *vm, const char *model_path, const char *text, size_t len,
                         int32_t **ids, size_t *n_ids, nm_error *err) {
    if (!gguf_get(vm->g, "tokenizer.ggml.model") || !gguf_get(vm->g, "tokenizer.ggml.tokens"))
        return nm_fail(err, "%s has no tokenizer (no tokenizer.ggml.* metadata); pass token ids with --tokens FILE",
                       model_path);
    const gguf_value *tm = gguf_get(vm->g, "tokenizer.ggml.model");
    if (tm->type == GGUF_TYPE_STRING && tm->str.len == 4 && memcmp(tm->str.ptr, "gpt2", 4) == 0) {
        bpe_vocab bv; /* byte-level BPE, tokenized as llama.cpp does (formats/bpe.h) */
        if (bpe_vocab_from_gguf(&bv, vm->g, err)) return nm_error_prefix(err, "%s", model_path);
        bpe_tokenizer *bt = bpe_tokenizer_create(&bv, NULL, err);
        int rc = bt ? bpe_encode(bt, text, len, true, ids, n_ids, err) : -1;
        bpe_tokenizer_free(bt);
        bpe_vocab_free(&bv);
        return rc ? nm_error_prefix(err, "%s", model_path) : 0;
    }
    if (tm->type != GGUF_TYPE_STRING || tm->str.len != 5 || memcmp(tm->str.ptr, "llama", 5) != 0)
        return nm_fail(err, "%s: tokenizer model '%.*s' is not supported (SentencePiece 'llama', BPE 'gpt2')", model_path,
                       tm->type == GGUF_TYPE_STRING ? (int)(tm->str.len > 32 ? 32 : tm->str.len) : 1,
                       tm->type == GGUF_TYPE_STRING ? tm->str.ptr : "?");
    spm_vocab voc;
    memset(&voc, 0, sizeof voc);
    if (spm_vocab_from_gguf(&voc, vm->g, err)) return nm_error_prefix(err, "%s", model_path);
    spm_tokenizer *tok = spm_tokenizer_create(&voc, err);
    int rc = -1;
    if (tok) {
        rc = spm_encode(tok, text, len, true, ids, n_ids, err);
        spm_tokenizer_free(tok);
    }
    spm_vocab_free(&voc);
    return rc; /* ids are checked against the embedding size when evaluated */
}

int verify_load_tokens(const verify_model *vm, const char *model_path, const char *text_path,
                       const char *tokens_path, int32_t **ids, size_t *n_ids, nm_error *err) {
    if (tokens_path) return load_id_file(tokens_path, vm->m.n_vocab, ids, n_ids, err);
    if (!gguf_get(vm->g, "tokenizer.ggml.model") || !gguf_get(vm->g, "tokenizer.ggml.tokens"))
        return verify_tokenize_text(vm, model_path, "", 0, ids, n_ids, err);
    char *text;
    size_t len;
    if (verify_read_file(text_path, &text, &len, err)) return -1;
    if (len > 0 && text[len - 1] == '\n') len--;
    int rc = verify_tokenize_text(vm, model_path, text, len, ids, n_ids, err);
    free(text);
    return rc;
}
