/* SentencePiece vocabularies and llama.cpp-compatible SPM tokenization — FORMATS.md §7.
 *
 * A vocabulary comes from a `tokenizer.model` protobuf (what the converter writes into GGUF)
 * or from a GGUF file's tokenizer.ggml.* metadata (what the evaluator tokenizes with). */
#ifndef NOMOAT_SPM_H
#define NOMOAT_SPM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
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

/* ---- Building a GGUF vocabulary like convert_hf_to_gguf.py's _create_vocab_sentencepiece ----
 * spm_vocab_load gives the pieces, scores and token types exactly as the reference converter
 * writes tokenizer.ggml.{tokens,scores,token_type} (user-defined pieces become NORMAL, as there).
 * Then, in this order:
 *   1. spm_vocab_resize(v, config.json "vocab_size") when config.json has it;
 *   2. spm_vocab_apply_hf_added_tokens(v, model_dir) (added_tokens.json, then
 *      tokenizer_config.json's added_tokens_decoder).
 * The converter's job (gguf.SpecialVocab, not done here): tokenizer.ggml.{bos,eos,unknown,
 * padding}_token_id (from config.json's *_token_id, or tokenizer_config.json / tokenizer.json
 * string tokens resolved to ids), add_bos_token / add_eos_token (from tokenizer_config.json),
 * chat_template; tokenizer.ggml.model "llama" and pre "default". The ids/add_* fields of a
 * vocab loaded from tokenizer.model hold SentencePiece's trainer_spec ids and llama.cpp's
 * tokenization defaults, NOT what the reference converter writes. */

/* Sets the number of tokens: new ids become "[PAD<id>]" with score -10000 and type UNUSED;
 * pieces beyond n are dropped (the reference converter warns: *n_dropped, may be NULL). */
int spm_vocab_resize(spm_vocab *v, uint32_t n, uint32_t *n_dropped, nm_error *err);
/* Replaces token id like an added_tokens.json entry (type USER_DEFINED, score -1000), or
 * like a tokenizer_config.json added_tokens_decoder entry (CONTROL with score -1000 when
 * `special` or spm_token_looks_special; else U+2581 becomes ' ' and the type USER_DEFINED).
 * Returns 0, 1 when id >= n_tokens (ignored, as the reference does with a warning), -1 on error. */
int spm_vocab_set_added_token(spm_vocab *v, uint32_t id, const char *text, size_t len, nm_error *err);
int spm_vocab_set_decoder_token(spm_vocab *v, uint32_t id, const char *text, size_t len, bool special,
                                nm_error *err);
/* The reference's does_token_look_special: <pad> <mask> <2mass> [@BOS@], <|...|>, <｜...｜>, <unused...>. */
bool spm_token_looks_special(const char *text, size_t len);
/* Applies dir/added_tokens.json and dir/tokenizer_config.json's added_tokens_decoder (either file
 * may be absent). *n_ignored (may be NULL) counts entries ignored for ids out of range. */
int spm_vocab_apply_hf_added_tokens(spm_vocab *v, const char *dir, uint32_t *n_ignored, nm_error *err);
/* The same as Phi3MiniModel.set_vocab applies them: added_tokens.json as above, then
 * tokenizer_config.json's added_tokens_decoder, then tokenizer.json's added_tokens, each entry
 * CONTROL when marked special, else USER_DEFINED with its text unchanged (score -1000); an entry of
 * those two files beyond the vocabulary is an error (that converter stops on it). */
int spm_vocab_apply_special_only_added_tokens(spm_vocab *v, const char *dir, nm_error *err);

/* Fields of a vocabulary read from a GGUF: model_type 0 (not recorded there), add_dummy_prefix =
 * tokenizer.ggml.add_space_prefix (default true), escape_whitespaces true,
 * remove_extra_whitespaces false, byte_fallback = some token has type BYTE. */

/* The tokenizer copies what it needs: the vocabulary may be freed afterwards. One tokenizer may
 * serve several threads only if each call to spm_encode is serialised (it keeps no state
 * between calls today, but the API leaves room for a cache).
 *
 * Semantics: llama.cpp's SPM tokenizer (FORMATS.md §7.4) for every vocabulary. A vocabulary
 * loaded from tokenizer.model additionally follows its SentencePiece normalizer switches
 * (remove_extra_whitespaces: drop leading/trailing spaces and collapse runs, as SentencePiece
 * and Hugging Face do; escape_whitespaces; add_dummy_prefix), which llama.cpp ignores for SPM
 * GGUF files. For Llama 1/2 (remove_extra_whitespaces false) the two agree exactly. */
typedef struct spm_tokenizer spm_tokenizer;
spm_tokenizer *spm_tokenizer_create(const spm_vocab *v, nm_error *err);
void spm_tokenizer_free(spm_tokenizer *t);
/* Threads used for long texts (>= 256 KB without user-defined tokens in between): the text is
 * cut where no token can span the cut, so the ids are the same for any count. <= 0 (the
 * default) means all cores; 1 keeps everything on the calling thread. */
void spm_tokenizer_set_threads(spm_tokenizer *t, int n_threads);
/* Encodes text as llama.cpp does (add_special: prepend BOS when the vocab says add_bos;
 * parse_special = false). *ids is malloc'ed; caller frees. */
int spm_encode(spm_tokenizer *t, const char *text, size_t len, bool add_special, int32_t **ids,
               size_t *n_ids, nm_error *err);

#endif
