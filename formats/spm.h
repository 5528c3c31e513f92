/* SentencePiece vocabularies and llama.cpp-compatible SPM tokenization — FORMATS.md §7.
 *
 * A vocabulary comes from a `tokenizer.model` protobuf (what the converter writes into GGUF)
 * or from a GGUF file's tokenizer.ggml.* metadata (what the evaluator tokenizes with). */
#ifndef NOMOAT_SPM_H
#define NOMOAT_SPM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"
#include "formats/gguf.h"

/* llama.cpp token types (tokenizer.ggml.token_type), FORMATS.md §7.2 */
enum {
    SPM_TOKEN_UNDEFINED = 0,
    SPM_TOKEN_NORMAL = 1,
    SPM_TOKEN_UNKNOWN = 2,
    SPM_TOKEN_CONTROL = 3,
    SPM_TOKEN_USER_DEFINED = 4,
    SPM_TOKEN_UNUSED = 5,
    SPM_TOKEN_BYTE = 6,
};

typedef struct spm_vocab {
    uint32_t n_tokens;
    char **pieces;        /* NUL-terminated UTF-8 */
    uint32_t *piece_lens;
    float *scores;
    int32_t *types;       /* SPM_TOKEN_* as llama.cpp's converter maps them */
    int32_t model_type;   /* trainer_spec.model_type: 1 unigram, 2 BPE, 3 word, 4 char */
    bool add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces, byte_fallback;
    int32_t unk_id, bos_id, eos_id, pad_id; /* -1 when absent */
    bool add_bos, add_eos; /* what the GGUF says (from_gguf), or llama.cpp defaults */
} spm_vocab;

/* Parses a SentencePiece ModelProto (tokenizer.model); every length and field is checked. */
int spm_vocab_load(spm_vocab *v, const char *path, nm_error *err);
int spm_vocab_load_memory(spm_vocab *v, const void *data, size_t size, nm_error *err);
/* Reads tokenizer.ggml.{model,tokens,scores,token_type,*_token_id,add_*_token}. */
int spm_vocab_from_gguf(spm_vocab *v, const gguf_reader *g, nm_error *err);
void spm_vocab_free(spm_vocab *v);

typedef struct spm_tokenizer spm_tokenizer;
spm_tokenizer *spm_tokenizer_create(const spm_vocab *v, nm_error *err);
void spm_tokenizer_free(spm_tokenizer *t);
/* Encodes text as llama.cpp does (add_special: prepend BOS when the vocab says add_bos;
 * parse_special = false). *ids is malloc'ed; caller frees. */
int spm_encode(spm_tokenizer *t, const char *text, size_t len, bool add_special, int32_t **ids,
               size_t *n_ids, nm_error *err);

#endif
